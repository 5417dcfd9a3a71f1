//! Accounting periods and the replicated "periods dropped before" floors.
//!
//! Usage counters and budget rights are kept per period (a day, a month, …) so that a new
//! period starts from zero without ever decrementing anything. Old periods are garbage: they are
//! dropped by an **explicit** operation ([`Floors`] raised by `drop_periods_before`), never
//! implicitly by a node's clock, so a node whose clock runs ahead cannot wipe the current period.
//!
//! A floor is itself replicated state: each writer owns one cell per [`PeriodUnit`] (a
//! single-writer, grow-only maximum with a dot), and the effective floor is the maximum over
//! writers. Replicas therefore agree on what was dropped, refuse stale cells of dropped periods
//! when they arrive late, and keep identical digests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::version::{CausalContext, Dot, VersionVector};
use crate::hlc::WriterId;

/// The length of a period.
///
/// The variant order is part of the encoding (bincode writes the variant index) and of the
/// ordering of [`Period`]s: new units are appended after [`PeriodUnit::Lifetime`], never
/// inserted, so data written before they existed still decodes and sorts the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeriodUnit {
    /// Minutes since the Unix epoch.
    Minute,
    /// Hours since the Unix epoch.
    Hour,
    /// UTC days since the Unix epoch.
    Day,
    /// UTC calendar months since January 1970.
    Month,
    /// A single period that never ends (index 0).
    Lifetime,
    /// ISO weeks: Monday 00:00 UTC to the next Monday 00:00 UTC. 1970-01-01 was a Thursday, so
    /// week 0 runs from Monday 1969-12-29 (its start is clamped to the epoch in
    /// [`Period::bounds_ms`]) and the index of a day `d` since the epoch is `(d + 3) / 7`.
    Week,
    /// Windows of this many seconds counted from the Unix epoch: index `⌊t / len⌋`. A caller
    /// that wants windows anchored elsewhere (per budget) passes `epoch_ms − anchor_ms` to
    /// [`Period::containing`] and adds `anchor_ms` back to [`Period::bounds_ms`]. A length of 0
    /// (never meaningful; it could only come from a faulty peer or config) counts as 1 second,
    /// so no computation divides by zero.
    Every(u32),
}

impl PeriodUnit {
    /// The fixed length of one period in ms, for the units that have one (not months, not
    /// the lifetime).
    fn fixed_ms(self) -> Option<u64> {
        match self {
            PeriodUnit::Minute => Some(60_000),
            PeriodUnit::Hour => Some(3_600_000),
            PeriodUnit::Day => Some(DAY_MS),
            PeriodUnit::Week => Some(7 * DAY_MS),
            PeriodUnit::Every(secs) => Some(u64::from(secs.max(1)) * 1_000),
            PeriodUnit::Month | PeriodUnit::Lifetime => None,
        }
    }
}

const DAY_MS: u64 = 86_400_000;

/// Days from Monday 1969-12-29 (the start of ISO week 0) to the epoch.
const WEEK_OFFSET_DAYS: u64 = 3;

/// One period: a unit and an index counted from the Unix epoch in that unit.
///
/// Ordered by unit, then index; floors compare indexes within one unit only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    /// The unit.
    pub unit: PeriodUnit,
    /// The index within the unit.
    pub index: u32,
}

impl Period {
    /// A period from its parts.
    pub fn new(unit: PeriodUnit, index: u32) -> Self {
        Self { unit, index }
    }

    /// The period of `unit` that contains the instant `epoch_ms` (UTC). Pure: a clock that
    /// jumps back simply yields an earlier (never a later) period.
    pub fn containing(unit: PeriodUnit, epoch_ms: u64) -> Self {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let index = match unit {
            PeriodUnit::Month => month_index(epoch_ms / DAY_MS),
            PeriodUnit::Lifetime => 0,
            PeriodUnit::Week => clamp((epoch_ms / DAY_MS + WEEK_OFFSET_DAYS) / 7),
            PeriodUnit::Minute | PeriodUnit::Hour | PeriodUnit::Day | PeriodUnit::Every(_) => {
                clamp(epoch_ms / unit.fixed_ms().unwrap_or(1))
            }
        };
        Self { unit, index }
    }

    /// The instants `[start, end)` of the period, in ms since the epoch (UTC). The lifetime is
    /// `(0, u64::MAX)`; week 0 starts before the epoch and is clamped to `0`; values that would
    /// not fit saturate at `u64::MAX`.
    pub fn bounds_ms(&self) -> (u64, u64) {
        let i = u64::from(self.index);
        match self.unit {
            PeriodUnit::Lifetime => (0, u64::MAX),
            PeriodUnit::Month => (month_start_ms(i), month_start_ms(i + 1)),
            PeriodUnit::Week => {
                let start_day = |w: u64| (w * 7).saturating_sub(WEEK_OFFSET_DAYS);
                (start_day(i) * DAY_MS, start_day(i + 1) * DAY_MS)
            }
            PeriodUnit::Minute | PeriodUnit::Hour | PeriodUnit::Day | PeriodUnit::Every(_) => {
                let len = u128::from(self.unit.fixed_ms().unwrap_or(1));
                let at = |n: u64| u64::try_from(u128::from(n) * len).unwrap_or(u64::MAX);
                (at(i), at(i + 1))
            }
        }
    }

    /// The period that follows this one (the lifetime is its own successor; an index at
    /// `u32::MAX` stays there).
    pub fn next(&self) -> Self {
        match self.unit {
            PeriodUnit::Lifetime => *self,
            _ => Self {
                unit: self.unit,
                index: self.index.saturating_add(1),
            },
        }
    }
}

/// Months since January 1970 for a count of days since the epoch (Hinnant's civil_from_days).
fn month_index(days: u64) -> u32 {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    let idx = (year - 1970) * 12 + (month - 1);
    u32::try_from(idx.max(0)).unwrap_or(u32::MAX)
}

/// The first instant (ms) of month `index` since January 1970 (Hinnant's days_from_civil).
fn month_start_ms(index: u64) -> u64 {
    let year = 1970 + i128::from(index / 12);
    let month = i128::from(index % 12) + 1;
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days.max(0) * i128::from(DAY_MS)).unwrap_or(u64::MAX)
}

/// One writer's floor for one unit: periods with a lower index are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorCell {
    /// Periods with `index < floor` are dropped.
    pub floor: u32,
    /// The sequence number of the writer's last raise.
    pub seq: u64,
}

/// A floor cell as shipped in a delta.
pub type FloorItem = (PeriodUnit, WriterId, FloorCell);

/// The replicated floors: per unit, per writer, a grow-only maximum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floors(BTreeMap<PeriodUnit, BTreeMap<WriterId, FloorCell>>);

impl Floors {
    /// The effective floor for `unit` (the maximum over writers), if any writer set one.
    pub fn floor(&self, unit: PeriodUnit) -> Option<u32> {
        self.0
            .get(&unit)
            .and_then(|cells| cells.values().map(|c| c.floor).max())
    }

    /// Whether `period` is below the effective floor of its unit.
    pub fn is_dropped(&self, period: &Period) -> bool {
        self.floor(period.unit).is_some_and(|f| period.index < f)
    }

    /// A local drop by `dot.writer`: records `dot` in `ctx`, raises the writer's floor for
    /// `cutoff.unit` to `cutoff.index`, and returns the cell to ship.
    pub(crate) fn drop_local(
        &mut self,
        ctx: &mut CausalContext,
        dot: &Dot,
        cutoff: Period,
    ) -> FloorItem {
        ctx.insert(dot);
        let cell = self.raise(dot, cutoff);
        (cutoff.unit, dot.writer.clone(), cell)
    }

    /// Merges shipped floor cells, recording each cell's dot in `ctx`. Returns whether any
    /// effective floor rose (the caller then prunes what it dropped).
    pub(crate) fn merge_shipped(&mut self, ctx: &mut CausalContext, items: Vec<FloorItem>) -> bool {
        for (_, writer, cell) in &items {
            ctx.insert(&Dot {
                writer: writer.clone(),
                seq: cell.seq,
            });
        }
        self.merge(items)
    }

    /// Raises `dot.writer`'s floor for `cutoff.unit` to `cutoff.index` (a local operation).
    fn raise(&mut self, dot: &Dot, cutoff: Period) -> FloorCell {
        let cells = self.0.entry(cutoff.unit).or_default();
        let cell = cells
            .entry(dot.writer.clone())
            .or_insert(FloorCell { floor: 0, seq: 0 });
        cell.floor = cell.floor.max(cutoff.index);
        cell.seq = cell.seq.max(dot.seq);
        *cell
    }

    /// The cells whose last dot `vv` does not cover.
    pub(crate) fn since(&self, vv: &VersionVector) -> Vec<FloorItem> {
        self.0
            .iter()
            .flat_map(|(unit, cells)| {
                cells
                    .iter()
                    .filter(|(w, c)| vv.get(w) < c.seq)
                    .map(|(w, c)| (*unit, w.clone(), *c))
            })
            .collect()
    }

    /// Merges shipped cells (pointwise maximum). Returns whether any effective floor rose.
    fn merge(&mut self, items: Vec<FloorItem>) -> bool {
        let mut raised = false;
        for (unit, writer, cell) in items {
            let before = self.floor(unit);
            let cells = self.0.entry(unit).or_default();
            match cells.get_mut(&writer) {
                Some(mine) => {
                    mine.floor = mine.floor.max(cell.floor);
                    mine.seq = mine.seq.max(cell.seq);
                }
                None => {
                    cells.insert(writer, cell);
                }
            }
            raised |= self.floor(unit) > before;
        }
        raised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch ms of a UTC date-time, by counting days (independent of the code under test).
    fn utc(y: u64, mo: u64, d: u64, h: u64, mi: u64) -> u64 {
        let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days = (1970..y)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<u64>();
        let lens = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        days += lens[..usize::try_from(mo - 1).unwrap()].iter().sum::<u64>() + d - 1;
        ((days * 24 + h) * 60 + mi) * 60_000
    }

    fn month(y: u32, m: u32) -> Period {
        Period::new(PeriodUnit::Month, (y - 1970) * 12 + m - 1)
    }

    #[test]
    fn periods_from_time() {
        // 2026-11-15T12:34:56Z
        let ms = 1_794_746_096_000;
        assert_eq!(Period::containing(PeriodUnit::Day, ms).index, 20_772);
        assert_eq!(
            Period::containing(PeriodUnit::Month, ms).index,
            (2026 - 1970) * 12 + 10
        );
        assert_eq!(Period::containing(PeriodUnit::Month, 0).index, 0);
        // 1972-03-01 (after a leap day): month 26.
        assert_eq!(
            Period::containing(PeriodUnit::Month, 68_256_000_000).index,
            26
        );
        assert_eq!(Period::containing(PeriodUnit::Lifetime, ms).index, 0);
    }

    #[test]
    fn month_bounds_follow_the_calendar() {
        let cases = [
            // (year, month, days in it): month ends, leap years (incl. 2000 and 2100).
            (1970, 1, 31),
            (2024, 2, 29),
            (2023, 2, 28),
            (2000, 2, 29),
            (2100, 2, 28),
            (2026, 4, 30),
            (2026, 12, 31),
        ];
        for (y, m, len) in cases {
            let p = month(y, m);
            let (start, end) = p.bounds_ms();
            assert_eq!(start, utc(u64::from(y), u64::from(m), 1, 0, 0), "{y}-{m}");
            assert_eq!(end - start, len * DAY_MS, "{y}-{m}");
            assert_eq!(Period::containing(PeriodUnit::Month, start), p);
            assert_eq!(Period::containing(PeriodUnit::Month, end - 1), p);
            assert_eq!(Period::containing(PeriodUnit::Month, end), p.next());
        }
        // Year end: 2026-12-31T23:59:59.999 is December, one ms later is January 2027.
        let new_year = utc(2027, 1, 1, 0, 0);
        assert_eq!(
            Period::containing(PeriodUnit::Month, new_year - 1),
            month(2026, 12)
        );
        assert_eq!(
            Period::containing(PeriodUnit::Month, new_year),
            month(2027, 1)
        );
        assert_eq!(month(2026, 12).next(), month(2027, 1));
        // Leap day itself.
        let leap_day = utc(2024, 2, 29, 12, 0);
        assert_eq!(
            Period::containing(PeriodUnit::Month, leap_day),
            month(2024, 2)
        );
        assert_eq!(
            Period::containing(PeriodUnit::Day, leap_day).bounds_ms(),
            (utc(2024, 2, 29, 0, 0), utc(2024, 3, 1, 0, 0))
        );
    }

    #[test]
    fn weeks_start_on_monday_midnight_utc() {
        // 1970-01-01 was a Thursday: week 0 holds it and ends on Monday 1970-01-05.
        assert_eq!(Period::containing(PeriodUnit::Week, 0).index, 0);
        let w0 = Period::new(PeriodUnit::Week, 0);
        assert_eq!(w0.bounds_ms(), (0, utc(1970, 1, 5, 0, 0)));
        // Sunday 2026-11-15 23:59:59.999 → Monday 2026-11-16 00:00.
        let monday = utc(2026, 11, 16, 0, 0);
        let sunday = Period::containing(PeriodUnit::Week, monday - 1);
        let week = Period::containing(PeriodUnit::Week, monday);
        assert_eq!(week, sunday.next());
        assert_eq!(week.bounds_ms(), (monday, monday + 7 * DAY_MS));
        assert_eq!(sunday.bounds_ms(), (monday - 7 * DAY_MS, monday));
        // A whole week maps to one period; Monday to Sunday.
        for h in 0..7 * 24 {
            assert_eq!(
                Period::containing(PeriodUnit::Week, monday + h * 3_600_000),
                week
            );
        }
        // A week across a year end: Monday 2024-12-30 to Monday 2025-01-06.
        let y = Period::containing(PeriodUnit::Week, utc(2025, 1, 1, 12, 0));
        assert_eq!(
            y.bounds_ms(),
            (utc(2024, 12, 30, 0, 0), utc(2025, 1, 6, 0, 0))
        );
    }

    #[test]
    fn every_counts_fixed_windows_from_the_epoch() {
        let unit = PeriodUnit::Every(90);
        assert_eq!(Period::containing(unit, 89_999).index, 0);
        assert_eq!(Period::containing(unit, 90_000).index, 1);
        assert_eq!(Period::new(unit, 3).bounds_ms(), (270_000, 360_000));
        // Windows of different lengths are different units (separate floors).
        assert_ne!(PeriodUnit::Every(90), PeriodUnit::Every(60));
        // A zero length cannot divide by zero: it counts as one second.
        assert_eq!(Period::containing(PeriodUnit::Every(0), 5_500).index, 5);
        assert_eq!(
            Period::new(PeriodUnit::Every(0), 5).bounds_ms(),
            (5_000, 6_000)
        );
        // The largest values saturate instead of overflowing.
        let far = Period::new(PeriodUnit::Every(u32::MAX), u32::MAX);
        assert_eq!(far.bounds_ms(), (u64::MAX, u64::MAX));
        assert_eq!(far.next(), far);
    }

    #[test]
    fn lifetime_is_everything() {
        let p = Period::containing(PeriodUnit::Lifetime, 123);
        assert_eq!(p.bounds_ms(), (0, u64::MAX));
        assert_eq!(p.next(), p);
    }

    #[test]
    fn bounds_contain_their_instants_and_a_clock_going_back_never_moves_forward() {
        let units = [
            PeriodUnit::Minute,
            PeriodUnit::Hour,
            PeriodUnit::Day,
            PeriodUnit::Week,
            PeriodUnit::Month,
            PeriodUnit::Every(7),
            PeriodUnit::Every(86_400 * 30),
            PeriodUnit::Lifetime,
        ];
        // A deterministic spread of instants from 1970 to about 2200.
        let mut t: u64 = 1;
        for _ in 0..2_000 {
            t = (t.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1)) % 7_258_118_400_000;
            for unit in units {
                let p = Period::containing(unit, t);
                let (start, end) = p.bounds_ms();
                assert!(start <= t && t < end, "{unit:?} {t}: [{start}, {end})");
                assert_eq!(Period::containing(unit, start), p, "{unit:?} start");
                if end != u64::MAX {
                    assert_eq!(Period::containing(unit, end), p.next(), "{unit:?} end");
                }
                for back in [1, 999, 3_600_000, 40 * DAY_MS] {
                    let earlier = Period::containing(unit, t.saturating_sub(back));
                    assert!(earlier <= p, "{unit:?}: {t} - {back} moved forward");
                }
            }
        }
    }

    #[test]
    fn existing_units_keep_their_order_and_encoding() {
        assert!(PeriodUnit::Minute < PeriodUnit::Hour);
        assert!(PeriodUnit::Month < PeriodUnit::Lifetime);
        assert!(PeriodUnit::Lifetime < PeriodUnit::Week);
        let bytes = |u: PeriodUnit| crate::codec::encode(crate::codec::Kind::Delta, &u).unwrap();
        // The variant index is the payload; the old units keep 0..=4.
        for (i, u) in [
            PeriodUnit::Minute,
            PeriodUnit::Hour,
            PeriodUnit::Day,
            PeriodUnit::Month,
            PeriodUnit::Lifetime,
            PeriodUnit::Week,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(
                bytes(u)[crate::codec::HEADER_LEN..],
                [u8::try_from(i).unwrap()]
            );
        }
    }
}

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

use super::version::{Dot, VersionVector};
use crate::hlc::WriterId;

/// The length of a period.
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
}

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

    /// The period of `unit` that contains the instant `epoch_ms` (UTC).
    pub fn containing(unit: PeriodUnit, epoch_ms: u64) -> Self {
        let div = |ms_per: u64| u32::try_from(epoch_ms / ms_per).unwrap_or(u32::MAX);
        let index = match unit {
            PeriodUnit::Minute => div(60_000),
            PeriodUnit::Hour => div(3_600_000),
            PeriodUnit::Day => div(86_400_000),
            PeriodUnit::Month => month_index(epoch_ms / 86_400_000),
            PeriodUnit::Lifetime => 0,
        };
        Self { unit, index }
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

    /// Raises `dot.writer`'s floor for `cutoff.unit` to `cutoff.index` (a local operation).
    pub(crate) fn raise(&mut self, dot: &Dot, cutoff: Period) -> FloorCell {
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
    pub(crate) fn merge(&mut self, items: Vec<FloorItem>) -> bool {
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
}

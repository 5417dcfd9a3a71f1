//! RFC 3339 times for the admin API and the request log: rendered from and parsed to Unix
//! epoch milliseconds, in UTC. The tree has no date crate, and the civil calendar conversion is a few lines
//! (Howard Hinnant's `days_from_civil` / `civil_from_days`).

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: u64 = 86_400_000;

/// The current time in epoch milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `ms` as `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` before the `Z` when it has milliseconds.
pub(crate) fn rfc3339(ms: u64) -> String {
    let (year, month, day) = civil_from_days(ms / MS_PER_DAY);
    let in_day = ms % MS_PER_DAY;
    let (h, m, s, frac) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000,
    );
    let base = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{frac:03}Z")
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to epoch ms (fractions past milliseconds
/// are truncated). `None` for anything else, or for a time before 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let (h, m, s) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    // Leap seconds (:60) are refused rather than folded: nobody sets an expiry on one.
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut frac_ms = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..n.min(3)]);
        frac_ms = padded.parse::<u64>().ok()?;
        rest = &fraction[n..];
    }
    let offset_ms: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = digits(rest.as_bytes(), 1, 2)?;
            let om = digits(rest.as_bytes(), 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::try_from((oh * 60 + om) * 60_000).ok()?;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day)?;
    let local = days * MS_PER_DAY + ((h * 60 + m) * 60 + s) * 1_000 + frac_ms;
    // A positive offset means local time is ahead of UTC.
    u64::try_from(i64::try_from(local).ok()?.checked_sub(offset_ms)?).ok()
}

fn digits(b: &[u8], at: usize, len: usize) -> Option<u64> {
    let slice = b.get(at..at + len)?;
    slice.iter().try_fold(0u64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date; `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = i64::try_from(year).ok()? - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::try_from(month).ok()?;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::try_from(day).ok()? - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The civil date (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_794_746_096_000), "2026-11-15T12:34:56Z");
        assert_eq!(rfc3339(1_794_746_096_007), "2026-11-15T12:34:56.007Z");
        // 2024-02-29 (a leap day) and 2000-03-01 (after a 400-year leap day).
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 951_868_800_000, 1_709_164_800_000, 1_794_746_096_007] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339("2026-11-15T14:34:56+02:00"),
            Some(1_794_746_096_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-15t07:04:56.5-05:30"),
            Some(1_794_746_096_500)
        );
        assert_eq!(
            parse_rfc3339("2026-11-15 12:34:56.123456z"),
            Some(1_794_746_096_123)
        );
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            "",
            "2026-11-15",
            "2026-11-15T12:34:56",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-15T24:00:00Z",
            "2026-11-15T12:60:00Z",
            "2026-11-15T12:34:56.Z",
            "2026-11-15T12:34:56+2:00",
            "2026-11-15T12:34:56Zjunk",
            "1969-12-31T23:59:59Z",
            "+026-11-15T12:34:56Z",
            "2026-11-15T12:34:56\u{e9}",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:30:00+01:00"), None);
    }
}

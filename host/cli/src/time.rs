//! Times as people and scripts read them: RFC 3339 in UTC. A tiny formatter
//! rather than a dependency: the tools only ever print times after the
//! epoch, in milliseconds.

/// `ms` since the Unix epoch as an RFC 3339 UTC time to the second
/// (`2024-02-29T12:00:00Z`).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time to the millisecond
/// (`2024-02-29T12:00:00.250Z`): for times the engine keeps in ms.
pub fn utc_ms(ms: u64) -> String {
    let seconds = utc(ms);
    let whole = seconds.trim_end_matches('Z');
    format!("{whole}.{:03}Z", ms % 1000)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch): eras of 400 years
/// repeat exactly, so the date is found inside one era.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(1_709_208_000_999), "2024-02-29T12:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28T23:59:59Z");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(utc(253_402_300_799_000), "9999-12-31T23:59:59Z");
        assert_eq!(utc_ms(1_709_208_000_999), "2024-02-29T12:00:00.999Z");
        assert_eq!(utc_ms(5), "1970-01-01T00:00:00.005Z");
    }
}

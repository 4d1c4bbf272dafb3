//! Timestamps in the agent's reply format, `2026-11-22T22:43:38.001Z`.
//!
//! The agent formats with Go's `2006-01-02T15:04:05.000Z` layout in UTC (`times.ToIso8601UTC`),
//! which truncates to milliseconds. One small function saves a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `time` as UTC with millisecond precision, truncated like Go.
pub(crate) fn format(time: SystemTime) -> String {
    // A clock before 1970 is not a case the agent handles either; clamp to the epoch.
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days`, restricted to dates on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_like_the_trace() {
        // 2026-11-22T22:43:38.001Z, the startDateTime of job 3333… in agent-runcommand-mgs.
        let time = UNIX_EPOCH + Duration::from_millis(1_795_387_418_001);
        assert_eq!(format(time), "2026-11-22T22:43:38.001Z");
    }

    #[test]
    fn truncates_to_milliseconds_and_handles_leap_days() {
        let time = UNIX_EPOCH + Duration::from_nanos(951_782_400_999_999_999);
        assert_eq!(format(time), "2000-02-29T00:00:00.999Z");
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}

//! Wall-clock time as the emulator sees it.
//!
//! Everything that depends on time (PingStatus, `LastPingDateTime`, inventory capture times,
//! delivery timeouts, idle and maximum session durations) reads the time through one [`Clock`]
//! held by the [`Emulator`](crate::model::Emulator). Production uses [`SystemClock`]; tests use
//! [`ManualClock`] and move time forward by hand, so no test sleeps or races the real clock.
//!
//! The emulator holds its clock inside a [`Shifted`]: the clock plus an offset that only grows.
//! `POST /_emulator/clock` adds to the offset ("time travel"), so a user or a cross-process
//! test can expire a session or a ping without waiting, whatever clock is underneath.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests.
///
/// Share it as an `Arc<ManualClock>`: give one clone to the emulator and keep one to call
/// [`advance`](ManualClock::advance).
#[derive(Debug)]
pub struct ManualClock {
    /// The current time. A std mutex: it is held for a single read or write, never across an
    /// `.await`.
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// A clock stopped at `secs` seconds after the Unix epoch.
    pub fn at_epoch_secs(secs: u64) -> ManualClock {
        ManualClock::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poison| poison.into_inner());
        *now += by;
    }

    /// Sets the clock to `to` (which may be earlier than the current time).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(|poison| poison.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A clock moved forward by an offset that only grows: what the emulator reads time from.
///
/// Time never goes backwards through it, so deadlines computed from it (idle sessions,
/// PingStatus) only ever come closer.
#[derive(Debug)]
pub struct Shifted {
    inner: Arc<dyn Clock>,
    /// How far ahead of `inner` this clock is. A std mutex held for one read or write.
    offset: Mutex<Duration>,
}

impl Shifted {
    /// `inner`, not shifted yet.
    pub fn new(inner: Arc<dyn Clock>) -> Shifted {
        Shifted {
            inner,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves this clock forward by `by`; returns the new offset.
    pub fn advance(&self, by: Duration) -> Duration {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *offset = offset.saturating_add(by);
        *offset
    }

    /// How far ahead of the underlying clock this one is.
    pub fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for Shifted {
    fn now(&self) -> SystemTime {
        self.inner.now() + self.offset()
    }
}

/// Seconds since the Unix epoch, rounded to milliseconds, as the SSM API writes `DateTime`
/// members (spec §10: a JSON number, fractional allowed, e.g. `1496315618.586`).
pub fn epoch_seconds(t: SystemTime) -> f64 {
    let millis = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as f64,
        Err(before) => -(before.duration().as_millis() as f64),
    };
    millis / 1000.0
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` in UTC, the format of inventory `CaptureTime`.
pub fn iso8601_seconds(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_seconds_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_496_315_618_586);
        assert_eq!(epoch_seconds(t), 1_496_315_618.586);
    }

    #[test]
    fn formats_iso8601() {
        assert_eq!(iso8601_seconds(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(iso8601_seconds(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200); // 2024-01-01T00:00:00Z
        assert_eq!(iso8601_seconds(t), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_epoch_secs(100);
        assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(100));
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(105));
    }

    #[test]
    fn a_shifted_clock_runs_ahead_of_its_clock_by_what_was_added() {
        let manual = Arc::new(ManualClock::at_epoch_secs(100));
        let shifted = Shifted::new(manual.clone());
        assert_eq!(shifted.now(), UNIX_EPOCH + Duration::from_secs(100));
        assert_eq!(
            shifted.advance(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        shifted.advance(Duration::from_secs(1));
        manual.advance(Duration::from_secs(5));
        assert_eq!(shifted.now(), UNIX_EPOCH + Duration::from_secs(166));
        assert_eq!(shifted.offset(), Duration::from_secs(61));
    }
}

//! Time at the terminal: the current Unix time ([`now`]) and how a timestamp is shown to people
//! (local time, to the minute in run listings, to the second for syncs, the wall clock in live
//! status lines). Timestamps are Unix seconds as `f64`, as in the run format and the store.

use chrono::{DateTime, Local};

/// Seconds since the Unix epoch (0.0 if the clock is before 1970).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `unix` (seconds, fraction dropped) in the local time zone; `None` out of chrono's range.
pub fn local(unix: f64) -> Option<DateTime<Local>> {
    DateTime::from_timestamp(unix as i64, 0).map(|d| d.with_timezone(&Local))
}

/// `2026-12-04 17:05`, local time; `None` when there is no time or it is out of range.
pub fn local_minute(unix: Option<f64>) -> Option<String> {
    Some(local(unix?)?.format("%Y-%m-%d %H:%M").to_string())
}

/// `2026-12-04 17:05:09`, local time; `None` when there is no time or it is out of range.
pub fn local_second(unix: Option<f64>) -> Option<String> {
    Some(local(unix?)?.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// The local wall clock now, `17:05:09`.
pub fn clock_now() -> String {
    Local::now().format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn now_is_after_this_code_was_written() {
        let t = now();
        assert!(t > 1.7e9, "{t}");
        assert!((now() - t) >= 0.0);
    }

    #[test]
    fn formats_agree_with_the_local_zone() {
        let t = 1_764_867_909.75; // a fraction is dropped, never rounded up
        let expected = Local.timestamp_opt(1_764_867_909, 0).single().unwrap();
        assert_eq!(
            local_minute(Some(t)).unwrap(),
            expected.format("%Y-%m-%d %H:%M").to_string()
        );
        assert_eq!(
            local_second(Some(t)).unwrap(),
            expected.format("%Y-%m-%d %H:%M:%S").to_string()
        );
        assert_eq!(local_second(Some(t)).unwrap().len(), 19);
        assert_eq!(local_minute(Some(t)).unwrap().len(), 16);
    }

    #[test]
    fn missing_or_impossible_times_are_none() {
        assert_eq!(local_minute(None), None);
        assert_eq!(local_second(None), None);
        assert_eq!(local_minute(Some(1e300)), None);
        assert_eq!(local_second(Some(-1e300)), None);
    }

    #[test]
    fn the_clock_reads_hours_minutes_seconds() {
        let c = clock_now();
        assert_eq!(c.len(), 8, "{c}");
        assert_eq!(c.as_bytes()[2], b':');
        assert_eq!(c.as_bytes()[5], b':');
    }
}

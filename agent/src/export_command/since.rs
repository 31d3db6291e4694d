//! `--since TIME` of `runicorn-agent export`: an ISO date or date-time (local time unless it
//! carries an offset) or a span back from now (`90m`, `12h`, `3d`, `2w`), as seconds since the
//! Unix epoch.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};

/// Parses TIME relative to `now` (seconds since the epoch).
pub fn parse_since(text: &str, now: f64) -> Result<f64, String> {
    let text = text.trim();
    if let Some(span) = parse_span(text) {
        return Ok(now - span);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis() as f64 / 1000.0);
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local_seconds(naive, text);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return local_seconds(date.and_hms_opt(0, 0, 0).unwrap_or_default(), text);
    }
    Err(format!(
        "--since {text:?} is not a time: give an ISO date or date-time (2026-12-01, \
         2026-12-01T14:30, 2026-12-01T14:30:00+01:00) or a span back from now (90m, 12h, 3d, 2w)"
    ))
}

/// `<number><unit>` with unit s, m, h, d or w, in seconds.
fn parse_span(text: &str) -> Option<f64> {
    let unit = text.chars().last()?;
    let seconds = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        'w' => 7.0 * 86_400.0,
        _ => return None,
    };
    let number: f64 = text[..text.len() - 1].parse().ok()?;
    (number.is_finite() && number >= 0.0).then_some(number * seconds)
}

fn local_seconds(naive: NaiveDateTime, text: &str) -> Result<f64, String> {
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|at| at.timestamp_millis() as f64 / 1000.0)
        .ok_or_else(|| format!("--since {text:?} does not exist in the local time zone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_back_from_now() {
        assert_eq!(
            parse_since("3d", 1_000_000.0),
            Ok(1_000_000.0 - 3.0 * 86_400.0)
        );
        assert_eq!(parse_since("12h", 100_000.0), Ok(100_000.0 - 43_200.0));
        assert_eq!(parse_since("90m", 10_000.0), Ok(10_000.0 - 5_400.0));
        assert_eq!(parse_since("1.5h", 10_000.0), Ok(10_000.0 - 5_400.0));
    }

    #[test]
    fn dates_with_an_offset_are_exact() {
        assert_eq!(parse_since("1970-01-02T00:00:00Z", 0.0), Ok(86_400.0));
        assert_eq!(parse_since("1970-01-02T01:00:00+01:00", 0.0), Ok(86_400.0));
    }

    #[test]
    fn local_dates_and_times_parse() {
        let day = parse_since("2026-12-01", 0.0).unwrap();
        let noon = parse_since("2026-12-01T12:00", 0.0).unwrap();
        assert_eq!(noon - day, 43_200.0);
        assert_eq!(parse_since("2026-12-01 12:00:00", 0.0), Ok(noon));
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_named() {
        for bad in ["", "yesterday", "3x", "-3d", "2026-13-01"] {
            let err = parse_since(bad, 0.0).unwrap_err();
            assert!(err.contains("ISO date"), "{bad}: {err}");
        }
    }
}

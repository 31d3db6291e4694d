//! Numbers for people: counts as `1.23M` and byte sizes as `4.0 KiB`, for summary lines and
//! tables. The JSON outputs keep exact numbers.

/// A count, shortened past 9,999: 1234 → `1234`, 12345 → `12.3k`, 1234567 → `1.23M`.
pub fn figure(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// A byte size in binary units: 512 → `512 B`, 2048 → `2.0 KiB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// Reads a byte size as people write it: `1048576`, `500M`, `1.5G`, `2GiB`, `10 KB`. The
/// units K, M, G and T are powers of 1024 whether written `K`, `KB` or `KiB` (as `bytes` shows
/// them), case-insensitive.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let power = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 1,
        "m" | "mb" | "mib" => 2,
        "g" | "gb" | "gib" => 3,
        "t" | "tb" | "tib" => 4,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use a number with an optional unit K, M, G or T (e.g. 500M, 2G)"
            ))
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size: use a number with an optional unit K, M, G or T (e.g. 500M, 2G)")
    })?;
    let bytes = value * 1024f64.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large a size"));
    }
    // Rounded down to a whole byte: 1.5K is 1536.
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_at_each_boundary() {
        for (n, want) in [
            (0, "0"),
            (9_999, "9999"),
            (10_000, "10.0k"),
            (123_456, "123.5k"),
            (999_999, "1000.0k"),
            (1_000_000, "1.00M"),
            (1_234_567, "1.23M"),
            (1_000_000_000, "1.00G"),
            (u64::MAX, "18446744073.71G"),
        ] {
            assert_eq!(figure(n), want, "{n}");
        }
    }

    #[test]
    fn bytes_at_each_boundary() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1_048_575, "1024.0 KiB"),
            (1_048_576, "1.0 MiB"),
            (5 * 1_048_576 + 1_048_576 / 2, "5.5 MiB"),
            (1_073_741_824, "1.00 GiB"),
        ] {
            assert_eq!(bytes(n), want, "{n}");
        }
    }

    #[test]
    fn sizes_are_read_in_binary_units() {
        for (text, want) in [
            ("0", 0),
            ("1048576", 1_048_576),
            ("500M", 500 * 1_048_576),
            ("1.5K", 1536),
            ("2GiB", 2 * 1_073_741_824),
            ("10 kb", 10_240),
            ("1t", 1_099_511_627_776),
        ] {
            assert_eq!(parse_bytes(text), Ok(want), "{text}");
        }
        for bad in ["", "M", "12X", "-1", "1..2G", "1e400"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}

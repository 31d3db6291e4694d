//! `<run>/system.jsonl`, the run's telemetry samples: one line per sample (`system_line`),
//! appended one `write` at a time (`SystemFile`). The format is docs/run-format.md,
//! "`system.jsonl`"; its writers are `runicorn-agent run` and the resident agent.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file of the run the samples are appended to.
pub const SYSTEM_FILE: &str = "system.jsonl";

/// Values are written rounded to this many decimals (`ts` to the millisecond).
const DECIMALS: i32 = 3;

/// A value rounded to `DECIMALS` decimals (huge values, which have none, as they are).
fn rounded(value: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    if value.abs() < 1e12 {
        (value * scale).round() / scale
    } else {
        value
    }
}

/// A value as JSON: rounded, whole numbers without a fraction (`3`, not `3.0`); `None` when
/// not finite.
fn json_value(value: f64) -> Option<String> {
    let value = rounded(value);
    if !value.is_finite() {
        return None;
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        // Exact: a whole number below 2^53 converts to i64 without loss.
        return Some((value as i64).to_string());
    }
    serde_json::Number::from_f64(value).map(|n| n.to_string())
}

/// One `system.jsonl` line, `\n`-terminated: `{"ts": …, "type": "system", "data": {…}}` with
/// the points in their order. A non-finite value is left out.
pub fn system_line(ts: f64, points: &[(String, f64)]) -> String {
    let ts =
        serde_json::Number::from_f64(rounded(ts)).map_or_else(|| "0".to_owned(), |n| n.to_string());
    let mut line = format!("{{\"ts\": {ts}, \"type\": \"system\", \"data\": {{");
    let mut first = true;
    for (key, value) in points {
        let Some(value) = json_value(*value) else {
            continue;
        };
        if !first {
            line.push_str(", ");
        }
        first = false;
        line.push_str(&serde_json::Value::String(key.clone()).to_string());
        line.push_str(": ");
        line.push_str(&value);
    }
    line.push_str("}}\n");
    line
}

/// Why a sample could not be appended.
#[derive(Debug, thiserror::Error)]
#[error("cannot append a telemetry sample to {}: {source}", path.display())]
pub struct SystemFileError {
    path: PathBuf,
    source: std::io::Error,
}

/// `<run>/system.jsonl`, appended to one line at a time.
///
/// The file is opened for each line (append, create, never through a symbolic link), so a
/// file removed or made writable again is picked up at the next sample. Each line is one
/// `write`; when one stops short (a full disk), the next line starts with a `\n` so that only
/// the torn line is lost to readers.
#[derive(Debug)]
pub struct SystemFile {
    path: PathBuf,
    torn: bool,
}

impl SystemFile {
    pub fn new(run_dir: &Path) -> Self {
        SystemFile {
            path: run_dir.join(SYSTEM_FILE),
            torn: false,
        }
    }

    /// Appends `line` (one `\n`-terminated line).
    pub fn append(&mut self, line: &str) -> Result<(), SystemFileError> {
        let error = |source| SystemFileError {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(error)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if self.torn {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        let written = loop {
            match file.write(&bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match written {
            Ok(n) if n == bytes.len() => {
                self.torn = false;
                Ok(())
            }
            Ok(n) => {
                self.torn |= n > 0;
                Err(error(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("only {n} of {} bytes were written", bytes.len()),
                )))
            }
            Err(e) => Err(error(e)),
        }
    }
}

/// Now, in seconds since the Unix epoch (a line's `ts`).
pub fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_documented_json_object() {
        let points = vec![
            ("sys/cpu_percent".to_owned(), 153.234_567),
            ("sys/rss_mib".to_owned(), 812.5),
            ("sys/procs".to_owned(), 3.0),
            ("sys/gpu.2/util_percent".to_owned(), f64::NAN),
            ("sys/gpu.2/mem_used_mib".to_owned(), 30211.0),
        ];
        let line = system_line(1_795_696_136.312_345, &points);
        assert!(line.ends_with("}}\n") && !line[..line.len() - 1].contains('\n'));
        assert!(
            line.starts_with("{\"ts\": 1795696136.312, \"type\": \"system\""),
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["type"], "system");
        let data = value["data"].as_object().expect("an object");
        assert_eq!(data.len(), 4, "the NaN is left out: {line}");
        assert_eq!(data["sys/cpu_percent"], 153.235);
        assert_eq!(data["sys/rss_mib"], 812.5);
        assert_eq!(
            data["sys/procs"], 3,
            "a whole number is written without a fraction"
        );
        assert!(line.contains("\"sys/procs\": 3,"), "{line}");
        assert_eq!(data["sys/gpu.2/mem_used_mib"].as_f64(), Some(30211.0));
        assert_eq!(
            system_line(5.0, &[]),
            "{\"ts\": 5.0, \"type\": \"system\", \"data\": {}}\n"
        );
    }

    #[test]
    fn lines_are_appended_and_a_failure_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut file = SystemFile::new(dir.path());
        file.append("{\"a\": 1}\n").expect("append");
        file.append("{\"a\": 2}\n").expect("append");
        let text = std::fs::read_to_string(dir.path().join(SYSTEM_FILE)).expect("read");
        assert_eq!(text, "{\"a\": 1}\n{\"a\": 2}\n");

        let gone = dir.path().join("no-such-run");
        let error = SystemFile::new(&gone)
            .append("{}\n")
            .expect_err("no directory");
        assert!(
            error.to_string().contains("no-such-run/system.jsonl"),
            "{error}"
        );
    }

    #[test]
    fn a_link_in_place_of_the_file_is_not_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "").expect("write");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        std::os::unix::fs::symlink(&outside, run.join(SYSTEM_FILE)).expect("symlink");
        assert!(SystemFile::new(&run).append("{}\n").is_err());
        assert_eq!(std::fs::read_to_string(&outside).expect("read"), "");
    }

    #[test]
    fn a_torn_line_is_ended_before_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut file = SystemFile::new(dir.path());
        std::fs::write(dir.path().join(SYSTEM_FILE), "{\"torn\": ").expect("write");
        file.torn = true;
        file.append("{\"a\": 1}\n").expect("append");
        let text = std::fs::read_to_string(dir.path().join(SYSTEM_FILE)).expect("read");
        assert_eq!(text, "{\"torn\": \n{\"a\": 1}\n");
        assert!(!file.torn);
    }
}

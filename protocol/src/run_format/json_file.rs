//! Reading and replacing the small whole-file JSON records of a run.
//!
//! Writers replace a file atomically (temp file in the same directory, fsync, rename), so a
//! reader sees the old or the new version, never half of one. Other writers (upstream's) rewrite
//! in place, so a reader that cannot parse a file waits a moment and reads it once more before
//! calling it malformed. Reading goes through `safe_read` (regular files only, bounded while
//! reading) and cuts values nested too deep (`record_depth`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::record_depth::cut_deep_values;
use super::safe_read::{read_bounded, ReadError};

/// Largest JSON record we read whole (a summary or config can be large, not unbounded).
pub const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// How long a reader waits before its one retry of an unparsable file.
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// Why a record could not be read. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Absent, not a regular file, a link out of the root, too large, or an I/O error.
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: malformed JSON ({cause}); fix or remove the file")]
    Malformed {
        path: PathBuf,
        cause: serde_json::Error,
    },
}

impl RecordError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RecordError::Read(e) if e.is_not_found())
    }
}

/// Reads and parses a JSON record, retrying once after a short pause if it does not parse.
/// A link is followed only within the record's own folder (see [`read_json_in`]).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RecordError> {
    let root = path.parent().unwrap_or_else(|| Path::new("/"));
    read_json_in(path, root)
}

/// Reads and parses a JSON record of a run under the storage root `root` (links are followed
/// only inside it, see [`super::safe_read`]), at most [`MAX_RECORD_BYTES`], retrying once after
/// a short pause if it does not parse. Values nested deeper than
/// [`super::record_depth::MAX_RECORD_DEPTH`] are cut to a placeholder.
pub fn read_json_in<T: DeserializeOwned>(path: &Path, root: &Path) -> Result<T, RecordError> {
    let bytes = read_bounded(path, root, MAX_RECORD_BYTES)?;
    match parse_lenient(&bytes) {
        Ok(value) => Ok(value),
        Err(_) => {
            std::thread::sleep(RETRY_DELAY);
            let bytes = read_bounded(path, root, MAX_RECORD_BYTES)?;
            parse_lenient(&bytes).map_err(|cause| RecordError::Malformed {
                path: path.to_owned(),
                cause,
            })
        }
    }
}

/// Reads a JSON record that may be absent: `Ok(None)` when the file does not exist.
pub fn read_json_if_exists<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RecordError> {
    absent_is_none(read_json(path))
}

/// [`read_json_in`] for a record that may be absent: `Ok(None)` when the file does not exist.
pub fn read_json_in_if_exists<T: DeserializeOwned>(
    path: &Path,
    root: &Path,
) -> Result<Option<T>, RecordError> {
    absent_is_none(read_json_in(path, root))
}

fn absent_is_none<T>(read: Result<T, RecordError>) -> Result<Option<T>, RecordError> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a record: JSON, accepting the bare `NaN`, `Infinity` and `-Infinity` tokens Python
/// writes, which become `null` (whole-file records never need them as numbers), with values
/// nested deeper than the record depth limit cut to a placeholder.
pub fn parse_record_value(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(first) => match super::nonfinite::replace_nonfinite_tokens(bytes, b"null") {
            Some(fixed) => serde_json::from_slice(&fixed).map_err(|_| first)?,
            None => return Err(first),
        },
    };
    cut_deep_values(&mut value);
    Ok(value)
}

fn parse_lenient<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_value(parse_record_value(bytes)?)
}

/// Replaces `path` with `bytes` atomically: a reader sees the old or the new content, and a crash
/// leaves at worst a stray temp file, never a torn record.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as indented JSON (as upstream writes its records) and replaces `path`.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Makes sure a directory's entry for a new file is on disk (after create + rename).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        write_json_atomic(&p, &serde_json::json!({"status": "running"})).unwrap();
        let v: Value = read_json(&p).unwrap();
        assert_eq!(v["status"], "running");
        // No temp files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn malformed_names_the_file_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        fs::write(&p, "{\"id\": ").unwrap();
        let err = read_json::<Value>(&p).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("meta.json") && msg.contains("malformed"),
            "{msg}"
        );
        assert!(read_json_if_exists::<Value>(&dir.path().join("nope.json"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn python_nan_in_a_record_reads_as_null() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        fs::write(&p, "{\"loss\": NaN, \"s\": \"NaN\"}").unwrap();
        let v: Value = read_json(&p).unwrap();
        assert!(v["loss"].is_null());
        assert_eq!(v["s"], "NaN");
    }
}

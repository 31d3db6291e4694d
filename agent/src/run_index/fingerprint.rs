//! File fingerprints: a file's size and modification time, enough to tell that it changed
//! without reading it. Append-only files grow; replaced records get a new mtime.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use runicorn_protocol::run_format::safe_read::kind_of;
use runicorn_protocol::run_format::RunFiles;

/// Size and mtime (ns) of one regular file, or `absent`. Anything else is told apart by its
/// kind (a FIFO, a link, ...), so that a file becoming or ceasing to be one is a change. Only a
/// change detector: the size here never bounds a read.
pub fn file_fingerprint(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => format!("{}:{}.{}", m.len(), m.mtime(), m.mtime_nsec()),
        Ok(m) if m.file_type().is_symlink() => match fs::metadata(path) {
            Ok(t) => format!(
                "link:{}:{}:{}.{}",
                kind_of(&t),
                t.len(),
                t.mtime(),
                t.mtime_nsec()
            ),
            Err(_) => format!("link:dangling:{}.{}", m.mtime(), m.mtime_nsec()),
        },
        Ok(m) => format!("{}:{}.{}", kind_of(&m), m.mtime(), m.mtime_nsec()),
        Err(_) => "absent".to_owned(),
    }
}

/// Fingerprint of the small records (`meta.json`, `status.json`, `.deleted`) together.
pub fn records_fingerprint(files: &RunFiles) -> String {
    format!(
        "m={} s={} d={}",
        file_fingerprint(&files.meta()),
        file_fingerprint(&files.status()),
        file_fingerprint(&files.deleted_marker())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_when_a_file_changes() {
        let t = tempfile::tempdir().unwrap();
        let files = RunFiles::new(t.path());
        let before = records_fingerprint(&files);
        assert_eq!(before, "m=absent s=absent d=absent");
        fs::write(files.status(), "{}").unwrap();
        let after = records_fingerprint(&files);
        assert_ne!(before, after);
        assert!(after.contains("s=2:"));
    }
}

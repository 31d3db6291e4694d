//! File fingerprints: a file's size and modification time, enough to tell that it changed
//! without reading it. Append-only files grow; replaced records get a new mtime.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use runicorn_protocol::run_format::RunFiles;

/// Size and mtime (ns) of one file, or `absent`.
pub fn file_fingerprint(path: &Path) -> String {
    match fs::metadata(path) {
        Ok(m) => format!("{}:{}.{}", m.len(), m.mtime(), m.mtime_nsec()),
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

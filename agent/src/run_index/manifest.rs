//! The file manifest of one run directory: every regular file below it (symbolic links are
//! never followed), with size, modification time and, for files that are replaced rather than
//! appended to, a SHA-256 of the content. A hash is computed once per (path, size, mtime): a
//! walk is handed the previous manifest and reuses its hashes, so re-walking an unchanged run
//! costs one `stat` per file.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Files larger than this are listed without a hash.
pub const HASH_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// Append-only files of a run (relative paths): listed without a hash, since they grow.
pub const APPEND_ONLY: [&str; 2] = ["events.jsonl", "logs.txt"];
/// Deepest folder level below a run directory that is listed.
const MAX_DEPTH: usize = 16;
/// Most files listed for one run (a runaway output folder must not stall the feed).
const MAX_FILES: usize = 100_000;

/// One regular file of a run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the run directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Modification time: whole seconds and nanoseconds (as `stat` gives them).
    pub mtime_s: i64,
    pub mtime_nsec: i64,
    /// Lowercase hex SHA-256, for files that are not append-only and not too large.
    pub sha256: Option<String>,
}

impl ManifestFile {
    /// The same text as the index's file fingerprints (`size:mtime.nsec`).
    pub fn fingerprint(&self) -> String {
        format!("{}:{}.{}", self.size, self.mtime_s, self.mtime_nsec)
    }

    /// Modification time in nanoseconds since the Unix epoch (saturating), as the index stores it.
    pub fn mtime_ns(&self) -> i64 {
        self.mtime_s
            .saturating_mul(1_000_000_000)
            .saturating_add(self.mtime_nsec)
    }

    /// Splits a stored nanosecond time back into seconds and nanoseconds.
    pub fn split_mtime_ns(ns: i64) -> (i64, i64) {
        (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
    }

    fn same_version(&self, size: u64, mtime_s: i64, mtime_nsec: i64) -> bool {
        self.size == size && self.mtime_s == mtime_s && self.mtime_nsec == mtime_nsec
    }
}

/// Whether a file of the run is one of the append-only ones.
pub fn is_append_only(path: &str) -> bool {
    APPEND_ONLY.contains(&path)
}

/// Lists the run directory `dir`. `previous` is the last manifest of the same run, sorted by
/// path (as this function returns it). Fails only when `dir` itself cannot be listed; deeper
/// folders that cannot be listed are skipped.
pub fn walk(dir: &Path, previous: &[ManifestFile]) -> io::Result<Vec<ManifestFile>> {
    let mut out = Vec::new();
    let top = fs::read_dir(dir)?;
    let mut pending: Vec<(fs::ReadDir, String, usize)> = vec![(top, String::new(), 0)];
    while let Some((entries, prefix, depth)) = pending.pop() {
        for entry in entries.flatten() {
            if out.len() >= MAX_FILES {
                break;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Hidden names are temp files of atomic writes (and our own folder); the soft-delete
            // marker is the one hidden file that belongs to the run.
            if name.starts_with('.') && !(depth == 0 && name == ".deleted") {
                continue;
            }
            // `file_type` does not follow links: a link is neither a file nor a folder here.
            let Ok(kind) = entry.file_type() else { continue };
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if kind.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    if let Ok(sub) = fs::read_dir(entry.path()) {
                        pending.push((sub, rel, depth + 1));
                    }
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let old = previous
                .binary_search_by(|f| f.path.as_str().cmp(&rel))
                .ok()
                .map(|i| &previous[i]);
            out.push(describe(&entry.path(), rel, &meta, old));
        }
    }
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Describes one file, reusing the previous hash when size and mtime are unchanged.
fn describe(
    path: &Path,
    rel: String,
    meta: &fs::Metadata,
    old: Option<&ManifestFile>,
) -> ManifestFile {
    let mut file = ManifestFile {
        path: rel,
        size: meta.len(),
        mtime_s: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        sha256: None,
    };
    if is_append_only(&file.path) || file.size > HASH_LIMIT_BYTES {
        return file;
    }
    if let Some(old) = old.filter(|o| o.same_version(file.size, file.mtime_s, file.mtime_nsec)) {
        if old.sha256.is_some() {
            file.sha256 = old.sha256.clone();
            return file;
        }
    }
    if let Ok(Some((meta, sha))) = hash_file(path) {
        // Describe the version that was hashed (it may have been replaced since the listing).
        file.size = meta.len();
        file.mtime_s = meta.mtime();
        file.mtime_nsec = meta.mtime_nsec();
        file.sha256 = Some(sha);
    }
    file
}

/// Hashes a file; `None` when it changed while being read (hashed again on a later walk).
fn hash_file(path: &Path) -> io::Result<Option<(fs::Metadata, String)>> {
    let mut f = File::open(path)?;
    let before = f.metadata()?;
    if !before.is_file() || before.len() > HASH_LIMIT_BYTES {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    let after = f.metadata()?;
    if after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Ok(None);
    }
    Ok(Some((after, hex(&hasher.finalize()))))
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_recursively_without_links_or_temp_files_and_hashes_records() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("meta.json"), "{}").unwrap();
        fs::write(d.join("events.jsonl"), "x\n").unwrap();
        fs::write(d.join(".deleted"), "{}").unwrap();
        fs::write(d.join(".status.json.tmp-1-2"), "{}").unwrap();
        fs::create_dir_all(d.join("media/sub")).unwrap();
        fs::write(d.join("media/sub/a.png"), "png").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("media/link")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
        let files = walk(d, &[]).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [".deleted", "events.jsonl", "media/sub/a.png", "meta.json"]
        );
        let meta = &files[3];
        assert_eq!(
            meta.sha256.as_deref(),
            Some("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        );
        assert!(files[1].sha256.is_none(), "append-only files are not hashed");
    }

    #[test]
    fn hashes_are_reused_for_unchanged_files_and_recomputed_for_changed_ones() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("summary.json"), "{\"a\":1}").unwrap();
        let mut first = walk(t.path(), &[]).unwrap();
        // A planted hash proves reuse: an unchanged file is not read again.
        first[0].sha256 = Some("planted".into());
        let second = walk(t.path(), &first).unwrap();
        assert_eq!(second[0].sha256.as_deref(), Some("planted"));
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(t.path().join("summary.json"), "{\"a\":2}").unwrap();
        let third = walk(t.path(), &second).unwrap();
        assert_ne!(third[0].sha256.as_deref(), Some("planted"));
        assert_eq!(third[0].sha256.as_ref().map(String::len), Some(64));
    }

    #[test]
    fn stored_times_round_trip() {
        for (s, ns) in [(1_795_696_136, 309_000_001), (-1, 500_000_000), (0, 0)] {
            let f = ManifestFile {
                path: "x".into(),
                size: 1,
                mtime_s: s,
                mtime_nsec: ns,
                sha256: None,
            };
            assert_eq!(ManifestFile::split_mtime_ns(f.mtime_ns()), (s, ns));
        }
    }
}

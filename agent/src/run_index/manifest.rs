//! The file manifest of one run directory: every regular file below it (symbolic links are
//! never followed), with size, modification time and, for files that are replaced rather than
//! appended to, a SHA-256 of the content. A hash is computed once per (path, size, mtime): a
//! walk is handed the previous manifest and reuses its hashes and, for folders whose mtime did
//! not move, their listings, so re-walking an unchanged run costs one `stat` per file and
//! folder.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use runicorn_protocol::run_format::names::{escaped_name, wire_name_problem};
use runicorn_protocol::run_format::safe_read::{kind_of, open_regular};
use runicorn_protocol::wire::SkippedEntry;
use sha2::{Digest, Sha256};

/// Files larger than this are listed without a hash.
pub const HASH_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// Append-only files of a run (relative paths): listed without a hash, since they grow; the
/// feed follows them by their own offsets. (`system.jsonl` grows too but is not among them: it
/// is small, and hashing it makes its growth a change of the run that the hub hears of, so the
/// System tab and exports get its current bytes.)
pub const APPEND_ONLY: [&str; 2] = ["events.jsonl", "logs.txt"];
/// The run's JSON records: their bytes are kept when they are hashed, so that the feed can
/// store their values without reading them twice.
pub const RECORD_FILES: [&str; 5] = [
    "meta.json",
    "status.json",
    "summary.json",
    "assets.json",
    "environment.json",
];
/// Largest record whose bytes are kept.
const CAPTURE_LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest folder level below a run directory that is listed.
const MAX_DEPTH: usize = 16;
/// Most files listed for one run (a runaway output folder must not stall the feed).
const MAX_FILES: usize = 100_000;
/// Most skipped entries described for one run (all are counted).
pub const MAX_SKIPPED_LISTED: usize = 100;

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

/// A folder of a run as last listed: its mtime then, and whether that mtime was old enough
/// to trust (a change within the same clock tick as the listing would not move it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDir {
    /// Relative to the run directory (`""` for the run directory itself).
    pub rel: String,
    pub mtime_s: i64,
    pub mtime_nsec: i64,
    pub settled: bool,
}

/// A run directory's files, and the folders they were listed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Sorted by path.
    pub files: Vec<ManifestFile>,
    pub dirs: Vec<ListedDir>,
    /// Bytes of the record files (`RECORD_FILES`) hashed by this walk, as they were hashed.
    pub captured: Vec<(String, Vec<u8>)>,
    /// Entries left out of `files`: names that cannot be put on the wire, and things that are
    /// not regular files (FIFOs, sockets, devices). At most [`MAX_SKIPPED_LISTED`], sorted.
    pub skipped: Vec<SkippedEntry>,
    /// All entries left out (`skipped` lists the first ones).
    pub skipped_total: u64,
}

impl Manifest {
    /// The manifest of a run never seen.
    pub const EMPTY: Manifest = Manifest {
        files: Vec::new(),
        dirs: Vec::new(),
        captured: Vec::new(),
        skipped: Vec::new(),
        skipped_total: 0,
    };

    /// A digest of what a walk that does not hash sees: every file's path, size and mtime, the
    /// folders listed (with their mtimes) and the entries left out. Two manifests with the
    /// same digest list the same versions of the same files, so a run remembered by this
    /// digest alone is unchanged when a walk that only `stat`s gives it again.
    pub fn listing_digest(&self) -> [u8; 16] {
        let mut hasher = Sha256::new();
        for f in &self.files {
            hasher.update(f.path.as_bytes());
            hasher.update([0]);
            hasher.update(f.size.to_le_bytes());
            hasher.update(f.mtime_ns().to_le_bytes());
        }
        hasher.update([1]);
        for d in &self.dirs {
            hasher.update(d.rel.as_bytes());
            hasher.update([0]);
            hasher.update(d.mtime_s.to_le_bytes());
            hasher.update(d.mtime_nsec.to_le_bytes());
            hasher.update([u8::from(d.settled)]);
        }
        hasher.update([1]);
        for s in &self.skipped {
            hasher.update(s.name.as_bytes());
            hasher.update([0]);
            hasher.update(s.reason.as_bytes());
            hasher.update([0]);
        }
        hasher.update(self.skipped_total.to_le_bytes());
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hasher.finalize()[..16]);
        digest
    }

    /// Whether every file that is hashed has its hash (a file that changed while being read,
    /// or could not be opened, is hashed again by a later walk that is handed this manifest).
    pub fn fully_hashed(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.sha256.is_some() || !wants_hash(&f.path, f.size))
    }

    fn skip(&mut self, name: String, reason: String) {
        self.skipped_total += 1;
        if self.skipped.len() < MAX_SKIPPED_LISTED {
            self.skipped.push(SkippedEntry { name, reason });
        }
    }
}

/// A folder whose mtime is older than this at listing time is trusted not to have changed
/// while its mtime stays the same.
const SETTLED_AFTER: Duration = Duration::from_secs(3);

/// Lists the run directory `dir`. `previous` is the last manifest of the same run. With
/// `reuse_listings`, a folder whose mtime is unchanged (and was settled when listed) is not
/// read again: its files are only `stat`ed, so an unchanged run costs one `stat` per file and
/// folder. Fails only when `dir` itself cannot be listed; deeper folders that cannot be listed
/// are skipped.
pub fn walk(dir: &Path, previous: &Manifest, reuse_listings: bool) -> io::Result<Manifest> {
    walk_with(dir, previous, reuse_listings, true)
}

/// Lists the run directory `dir` as [`walk`] does, every folder read, but hashes nothing: each
/// file's `sha256` is `None`. What it gives is enough for [`Manifest::listing_digest`].
pub fn walk_unhashed(dir: &Path) -> io::Result<Manifest> {
    walk_with(dir, &Manifest::default(), false, false)
}

fn walk_with(
    dir: &Path,
    previous: &Manifest,
    reuse_listings: bool,
    hash: bool,
) -> io::Result<Manifest> {
    let mut out = Manifest::default();
    let mut pending: Vec<(PathBuf, String, usize)> = vec![(dir.to_owned(), String::new(), 0)];
    while let Some((abs, rel, depth)) = pending.pop() {
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => m,
            Ok(_) if depth == 0 => return Err(io::ErrorKind::NotFound.into()),
            Err(e) if depth == 0 => return Err(e),
            _ => continue,
        };
        let (mtime_s, mtime_nsec) = (meta.mtime(), meta.mtime_nsec());
        let known = previous.dirs.iter().find(|d| d.rel == rel).filter(|d| {
            reuse_listings && d.settled && d.mtime_s == mtime_s && d.mtime_nsec == mtime_nsec
        });
        let reused = match known {
            Some(listed) => reuse_listing(&abs, listed, previous, depth, &mut out, &mut pending),
            None => false,
        };
        if !reused {
            let skipped_before = out.skipped_total;
            list_folder(&abs, &rel, depth, previous, hash, &mut out, &mut pending)?;
            // A folder with skipped entries is listed again each time (they are not remembered
            // per folder).
            let clean = out.skipped_total == skipped_before;
            let age = SystemTime::now()
                .duration_since(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH))
                .unwrap_or_default();
            out.dirs.push(ListedDir {
                rel,
                mtime_s,
                mtime_nsec,
                settled: clean && age > SETTLED_AFTER,
            });
        }
    }
    out.files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    out.skipped.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Stats the files a folder held when it was listed; `false` (nothing added) when one of them
/// is no longer a regular file, so the folder is listed after all.
fn reuse_listing(
    abs: &Path,
    listed: &ListedDir,
    previous: &Manifest,
    depth: usize,
    out: &mut Manifest,
    pending: &mut Vec<(PathBuf, String, usize)>,
) -> bool {
    let child_of = |path: &str| -> Option<String> {
        let name = if listed.rel.is_empty() {
            path
        } else {
            path.strip_prefix(listed.rel.as_str())?.strip_prefix('/')?
        };
        (!name.contains('/')).then(|| name.to_owned())
    };
    let mut files = Vec::new();
    for old in &previous.files {
        let Some(name) = child_of(&old.path) else {
            continue;
        };
        match fs::symlink_metadata(abs.join(&name)) {
            Ok(meta) if meta.is_file() => files.push(describe(
                &abs.join(&name),
                old.path.clone(),
                &meta,
                Some(old),
                &mut out.captured,
            )),
            _ => return false,
        }
    }
    out.files.extend(files);
    for d in &previous.dirs {
        if let Some(name) = child_of(&d.rel).filter(|_| !d.rel.is_empty()) {
            pending.push((abs.join(name), d.rel.clone(), depth + 1));
        }
    }
    out.dirs.push(listed.clone());
    true
}

/// Reads a folder: its regular files are described, its folders queued.
fn list_folder(
    abs: &Path,
    rel: &str,
    depth: usize,
    previous: &Manifest,
    hash: bool,
    out: &mut Manifest,
    pending: &mut Vec<(PathBuf, String, usize)>,
) -> io::Result<()> {
    let entries = match fs::read_dir(abs) {
        Ok(e) => e,
        Err(e) if depth == 0 => return Err(e),
        Err(_) => return Ok(()),
    };
    for entry in entries.flatten() {
        if out.files.len() >= MAX_FILES {
            break;
        }
        let raw_name = entry.file_name();
        let shown = || {
            let name = escaped_name(&raw_name);
            if rel.is_empty() {
                name
            } else {
                format!("{}/{name}", escaped_name(rel.as_ref()))
            }
        };
        let Some(name) = raw_name.to_str() else {
            out.skip(shown(), "the name is not UTF-8; left out".into());
            continue;
        };
        // Hidden names are temp files of atomic writes (and our own folder); the soft-delete
        // marker is the one hidden file that belongs to the run.
        if name.starts_with('.') && !(depth == 0 && name == ".deleted") {
            continue;
        }
        // `file_type` does not follow links: a link is neither a file nor a folder here.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let child = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        if kind.is_symlink() {
            continue;
        }
        if let Some(problem) = wire_name_problem(&child) {
            out.skip(shown(), format!("{problem}; left out"));
            continue;
        }
        if kind.is_dir() {
            if depth + 1 < MAX_DEPTH {
                pending.push((entry.path(), child, depth + 1));
            }
            continue;
        }
        if !kind.is_file() {
            let what = entry
                .metadata()
                .map_or("not a regular file", |m| kind_of(&m));
            out.skip(
                shown(),
                format!("{what}, not a regular file; left out (remove or replace it)"),
            );
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let old = previous
            .files
            .binary_search_by(|f| f.path.as_str().cmp(&child))
            .ok()
            .map(|i| &previous.files[i]);
        let file = if hash {
            describe(&entry.path(), child, &meta, old, &mut out.captured)
        } else {
            unhashed(child, &meta)
        };
        out.files.push(file);
    }
    Ok(())
}

/// Whether a file of this path and size gets a hash.
fn wants_hash(path: &str, size: u64) -> bool {
    !is_append_only(path) && size <= HASH_LIMIT_BYTES
}

/// A file as `stat` describes it, without a hash.
fn unhashed(rel: String, meta: &fs::Metadata) -> ManifestFile {
    ManifestFile {
        path: rel,
        size: meta.len(),
        mtime_s: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        sha256: None,
    }
}

/// Describes one file, reusing the previous hash when size and mtime are unchanged.
fn describe(
    path: &Path,
    rel: String,
    meta: &fs::Metadata,
    old: Option<&ManifestFile>,
    captured: &mut Vec<(String, Vec<u8>)>,
) -> ManifestFile {
    let mut file = unhashed(rel, meta);
    if !wants_hash(&file.path, file.size) {
        return file;
    }
    if let Some(old) = old.filter(|o| o.same_version(file.size, file.mtime_s, file.mtime_nsec)) {
        if old.sha256.is_some() {
            file.sha256 = old.sha256.clone();
            return file;
        }
    }
    let keep = RECORD_FILES.contains(&file.path.as_str()) && file.size <= CAPTURE_LIMIT_BYTES;
    if let Ok(Some((meta, sha, bytes))) = hash_file(path, keep) {
        // Describe the version that was hashed (it may have been replaced since the listing).
        file.size = meta.len();
        file.mtime_s = meta.mtime();
        file.mtime_nsec = meta.mtime_nsec();
        file.sha256 = Some(sha);
        if let Some(bytes) = bytes {
            captured.push((file.path.clone(), bytes));
        }
    }
    file
}

/// What hashing a file gives: its metadata, the hex hash, and its bytes when asked for.
type Hashed = (fs::Metadata, String, Option<Vec<u8>>);

/// Hashes a file (keeping its bytes when asked); `None` when it changed while being read
/// (hashed again on a later walk).
fn hash_file(path: &Path, keep: bool) -> io::Result<Option<Hashed>> {
    // The walk saw a regular file; the safe opener makes sure it still is one (a FIFO put in
    // its place would block) and never follows a link out of the run.
    let root = path.parent().unwrap_or(path);
    let f = match open_regular(path, root) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let before = f.metadata()?;
    if before.len() > HASH_LIMIT_BYTES {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let keep = keep && before.len() <= CAPTURE_LIMIT_BYTES;
    let mut kept = keep.then(|| Vec::with_capacity(usize::try_from(before.len()).unwrap_or(0)));
    // Bounded while reading: a file that grows past what its size said changed anyway.
    let mut limited = (&f).take(before.len().saturating_add(1));
    let mut total = 0u64;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > before.len() {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&buf[..n]);
        }
    }
    let after = f.metadata()?;
    if total != before.len()
        || after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Ok(None);
    }
    Ok(Some((after, hex(&hasher.finalize()), kept)))
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
        let files = walk(d, &Manifest::default(), true).unwrap().files;
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
        assert!(
            files[1].sha256.is_none(),
            "append-only files are not hashed"
        );
    }

    #[test]
    fn hashes_are_reused_for_unchanged_files_and_recomputed_for_changed_ones() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("summary.json"), "{\"a\":1}").unwrap();
        let mut first = walk(t.path(), &Manifest::default(), true).unwrap();
        // A planted hash proves reuse: an unchanged file is not read again.
        first.files[0].sha256 = Some("planted".into());
        let second = walk(t.path(), &first, true).unwrap();
        assert_eq!(second.files[0].sha256.as_deref(), Some("planted"));
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(t.path().join("summary.json"), "{\"a\":2}").unwrap();
        let third = walk(t.path(), &second, true).unwrap();
        assert_ne!(third.files[0].sha256.as_deref(), Some("planted"));
        assert_eq!(third.files[0].sha256.as_ref().map(String::len), Some(64));
    }

    #[test]
    fn an_unhashed_walk_gives_the_same_digest_until_a_file_or_folder_changes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("media")).unwrap();
        fs::write(d.join("meta.json"), "{}").unwrap();
        fs::write(d.join("events.jsonl"), "{}\n").unwrap();
        fs::write(d.join("media/a.png"), "a").unwrap();
        let hashed = walk(d, &Manifest::default(), true).unwrap();
        assert!(hashed.fully_hashed());
        let bare = walk_unhashed(d).unwrap();
        assert!(bare.files.iter().all(|f| f.sha256.is_none()));
        assert!(!bare.fully_hashed(), "meta.json wants a hash");
        assert_eq!(bare.listing_digest(), hashed.listing_digest());
        // Content that changes keeps no digest: a grown file, a new one, a removed folder.
        fs::write(d.join("media/a.png"), "ab").unwrap();
        let grown = walk_unhashed(d).unwrap().listing_digest();
        assert_ne!(grown, hashed.listing_digest());
        fs::write(d.join("summary.json"), "{}").unwrap();
        let added = walk_unhashed(d).unwrap().listing_digest();
        assert_ne!(added, grown);
        fs::remove_dir_all(d.join("media")).unwrap();
        assert_ne!(walk_unhashed(d).unwrap().listing_digest(), added);
    }

    /// Sets a path's mtime to long ago, so its listing counts as settled.
    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::open(path).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn settled_folders_are_not_listed_again_until_their_mtime_moves() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("media/empty")).unwrap();
        fs::write(d.join("meta.json"), "{}").unwrap();
        fs::write(d.join("media/a.png"), "a").unwrap();
        for p in [d.join("media/empty"), d.join("media"), d.to_owned()] {
            age(&p);
        }
        let first = walk(d, &Manifest::default(), true).unwrap();
        assert_eq!(first.dirs.len(), 3);
        assert!(first.dirs.iter().all(|l| l.settled));
        // Proof of reuse: a file planted into the remembered listing is stat'ed, not listed.
        let mut planted = first.clone();
        planted.files.retain(|f| f.path != "media/a.png");
        let second = walk(d, &planted, true).unwrap();
        assert_eq!(second.files.len(), 1, "media was not read again");
        assert_eq!(walk(d, &planted, false).unwrap().files, first.files);
        // A new file moves the folder's mtime: it is listed again (and is not settled).
        fs::write(d.join("media/b.png"), "b").unwrap();
        let third = walk(d, &first, true).unwrap();
        assert_eq!(third.files.len(), 3);
        assert!(third.dirs.iter().any(|l| l.rel == "media" && !l.settled));
        // A file replaced by a folder is noticed even through a reused listing.
        let fourth = walk(d, &third, true).unwrap();
        assert_eq!(fourth.files, third.files);
        assert!(matches!(
            walk(&d.join("nope"), &Manifest::default(), true),
            Err(e) if e.kind() == io::ErrorKind::NotFound
        ));
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

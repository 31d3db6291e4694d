//! The bundle reader: reads a bundle from any `Read` into a caller's empty temporary directory,
//! checking everything, and refuses hostile or damaged bundles with a [`BundleError`] naming the
//! member.
//!
//! Contract: `dest` must be an existing, empty directory (a fresh temporary directory of the
//! caller). The reader writes only below it: contents are staged in `dest/.staging/`, then every
//! carried member `<i>/<path>` is placed at `dest/<i>/<path>`, so that `dest/<i>` is laid out as
//! the storage root of source `i` ([`ReadBundle::source_root`]), and the staging directory is
//! removed. On success `dest` holds one directory per source (with every run directory of it)
//! and exactly the manifest's carried members, each checked against its size and SHA-256;
//! omitted members are listed but not landed. On any error the reader removes everything it
//! created, leaving `dest` empty; the caller may also simply remove `dest`. Members that share
//! bytes are written as separate copies (never hard links, so appending to one file never
//! changes another).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::format::{
    content_entry_name, content_sha_of_entry, is_sha256_hex, member_path, split_member_path,
    Manifest, Source, ARTIFACTS_DIR, CONTENTS_DIR, FORMAT_VERSION, MANIFEST_NAME,
};
use crate::limits::Limits;
use crate::paths::check_member_path;
use crate::writer::hex;

/// What a read bundle held and where its members landed.
#[derive(Debug, Clone)]
pub struct ReadBundle {
    pub manifest: Manifest,
    /// In the manifest's order.
    pub members: Vec<LandedMember>,
}

impl ReadBundle {
    /// Where source `index` of a bundle read into `dest` is laid out as a storage root.
    pub fn source_root(dest: &Path, index: usize) -> PathBuf {
        dest.join(index.to_string())
    }
}

/// One member of a read bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct LandedMember {
    /// The member path of the manifest (`<source index>/<root-relative path>`).
    pub path: String,
    /// The index of its source in the manifest's `sources`.
    pub source: usize,
    /// The path relative to its source's root (`runs/<run dir>/<file>`).
    pub root_path: String,
    pub size: u64,
    pub sha256: String,
    /// Where its checked bytes are (`dest/<source>/<root_path>`), or `None` when the member is
    /// omitted (listed, not carried).
    pub location: Option<PathBuf>,
    /// The modification time the manifest gives (seconds since the Unix epoch), when it is a
    /// plausible one; a landed file carries it.
    pub mtime: Option<f64>,
}

/// The staging directory inside `dest` (never a source index, so never a source root).
const STAGING_DIR: &str = ".staging";
/// Name used in errors for problems not inside one member.
const STREAM: &str = "(bundle stream)";
/// Bytes accepted after the tar's end marker (zero padding only).
const MAX_TRAILING_BYTES: u64 = 1 << 20;

/// Reads and checks the bundle `input` into the empty directory `dest` (see the module doc for
/// the contract).
pub fn read_bundle<R: Read>(
    input: R,
    dest: &Path,
    limits: &Limits,
) -> Result<ReadBundle, BundleError> {
    into_empty_dir(dest, || read_into(input, dest, limits))
}

/// Runs `read`, which writes only below `dest`, once `dest` is checked to be an existing,
/// empty directory, and empties it again when `read` fails: the all-or-nothing contract every
/// reader of this crate keeps.
pub(crate) fn into_empty_dir<T>(
    dest: &Path,
    read: impl FnOnce() -> Result<T, BundleError>,
) -> Result<T, BundleError> {
    let empty = fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir())
        && fs::read_dir(dest).is_ok_and(|mut entries| entries.next().is_none());
    if !empty {
        return Err(BundleError::DestinationNotEmpty {
            path: dest.to_path_buf(),
        });
    }
    let result = read();
    if result.is_err() {
        clear(dest);
    }
    result
}

/// Removes everything inside `dest` (which was empty when the reader started).
fn clear(dest: &Path) {
    if let Ok(entries) = fs::read_dir(dest) {
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let _ = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// The manifest's view of one content.
pub(crate) struct Expected {
    size: u64,
    /// The first member path holding it (errors about the content name it).
    member: String,
    seen: bool,
}

/// Running totals for the bomb limits.
struct Totals<'a> {
    limits: &'a Limits,
    compressed: Rc<Cell<u64>>,
    uncompressed: u64,
}

impl Totals<'_> {
    fn add(&mut self, n: u64, member: &str) -> Result<(), BundleError> {
        self.uncompressed = self.uncompressed.saturating_add(n);
        if self.uncompressed > self.limits.max_total_bytes {
            return Err(BundleError::TotalSizeExceeded {
                member: member.to_owned(),
                limit: self.limits.max_total_bytes,
            });
        }
        if self.uncompressed > self.limits.ratio_grace_bytes
            && self.uncompressed / self.compressed.get().max(1) > self.limits.max_ratio
        {
            return Err(BundleError::CompressionRatioExceeded {
                member: member.to_owned(),
                limit: self.limits.max_ratio,
            });
        }
        Ok(())
    }
}

fn read_into<R: Read>(input: R, dest: &Path, limits: &Limits) -> Result<ReadBundle, BundleError> {
    let compressed = Rc::new(Cell::new(0));
    let counting = Counting {
        inner: input,
        count: Rc::clone(&compressed),
    };
    let decoder = zstd::Decoder::new(counting).map_err(|e| stream_error(e, STREAM))?;
    let mut archive = tar::Archive::new(decoder);
    let mut totals = Totals {
        limits,
        compressed,
        uncompressed: 0,
    };
    let mut entries = archive.entries().map_err(|e| stream_error(e, STREAM))?;

    let manifest = match entries.next() {
        None => {
            return Err(BundleError::Truncated {
                member: MANIFEST_NAME.to_owned(),
            })
        }
        Some(entry) => {
            let entry = entry.map_err(|e| stream_error(e, MANIFEST_NAME))?;
            read_manifest(entry, &mut totals)?
        }
    };
    let Checked {
        mut expected,
        omitted,
    } = check_manifest(&manifest, limits)?;

    let staging = dest.join(STAGING_DIR);
    let mut last = MANIFEST_NAME.to_owned();
    for entry in entries {
        let entry = entry.map_err(|e| stream_error(e, &format!("(after {last})")))?;
        let name = entry_name(&entry)?;
        check_entry_kind(&entry, &name)?;
        if name == MANIFEST_NAME {
            return Err(BundleError::DuplicateMember { member: name });
        }
        let Some(sha) = content_sha_of_entry(&name).map(str::to_owned) else {
            return Err(BundleError::UnlistedMember { member: name });
        };
        let Some(content) = expected.get_mut(&sha) else {
            if let Some(member) = omitted.get(&sha) {
                return Err(BundleError::OmittedContent {
                    member: member.clone(),
                });
            }
            return Err(BundleError::UnlistedMember { member: name });
        };
        if content.seen {
            return Err(BundleError::DuplicateMember { member: name });
        }
        content.seen = true;
        let header_size = entry.header().size().map_err(|e| BundleError::Corrupt {
            member: name.clone(),
            reason: format!("unreadable size in its tar header: {e}"),
        })?;
        if header_size != content.size {
            return Err(BundleError::SizeMismatch {
                member: content.member.clone(),
                expected: content.size,
                what: "its tar header says",
                actual: header_size,
            });
        }
        let member = content.member.clone();
        stage_content(entry, &staging, &sha, header_size, &member, &mut totals)?;
        last = name;
    }
    archive_trailer(archive, &last)?;

    if let Some(missing) = expected.values().find(|c| !c.seen) {
        return Err(BundleError::MissingMember {
            member: missing.member.clone(),
        });
    }
    let members = place_members(&manifest, dest, &staging)?;
    fs::remove_dir_all(&staging).map_err(|source| BundleError::WriteFile {
        path: staging.clone(),
        source,
    })?;
    Ok(ReadBundle { manifest, members })
}

/// Reads what follows the tar's end marker: only zero padding (bounded) and the end of the zstd
/// frame, whose checksum the decoder then verifies.
fn archive_trailer<R: Read>(archive: tar::Archive<R>, last: &str) -> Result<(), BundleError> {
    let mut rest = archive.into_inner().take(MAX_TRAILING_BYTES + 1);
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    let member = format!("(after {last})");
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_error(e, &member)),
        };
        total += n as u64;
        if total > MAX_TRAILING_BYTES || buf[..n].iter().any(|&b| b != 0) {
            return Err(BundleError::Corrupt {
                member,
                reason: "data after the end of the archive".to_owned(),
            });
        }
    }
    Ok(())
}

/// An I/O error of the compressed stream: truncation or damage.
fn stream_error(e: io::Error, member: &str) -> BundleError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        BundleError::Truncated {
            member: member.to_owned(),
        }
    } else {
        BundleError::Corrupt {
            member: member.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// The entry's path, raw (the tar crate's long-name handling applied) and checked.
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, BundleError> {
    let raw = entry.path_bytes();
    let name = std::str::from_utf8(&raw).map_err(|_| BundleError::InvalidPath {
        member: String::from_utf8_lossy(&raw).into_owned(),
        reason: "not UTF-8".to_owned(),
    })?;
    check_member_path(name, name)?;
    Ok(name.to_owned())
}

/// Refuses every entry that is not a regular file.
fn check_entry_kind<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<(), BundleError> {
    let member = name.to_owned();
    match entry.header().entry_type() {
        tar::EntryType::Regular => Ok(()),
        tar::EntryType::Symlink => Err(BundleError::Symlink { member }),
        tar::EntryType::Link => Err(BundleError::HardLink { member }),
        tar::EntryType::Char => Err(BundleError::SpecialFile {
            member,
            kind: "character device".to_owned(),
        }),
        tar::EntryType::Block => Err(BundleError::SpecialFile {
            member,
            kind: "block device".to_owned(),
        }),
        tar::EntryType::Fifo => Err(BundleError::SpecialFile {
            member,
            kind: "FIFO".to_owned(),
        }),
        tar::EntryType::Directory => Err(BundleError::SpecialFile {
            member,
            kind: "directory entry".to_owned(),
        }),
        other => Err(BundleError::SpecialFile {
            member,
            kind: format!("tar entry of type {:?}", other.as_byte() as char),
        }),
    }
}

/// Reads and parses the first entry, which must be `bundle.json`.
fn read_manifest<R: Read>(
    mut entry: tar::Entry<'_, R>,
    totals: &mut Totals<'_>,
) -> Result<Manifest, BundleError> {
    let raw = entry.path_bytes();
    if &raw[..] != MANIFEST_NAME.as_bytes() {
        return Err(BundleError::ManifestNotFirst {
            found: String::from_utf8_lossy(&raw).into_owned(),
        });
    }
    check_entry_kind(&entry, MANIFEST_NAME)?;
    let size = entry
        .header()
        .size()
        .map_err(|e| BundleError::ManifestInvalid {
            reason: format!("unreadable size in its tar header: {e}"),
        })?;
    if size > totals.limits.max_manifest_bytes {
        return Err(BundleError::ManifestTooLarge {
            size,
            limit: totals.limits.max_manifest_bytes,
        });
    }
    let mut bytes = Vec::new();
    (&mut entry)
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| stream_error(e, MANIFEST_NAME))?;
    if bytes.len() as u64 != size {
        return Err(BundleError::Truncated {
            member: MANIFEST_NAME.to_owned(),
        });
    }
    totals.add(size, MANIFEST_NAME)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| BundleError::ManifestInvalid {
            reason: e.to_string(),
        })?;
    match value.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(version) => return Err(BundleError::UnknownFormatVersion { version }),
        None => {
            return Err(BundleError::ManifestInvalid {
                reason: "no numeric format_version".to_owned(),
            })
        }
    }
    serde_json::from_value(value).map_err(|e| BundleError::ManifestInvalid {
        reason: e.to_string(),
    })
}

/// What a checked manifest expects of the tar.
pub(crate) struct Checked {
    /// The carried contents by SHA-256.
    expected: BTreeMap<String, Expected>,
    /// The first omitted member of each SHA-256 no carried member has.
    omitted: BTreeMap<String, String>,
}

/// Checks the manifest on its own (sources, paths and where they may lie, duplicates, agreeing
/// sizes, the declared total) and returns the contents it expects by SHA-256. The writer runs it
/// too, so it never writes a bundle the reader refuses.
pub(crate) fn check_manifest(manifest: &Manifest, limits: &Limits) -> Result<Checked, BundleError> {
    for (index, source) in manifest.sources.iter().enumerate() {
        check_source(index, source)?;
    }
    let mut paths = BTreeSet::new();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    let mut omitted: BTreeMap<String, String> = BTreeMap::new();
    let mut declared = 0u64;
    for member in &manifest.members {
        let path = &member.path;
        check_member_path(path, path)?;
        check_member_place(manifest, path)?;
        if !is_sha256_hex(&member.sha256) {
            return Err(BundleError::Corrupt {
                member: path.clone(),
                reason: "its sha256 in the manifest is not lowercase hex".to_owned(),
            });
        }
        if !paths.insert(path.as_str()) {
            return Err(BundleError::DuplicateMember {
                member: path.clone(),
            });
        }
        if member.omitted {
            omitted
                .entry(member.sha256.clone())
                .or_insert_with(|| path.clone());
            continue;
        }
        match expected.get(&member.sha256) {
            Some(content) if content.size != member.size => {
                return Err(BundleError::SizeMismatch {
                    member: path.clone(),
                    expected: member.size,
                    what: "another member with the same SHA-256 says",
                    actual: content.size,
                })
            }
            Some(_) => {}
            None => {
                declared = declared.saturating_add(member.size);
                if declared > limits.max_total_bytes {
                    return Err(BundleError::TotalSizeExceeded {
                        member: path.clone(),
                        limit: limits.max_total_bytes,
                    });
                }
                expected.insert(
                    member.sha256.clone(),
                    Expected {
                        size: member.size,
                        member: path.clone(),
                        seen: false,
                    },
                );
            }
        }
    }
    omitted.retain(|sha, _| !expected.contains_key(sha));
    // a run directory (created by the reader) may not be a member file
    for (index, source) in manifest.sources.iter().enumerate() {
        for run in &source.runs {
            let as_member = member_path(index, run);
            if paths.contains(as_member.as_str()) {
                return Err(BundleError::PathConflict { member: as_member });
            }
        }
    }
    // a member may not sit where another member needs a directory
    for path in &paths {
        let mut prefix = String::new();
        for component in path.split('/') {
            if !prefix.is_empty() {
                if paths.contains(prefix.as_str()) {
                    return Err(BundleError::PathConflict {
                        member: prefix.clone(),
                    });
                }
                prefix.push('/');
            }
            prefix.push_str(component);
        }
    }
    Ok(Checked { expected, omitted })
}

/// Checks one source: a name, relative run directories (none below `artifacts/`), relative
/// artifact version directories under `artifacts/`, annotations of its own runs.
fn check_source(index: usize, source: &Source) -> Result<(), BundleError> {
    let invalid = |member: &str, reason: String| BundleError::InvalidPath {
        member: member.to_owned(),
        reason,
    };
    if source.name.trim().is_empty() {
        return Err(BundleError::ManifestInvalid {
            reason: format!("source {index} has an empty name"),
        });
    }
    for run in &source.runs {
        check_member_path(run, run)?;
        if run == ARTIFACTS_DIR || run.starts_with(&format!("{ARTIFACTS_DIR}/")) {
            return Err(invalid(
                run,
                format!("a run directory of source {index} lies under {ARTIFACTS_DIR}/"),
            ));
        }
    }
    for version in &source.artifact_versions {
        check_member_path(&version.dir, &version.dir)?;
        if !version.dir.starts_with(&format!("{ARTIFACTS_DIR}/")) {
            return Err(invalid(
                &version.dir,
                format!("an artifact directory of source {index} lies outside {ARTIFACTS_DIR}/"),
            ));
        }
    }
    for annotation in &source.annotations {
        if !source.runs.contains(&annotation.run) {
            return Err(invalid(
                &annotation.run,
                format!("annotated, but not one of the runs of source {index}"),
            ));
        }
    }
    Ok(())
}

/// Checks that member `path` is `<source index>/<path>` with an existing source, and lies inside
/// one of that source's runs, or under `artifacts/` when the source lists artifact versions.
fn check_member_place(manifest: &Manifest, path: &str) -> Result<(), BundleError> {
    let invalid = |reason: String| BundleError::InvalidPath {
        member: path.to_owned(),
        reason,
    };
    let Some((index, rest)) = split_member_path(path) else {
        return Err(invalid(
            "member paths start with their source's index (`0/runs/...`)".to_owned(),
        ));
    };
    let Some(source) = manifest.sources.get(index) else {
        return Err(invalid(format!(
            "source index {index} is out of range (the bundle has {} sources)",
            manifest.sources.len()
        )));
    };
    let in_run = source.runs.iter().any(|run| {
        rest.strip_prefix(run.as_str())
            .is_some_and(|r| r.starts_with('/'))
    });
    let in_artifacts =
        !source.artifact_versions.is_empty() && rest.starts_with(&format!("{ARTIFACTS_DIR}/"));
    if !in_run && !in_artifacts {
        return Err(invalid(format!(
            "not inside one of the runs of source {index}{}",
            if source.artifact_versions.is_empty() {
                ""
            } else {
                " nor under artifacts/"
            }
        )));
    }
    Ok(())
}

/// Copies one content entry to `staging/<sha[:2]>/<sha>`, enforcing the limits and checking its
/// size and SHA-256.
fn stage_content<R: Read>(
    mut entry: tar::Entry<'_, R>,
    staging: &Path,
    sha: &str,
    size: u64,
    member: &str,
    totals: &mut Totals<'_>,
) -> Result<(), BundleError> {
    let target = staging.join(
        content_entry_name(sha)
            .trim_start_matches(CONTENTS_DIR)
            .trim_start_matches('/'),
    );
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::WriteFile { path, source }
    };
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(write_error(parent))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(write_error(&target))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_error(e, member)),
        };
        read += n as u64;
        totals.add(n as u64, member)?;
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(write_error(&target))?;
    }
    if read != size {
        return Err(BundleError::Truncated {
            member: member.to_owned(),
        });
    }
    file.flush().map_err(write_error(&target))?;
    let actual = hex(&hasher.finalize());
    if actual != sha {
        return Err(BundleError::ChecksumMismatch {
            member: member.to_owned(),
            expected: sha.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// Creates every source root and run directory, then puts every carried member at
/// `dest/<source>/<path>`: the first member of a content takes the staged file, the others a
/// copy of it.
fn place_members(
    manifest: &Manifest,
    dest: &Path,
    staging: &Path,
) -> Result<Vec<LandedMember>, BundleError> {
    let native = |base: PathBuf, rel: &str| rel.split('/').fold(base, |p, c| p.join(c));
    for (index, source) in manifest.sources.iter().enumerate() {
        let root = ReadBundle::source_root(dest, index);
        for dir in std::iter::once(root.clone())
            .chain(source.runs.iter().map(|run| native(root.clone(), run)))
        {
            fs::create_dir_all(&dir).map_err(|source| BundleError::WriteFile {
                path: dir.clone(),
                source,
            })?;
        }
    }
    let mut placed: BTreeMap<&str, PathBuf> = BTreeMap::new();
    let mut members = Vec::with_capacity(manifest.members.len());
    for member in &manifest.members {
        // checked by check_manifest before any content was read
        let Some((source, root_path)) = split_member_path(&member.path) else {
            return Err(BundleError::InvalidPath {
                member: member.path.clone(),
                reason: "no source index".to_owned(),
            });
        };
        let mut landed = LandedMember {
            path: member.path.clone(),
            source,
            root_path: root_path.to_owned(),
            size: member.size,
            sha256: member.sha256.clone(),
            location: None,
            mtime: member.mtime.filter(|t| plausible_mtime(*t)),
        };
        if member.omitted {
            members.push(landed);
            continue;
        }
        let location = native(ReadBundle::source_root(dest, source), root_path);
        let write_error = |source| BundleError::WriteFile {
            path: location.clone(),
            source,
        };
        if let Some(parent) = location.parent() {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        match placed.get(member.sha256.as_str()) {
            Some(first) => {
                fs::copy(first, &location).map_err(write_error)?;
            }
            None => {
                let staged = staging.join(
                    content_entry_name(&member.sha256)
                        .trim_start_matches(CONTENTS_DIR)
                        .trim_start_matches('/'),
                );
                fs::rename(&staged, &location).map_err(write_error)?;
                placed.insert(&member.sha256, location.clone());
            }
        }
        if let Some(t) = landed.mtime {
            // Best effort: a time that cannot be set leaves the landing time, nothing worse.
            if let Ok(file) = fs::File::options().write(true).open(&location) {
                let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs_f64(t));
            }
        }
        landed.location = Some(location);
        members.push(landed);
    }
    Ok(members)
}

/// A modification time worth giving a file: finite, after the epoch, before the year 5000.
fn plausible_mtime(t: f64) -> bool {
    t.is_finite() && (0.0..95_617_584_000.0).contains(&t)
}

/// Counts the bytes read through it (the compressed side, for the ratio limit).
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;

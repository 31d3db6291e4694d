//! Upstream runicorn's own export archives (`docs/run-format.md`, "Upstream export archives"):
//! `runicorn export` writes a gzip tar and the upstream viewer's export button a zip, each
//! holding run directories at their paths under upstream's storage root. This module tells the
//! kinds of file apart ([`sniff_kind`]) and reads either archive into an empty directory laid
//! out as a storage root ([`read_upstream_archive`]), with the bundle reader's safety rules:
//! every entry is checked (UTF-8 name, no traversal, no absolute path, regular files and
//! directories only, no duplicate, no file where a directory is needed, sizes, bombs, damage),
//! refused with the entry named, and nothing is left in the directory on error.
//!
//! [`landing`] owns the staging tree and the choice of what lands; [`tar_gz`] and [`zip`] read
//! the two containers.

mod landing;
mod tar_gz;
mod zip;

#[cfg(test)]
mod tests;

use std::io::{self, Read, Seek};
use std::path::Path;

use crate::error::BundleError;
use crate::limits::Limits;

/// The two archive formats upstream runicorn exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// `runicorn export` (a tar compressed with gzip).
    TarGz,
    /// The upstream viewer's export download (a zip of deflated entries).
    Zip,
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// Our bundle (a zstd frame).
    Bundle,
    /// An upstream export archive.
    Upstream(UpstreamKind),
}

/// Magic bytes of a zstd frame (our bundles).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Magic bytes of a gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];
/// A zip's first local file header.
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// Tells our bundles, gzip tars and zips apart by their first bytes (4 are enough); `None` for
/// anything else (including an empty zip, which holds no run).
pub fn sniff_kind(first: &[u8]) -> Option<ArchiveKind> {
    if first.starts_with(&ZSTD_MAGIC) {
        Some(ArchiveKind::Bundle)
    } else if first.starts_with(&GZIP_MAGIC) {
        Some(ArchiveKind::Upstream(UpstreamKind::TarGz))
    } else if first.starts_with(&ZIP_MAGIC) {
        Some(ArchiveKind::Upstream(UpstreamKind::Zip))
    } else {
        None
    }
}

/// A stream whose first bytes were read by [`sniff_stream`], with them put back in front.
pub type Resniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// [`sniff_kind`] on a stream (stdin, a pipe): reads its first bytes and gives them back in
/// front of the rest, so the whole stream can then go to the reader of its kind.
pub fn sniff_stream<R: Read>(mut input: R) -> io::Result<(Option<ArchiveKind>, Resniffed<R>)> {
    let mut first = [0u8; 4];
    let mut got = 0;
    while got < first.len() {
        match input.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = sniff_kind(&first[..got]);
    Ok((kind, io::Cursor::new(first[..got].to_vec()).chain(input)))
}

/// What an upstream archive held and where it landed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamRead {
    /// The run directories landed, relative to `dest` (`runs/<path…>/<run_id>`, or the legacy
    /// `<project>/<name>/runs/<run_id>`), sorted.
    pub runs: Vec<String>,
    /// The host that wrote the runs (`hostname` of their `meta.json`), when every run with a
    /// readable `meta.json` names the same one.
    pub host: Option<String>,
    /// Upstream's storage root on that host (`storage_dir` of their `meta.json`), on the same
    /// terms.
    pub root: Option<String>,
    /// Files of the archive outside every run directory (left out, not landed), sorted.
    pub skipped: Vec<String>,
    /// Files landed and their total size in bytes.
    pub files: u64,
    pub bytes: u64,
}

/// Reads the upstream export archive `input` of `kind` into `dest`, which must be an existing,
/// empty directory (a fresh temporary directory of the caller): on success `dest` is a storage
/// root holding the archive's run directories at their paths (see [`UpstreamRead`]); on any
/// error `dest` is left empty. Entries are staged under `dest/.staging` first; only whole run
/// directories are moved out of it.
///
/// A zip is read from its central directory at the end, so the input must be seekable (spool a
/// pipe to a temporary file first); a gzip tar is read as a stream.
pub fn read_upstream_archive<R: Read + Seek>(
    input: R,
    kind: UpstreamKind,
    dest: &Path,
    limits: &Limits,
) -> Result<UpstreamRead, BundleError> {
    match kind {
        UpstreamKind::TarGz => read_upstream_tar_gz(input, dest, limits),
        UpstreamKind::Zip => guarded(dest, |landing| zip::read(input, landing, limits)),
    }
}

/// [`read_upstream_archive`] for a gzip tar, from any stream (stdin, a pipe).
pub fn read_upstream_tar_gz<R: Read>(
    input: R,
    dest: &Path,
    limits: &Limits,
) -> Result<UpstreamRead, BundleError> {
    guarded(dest, |landing| tar_gz::read(input, landing, limits))
}

/// Checks that `dest` is empty, runs `read` against a fresh landing, finishes it, and empties
/// `dest` again on any error.
fn guarded(
    dest: &Path,
    read: impl FnOnce(&mut landing::Landing) -> Result<(), BundleError>,
) -> Result<UpstreamRead, BundleError> {
    crate::reader::into_empty_dir(dest, || {
        landing::Landing::new(dest).and_then(|mut landing| {
            read(&mut landing)?;
            landing.finish()
        })
    })
}

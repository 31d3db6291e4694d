//! Reading a gzip tar (`runicorn export`) as a stream into a [`Landing`]: regular files and
//! directories only, the bomb limits enforced on every decompressed byte (headers and long
//! names included), the tar's end marker required, only zero padding after it, and the gzip
//! checksums verified to the end of the input.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use flate2::bufread::MultiGzDecoder;

use super::landing::{entry_name, EntryName, Landing};
use crate::error::BundleError;
use crate::limits::Limits;

/// Name used in errors for problems before the first entry.
const STREAM: &str = "(gzip stream)";
/// Bytes accepted after the tar's end marker (zero padding only).
const MAX_TRAILING_BYTES: u64 = 1 << 20;

/// Which limit the guard tripped.
#[derive(Debug, Clone, Copy)]
enum Tripped {
    Total,
    Ratio,
}

/// State shared between the readers of the layers and the entry loop.
#[derive(Default)]
struct Shared {
    compressed: Cell<u64>,
    tripped: Cell<Option<Tripped>>,
    decompressed_eof: Cell<bool>,
}

/// Counts the compressed bytes read from the input.
struct Counting<R> {
    inner: R,
    shared: Rc<Shared>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let count = &self.shared.compressed;
        count.set(count.get() + n as u64);
        Ok(n)
    }
}

/// Enforces the total-size and ratio limits on the decompressed stream, and notes its end.
struct Guard<R> {
    inner: R,
    shared: Rc<Shared>,
    limits: Limits,
    uncompressed: u64,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.shared.decompressed_eof.set(true);
            return Ok(0);
        }
        self.uncompressed += n as u64;
        let tripped = if self.uncompressed > self.limits.max_total_bytes {
            Some(Tripped::Total)
        } else if self.uncompressed > self.limits.ratio_grace_bytes
            && self.uncompressed / self.shared.compressed.get().max(1) > self.limits.max_ratio
        {
            Some(Tripped::Ratio)
        } else {
            None
        };
        if let Some(tripped) = tripped {
            self.shared.tripped.set(Some(tripped));
            return Err(io::Error::other("over the archive's size limits"));
        }
        Ok(n)
    }
}

/// Reads the gzip tar `input` into `landing`.
pub(super) fn read<R: Read>(
    input: R,
    landing: &mut Landing,
    limits: &Limits,
) -> Result<(), BundleError> {
    let shared = Rc::new(Shared::default());
    let counting = Counting {
        inner: input,
        shared: Rc::clone(&shared),
    };
    let guard = Guard {
        inner: MultiGzDecoder::new(BufReader::new(counting)),
        shared: Rc::clone(&shared),
        limits: *limits,
        uncompressed: 0,
    };
    let error = |e: io::Error, member: &str| stream_error(e, member, &shared, limits);
    let mut archive = tar::Archive::new(guard);
    let entries = archive.entries().map_err(|e| error(e, STREAM))?;
    let mut last = String::new();
    let after = |last: &str| {
        if last.is_empty() {
            STREAM.to_owned()
        } else {
            format!("(after {last})")
        }
    };
    for entry in entries {
        let entry = entry.map_err(|e| error(e, &after(&last)))?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            continue; // archive-wide metadata (`git archive` writes one), names no file
        }
        let raw = entry.path_bytes().into_owned();
        let name = entry_name(&raw)?;
        let member = String::from_utf8_lossy(&raw).into_owned();
        check_kind(&entry, &member)?;
        let kind = entry.header().entry_type();
        match name {
            EntryName::Root if kind.is_dir() => {}
            EntryName::Root => {
                return Err(BundleError::InvalidPath {
                    member,
                    reason: "a file named like the archive's root".to_owned(),
                })
            }
            EntryName::Path { path, .. } if kind.is_dir() => landing.add_dir(&path)?,
            EntryName::Path { path, dir_suffix } => {
                if dir_suffix {
                    return Err(BundleError::InvalidPath {
                        member,
                        reason: "a file whose name ends with `/`".to_owned(),
                    });
                }
                let size = entry.size();
                landing.add_file(&path, size, entry, |e| error(e, &path))?;
            }
        }
        last = member;
    }
    if shared.decompressed_eof.get() {
        // tar's reader stops quietly at the end of its input; a complete archive ends with its
        // zero blocks instead
        return Err(BundleError::Truncated {
            member: after(&last),
        });
    }
    trailer(archive.into_inner(), &after(&last), &error)
}

/// Refuses every entry that is neither a regular file nor a directory.
fn check_kind<R: Read>(entry: &tar::Entry<'_, R>, member: &str) -> Result<(), BundleError> {
    let member = member.to_owned();
    let special = |kind: &str| BundleError::SpecialFile {
        member: member.clone(),
        kind: kind.to_owned(),
    };
    match entry.header().entry_type() {
        tar::EntryType::Regular | tar::EntryType::Directory => Ok(()),
        tar::EntryType::Symlink => Err(BundleError::Symlink { member }),
        tar::EntryType::Link => Err(BundleError::HardLink { member }),
        tar::EntryType::Char => Err(special("character device")),
        tar::EntryType::Block => Err(special("block device")),
        tar::EntryType::Fifo => Err(special("FIFO")),
        other => Err(special(&format!(
            "tar entry of type {:?}",
            other.as_byte() as char
        ))),
    }
}

/// Reads what follows the tar's end marker to the end of the input: zero padding only
/// (bounded); the gzip decoder verifies each member's CRC and length on the way.
fn trailer<R: Read>(
    mut rest: R,
    member: &str,
    error: &impl Fn(io::Error, &str) -> BundleError,
) -> Result<(), BundleError> {
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error(e, member)),
        };
        total += n as u64;
        if total > MAX_TRAILING_BYTES || buf[..n].iter().any(|&b| b != 0) {
            return Err(BundleError::Corrupt {
                member: member.to_owned(),
                reason: "data after the end of the tar archive".to_owned(),
            });
        }
    }
}

/// An I/O error of the stream: a tripped limit, truncation or damage.
fn stream_error(e: io::Error, member: &str, shared: &Shared, limits: &Limits) -> BundleError {
    let member = member.to_owned();
    match shared.tripped.get() {
        Some(Tripped::Total) => BundleError::TotalSizeExceeded {
            member,
            limit: limits.max_total_bytes,
        },
        Some(Tripped::Ratio) => BundleError::CompressionRatioExceeded {
            member,
            limit: limits.max_ratio,
        },
        None if e.kind() == io::ErrorKind::UnexpectedEof => BundleError::Truncated { member },
        None => BundleError::Corrupt {
            member,
            reason: e.to_string(),
        },
    }
}

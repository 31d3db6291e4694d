//! Reading a zip (the upstream viewer's export) into a [`Landing`]. The central directory is
//! parsed here (zip64 included) so that nothing is taken on trust: every entry's local header
//! must agree with its central record (name, method, and CRC and sizes unless they follow in a
//! data descriptor), entries may not overlap (the overlapping-entry bomb), encrypted and
//! multi-disk archives and methods other than stored and deflate are refused, the declared
//! sizes are held to the limits before anything is written, and each entry must decompress to
//! exactly its declared size and CRC-32.

use std::io::{self, Read, Seek, SeekFrom};

use flate2::read::DeflateDecoder;

use super::landing::{entry_name, EntryName, Landing};
use crate::error::BundleError;
use crate::limits::Limits;

/// Name used in errors about the archive's structure.
const DIRECTORY: &str = "(zip central directory)";

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: u64 = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
const ZIP64_EXTRA: u16 = 0x0001;
const FLAG_ENCRYPTED: u16 = 0x0001;
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
const FLAG_STRONG_ENCRYPTION: u16 = 0x0040;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATE: u16 = 8;
/// `version made by` high byte of a Unix zip (its external attributes hold a mode).
const MADE_BY_UNIX: u8 = 3;

/// One entry of the central directory.
struct CentralEntry {
    name_raw: Vec<u8>,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    header_offset: u64,
    made_by_unix: bool,
    external_attr: u32,
}

/// Reads the zip `input` into `landing`.
pub(super) fn read<R: Read + Seek>(
    mut input: R,
    landing: &mut Landing,
    limits: &Limits,
) -> Result<(), BundleError> {
    let io_error = |e: io::Error, member: &str| {
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
    };
    let file_len = input
        .seek(SeekFrom::End(0))
        .map_err(|e| io_error(e, DIRECTORY))?;
    let (entries, cd_offset) = central_directory(&mut input, file_len, limits)?;
    check_limits(&entries, file_len, limits)?;

    // each entry: its name, kind, local header and place, before anything is written
    let mut planned = Vec::with_capacity(entries.len());
    for entry in &entries {
        let member = String::from_utf8_lossy(&entry.name_raw).into_owned();
        let name = entry_name(&entry.name_raw)?;
        let is_dir = check_kind(entry, &name, &member)?;
        let data_start = local_header(&mut input, entry, &member, cd_offset)?;
        planned.push((entry, member, name, is_dir, data_start));
    }
    check_overlaps(&planned)?;

    for (entry, member, name, is_dir, data_start) in planned {
        let EntryName::Path { path, .. } = name else {
            continue; // the root directory itself
        };
        if is_dir {
            landing.add_dir(&path)?;
            continue;
        }
        input
            .seek(SeekFrom::Start(data_start))
            .map_err(|e| io_error(e, &member))?;
        let raw = (&mut input).take(entry.compressed);
        let data: Box<dyn Read + '_> = match entry.method {
            METHOD_STORED => Box::new(raw),
            _ => Box::new(DeflateDecoder::new(raw)),
        };
        let mut checked = Checked {
            inner: data.take(entry.size.saturating_add(1)),
            crc: crc32fast::Hasher::new(),
        };
        landing.add_file(&path, entry.size, &mut checked, |e| io_error(e, &member))?;
        let actual = checked.crc.finalize();
        if actual != entry.crc {
            return Err(BundleError::Corrupt {
                member,
                reason: format!(
                    "its bytes have CRC-32 {actual:08x}, the archive says {:08x}",
                    entry.crc
                ),
            });
        }
    }
    Ok(())
}

/// Hashes (CRC-32) what is read through it.
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

fn corrupt(member: &str, reason: impl Into<String>) -> BundleError {
    BundleError::Corrupt {
        member: member.to_owned(),
        reason: reason.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn read_at<R: Read + Seek>(
    input: &mut R,
    offset: u64,
    len: usize,
    member: &str,
) -> Result<Vec<u8>, BundleError> {
    let mut buf = vec![0u8; len];
    input
        .seek(SeekFrom::Start(offset))
        .and_then(|_| input.read_exact(&mut buf))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BundleError::Truncated {
                    member: member.to_owned(),
                }
            } else {
                corrupt(member, e.to_string())
            }
        })?;
    Ok(buf)
}

/// Finds the end records and parses every central directory entry; returns them and where the
/// directory starts.
fn central_directory<R: Read + Seek>(
    input: &mut R,
    file_len: u64,
    limits: &Limits,
) -> Result<(Vec<CentralEntry>, u64), BundleError> {
    // the end record: 22 bytes and a comment of at most 65535, at the very end
    let tail_len = file_len.min(EOCD_LEN + 0xFFFF);
    let tail = read_at(input, file_len - tail_len, tail_len as usize, DIRECTORY)?;
    let eocd_at = (0..tail.len().saturating_sub(EOCD_LEN as usize - 1))
        .rev()
        .find(|&i| {
            u32_at(&tail, i) == EOCD_SIG
                && i + EOCD_LEN as usize + usize::from(u16_at(&tail, i + 20)) == tail.len()
        })
        .ok_or_else(|| BundleError::Truncated {
            member: "(zip end of central directory record)".to_owned(),
        })?;
    let eocd = &tail[eocd_at..];
    let eocd_offset = file_len - tail_len + eocd_at as u64;
    let (disk, cd_disk) = (u16_at(eocd, 4), u16_at(eocd, 6));
    let mut count = u64::from(u16_at(eocd, 10));
    let mut cd_size = u64::from(u32_at(eocd, 12));
    let mut cd_offset = u64::from(u32_at(eocd, 16));
    let mut cd_end = eocd_offset;
    if disk != 0 || cd_disk != 0 || u16_at(eocd, 8) != u16_at(eocd, 10) {
        return Err(corrupt(DIRECTORY, "a multi-disk zip is not supported"));
    }
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        // zip64: a locator just before the end record points at the zip64 end record
        let locator_at = eocd_offset
            .checked_sub(20)
            .ok_or_else(|| corrupt(DIRECTORY, "zip64 end locator missing"))?;
        let locator = read_at(input, locator_at, 20, DIRECTORY)?;
        if u32_at(&locator, 0) != EOCD64_LOCATOR_SIG {
            return Err(corrupt(DIRECTORY, "zip64 end locator missing"));
        }
        let record_at = u64_at(&locator, 8);
        if record_at.checked_add(56).is_none_or(|end| end > locator_at) {
            return Err(corrupt(DIRECTORY, "zip64 end record out of place"));
        }
        let record = read_at(input, record_at, 56, DIRECTORY)?;
        if u32_at(&record, 0) != EOCD64_SIG {
            return Err(corrupt(DIRECTORY, "zip64 end record missing"));
        }
        count = u64_at(&record, 32);
        cd_size = u64_at(&record, 40);
        cd_offset = u64_at(&record, 48);
        cd_end = record_at;
    }
    if cd_offset.checked_add(cd_size) != Some(cd_end) {
        return Err(corrupt(
            DIRECTORY,
            "the central directory is not where the end record says (data prepended, or damage)",
        ));
    }
    if cd_size > limits.max_manifest_bytes {
        return Err(corrupt(
            DIRECTORY,
            format!(
                "{cd_size} bytes, over the limit of {}",
                limits.max_manifest_bytes
            ),
        ));
    }
    let cd = read_at(input, cd_offset, cd_size as usize, DIRECTORY)?;
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at < cd.len() {
        let (entry, len) = central_entry(&cd[at..])?;
        entries.push(entry);
        at += len;
    }
    if entries.len() as u64 != count {
        return Err(corrupt(
            DIRECTORY,
            format!(
                "the end record counts {count} entries, the directory holds {}",
                entries.len()
            ),
        ));
    }
    Ok((entries, cd_offset))
}

/// Parses one central directory record; returns it and its length.
fn central_entry(b: &[u8]) -> Result<(CentralEntry, usize), BundleError> {
    if b.len() < CENTRAL_LEN || u32_at(b, 0) != CENTRAL_SIG {
        return Err(corrupt(DIRECTORY, "a damaged central directory record"));
    }
    let name_len = usize::from(u16_at(b, 28));
    let extra_len = usize::from(u16_at(b, 30));
    let comment_len = usize::from(u16_at(b, 32));
    let len = CENTRAL_LEN + name_len + extra_len + comment_len;
    if b.len() < len {
        return Err(corrupt(
            DIRECTORY,
            "a central directory record runs past its end",
        ));
    }
    let name_raw = b[CENTRAL_LEN..CENTRAL_LEN + name_len].to_vec();
    let member = String::from_utf8_lossy(&name_raw).into_owned();
    if u16_at(b, 34) != 0 {
        return Err(corrupt(&member, "a multi-disk zip is not supported"));
    }
    let extra = &b[CENTRAL_LEN + name_len..CENTRAL_LEN + name_len + extra_len];
    let mut size = u64::from(u32_at(b, 24));
    let mut compressed = u64::from(u32_at(b, 20));
    let mut header_offset = u64::from(u32_at(b, 42));
    let zip64 = zip64_field(extra, &member)?;
    let mut fields = zip64.iter().copied();
    for value in [&mut size, &mut compressed, &mut header_offset] {
        if *value == 0xFFFF_FFFF {
            *value = fields
                .next()
                .ok_or_else(|| corrupt(&member, "a zip64 size or offset is missing"))?;
        }
    }
    let entry = CentralEntry {
        name_raw,
        flags: u16_at(b, 8),
        method: u16_at(b, 10),
        crc: u32_at(b, 16),
        compressed,
        size,
        header_offset,
        made_by_unix: b[5] == MADE_BY_UNIX,
        external_attr: u32_at(b, 38),
    };
    Ok((entry, len))
}

/// The 64-bit values of an extra field's zip64 record (empty when it has none).
fn zip64_field(extra: &[u8], member: &str) -> Result<Vec<u64>, BundleError> {
    let mut at = 0usize;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at);
        let len = usize::from(u16_at(extra, at + 2));
        let body = extra
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| corrupt(member, "an extra field runs past its end"))?;
        if id == ZIP64_EXTRA {
            return Ok(body.chunks_exact(8).map(|c| u64_at(c, 0)).collect());
        }
        at += 4 + len;
    }
    Ok(Vec::new())
}

/// Holds the declared sizes to the limits: total, and ratio against the archive's size.
fn check_limits(
    entries: &[CentralEntry],
    file_len: u64,
    limits: &Limits,
) -> Result<(), BundleError> {
    let mut total = 0u64;
    for entry in entries {
        let member = String::from_utf8_lossy(&entry.name_raw).into_owned();
        total = total.saturating_add(entry.size);
        if total > limits.max_total_bytes {
            return Err(BundleError::TotalSizeExceeded {
                member,
                limit: limits.max_total_bytes,
            });
        }
        if total > limits.ratio_grace_bytes && total / file_len.max(1) > limits.max_ratio {
            return Err(BundleError::CompressionRatioExceeded {
                member,
                limit: limits.max_ratio,
            });
        }
    }
    Ok(())
}

/// Refuses encryption, unknown methods, links and special files; tells whether the entry is a
/// directory.
fn check_kind(entry: &CentralEntry, name: &EntryName, member: &str) -> Result<bool, BundleError> {
    if entry.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 {
        return Err(corrupt(member, "encrypted entries are not supported"));
    }
    if entry.method != METHOD_STORED && entry.method != METHOD_DEFLATE {
        return Err(corrupt(
            member,
            format!(
                "compression method {} is not supported (stored and deflate are)",
                entry.method
            ),
        ));
    }
    let mode = if entry.made_by_unix {
        entry.external_attr >> 16
    } else {
        0
    };
    let member_owned = member.to_owned();
    let special = |kind: &str| BundleError::SpecialFile {
        member: member_owned.clone(),
        kind: kind.to_owned(),
    };
    let mode_dir = match mode & 0o170_000 {
        0 | 0o100_000 => false,
        0o040_000 => true,
        0o120_000 => {
            return Err(BundleError::Symlink {
                member: member.to_owned(),
            })
        }
        0o020_000 => return Err(special("character device")),
        0o060_000 => return Err(special("block device")),
        0o010_000 => return Err(special("FIFO")),
        0o140_000 => return Err(special("socket")),
        other => return Err(special(&format!("file of mode {other:o}"))),
    };
    let named_dir = match name {
        EntryName::Root => true,
        EntryName::Path { dir_suffix, .. } => *dir_suffix,
    };
    if named_dir != mode_dir && mode != 0 {
        return Err(corrupt(
            member,
            "its name and its mode disagree on whether it is a directory",
        ));
    }
    if named_dir && entry.size != 0 {
        return Err(corrupt(member, "a directory entry with content"));
    }
    Ok(named_dir)
}

/// Reads and checks an entry's local header against its central record; returns where its
/// data starts.
fn local_header<R: Read + Seek>(
    input: &mut R,
    entry: &CentralEntry,
    member: &str,
    cd_offset: u64,
) -> Result<u64, BundleError> {
    let head = read_at(input, entry.header_offset, LOCAL_LEN, member)?;
    if u32_at(&head, 0) != LOCAL_SIG {
        return Err(corrupt(
            member,
            "no local header where the central directory says",
        ));
    }
    let name_len = usize::from(u16_at(&head, 26));
    let extra_len = usize::from(u16_at(&head, 28));
    let rest = read_at(
        input,
        entry.header_offset + LOCAL_LEN as u64,
        name_len + extra_len,
        member,
    )?;
    let disagree = |what: &str| {
        corrupt(
            member,
            format!("its local header and the central directory disagree on its {what}"),
        )
    };
    if rest[..name_len] != entry.name_raw[..] {
        return Err(disagree("name"));
    }
    let flags = u16_at(&head, 6);
    if flags & FLAG_DATA_DESCRIPTOR != entry.flags & FLAG_DATA_DESCRIPTOR
        || flags & FLAG_ENCRYPTED != 0
    {
        return Err(disagree("flags"));
    }
    if u16_at(&head, 8) != entry.method {
        return Err(disagree("compression method"));
    }
    if flags & FLAG_DATA_DESCRIPTOR == 0 {
        let zip64 = zip64_field(&rest[name_len..], member)?;
        let mut fields = zip64.iter().copied();
        let mut size = u64::from(u32_at(&head, 22));
        let mut compressed = u64::from(u32_at(&head, 18));
        for value in [&mut size, &mut compressed] {
            if *value == 0xFFFF_FFFF {
                *value = fields.next().ok_or_else(|| disagree("sizes"))?;
            }
        }
        if u32_at(&head, 14) != entry.crc {
            return Err(disagree("CRC-32"));
        }
        if size != entry.size || compressed != entry.compressed {
            return Err(disagree("sizes"));
        }
    }
    let data_start = entry.header_offset + (LOCAL_LEN + name_len + extra_len) as u64;
    if data_start
        .checked_add(entry.compressed)
        .is_none_or(|end| end > cd_offset)
    {
        return Err(corrupt(member, "its bytes run into the central directory"));
    }
    Ok(data_start)
}

/// Refuses entries whose bytes overlap another entry's (the overlapping-entry zip bomb reuses
/// one compressed stream for many entries).
fn check_overlaps(
    planned: &[(&CentralEntry, String, EntryName, bool, u64)],
) -> Result<(), BundleError> {
    let mut spans: Vec<(u64, u64, &str)> = planned
        .iter()
        .map(|(entry, member, _, _, data_start)| {
            (
                entry.header_offset,
                data_start + entry.compressed,
                member.as_str(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        let ((_, end, _), (next_start, _, next)) = (pair[0], pair[1]);
        if next_start < end {
            return Err(corrupt(next, "its bytes overlap another entry's"));
        }
    }
    Ok(())
}

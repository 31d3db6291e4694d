//! Hostile and damaged bundles, built by hand, for the tests of programs that import bundles
//! (`runicorn-hub import`, the dashboard): every case the reader must refuse, with the member a
//! refusal names. Nothing in this crate reads them; the reader's own tests build theirs apart.

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::format::{content_entry_name, Manifest, ManifestMember, Source, FORMAT_VERSION};
use crate::writer::hex;

/// One hostile bundle: what it tries, its bytes, and the member a refusal must name.
#[derive(Debug, Clone)]
pub struct HostileBundle {
    pub case: &'static str,
    pub bytes: Vec<u8>,
    pub member: String,
}

/// One tar entry with a raw name (the tar crate's checks bypassed).
pub(crate) struct Raw {
    pub(crate) name: Vec<u8>,
    pub(crate) kind: EntryType,
    pub(crate) data: Vec<u8>,
    pub(crate) header_size: Option<u64>,
}

pub(crate) fn raw(name: &str, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind: EntryType::Regular,
        data: data.to_vec(),
        header_size: None,
    }
}

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn content(bytes: &[u8]) -> Raw {
    raw(&content_entry_name(&sha(bytes)), bytes)
}

/// A manifest of one source `hostile` with the run `runs/r` and these members (the reader's
/// own tests build on it too).
pub(crate) fn manifest_of(members: &[(&str, &[u8])]) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        created_at: 0.0,
        created_by: "hostile".to_owned(),
        sources: vec![Source {
            name: "hostile".to_owned(),
            host: "hostile.lab".to_owned(),
            root: "/data/runicorn".to_owned(),
            runs: vec!["runs/r".to_owned()],
            artifact_versions: Vec::new(),
            annotations: Vec::new(),
        }],
        members: members
            .iter()
            .map(|(path, bytes)| ManifestMember {
                path: (*path).to_owned(),
                size: bytes.len() as u64,
                sha256: sha(bytes),
                omitted: false,
                mtime: None,
            })
            .collect(),
    }
}

pub(crate) fn manifest_entry(manifest: &Manifest) -> Raw {
    // serialising a manifest of plain values cannot fail
    raw(
        "bundle.json",
        &serde_json::to_vec(manifest).unwrap_or_default(),
    )
}

pub(crate) fn bundle(entries: Vec<Raw>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        let n = entry.name.len().min(name.len());
        name[..n].copy_from_slice(&entry.name[..n]);
        header.set_size(entry.header_size.unwrap_or(entry.data.len() as u64));
        header.set_entry_type(entry.kind);
        header.set_mode(0o644);
        if matches!(entry.kind, EntryType::Symlink | EntryType::Link) {
            let _ = header.set_link_name("/etc/passwd");
        }
        header.set_cksum();
        // appending to a Vec cannot fail
        let _ = builder.append(&header, &entry.data[..]);
    }
    let tar = builder.into_inner().unwrap_or_default();
    zstd::encode_all(&tar[..], 3).unwrap_or_default()
}

const DATA: &[u8] = b"some run bytes";
const MEMBER: &str = "0/runs/r/a.txt";

fn good() -> Vec<Raw> {
    vec![
        manifest_entry(&manifest_of(&[(MEMBER, DATA)])),
        content(DATA),
    ]
}

fn with_kind(kind: EntryType) -> (Vec<u8>, String) {
    let name = content_entry_name(&sha(DATA));
    let mut entry = raw(&name, b"");
    entry.kind = kind;
    (
        bundle(vec![manifest_entry(&manifest_of(&[(MEMBER, DATA)])), entry]),
        name,
    )
}

/// A well-formed bundle of the same shape as the hostile ones (one run, one file).
pub fn well_formed() -> Vec<u8> {
    bundle(good())
}

/// Every hostile case, each refused by the reader under its default limits.
pub fn hostile_bundles() -> Vec<HostileBundle> {
    let case = |case, bytes, member: &str| HostileBundle {
        case,
        bytes,
        member: member.to_owned(),
    };
    let mut out = Vec::new();

    let mut entries = good();
    entries.push(raw("contents/../../escape", b"x"));
    out.push(case(
        "path traversal in the tar",
        bundle(entries),
        "contents/../../escape",
    ));

    out.push(case(
        "path traversal in the manifest",
        bundle(vec![
            manifest_entry(&manifest_of(&[("0/runs/../../escape", DATA)])),
            content(DATA),
        ]),
        "0/runs/../../escape",
    ));

    let mut entries = good();
    entries.push(raw("/tmp/runicorn-hostile-absolute", b"x"));
    out.push(case(
        "an absolute path",
        bundle(entries),
        "/tmp/runicorn-hostile-absolute",
    ));

    for (what, kind) in [
        ("a symbolic link", EntryType::Symlink),
        ("a hard link", EntryType::Link),
        ("a character device", EntryType::Char),
        ("a block device", EntryType::Block),
        ("a FIFO", EntryType::Fifo),
    ] {
        let (bytes, name) = with_kind(kind);
        out.push(case(what, bytes, &name));
    }

    let mut entries = good();
    entries.push(content(DATA));
    out.push(case(
        "a duplicate entry in the tar",
        bundle(entries),
        &content_entry_name(&sha(DATA)),
    ));

    out.push(case(
        "a duplicate member in the manifest",
        bundle(vec![
            manifest_entry(&manifest_of(&[(MEMBER, DATA), (MEMBER, DATA)])),
            content(DATA),
        ]),
        MEMBER,
    ));

    let mut manifest = manifest_of(&[(MEMBER, DATA)]);
    manifest.members[0].size = 1000;
    out.push(case(
        "a size that lies",
        bundle(vec![manifest_entry(&manifest), content(DATA)]),
        MEMBER,
    ));

    let other = b"other run byte";
    let mut manifest = manifest_of(&[(MEMBER, DATA)]);
    manifest.members[0].sha256 = sha(other);
    out.push(case(
        "a checksum mismatch",
        bundle(vec![
            manifest_entry(&manifest),
            raw(&content_entry_name(&sha(other)), DATA),
        ]),
        MEMBER,
    ));

    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let whole = bundle(vec![
        manifest_entry(&manifest_of(&[("0/runs/r/big", &big)])),
        content(&big),
    ]);
    out.push(case(
        "a truncated bundle",
        whole[..whole.len() * 2 / 3].to_vec(),
        "0/runs/r/big",
    ));

    let mut manifest = manifest_of(&[(MEMBER, DATA)]);
    manifest.format_version = FORMAT_VERSION + 1;
    out.push(case(
        "an unknown format version",
        bundle(vec![manifest_entry(&manifest), content(DATA)]),
        "bundle.json",
    ));

    out.push(case(
        "a manifest member missing from the tar",
        bundle(vec![
            manifest_entry(&manifest_of(&[
                (MEMBER, DATA),
                ("0/runs/r/gone.txt", b"gone"),
            ])),
            content(DATA),
        ]),
        "0/runs/r/gone.txt",
    ));

    let mut entries = good();
    entries.push(content(b"stowaway"));
    out.push(case(
        "a tar entry the manifest does not name",
        bundle(entries),
        &content_entry_name(&sha(b"stowaway")),
    ));

    // 80 MiB of zeros in a few KiB: past the 64 MiB grace, the ratio is far over 1000.
    let zeros = vec![0u8; 80 << 20];
    out.push(case(
        "a decompression bomb",
        bundle(vec![
            manifest_entry(&manifest_of(&[("0/runs/r/zeros", &zeros)])),
            content(&zeros),
        ]),
        "0/runs/r/zeros",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_bundle, Limits};

    #[test]
    fn every_case_is_refused_naming_its_member_and_the_well_formed_one_reads() {
        for bundle in hostile_bundles() {
            let dest = tempfile::tempdir().unwrap();
            let err = read_bundle(&bundle.bytes[..], dest.path(), &Limits::default())
                .expect_err(bundle.case);
            assert_eq!(
                err.member(),
                Some(bundle.member.as_str()),
                "{}: {err}",
                bundle.case
            );
            assert_eq!(
                std::fs::read_dir(dest.path()).unwrap().count(),
                0,
                "{}",
                bundle.case
            );
        }
        let dest = tempfile::tempdir().unwrap();
        read_bundle(&well_formed()[..], dest.path(), &Limits::default()).unwrap();
    }
}

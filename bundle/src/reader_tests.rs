//! Tests of the writer and the reader together: round trips, streaming, every hostile case
//! built by hand with the `tar` crate, and a proptest over damaged and random bundles.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::*;
use crate::format::{Annotation, ArtifactVersionRef, ManifestMember, Source};
use crate::writer::{write_bundle, Omit, OmittedFile, SourceInput, WriteOptions};

fn options() -> WriteOptions {
    WriteOptions {
        zstd_level: 3,
        created_by: "runicorn-bundle tests".to_owned(),
    }
}

/// A source of `root` bundling `runs`, carrying everything.
fn source(root: &Path, runs: &[&str]) -> SourceInput {
    SourceInput {
        name: "gpu-1".to_owned(),
        host: "gpu-1.lab".to_owned(),
        root_label: "/data/runicorn".to_owned(),
        dir: root.to_owned(),
        runs: runs.iter().map(|r| (*r).to_owned()).collect(),
        ..Default::default()
    }
}

const RUN_A: &str = "proj/exp/runs/20250101_000000_aaaaaa";
const RUN_B: &str = "proj/exp/runs/20250102_000000_bbbbbb";

/// A root with two runs, nested files and contents shared between and within runs.
fn sample_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let files: &[(&str, &[u8])] = &[
        ("meta.json", b"{\"status\":\"finished\"}"),
        (
            "events.jsonl",
            b"{\"step\":1,\"loss\":0.5}\n{\"step\":2,\"loss\":0.25}\n",
        ),
        ("logs.txt", b"hello\nworld\n"),
        ("media/deep/er/img.bin", &[7u8; 3000]),
        ("media/copy.bin", &[7u8; 3000]),
    ];
    for run in [RUN_A, RUN_B] {
        for (path, bytes) in files {
            let path = root.path().join(run).join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }
    fs::write(root.path().join(RUN_B).join("only_b.txt"), b"b").unwrap();
    root
}

fn write_sample() -> (tempfile::TempDir, Vec<u8>) {
    let root = sample_root();
    let sources = [source(root.path(), &[RUN_A, RUN_B])];
    let (bytes, _) = write_bundle(&sources, &options(), Vec::new()).unwrap();
    (root, bytes)
}

fn read(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, Result<ReadBundle, BundleError>) {
    let dest = tempfile::tempdir().unwrap();
    let result = read_bundle(bytes, dest.path(), limits);
    (dest, result)
}

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn tar_names(bundle: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(zstd::Decoder::new(bundle).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                walk(base, &entry.path(), out);
            } else {
                let rel = entry.path().strip_prefix(base).unwrap().to_owned();
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn round_trip_two_runs_with_nested_files_and_shared_contents() {
    let (root, bytes) = write_sample();
    let (dest, result) = read(&bytes, &Limits::default());
    let read = result.unwrap();
    assert_eq!(read.manifest.format_version, 1);
    assert_eq!(read.manifest.created_by, "runicorn-bundle tests");
    assert_eq!(read.manifest.sources.len(), 1);
    assert_eq!(read.manifest.sources[0].name, "gpu-1");
    assert_eq!(read.manifest.sources[0].host, "gpu-1.lab");
    assert_eq!(read.manifest.sources[0].root, "/data/runicorn");
    assert_eq!(
        read.manifest.sources[0].runs,
        vec![RUN_A.to_owned(), RUN_B.to_owned()]
    );
    assert_eq!(read.members.len(), 11);
    let root0 = ReadBundle::source_root(dest.path(), 0);
    assert_eq!(root0, dest.path().join("0"));
    for member in &read.members {
        assert_eq!(member.source, 0);
        assert_eq!(member.path, format!("0/{}", member.root_path));
        let location = member.location.as_ref().unwrap();
        assert_eq!(*location, root0.join(&member.root_path));
        assert_eq!(
            fs::read(location).unwrap(),
            fs::read(root.path().join(&member.root_path)).unwrap()
        );
    }
    let landed = files_under(dest.path());
    let expected: BTreeSet<String> = read.members.iter().map(|m| m.path.clone()).collect();
    assert_eq!(landed, expected, "exactly the members, no staging left");

    // dedup: 11 members, 5 distinct contents, each stored once after the manifest
    let names = tar_names(&bytes);
    assert_eq!(names[0], "bundle.json");
    let distinct: BTreeSet<&str> = read.members.iter().map(|m| m.sha256.as_str()).collect();
    assert_eq!(distinct.len(), 5);
    assert_eq!(names.len(), 1 + distinct.len());
    assert!(names[1..].iter().all(|n| n.starts_with("contents/")));
}

#[test]
fn writer_skips_symlinks_and_fifos_and_says_so() {
    let root = sample_root();
    let run = root.path().join(RUN_A);
    std::os::unix::fs::symlink("/etc/passwd", run.join("link")).unwrap();
    let fifo = run.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let (_, report) =
        write_bundle(&[source(root.path(), &[RUN_A])], &options(), Vec::new()).unwrap();
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        skipped,
        vec![format!("{RUN_A}/fifo"), format!("{RUN_A}/link")]
    );
    assert!(report
        .manifest
        .members
        .iter()
        .all(|m| !m.path.ends_with("link") && !m.path.ends_with("fifo")));
}

#[test]
fn writer_refuses_a_run_directory_that_escapes_or_is_a_link() {
    let root = sample_root();
    std::os::unix::fs::symlink(root.path().join(RUN_A), root.path().join("alias")).unwrap();
    for run in ["../x", "/abs", "alias", "missing"] {
        let err = write_bundle(&[source(root.path(), &[run])], &options(), Vec::new()).unwrap_err();
        assert!(
            matches!(err, BundleError::InvalidRunDir { .. }),
            "{run}: {err}"
        );
    }
}

/// A pipe: the writer's thread sends small pieces, the reader receives them.
struct PipeWriter(mpsc::SyncSender<Vec<u8>>);
impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(500);
        self.0
            .send(buf[..n].to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
struct PipeReader(mpsc::Receiver<Vec<u8>>, Vec<u8>);
impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(piece) => self.1 = piece,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len()).min(97);
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

#[test]
fn streams_through_a_pipe() {
    let root = sample_root();
    let (tx, rx) = mpsc::sync_channel(2);
    let root_path = root.path().to_owned();
    let writer = std::thread::spawn(move || {
        let sources = [source(&root_path, &[RUN_A, RUN_B])];
        write_bundle(&sources, &options(), PipeWriter(tx)).map(|(_, report)| report)
    });
    let dest = tempfile::tempdir().unwrap();
    let read = read_bundle(PipeReader(rx, Vec::new()), dest.path(), &Limits::default()).unwrap();
    let report = writer.join().unwrap().unwrap();
    assert_eq!(report.manifest, read.manifest);
    assert_eq!(report.contents, 5);
    for member in &read.members {
        assert_eq!(
            fs::read(member.location.as_ref().unwrap()).unwrap(),
            fs::read(root.path().join(&member.root_path)).unwrap()
        );
    }
}

#[test]
fn refuses_a_destination_that_is_not_empty() {
    let (_root, bytes) = write_sample();
    let dest = tempfile::tempdir().unwrap();
    fs::write(dest.path().join("x"), b"x").unwrap();
    let err = read_bundle(&bytes[..], dest.path(), &Limits::default()).unwrap_err();
    assert!(matches!(err, BundleError::DestinationNotEmpty { .. }));
    assert!(
        dest.path().join("x").exists(),
        "the caller's file is left alone"
    );
}

// ---------- hostile bundles built by hand ----------

use crate::hostile::{bundle as hand_bundle, content, manifest_entry, manifest_of, raw, Raw};

/// Reads a hostile bundle: it must fail, name `member`, and leave the destination empty.
fn refused(bytes: &[u8], limits: &Limits, member: &str) -> BundleError {
    let (dest, result) = read(bytes, limits);
    let err = result.expect_err("a hostile bundle must be refused");
    assert_eq!(err.member(), Some(member), "{err}");
    assert!(err.to_string().contains(member), "{err}");
    assert!(
        files_under(dest.path()).is_empty(),
        "nothing left behind after {err}"
    );
    assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 0);
    err
}

const DATA: &[u8] = b"some run bytes";

fn good_entries() -> Vec<Raw> {
    vec![
        manifest_entry(&manifest_of(&[("0/runs/r/a.txt", DATA)])),
        content(DATA),
    ]
}

#[test]
fn a_hand_built_bundle_is_accepted() {
    let (dest, result) = read(&hand_bundle(good_entries()), &Limits::default());
    let read = result.unwrap();
    assert_eq!(fs::read(dest.path().join("0/runs/r/a.txt")).unwrap(), DATA);
    assert_eq!(
        read.members[0].location,
        Some(dest.path().join("0/runs/r/a.txt"))
    );
    assert_eq!(read.members[0].root_path, "runs/r/a.txt");
}

#[test]
fn refuses_path_traversal_in_the_tar() {
    let mut entries = good_entries();
    entries.push(raw("contents/../../escape", b"x"));
    let err = refused(
        &hand_bundle(entries),
        &Limits::default(),
        "contents/../../escape",
    );
    assert!(matches!(err, BundleError::PathTraversal { .. }));
}

#[test]
fn refuses_path_traversal_in_the_manifest() {
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[("0/runs/../../escape", DATA)])),
        content(DATA),
    ]);
    let err = refused(&bytes, &Limits::default(), "0/runs/../../escape");
    assert!(matches!(err, BundleError::PathTraversal { .. }));
}

#[test]
fn refuses_absolute_paths() {
    let mut entries = good_entries();
    entries.push(raw("/tmp/runicorn-bundle-abs", b"x"));
    let err = refused(
        &hand_bundle(entries),
        &Limits::default(),
        "/tmp/runicorn-bundle-abs",
    );
    assert!(matches!(err, BundleError::AbsolutePath { .. }));
    assert!(!Path::new("/tmp/runicorn-bundle-abs").exists());
}

fn with_kind(kind: EntryType) -> (Vec<u8>, String) {
    let name = crate::format::content_entry_name(&sha(DATA));
    let mut link = raw(&name, b"");
    link.kind = kind;
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[("0/runs/r/a.txt", DATA)])),
        link,
    ]);
    (bytes, name)
}

#[test]
fn refuses_symlinks() {
    let (bytes, name) = with_kind(EntryType::Symlink);
    let err = refused(&bytes, &Limits::default(), &name);
    assert!(matches!(err, BundleError::Symlink { .. }));
}

#[test]
fn refuses_hard_links() {
    let (bytes, name) = with_kind(EntryType::Link);
    let err = refused(&bytes, &Limits::default(), &name);
    assert!(matches!(err, BundleError::HardLink { .. }));
}

#[test]
fn refuses_device_files() {
    for kind in [EntryType::Char, EntryType::Block] {
        let (bytes, name) = with_kind(kind);
        let err = refused(&bytes, &Limits::default(), &name);
        assert!(matches!(err, BundleError::SpecialFile { .. }));
    }
}

#[test]
fn refuses_fifos() {
    let (bytes, name) = with_kind(EntryType::Fifo);
    let err = refused(&bytes, &Limits::default(), &name);
    assert!(matches!(err, BundleError::SpecialFile { ref kind, .. } if kind == "FIFO"));
}

#[test]
fn refuses_duplicate_members_in_the_tar() {
    let mut entries = good_entries();
    entries.push(content(DATA));
    let name = crate::format::content_entry_name(&sha(DATA));
    let err = refused(&hand_bundle(entries), &Limits::default(), &name);
    assert!(matches!(err, BundleError::DuplicateMember { .. }));
}

#[test]
fn refuses_duplicate_members_in_the_manifest() {
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[
            ("0/runs/r/a.txt", DATA),
            ("0/runs/r/a.txt", DATA),
        ])),
        content(DATA),
    ]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/a.txt");
    assert!(matches!(err, BundleError::DuplicateMember { .. }));
}

#[test]
fn refuses_a_second_manifest() {
    let mut entries = good_entries();
    entries.push(manifest_entry(&manifest_of(&[])));
    let err = refused(&hand_bundle(entries), &Limits::default(), "bundle.json");
    assert!(matches!(err, BundleError::DuplicateMember { .. }));
}

#[test]
fn refuses_a_member_that_is_also_a_directory() {
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[
            ("0/runs/r/a", DATA),
            ("0/runs/r/a/b", b"other"),
        ])),
        content(DATA),
        content(b"other"),
    ]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/a");
    assert!(matches!(err, BundleError::PathConflict { .. }));
}

#[test]
fn refuses_a_size_that_lies_in_the_tar_header() {
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    manifest.members[0].size = 1000;
    let bytes = hand_bundle(vec![manifest_entry(&manifest), content(DATA)]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/a.txt");
    assert!(matches!(
        err,
        BundleError::SizeMismatch {
            expected: 1000,
            actual: 14,
            ..
        }
    ));
}

#[test]
fn refuses_a_size_that_lies_in_the_manifest() {
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA), ("0/runs/r/b.txt", DATA)]);
    manifest.members[1].size = 3;
    let bytes = hand_bundle(vec![manifest_entry(&manifest), content(DATA)]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/b.txt");
    assert!(matches!(err, BundleError::SizeMismatch { .. }));
}

#[test]
fn refuses_a_header_size_that_overruns_the_bytes() {
    // the header claims more bytes than follow: the stream runs out inside the member
    let mut entry = content(DATA);
    entry.header_size = Some(1 << 20);
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    manifest.members[0].size = 1 << 20;
    let bytes = hand_bundle(vec![manifest_entry(&manifest), entry]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/a.txt");
    assert!(matches!(err, BundleError::Truncated { .. }), "{err}");
}

#[test]
fn refuses_a_bundle_over_the_total_size_limit() {
    let big = vec![1u8; 10_000];
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[("0/runs/r/big", &big)])),
        content(&big),
    ]);
    let limits = Limits {
        max_total_bytes: 5_000,
        ..Limits::default()
    };
    let err = refused(&bytes, &limits, "0/runs/r/big");
    assert!(matches!(err, BundleError::TotalSizeExceeded { .. }));
}

#[test]
fn refuses_a_consistent_size_lie_by_its_checksum() {
    let big = vec![1u8; 10_000];
    let mut manifest = manifest_of(&[("0/runs/r/big", &big)]);
    manifest.members[0].size = 100;
    let mut entry = content(&big);
    entry.header_size = Some(100);
    entry.data.truncate(100);
    // the header says 100: a consistent lie is a checksum mismatch, never an overrun
    let bytes = hand_bundle(vec![manifest_entry(&manifest), entry]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/big");
    assert!(matches!(err, BundleError::ChecksumMismatch { .. }), "{err}");
}

#[test]
fn refuses_a_decompression_bomb_by_ratio() {
    let zeros = vec![0u8; 8 << 20];
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[("0/runs/r/zeros", &zeros)])),
        content(&zeros),
    ]);
    assert!(bytes.len() < 8 << 10, "zeros compress well");
    let limits = Limits {
        max_ratio: 100,
        ratio_grace_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = refused(&bytes, &limits, "0/runs/r/zeros");
    assert!(matches!(err, BundleError::CompressionRatioExceeded { .. }));
    // the default limits accept it (under their grace)
    let (_dest, result) = read(&bytes, &Limits::default());
    result.unwrap();
}

#[test]
fn refuses_a_checksum_mismatch() {
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    let other = b"other run byte";
    assert_eq!(other.len(), DATA.len());
    manifest.members[0].sha256 = sha(other);
    let mut entry = raw(&crate::format::content_entry_name(&sha(other)), DATA);
    entry.kind = EntryType::Regular;
    let bytes = hand_bundle(vec![manifest_entry(&manifest), entry]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/a.txt");
    assert!(matches!(err, BundleError::ChecksumMismatch { .. }));
}

#[test]
fn refuses_a_truncated_bundle() {
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[("0/runs/r/big", &big)])),
        content(&big),
    ]);
    let cut = &bytes[..bytes.len() * 2 / 3];
    let err = refused(cut, &Limits::default(), "0/runs/r/big");
    assert!(matches!(err, BundleError::Truncated { .. }), "{err}");
    // cut inside the zstd frame's end: the tar is whole, the stream is not
    let (_root, sample) = write_sample();
    let (dest, result) = read(&sample[..sample.len() - 2], &Limits::default());
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Truncated { .. } | BundleError::Corrupt { .. }
        ),
        "{err}"
    );
    assert!(err.member().is_some());
    assert!(files_under(dest.path()).is_empty());
}

#[test]
fn refuses_an_unknown_format_version() {
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    manifest.format_version = 2;
    let bytes = hand_bundle(vec![manifest_entry(&manifest), content(DATA)]);
    let err = refused(&bytes, &Limits::default(), "bundle.json");
    assert!(matches!(
        err,
        BundleError::UnknownFormatVersion { version: 2 }
    ));
}

#[test]
fn refuses_a_manifest_member_missing_from_the_tar() {
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest_of(&[
            ("0/runs/r/a.txt", DATA),
            ("0/runs/r/gone.txt", b"gone"),
        ])),
        content(DATA),
    ]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/gone.txt");
    assert!(matches!(err, BundleError::MissingMember { .. }));
}

#[test]
fn refuses_a_tar_member_missing_from_the_manifest() {
    let mut entries = good_entries();
    entries.push(content(b"stowaway"));
    let name = crate::format::content_entry_name(&sha(b"stowaway"));
    let err = refused(&hand_bundle(entries), &Limits::default(), &name);
    assert!(matches!(err, BundleError::UnlistedMember { .. }));
    // and a member outside contents/
    let mut entries = good_entries();
    entries.push(raw("0/runs/r/extra.txt", b"x"));
    let err = refused(
        &hand_bundle(entries),
        &Limits::default(),
        "0/runs/r/extra.txt",
    );
    assert!(matches!(err, BundleError::UnlistedMember { .. }));
}

#[test]
fn refuses_a_manifest_that_is_not_first() {
    let mut entries = good_entries();
    entries.swap(0, 1);
    let err = refused(&hand_bundle(entries), &Limits::default(), "bundle.json");
    assert!(matches!(err, BundleError::ManifestNotFirst { .. }));
}

#[test]
fn refuses_a_manifest_too_large() {
    let bytes = hand_bundle(good_entries());
    let limits = Limits {
        max_manifest_bytes: 50,
        ..Limits::default()
    };
    let err = refused(&bytes, &limits, "bundle.json");
    assert!(matches!(
        err,
        BundleError::ManifestTooLarge { limit: 50, .. }
    ));
}

#[test]
fn refuses_garbage_after_the_archive() {
    let mut builder = tar::Builder::new(Vec::new());
    let manifest = serde_json::to_vec(&manifest_of(&[("0/runs/r/a.txt", DATA)])).unwrap();
    for (name, data) in [
        ("bundle.json".to_owned(), &manifest[..]),
        (crate::format::content_entry_name(&sha(DATA)), DATA),
    ] {
        let mut header = Header::new_gnu();
        header.set_path(&name).unwrap();
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    let mut tar = builder.into_inner().unwrap();
    tar.extend_from_slice(b"trailing junk");
    let bytes = zstd::encode_all(&tar[..], 3).unwrap();
    let (_dest, result) = read(&bytes, &Limits::default());
    assert!(matches!(result.unwrap_err(), BundleError::Corrupt { .. }));
}

// ---------- fuzzing ----------

/// Reads `bytes` into a fresh directory inside a parent and checks nothing escaped and nothing
/// is left behind on error.
fn read_confined(bytes: &[u8]) {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let result = read_bundle(bytes, &dest, &limits);
    let all = files_under(parent.path());
    assert!(all.iter().all(|p| p.starts_with("dest/")), "{all:?}");
    match result {
        Ok(read) => {
            let members: BTreeSet<String> = read
                .members
                .iter()
                .filter(|m| m.location.is_some())
                .map(|m| format!("dest/{}", m.path))
                .collect();
            assert_eq!(all, members);
        }
        Err(_) => assert!(all.is_empty(), "left behind: {all:?}"),
    }
}

fn small_valid_bundle() -> Vec<u8> {
    hand_bundle(vec![
        manifest_entry(&manifest_of(&[
            ("0/runs/r/a.txt", DATA),
            ("0/runs/r/n/b.txt", DATA),
            ("0/runs/r/c", b"c"),
        ])),
        content(DATA),
        content(b"c"),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bundles_never_panic_or_escape(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = small_valid_bundle();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= byte.max(1);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        read_confined(&bytes);
    }

    #[test]
    fn mutated_tars_never_panic_or_escape(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        // damage the tar under a valid zstd frame, so the reader's own checks are exercised
        let mut tar = zstd::decode_all(&small_valid_bundle()[..]).unwrap();
        for (at, byte) in flips {
            let i = at.index(tar.len());
            tar[i] ^= byte.max(1);
        }
        read_confined(&zstd::encode_all(&tar[..], 1).unwrap());
    }

    #[test]
    fn random_bytes_never_panic_or_escape(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_confined(&bytes);
        read_confined(&zstd::encode_all(&bytes[..], 1).unwrap());
    }
}

#[test]
fn refuses_traversal_hidden_in_a_gnu_long_name() {
    let long = format!("contents/{}../../../escape", "d/".repeat(60));
    let mut name = long.clone().into_bytes();
    name.push(0);
    let mut long_link = raw("././@LongLink", &name);
    long_link.kind = EntryType::GNULongName;
    let mut entries = good_entries();
    entries.push(long_link);
    entries.push(raw("short", b"x"));
    let err = refused(&hand_bundle(entries), &Limits::default(), &long);
    assert!(matches!(err, BundleError::PathTraversal { .. }), "{err}");
}

// ---------- sources, member places, omitted members ----------

#[test]
fn refuses_a_member_outside_its_sources_runs() {
    for path in [
        "0/runs/other/a.txt",
        "0/runs/rr/a.txt",
        "0/runs/r",
        "0/artifacts/m/x",
    ] {
        let bytes = hand_bundle(vec![
            manifest_entry(&manifest_of(&[(path, DATA)])),
            content(DATA),
        ]);
        let err = refused(&bytes, &Limits::default(), path);
        assert!(matches!(err, BundleError::InvalidPath { .. }), "{err}");
    }
}

#[test]
fn refuses_a_source_index_out_of_range_or_missing() {
    for path in [
        "1/runs/r/a.txt",
        "runs/r/a.txt",
        "00/runs/r/a.txt",
        "x/runs/r/a.txt",
    ] {
        let bytes = hand_bundle(vec![
            manifest_entry(&manifest_of(&[(path, DATA)])),
            content(DATA),
        ]);
        let err = refused(&bytes, &Limits::default(), path);
        assert!(
            matches!(err, BundleError::InvalidPath { .. }),
            "{path}: {err}"
        );
    }
}

#[test]
fn refuses_run_and_artifact_directories_that_break_the_rules() {
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    manifest.sources[0].runs.push("../up".to_owned());
    let err = refused(
        &hand_bundle(vec![manifest_entry(&manifest), content(DATA)]),
        &Limits::default(),
        "../up",
    );
    assert!(matches!(err, BundleError::PathTraversal { .. }), "{err}");

    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    manifest.sources[0]
        .artifact_versions
        .push(ArtifactVersionRef {
            dir: "runs/r".to_owned(),
            version: 1,
        });
    let err = refused(
        &hand_bundle(vec![manifest_entry(&manifest), content(DATA)]),
        &Limits::default(),
        "runs/r",
    );
    assert!(matches!(err, BundleError::InvalidPath { .. }), "{err}");

    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA)]);
    manifest.sources[0].annotations.push(Annotation {
        run: "runs/elsewhere".to_owned(),
        alias: None,
        tags: Vec::new(),
        notes: None,
        deleted: false,
    });
    let err = refused(
        &hand_bundle(vec![manifest_entry(&manifest), content(DATA)]),
        &Limits::default(),
        "runs/elsewhere",
    );
    assert!(matches!(err, BundleError::InvalidPath { .. }), "{err}");
}

fn omitted_manifest(path: &str, bytes: &[u8]) -> Manifest {
    let mut manifest = manifest_of(&[("0/runs/r/a.txt", DATA), (path, bytes)]);
    manifest.members[1].omitted = true;
    manifest
}

#[test]
fn lists_omitted_members_without_landing_them() {
    let big = vec![9u8; 5000];
    let mut manifest = omitted_manifest("0/runs/r/ckpt.pt", &big);
    // an omitted member sharing its content with a carried one: the content is there once
    manifest.members.push(ManifestMember {
        path: "0/runs/r/copy.txt".to_owned(),
        size: DATA.len() as u64,
        sha256: sha(DATA),
        omitted: true,
        mtime: None,
    });
    let json = serde_json::to_string(&manifest).unwrap();
    assert_eq!(json.matches("\"omitted\":true").count(), 2);
    let (dest, result) = read(
        &hand_bundle(vec![manifest_entry(&manifest), content(DATA)]),
        &Limits::default(),
    );
    let read = result.unwrap();
    let ckpt = read
        .members
        .iter()
        .find(|m| m.root_path == "runs/r/ckpt.pt")
        .unwrap();
    assert_eq!((ckpt.location.as_ref(), ckpt.size), (None, 5000));
    assert_eq!(
        files_under(dest.path()),
        BTreeSet::from(["0/runs/r/a.txt".to_owned()])
    );
}

#[test]
fn refuses_content_for_an_omitted_member() {
    let big = vec![9u8; 5000];
    let manifest = omitted_manifest("0/runs/r/ckpt.pt", &big);
    let bytes = hand_bundle(vec![
        manifest_entry(&manifest),
        content(DATA),
        content(&big),
    ]);
    let err = refused(&bytes, &Limits::default(), "0/runs/r/ckpt.pt");
    assert!(matches!(err, BundleError::OmittedContent { .. }), "{err}");
}

#[test]
fn refuses_an_omitted_member_whose_path_breaks_the_rules() {
    for (path, traversal) in [
        ("0/runs/../../x", true),
        ("0/runs/other/x", false),
        ("3/runs/r/x", false),
        ("/abs", false),
    ] {
        let manifest = omitted_manifest(path, b"whatever");
        let bytes = hand_bundle(vec![manifest_entry(&manifest), content(DATA)]);
        let err = refused(&bytes, &Limits::default(), path);
        if traversal {
            assert!(matches!(err, BundleError::PathTraversal { .. }), "{err}");
        }
    }
    let mut manifest = omitted_manifest("0/runs/r/b", b"b");
    manifest.members[1].sha256 = "XYZ".to_owned();
    let err = refused(
        &hand_bundle(vec![manifest_entry(&manifest), content(DATA)]),
        &Limits::default(),
        "0/runs/r/b",
    );
    assert!(matches!(err, BundleError::Corrupt { .. }), "{err}");
}

// ---------- the writer's inputs ----------

/// Writes `sources` and reads the bundle back.
fn round_trip(sources: &[SourceInput]) -> (tempfile::TempDir, ReadBundle, crate::WriteReport) {
    let (bytes, report) = write_bundle(sources, &options(), Vec::new()).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let read = read_bundle(&bytes[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.manifest, report.manifest);
    (dest, read, report)
}

#[test]
fn omit_rule_lists_but_does_not_carry() {
    let root = sample_root();
    let mut input = source(root.path(), &[RUN_A]);
    input.omit = Omit::AllButRunFiles(
        ["meta.json", "events.jsonl", "logs.txt"]
            .map(str::to_owned)
            .into(),
    );
    let (dest, read, report) = round_trip(&[input.clone()]);
    assert_eq!(report.omitted, 2);
    assert_eq!(report.omitted_bytes, 6000);
    let omitted: Vec<&str> = read
        .members
        .iter()
        .filter(|m| m.location.is_none())
        .map(|m| m.root_path.as_str())
        .collect();
    assert_eq!(
        omitted,
        vec![
            format!("{RUN_A}/media/copy.bin"),
            format!("{RUN_A}/media/deep/er/img.bin")
        ]
    );
    assert_eq!(files_under(dest.path()).len(), 3);

    input.omit = Omit::Paths(BTreeSet::from([format!("{RUN_A}/logs.txt")]));
    let (_dest, read, _) = round_trip(&[input]);
    let logs = read
        .members
        .iter()
        .find(|m| m.root_path.ends_with("logs.txt"))
        .unwrap();
    assert!(logs.location.is_none());
    assert_eq!(logs.sha256, sha(b"hello\nworld\n"));
}

#[test]
fn two_sources_with_artifacts_extra_omitted_and_annotations() {
    let root_a = sample_root();
    let root_b = sample_root();
    let artifact = "artifacts/model/resnet";
    fs::create_dir_all(root_b.path().join(artifact).join("v1")).unwrap();
    fs::write(
        root_b.path().join(artifact).join("v1/weights.bin"),
        [7u8; 3000],
    )
    .unwrap();
    fs::write(root_b.path().join(artifact).join("versions.json"), b"[]").unwrap();
    let mut b = source(root_b.path(), &[RUN_B]);
    b.name = "gpu-2".to_owned();
    b.artifact_versions = vec![ArtifactVersionRef {
        dir: artifact.to_owned(),
        version: 1,
    }];
    b.extra_paths = vec![
        format!("{artifact}/v1/weights.bin"),
        format!("{artifact}/versions.json"),
    ];
    b.extra_omitted = vec![OmittedFile {
        path: format!("{RUN_B}/uncached.bin"),
        size: 123,
        sha256: "cd".repeat(32),
    }];
    b.annotations = vec![Annotation {
        run: RUN_B.to_owned(),
        alias: Some("best".to_owned()),
        tags: vec!["a".to_owned()],
        notes: Some("text".to_owned()),
        deleted: true,
    }];
    let (dest, read, report) = round_trip(&[source(root_a.path(), &[RUN_A]), b]);
    // meta, events, logs, only_b, versions.json, and the 3000 sevens shared by both sources'
    // media and the artifact, carried once
    assert_eq!(report.contents, 6);
    assert_eq!(
        read.manifest.sources[1].annotations[0].alias.as_deref(),
        Some("best")
    );
    assert!(read.manifest.sources[1].annotations[0].deleted);
    let root1 = ReadBundle::source_root(dest.path(), 1);
    assert_eq!(
        fs::read(root1.join(artifact).join("v1/weights.bin")).unwrap(),
        [7u8; 3000]
    );
    assert!(root1.join(RUN_B).join("only_b.txt").is_file());
    assert!(!root1.join(RUN_B).join("uncached.bin").exists());
    let uncached = read
        .members
        .iter()
        .find(|m| m.root_path.ends_with("uncached.bin"))
        .unwrap();
    assert_eq!(
        (uncached.source, uncached.size, uncached.location.clone()),
        (1, 123, None)
    );
    assert!(!ReadBundle::source_root(dest.path(), 0).join(RUN_B).exists());
}

#[test]
fn writer_refuses_extra_paths_the_format_does_not_allow() {
    let root = sample_root();
    fs::create_dir_all(root.path().join("artifacts/m")).unwrap();
    fs::write(root.path().join("artifacts/m/f"), b"f").unwrap();
    fs::write(root.path().join("loose.txt"), b"l").unwrap();
    std::os::unix::fs::symlink(
        root.path().join("loose.txt"),
        root.path().join("artifacts/m/l"),
    )
    .unwrap();
    // under artifacts/ but no artifact versions listed: the reader would refuse it
    let mut input = source(root.path(), &[RUN_A]);
    input.extra_paths = vec!["artifacts/m/f".to_owned()];
    let err = write_bundle(&[input.clone()], &options(), Vec::new()).unwrap_err();
    assert!(matches!(err, BundleError::InvalidPath { .. }), "{err}");
    input.artifact_versions = vec![ArtifactVersionRef {
        dir: "artifacts/m".to_owned(),
        version: 1,
    }];
    for bad in [
        "loose.txt",
        "artifacts/m/l",
        "artifacts/m",
        "artifacts/../loose.txt",
        "artifacts/m/none",
    ] {
        input.extra_paths = vec![bad.to_owned()];
        let err = write_bundle(&[input.clone()], &options(), Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                BundleError::InvalidPath { .. } | BundleError::InvalidExtraPath { .. }
            ),
            "{bad}: {err}"
        );
    }
}

#[test]
fn generated_files_are_carried_and_replace_files_on_disk() {
    use crate::writer::{write_bundle_generated, GeneratedFile, NoProgress};
    let root = sample_root();
    let generated = [
        GeneratedFile {
            source: 0,
            path: format!("{RUN_A}/meta.json"),
            bytes: b"{\"replaced\":true}".to_vec(),
        },
        GeneratedFile {
            source: 0,
            path: format!("{RUN_A}/new.txt"),
            bytes: b"made".to_vec(),
        },
    ];
    let (bytes, report) = write_bundle_generated(
        &[source(root.path(), &[RUN_A])],
        &generated,
        &options(),
        Vec::new(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(report.manifest.members.len(), 6);
    let (dest, result) = read(&bytes, &Limits::default());
    result.unwrap();
    let run = dest.path().join("0").join(RUN_A);
    assert_eq!(
        fs::read(run.join("meta.json")).unwrap(),
        b"{\"replaced\":true}"
    );
    assert_eq!(fs::read(run.join("new.txt")).unwrap(), b"made");
    assert_eq!(
        fs::read(run.join("logs.txt")).unwrap(),
        fs::read(root.path().join(RUN_A).join("logs.txt")).unwrap()
    );

    // a generated file must obey the same rules as any member
    for (source_index, path) in [(0, "elsewhere/x".to_owned()), (1, format!("{RUN_A}/x"))] {
        let bad = [GeneratedFile {
            source: source_index,
            path,
            bytes: b"x".to_vec(),
        }];
        let err = write_bundle_generated(
            &[source(root.path(), &[RUN_A])],
            &bad,
            &options(),
            Vec::new(),
            &mut NoProgress,
        )
        .unwrap_err();
        assert!(matches!(err, BundleError::InvalidPath { .. }), "{err}");
    }
}

/// A [`crate::Progress`] that runs `act` once, when the writing phase starts (between hashing
/// and writing: where a live run's files change under an export).
struct BetweenPhases<F: FnMut()>(Option<F>);

impl<F: FnMut()> crate::Progress for BetweenPhases<F> {
    fn start(&mut self, phase: crate::Phase, _: u64) {
        if phase == crate::Phase::Writing {
            if let Some(mut act) = self.0.take() {
                act();
            }
        }
    }
    fn advance(&mut self, _: u64) {}
}

#[test]
fn a_file_that_grows_while_bundled_is_carried_as_hashed() {
    use crate::writer::write_bundle_unspooled;
    let root = sample_root();
    let events = root.path().join(RUN_A).join("events.jsonl");
    let before = fs::read(&events).unwrap();
    let mut grow = BetweenPhases(Some(|| {
        let mut file = fs::OpenOptions::new().append(true).open(&events).unwrap();
        file.write_all(b"{\"step\":3,\"loss\":0.1}\n").unwrap();
    }));
    // without the spool every file is read twice: hashed, then streamed
    let (bytes, _) =
        write_bundle_unspooled(&[source(root.path(), &[RUN_A])], &[], Vec::new(), &mut grow)
            .unwrap();
    let (dest, result) = read(&bytes, &Limits::default());
    result.unwrap();
    let landed = fs::read(dest.path().join("0").join(RUN_A).join("events.jsonl")).unwrap();
    assert_eq!(
        landed, before,
        "the bytes hashed, not the line appended after"
    );
}

#[test]
fn a_file_that_shrinks_or_changes_while_bundled_fails_the_export() {
    use crate::writer::write_bundle_unspooled;
    for change in [&b"short"[..], &b"{\"status\":\"FINISHED\"}"[..]] {
        let root = sample_root();
        let meta = root.path().join(RUN_A).join("meta.json");
        let mut rewrite = BetweenPhases(Some(|| fs::write(&meta, change).unwrap()));
        let err = write_bundle_unspooled(
            &[source(root.path(), &[RUN_A])],
            &[],
            Vec::new(),
            &mut rewrite,
        )
        .unwrap_err();
        assert!(
            matches!(err, BundleError::FileChanged { ref path } if path.ends_with("meta.json")),
            "{err}"
        );
    }
}

#[test]
fn refuses_a_member_where_a_run_directory_goes() {
    let mut manifest = manifest_of(&[("0/runs/r/a", DATA)]);
    manifest.sources[0].runs.push("runs/r/a".to_owned());
    let err = refused(
        &hand_bundle(vec![manifest_entry(&manifest), content(DATA)]),
        &Limits::default(),
        "0/runs/r/a",
    );
    assert!(matches!(err, BundleError::PathConflict { .. }), "{err}");
}

// ---------- structure-aware fuzzing of the revised manifest ----------

/// Path pieces mixing the legal with every kind of trouble.
const PIECES: &[&str] = &[
    "runs",
    "r",
    "a",
    "artifacts",
    ".pool",
    "..",
    ".",
    "",
    "/",
    "0",
    "1",
    "01",
    "x\\y",
    ".staging",
    "contents",
];

fn piece_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(PIECES), 1..5).prop_map(|p| p.join("/"))
}

/// Mostly legal run directories, sometimes anything.
fn run_dir() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&["runs/r", "runs/a", "runs/r/a"][..]).prop_map(str::to_owned),
        1 => piece_path(),
    ]
}

/// Mostly legal root-relative member paths, sometimes anything.
fn member_rel() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&[
            "runs/r/f", "runs/r/a", "runs/a/f", "runs/r/a/g", "runs/r/a/g/h",
            "artifacts/m/n/v1/files/f", "artifacts/.pool/ab/c",
        ][..]).prop_map(str::to_owned),
        1 => piece_path(),
    ]
}

fn source_strategy() -> impl Strategy<Value = Source> {
    (
        proptest::collection::vec(run_dir(), 1..4),
        any::<bool>(),
        proptest::option::of(run_dir()),
    )
        .prop_map(|(runs, with_artifacts, annotated)| Source {
            name: "s".to_owned(),
            host: "h".to_owned(),
            root: "/r".to_owned(),
            annotations: annotated
                .into_iter()
                .map(|run| Annotation {
                    run,
                    alias: None,
                    tags: Vec::new(),
                    notes: None,
                    deleted: false,
                })
                .collect(),
            runs,
            artifact_versions: if with_artifacts {
                vec![ArtifactVersionRef {
                    dir: "artifacts/m/n".to_owned(),
                    version: 1,
                }]
            } else {
                Vec::new()
            },
        })
}

/// (source index, path, which content, omitted, content entry present)
type MemberPlan = (u8, String, u8, bool, bool);

fn member_strategy() -> impl Strategy<Value = MemberPlan> {
    (
        prop_oneof![4 => Just(0u8), 1 => 1u8..3],
        member_rel(),
        0u8..3,
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.9),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_manifests_never_panic_or_escape(
        sources in proptest::collection::vec(source_strategy(), 1..3),
        plans in proptest::collection::vec(member_strategy(), 0..6),
    ) {
        let datas: [&[u8]; 3] = [b"one", b"two two", b"three three three"];
        let mut manifest = manifest_of(&[]);
        manifest.sources = sources;
        let mut entries = Vec::new();
        let mut added = BTreeSet::new();
        for (source, path, which, omitted, present) in &plans {
            let data = datas[usize::from(*which)];
            manifest.members.push(ManifestMember {
                path: format!("{source}/{path}"),
                size: data.len() as u64,
                sha256: sha(data),
                omitted: *omitted,
                mtime: None,
            });
            // a content entry when a carried member needs it (mostly), or stray (sometimes)
            if *present != *omitted && added.insert(*which) {
                entries.push(content(data));
            }
        }
        let mut all = vec![manifest_entry(&manifest)];
        all.extend(entries);
        read_confined(&hand_bundle(all));
    }
}

#[test]
fn landed_files_keep_the_modification_time_the_manifest_gives() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("runs/p/r1");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("events.jsonl"), b"{}\n").unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(run.join("events.jsonl"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let input = SourceInput {
        name: "gpu".into(),
        host: "gpu".into(),
        root_label: "/data".into(),
        dir: root.path().to_owned(),
        runs: vec!["runs/p/r1".into()],
        artifact_versions: vec![],
        extra_paths: vec![],
        omit: Omit::Nothing,
        extra_omitted: vec![],
        annotations: vec![],
        mtimes: Default::default(),
    };
    let options = WriteOptions {
        zstd_level: 3,
        created_by: "test".into(),
    };
    let (bytes, _) = write_bundle(&[input], &options, Vec::new()).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let read = read_bundle(&bytes[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.members[0].mtime, Some(1_700_000_000.0));
    let landed = read.members[0].location.as_ref().unwrap();
    assert_eq!(std::fs::metadata(landed).unwrap().modified().unwrap(), when);
}

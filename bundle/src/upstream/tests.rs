//! Tests of the upstream archive reader: upstream 0.7.2's real exports land as a storage root,
//! and a table of hostile or damaged archives (gzip tars and zips, built byte by byte here) is
//! refused naming the entry, leaving the destination empty; mutated archives never panic.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use flate2::write::{DeflateEncoder, GzEncoder};
use flate2::Compression;
use proptest::prelude::*;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/upstream-0.7.2-export")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

const FIXTURE_RUNS: [&str; 3] = [
    "runs/20261205_055047_3eaf31",
    "runs/cv/resnet/20261205_055047_6bd6a3",
    "runs/cv/resnet/20261205_055047_97981a",
];

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            assert!(!kind.is_symlink(), "{} is a link", path.display());
            if kind.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push((rel.to_string_lossy().into_owned(), fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn is_empty(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

fn check_fixture_landing(read: &UpstreamRead, dest: &Path) {
    assert_eq!(read.runs, FIXTURE_RUNS);
    assert_eq!(read.host.as_deref(), Some("vm"));
    assert_eq!(
        read.root.as_deref(),
        Some("/tmp/upstream-export-root-yj9uuctf")
    );
    assert!(read.skipped.is_empty(), "{:?}", read.skipped);
    assert!(!dest.join(".staging").exists());
    let top: Vec<String> = fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["runs"]);
    for (run, steps, status) in [
        (FIXTURE_RUNS[0], 4, "finished"),
        (FIXTURE_RUNS[1], 5, "finished"),
        (FIXTURE_RUNS[2], 3, "failed"),
    ] {
        let dir = dest.join(run);
        let events = fs::read_to_string(dir.join("events.jsonl")).unwrap();
        let metrics = events
            .lines()
            .filter(|line| line.contains("\"type\": \"metrics\""))
            .count();
        assert_eq!(metrics, steps, "{run}");
        let status_json: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("status.json")).unwrap()).unwrap();
        assert_eq!(status_json["status"], status, "{run}");
        let logs = fs::read_to_string(dir.join("logs.txt")).unwrap();
        assert_eq!(logs.lines().filter(|l| l.contains("step ")).count(), steps);
        assert!(dir.join("summary.json").is_file());
    }
    let files = tree(dest);
    assert_eq!(read.files, files.len() as u64);
    assert_eq!(
        read.bytes,
        files.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
}

/// The landed root as the agent reads it (`runicorn-agent ls` does the same through its index):
/// each run's id, path, status and points, sorted.
fn as_the_agent_reads(root: &Path) -> Vec<(String, String, String, u64)> {
    use runicorn_protocol::run_format::{discover_runs, read_run_overview, LivenessContext};
    let discovery = discover_runs(root);
    assert!(discovery.problems.is_empty(), "{:?}", discovery.problems);
    let ctx = LivenessContext::here_and_now();
    let mut runs: Vec<_> = discovery
        .runs
        .iter()
        .map(|loc| {
            let run = read_run_overview(loc, &ctx);
            let status = serde_json::to_value(run.status).unwrap();
            (
                run.id,
                run.path,
                status.as_str().unwrap().to_owned(),
                run.points,
            )
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn landed_fixture_runs_read_as_upstream_wrote_them() {
    for (name, kind) in [
        ("cli-export.tar.gz", UpstreamKind::TarGz),
        ("viewer-export.zip", UpstreamKind::Zip),
    ] {
        let dest = tempfile::tempdir().unwrap();
        read_upstream_archive(
            Cursor::new(fixture(name)),
            kind,
            dest.path(),
            &Limits::default(),
        )
        .unwrap();
        let expected = [
            ("20261205_055047_3eaf31", "", "finished", 8),
            ("20261205_055047_6bd6a3", "cv/resnet", "finished", 10),
            ("20261205_055047_97981a", "cv/resnet", "failed", 6),
        ]
        .map(|(id, path, status, points)| (id.into(), path.into(), status.into(), points));
        assert_eq!(as_the_agent_reads(dest.path()), expected, "{name}");
    }
}

#[test]
fn upstream_cli_tar_gz_lands_as_a_storage_root() {
    let dest = tempfile::tempdir().unwrap();
    let read = read_upstream_archive(
        Cursor::new(fixture("cli-export.tar.gz")),
        UpstreamKind::TarGz,
        dest.path(),
        &Limits::default(),
    )
    .unwrap();
    check_fixture_landing(&read, dest.path());
    // the tar's directory entries land too: upstream's empty media/ folder
    assert!(dest.path().join(FIXTURE_RUNS[1]).join("media").is_dir());
}

#[test]
fn upstream_viewer_zip_lands_the_same_files_as_the_tar() {
    let from_zip = tempfile::tempdir().unwrap();
    let read = read_upstream_archive(
        Cursor::new(fixture("viewer-export.zip")),
        UpstreamKind::Zip,
        from_zip.path(),
        &Limits::default(),
    )
    .unwrap();
    check_fixture_landing(&read, from_zip.path());
    let from_tar = tempfile::tempdir().unwrap();
    read_upstream_tar_gz(
        &fixture("cli-export.tar.gz")[..],
        from_tar.path(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(tree(from_zip.path()), tree(from_tar.path()));
}

#[test]
fn kinds_are_told_apart_by_their_first_bytes() {
    assert_eq!(
        sniff_kind(&fixture("cli-export.tar.gz")),
        Some(ArchiveKind::Upstream(UpstreamKind::TarGz))
    );
    assert_eq!(
        sniff_kind(&fixture("viewer-export.zip")),
        Some(ArchiveKind::Upstream(UpstreamKind::Zip))
    );
    let bundle = zstd::encode_all(&b"a bundle"[..], 3).unwrap();
    assert_eq!(sniff_kind(&bundle), Some(ArchiveKind::Bundle));
    assert_eq!(sniff_kind(b"PK\x05\x06"), None);
    assert_eq!(sniff_kind(b"{\"json\": 1}"), None);
    assert_eq!(sniff_kind(b""), None);
}

#[test]
fn a_sniffed_stream_reads_whole() {
    /// Gives one byte per read, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }
    let archive = fixture("cli-export.tar.gz");
    let (kind, stream) = sniff_stream(Trickle(&archive)).unwrap();
    assert_eq!(kind, Some(ArchiveKind::Upstream(UpstreamKind::TarGz)));
    let dest = tempfile::tempdir().unwrap();
    let read = read_upstream_tar_gz(stream, dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.runs, FIXTURE_RUNS);
    let (kind, mut stream) = sniff_stream(&b"PK"[..]).unwrap();
    assert_eq!(kind, None);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut rest).unwrap();
    assert_eq!(rest, b"PK");
}

#[test]
fn a_destination_that_is_not_empty_is_refused_and_kept() {
    let dest = tempfile::tempdir().unwrap();
    fs::write(dest.path().join("mine"), b"x").unwrap();
    let err = read_upstream_tar_gz(
        &fixture("cli-export.tar.gz")[..],
        dest.path(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, BundleError::DestinationNotEmpty { .. }),
        "{err}"
    );
    assert_eq!(fs::read(dest.path().join("mine")).unwrap(), b"x");
}

#[test]
fn files_outside_run_directories_are_skipped_not_landed() {
    let tar = tar_gz(&[
        file("runs/p/r1/meta.json", b"{\"hostname\": \"h\"}"),
        file("runs/p/r1/events.jsonl", b""),
        file(".runicorn-agent/index.sqlite", b"poison"),
        file("runicorn.db", b"upstream's db"),
        file("runs/p/notes.txt", b"not in a run"),
        file("proj/exp/runs/r2/status.json", b"{}"),
    ]);
    let dest = tempfile::tempdir().unwrap();
    let read = read_upstream_tar_gz(&tar[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.runs, ["proj/exp/runs/r2", "runs/p/r1"]);
    assert_eq!(
        read.skipped,
        [
            ".runicorn-agent/index.sqlite",
            "runicorn.db",
            "runs/p/notes.txt"
        ]
    );
    // runs without a meta.json (the legacy one) have no say
    assert_eq!(read.host.as_deref(), Some("h"));
    let read_back: Vec<(String, String)> = as_the_agent_reads(dest.path())
        .into_iter()
        .map(|(id, path, _, _)| (id, path))
        .collect();
    assert_eq!(
        read_back,
        [("r1".into(), "p".into()), ("r2".into(), "proj/exp".into())]
    );
    let landed: Vec<String> = tree(dest.path()).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        landed,
        [
            "proj/exp/runs/r2/status.json",
            "runs/p/r1/events.jsonl",
            "runs/p/r1/meta.json"
        ]
    );
}

// --- gzip tars, built entry by entry ---

struct TarEntry {
    name: Vec<u8>,
    kind: u8,
    link: Vec<u8>,
    data: Vec<u8>,
    /// The size the header claims (the data's length unless set).
    claimed: Option<u64>,
}

fn file(name: &str, data: &[u8]) -> TarEntry {
    TarEntry {
        name: name.as_bytes().to_vec(),
        kind: b'0',
        link: Vec::new(),
        data: data.to_vec(),
        claimed: None,
    }
}

fn special(name: &[u8], kind: u8) -> TarEntry {
    TarEntry {
        name: name.to_vec(),
        kind,
        link: b"runs/p/r1/meta.json".to_vec(),
        data: Vec::new(),
        claimed: None,
    }
}

/// One raw ustar header block (names up to 100 bytes, any bytes) and its data blocks.
fn tar_block(entry: &TarEntry) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..entry.name.len()].copy_from_slice(&entry.name);
    header[100..107].copy_from_slice(b"0000644");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    let size = entry.claimed.unwrap_or(entry.data.len() as u64);
    header[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = entry.kind;
    header[157..157 + entry.link.len()].copy_from_slice(&entry.link);
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(&entry.data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn raw_tar(entries: &[TarEntry], end_marker: bool) -> Vec<u8> {
    let mut tar: Vec<u8> = entries.iter().flat_map(tar_block).collect();
    if end_marker {
        tar.extend_from_slice(&[0u8; 1024]);
    }
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn tar_gz(entries: &[TarEntry]) -> Vec<u8> {
    gzip(&raw_tar(entries, true))
}

fn good_run() -> Vec<TarEntry> {
    vec![
        file("runs/p/r1/meta.json", b"{}"),
        file("runs/p/r1/events.jsonl", b"{\"type\": \"metrics\"}\n"),
    ]
}

/// What a hostile case must produce: the error's kind and the member it names.
type Expect = fn(&BundleError) -> bool;

fn refused_tar(what: &str, archive: &[u8], limits: &Limits, expect: Expect, member: &str) {
    let dest = tempfile::tempdir().unwrap();
    let err =
        read_upstream_tar_gz(archive, dest.path(), limits).expect_err(&format!("{what}: accepted"));
    assert!(expect(&err), "{what}: wrong error {err:?}");
    assert_eq!(err.member(), Some(member), "{what}: {err}");
    assert!(is_empty(dest.path()), "{what}: dest not left empty");
}

#[test]
fn hostile_tars_are_refused_naming_the_entry_and_leave_nothing() {
    let limits = Limits::default();
    let with = |extra: TarEntry| {
        let mut entries = good_run();
        entries.push(extra);
        tar_gz(&entries)
    };
    let cases: Vec<(&str, Vec<u8>, Expect, &str)> = vec![
        (
            "traversal",
            with(file("runs/p/../../../etc/cron.d/x", b"x")),
            |e| matches!(e, BundleError::PathTraversal { .. }),
            "runs/p/../../../etc/cron.d/x",
        ),
        (
            "absolute path",
            with(file("/etc/passwd", b"x")),
            |e| matches!(e, BundleError::AbsolutePath { .. }),
            "/etc/passwd",
        ),
        (
            "backslash",
            with(file("runs\\..\\x", b"x")),
            |e| matches!(e, BundleError::InvalidPath { .. }),
            "runs\\..\\x",
        ),
        (
            "symlink",
            with(special(b"runs/p/r1/link", b'2')),
            |e| matches!(e, BundleError::Symlink { .. }),
            "runs/p/r1/link",
        ),
        (
            "hard link",
            with(special(b"runs/p/r1/hard", b'1')),
            |e| matches!(e, BundleError::HardLink { .. }),
            "runs/p/r1/hard",
        ),
        (
            "character device",
            with(special(b"runs/p/r1/tty", b'3')),
            |e| matches!(e, BundleError::SpecialFile { .. }),
            "runs/p/r1/tty",
        ),
        (
            "block device",
            with(special(b"runs/p/r1/sda", b'4')),
            |e| matches!(e, BundleError::SpecialFile { .. }),
            "runs/p/r1/sda",
        ),
        (
            "fifo",
            with(special(b"runs/p/r1/fifo", b'6')),
            |e| matches!(e, BundleError::SpecialFile { .. }),
            "runs/p/r1/fifo",
        ),
        (
            "duplicate file",
            with(file("runs/p/r1/meta.json", b"{\"other\": 1}")),
            |e| matches!(e, BundleError::DuplicateMember { .. }),
            "runs/p/r1/meta.json",
        ),
        (
            "file where a directory is",
            with(file("runs/p/r1", b"x")),
            |e| matches!(e, BundleError::PathConflict { .. }),
            "runs/p/r1",
        ),
        (
            "directory under a file",
            with(file("runs/p/r1/meta.json/x", b"x")),
            |e| matches!(e, BundleError::PathConflict { .. }),
            "runs/p/r1/meta.json",
        ),
        (
            "name not UTF-8",
            with(TarEntry {
                name: b"runs/p/r1/\xff\xfe".to_vec(),
                ..file("", b"x")
            }),
            |e| matches!(e, BundleError::InvalidPath { .. }),
            "runs/p/r1/\u{fffd}\u{fffd}",
        ),
        (
            "size that lies (more than the stream holds)",
            gzip(&raw_tar(
                &[
                    file("runs/p/r1/meta.json", b"{}"),
                    TarEntry {
                        claimed: Some(1 << 20),
                        ..file("runs/p/r1/big", b"short")
                    },
                ],
                false,
            )),
            |e| matches!(e, BundleError::Truncated { .. }),
            "runs/p/r1/big",
        ),
        (
            "no end marker (cut at an entry boundary)",
            gzip(&raw_tar(&good_run(), false)),
            |e| matches!(e, BundleError::Truncated { .. }),
            "(after runs/p/r1/events.jsonl)",
        ),
        (
            "data after the end marker",
            gzip(&[raw_tar(&good_run(), true), b"junk".to_vec()].concat()),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "(after runs/p/r1/events.jsonl)",
        ),
        (
            "truncated gzip",
            {
                let whole = tar_gz(&good_run());
                whole[..whole.len() - 6].to_vec()
            },
            |e| matches!(e, BundleError::Truncated { .. }),
            "(after runs/p/r1/events.jsonl)",
        ),
        (
            "gzip checksum wrong",
            {
                let mut whole = tar_gz(&good_run());
                let crc_at = whole.len() - 8;
                whole[crc_at] ^= 0xFF;
                whole
            },
            |e| matches!(e, BundleError::Corrupt { .. }),
            "(after runs/p/r1/events.jsonl)",
        ),
        (
            "not gzip at all",
            b"\x1f\x8bthis is not deflate data".to_vec(),
            |e| {
                matches!(
                    e,
                    BundleError::Corrupt { .. } | BundleError::Truncated { .. }
                )
            },
            "(gzip stream)",
        ),
    ];
    for (what, archive, expect, member) in cases {
        refused_tar(what, &archive, &limits, expect, member);
    }
}

#[test]
fn a_long_gnu_name_is_checked_like_any_name() {
    let long = format!("runs/p/{}../../../../x", "d/".repeat(60));
    let mut entries = good_run();
    entries.push(TarEntry {
        name: b"././@LongLink".to_vec(),
        kind: b'L',
        link: Vec::new(),
        data: [long.as_bytes(), b"\0"].concat(),
        claimed: None,
    });
    entries.push(file("placeholder", b"x"));
    refused_tar(
        "long name traversal",
        &tar_gz(&entries),
        &Limits::default(),
        |e| matches!(e, BundleError::PathTraversal { .. }),
        &long,
    );
}

#[test]
fn tar_bombs_are_refused_by_total_and_by_ratio() {
    let zeros = vec![0u8; 4 << 20];
    let mut entries = good_run();
    entries.push(file("runs/p/r1/zeros.bin", &zeros));
    let archive = tar_gz(&entries);
    let total = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    refused_tar(
        "total",
        &archive,
        &total,
        |e| matches!(e, BundleError::TotalSizeExceeded { .. }),
        "runs/p/r1/zeros.bin",
    );
    let ratio = Limits {
        ratio_grace_bytes: 1 << 20,
        max_ratio: 100,
        ..Limits::default()
    };
    refused_tar(
        "ratio",
        &archive,
        &ratio,
        |e| matches!(e, BundleError::CompressionRatioExceeded { .. }),
        "runs/p/r1/zeros.bin",
    );
    // the same archive within the default limits lands
    let dest = tempfile::tempdir().unwrap();
    let read = read_upstream_tar_gz(&archive[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.runs, ["runs/p/r1"]);
    assert_eq!(
        fs::read(dest.path().join("runs/p/r1/zeros.bin")).unwrap(),
        zeros
    );
}

// --- zips, built entry by entry ---

#[derive(Clone)]
struct ZipEntry {
    name: Vec<u8>,
    data: Vec<u8>,
    deflate: bool,
    /// Unix mode (type and permissions) in the external attributes.
    mode: u32,
    flags: u16,
    method: Option<u16>,
    /// Changes to the central record alone (name, crc, size) after the local header is made.
    central_name: Option<Vec<u8>>,
    central_crc: Option<u32>,
    central_size: Option<u64>,
    /// Point the central record at the local header of this earlier entry instead.
    reuse_header_of: Option<usize>,
}

fn zfile(name: &str, data: &[u8]) -> ZipEntry {
    ZipEntry {
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
        deflate: true,
        mode: 0o100_644,
        flags: 0,
        method: None,
        central_name: None,
        central_crc: None,
        central_size: None,
        reuse_header_of: None,
    }
}

fn zip(entries: &[ZipEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut offsets = Vec::new();
    for entry in entries {
        let payload = if entry.deflate {
            let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(&entry.data).unwrap();
            encoder.finish().unwrap()
        } else {
            entry.data.clone()
        };
        let method = entry.method.unwrap_or(if entry.deflate { 8 } else { 0 });
        let crc = crc32fast::hash(&entry.data);
        let offset = match entry.reuse_header_of {
            Some(i) => offsets[i],
            None => {
                let offset = out.len() as u32;
                out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
                out.extend_from_slice(&20u16.to_le_bytes());
                out.extend_from_slice(&entry.flags.to_le_bytes());
                out.extend_from_slice(&method.to_le_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                out.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
                out.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(&entry.name);
                out.extend_from_slice(&payload);
                offset
            }
        };
        offsets.push(offset);
        let name = entry.central_name.as_ref().unwrap_or(&entry.name);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 3]); // made by: Unix
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&entry.flags.to_le_bytes());
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&entry.central_crc.unwrap_or(crc).to_le_bytes());
        central.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let size = entry.central_size.unwrap_or(entry.data.len() as u64) as u32;
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
        central.extend_from_slice(&(entry.mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn good_zip_run() -> Vec<ZipEntry> {
    vec![
        zfile("runs/p/r1/meta.json", b"{}"),
        zfile("runs/p/r1/events.jsonl", b"{\"type\": \"metrics\"}\n"),
    ]
}

fn refused_zip(what: &str, archive: &[u8], limits: &Limits, expect: Expect, member: &str) {
    let dest = tempfile::tempdir().unwrap();
    let err = read_upstream_archive(Cursor::new(archive), UpstreamKind::Zip, dest.path(), limits)
        .expect_err(&format!("{what}: accepted"));
    assert!(expect(&err), "{what}: wrong error {err:?}");
    assert_eq!(err.member(), Some(member), "{what}: {err}");
    assert!(is_empty(dest.path()), "{what}: dest not left empty");
}

#[test]
fn a_hand_built_zip_lands() {
    let mut entries = good_zip_run();
    entries.push(ZipEntry {
        deflate: false,
        ..zfile("runs/p/r1/stored.txt", b"stored bytes")
    });
    entries.push(ZipEntry {
        mode: 0o040_755,
        ..zfile("runs/p/r1/media/", b"")
    });
    let dest = tempfile::tempdir().unwrap();
    let read = read_upstream_archive(
        Cursor::new(zip(&entries)),
        UpstreamKind::Zip,
        dest.path(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(read.runs, ["runs/p/r1"]);
    assert_eq!(read.files, 3);
    assert!(dest.path().join("runs/p/r1/media").is_dir());
    assert_eq!(
        fs::read(dest.path().join("runs/p/r1/stored.txt")).unwrap(),
        b"stored bytes"
    );
}

#[test]
fn hostile_zips_are_refused_naming_the_entry_and_leave_nothing() {
    let limits = Limits::default();
    let with = |extra: ZipEntry| {
        let mut entries = good_zip_run();
        entries.push(extra);
        zip(&entries)
    };
    let good = zip(&good_zip_run());
    let cases: Vec<(&str, Vec<u8>, Expect, &str)> = vec![
        (
            "traversal",
            with(zfile("runs/../../x", b"x")),
            |e| matches!(e, BundleError::PathTraversal { .. }),
            "runs/../../x",
        ),
        (
            "absolute path",
            with(zfile("/etc/passwd", b"x")),
            |e| matches!(e, BundleError::AbsolutePath { .. }),
            "/etc/passwd",
        ),
        (
            "drive letter",
            with(zfile("C:/x", b"x")),
            |e| matches!(e, BundleError::AbsolutePath { .. }),
            "C:/x",
        ),
        (
            "symlink",
            with(ZipEntry {
                mode: 0o120_777,
                ..zfile("runs/p/r1/link", b"/etc/passwd")
            }),
            |e| matches!(e, BundleError::Symlink { .. }),
            "runs/p/r1/link",
        ),
        (
            "fifo",
            with(ZipEntry {
                mode: 0o010_644,
                ..zfile("runs/p/r1/fifo", b"")
            }),
            |e| matches!(e, BundleError::SpecialFile { .. }),
            "runs/p/r1/fifo",
        ),
        (
            "character device",
            with(ZipEntry {
                mode: 0o020_644,
                ..zfile("runs/p/r1/tty", b"")
            }),
            |e| matches!(e, BundleError::SpecialFile { .. }),
            "runs/p/r1/tty",
        ),
        (
            "duplicate name",
            with(zfile("runs/p/r1/meta.json", b"{\"again\": 1}")),
            |e| matches!(e, BundleError::DuplicateMember { .. }),
            "runs/p/r1/meta.json",
        ),
        (
            "file where a directory is",
            with(zfile("runs/p/r1/meta.json/x", b"x")),
            |e| matches!(e, BundleError::PathConflict { .. }),
            "runs/p/r1/meta.json",
        ),
        (
            "name not UTF-8",
            with(ZipEntry {
                name: b"runs/p/r1/\xff".to_vec(),
                ..zfile("", b"x")
            }),
            |e| matches!(e, BundleError::InvalidPath { .. }),
            "runs/p/r1/\u{fffd}",
        ),
        (
            "local header names another file",
            with(ZipEntry {
                central_name: Some(b"runs/p/r1/innocent.txt".to_vec()),
                ..zfile("runs/p/r1/evil.txt", b"x")
            }),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "runs/p/r1/innocent.txt",
        ),
        (
            "central CRC differs from the local one",
            with(ZipEntry {
                central_crc: Some(0xDEAD_BEEF),
                ..zfile("runs/p/r1/a.txt", b"x")
            }),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "runs/p/r1/a.txt",
        ),
        (
            "central size differs from the local one",
            with(ZipEntry {
                central_size: Some(1),
                ..zfile("runs/p/r1/a.txt", b"longer than one byte")
            }),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "runs/p/r1/a.txt",
        ),
        (
            "overlapping entries (one stream, two names)",
            {
                let mut entries = good_zip_run();
                entries.push(zfile("runs/p/r1/big", &[0u8; 1000]));
                entries.push(ZipEntry {
                    reuse_header_of: Some(2),
                    ..zfile("runs/p/r1/big", &[0u8; 1000])
                });
                zip(&entries)
            },
            |e| matches!(e, BundleError::Corrupt { .. }),
            "runs/p/r1/big",
        ),
        (
            "encrypted",
            with(ZipEntry {
                flags: 1,
                ..zfile("runs/p/r1/secret", b"x")
            }),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "runs/p/r1/secret",
        ),
        (
            "unsupported method",
            with(ZipEntry {
                method: Some(12),
                ..zfile("runs/p/r1/bz", b"x")
            }),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "runs/p/r1/bz",
        ),
        (
            "truncated (end record cut)",
            good[..good.len() - 10].to_vec(),
            |e| matches!(e, BundleError::Truncated { .. }),
            "(zip end of central directory record)",
        ),
        (
            "truncated (front cut, directory points past the data)",
            good[40..].to_vec(),
            |e| matches!(e, BundleError::Corrupt { .. }),
            "(zip central directory)",
        ),
        (
            "damaged deflate data",
            {
                let mut bytes = zip(&[zfile("runs/p/r1/meta.json", &[7u8; 4000])]);
                let data_at = 30 + "runs/p/r1/meta.json".len();
                for b in &mut bytes[data_at..data_at + 8] {
                    *b ^= 0x5A;
                }
                bytes
            },
            |e| {
                matches!(
                    e,
                    BundleError::Corrupt { .. }
                        | BundleError::Truncated { .. }
                        | BundleError::SizeMismatch { .. }
                )
            },
            "runs/p/r1/meta.json",
        ),
    ];
    for (what, archive, expect, member) in cases {
        refused_zip(what, &archive, &limits, expect, member);
    }
}

#[test]
fn zip_sizes_that_lie_and_bad_checksums_are_refused() {
    // a central size that lies consistently (local header agrees) is caught while inflating
    let mut bytes = zip(&[
        zfile("runs/p/r1/meta.json", b"{}"),
        zfile("runs/p/r1/data", b"0123456789"),
    ]);
    let patch = |bytes: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
            bytes[at + i..at + i + to.len()].copy_from_slice(to);
            at += i + from.len();
        }
    };
    // the uncompressed size (10) sits right before the name length (14) in both headers
    let mut lie = bytes.clone();
    patch(&mut lie, &[10, 0, 0, 0, 14, 0], &[4, 0, 0, 0, 14, 0]);
    refused_zip(
        "decompresses to more than declared",
        &lie,
        &Limits::default(),
        |e| matches!(e, BundleError::SizeMismatch { .. }),
        "runs/p/r1/data",
    );
    patch(&mut bytes, &[10, 0, 0, 0, 14, 0], &[99, 0, 0, 0, 14, 0]);
    refused_zip(
        "decompresses to less than declared",
        &bytes,
        &Limits::default(),
        |e| matches!(e, BundleError::Truncated { .. }),
        "runs/p/r1/data",
    );
    let crc = crc32fast::hash(b"0123456789").to_le_bytes();
    let mut bad_crc = zip(&[
        zfile("runs/p/r1/meta.json", b"{}"),
        zfile("runs/p/r1/data", b"0123456789"),
    ]);
    patch(&mut bad_crc, &crc, &[1, 2, 3, 4]);
    refused_zip(
        "CRC mismatch",
        &bad_crc,
        &Limits::default(),
        |e| matches!(e, BundleError::Corrupt { .. }),
        "runs/p/r1/data",
    );
}

#[test]
fn zip_bombs_are_refused_before_anything_is_written() {
    let mut entries = good_zip_run();
    entries.push(zfile("runs/p/r1/zeros.bin", &vec![0u8; 4 << 20]));
    let archive = zip(&entries);
    refused_zip(
        "total",
        &archive,
        &Limits {
            max_total_bytes: 1 << 20,
            ..Limits::default()
        },
        |e| matches!(e, BundleError::TotalSizeExceeded { .. }),
        "runs/p/r1/zeros.bin",
    );
    refused_zip(
        "ratio",
        &archive,
        &Limits {
            ratio_grace_bytes: 1 << 20,
            max_ratio: 100,
            ..Limits::default()
        },
        |e| matches!(e, BundleError::CompressionRatioExceeded { .. }),
        "runs/p/r1/zeros.bin",
    );
}

// --- mutation: never a panic, never a write outside dest, nothing left on error ---

/// Every path under `dir` (files and directories).
fn all_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

fn mutated(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, xor) in flips {
        let at = at % bytes.len();
        bytes[at] ^= xor.max(1);
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn check_mutant(archive: &[u8], kind: UpstreamKind) {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let limits = Limits {
        max_total_bytes: 64 << 20,
        ..Limits::default()
    };
    match read_upstream_archive(Cursor::new(archive), kind, &dest, &limits) {
        Ok(read) => {
            for run in &read.runs {
                assert!(dest.join(run).is_dir(), "{run} not landed");
            }
        }
        Err(_) => assert!(is_empty(&dest), "dest not left empty"),
    }
    // nothing beside dest
    assert_eq!(
        all_paths(outer.path())
            .iter()
            .filter(|p| !p.starts_with(&dest))
            .count(),
        0
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mutated_upstream_archives_never_panic_nor_escape(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        zip_kind in any::<bool>(),
    ) {
        let (name, kind) = if zip_kind {
            ("viewer-export.zip", UpstreamKind::Zip)
        } else {
            ("cli-export.tar.gz", UpstreamKind::TarGz)
        };
        check_mutant(&mutated(fixture(name), &flips, cut), kind);
    }

    #[test]
    fn random_bytes_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), zip_kind in any::<bool>()) {
        let kind = if zip_kind { UpstreamKind::Zip } else { UpstreamKind::TarGz };
        let prefixed = if zip_kind { [b"PK\x03\x04".as_slice(), &bytes].concat() } else { [[0x1f, 0x8b].as_slice(), &bytes].concat() };
        check_mutant(&prefixed, kind);
    }
}

/// A PAX extended header (what Python's tarfile writes for names over 100 bytes) naming `path`.
fn pax_path(path: &str) -> TarEntry {
    let body = format!(" path={path}\n");
    // the record's length counts its own digits
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    let record = format!("{len}{body}");
    TarEntry {
        name: b"PaxHeader".to_vec(),
        kind: b'x',
        link: Vec::new(),
        data: record.into_bytes(),
        claimed: None,
    }
}

#[test]
fn pax_names_land_and_are_checked_like_any_name() {
    let deep = format!("runs/{}r1", "segment/".repeat(15));
    let entries = vec![
        pax_path(&format!("{deep}/meta.json")),
        file("short-name-replaced", b"{}"),
    ];
    let dest = tempfile::tempdir().unwrap();
    let read =
        read_upstream_tar_gz(&tar_gz(&entries)[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.runs, std::slice::from_ref(&deep));
    assert!(dest.path().join(&deep).join("meta.json").is_file());

    let evil = format!(
        "runs/{}../../../../../../../../../../../../../../../../x",
        "s/".repeat(15)
    );
    let mut entries = good_run();
    entries.push(pax_path(&evil));
    entries.push(file("short-name-replaced", b"x"));
    refused_tar(
        "pax traversal",
        &tar_gz(&entries),
        &Limits::default(),
        |e| matches!(e, BundleError::PathTraversal { .. }),
        &evil,
    );
}

//! `runicorn-agent export` as a user runs it: which runs each option selects, `-o -` against
//! `-o FILE`, `--metadata-only`, `--with-artifacts` (read back with the bundle reader and listed
//! by the real agent from the landed root, every artifact file re-read and re-hashed), and a
//! failing export leaving no file. Every bundle is read back with `runicorn_bundle::read_bundle`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use runicorn_artifact_store::writer::{
    log_artifact, log_artifact_with, use_artifact, Artifact, LogOptions,
};
use runicorn_bundle::{read_bundle, Limits, ReadBundle};
use runicorn_protocol::run_format::artifacts::{RunLink, VersionManifest};
use runicorn_tests::{agent, describe, noise, output_within, read_json, sha256sum};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(120);
/// A creation time long ago (2020-09-13), for `--since`.
const LONG_AGO: f64 = 1_600_000_000.0;

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Writes a finished run at `<root>/runs/<path>/<id>` created at `created`, with two metric
/// points and a log line; returns its root-relative directory.
fn write_run(root: &Path, path: &str, id: &str, created: f64) -> String {
    let rel = format!("runs/{path}/{id}");
    let dir = root.join(&rel);
    fs::create_dir_all(&dir).unwrap();
    let meta = json!({"id": id, "path": path, "created_at": created, "hostname": "gpu-x"});
    fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    let status = json!({"status": "finished", "started_at": created, "ended_at": created + 5.0});
    fs::write(dir.join("status.json"), status.to_string()).unwrap();
    let mut events = String::new();
    for step in 1..=2 {
        let at = created + step as f64;
        events.push_str(
            &json!({"ts": at, "type": "metrics",
                    "data": {"loss": 1.0 / step as f64, "global_step": step, "time": at}})
            .to_string(),
        );
        events.push('\n');
    }
    fs::write(dir.join("events.jsonl"), events).unwrap();
    fs::write(dir.join("logs.txt"), format!("{id} trained\n")).unwrap();
    rel
}

/// `runicorn-agent export --root ROOT ARGS…`, run to its end.
fn export(root: &Path, args: &[&str]) -> Output {
    output_within(
        agent().arg("export").arg("--root").arg(root).args(args),
        LIMIT,
    )
}

/// Exports to a file in `dir` and reads the bundle back into a fresh directory.
fn export_and_read(root: &Path, dir: &Path, args: &[&str]) -> (PathBuf, ReadBundle) {
    let file = dir.join(format!("b{}.rbundle", fastrand_name()));
    let mut all: Vec<&str> = args.to_vec();
    let file_arg = file.to_string_lossy().into_owned();
    all.extend(["-o", &file_arg]);
    let out = export(root, &all);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        describe(&out)
    );
    let dest = dir.join(format!("landed{}", fastrand_name()));
    fs::create_dir(&dest).unwrap();
    let read = read_bundle(fs::File::open(&file).unwrap(), &dest, &Limits::default())
        .unwrap_or_else(|e| panic!("reading the bundle of {args:?}: {e}"));
    (dest, read)
}

/// A name unique within this process.
fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

fn runs_of(read: &ReadBundle) -> Vec<String> {
    assert_eq!(read.manifest.sources.len(), 1);
    read.manifest.sources[0].runs.clone()
}

#[test]
fn export_selects_the_runs_each_option_names() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let recent = now() - 60.0;
    let a = write_run(root.path(), "cv/a", "r1", LONG_AGO);
    let b = write_run(root.path(), "cv/b", "r2", LONG_AGO + 100.0);
    let c = write_run(root.path(), "nlp", "r3", recent);
    let d = write_run(root.path(), "nlp", "r4", recent + 1.0);
    fs::write(
        root.path().join(&d).join(".deleted"),
        json!({"deleted_at": recent, "reason": "test"}).to_string(),
    )
    .unwrap();

    let cases: &[(&[&str], Vec<&String>)] = &[
        (&[], vec![&a, &b, &c]),
        (&["--all"], vec![&a, &b, &c, &d]),
        (&["--path", "cv"], vec![&a, &b]),
        (&["--path", "cv/b"], vec![&b]),
        (&["--since", "3d"], vec![&c]),
        (&["--since", "2021-01-01"], vec![&c]),
        (&["--since", "2020-01-01T00:00:00Z"], vec![&a, &b, &c]),
        (&["--run", "r1", "--run", "runs/nlp/r3"], vec![&a, &c]),
        (&["--run", "cv/b/r2"], vec![&b]),
        // a deleted run named by --run is exported
        (&["--run", "r4"], vec![&d]),
        (&["--run", "r1", "--run", "r3", "--since", "1d"], vec![&c]),
    ];
    for (args, expected) in cases {
        let (_, read) = export_and_read(root.path(), work.path(), args);
        let expected: Vec<String> = expected.iter().map(|s| (*s).clone()).collect();
        assert_eq!(runs_of(&read), expected, "export {args:?}");
    }

    // the source: --name, this host, the root; every file lands as it was
    let (dest, read) = export_and_read(root.path(), work.path(), &["--name", "lab-1"]);
    let source = &read.manifest.sources[0];
    assert_eq!(source.name, "lab-1");
    assert!(!source.host.is_empty());
    assert_eq!(
        Path::new(&source.root),
        fs::canonicalize(root.path()).unwrap()
    );
    assert!(read.manifest.created_by.starts_with("runicorn-agent "));
    assert_eq!(read.members.len(), 3 * 4);
    let landed = ReadBundle::source_root(&dest, 0);
    for member in &read.members {
        assert_eq!(member.source, 0);
        let original = root.path().join(&member.root_path);
        assert_eq!(
            fs::read(member.location.as_ref().unwrap()).unwrap(),
            fs::read(&original).unwrap(),
            "{}",
            member.path
        );
        assert_eq!(member.sha256, sha256sum(&original));
    }
    // the landed root reads as the original (the agent lists the same runs and points)
    let listed = |r: &Path| -> Vec<(Value, Value, Value)> {
        runicorn_tests::ls_json(r, &[])
            .iter()
            .map(|v| {
                (
                    v["run_id"].clone(),
                    v["points"].clone(),
                    v["status"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(listed(&landed), listed(root.path()));
    // without --name, the source is named after the host
    let (_, read) = export_and_read(root.path(), work.path(), &["--run", "r1"]);
    assert_eq!(read.manifest.sources[0].name, read.manifest.sources[0].host);
}

#[test]
fn stdout_carries_the_same_bundle_as_a_file() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write_run(root.path(), "cv", "r1", LONG_AGO);
    let dir = write_run(root.path(), "cv", "r2", LONG_AGO + 1.0);
    fs::create_dir_all(root.path().join(&dir).join("media")).unwrap();
    fs::write(
        root.path().join(&dir).join("media/img.png"),
        noise(200_000, 7),
    )
    .unwrap();

    let file = work.path().join("runs.rbundle");
    let out = export(root.path(), &["--json", "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints the report");
    let from_file = fs::read(&file).unwrap();
    assert_eq!(report["bundle_bytes"], json!(from_file.len()));
    assert_eq!(report["file"], json!(file.to_str().unwrap()));

    let out = export(root.path(), &["--json", "-o", "-"]);
    assert!(out.status.success(), "{}", describe(&out));
    let streamed = out.stdout.clone();
    // with -o -, stdout is the bundle only; the report goes to stderr
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report_start = stderr.find('{').expect("the report on stderr");
    let report: Value = serde_json::from_str(&stderr[report_start..]).unwrap();
    assert_eq!(report["file"], "-");
    assert_eq!(report["bundle_bytes"], json!(streamed.len()));
    assert_eq!(report["runs"], 2);

    let read = |bytes: &[u8]| {
        let dest = tempfile::tempdir().unwrap();
        let read = read_bundle(bytes, dest.path(), &Limits::default()).unwrap();
        let files: Vec<(String, Vec<u8>)> = read
            .members
            .iter()
            .map(|m| {
                (
                    m.path.clone(),
                    fs::read(m.location.as_ref().unwrap()).unwrap(),
                )
            })
            .collect();
        (read.manifest, files)
    };
    let (mut manifest_file, files_file) = read(&from_file);
    let (mut manifest_stdout, files_stdout) = read(&streamed);
    assert_ne!(manifest_file.created_at, 0.0);
    manifest_file.created_at = 0.0;
    manifest_stdout.created_at = 0.0;
    assert_eq!(manifest_file, manifest_stdout);
    assert_eq!(files_file, files_stdout);
    assert_eq!(files_file.len(), 9);
}

#[test]
fn metadata_only_lists_big_files_as_omitted() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = write_run(root.path(), "cv", "r1", LONG_AGO);
    let run = root.path().join(&dir);
    fs::write(run.join("ckpt.pt"), noise(3 << 20, 11)).unwrap();
    fs::create_dir_all(run.join("media")).unwrap();
    fs::write(run.join("media/img.png"), noise(300_000, 12)).unwrap();
    fs::write(run.join("summary.json"), r#"{"best": 1}"#).unwrap();

    let file = work.path().join("meta.rbundle");
    let out = export(
        root.path(),
        &["--metadata-only", "--json", "-o", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["members"], 7);
    assert_eq!(report["omitted"], 2);
    assert!(
        fs::metadata(&file).unwrap().len() < 64 * 1024,
        "the big files' bytes are not inside"
    );

    let dest = work.path().join("landed");
    fs::create_dir(&dest).unwrap();
    let read = read_bundle(fs::File::open(&file).unwrap(), &dest, &Limits::default()).unwrap();
    let omitted: BTreeSet<&str> = read
        .members
        .iter()
        .filter(|m| m.location.is_none())
        .map(|m| m.root_path.as_str())
        .collect();
    let ckpt = format!("{dir}/ckpt.pt");
    let img = format!("{dir}/media/img.png");
    assert_eq!(omitted, BTreeSet::from([ckpt.as_str(), img.as_str()]));
    let listed = read.members.iter().find(|m| m.root_path == ckpt).unwrap();
    assert_eq!(listed.size, 3 << 20);
    assert_eq!(listed.sha256, sha256sum(&run.join("ckpt.pt")));
    let landed = ReadBundle::source_root(&dest, 0).join(&dir);
    assert!(!landed.join("ckpt.pt").exists());
    for carried in [
        "meta.json",
        "status.json",
        "summary.json",
        "events.jsonl",
        "logs.txt",
    ] {
        assert_eq!(
            fs::read(landed.join(carried)).unwrap(),
            fs::read(run.join(carried)).unwrap(),
            "{carried}"
        );
    }
}

/// Every file of every version listed by `runicorn-agent artifacts --json` under `root`, read
/// back through the store (whole pool file or recipe and chunks) and re-hashed.
fn check_versions_readable(root: &Path) -> Vec<(String, u64)> {
    let out = output_within(
        agent().args(["artifacts", "--json", "--root"]).arg(root),
        LIMIT,
    );
    assert!(out.status.success(), "{}", describe(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut versions = Vec::new();
    for artifact in listing["artifacts"].as_array().unwrap() {
        assert!(artifact["problem"].is_null(), "{artifact}");
        let dir = artifact["dir"].as_str().unwrap();
        for version in artifact["versions"].as_array().unwrap() {
            let number = version["version"].as_u64().unwrap();
            let vdir = root.join(dir).join(format!("v{number}"));
            assert!(vdir.is_dir(), "{dir} v{number} is listed but not there");
            let manifest: VersionManifest =
                serde_json::from_value(read_json(&vdir.join("manifest.json"))).unwrap();
            assert!(!manifest.files.is_empty());
            for file in &manifest.files {
                let mut bytes = Vec::new();
                runicorn_artifact_store::pool::copy_content(root, &file.sha256, &mut bytes)
                    .unwrap_or_else(|e| panic!("{dir} v{number} {}: {e}", file.path));
                assert_eq!(bytes.len() as u64, file.size);
            }
            versions.push((artifact["name"].as_str().unwrap().to_owned(), number));
        }
    }
    versions
}

#[test]
fn with_artifacts_carries_every_version_the_runs_touched() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let producer = write_run(root.path(), "train", "p1", LONG_AGO);
    let consumer = write_run(root.path(), "eval", "c1", LONG_AGO + 10.0);
    let bystander = write_run(root.path(), "other", "o1", LONG_AGO + 20.0);
    let link = |id: &str, dir: &str| RunLink {
        run_id: id.to_owned(),
        dir: dir.to_owned(),
        host: Some("gpu-x".to_owned()),
    };
    let files = work.path().join("files");
    fs::create_dir(&files).unwrap();
    let file = |name: &str, bytes: Vec<u8>| {
        let path = files.join(name);
        fs::write(&path, bytes).unwrap();
        path
    };
    // resnet v1: a big file kept whole (and linked under files/); v2: chunked straight away
    let mut v1 = Artifact::new("resnet", "model").unwrap();
    v1.add_file(&file("big.bin", noise(5 << 20, 1)), None)
        .unwrap();
    v1.add_file(&file("small.txt", b"v1".to_vec()), None)
        .unwrap();
    log_artifact(root.path(), &v1, &[], Some(link("p1", &producer))).unwrap();
    let mut v2 = Artifact::new("resnet", "model").unwrap();
    v2.add_file(&file("big2.bin", noise(5 << 20, 2)), Some("big.bin"))
        .unwrap();
    v2.add_file(&file("small2.txt", b"v2".to_vec()), Some("small.txt"))
        .unwrap();
    log_artifact_with(
        root.path(),
        &v2,
        &["best"],
        Some(link("p1", &producer)),
        &LogOptions {
            chunk_large_files: true,
        },
    )
    .unwrap();
    // the consumer uses resnet v1 and produces a dataset; the bystander's artifact stays home
    use_artifact(root.path(), "resnet:v1", None, Some(link("c1", &consumer))).unwrap();
    let mut data = Artifact::new("mnist", "dataset").unwrap();
    data.add_file(&file("train.csv", noise(10_000, 3)), None)
        .unwrap();
    log_artifact(root.path(), &data, &[], Some(link("c1", &consumer))).unwrap();
    let mut other = Artifact::new("unrelated", "model").unwrap();
    other
        .add_file(&file("u.bin", noise(50_000, 4)), None)
        .unwrap();
    log_artifact(root.path(), &other, &[], Some(link("o1", &bystander))).unwrap();

    let (dest, read) = export_and_read(
        root.path(),
        work.path(),
        &["--run", "p1", "--with-artifacts"],
    );
    let versions: Vec<(String, u64)> = read.manifest.sources[0]
        .artifact_versions
        .iter()
        .map(|v| (v.dir.clone(), v.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("artifacts/model/resnet".to_owned(), 1),
            ("artifacts/model/resnet".to_owned(), 2)
        ]
    );
    let landed = ReadBundle::source_root(&dest, 0);
    assert_eq!(
        check_versions_readable(&landed),
        [("resnet".to_owned(), 1), ("resnet".to_owned(), 2)]
    );
    assert!(read
        .members
        .iter()
        .any(|m| m.root_path.starts_with("artifacts/.chunks/")));
    assert!(read.members.iter().all(|m| m.location.is_some()));

    let (dest, read) = export_and_read(
        root.path(),
        work.path(),
        &["--run", "c1", "--with-artifacts"],
    );
    assert_eq!(read.manifest.sources[0].artifact_versions.len(), 2);
    let landed = ReadBundle::source_root(&dest, 0);
    let mut listed = check_versions_readable(&landed);
    listed.sort();
    assert_eq!(listed, [("mnist".to_owned(), 1), ("resnet".to_owned(), 1)]);
    assert!(!landed.join("artifacts/model/unrelated").exists());
    assert!(!landed.join("artifacts/model/resnet/v2").exists());
    // the landed index names only what was carried, `latest` the newest of it
    let index = read_json(&landed.join("artifacts/model/resnet/versions.json"));
    assert_eq!(index["aliases"], json!({"latest": 1}));
    assert_eq!(index["versions"].as_array().unwrap().len(), 1);

    // without the option, no artifact file travels
    let (_, read) = export_and_read(root.path(), work.path(), &["--run", "p1"]);
    assert!(read.manifest.sources[0].artifact_versions.is_empty());
    assert!(read
        .members
        .iter()
        .all(|m| m.root_path.starts_with("runs/")));
}

#[test]
fn a_failing_export_leaves_no_file() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write_run(root.path(), "cv", "same", LONG_AGO);
    write_run(root.path(), "nlp", "same", LONG_AGO + 1.0);
    let target = work.path().join("out.rbundle");
    let target_arg = target.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--run", "nope"], "\"nope\" matches no run"),
        (&["--run", "same"], "runs/cv/same"),
        (&["--since", "yesterday"], "ISO date"),
    ];
    for (args, says) in cases {
        let mut all = args.to_vec();
        all.extend(["-o", target_arg]);
        let out = export(root.path(), &all);
        assert!(!out.status.success(), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(
            fs::read_dir(work.path()).unwrap().count(),
            0,
            "{args:?} left a file"
        );
    }
    // an ambiguous id names both runs
    let out = export(root.path(), &["--run", "same", "-o", target_arg]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs/nlp/same"));
    // a destination that cannot be written is an error naming it
    let out = export(root.path(), &["-o", "/nonexistent-dir/out.rbundle"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/out.rbundle"));
    // a write that fails mid-bundle (the file size limit, its signal ignored so the write
    // returns EFBIG) fails the export and removes the partial bundle
    let run = root.path().join("runs/cv/same");
    fs::write(run.join("big.bin"), noise(400_000, 5)).unwrap();
    let out = output_within(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 40; exec \"$0\" \"$@\"")
            .arg(runicorn_tests::binary("runicorn-agent"))
            .args(["export", "--root"])
            .arg(root.path())
            .args(["--run", "runs/cv/same", "-o", target_arg]),
        LIMIT,
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("out.rbundle"),
        "{}",
        describe(&out)
    );
    assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    // the same export without the limit succeeds
    let out = export(root.path(), &["--run", "runs/cv/same", "-o", target_arg]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(target.is_file());
}

/// `ssh host runicorn-agent export -o -` through a real OpenSSH sshd, the stream read by the
/// bundle reader straight off the pipe as it arrives: the same bundle as a local export.
#[test]
fn exports_through_ssh_to_standard_output() {
    use runicorn_tests::sshd::Sshd;
    use std::process::Stdio;
    use std::sync::mpsc;

    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = write_run(root.path(), "cv", "far", LONG_AGO);
    fs::write(root.path().join(&dir).join("ckpt.pt"), noise(3 << 20, 9)).unwrap();
    write_run(root.path(), "cv", "near", LONG_AGO + 1.0);

    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let mut child = home
        .openssh(&sshd)
        .arg(format!(
            "{} export --root {} --run far --json -o -",
            runicorn_tests::binary("runicorn-agent").display(),
            root.path().display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dest = work.path().join("over-ssh");
    fs::create_dir(&dest).unwrap();
    let (tx, rx) = mpsc::channel();
    let reader_dest = dest.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_bundle(stdout, &reader_dest, &Limits::default()));
    });
    let read = match rx.recv_timeout(LIMIT) {
        Ok(read) => read,
        Err(_) => {
            let _ = child.kill();
            panic!("the bundle did not arrive over ssh within {LIMIT:?}");
        }
    };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let read = read.unwrap_or_else(|e| panic!("{e}\n{}", describe(&out)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"runs\": 1"));

    let (local_dest, local) = export_and_read(root.path(), work.path(), &["--run", "far"]);
    let mut remote_manifest = read.manifest.clone();
    let mut local_manifest = local.manifest.clone();
    remote_manifest.created_at = 0.0;
    local_manifest.created_at = 0.0;
    assert_eq!(remote_manifest, local_manifest);
    let ckpt = format!("{dir}/ckpt.pt");
    assert_eq!(
        fs::read(ReadBundle::source_root(&dest, 0).join(&ckpt)).unwrap(),
        fs::read(ReadBundle::source_root(&local_dest, 0).join(&ckpt)).unwrap()
    );
}

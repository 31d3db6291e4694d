//! `runicorn-hub export` over a store filled by real syncs of local roots: the bundle, read
//! back with `runicorn_bundle::read_bundle` and listed by the real agent, holds the store's
//! points, logs, records and hub annotations, one source per remote; files the cache holds are
//! carried, the others listed as omitted; the selection options, `-o -`, `--metadata-only`, and
//! failures that leave no file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use runicorn_bundle::{read_bundle, Limits, Manifest, ReadBundle};
use runicorn_store::{RunAnnotation, RunFilter, RunKey, RunRef, Store, TrashView};
use runicorn_tests::hub::{hub, show, source_points, sync_local_once, write_runs};
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{ls_json, noise, output_within, sha256sum};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn export(home: &ClientHome, hub_dir: &Path, args: &[&str]) -> Output {
    output_within(hub(home.path(), hub_dir).arg("export").args(args), LIMIT)
}

/// Reads a bundle file into a fresh directory.
fn land(bundle: &Path) -> (tempfile::TempDir, ReadBundle) {
    let dest = tempfile::tempdir().unwrap();
    let read = read_bundle(File::open(bundle).unwrap(), dest.path(), &Limits::default())
        .unwrap_or_else(|e| panic!("the hub's bundle is refused: {e}"));
    (dest, read)
}

/// The run directory of `run_id` under `root` (written by `write_runs`: `runs/exp/gN/ID`).
fn run_dir(root: &Path, run_id: &str) -> PathBuf {
    root.join(find_dir(root, run_id))
}

fn find_dir(root: &Path, run_id: &str) -> String {
    for entry in walk(&root.join("runs")) {
        if entry.file_name().is_some_and(|n| n == run_id) {
            return entry
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
        }
    }
    panic!("no run {run_id} under {}", root.display())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push(path.clone());
            out.extend(walk(&path));
        }
    }
    out
}

fn key_of(hub_dir: &Path, reference: &str) -> RunKey {
    let store = Store::open_read_only(hub_dir).unwrap();
    store
        .resolve_run(&RunRef::parse(reference).unwrap())
        .unwrap()
}

/// Asserts that source `index` of a landed bundle holds exactly the store's points, logs and
/// run list for the runs of `remote` it names, as the agent reads them.
fn assert_source_equals_store(
    dest: &Path,
    read: &ReadBundle,
    index: usize,
    hub_dir: &Path,
    remote: &str,
) {
    let source = &read.manifest.sources[index];
    assert_eq!(source.name, remote);
    let root = ReadBundle::source_root(dest, index);
    let landed = source_points(&root);
    let stored = stored_points(hub_dir, remote);
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        source.runs.iter().collect::<Vec<_>>(),
        "the landed runs of {remote}"
    );
    for dir in &source.runs {
        assert_eq!(landed[dir], stored[dir], "points of {remote}/{dir}");
    }
    // The real agent lists the landed root as the store lists those runs.
    let store = Store::open_read_only(hub_dir).unwrap();
    let rows = store
        .list_runs(&RunFilter {
            remote: Some(remote.to_owned()),
            include_deleted: true,
            include_removed: true,
            trash: TrashView::Include,
            ..RunFilter::default()
        })
        .unwrap();
    let listed = ls_json(&root, &[]);
    assert_eq!(listed.len(), source.runs.len(), "{listed:?}");
    for run in &listed {
        let dir = run["dir"].as_str().unwrap();
        let rel = Path::new(dir)
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| dir.to_owned());
        let row = rows
            .iter()
            .find(|r| r.dir == rel)
            .unwrap_or_else(|| panic!("{rel} is not a run of {remote} in the store"));
        assert_eq!(run["run_id"], row.id.as_str());
        assert_eq!(run["path"], row.path.as_str());
        assert_eq!(run["status"], row.status.as_str(), "{rel}");
        assert_eq!(run["points"], row.points, "{rel}");
        assert_eq!(run["last_step"], serde_json::json!(row.last_step), "{rel}");
        assert_eq!(
            run["created_at"],
            serde_json::json!(row.created_at),
            "{rel}"
        );
        let log = store.log_text(row.key).unwrap().map(|(_, b)| b);
        let landed_log = std::fs::read(root.join(&rel).join("logs.txt")).ok();
        assert_eq!(landed_log, log, "logs.txt of {rel}");
        assert!(log.is_some_and(|l| !l.is_empty()), "{rel} has a log");
    }
}

/// Every stored point of `remote`'s runs, those in the recycle bin included (`Series` shape).
fn stored_points(hub_dir: &Path, remote: &str) -> runicorn_tests::hub::Series {
    let store = Store::open_read_only(hub_dir).unwrap();
    let runs = store
        .list_runs(&RunFilter {
            remote: Some(remote.to_owned()),
            include_deleted: true,
            include_removed: true,
            trash: TrashView::Include,
            ..RunFilter::default()
        })
        .unwrap();
    let mut out = runicorn_tests::hub::Series::new();
    for run in runs {
        let entry = out.entry(run.dir.clone()).or_default();
        for key in store.metric_keys(run.key).unwrap() {
            let series = entry.entry(key.name.clone()).or_default();
            for (step, _time, value) in store.points(run.key, &key.name).unwrap() {
                let bits = if value.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    value.to_bits()
                };
                series.insert(step, bits);
            }
        }
    }
    out
}

fn member<'a>(read: &'a ReadBundle, path: &str) -> Option<&'a runicorn_bundle::LandedMember> {
    read.members.iter().find(|m| m.path == path)
}

#[test]
fn export_carries_the_stores_runs_with_annotations_and_cached_files() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let box_root = tempfile::tempdir().unwrap();
    let other_root = tempfile::tempdir().unwrap();
    write_runs(box_root.path(), 3, |i| 20 + 5 * i);
    write_runs(other_root.path(), 1, |_| 9);
    // run00001 has a small file (fetched into the cache below), a checkpoint the hub never
    // fetches, and a sparse file too big for the agent to hash.
    let run1 = run_dir(box_root.path(), "run00001");
    std::fs::write(run1.join("notes.txt"), b"lr 0.1 was best\n").unwrap();
    let ckpt = noise(3 << 20, 7);
    std::fs::write(run1.join("ckpt.pt"), &ckpt).unwrap();
    std::fs::create_dir_all(run1.join("media")).unwrap();
    std::fs::write(
        run1.join("media/1795696136316_bef569_samples.png"),
        b"\x89PNG not really",
    )
    .unwrap();
    File::create(run1.join("huge.bin"))
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    sync_local_once(home.path(), hub_dir.path(), box_root.path(), "box");
    sync_local_once(home.path(), hub_dir.path(), other_root.path(), "other");
    let fetched = tempfile::tempdir().unwrap();
    let out = output_within(
        hub(home.path(), hub_dir.path())
            .args(["fetch", "box/run00001", "--files", "notes.txt", "-o"])
            .arg(fetched.path()),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    // A cached events.jsonl is carried as it is, not rebuilt from the points.
    let other_events = run_dir(other_root.path(), "run00000").join("events.jsonl");
    let out = output_within(
        hub(home.path(), hub_dir.path())
            .args(["fetch", "other/run00000", "--files", "events.jsonl", "-o"])
            .arg(fetched.path()),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));

    // The hub's own annotations, and one run in its recycle bin.
    {
        let mut store = Store::open(hub_dir.path()).unwrap();
        let k1 = key_of(hub_dir.path(), "box/run00001");
        let k2 = key_of(hub_dir.path(), "box/run00002");
        store
            .annotate_run(
                k1,
                &RunAnnotation {
                    alias: Some(Some("best".into())),
                    tags: Some(Some(vec!["keep".into(), "lr".into()])),
                    notes: Some(Some("the one to cite".into())),
                },
            )
            .unwrap();
        store.trash_run(k2, 1_800_000_000.0).unwrap();
    }

    let out_dir = tempfile::tempdir().unwrap();
    let bundle = out_dir.path().join("three.rbundle");
    let out = export(
        &home,
        hub_dir.path(),
        &[
            "box/run00001",
            "box/run00002",
            "other/run00000",
            "-o",
            bundle.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["file"], bundle.to_str().unwrap());
    assert_eq!(report["runs"], 3);
    assert_eq!(report["omitted"], 2, "{report}");
    assert_eq!(
        report["bundle_bytes"],
        std::fs::metadata(&bundle).unwrap().len()
    );
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(
        skipped[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("run00001/huge.bin"),
        "{report}"
    );
    assert!(!out_dir.path().join("three.rbundle.partial").exists());

    let (dest, read) = land(&bundle);
    let manifest: &Manifest = &read.manifest;
    assert!(manifest.created_by.starts_with("runicorn-hub "));
    let names: Vec<&str> = manifest.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["box", "other"]);
    {
        let store = Store::open_read_only(hub_dir.path()).unwrap();
        for source in &manifest.sources {
            let remote = store.remote(&source.name).unwrap().unwrap();
            assert_eq!(Some(&source.host), remote.agent_host.as_ref());
            assert_eq!(Some(&source.root), remote.agent_root.as_ref());
        }
    }
    assert_eq!(report["members"], manifest.members.len());

    // Points, logs and records as the store holds them, read by the agent.
    assert_source_equals_store(dest.path(), &read, 0, hub_dir.path(), "box");
    assert_source_equals_store(dest.path(), &read, 1, hub_dir.path(), "other");

    // Annotations: the hub's, by run directory; the recycle bin as `deleted`.
    let box_source = &manifest.sources[0];
    let dir1 = find_dir(box_root.path(), "run00001");
    let dir2 = find_dir(box_root.path(), "run00002");
    let notes: BTreeMap<&str, &runicorn_bundle::Annotation> = box_source
        .annotations
        .iter()
        .map(|a| (a.run.as_str(), a))
        .collect();
    assert_eq!(notes.len(), 2, "{:?}", box_source.annotations);
    let a1 = notes[dir1.as_str()];
    assert_eq!(a1.alias.as_deref(), Some("best"));
    assert_eq!(a1.tags, ["keep", "lr"]);
    assert_eq!(a1.notes.as_deref(), Some("the one to cite"));
    assert!(!a1.deleted);
    assert!(notes[dir2.as_str()].deleted);
    assert!(manifest.sources[1].annotations.is_empty());

    // The cached file is carried exactly; the uncached checkpoint listed with its hash.
    let notes_member = member(&read, &format!("0/{dir1}/notes.txt")).expect("notes.txt listed");
    let landed = notes_member.location.as_ref().expect("notes.txt carried");
    assert_eq!(std::fs::read(landed).unwrap(), b"lr 0.1 was best\n");
    let ckpt_member = member(&read, &format!("0/{dir1}/ckpt.pt")).expect("ckpt.pt listed");
    assert!(ckpt_member.location.is_none(), "ckpt.pt was never fetched");
    assert_eq!(ckpt_member.size, ckpt.len() as u64);
    assert_eq!(ckpt_member.sha256, sha256sum(&run1.join("ckpt.pt")));
    assert!(member(&read, &format!("0/{dir1}/huge.bin")).is_none());
    let dir_other = find_dir(other_root.path(), "run00000");
    let events = member(&read, &format!("1/{dir_other}/events.jsonl")).unwrap();
    assert_eq!(
        std::fs::read(events.location.as_ref().unwrap()).unwrap(),
        std::fs::read(&other_events).unwrap()
    );
    // Not cached: rebuilt from the points, so not the file's bytes (the writer's `stage`
    // and key order are not stored), yet the same points (checked above).
    let rebuilt = member(&read, &format!("0/{dir1}/events.jsonl")).unwrap();
    let rebuilt = std::fs::read_to_string(rebuilt.location.as_ref().unwrap()).unwrap();
    assert_ne!(
        rebuilt.as_bytes(),
        std::fs::read(run1.join("events.jsonl")).unwrap()
    );
    // The image, known to the store only as a file, gets its event back from its name.
    let images: Vec<Value> = rebuilt
        .lines()
        .filter(|l| l.contains(r#""type":"image""#)) // metrics lines may hold NaN tokens
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "image")
        .collect();
    assert_eq!(images.len(), 1, "{rebuilt}");
    assert_eq!(images[0]["data"]["key"], "samples");
    assert_eq!(
        images[0]["data"]["path"],
        "media/1795696136316_bef569_samples.png"
    );
    assert_eq!(images[0]["ts"], 1_795_696_136.316);
    // meta.json and friends are there for every run.
    for (i, source) in manifest.sources.iter().enumerate() {
        for run in &source.runs {
            for name in ["meta.json", "status.json", "events.jsonl", "logs.txt"] {
                let m = member(&read, &format!("{i}/{run}/{name}"))
                    .unwrap_or_else(|| panic!("{i}/{run}/{name} missing"));
                assert!(m.location.is_some(), "{}", m.path);
            }
        }
    }
}

#[test]
fn selection_stdout_metadata_only_and_failures() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 4, |i| 10 + i);
    let run0 = run_dir(root.path(), "run00000");
    std::fs::write(run0.join("weights.bin"), noise(100_000, 3)).unwrap();
    // Soft-deleted on its server: exported with --all only.
    std::fs::write(
        run_dir(root.path(), "run00003").join(".deleted"),
        br#"{"deleted_at": 1800000000.0, "reason": "diverged"}"#,
    )
    .unwrap();
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
    let fetched = tempfile::tempdir().unwrap();
    let out = output_within(
        hub(home.path(), hub_dir.path())
            .args(["fetch", "box/run00000", "--files", "weights.bin", "-o"])
            .arg(fetched.path()),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let out_dir = tempfile::tempdir().unwrap();
    let file = |name: &str| out_dir.path().join(name);

    // --remote, to a file and to stdout: the same bundle apart from its creation time.
    let out = export(
        &home,
        hub_dir.path(),
        &[
            "--remote",
            "box",
            "-o",
            file("all.rbundle").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exported 3 runs"),
        "{}",
        show(&out)
    );
    let piped = export(&home, hub_dir.path(), &["--remote", "box", "-o", "-"]);
    assert!(piped.status.success(), "{}", show(&piped));
    std::fs::write(file("piped.rbundle"), &piped.stdout).unwrap();
    let (_d1, from_file) = land(&file("all.rbundle"));
    let (_d2, from_pipe) = land(&file("piped.rbundle"));
    assert_eq!(from_file.manifest.sources, from_pipe.manifest.sources);
    assert_eq!(from_file.manifest.members, from_pipe.manifest.members);
    assert_eq!(from_file.manifest.sources[0].runs.len(), 3);
    let dir0 = find_dir(root.path(), "run00000");
    let weights = member(&from_file, &format!("0/{dir0}/weights.bin")).unwrap();
    assert!(weights.location.is_some(), "a cached file is carried");

    // --all adds the soft-deleted run, landed soft-deleted.
    let out = export(
        &home,
        hub_dir.path(),
        &["--all", "-o", file("everything.rbundle").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let (d4, everything) = land(&file("everything.rbundle"));
    assert_eq!(everything.manifest.sources[0].runs.len(), 4);
    let landed_root = ReadBundle::source_root(d4.path(), 0);
    assert_eq!(ls_json(&landed_root, &[]).len(), 3);
    let with_deleted = ls_json(&landed_root, &["--all"]);
    let deleted: Vec<&str> = with_deleted
        .iter()
        .filter(|r| r["deleted"] == true)
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["run00003"]);

    // --path, --status, --where and --since select as `ls` would.
    let out = export(
        &home,
        hub_dir.path(),
        &[
            "--path",
            "exp/g2",
            "--status",
            "finished,failed",
            "-o",
            file("g2.rbundle").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let (_d5, g2) = land(&file("g2.rbundle"));
    assert_eq!(
        g2.manifest.sources[0].runs,
        [find_dir(root.path(), "run00002")]
    );
    let out = export(
        &home,
        hub_dir.path(),
        &[
            "--where",
            "path = exp/g1",
            "--since",
            "1d",
            "-o",
            file("g1.rbundle").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let (_d3, g1) = land(&file("g1.rbundle"));
    assert_eq!(
        g1.manifest.sources[0].runs,
        [find_dir(root.path(), "run00001")]
    );

    // --metadata-only: records, events and logs carried, every other file only listed.
    let out = export(
        &home,
        hub_dir.path(),
        &[
            "box/run00000",
            "--metadata-only",
            "-o",
            file("meta.rbundle").to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["omitted"], 1, "{report}");
    let (dest, meta) = land(&file("meta.rbundle"));
    let weights = member(&meta, &format!("0/{dir0}/weights.bin")).unwrap();
    assert!(weights.location.is_none());
    assert_eq!(weights.sha256, sha256sum(&run0.join("weights.bin")));
    assert_eq!(
        source_points(&ReadBundle::source_root(dest.path(), 0))[&dir0],
        stored_points(hub_dir.path(), "box")[&dir0]
    );

    // Failures exit non-zero and leave no file: a run that is not there, a selection of
    // nothing, a malformed --since.
    for (args, what) in [
        (vec!["box/nosuch"], "no run"),
        (vec!["--since", "2099-01-01"], "no run matches"),
        (vec!["--since", "soon"], "is not a time"),
        (vec!["--remote", "nosuch"], "no run matches"),
    ] {
        let target = file("failed.rbundle");
        let mut all = args.clone();
        all.extend(["-o", target.to_str().unwrap()]);
        let out = export(&home, hub_dir.path(), &all);
        assert!(!out.status.success(), "{args:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(what),
            "{args:?}: {}",
            show(&out)
        );
        assert!(!target.exists(), "{args:?} left a file");
        assert!(!file("failed.rbundle.partial").exists(), "{args:?}");
    }

    // A damaged copy in the hub's cache is refused, naming the file; nothing is left.
    let sha = sha256sum(&run0.join("weights.bin"));
    let cached = hub_dir.path().join("files").join(&sha[..2]).join(&sha[2..]);
    let mut perms = std::fs::metadata(&cached).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&cached, perms).unwrap();
    std::fs::write(&cached, noise(100_000, 4)).unwrap();
    let target = file("damaged.rbundle");
    let out = export(
        &home,
        hub_dir.path(),
        &["box/run00000", "-o", target.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("weights.bin") && err.contains("damaged"),
        "{}",
        show(&out)
    );
    assert!(!target.exists());
    assert!(!file("damaged.rbundle.partial").exists());
}

/// `runicorn-hub export --with-artifacts`: the versions the run produced come with their
/// manifests, metadata, aliases and lineage, written again from the store; the contents the
/// hub's cache holds (one whole, one as chunks) are carried, the one it never fetched is listed
/// without its bytes, and a version of a run not exported stays out. A fresh hub importing the
/// bundle lists them and serves the carried bytes with no server; importing it back into the
/// first hub keeps what that hub knew of the content it did not carry.
#[test]
fn with_artifacts_carries_the_versions_and_the_cached_contents() {
    use runicorn_artifact_store::writer::{log_artifact, log_artifact_with, Artifact, LogOptions};
    use runicorn_protocol::run_format::artifacts::{RunLink, VersionIndex};
    use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};

    let home = ClientHome::empty();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let producer = |run_id: &str| {
        let mut spec = RunSpec::new(&root, "runicorn-tests");
        spec.path = Some("train".into());
        spec.run_id = Some(run_id.into());
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
        let dir = w.dir().strip_prefix(&root).unwrap().display().to_string();
        w.finish(RunOutcome::finished()).unwrap();
        RunLink {
            run_id: run_id.into(),
            dir,
            host: None,
        }
    };
    let (first, second) = (producer("first"), producer("second"));
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let bytes: Vec<Vec<u8>> = (0..4)
        .map(|i| noise([2 << 20, 5 << 20, 1 << 20, 4096][i], 40 + i as u64))
        .collect();
    let chunked = LogOptions {
        chunk_large_files: true,
    };
    for (i, content) in bytes.iter().enumerate() {
        let file = files.join(format!("v{}.bin", i + 1));
        std::fs::write(&file, content).unwrap();
        let mut version = Artifact::new("resnet", "model").unwrap();
        version.add_file(&file, Some("model.bin")).unwrap();
        // v1 whole, v2 chunked with the alias `best`, v3 whole: by `first`; v4 by `second`.
        match i {
            1 => log_artifact_with(&root, &version, &["best"], Some(first.clone()), &chunked),
            3 => log_artifact(&root, &version, &[], Some(second.clone())),
            _ => log_artifact(&root, &version, &[], Some(first.clone())),
        }
        .unwrap();
    }
    let hub_a = tmp.path().join("hub-a");
    sync_local_once(home.path(), &hub_a, &root, "gpu");
    // The hub fetches v1 (a whole file) and v2 (chunks) into its cache; never v3.
    for reference in ["resnet:v1", "resnet:best"] {
        let out = output_within(
            hub(home.path(), &hub_a)
                .args(["fetch", "artifact", reference, "--remote", "gpu", "-o"])
                .arg(tmp.path().join(reference.replace(':', "-"))),
            LIMIT,
        );
        assert!(out.status.success(), "{reference}: {}", show(&out));
    }

    let bundle = tmp.path().join("models.rbundle");
    let out = export(
        &home,
        &hub_a,
        &[
            "gpu/first",
            "--with-artifacts",
            "--json",
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["artifact_versions"], 3, "{report:#}");

    let (dest, read) = land(&bundle);
    let source = &read.manifest.sources[0];
    let mut carried: Vec<(String, u64)> = source
        .artifact_versions
        .iter()
        .map(|v| (v.dir.clone(), v.version))
        .collect();
    carried.sort();
    let dir = "artifacts/model/resnet";
    assert_eq!(
        carried,
        [(dir.into(), 1), (dir.into(), 2), (dir.into(), 3)],
        "v4 was produced by a run not exported"
    );
    let index: VersionIndex = serde_json::from_slice(
        &std::fs::read(
            ReadBundle::source_root(dest.path(), 0)
                .join(dir)
                .join("versions.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        index.aliases.into_iter().collect::<Vec<_>>(),
        [("best".to_owned(), 2), ("latest".to_owned(), 3)]
    );
    assert_eq!(
        index.versions[0].produced_by.as_ref().unwrap().run_id,
        "first"
    );
    let pool = |i: usize| {
        let sha = sha256sum(&files.join(format!("v{}.bin", i + 1)));
        member(&read, &format!("0/artifacts/.pool/{}/{sha}", &sha[..2]))
            .unwrap_or_else(|| panic!("no pool member for {sha}"))
            .location
            .is_some()
    };
    assert!(pool(0) && pool(1), "v1 and v2 are carried");
    assert!(!pool(2), "v3's content is listed without its bytes");

    // A fresh hub: the versions listed, the carried bytes served with no server at all.
    let hub_b = tmp.path().join("hub-b");
    let out = output_within(
        hub(home.path(), &hub_b)
            .args(["import", "--json"])
            .arg(&bundle),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let listing: Value = serde_json::from_slice(
        &output_within(
            hub(home.path(), &hub_b).args(["artifacts", "--json", "--remote", "gpu"]),
            LIMIT,
        )
        .stdout,
    )
    .unwrap();
    let versions: Vec<u64> = listing["artifacts"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1], "{listing:#}");
    for (reference, content) in [("resnet:v1", &bytes[0]), ("resnet:best", &bytes[1])] {
        let to = tmp
            .path()
            .join(format!("b-{}", reference.replace(':', "-")));
        let out = output_within(
            hub(home.path(), &hub_b)
                .args(["fetch", "artifact", reference, "--remote", "gpu", "-o"])
                .arg(&to),
            LIMIT,
        );
        assert!(out.status.success(), "{reference}: {}", show(&out));
        assert_eq!(&std::fs::read(to.join("model.bin")).unwrap(), content);
    }
    let out = output_within(
        hub(home.path(), &hub_b)
            .args(["fetch", "artifact", "resnet:v3", "--remote", "gpu", "-o"])
            .arg(tmp.path().join("b-v3")),
        LIMIT,
    );
    assert!(
        !out.status.success(),
        "v3's bytes never came: {}",
        show(&out)
    );

    // Back into the first hub: v3's content is still known to be whole on the server.
    let stored_v3 = |hub_dir: &Path| {
        let store = Store::open_read_only(hub_dir).unwrap();
        let artifact = store
            .artifact_by_name("gpu", "model", "resnet")
            .unwrap()
            .unwrap();
        store.artifact_version_files(artifact.id, 3, 10).unwrap()[0]
            .stored
            .clone()
    };
    assert_eq!(stored_v3(&hub_a), "whole");
    assert_eq!(stored_v3(&hub_b), "unknown");
    let out = output_within(hub(home.path(), &hub_a).arg("import").arg(&bundle), LIMIT);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(stored_v3(&hub_a), "whole");
}

//! `runicorn-hub import` as a user runs it: runs written on a "server" root, carried in a bundle
//! (the bundle writer of `runicorn-agent export`), imported by the real `runicorn-hub` into a
//! real store, and compared row by row with what a direct sync of the same root over a real
//! sshd stores: runs and their records, every point, the log bytes, the manifests. Then the
//! merges (twice = once, two hosts, a later bundle completing a run) and refusals that leave
//! the store as it was.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_tests::hub::{agent_path, append_steps, connect_ssh_once, hub, show, write_runs};
use runicorn_tests::sshd::Sshd;
use runicorn_tests::{binary, output_within};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

/// Writes a bundle of every run under `root` (source name `name`) to `out` with the agent.
fn export(root: &Path, name: &str, out: &Path) {
    let result = output_within(
        std::process::Command::new(binary("runicorn-agent"))
            .arg("export")
            .arg("--root")
            .arg(root)
            .args(["--name", name, "-o"])
            .arg(out),
        LIMIT,
    );
    assert!(result.status.success(), "{}", show(&result));
}

fn import(home: &Path, hub_dir: &Path, args: &[&str]) -> Output {
    output_within(
        hub(home, hub_dir)
            .arg("import")
            .arg("--agent")
            .arg(agent_path())
            .args(args),
        LIMIT,
    )
}

fn import_json(home: &Path, hub_dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = import(home, hub_dir, &all);
    assert!(out.status.success(), "{}", show(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

/// Everything the store holds of `remote`'s runs, as comparable text: the run rows (the
/// agent's view: records, events and log state, manifest), every point, the log bytes.
/// Hub-local bookkeeping (ids, times of first sight, sequence numbers, cursors) is left out.
fn snapshot(hub_dir: &Path, remote: &str) -> Vec<String> {
    let db = rusqlite::Connection::open_with_flags(
        hub_dir.join("store.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut out = Vec::new();
    let mut query = |sql: &str| {
        let mut stmt = db.prepare(sql).unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([remote], |r| {
                let mut line = Vec::new();
                for i in 0..columns {
                    line.push(format!("{:?}", r.get_ref(i)?));
                }
                Ok(line.join(" | "))
            })
            .unwrap();
        for row in rows {
            out.push(row.unwrap());
        }
    };
    query(
        "SELECT r.dir, r.run_id, r.path, r.layout, r.alias, r.tags, r.status, r.reason,
            r.created_at, r.ended_at, r.hostname, r.deleted, r.meta, r.status_record, r.summary,
            r.config, r.environment, r.events_bytes, r.events_lines, r.events_points,
            r.events_keys, r.events_last_step, r.events_last_event_at, r.events_corrupt_lines,
            r.log_bytes, r.copy_offset, r.log_end, r.assets, r.removed
         FROM runs r JOIN remotes m ON m.id = r.remote WHERE m.name = ?1 ORDER BY r.dir",
    );
    query(
        "SELECT r.dir, k.name, p.step, p.time, p.value FROM points p
         JOIN runs r ON r.id = p.run JOIN remotes m ON m.id = r.remote JOIN metric_keys k ON k.id = p.key
         WHERE m.name = ?1 ORDER BY r.dir, k.name, p.step",
    );
    query(
        "SELECT r.dir, group_concat(c.text, '') FROM
           (SELECT * FROM log_chunks ORDER BY run, start) c
         JOIN runs r ON r.id = c.run JOIN remotes m ON m.id = r.remote
         WHERE m.name = ?1 GROUP BY r.dir ORDER BY r.dir",
    );
    query(
        "SELECT r.dir, f.path, f.size, f.sha256, round(f.mtime, 3) FROM files f
         JOIN runs r ON r.id = f.run JOIN remotes m ON m.id = r.remote
         WHERE m.name = ?1 ORDER BY r.dir, f.path",
    );
    out
}

/// Every row of every table of the store, for "nothing changed" checks.
fn whole_store(hub_dir: &Path) -> String {
    let db = rusqlite::Connection::open_with_flags(
        hub_dir.join("store.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = String::new();
    for t in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.push_str(&format!("== {t}\n{}\n", rows.join("\n")));
    }
    out
}

/// A root with a few finished runs, one with a checkpoint file and a non-UTF-8 log line.
fn server_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    write_runs(&root, 4, |i| 20 + i * 15);
    let mut spec = RunSpec::new(&root, "runicorn-tests");
    spec.path = Some("ckpt".into());
    spec.run_id = Some("withfiles".into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 0.5)], Some(0), None).unwrap();
    w.log_text("caf\u{e9} \u{1F984}").unwrap();
    let run_dir = w.dir().to_owned();
    std::fs::create_dir_all(run_dir.join("ckpt")).unwrap();
    std::fs::write(
        run_dir.join("ckpt/model.pt"),
        runicorn_tests::noise(300_000, 7),
    )
    .unwrap();
    w.finish(RunOutcome::finished()).unwrap();
    root
}

fn runs_with(report: &Value, verdict: &str) -> usize {
    report["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["sources"].as_array().unwrap())
        .flat_map(|s| s["runs"].as_array().unwrap())
        .filter(|r| r["verdict"] == verdict)
        .count()
}

#[test]
fn an_imported_bundle_stores_what_a_direct_ssh_sync_stores_and_twice_is_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = server_root(tmp.path());
    let bundle = tmp.path().join("gpu.rbundle");
    export(&root, "gpu", &bundle);

    // The direct way: a sync over a real sshd.
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let synced = tmp.path().join("hub-synced");
    connect_ssh_once(&home, &synced, &sshd, &root, &["--prefetch", "none"]);

    // The offline way: the bundle into a fresh hub.
    let imported = tmp.path().join("hub-imported");
    let report = import_json(home.path(), &imported, &[bundle.to_str().unwrap()]);
    assert_eq!(runs_with(&report, "new"), 5, "{report:#}");
    assert_eq!(report["bundles"][0]["kind"], "runicorn");
    assert_eq!(report["bundles"][0]["sources"][0]["remote"], "gpu");
    assert_eq!(report["bundles"][0]["sources"][0]["remote_created"], true);

    let want = snapshot(&synced, "gpu");
    let got = snapshot(&imported, "gpu");
    assert!(
        want.len() > 5 * 20,
        "the direct sync stored runs, points and files"
    );
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w, "the imported store differs from the synced one");
    }
    assert_eq!(got.len(), want.len());

    // Offline, the checkpoint's bytes are in the cache: `fetch` copies them with no server.
    let out_dir = tmp.path().join("fetched");
    let fetched = output_within(
        hub(home.path(), &imported)
            .args(["fetch", "gpu/withfiles", "--files", "ckpt/*", "-o"])
            .arg(&out_dir),
        LIMIT,
    );
    assert!(fetched.status.success(), "{}", show(&fetched));
    assert_eq!(
        std::fs::read(out_dir.join("ckpt/model.pt")).unwrap(),
        runicorn_tests::noise(300_000, 7)
    );
    // The remote is known only from bundles: `ls` shows it, nothing tries to reach it.
    let remotes = output_within(
        hub(home.path(), &imported).args(["remotes", "--json"]),
        LIMIT,
    );
    assert!(remotes.status.success(), "{}", show(&remotes));
    assert!(String::from_utf8_lossy(&remotes.stdout).contains("imported from"));

    // Twice = once.
    let before = whole_store(&imported);
    let again = import_json(home.path(), &imported, &[bundle.to_str().unwrap()]);
    assert_eq!(runs_with(&again, "unchanged"), 5, "{again:#}");
    assert_eq!(again["totals"]["points"], 0);
    assert_eq!(
        whole_store(&imported),
        before,
        "importing twice changed the store"
    );

    // The server becomes reachable: `connect` of the same name takes the imported runs over,
    // and the store is again what a direct sync gives (no point twice, nothing lost).
    connect_ssh_once(&home, &imported, &sshd, &root, &["--prefetch", "none"]);
    assert_eq!(snapshot(&imported, "gpu"), want);
}

#[test]
fn bundles_of_two_hosts_merge_and_a_later_bundle_completes_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let hub_dir = tmp.path().join("hub");

    let a = tmp.path().join("a");
    write_runs(&a, 2, |_| 30);
    let b = tmp.path().join("b");
    // Still training on b: no final status yet.
    let mut spec = RunSpec::new(&b, "runicorn-tests");
    spec.path = Some("long".into());
    spec.run_id = Some("training".into());
    let mut w = RunWriter::create(&spec).unwrap();
    for s in 0..10 {
        w.log_metrics(&[("loss", 1.0 / (s as f64 + 1.0))], Some(s), None)
            .unwrap();
    }
    w.flush().unwrap();
    let run_dir = w.dir().to_owned();

    let (bundle_a, bundle_b1, bundle_b2) = (
        tmp.path().join("a.rbundle"),
        tmp.path().join("b1.rbundle"),
        tmp.path().join("b2.rbundle"),
    );
    export(&a, "host-a", &bundle_a);
    export(&b, "host-b", &bundle_b1);
    // Dry run first: it says what would change and changes nothing.
    let dry = import_json(
        &home,
        &hub_dir,
        &[
            "--dry-run",
            bundle_a.to_str().unwrap(),
            bundle_b1.to_str().unwrap(),
        ],
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(runs_with(&dry, "new"), 3, "{dry:#}");
    let listed = output_within(hub(&home, &hub_dir).args(["ls", "--json"]), LIMIT);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("training"),
        "a dry run stored a run: {}",
        show(&listed)
    );

    let both = import_json(
        &home,
        &hub_dir,
        &[bundle_a.to_str().unwrap(), bundle_b1.to_str().unwrap()],
    );
    assert_eq!(runs_with(&both, "new"), 3, "{both:#}");
    let ls = runicorn_tests::hub::json_of(hub(&home, &hub_dir).args(["ls", "--json"]));
    let remotes: std::collections::BTreeSet<String> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["remote"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(remotes, ["host-a".to_owned(), "host-b".to_owned()].into());
    assert_eq!(
        runicorn_tests::hub::count(&runicorn_tests::hub::store_points(&hub_dir, "host-b")),
        10
    );

    // The run goes on and finishes; the later bundle completes it.
    append_steps(&run_dir, 10, 15);
    w.finish(RunOutcome::finished()).unwrap();
    export(&b, "host-b", &bundle_b2);
    let later = import_json(&home, &hub_dir, &[bundle_b2.to_str().unwrap()]);
    assert_eq!(runs_with(&later, "updated"), 1, "{later:#}");
    runicorn_tests::hub::assert_same_points(&b, &hub_dir, "host-b");
    let ls = runicorn_tests::hub::json_of(hub(&home, &hub_dir).args(["ls", "--json"]));
    let run = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "training")
        .unwrap();
    assert_eq!(run["status"], "finished", "{run:#}");

    // The earlier bundle again: the store's copy is further along and is kept.
    let before = whole_store(&hub_dir);
    let older = import_json(&home, &hub_dir, &[bundle_b1.to_str().unwrap()]);
    assert_eq!(runs_with(&older, "older"), 1, "{older:#}");
    assert_eq!(whole_store(&hub_dir), before);
}

#[test]
fn refused_imports_name_the_problem_and_leave_the_store_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let hub_dir = tmp.path().join("hub");
    let root = tmp.path().join("root");
    write_runs(&root, 3, |_| 40);
    let bundle = tmp.path().join("good.rbundle");
    export(&root, "gpu", &bundle);
    // Something in the store already.
    let first = tmp.path().join("first");
    write_runs(&first, 1, |_| 5);
    let first_bundle = tmp.path().join("first.rbundle");
    export(&first, "old", &first_bundle);
    import_json(&home, &hub_dir, &[first_bundle.to_str().unwrap()]);
    let before = whole_store(&hub_dir);

    let bytes = std::fs::read(&bundle).unwrap();
    let truncated = tmp.path().join("truncated.rbundle");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let not_a_bundle = tmp.path().join("notes.txt");
    std::fs::write(&not_a_bundle, "just some notes\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![truncated.display().to_string()], "truncated"),
        (vec![not_a_bundle.display().to_string()], "is not a bundle"),
        // One good bundle beside a bad one: nothing of either lands.
        (
            vec![
                bundle.display().to_string(),
                truncated.display().to_string(),
            ],
            "truncated",
        ),
        (
            vec![
                "--as".into(),
                "bad name!".into(),
                bundle.display().to_string(),
            ],
            "not a usable remote name",
        ),
        (
            vec![tmp.path().join("missing.rbundle").display().to_string()],
            "cannot read",
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = import(&home, &hub_dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}: {}",
            show(&out)
        );
        assert_eq!(whole_store(&hub_dir), before, "{args:?} changed the store");
    }
    // Nothing is left behind in the store's temporary folder.
    let leftovers: Vec<_> = std::fs::read_dir(hub_dir.join("tmp/imports"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_export_streamed_through_ssh_imports_from_standard_input() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    write_runs(&root, 3, |i| 25 + i);
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    // `ssh login-node runicorn-agent export -o - | runicorn-hub import -`, with OpenSSH's own
    // client: the bundle never touches the disk on either side.
    let mut ssh = home
        .openssh(&sshd)
        .arg(format!(
            "{} export --root {} --name gpu -o -",
            agent_path().display(),
            root.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hub_dir = tmp.path().join("hub");
    let imported = runicorn_tests::output_within_from(
        hub(home.path(), &hub_dir)
            .args(["import", "--json", "--agent"])
            .arg(agent_path())
            .arg("-"),
        Stdio::from(ssh.stdout.take().unwrap()),
        LIMIT,
    );
    let ssh_out = ssh.wait_with_output().unwrap();
    assert!(ssh_out.status.success(), "{}", show(&ssh_out));
    assert!(imported.status.success(), "{}", show(&imported));
    let report: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(report["bundles"][0]["file"], "-");
    assert_eq!(runs_with(&report, "new"), 3, "{report:#}");
    runicorn_tests::hub::assert_same_points(&root, &hub_dir, "gpu");
}

/// Upstream runicorn 0.7.2's own export archives (its CLI's `.tar.gz`, its viewer's `.zip`;
/// fixtures written by the real package) import, and their runs show with their points; a
/// damaged copy of each is refused and changes nothing.
#[test]
fn upstream_export_archives_import_and_their_runs_show() {
    let fixtures = runicorn_tests::workspace_root().join("tests/fixtures/upstream-0.7.2-export");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let want = [
        ("20261205_055047_3eaf31", 4, "finished"),
        ("20261205_055047_6bd6a3", 5, "finished"),
        ("20261205_055047_97981a", 3, "failed"),
    ];
    for (file, kind) in [
        ("cli-export.tar.gz", "upstream_tar"),
        ("viewer-export.zip", "upstream_zip"),
    ] {
        let hub_dir = tmp.path().join(format!("hub-{kind}"));
        let archive = fixtures.join(file);
        // A damaged copy first: refused, and the store holds nothing.
        let bytes = std::fs::read(&archive).unwrap();
        let damaged = tmp.path().join(format!("damaged-{file}"));
        let mut cut = bytes.clone();
        let mid = cut.len() / 2;
        cut[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0x5A);
        std::fs::write(&damaged, &cut).unwrap();
        let refused = import(&home, &hub_dir, &[damaged.to_str().unwrap()]);
        assert_eq!(refused.status.code(), Some(2), "{file}: {}", show(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("nothing was imported"),
            "{file}: {}",
            show(&refused)
        );

        let report = import_json(&home, &hub_dir, &[archive.to_str().unwrap()]);
        assert_eq!(report["bundles"][0]["kind"], kind, "{report:#}");
        assert_eq!(runs_with(&report, "new"), 3, "{report:#}");
        // Upstream's meta.json names the host that wrote the runs: that is the remote.
        assert_eq!(
            report["bundles"][0]["sources"][0]["remote"], "vm",
            "{report:#}"
        );
        let ls = runicorn_tests::hub::json_of(hub(&home, &hub_dir).args(["ls", "--json"]));
        for (run_id, steps, status) in want {
            let run = ls
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["run_id"] == run_id)
                .unwrap_or_else(|| panic!("{file}: {run_id} missing from {ls:#}"));
            assert_eq!(run["status"], status, "{file}: {run:#}");
            let metrics = runicorn_tests::hub::json_of(hub(&home, &hub_dir).args([
                "metrics",
                &format!("vm/{run_id}"),
                "--json",
            ]));
            let text = metrics.to_string();
            assert!(text.contains("loss"), "{file}: {metrics:#}");
            let points =
                runicorn_tests::hub::count(&runicorn_tests::hub::store_points(&hub_dir, "vm"));
            assert!(points >= steps, "{file}: {points} points");
        }
        // Twice = once, for these too.
        let before = whole_store(&hub_dir);
        let again = import_json(&home, &hub_dir, &[archive.to_str().unwrap()]);
        assert_eq!(runs_with(&again, "unchanged"), 3, "{again:#}");
        assert_eq!(whole_store(&hub_dir), before);
    }
}

/// Every file under `dir` (relative path and size), for "nothing changed on disk" checks.
fn files_under(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, entry.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// Each hostile case the bundle reader knows (traversal, absolute paths, links, devices,
/// duplicates, sizes that lie, checksum mismatch, truncation, an unknown version, members
/// missing either way, a decompression bomb), through the real `runicorn-hub import`: a non-zero
/// exit, a message naming the member, and the store's rows and cached files as they were.
#[test]
fn every_hostile_bundle_is_refused_and_the_store_keeps_its_rows_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let hub_dir = tmp.path().join("hub");
    let root = server_root(tmp.path());
    let good = tmp.path().join("good.rbundle");
    export(&root, "gpu", &good);
    import_json(&home, &hub_dir, &[good.to_str().unwrap()]);
    let rows = whole_store(&hub_dir);
    let cached = files_under(&hub_dir.join("files"));
    assert!(!cached.is_empty(), "the good bundle filled the cache");

    let cases = runicorn_bundle::hostile::hostile_bundles();
    assert!(cases.len() >= 15);
    for case in cases {
        let file = tmp.path().join("hostile.rbundle");
        std::fs::write(&file, &case.bytes).unwrap();
        let out = import(&home, &hub_dir, &[file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {}", case.case, show(&out));
        assert!(
            stderr.contains("nothing was imported") && stderr.contains(&case.member),
            "{}: the refusal should name {:?}: {}",
            case.case,
            case.member,
            show(&out)
        );
        assert_eq!(
            whole_store(&hub_dir),
            rows,
            "{} changed the store",
            case.case
        );
        assert_eq!(
            files_under(&hub_dir.join("files")),
            cached,
            "{} changed the cache",
            case.case
        );
        assert!(
            files_under(&hub_dir.join("tmp/imports")).is_empty(),
            "{} left files behind",
            case.case
        );
    }
    assert!(!Path::new("/tmp/runicorn-hostile-absolute").exists());
}

/// Artifacts travel too: `export --with-artifacts` carries the versions a run touched (one whole
/// in the pool, one as chunks), the import lists them, and their bytes come out of the hub's
/// cache with no server at all (`fetch artifact`), each checked against its SHA-256.
#[test]
fn artifact_versions_in_a_bundle_are_listed_and_their_bytes_fetched_offline() {
    use runicorn_artifact_store::writer::{log_artifact, log_artifact_with, Artifact, LogOptions};
    use runicorn_protocol::run_format::artifacts::RunLink;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let root = tmp.path().join("root");
    let mut spec = RunSpec::new(&root, "runicorn-tests");
    spec.path = Some("train".into());
    spec.run_id = Some("producer".into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    let run_dir = w.dir().strip_prefix(&root).unwrap().display().to_string();
    w.finish(RunOutcome::finished()).unwrap();
    let link = RunLink {
        run_id: "producer".into(),
        dir: run_dir,
        host: None,
    };
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let (whole, chunked) = (
        runicorn_tests::noise(5 << 20, 11),
        runicorn_tests::noise(5 << 20, 12),
    );
    std::fs::write(files.join("v1.bin"), &whole).unwrap();
    std::fs::write(files.join("v2.bin"), &chunked).unwrap();
    let mut v1 = Artifact::new("resnet", "model").unwrap();
    v1.add_file(&files.join("v1.bin"), Some("model.bin"))
        .unwrap();
    log_artifact(&root, &v1, &[], Some(link.clone())).unwrap();
    let mut v2 = Artifact::new("resnet", "model").unwrap();
    v2.add_file(&files.join("v2.bin"), Some("model.bin"))
        .unwrap();
    let chunks = LogOptions {
        chunk_large_files: true,
    };
    log_artifact_with(&root, &v2, &["best"], Some(link), &chunks).unwrap();

    let bundle = tmp.path().join("art.rbundle");
    let out = output_within(
        std::process::Command::new(binary("runicorn-agent"))
            .arg("export")
            .arg("--root")
            .arg(&root)
            .args(["--name", "gpu", "--with-artifacts", "-o"])
            .arg(&bundle),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let hub_dir = tmp.path().join("hub");
    let report = import_json(&home, &hub_dir, &[bundle.to_str().unwrap()]);
    assert_eq!(
        report["bundles"][0]["sources"][0]["artifacts"], 1,
        "{report:#}"
    );
    // No server: the remote is known only from the bundle.
    for (reference, bytes) in [("resnet:v1", &whole), ("resnet:best", &chunked)] {
        let dir = tmp.path().join(reference.replace(':', "-"));
        let out = output_within(
            hub(&home, &hub_dir)
                .args(["fetch", "artifact", reference, "--remote", "gpu", "-o"])
                .arg(&dir),
            LIMIT,
        );
        assert!(out.status.success(), "{reference}: {}", show(&out));
        assert_eq!(
            &std::fs::read(dir.join("model.bin")).unwrap(),
            bytes,
            "{reference}"
        );
    }
}

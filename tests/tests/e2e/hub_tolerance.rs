//! One bad item is the run's problem, not the remote's (issue 9, items 2 and 3, hub side): an
//! agent's answer holding a run directory or a file name the protocol forbids, one run's
//! ragged points or backwards log chunk, or a record nested past the store's depth limit is
//! stored without the bad item, which is recorded with its reason and shown by `remotes`,
//! `ls` and the dashboard API; the cursor moves on and a later sync goes on from there.
//! Against a deliberately odd agent (`tests/support/broken_agent.py` mode `mixed`, so the hub's
//! own checks are exercised whatever the real agent leaves out) and the real agent on a root
//! holding hostile names next to good runs, over `local:` and over a real sshd.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use runicorn_store::{RunFilter, Store};
use runicorn_tests::hub::{agent_path, hub, show, source_points, store_points, write_runs};
use runicorn_tests::sshd::{ClientHome, Sshd};
use runicorn_tests::workspace_root;
use serde_json::Value;

/// Every command here must end within this.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to its end, killing it (and failing) past [`TIMEOUT`].
fn run(cmd: &mut Command) -> Output {
    runicorn_tests::output_within(cmd, TIMEOUT)
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

fn all_runs(hub_dir: &Path) -> Vec<runicorn_store::RunRow> {
    Store::open_read_only(hub_dir)
        .unwrap()
        .list_runs(&RunFilter {
            include_removed: true,
            include_deleted: true,
            ..RunFilter::default()
        })
        .unwrap()
}

fn connect_mixed(home: &Path, hub_dir: &Path) -> Output {
    let root = tempfile::tempdir().unwrap();
    run(hub(home, hub_dir)
        .arg("connect")
        .arg(format!("local:{}", root.path().display()))
        .arg("--agent")
        .arg(workspace_root().join("tests/support/broken_agent.py"))
        .args(["--name", "odd", "--once", "--no-ui"])
        .env("BROKEN_AGENT_MODE", "mixed"))
}

#[test]
fn one_bad_item_is_refused_alone_and_the_rest_is_stored() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let out = connect_mixed(home.path(), hub_dir.path());
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("7 left out (4 refused by the hub, 3 skipped by the agent"),
        "the summary says so: {err}"
    );

    // The good runs are stored; the run whose directory holds a backslash is not.
    let runs = all_runs(hub_dir.path());
    let mut dirs: Vec<_> = runs.iter().map(|r| r.dir.as_str()).collect();
    dirs.sort();
    assert_eq!(dirs, ["runs/deep/1", "runs/good/1", "runs/ragged/1"]);
    let store = Store::open_read_only(hub_dir.path()).unwrap();
    let good = runs.iter().find(|r| r.dir == "runs/good/1").unwrap();
    assert_eq!(good.points, 2, "the good run's points are stored");
    assert_eq!(store.log_text(good.key).unwrap().unwrap().1, b"hello\n");
    let files: Vec<_> = store
        .files(good.key)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(
        files,
        ["meta.json"],
        "the file with a backslash is left out"
    );
    let skipped = store.skipped_files(good.key).unwrap();
    assert_eq!(
        skipped.total, 2,
        "one left out by the agent, one by the hub"
    );
    assert!(skipped.listed.iter().any(|e| e.name == "a\\b.txt"));
    let ragged = runs.iter().find(|r| r.dir == "runs/ragged/1").unwrap();
    assert_eq!(ragged.points, 0);
    assert!(store.log_text(ragged.key).unwrap().is_none());
    // A summary nested 100 levels deep is kept as a placeholder; its run is stored.
    let deep = runs.iter().find(|r| r.dir == "runs/deep/1").unwrap();
    let placeholder = deep.summary.as_ref().and_then(Value::as_str).unwrap();
    assert!(
        placeholder.contains("deeper than 64 levels"),
        "{placeholder}"
    );

    // `remotes --json`: a warning, not an error, with each refused item and its reason.
    let remotes = json(&run(
        hub(home.path(), hub_dir.path()).args(["remotes", "--json"])
    ));
    let odd = &remotes[0];
    assert_eq!(odd["last_error"], Value::Null, "{odd}");
    assert!(odd["warning"]
        .as_str()
        .unwrap()
        .contains("could not be synced"));
    assert_eq!(odd["skipped_files"], 2);
    let items = odd["skipped"].as_array().unwrap();
    let has = |kind: &str, name: &str, by_hub: bool, reason: &str| {
        items.iter().any(|i| {
            i["kind"] == kind
                && i["name"] == name
                && i["by_hub"] == by_hub
                && i["reason"].as_str().unwrap().contains(reason)
        })
    };
    assert!(has("run", "runs/x\\y/1", true, "backslash"), "{odd}");
    assert!(has("run", "runs/odd\\xff", false, "not UTF-8"), "{odd}");
    assert!(has("points", "runs/ragged/1", true, "times"), "{odd}");
    assert!(
        has("log", "runs/ragged/1", true, "before it starts"),
        "{odd}"
    );
    assert_eq!(odd["skipped_items"], 5);

    // The table shows the warning and the reasons; `ls` shows the skipped files.
    let table = run(hub(home.path(), hub_dir.path()).arg("remotes"));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("warning: 5 items and 2 files could not be synced"),
        "{text}"
    );
    assert!(text.contains("runs/x\\y/1 (hub)"), "{text}");
    let ls = run(hub(home.path(), hub_dir.path()).arg("ls"));
    let text = String::from_utf8_lossy(&ls.stdout);
    let line = text.lines().find(|l| l.contains("good")).unwrap();
    assert!(line.contains("2 files skipped"), "{text}");
    let ls = json(&run(hub(home.path(), hub_dir.path()).args(["ls", "--json"])));
    assert!(ls
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["dir"] == "runs/good/1" && r["skipped_files"] == 2));

    // The cursor moved on: the next sync succeeds and the good data stays.
    let again = json(&run(hub(home.path(), hub_dir.path())
        .args(["sync", "--json"])
        .env("BROKEN_AGENT_MODE", "mixed")));
    assert_eq!(again[0]["ok"], true, "{again}");
    // The ragged run's points and log are asked once a round, and refused again.
    assert_eq!(again[0]["refused"], 2, "{again}");
    assert_eq!(again[0]["requests"], 3, "{again}");
    assert_eq!(all_runs(hub_dir.path()).len(), 3);
}

/// A copy of `from` (a run directory) at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A summary nested `depth` levels deep, as JSON text.
fn nested(depth: usize) -> String {
    format!("{}1{}", "{\"a\": ".repeat(depth), "}".repeat(depth))
}

#[test]
fn a_root_with_hostile_names_and_deep_records_syncs_the_good_runs_complete_over_local() {
    let home = ClientHome::empty();
    hostile_root_syncs(home.path(), |root| {
        let mut cmd = Command::new("unused");
        cmd.arg(format!("local:{}", root.display()));
        cmd
    });
}

#[test]
fn a_root_with_hostile_names_and_deep_records_syncs_the_good_runs_complete_over_sshd() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    hostile_root_syncs(home.path(), |root| {
        let mut cmd = Command::new("unused");
        cmd.arg(sshd.spec()).arg("--root").arg(root);
        cmd
    });
}

/// Syncs a root holding hostile names and deep records next to good runs through the target
/// that `target(root)` names (its arguments are what `connect` takes before `--agent`).
fn hostile_root_syncs(home: &Path, target: impl Fn(&Path) -> Command) {
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 4, |i| 40 + i * 10);
    let runs_dir = root.path().join("runs/exp");
    let g0 = runs_dir.join("g0/run00000");
    // A run folder whose name holds a backslash, a file name with one inside a good run, and
    // summaries nested 60 and 100 levels deep.
    copy_dir(&g0, &root.path().join("runs/x\\y/run90000"));
    std::fs::write(runs_dir.join("g1/run00001/a\\b.txt"), b"x").unwrap();
    std::fs::write(runs_dir.join("g2/run00002/summary.json"), nested(60)).unwrap();
    std::fs::write(runs_dir.join("g3/run00003/summary.json"), nested(100)).unwrap();

    let hub_dir = tempfile::tempdir().unwrap();
    let target = target(root.path());
    let out = run(hub(home, hub_dir.path())
        .arg("connect")
        .args(target.get_args())
        .arg("--agent")
        .arg(agent_path())
        .args(["--name", "gpu", "--once", "--no-ui"]));
    assert!(out.status.success(), "{}", show(&out));

    // Every good run arrives complete, point for point.
    let mut source = source_points(root.path());
    source.retain(|dir, _| !dir.contains('\\'));
    assert_eq!(source.len(), 4);
    let stored = store_points(hub_dir.path(), "gpu");
    assert_eq!(stored, source);
    let runs = all_runs(hub_dir.path());
    assert!(
        runs.iter().all(|r| !r.dir.contains('\\')),
        "no bad name is stored"
    );
    let summary_of = |run_id: &str| {
        runs.iter()
            .find(|r| r.id == run_id)
            .and_then(|r| r.summary.clone())
            .unwrap()
    };
    assert_eq!(
        summary_of("run00002"),
        serde_json::from_str::<Value>(&nested(60)).unwrap()
    );
    // Past the limit the record is cut to a placeholder (by the agent or the hub), never a
    // failed sync.
    let cut = summary_of("run00003");
    assert_ne!(cut, serde_json::from_str::<Value>(&nested(100)).unwrap());

    // The bad run and the bad file are reported, as a warning.
    let remotes = json(&run(hub(home, hub_dir.path()).args(["remotes", "--json"])));
    let gpu = &remotes[0];
    assert_eq!(gpu["last_error"], Value::Null, "{gpu}");
    assert!(gpu["warning"].is_string(), "{gpu}");
    assert!(gpu["skipped_files"].as_u64().unwrap() >= 1, "{gpu}");
    let ls = json(&run(hub(home, hub_dir.path()).args(["ls", "--json"])));
    let g1 = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "run00001")
        .unwrap();
    assert!(g1["skipped_files"].as_u64().unwrap() >= 1, "{g1}");
    // (The run folder with a backslash is refused by the hub, or left out by an agent that
    // cannot name it: either way it is listed with a reason, or shown `unreadable`.)
    let named = gpu["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"].as_str().unwrap().contains("x"));
    let unreadable = ls
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["status"] == "unreadable");
    assert!(named || unreadable, "{gpu}\n{ls}");

    // A follow-up sync goes on from the stored cursor.
    let again = json(&run(hub(home, hub_dir.path()).args(["sync", "--json"])));
    assert_eq!(again[0]["ok"], true, "{again}");
}

#[test]
fn a_climbing_run_directory_or_an_absolute_file_path_is_refused_alone() {
    // These used to refuse the whole batch (`hub_connect_cli`): now only the item.
    for (mode, stored_runs, reason) in [("dotdot", 0, ".."), ("abs-file", 1, "absolute")] {
        let home = ClientHome::empty();
        let hub_dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let out = run(hub(home.path(), hub_dir.path())
            .arg("connect")
            .arg(format!("local:{}", root.path().display()))
            .arg("--agent")
            .arg(workspace_root().join("tests/support/broken_agent.py"))
            .args(["--name", "odd", "--once", "--no-ui"])
            .env("BROKEN_AGENT_MODE", mode));
        assert!(out.status.success(), "{mode}: {}", show(&out));
        let runs = all_runs(hub_dir.path());
        assert_eq!(runs.len(), stored_runs, "{mode}");
        let remotes = json(&run(
            hub(home.path(), hub_dir.path()).args(["remotes", "--json"])
        ));
        let mut text = remotes[0].to_string();
        assert!(remotes[0]["warning"].is_string(), "{mode}: {text}");
        if let Some(run) = runs.first() {
            let store = Store::open_read_only(hub_dir.path()).unwrap();
            assert!(store.files(run.key).unwrap().is_empty(), "{mode}");
            let skipped = store.skipped_files(run.key).unwrap();
            assert_eq!(skipped.listed[0].name, "/etc/passwd");
            text = skipped.listed[0].reason.clone();
        }
        assert!(text.contains(reason), "{mode}: {text}");
    }
}

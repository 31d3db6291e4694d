//! `runicorn-hub ls` as its help describes it: `--all` lists every run the store holds (the
//! dashboard's recycle bin included, marked), and an empty answer says whether the store is empty
//! or the filters matched nothing.

use std::process::Output;
use std::time::Duration;

use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{agent_path, hub, json_of, show, write_runs};
use runicorn_tests::output_within;
use runicorn_tests::sshd::ClientHome;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn ls(home: &ClientHome, hub_dir: &std::path::Path, args: &[&str]) -> Output {
    output_within(hub(home.path(), hub_dir).arg("ls").args(args), LIMIT)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_ids(listing: &Value) -> Vec<(String, bool)> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["in_recycle_bin"] == true,
            )
        })
        .collect()
}

#[test]
fn all_includes_the_recycle_bin_and_an_empty_answer_says_why() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let out = ls(&home, hub_dir.path(), &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("no runs in the store"),
        "{}",
        show(&out)
    );

    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 3, |_| 4);
    let out = output_within(
        hub(home.path(), hub_dir.path())
            .arg("connect")
            .arg(format!("local:{}", root.path().display()))
            .arg("--agent")
            .arg(agent_path())
            .args(["--once", "--no-ui", "--name", "box", "--prefetch", "none"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    // The dashboard's delete: into the hub's recycle bin.
    let served = ServedDashboard::start(hub_dir.path(), None);
    let r = served.write("DELETE", "/api/runs/run00001", None);
    assert_eq!(r.status, 200, "{}", r.text());
    served.stop(Duration::from_secs(10));

    let shown = run_ids(&json_of(
        hub(home.path(), hub_dir.path()).args(["ls", "--json"]),
    ));
    assert_eq!(
        shown,
        [
            ("run00000".to_owned(), false),
            ("run00002".to_owned(), false)
        ]
    );
    let mut all = run_ids(&json_of(
        hub(home.path(), hub_dir.path()).args(["ls", "--all", "--json"]),
    ));
    all.sort();
    assert_eq!(
        all,
        [
            ("run00000".to_owned(), false),
            ("run00001".to_owned(), true),
            ("run00002".to_owned(), false)
        ]
    );
    let table = ls(&home, hub_dir.path(), &["--all"]);
    assert!(table.status.success(), "{}", show(&table));
    let line = stdout(&table)
        .lines()
        .find(|l| l.contains("run00001"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", show(&table)));
    assert!(line.contains("(recycle bin)"), "{line}");

    // Filters that match nothing say so, and what the store holds.
    let out = ls(
        &home,
        hub_dir.path(),
        &["--remote", "nosuch", "--status", "crashed"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("no run matches --remote nosuch --status crashed"),
        "{text}"
    );
    assert!(text.contains("the store holds 3 runs"), "{text}");
    assert!(text.contains("--all also lists"), "{text}");
    assert!(!text.contains("add a server"), "{text}");
}

//! `runicorn-hub ls` as its help describes it: `--all` lists every run the store holds (the
//! dashboard's recycle bin included, marked), and an empty answer says whether the store is empty
//! or the filters matched nothing.

use std::process::Output;
use std::time::Duration;

use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{hub, json_of, show, sync_local_once, write_runs};
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
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
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

/// Three runs with summaries, configs and a `loss` series, synced into a fresh store.
fn synced_runs(home: &ClientHome) -> (tempfile::TempDir, tempfile::TempDir) {
    use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    for (i, (acc, lr, optim)) in [(0.95, 0.1, "sgd"), (0.85, 0.01, "sgd"), (0.97, 0.3, "adam")]
        .into_iter()
        .enumerate()
    {
        let mut spec = RunSpec::new(root.path(), "runicorn-tests");
        spec.path = Some("cv/net".into());
        spec.run_id = Some(format!("r{i}"));
        let mut w = RunWriter::create(&spec).unwrap();
        for s in 0..20i64 {
            let loss = 1.0 / (s as f64 + 1.0) + i as f64 / 7.0;
            w.log_metrics(&[("loss", loss)], Some(s), None).unwrap();
        }
        let summary = serde_json::json!({"val_acc": acc, "note": format!("a,\"b\" {i}")});
        if let Value::Object(map) = summary {
            w.update_summary(map).unwrap();
        }
        w.log_config(
            serde_json::json!({"lr": lr, "optim": {"name": optim}}),
            serde_json::json!({}),
            &[],
        )
        .unwrap();
        w.finish(RunOutcome::finished()).unwrap();
    }
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
    (root, hub_dir)
}

/// Records of RFC 4180 CSV text (quoted fields, doubled quotes, CRLF).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[test]
fn where_columns_and_csv_select_and_show_the_same_numbers_as_the_api() {
    let home = ClientHome::empty();
    let (_root, hub_dir) = synced_runs(&home);

    let chosen = run_ids(&json_of(hub(home.path(), hub_dir.path()).args([
        "ls",
        "--json",
        "--where",
        "config.optim.name = sgd and summary.val_acc > 0.9 or config.lr >= 0.3",
    ])));
    let ids: Vec<&str> = chosen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["r0", "r2"]);

    // A malformed expression: exit 2, the message and a caret under the place.
    let out = ls(&home, hub_dir.path(), &["--where", "config.lr >= and x"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("expected a value after \">=\", found \"and\" at position 13"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let expr_line = lines
        .iter()
        .position(|l| l.ends_with("config.lr >= and x"))
        .unwrap();
    let caret = lines[expr_line + 1];
    assert_eq!(
        caret.find('^'),
        Some(lines[expr_line].find("and").unwrap()),
        "{err}"
    );
    assert_eq!(caret.trim(), "^^^", "{err}");

    // Nothing matches: said so, naming the expression.
    let out = ls(&home, hub_dir.path(), &["--where", "summary.val_acc > 2"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("no run matches --where summary.val_acc > 2"),
        "{}",
        show(&out)
    );

    // The table shows the extra columns.
    let columns = "summary.val_acc,config.lr,metric.loss.min,metric.loss.last,summary.note";
    let out = ls(&home, hub_dir.path(), &["--columns", columns]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("metric.loss.min"), "{}", show(&out));
    let out = ls(&home, hub_dir.path(), &["--columns", "path"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    // CSV, read back, equals the API's numbers.
    let out = ls(&home, hub_dir.path(), &["--csv", "--columns", columns]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.ends_with("\r\n"), "{text:?}");
    let rows = parse_csv(&text);
    assert_eq!(
        rows[0],
        [
            "key",
            "remote",
            "path",
            "run_id",
            "alias",
            "status",
            "points",
            "last_step",
            "summary.val_acc",
            "config.lr",
            "metric.loss.min",
            "metric.loss.last",
            "summary.note"
        ]
    );
    assert_eq!(rows.len(), 4, "{text}");
    let served = ServedDashboard::start(hub_dir.path(), None);
    for row in &rows[1..] {
        let run = served.json(&format!("/api/runs/{}", row[0]));
        assert_eq!(run["run_id"], row[3].as_str());
        let num = |s: &str| s.parse::<f64>().unwrap();
        assert_eq!(
            run["summary"]["val_acc"].as_f64(),
            Some(num(&row[8])),
            "{row:?}"
        );
        assert_eq!(run["config"]["lr"].as_f64(), Some(num(&row[9])), "{row:?}");
        assert_eq!(
            run["summary"]["note"].as_str(),
            Some(row[12].as_str()),
            "{row:?}"
        );
        assert_eq!(run["points"].as_u64(), Some(num(&row[6]) as u64), "{row:?}");
        // The metric's numbers against its raw series from the API.
        let series = served.json(&format!("/api/runs/{}/metrics?keys=loss&raw=1", row[0]));
        let values: Vec<f64> = series["series"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(values.len(), 20, "{series}");
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(num(&row[10]), min, "{row:?}");
        assert_eq!(num(&row[11]), values[19], "{row:?}");
    }
    served.stop(Duration::from_secs(10));
}

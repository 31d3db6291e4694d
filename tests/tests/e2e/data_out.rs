//! Getting the numbers out of the hub: `runicorn-hub metrics` (its table, `--csv` and `--json`
//! read back and compared with the dashboard's API, point for point) and the store's read-only
//! SQL views as `sqlite3` and `pandas.read_sql` see them (the Python of
//! `RUNICORN_TEST_PYTHON`, which must have pandas in CI; elsewhere the pandas part is skipped
//! with a note when it has none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{hub, json_of, show, sync_local_once, write_runs};
use runicorn_tests::output_within;
use runicorn_tests::sshd::ClientHome;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// key → step → value bits (`None`: the API's `null`, a non-finite value).
type Points = BTreeMap<String, BTreeMap<i64, Option<u64>>>;

/// The run's raw points as the API serves them.
fn api_points(served: &ServedDashboard, run: &str) -> Points {
    let answer = served.json(&format!("/api/runs/{run}/metrics?raw=1"));
    let mut out = Points::new();
    for s in answer["series"].as_array().unwrap() {
        let key = s["key"].as_str().unwrap().to_owned();
        let steps = s["steps"].as_array().unwrap();
        let values = s["values"].as_array().unwrap();
        let series = out.entry(key).or_default();
        for (step, value) in steps.iter().zip(values) {
            series.insert(step.as_i64().unwrap(), value.as_f64().map(f64::to_bits));
        }
    }
    out
}

/// A value as the CSV writes it, as the API would send it (non-finite: `null`).
fn csv_value(text: &str) -> Option<u64> {
    let v: f64 = text
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} is no number: {e}"));
    v.is_finite().then_some(v.to_bits())
}

fn synced_store(runs: usize) -> (ClientHome, tempfile::TempDir, tempfile::TempDir) {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), runs, |i| 40 + 30 * i);
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
    (home, hub_dir, root)
}

#[test]
fn metrics_csv_and_json_equal_the_apis_points() {
    let (home, hub_dir, _root) = synced_store(2);
    let served = ServedDashboard::start(hub_dir.path(), None);
    let want = api_points(&served, "box%2Frun00001");
    assert_eq!(want.keys().collect::<Vec<_>>(), ["acc", "loss", "val"]);

    // --csv: long form, every point, NaN and inf as text that reads back.
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["metrics", "box/run00001", "--csv"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("key,step,time,value"));
    let mut got = Points::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "{line:?} in {text:?}");
        let time: f64 = fields[2].parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(time > 1e9, "{line}");
        got.entry(fields[0].to_owned())
            .or_default()
            .insert(fields[1].parse().unwrap(), csv_value(fields[3]));
    }
    assert_eq!(got, want, "CSV read back differs from the API");
    assert!(
        text.contains(",NaN\r\n") && text.contains(",inf\r\n"),
        "{text}"
    );

    // --json: the API's series shape.
    let json = json_of(
        hub(home.path(), hub_dir.path())
            .args(["metrics", "run00001", "--json", "--keys", "lo*,val"]),
    );
    assert_eq!(json["run"]["run_id"], "run00001");
    let mut from_json = Points::new();
    for s in json["series"].as_array().unwrap() {
        let series = from_json
            .entry(s["key"].as_str().unwrap().to_owned())
            .or_default();
        let values = s["values"].as_array().unwrap();
        for (step, v) in s["steps"].as_array().unwrap().iter().zip(values) {
            series.insert(step.as_i64().unwrap(), v.as_f64().map(f64::to_bits));
        }
    }
    let mut wanted = want.clone();
    wanted.remove("acc");
    assert_eq!(from_json, wanted);

    // The table: one row per key with last, min and max.
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["metrics", "run00001"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let acc = table
        .lines()
        .find(|l| l.starts_with("acc "))
        .unwrap_or_else(|| panic!("{table}"));
    // run 1 has 70 steps (1 to 70): acc = (s + 0.001) / 1000 for s in 0..70.
    let cells: Vec<&str> = acc.split_whitespace().collect();
    assert_eq!(
        cells[1..],
        ["70", "1", "70", "0.069001", "1.0000e-6", "0.069001"],
        "{acc}"
    );

    // Mistakes name the thing.
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["metrics", "run00001", "--keys", "nosuch*"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no metric key of run"),
        "{}",
        show(&out)
    );
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["metrics", "nosuch"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    served.stop(Duration::from_secs(10));
}

/// The Python with pandas for the views test, or `None` (with a note) outside CI.
fn python_with_pandas() -> Option<PathBuf> {
    let python = std::env::var_os("RUNICORN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let has = Command::new(&python)
        .args(["-c", "import pandas"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no Python with pandas: run scripts/test-all.sh or set RUNICORN_TEST_PYTHON"
    );
    eprintln!(
        "note: {} has no pandas; the pandas part is skipped",
        python.display()
    );
    None
}

/// Runs a Python program on the store file; its stdout as JSON.
fn python_json(python: &Path, program: &str, store: &Path) -> Value {
    let out = output_within(Command::new(python).args(["-c", program]).arg(store), LIMIT);
    assert!(out.status.success(), "{}", show(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

#[test]
fn the_sql_views_answer_like_the_api_read_only() {
    let (_home, hub_dir, _root) = synced_store(3);
    let served = ServedDashboard::start(hub_dir.path(), None);
    let store = hub_dir.path().join("store.sqlite");

    // sqlite3 from the standard library, opened read-only as docs/sql-views.md says.
    let stdlib = r#"
import json, math, sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
runs = [dict(zip([d[0] for d in c.description], row)) for c in [con.execute(
    "SELECT key, run_id, remote, path, status, points, in_recycle_bin FROM v_runs ORDER BY key")]
    for row in c]
loss = con.execute("SELECT step, value FROM v_metrics WHERE run_id = 'run00002' AND key = 'loss'"
                   " ORDER BY step").fetchall()
summary = con.execute("SELECT key, points, last, min, max FROM v_metric_summary"
                      " WHERE run_id = 'run00002' ORDER BY key").fetchall()
try:
    con.execute("DELETE FROM runs")
    wrote = True
except sqlite3.OperationalError:
    wrote = False
def finite(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    return v
print(json.dumps(finite({"runs": runs, "loss": loss, "summary": summary, "wrote": wrote})))
"#;
    let python = std::env::var_os("RUNICORN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let got = python_json(&python, stdlib, &store);
    assert_eq!(got["wrote"], false, "a read-only connection wrote");
    let listed = served.json("/api/runs");
    let api_runs: BTreeMap<i64, &Value> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_i64().unwrap(), r))
        .collect();
    let view_runs = got["runs"].as_array().unwrap();
    assert_eq!(view_runs.len(), api_runs.len());
    for v in view_runs {
        let a = api_runs[&v["key"].as_i64().unwrap()];
        for field in ["key", "run_id", "remote", "path", "status", "points"] {
            assert_eq!(v[field], a[field], "{field}: view {v} api {a}");
        }
        assert_eq!(v["in_recycle_bin"], 0);
    }
    let api = api_points(&served, "run00002");
    let loss: BTreeMap<i64, Option<u64>> = got["loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().map(f64::to_bits)))
        .collect();
    // SQLite keeps infinities; JSON (the API's, and Python's above) writes them as null.
    let finite = |m: &BTreeMap<i64, Option<u64>>| -> BTreeMap<i64, Option<u64>> {
        m.iter()
            .map(|(s, v)| (*s, v.filter(|b| f64::from_bits(*b).is_finite())))
            .collect()
    };
    assert_eq!(finite(&loss), finite(&api["loss"]));
    // last/min/max per key, against the API's points.
    for row in got["summary"].as_array().unwrap() {
        let key = row[0].as_str().unwrap();
        let values: Vec<f64> = api[key]
            .values()
            .filter_map(|v| v.map(f64::from_bits))
            .collect();
        assert_eq!(row[1].as_u64().unwrap() as usize, api[key].len(), "{key}");
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(row[3].as_f64(), Some(min), "{key} min");
        if key == "loss" {
            // loss holds an inf: SQL's max is it, which the program above sent as null.
            assert!(row[4].is_null(), "{row}");
        } else {
            assert_eq!(row[4].as_f64(), Some(max), "{key} max");
        }
    }

    if let Some(python) = python_with_pandas() {
        let program = r#"
import json, sqlite3, sys
import pandas as pd
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
df = pd.read_sql("SELECT run_id, key, step, value FROM v_metrics WHERE key = 'acc'", con)
wide = df.pivot(index="step", columns="run_id", values="value")
print(json.dumps({"rows": len(df), "runs": sorted(wide.columns.tolist()),
                  "last": {c: float(wide[c].dropna().iloc[-1]) for c in wide.columns}}))
"#;
        let got = python_json(&python, program, &store);
        let mut rows = 0;
        for (i, run) in ["run00000", "run00001", "run00002"].iter().enumerate() {
            let points = api_points(&served, run);
            let acc = &points["acc"];
            rows += acc.len();
            let last = f64::from_bits(acc.values().last().unwrap().unwrap());
            assert_eq!(got["last"][run].as_f64(), Some(last), "{run} ({i})");
        }
        assert_eq!(got["rows"].as_u64(), Some(rows as u64));
        assert_eq!(
            got["runs"],
            serde_json::json!(["run00000", "run00001", "run00002"])
        );
    }
    served.stop(Duration::from_secs(10));
}

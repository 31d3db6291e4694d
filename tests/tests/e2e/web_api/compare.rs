//! `GET /api/compare?runs=…`: the runs in the asked order, their series, the config keys side by
//! side with the differing ones first; unknown runs and a missing `runs` named.

use serde_json::json;

use super::world::{error_message, run_by_run_id, World};

#[test]
fn compare_lines_up_runs_series_and_config() {
    let world = World::new();
    let served = world.serve();

    let a = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let b = run_by_run_id(&served, "runb")["key"].as_i64().unwrap();
    let d = run_by_run_id(&served, "rund")["key"].as_i64().unwrap();
    let cmp = served.json(&format!("/api/compare?runs={a},{b},{d}"));
    let runs: Vec<i64> = cmp["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_i64().unwrap())
        .collect();
    assert_eq!(runs, [a, b, d]);
    let mut keys: Vec<&str> = cmp["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["acc", "loss"]);
    assert_eq!(cmp["series"].as_array().unwrap().len(), 6);
    assert!(cmp["series"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["run"] == b && s["key"] == "loss" && s["total"] == 20));
    let diff = cmp["config_diff"].as_array().unwrap();
    let row = |key: &str| diff.iter().find(|r| r["key"] == key).unwrap().clone();
    assert_eq!(row("lr")["values"], json!([0.1, 0.03, 0.01]));
    assert_eq!(row("lr")["differs"], true);
    assert_eq!(row("optim.name")["values"], json!(["sgd", "adam", null]));
    assert_eq!(row("batch")["values"], json!([32, 32, 64]));
    let first_same = diff.iter().position(|r| r["differs"] == false);
    let last_differs = diff.iter().rposition(|r| r["differs"] == true);
    if let (Some(s), Some(d)) = (first_same, last_differs) {
        assert!(d < s, "differing keys first: {diff:?}");
    }
    let cmp = served.json(&format!("/api/compare?runs={a},{b}&keys=loss&points=10"));
    assert_eq!(cmp["series"].as_array().unwrap().len(), 2);
    let r = served.get("/api/compare?runs=1,999999");
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("999999"), "{}", r.text());
    let r = served.get("/api/compare");
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("runs"), "{}", r.text());
}

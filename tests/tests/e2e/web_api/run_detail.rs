//! `GET /api/runs/{id}`: the run's page (records, metrics, files, the run's own alias), and the
//! answers for a run that does not exist or an id that is not one.

use runicorn_tests::check_cases;
use serde_json::json;

use super::world::{error_message, run_by_run_id, World};

#[test]
fn a_run_page_holds_its_records_metrics_and_files() {
    let world = World::new();
    let served = world.serve();
    let id = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let detail = served.json(&format!("/api/runs/{id}"));
    assert_eq!(detail["run_id"], "runa");
    assert!(detail["meta"].is_object(), "{detail}");
    assert!(detail["status_record"].is_object(), "{detail}");
    let metrics = detail["metrics"].as_array().unwrap();
    let loss = metrics.iter().find(|m| m["name"] == "loss").unwrap();
    assert_eq!(
        (loss["points"].clone(), loss["last_step"].clone()),
        (json!(30), json!(29))
    );
    let files = detail["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["path"].as_str().unwrap().ends_with(".png")),
        "{detail}"
    );
    assert_eq!(detail["corrupt_lines"], 0);
    assert_eq!(detail["remote_alias"], "own-runa");
}

/// A run reference the API cannot answer for, and the error it must give.
#[derive(Debug)]
struct BadRun {
    target: &'static str,
    status: u16,
    code: &'static str,
    names: &'static str,
}

const BAD_RUNS: &[BadRun] = &[
    BadRun {
        target: "/api/runs/999999",
        status: 404,
        code: "not_found",
        names: "run 999999",
    },
    BadRun {
        target: "/api/runs/abc",
        status: 404,
        code: "not_found",
        names: "\"abc\"",
    },
    BadRun {
        target: "/api/runs/cv%2F",
        status: 400,
        code: "bad_request",
        names: "run reference \"cv/\"",
    },
];

#[test]
fn an_unknown_or_malformed_run_is_named_in_the_error() {
    let world = World::new();
    let served = world.serve();
    check_cases(BAD_RUNS, |case| {
        let r = served.get(case.target);
        if r.status != case.status
            || r.json()["error"]["code"] != case.code
            || !error_message(&r).contains(case.names)
        {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        Ok(())
    });
}

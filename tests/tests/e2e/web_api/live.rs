//! The live streams: `GET /api/runs/{id}/live` (new points, log lines, run changes, catch-up
//! from an earlier step) and `GET /api/events`, and shutting down while they are open.

use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_tests::http::EventStream;
use serde_json::json;

use super::world::{run_by_run_id, World};

#[test]
fn live_streams_deliver_new_points_log_lines_and_changes() {
    let world = World::new();
    // A run still training: its writer stays open in this test.
    let mut spec = RunSpec::new(world.root.path(), "runicorn-tests");
    spec.path = Some("live/run".into());
    spec.run_id = Some("runlive".into());
    let mut w = RunWriter::create(&spec).unwrap();
    for s in 0..5 {
        w.log_metrics(&[("loss", 1.0 / (s as f64 + 1.0))], Some(s), None)
            .unwrap();
    }
    w.log_text("epoch 0 started").unwrap();
    w.flush().unwrap();
    world.sync();
    let served = world.serve();
    let run = run_by_run_id(&served, "runlive");
    assert_eq!(run["status"], "running");
    let id = run["key"].as_i64().unwrap();

    let mut live = EventStream::open(served.addr, &format!("/api/runs/{id}/live"));
    assert_eq!(live.status, 200);
    assert!(
        live.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type")
                && v.starts_with("text/event-stream"))
    );
    let mut changed = EventStream::open(served.addr, "/api/events");
    assert_eq!(changed.status, 200);

    for s in 5..12 {
        w.log_metrics(&[("loss", 1.0 / (s as f64 + 1.0))], Some(s), None)
            .unwrap();
    }
    // A key that appears later, at a step below the run's last: sent whole.
    w.log_metrics(&[("val", 0.5)], Some(2), Some("val"))
        .unwrap();
    w.log_text("epoch 1 started").unwrap();
    w.flush().unwrap();
    world.sync();

    let mut new_points: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    while new_points.len() < 2 {
        let metrics = live
            .until(Duration::from_secs(10), |e| e.event == "metrics")
            .expect("a metrics event");
        for series in metrics.json()["series"].as_array().unwrap() {
            let steps = series["steps"].as_array().unwrap();
            assert_eq!(steps.len(), series["values"].as_array().unwrap().len());
            new_points
                .entry(series["key"].as_str().unwrap().to_owned())
                .or_default()
                .extend(steps.iter().map(|s| s.as_i64().unwrap()));
        }
    }
    assert_eq!(
        new_points["loss"],
        (5..12).collect::<Vec<_>>(),
        "only the new points"
    );
    assert_eq!(new_points["val"], [2]);
    let log = live
        .until(Duration::from_secs(10), |e| e.event == "log")
        .expect("a log event");
    let log = log.json();
    assert!(
        log["text"].as_str().unwrap().contains("epoch 1 started"),
        "{log}"
    );
    assert!(!log["text"].as_str().unwrap().contains("epoch 0"), "{log}");
    assert_eq!(
        log["next"].as_u64().unwrap() - log["offset"].as_u64().unwrap(),
        log["text"].as_str().unwrap().len() as u64
    );
    let tick = changed
        .until(Duration::from_secs(10), |e| e.event == "changed")
        .expect("a changed event");
    assert!(tick.json()["at"].is_f64());

    // An annotation is a change of the run.
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": "live one"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = live
        .until(Duration::from_secs(10), |e| e.event == "run")
        .expect("a run event");
    assert_eq!(ev.json()["alias"], "live one");

    // The end of the run arrives as a run event with the new status.
    w.finish(RunOutcome::finished()).unwrap();
    world.sync();
    let ev = live
        .until(Duration::from_secs(10), |e| {
            e.event == "run" && e.json()["status"] == "finished"
        })
        .expect("the run's end");
    assert_eq!(ev.json()["run_id"], "runlive");

    // A stream from an earlier step catches up at once.
    let mut again = EventStream::open(
        served.addr,
        &format!("/api/runs/{id}/live?after_step=9&log_offset=0"),
    );
    let ev = again
        .until(Duration::from_secs(5), |e| e.event == "metrics")
        .expect("catch-up points");
    let series = ev.json()["series"].clone();
    let loss = series
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "loss")
        .unwrap()
        .clone();
    assert_eq!(loss["steps"], json!([10, 11]));
    assert!(
        series.as_array().unwrap().iter().all(|s| s["key"] != "val"),
        "after_step applies to every key: {series}"
    );
    let ev = again
        .until(Duration::from_secs(5), |e| e.event == "log")
        .expect("catch-up log");
    assert!(ev.json()["text"]
        .as_str()
        .unwrap()
        .contains("epoch 0 started"));

    // Shutting down ends the open streams instead of waiting for them.
    assert!(served.stop(Duration::from_secs(10)), "serve returned");
    assert!(live.next(Duration::from_secs(5)).is_none());
}

//! `GET /api/runs/{id}/metrics`: downsampled keeping spikes, zoomed to a range, raw, against
//! time, every key by default with NaN as null, and mistakes named.

use super::world::{error_message, run_by_run_id, World, LONG_STEPS, SPIKE_STEP};

#[test]
fn metrics_are_downsampled_keeping_spikes_or_sent_raw() {
    let world = World::new();
    let served = world.serve();
    let id = run_by_run_id(&served, "rune")["key"].as_i64().unwrap();

    let m = served.json(&format!("/api/runs/{id}/metrics?keys=loss&points=200"));
    assert_eq!(m["run"], id);
    assert_eq!(m["x"], "step");
    let s = &m["series"][0];
    assert_eq!(s["key"], "loss");
    assert_eq!(s["total"], LONG_STEPS);
    assert_eq!(s["downsampled"], true);
    let steps = s["steps"].as_array().unwrap();
    let values = s["values"].as_array().unwrap();
    assert!(steps.len() <= 200 && steps.len() >= 100, "{}", steps.len());
    assert_eq!(steps.len(), values.len());
    assert_eq!(steps.len(), s["times"].as_array().unwrap().len());
    let spike = steps
        .iter()
        .position(|st| st == SPIKE_STEP)
        .expect("the spike survives");
    assert_eq!(values[spike], 100.0);
    let ordered: Vec<i64> = steps.iter().map(|s| s.as_i64().unwrap()).collect();
    assert!(ordered.windows(2).all(|w| w[0] < w[1]), "x order");

    // Zoomed in: the spike still there, the range respected.
    let m = served.json(&format!(
        "/api/runs/{id}/metrics?keys=loss&points=20&from=12000&to=13000"
    ));
    let s = &m["series"][0];
    assert_eq!(s["total"], 1001);
    let steps = s["steps"].as_array().unwrap();
    assert!(steps
        .iter()
        .all(|st| (12000..=13000).contains(&st.as_i64().unwrap())));
    assert!(steps.iter().any(|st| st == SPIKE_STEP));

    // Raw: every point.
    let m = served.json(&format!("/api/runs/{id}/metrics?keys=loss&raw=1"));
    let s = &m["series"][0];
    assert_eq!(s["downsampled"], false);
    assert_eq!(s["steps"].as_array().unwrap().len() as i64, LONG_STEPS);

    // x = time.
    let m = served.json(&format!(
        "/api/runs/{id}/metrics?keys=loss&x=time&points=100"
    ));
    assert_eq!(m["x"], "time");
    assert!(m["series"][0]["times"][0].is_f64());

    // All keys by default; NaN is a null.
    let a = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let m = served.json(&format!("/api/runs/{a}/metrics"));
    let keys: Vec<&str> = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let loss = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "loss")
        .unwrap();
    assert_eq!(loss["downsampled"], false);
    assert!(loss["values"][3].is_null(), "NaN is null: {loss}");

    let r = served.get(&format!("/api/runs/{a}/metrics?keys=nope"));
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("nope"), "{}", r.text());
    let r = served.get(&format!("/api/runs/{a}/metrics?points=50000"));
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("points"), "{}", r.text());
    let r = served.get(&format!("/api/runs/{a}/metrics?x=epoch"));
    assert_eq!(r.status, 400);
}

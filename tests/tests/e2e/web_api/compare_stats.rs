//! `GET /api/compare`'s `stats`: each run's whole series (count, last, min, max) equal to a
//! brute-force pass over the run's raw points from `/api/runs/{run}/metrics?raw=1`, for short
//! series (read from points), a NaN among them, and the 20,000-step series with a spike (read
//! from the top tile level), whatever range `from`/`to` asked.

use serde_json::Value;

use super::world::{run_by_run_id, World, LONG_STEPS, SPIKE_STEP};

/// (count, last step, last, min, max) of a raw series; NaN arrives as `null`.
fn brute(series: &Value) -> (i64, i64, Option<f64>, Option<f64>, Option<f64>) {
    let steps = series["steps"].as_array().unwrap();
    let values: Vec<Option<f64>> = series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::as_f64)
        .collect();
    let finite = values.iter().flatten().copied();
    (
        steps.len() as i64,
        steps.last().unwrap().as_i64().unwrap(),
        *values.last().unwrap(),
        finite.clone().reduce(f64::min),
        finite.reduce(f64::max),
    )
}

fn stat_of(s: &Value) -> (i64, i64, Option<f64>, Option<f64>, Option<f64>) {
    (
        s["count"].as_i64().unwrap(),
        s["last_step"].as_i64().unwrap(),
        s["last"].as_f64(),
        s["min"].as_f64(),
        s["max"].as_f64(),
    )
}

#[test]
fn compare_stats_equal_a_pass_over_the_raw_points() {
    let world = World::new();
    let served = world.serve();
    let keys: Vec<i64> = ["runa", "runb", "rune"]
        .iter()
        .map(|id| run_by_run_id(&served, id)["key"].as_i64().unwrap())
        .collect();
    let runs = keys
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // A zoomed, coarse request: the series are cut, the stats are not.
    for query in [
        format!("/api/compare?runs={runs}&keys=loss"),
        format!("/api/compare?runs={runs}&keys=loss&from=5&to=9&points=4"),
    ] {
        let cmp = served.json(&query);
        let stats = cmp["stats"].as_array().unwrap();
        assert_eq!(stats.len(), 3, "{query}: {stats:?}");
        for &run in &keys {
            let stat = stats.iter().find(|s| s["run"] == run).unwrap();
            assert_eq!(stat["key"], "loss");
            let raw = served.json(&format!("/api/runs/{run}/metrics?keys=loss&raw=1"));
            let want = brute(&raw["series"][0]);
            assert_eq!(stat_of(stat), want, "{query}, run {run}");
        }
    }
    let cmp = served.json(&format!("/api/compare?runs={runs}&keys=loss"));
    let long = cmp["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["run"] == keys[2])
        .unwrap()
        .clone();
    assert_eq!(long["count"], LONG_STEPS);
    assert_eq!(long["max"], 100.0, "the spike at step {SPIKE_STEP}");
    assert_eq!(long["min"], 1.0);
    // runa's loss has a NaN at step 3: left out of min and max, not of the count.
    let a = cmp["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["run"] == keys[0])
        .unwrap()
        .clone();
    assert_eq!(a["count"], 30);
    assert_eq!(a["max"], 1.0);
    assert_eq!(a["last"].as_f64(), Some(1.0 / 30.0));
}

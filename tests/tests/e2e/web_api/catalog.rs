//! The store at a glance: `GET /api/paths` (the tree of run paths with counts, filtered),
//! `GET /api/remotes` (runs, points, last sync, no transport settings) and `GET /api/columns`
//! (summary and config keys, dotted).

use serde_json::{json, Value};

use super::world::{World, LONG_STEPS};

#[test]
fn paths_remotes_and_columns_describe_the_store() {
    let world = World::new();
    let served = world.serve();

    let paths = served.json("/api/paths");
    assert_eq!(paths["total"], 5);
    let tree = &paths["tree"];
    assert_eq!(
        (tree["name"].clone(), tree["count"].clone()),
        (json!(""), json!(5))
    );
    let cv = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "cv")
        .unwrap();
    assert_eq!(cv["count"], 3, "{paths}");
    assert_eq!(cv["children"][0]["path"], "cv/resnet50");
    assert_eq!(cv["children"][0]["count"], 2);
    let nlp = served.json("/api/paths?status=failed");
    assert_eq!(nlp["total"], 1);

    let remotes = served.json("/api/remotes");
    let r = &remotes["remotes"][0];
    assert_eq!(r["name"], "here");
    assert_eq!(r["runs"], 5);
    assert!(r["points"].as_u64().unwrap() >= LONG_STEPS as u64);
    assert!(r["last_sync_at"].is_f64());
    assert!(r["lag_seconds"].as_f64().unwrap() >= 0.0);
    assert!(r.get("transport").is_none(), "{remotes}");
    assert!(r["address"].as_str().unwrap().starts_with("local:"), "{r}");

    let columns = served.json("/api/columns");
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let summary = names(&columns["summary"]);
    assert!(
        summary.iter().any(|k| k == "loss") && summary.iter().any(|k| k == "acc"),
        "{columns}"
    );
    let config = names(&columns["config"]);
    assert!(
        config.iter().any(|k| k == "lr") && config.iter().any(|k| k == "optim.name"),
        "{columns}"
    );
}

//! `PATCH /api/runs/{id}` (alias, tags, notes), `DELETE` into the recycle bin and `POST
//! …/restore`: the hub's annotations survive a later sync, bad bodies are refused naming the
//! field.

use std::path::Path;

use serde_json::json;

use super::world::{error_message, ids_of, run_by_run_id, World};

#[test]
fn annotations_and_the_recycle_bin_survive_a_later_sync() {
    let world = World::new();
    let served = world.serve();
    let b = run_by_run_id(&served, "runb");
    let id = b["key"].as_i64().unwrap();

    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": "best so far", "tags": ["keep", "paper"], "notes": "lr 0.03 wins"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let run = r.json();
    assert_eq!(run["alias"], "best so far");
    assert_eq!(run["tags"], json!(["keep", "paper"]));
    assert_eq!(run["notes"], "lr 0.03 wins");
    assert_eq!(ids_of(&served.json("/api/runs?tag=paper")), ["runb"]);
    assert_eq!(ids_of(&served.json("/api/runs?q=best%20so")), ["runb"]);

    // A later sync (the run changed on its server) keeps the hub's annotations.
    append_text(world.root.path(), "cv/resnet50/runb", "one more line\n");
    world.sync();
    let detail = served.json(&format!("/api/runs/{id}"));
    assert_eq!(detail["alias"], "best so far");
    assert_eq!(detail["notes"], "lr 0.03 wins");
    assert_eq!(detail["remote_alias"], "own-runb");

    // null clears: the run's own alias shows again; a missing field is left alone.
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": null})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["alias"], "own-runb");
    assert_eq!(r.json()["notes"], "lr 0.03 wins");

    // Bad bodies are refused with a message naming the field.
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"colour": "red"})),
    );
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("colour"), "{}", r.text());
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": "x".repeat(201)})),
    );
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("alias"), "{}", r.text());
    let r = served.write("PATCH", "/api/runs/999999", Some(json!({"alias": "x"})));
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("run 999999"), "{}", r.text());
    let big = json!({"notes": "n".repeat(70 * 1024)});
    let r = served.write("PATCH", &format!("/api/runs/{id}"), Some(big));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "payload_too_large");

    // The recycle bin.
    let r = served.write("DELETE", &format!("/api/runs/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["trashed_at"].is_f64(), "{}", r.text());
    assert_eq!(served.json("/api/runs")["total"], 4);
    assert_eq!(ids_of(&served.json("/api/runs?view=trash")), ["runb"]);
    assert_eq!(served.json("/api/runs?view=all")["total"], 5);
    world.sync();
    assert_eq!(
        ids_of(&served.json("/api/runs?view=trash")),
        ["runb"],
        "a sync leaves the bin alone"
    );
    let r = served.write("POST", &format!("/api/runs/{id}/restore"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["trashed_at"].is_null());
    assert_eq!(served.json("/api/runs")["total"], 5);
    assert_eq!(served.json("/api/runs?view=trash")["total"], 0);
}

fn append_text(root: &Path, run: &str, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(root.join("runs").join(run).join("logs.txt"))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

//! Artifacts in the API (docs/api.md, "Artifacts") and `runicorn-hub artifacts`: a root written
//! by the Python SDK (`tests/support/artifact_world.py`: model `resnet` v1..v3 with `best`
//! moved to v3, dataset `preds` logged by the run that used `resnet:v1`, and a run that used
//! `preds`), synced by a real `runicorn-hub connect local:ROOT --once`, read through the real
//! dashboard: versions, aliases, files, sizes and dedup, a run's produced and used versions and
//! its upstream assets, and the lineage graph both ways.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use runicorn_tests::hub::{hub, show, sync_local_once};
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{output_within, workspace_root};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::world::Served;

/// Longest one command (the SDK script, a sync, the CLI) may take on a loaded machine.
const LIMIT: Duration = Duration::from_secs(300);

/// What `artifact_world.py` writes: `model.pt` of v1..v3 is 3000, 4000, 5000 bytes of `A`, `B`,
/// `C`; `vocab.txt` the same 11,000 bytes in each.
const MODEL_BYTES: [u64; 3] = [3000, 4000, 5000];
const VOCAB_BYTES: u64 = 11_000;

/// The upstream assets given to run `serve01` (the shape upstream 0.7.2 writes).
fn upstream_assets() -> Value {
    json!({
        "code": {"snapshot": {"saved": true, "format": "zip", "workspace_root": "/work/proj",
                               "fingerprint_kind": "sha256", "fingerprint": "ab".repeat(32)}},
        "config": {"args": {"lr": 0.1}, "extra": {}, "config_files": ["conf/a.yaml"]},
        "datasets": [{"name": "mnist", "context": "train", "uri": "/data/mnist",
                      "saved": true, "file_count": 3, "total_size_bytes": 1234}],
        "pretrained": [{"name": "bert-base", "source_type": "huggingface",
                        "path_or_uri": "bert-base-uncased", "saved": false}],
        "outputs": []
    })
}

struct ArtifactWorld {
    home: ClientHome,
    _root: TempDir,
    hub_dir: TempDir,
}

fn python() -> Command {
    let exe = std::env::var_os("RUNICORN_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    let mut cmd = Command::new(exe);
    cmd.env("PYTHONPATH", workspace_root().join("sdk/python/src"))
        .env_remove("RUNICORN_DIR")
        .env("RUNICORN_ON", "1");
    cmd
}

fn artifact_world() -> ArtifactWorld {
    let world = ArtifactWorld {
        home: ClientHome::empty(),
        _root: tempfile::tempdir().unwrap(),
        hub_dir: tempfile::tempdir().unwrap(),
    };
    let root = world._root.path();
    let out = output_within(
        python()
            .arg(workspace_root().join("tests/support/artifact_world.py"))
            .arg(root),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    std::fs::write(
        root.join("runs/serve/api/serve01/assets.json"),
        serde_json::to_vec_pretty(&upstream_assets()).unwrap(),
    )
    .unwrap();
    sync(&world, root);
    world
}

fn sync(world: &ArtifactWorld, root: &Path) {
    sync_local_once(world.home.path(), world.hub_dir.path(), root, "here");
}

/// The hub's key of the run with this run id.
fn key_of(served: &Served, run_id: &str) -> i64 {
    super::world::run_by_run_id(served, run_id)["key"]
        .as_i64()
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, bytes).unwrap();
    runicorn_tests::sha256sum(&file)
}

fn versions_of(artifact: &Value) -> Vec<u64> {
    artifact["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

fn refs(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}/{}:v{}",
                v["type"].as_str().unwrap(),
                v["name"].as_str().unwrap(),
                v["version"]
            )
        })
        .collect()
}

#[test]
fn the_listing_has_versions_aliases_sizes_lineage_and_bytes_saved() {
    let world = artifact_world();
    let served = Served::start(world.hub_dir.path(), None);
    let (train, eval) = (key_of(&served, "train01"), key_of(&served, "eval01"));
    let all = served.json("/api/artifacts");
    assert_eq!(all["types"], json!(["dataset", "model"]));
    let names: Vec<&str> = all["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["preds", "resnet"]);
    let model = &all["artifacts"][1];
    assert_eq!(model["remote"], "here");
    assert_eq!(model["dir"], "artifacts/model/resnet");
    assert_eq!(model["type"], "model");
    assert_eq!(model["problem"], Value::Null);
    assert_eq!(versions_of(model), [3, 2, 1]);
    // `best` moved from v2 to v3; `latest` is listed first.
    assert_eq!(model["versions"][0]["aliases"], json!(["latest", "best"]));
    assert_eq!(model["versions"][1]["aliases"], json!([]));
    for (i, v) in [3usize, 2, 1].iter().enumerate() {
        let version = &model["versions"][i];
        assert_eq!(version["size"], MODEL_BYTES[v - 1] + VOCAB_BYTES, "v{v}");
        assert_eq!(version["file_count"], 2);
        assert_eq!(version["metadata"], json!({"epoch": v}));
        assert_eq!(version["description"], format!("epoch {v}"));
        assert_eq!(version["produced_by"]["run_id"], "train01");
        assert_eq!(version["produced_by"]["key"], train);
        assert_eq!(version["produced_by"]["dir"], "runs/train/resnet/train01");
    }
    assert_eq!(
        model["versions"][0]["references"][0]["uri"],
        "s3://bucket/train.tar"
    );
    assert_eq!(model["versions"][2]["used_by"][0]["key"], eval);
    assert_eq!(model["versions"][0]["used_by"], json!([]));
    // The vocabulary is the same bytes in all three versions: stored once.
    let total: u64 = MODEL_BYTES.iter().sum::<u64>() + 3 * VOCAB_BYTES;
    let stored: u64 = MODEL_BYTES.iter().sum::<u64>() + VOCAB_BYTES;
    assert_eq!(model["total_bytes"], total);
    assert_eq!(model["stored_bytes"], stored);
    assert_eq!(model["saved_bytes"], 2 * VOCAB_BYTES);
    assert_eq!(all["saved_bytes"], 2 * VOCAB_BYTES);
    // The agent's chunk-level measure: small files are whole in the pool, each once.
    assert_eq!(model["server_bytes"], stored);
    assert_eq!(model["server_saved_bytes"], 2 * VOCAB_BYTES);
    assert_eq!(all["server_saved_bytes"], 2 * VOCAB_BYTES);
    assert_eq!(all["server_measured_bytes"], all["total_bytes"]);

    // Filters.
    let datasets = served.json("/api/artifacts?type=dataset");
    assert_eq!(datasets["artifacts"].as_array().unwrap().len(), 1);
    assert_eq!(
        datasets["artifacts"][0]["versions"][0]["produced_by"]["key"],
        eval
    );
    let none = served.json("/api/artifacts?remote=elsewhere");
    assert_eq!(none["artifacts"], json!([]));
    assert_eq!(none["total_bytes"], 0);

    // The CLI's --json is the API's answer.
    let out = output_within(
        hub(world.home.path(), world.hub_dir.path()).args(["artifacts", "--json"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, all);
    // And its table: one line per version, with aliases and the producing run.
    let out = output_within(
        hub(world.home.path(), world.hub_dir.path()).args(["artifacts", "--type", "model"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let v3 = text
        .lines()
        .find(|l| l.contains("resnet") && l.contains("v3"))
        .unwrap_or_else(|| panic!("no v3 line in:\n{text}"));
    assert!(
        v3.contains("latest,best") && v3.contains(&format!("train01 (key {train})")),
        "{v3}"
    );
    assert!(v3.contains("here"), "{v3}");
    assert!(!text.contains("preds"), "{text}");
    assert!(text.contains("1 artifacts, 3 versions"), "{text}");
}

#[test]
fn one_artifact_lists_each_versions_files() {
    let world = artifact_world();
    let served = Served::start(world.hub_dir.path(), None);
    let detail = served.json("/api/artifacts/here/model/resnet");
    assert_eq!(detail["artifact"]["name"], "resnet");
    let files = detail["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for (entry, (v, letter)) in files.iter().zip([(3u64, b'C'), (2, b'B'), (1, b'A')]) {
        assert_eq!(entry["version"], v);
        assert_eq!(entry["truncated"], false);
        let model = vec![letter; MODEL_BYTES[v as usize - 1] as usize];
        let paths: Vec<&str> = entry["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["model.pt", "vocab.txt"]);
        assert_eq!(entry["files"][0]["size"], model.len());
        assert_eq!(entry["files"][0]["sha256"], sha256_hex(&model));
        assert_eq!(entry["files"][0]["stored"], "whole");
        assert_eq!(entry["files"][1]["size"], VOCAB_BYTES);
    }
    // The same vocabulary in every version.
    assert_eq!(
        files[0]["files"][1]["sha256"],
        files[2]["files"][1]["sha256"]
    );
    for missing in [
        "/api/artifacts/here/model/nope",
        "/api/artifacts/here/dataset/resnet",
        "/api/artifacts/elsewhere/model/resnet",
    ] {
        let r = served.get(missing);
        assert_eq!(r.status, 404, "{missing}: {}", r.text());
        assert!(r.text().contains("GET /api/artifacts"), "{}", r.text());
    }
}

#[test]
fn a_run_lists_what_it_produced_and_used_and_its_assets() {
    let world = artifact_world();
    let served = Served::start(world.hub_dir.path(), None);
    let train = served.json("/api/runs/train01/artifacts");
    assert_eq!(
        refs(&train["produced"]),
        ["model/resnet:v1", "model/resnet:v2", "model/resnet:v3"]
    );
    assert_eq!(train["used"], json!([]));
    assert_eq!(train["produced"][2]["aliases"], json!(["latest", "best"]));
    assert_eq!(train["produced"][2]["remote"], "here");
    // Our SDK writes an empty assets.json (as upstream 0.7 does) or none.
    let empty = &train["assets"];
    assert!(empty.is_null() || empty["datasets"] == json!([]), "{empty}");
    let eval = served.json("/api/runs/here%2Feval01/artifacts");
    assert_eq!(refs(&eval["used"]), ["model/resnet:v1"]);
    assert_eq!(refs(&eval["produced"]), ["dataset/preds:v1"]);
    let serve = served.json(&format!(
        "/api/runs/{}/artifacts",
        key_of(&served, "serve01")
    ));
    assert_eq!(refs(&serve["used"]), ["dataset/preds:v1"]);
    assert_eq!(serve["produced"], json!([]));
    assert_eq!(serve["assets"], upstream_assets());
    // The same assets as entries: where each saved file's bytes are, never an absolute path.
    assert_eq!(serve["remote"], "here");
    let entries = serve["asset_entries"].as_array().unwrap();
    let summary: Vec<(&str, &str, bool, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["category"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
                e["saved"].as_bool().unwrap(),
                e["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("code", "code_snapshot.zip", true, "file"),
            ("dataset", "mnist", true, "dir"),
            ("pretrained", "bert-base", false, "file"),
        ]
    );
    let ab = "ab".repeat(32);
    assert_eq!(entries[0]["sha256"], ab.as_str());
    assert_eq!(entries[0]["archive"], format!("archive/blobs/ab/{ab}"));
    assert_eq!(
        entries[0]["download"],
        format!("/api/remotes/here/blobs/{ab}")
    );
    assert_eq!(entries[1]["file_count"], 3);
    assert_eq!(entries[1]["download"], Value::Null, "a directory");
    assert_eq!(entries[2]["archive"], Value::Null);
    assert!(entries
        .iter()
        .all(|e| !e["archive"].as_str().unwrap_or("").starts_with('/')));
    assert_eq!(train["asset_entries"], json!([]));
    assert_eq!(served.get("/api/runs/nope/artifacts").status, 404);
}

fn node_ids(g: &Value) -> Vec<String> {
    let mut ids: Vec<String> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| match n["kind"].as_str().unwrap() {
            "run" => format!("run {}", n["run"]["run_id"].as_str().unwrap()),
            _ => format!(
                "{}:v{}",
                n["version"]["name"].as_str().unwrap(),
                n["version"]["version"]
            ),
        })
        .collect();
    ids.sort();
    ids
}

/// Edges as `from -kind-> to` with nodes named as in [`node_ids`].
fn edges(g: &Value) -> Vec<String> {
    let name = |id: &Value| {
        let n = g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == *id)
            .unwrap();
        match n["kind"].as_str().unwrap() {
            "run" => n["run"]["run_id"].as_str().unwrap().to_owned(),
            _ => format!(
                "{}:v{}",
                n["version"]["name"].as_str().unwrap(),
                n["version"]["version"]
            ),
        }
    };
    let mut out: Vec<String> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} -{}-> {}",
                name(&e["from"]),
                e["kind"].as_str().unwrap(),
                name(&e["to"])
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_lineage_graph_links_runs_and_versions_both_ways() {
    let world = artifact_world();
    let served = Served::start(world.hub_dir.path(), None);
    let g = served.json("/api/lineage?run=train01");
    assert_eq!(g["root"], format!("run:{}", key_of(&served, "train01")));
    assert_eq!(
        node_ids(&g),
        [
            "preds:v1",
            "resnet:v1",
            "resnet:v2",
            "resnet:v3",
            "run eval01",
            "run serve01",
            "run train01"
        ]
    );
    assert_eq!(
        edges(&g),
        [
            "eval01 -produced-> preds:v1",
            "preds:v1 -used-> serve01",
            "resnet:v1 -used-> eval01",
            "train01 -produced-> resnet:v1",
            "train01 -produced-> resnet:v2",
            "train01 -produced-> resnet:v3",
        ]
    );
    assert_eq!(g["truncated"], false);
    // Runs carry their key (click through), remote and host.
    let eval = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["run"]["run_id"] == "eval01")
        .unwrap();
    assert_eq!(eval["run"]["key"], key_of(&served, "eval01"));
    assert_eq!(eval["run"]["remote"], "here");
    assert_eq!(eval["run"]["status"], "finished");

    // Bounded.
    let near = served.json("/api/lineage?run=train01&depth=1");
    assert_eq!(node_ids(&near).len(), 4);
    assert_eq!(near["truncated"], true);
    let few = served.json("/api/lineage?run=train01&max_nodes=2");
    assert_eq!(few["nodes"].as_array().unwrap().len(), 2);

    // Around a version, the other way: back to its producer, on to its users.
    let v1 = served.json("/api/lineage?artifact=here/model/resnet&version=1&depth=1");
    assert_eq!(
        edges(&v1),
        ["resnet:v1 -used-> eval01", "train01 -produced-> resnet:v1"]
    );
    let root = v1["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == v1["root"])
        .unwrap();
    assert_eq!(root["version"]["aliases"], json!([]));

    for (target, status) in [
        ("/api/lineage", 400),
        (
            "/api/lineage?run=train01&artifact=here/model/resnet&version=1",
            400,
        ),
        ("/api/lineage?artifact=here/model&version=1", 400),
        ("/api/lineage?artifact=here/model/resnet", 400),
        ("/api/lineage?artifact=here/model/resnet&version=-1", 400),
        ("/api/lineage?run=train01&depth=0", 400),
        ("/api/lineage?run=train01&max_nodes=99999", 400),
        ("/api/lineage?artifact=here/model/resnet&version=9", 404),
        ("/api/lineage?artifact=here/model/nope&version=1", 404),
        ("/api/lineage?run=nope", 404),
    ] {
        let r = served.get(target);
        assert_eq!(r.status, status, "{target}: {}", r.text());
    }
}

#[test]
fn the_cli_says_when_there_are_no_artifacts() {
    let world = artifact_world();
    let out = output_within(
        hub(world.home.path(), world.hub_dir.path()).args(["artifacts", "--remote", "elsewhere"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("no artifacts on remote elsewhere in the hub's store"),
        "{text}"
    );
    let out = output_within(
        hub(world.home.path(), world.hub_dir.path()).args([
            "artifacts",
            "--type",
            "dataset",
            "--json",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["types"], json!(["dataset"]));
    assert_eq!(listing["artifacts"][0]["name"], "preds");
}

#[test]
fn an_artifact_gone_from_its_server_is_kept_and_marked() {
    let world = artifact_world();
    let root = world._root.path();
    std::fs::remove_dir_all(root.join("artifacts/dataset/preds")).unwrap();
    sync(&world, root);
    let served = Served::start(world.hub_dir.path(), None);
    let listed = served.json("/api/artifacts");
    assert_eq!(listed["types"], json!(["model"]));
    let all = served.json("/api/artifacts?removed=1");
    let preds = &all["artifacts"][0];
    assert_eq!(
        (&preds["name"], &preds["removed"]),
        (&json!("preds"), &json!(true))
    );
    assert_eq!(versions_of(preds), [1]);
    let detail = served.json("/api/artifacts/here/dataset/preds");
    assert_eq!(detail["artifact"]["removed"], true);
    // Its lineage stays: the run that logged it still lists it, marked.
    let eval = served.json("/api/runs/eval01/artifacts");
    assert_eq!(refs(&eval["produced"]), ["dataset/preds:v1"]);
    assert_eq!(eval["produced"][0]["removed"], true);
    assert_eq!(served.get("/api/artifacts?removed=maybe").status, 400);
}

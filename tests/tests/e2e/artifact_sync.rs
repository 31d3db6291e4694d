//! Artifacts syncing to the hub over a real OpenSSH server: versions, aliases, files,
//! producing and consuming runs written by the Python SDK arrive in the store's tables exactly
//! as `versions.json` and the manifests say; a moved alias and a deleted version arrive with
//! the next sync; a damaged `versions.json` arrives as the artifact's `problem` while the other
//! artifacts sync; and an upstream 0.7-style run's `assets.json` fills `runs.assets`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use runicorn_tests::hub::show;
use runicorn_tests::ssh_hub::SshHub;
use runicorn_tests::{output_within, workspace_root};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

/// Longest any one command may take.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs a Python program with our SDK (`sdk/python/src`) and the storage root as argv[1],
/// a scratch folder as argv[2].
fn python(s: &SshHub, program: &str) {
    let python = std::env::var_os("RUNICORN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let mut cmd = Command::new(python);
    cmd.args(["-c", program])
        .arg(s.root())
        .arg(s.scratch())
        .env("PYTHONPATH", workspace_root().join("sdk/python/src"))
        .env_remove("RUNICORN_DIR");
    let out = output_within(&mut cmd, LIMIT);
    assert!(out.status.success(), "{program}\n{}", show(&out));
}

/// The hub's store, read-only.
fn store(s: &SshHub) -> Connection {
    Connection::open_with_flags(
        s.hub_dir().join("store.sqlite"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// Logs `m:v1..v3` (v1 `best`, then v3 takes `best`) from run `producer` and uses `m:v1` from
/// run `consumer`; also a `dataset` artifact `d`.
const LOG_THREE_VERSIONS: &str = r#"
import os, sys
import runicorn as rn
root, scratch = sys.argv[1], sys.argv[2]
run = rn.init(path="train", storage=root, run_id="producer")
for v, aliases in [(1, ["best"]), (2, []), (3, ["best"])]:
    weights = os.path.join(scratch, "w%d.bin" % v)
    with open(weights, "wb") as f:
        f.write((b"weights of version %d\n" % v) * 1000)
    art = rn.Artifact("m", type="model", description="epoch %d" % v, metadata={"epoch": v})
    art.add_file(weights, name="w.bin")
    if v == 2:
        notes = os.path.join(scratch, "notes.txt")
        with open(notes, "w") as f:
            f.write("second")
        art.add_file(notes, name="docs/notes.txt")
        art.add_reference("s3://bucket/train.csv", size=123)
    run.log_artifact(art, aliases=aliases)
data = os.path.join(scratch, "data.csv")
with open(data, "w") as f:
    f.write("x,y\n1,2\n")
d = rn.Artifact("d", type="dataset")
d.add_file(data)
run.log_artifact(d)
run.finish()
user = rn.init(path="eval", storage=root, run_id="consumer")
user.use_artifact("m:v1")
user.finish()
"#;

/// One version as stored: size, description, metadata, producer (run id, dir), references.
type StoredVersion = (
    u64,
    Option<String>,
    Option<Value>,
    Option<(String, String)>,
    Value,
);

/// One stored artifact, read back with plain SQL.
#[derive(Debug, PartialEq)]
struct StoredArtifact {
    seq: i64,
    problem: Option<String>,
    removed: bool,
    versions: BTreeMap<u64, StoredVersion>,
    aliases: BTreeMap<String, u64>,
    /// (version, path) → (size, sha256, stored)
    files: BTreeMap<(u64, String), (u64, String, String)>,
    /// (version, run id, dir)
    usage: Vec<(u64, String, String)>,
}

fn stored(conn: &Connection, dir: &str) -> StoredArtifact {
    let (id, seq, problem, removed): (i64, i64, Option<String>, bool) = conn
        .query_row(
            "SELECT a.id, a.seq, a.problem, a.removed FROM artifacts a
             JOIN remotes r ON r.id = a.remote WHERE r.name = 'gpu' AND a.dir = ?1",
            [dir],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap_or_else(|e| panic!("artifact {dir} not stored: {e}"));
    let mut versions = BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT version, size, description, metadata, produced_run_id, produced_dir, refs
             FROM artifact_versions WHERE artifact = ?1",
        )
        .unwrap();
    let rows = stmt
        .query_map([id], |r| {
            let producer = match (
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ) {
                (Some(run), Some(dir)) => Some((run, dir)),
                _ => None,
            };
            Ok((
                r.get::<_, i64>(0)? as u64,
                (
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?
                        .map(|m| serde_json::from_str::<Value>(&m).unwrap()),
                    producer,
                    serde_json::from_str::<Value>(&r.get::<_, String>(6)?).unwrap(),
                ),
            ))
        })
        .unwrap();
    for row in rows {
        let (v, rest) = row.unwrap();
        versions.insert(v, rest);
    }
    let aliases = conn
        .prepare("SELECT alias, version FROM artifact_aliases WHERE artifact = ?1")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let files = conn
        .prepare(
            "SELECT version, path, size, sha256, stored FROM artifact_files WHERE artifact = ?1",
        )
        .unwrap()
        .query_map([id], |r| {
            Ok((
                (r.get::<_, i64>(0)? as u64, r.get(1)?),
                (r.get::<_, i64>(2)? as u64, r.get(3)?, r.get(4)?),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let usage = conn
        .prepare(
            "SELECT version, run_id, dir FROM artifact_usage WHERE artifact = ?1 ORDER BY 1, 3",
        )
        .unwrap()
        .query_map([id], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    StoredArtifact {
        seq,
        problem,
        removed,
        versions,
        aliases,
        files,
        usage,
    }
}

/// What the artifact's files on the server say it is, in the shape of [`StoredArtifact`]
/// (without seq, problem and removed): `versions.json` and each version's `manifest.json`
/// and `metadata.json`, with `stored` from the pool.
fn expected(root: &Path, kind: &str, name: &str) -> StoredArtifact {
    let dir = root.join("artifacts").join(kind).join(name);
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("versions.json")).unwrap()).unwrap();
    let mut out = StoredArtifact {
        seq: 0,
        problem: None,
        removed: false,
        versions: BTreeMap::new(),
        aliases: BTreeMap::new(),
        files: BTreeMap::new(),
        usage: Vec::new(),
    };
    for (alias, v) in index["aliases"].as_object().unwrap() {
        out.aliases.insert(alias.clone(), v.as_u64().unwrap());
    }
    for entry in index["versions"].as_array().unwrap() {
        let v = entry["version"].as_u64().unwrap();
        let vdir = dir.join(format!("v{v}"));
        let manifest: Value =
            serde_json::from_slice(&fs::read(vdir.join("manifest.json")).unwrap()).unwrap();
        let meta: Value =
            serde_json::from_slice(&fs::read(vdir.join("metadata.json")).unwrap()).unwrap();
        let mut size = 0;
        for f in manifest["files"].as_array().unwrap() {
            let sha = f["sha256"].as_str().unwrap().to_owned();
            let pooled = root.join("artifacts/.pool").join(&sha[..2]).join(&sha);
            let stored = if pooled.is_file() { "whole" } else { "missing" };
            size += f["size"].as_u64().unwrap();
            out.files.insert(
                (v, f["path"].as_str().unwrap().to_owned()),
                (f["size"].as_u64().unwrap(), sha, stored.to_owned()),
            );
        }
        let producer = entry["produced_by"].as_object().map(|p| {
            (
                p["run_id"].as_str().unwrap().to_owned(),
                p["dir"].as_str().unwrap().to_owned(),
            )
        });
        let refs = manifest
            .get("references")
            .cloned()
            .unwrap_or_else(|| json!([]));
        let metadata = meta.get("metadata").cloned().filter(|m| !m.is_null());
        let description = meta["description"].as_str().map(str::to_owned);
        out.versions
            .insert(v, (size, description, metadata, producer, refs));
        for user in entry["used_by"].as_array().into_iter().flatten() {
            out.usage.push((
                v,
                user["run_id"].as_str().unwrap().to_owned(),
                user["dir"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out.usage.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    out
}

/// The stored artifact equals what its files on the server say (seq, problem, removed apart).
fn assert_synced(s: &SshHub, kind: &str, name: &str) -> StoredArtifact {
    let got = stored(&store(s), &format!("artifacts/{kind}/{name}"));
    let want = expected(s.root(), kind, name);
    assert_eq!(got.versions, want.versions, "{kind}/{name} versions");
    assert_eq!(got.aliases, want.aliases, "{kind}/{name} aliases");
    assert_eq!(got.files, want.files, "{kind}/{name} files");
    assert_eq!(got.usage, want.usage, "{kind}/{name} usage");
    assert!(!got.removed && got.seq > 0, "{got:?}");
    got
}

fn run_dir(s: &SshHub, run_id: &str) -> String {
    store(s)
        .query_row("SELECT dir FROM runs WHERE run_id = ?1", [run_id], |r| {
            r.get(0)
        })
        .unwrap()
}

#[test]
fn versions_aliases_files_and_lineage_sync_and_follow_later_changes() {
    let s = SshHub::start();
    python(&s, LOG_THREE_VERSIONS);
    let stderr = s.connect_once(&[]);
    assert!(stderr.contains("synced 2 runs, 2 artifacts,"), "{stderr}");

    let m = assert_synced(&s, "model", "m");
    assert_eq!(m.problem, None);
    assert_eq!(m.versions.len(), 3);
    assert_eq!(
        m.aliases,
        [("best".to_string(), 3), ("latest".to_string(), 3)].into()
    );
    let producer = run_dir(&s, "producer");
    let consumer = run_dir(&s, "consumer");
    for (v, (_, description, metadata, produced, _)) in &m.versions {
        assert_eq!(description.as_deref(), Some(format!("epoch {v}").as_str()));
        assert_eq!(metadata, &Some(json!({"epoch": v})));
        assert_eq!(
            produced,
            &Some(("producer".to_string(), producer.clone())),
            "v{v} links to the producing run as the hub knows it"
        );
    }
    assert_eq!(m.usage, [(1, "consumer".to_string(), consumer)]);
    assert_eq!(
        m.versions[&2].4,
        json!([{"uri": "s3://bucket/train.csv", "checksum": null, "size": 123}])
    );
    assert!(m.files.contains_key(&(2, "docs/notes.txt".to_string())));
    assert_synced(&s, "dataset", "d");

    // Nothing changed: nothing moves.
    let again = s.sync();
    assert_eq!(again["artifacts"], 0, "{again}");

    // `best` moves back to v1, and v2 is deleted (its directory and its entry; the pool stays).
    python(
        &s,
        r#"
import os, sys
import runicorn as rn
root, scratch = sys.argv[1], sys.argv[2]
run = rn.init(path="train", storage=root, run_id="mover")
art = rn.Artifact("m", type="model")
art.add_file(os.path.join(scratch, "w1.bin"), name="w.bin")
run.log_artifact(art, aliases=["best"])
run.finish()
"#,
    );
    let dir = s.root().join("artifacts/model/m");
    let mut index: Value =
        serde_json::from_slice(&fs::read(dir.join("versions.json")).unwrap()).unwrap();
    index["versions"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v["version"] != 2);
    fs::write(dir.join("versions.json"), index.to_string()).unwrap();
    fs::remove_dir_all(dir.join("v2")).unwrap();
    let round = s.sync();
    assert_eq!(round["artifacts"], 1, "only m changed: {round}");
    let m = assert_synced(&s, "model", "m");
    assert_eq!(m.versions.keys().copied().collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(m.aliases["best"], 4);
    assert_eq!(m.aliases["latest"], 4);
    assert!(!m.files.contains_key(&(2, "docs/notes.txt".to_string())));

    // The dataset's directory removed on the server: kept on the hub, marked removed.
    fs::remove_dir_all(s.root().join("artifacts/dataset/d")).unwrap();
    s.sync();
    let d = stored(&store(&s), "artifacts/dataset/d");
    assert!(d.removed, "{d:?}");
    assert_eq!(d.versions.len(), 1, "a removed artifact keeps its rows");
}

#[test]
fn a_damaged_versions_json_arrives_as_a_problem_and_the_others_still_sync() {
    let s = SshHub::start();
    python(&s, LOG_THREE_VERSIONS);
    fs::write(
        s.root().join("artifacts/model/m/versions.json"),
        "{\"name\": \"m\", \"type\": \"model\", \"versions\": [",
    )
    .unwrap();
    s.connect_once(&[]);
    let m = stored(&store(&s), "artifacts/model/m");
    let problem = m.problem.clone().unwrap_or_default();
    assert!(problem.contains("versions.json"), "{m:?}");
    assert!(!m.removed);
    assert_synced(&s, "dataset", "d");

    // Repaired: the next sync brings its versions.
    python(
        &s,
        r#"
import os, sys, json
root = sys.argv[1]
d = os.path.join(root, "artifacts", "model", "m")
versions = sorted(int(n[1:]) for n in os.listdir(d) if n.startswith("v") and n[1:].isdigit())
entries = []
for v in versions:
    meta = json.load(open(os.path.join(d, "v%d" % v, "metadata.json")))
    entries.append({"version": v, "created_at": meta.get("created_at"),
                    "produced_by": meta.get("produced_by")})
json.dump({"name": "m", "type": "model", "versions": entries,
           "aliases": {"latest": versions[-1]}}, open(os.path.join(d, "versions.json"), "w"))
"#,
    );
    s.sync();
    let m = assert_synced(&s, "model", "m");
    assert_eq!(m.problem, None);
    assert_eq!(m.versions.len(), 3);
}

#[test]
fn an_upstream_style_runs_assets_json_fills_runs_assets() {
    let s = SshHub::start();
    let dir = s.root().join("runs/vision/20261201_120000_abc123");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("meta.json"),
        json!({"id": "20261201_120000_abc123", "project": "vision", "created_at": 1.7e9,
               "python": "3.11", "platform": "Linux", "hostname": "gpu", "pid": 1,
               "storage_dir": "/data", "workspace_root": "/src"})
        .to_string(),
    )
    .unwrap();
    fs::write(
        dir.join("status.json"),
        json!({"status": "finished", "started_at": 1.7e9, "ended_at": 1.7e9 + 60.0}).to_string(),
    )
    .unwrap();
    let assets = json!({
        "code": {"snapshot": {"saved": true, "workspace_root": "/src", "format": "zip",
                 "created_at": 1.7e9, "archive_path": "/data/runs/vision/x/code_snapshot.zip",
                 "fingerprint_kind": "sha256", "fingerprint": "ab".repeat(32)}},
        "config": {"args": {"lr": 0.01}, "extra": {}, "config_files": []},
        "datasets": [{"name": "cifar", "context": "train", "uri": "/data/cifar",
                      "description": null, "saved": false,
                      "fingerprint": {"kind": "stat", "size_bytes": 10, "mtime": 1.0}}],
        "pretrained": [],
        "outputs": [{"key": "ckpt", "name": "best.pth", "kind": "file", "path": "./out/best.pth",
                     "saved": true, "archive_path": "/data/archive/outputs/rolling/x/best.pth",
                     "fingerprint_kind": "stat", "fingerprint": "1-2", "mode": "rolling",
                     "archived_at": 1.7e9}]
    });
    fs::write(dir.join("assets.json"), assets.to_string()).unwrap();
    let stderr = s.connect_once(&[]);
    assert!(
        stderr.contains("synced 1 runs,"),
        "no artifacts, none named: {stderr}"
    );
    let (stored, config): (Option<String>, Option<String>) = store(&s)
        .query_row(
            "SELECT assets, config FROM runs WHERE run_id = '20261201_120000_abc123'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.expect("runs.assets filled")).unwrap();
    assert_eq!(stored, assets);
    assert_eq!(
        serde_json::from_str::<Value>(&config.unwrap()).unwrap(),
        json!({"lr": 0.01}),
        "the configuration still comes from it"
    );

    // A changed assets.json arrives with the next sync.
    let mut more = assets.clone();
    more["pretrained"] = json!([{"name": "resnet50", "source_type": "torchvision",
                                 "path_or_uri": "resnet50", "saved": false}]);
    fs::write(dir.join("assets.json"), more.to_string()).unwrap();
    s.sync();
    let again: String = store(&s)
        .query_row("SELECT assets FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), more);
}

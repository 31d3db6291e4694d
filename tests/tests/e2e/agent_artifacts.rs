//! `runicorn-agent artifacts` over stores written by the Python SDK: the listing, `rm`, `pack`
//! and `gc`, and their safety: deleting a version and collecting garbage never loses a byte
//! another version uses, gc and pack while a writer logs lose nothing it logged, and a damaged
//! manifest makes gc refuse. Every version is checked by re-hashing each of its files, read the
//! way the format says (whole pool file, or its recipe's chunks), independently of the store's
//! own code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runicorn_tests::{agent, describe, output_within, read_json, sha256sum, workspace_root};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// Logs versions with the Python SDK: `log.py NAME COUNT BIG_BYTES SEED [ALIAS_AT]`. Version
/// `i` holds `big.bin` (one base buffer with regions rewritten, kept by later versions, and one
/// region of its own) and `small.txt`. Each
/// `log_artifact` holds the pool lock shared as docs/run-format.md asks of writers (an SDK
/// that takes it itself nests a second shared lock, which flock allows).
const LOG_VERSIONS: &str = r#"
import fcntl, os, random, sys
import runicorn as rn
name, count, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
alias_at = int(sys.argv[5]) if len(sys.argv) > 5 else 0
root = os.environ["RUNICORN_DIR"]
rng = random.Random(seed)
base = bytearray(rng.randbytes(size))
run = rn.init(path="train/" + name)
work = os.path.join(root, "work-" + name)
os.makedirs(work, exist_ok=True)
lock_path = os.path.join(root, "artifacts", ".pool", ".lock")
os.makedirs(os.path.dirname(lock_path), exist_ok=True)
for i in range(1, count + 1):
    for _ in range(3):
        at = rng.randrange(0, max(1, size - 4096))
        base[at:at + 4096] = rng.randbytes(4096)
    # One region only this version has (restored after): its own chunks.
    own = rng.randrange(0, max(1, size - 4096))
    kept = bytes(base[own:own + 4096])
    base[own:own + 4096] = rng.randbytes(4096)
    with open(os.path.join(work, "big.bin"), "wb") as f:
        f.write(base)
    base[own:own + 4096] = kept
    with open(os.path.join(work, "small.txt"), "w") as f:
        f.write("%s version %d %d\n" % (name, i, rng.random() * 1e9))
    art = rn.Artifact(name, type="model", description="checkpoint %d" % i, metadata={"i": i})
    art.add_file(os.path.join(work, "big.bin"))
    art.add_file(os.path.join(work, "small.txt"))
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        v = run.log_artifact(art, aliases=["best"] if i == alias_at else [])
    finally:
        os.close(fd)
    assert v is not None, "log_artifact failed"
    print(v.version, flush=True)
run.finish()
"#;

fn python() -> PathBuf {
    std::env::var_os("RUNICORN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn log_versions_cmd(root: &Path, name: &str, count: u32, size: usize, seed: u32) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg("-c")
        .arg(LOG_VERSIONS)
        .args([
            name,
            &count.to_string(),
            &size.to_string(),
            &seed.to_string(),
            "2",
        ])
        .env("PYTHONPATH", workspace_root().join("sdk/python/src"))
        .env("RUNICORN_DIR", root)
        .env_remove("RUNICORN_RUN_DIR");
    cmd
}

fn log_versions(root: &Path, name: &str, count: u32, size: usize, seed: u32) {
    let out = output_within(&mut log_versions_cmd(root, name, count, size, seed), LIMIT);
    assert!(out.status.success(), "python writer: {}", describe(&out));
}

fn artifacts(root: &Path, args: &[&str]) -> std::process::Output {
    output_within(
        agent().arg("artifacts").args(args).arg("--root").arg(root),
        LIMIT,
    )
}

fn artifacts_ok(root: &Path, args: &[&str]) -> String {
    let out = artifacts(root, args);
    assert!(
        out.status.success(),
        "artifacts {args:?}: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn listing(root: &Path) -> Value {
    serde_json::from_str(&artifacts_ok(root, &["--json"])).unwrap()
}

fn fanout(sha: &str) -> String {
    format!("{}/{sha}", &sha[..2])
}

/// Re-hashes every file of `artifacts/model/NAME/vN` from the pool (whole, or assembled from
/// its recipe's chunks, each chunk checked too); panics naming what does not verify.
fn verify_version(root: &Path, name: &str, version: u64) {
    let vdir = root.join(format!("artifacts/model/{name}/v{version}"));
    let manifest = read_json(&vdir.join("manifest.json"));
    let files = manifest["files"].as_array().unwrap();
    assert!(!files.is_empty(), "{name}:v{version} has no files");
    let scratch = tempfile::tempdir().unwrap();
    for file in files {
        let sha = file["sha256"].as_str().unwrap();
        let whole = root.join("artifacts/.pool").join(fanout(sha));
        let got = if whole.is_file() {
            sha256sum(&whole)
        } else {
            let recipe_path = root
                .join("artifacts/.pool")
                .join(format!("{}.chunks.json", fanout(sha)));
            assert!(
                recipe_path.is_file(),
                "{name}:v{version} {}: content {sha} neither whole nor chunked",
                file["path"]
            );
            let recipe = read_json(&recipe_path);
            let mut bytes = Vec::new();
            for chunk in recipe["chunks"].as_array().unwrap() {
                let chunk_sha = chunk["sha256"].as_str().unwrap();
                let path = root.join("artifacts/.chunks").join(fanout(chunk_sha));
                assert_eq!(sha256sum(&path), chunk_sha, "chunk of {name}:v{version}");
                bytes.extend(fs::read(&path).unwrap());
            }
            let assembled = scratch.path().join(sha);
            fs::write(&assembled, &bytes).unwrap();
            sha256sum(&assembled)
        };
        assert_eq!(
            got, sha,
            "{name}:v{version} {} does not verify",
            file["path"]
        );
        assert_eq!(
            fs::metadata(&whole)
                .map(|m| m.len())
                .unwrap_or(file["size"].as_u64().unwrap()),
            file["size"].as_u64().unwrap()
        );
    }
}

fn versions_of(listing: &Value, name: &str) -> Vec<u64> {
    listing["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| {
            a["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn pool_files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["artifacts/.pool", "artifacts/.chunks"] {
        let Ok(prefixes) = fs::read_dir(root.join(sub)) else {
            continue;
        };
        for prefix in prefixes.flatten().filter(|p| p.file_name().len() == 2) {
            for entry in fs::read_dir(prefix.path()).unwrap().flatten() {
                found.push(format!("{sub}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_listing_shows_versions_aliases_sizes_and_the_producing_run() {
    let root = tempfile::tempdir().unwrap();
    log_versions(root.path(), "m", 3, 300_000, 1);
    let got = listing(root.path());
    let m = &got["artifacts"][0];
    assert_eq!(
        (m["type"].as_str(), m["name"].as_str()),
        (Some("model"), Some("m"))
    );
    assert_eq!(m["aliases"]["latest"], 3);
    assert_eq!(m["aliases"]["best"], 2);
    let v2 = &m["versions"][1];
    assert_eq!(v2["aliases"], serde_json::json!(["best"]));
    assert_eq!(v2["description"], "checkpoint 2");
    assert_eq!(v2["files"].as_array().unwrap().len(), 2);
    assert!(v2["size"].as_u64().unwrap() > 300_000);
    assert!(v2["produced_by"]["dir"]
        .as_str()
        .unwrap()
        .starts_with("runs/train/m/"));
    assert!(v2["host"].is_string());
    assert_eq!(v2["files"][0]["stored"], "whole");
    // Three distinct checkpoints: nothing shared whole, so distinct = files.
    assert_eq!(m["files_bytes"], m["distinct_bytes"]);
    let text = artifacts_ok(root.path(), &[]);
    assert!(text.contains("model/m: 3 versions"), "{text}");
    assert!(text.contains("best"), "{text}");
}

#[test]
fn deleting_v2_then_gc_keeps_v1_and_v3_intact() {
    let root = tempfile::tempdir().unwrap();
    log_versions(root.path(), "m", 3, 5 << 20, 2);
    let packed = artifacts_ok(root.path(), &["pack"]);
    assert!(packed.contains("packed 3 files"), "{packed}");
    for v in 1..=3 {
        verify_version(root.path(), "m", v);
    }
    let removed = artifacts_ok(root.path(), &["rm", "m:v2"]);
    assert!(removed.contains("aliases dropped: best"), "{removed}");
    assert!(removed.contains("latest is v3"), "{removed}");
    assert_eq!(versions_of(&listing(root.path()), "m"), vec![1, 3]);

    let before = pool_files(root.path());
    let dry: Value =
        serde_json::from_str(&artifacts_ok(root.path(), &["gc", "--dry-run", "--json"])).unwrap();
    assert_eq!(
        pool_files(root.path()),
        before,
        "a dry run deleted something"
    );
    assert_eq!(dry["whole_files"], 1, "v2's small file: {dry}");
    assert_eq!(dry["recipes"], 1, "v2's checkpoint: {dry}");
    // Exactly the chunks only v2's checkpoint had (its edits that v3 rewrote again).
    let chunks_of = |v: u64| -> std::collections::BTreeSet<String> {
        let manifest = read_json(
            &root
                .path()
                .join(format!("artifacts/model/m/v{v}/manifest.json")),
        );
        let big = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "big.bin")
            .unwrap()["sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        let recipe = read_json(
            &root
                .path()
                .join("artifacts/.pool")
                .join(format!("{}.chunks.json", fanout(&big))),
        );
        recipe["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sha256"].as_str().unwrap().to_owned())
            .collect()
    };
    let kept: std::collections::BTreeSet<String> =
        chunks_of(1).union(&chunks_of(3)).cloned().collect();
    let all_chunks = pool_files(root.path())
        .iter()
        .filter(|p| p.starts_with("artifacts/.chunks/"))
        .count();
    assert_eq!(
        dry["chunks"].as_u64().unwrap() as usize,
        all_chunks - kept.len(),
        "{dry}"
    );
    assert!(dry["chunks"].as_u64().unwrap() >= 1, "{dry}");
    let done: Value = serde_json::from_str(&artifacts_ok(root.path(), &["gc", "--json"])).unwrap();
    for key in ["whole_files", "recipes", "chunks", "chunk_bytes"] {
        assert_eq!(done[key], dry[key], "{key}: the dry run said otherwise");
    }
    assert_eq!(
        pool_files(root.path()).len(),
        before.len() - 2 - done["chunks"].as_u64().unwrap() as usize
    );
    verify_version(root.path(), "m", 1);
    verify_version(root.path(), "m", 3);
    let again: Value = serde_json::from_str(&artifacts_ok(root.path(), &["gc", "--json"])).unwrap();
    assert_eq!(
        (again["whole_files"].as_u64(), again["chunks"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn rm_errors_name_the_artifact_and_version() {
    let root = tempfile::tempdir().unwrap();
    log_versions(root.path(), "m", 2, 1000, 3);
    for (args, says) in [
        (vec!["rm", "m:v7"], "has no version v7 (it has v1, v2)"),
        (vec!["rm", "nope:v1"], "no artifact \"nope\""),
        (vec!["rm", "m:latest"], "NAME:vN"),
        (vec!["rm", "m:v1", "--type", "dataset"], "of type dataset"),
    ] {
        let out = artifacts(root.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(versions_of(&listing(root.path()), "m"), vec![1, 2]);
}

#[test]
fn a_damaged_manifest_makes_gc_refuse_naming_it() {
    let root = tempfile::tempdir().unwrap();
    log_versions(root.path(), "m", 2, 1000, 4);
    log_versions(root.path(), "old", 1, 1000, 5);
    artifacts_ok(root.path(), &["rm", "old:v1"]); // garbage gc would take
    fs::write(
        root.path().join("artifacts/model/m/v1/manifest.json"),
        "{\"files\": [",
    )
    .unwrap();
    let before = pool_files(root.path());
    for args in [&["gc", "--dry-run"][..], &["gc"][..]] {
        let out = artifacts(root.path(), args);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("artifacts/model/m/v1"), "{err}");
        assert!(err.contains("nothing deleted"), "{err}");
    }
    assert_eq!(pool_files(root.path()), before);
    // The listing still works and names the problem.
    let out = artifacts(root.path(), &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("artifacts/model/m/v1/manifest.json"));
}

/// Runs `agent artifacts ACTION` over and over while a Python writer logs `count` versions;
/// then every version the writer logged must be listed and verify.
fn maintain_while_writing(action: &[&str], count: u32, size: usize) -> (tempfile::TempDir, u32) {
    let root = tempfile::tempdir().unwrap();
    // Garbage for gc to find while the writer works: a deleted artifact's bytes.
    log_versions(root.path(), "gone", 2, size, 6);
    artifacts_ok(root.path(), &["rm", "gone:v1"]);
    artifacts_ok(root.path(), &["rm", "gone:v2"]);
    let mut writer: Child = log_versions_cmd(root.path(), "w", count, size, 7)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    let mut runs = 0;
    let status = loop {
        if let Some(status) = writer.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the writer did not finish");
        let out = artifacts(root.path(), action);
        assert!(
            out.status.success(),
            "{action:?} during writes: {}",
            describe(&out)
        );
        runs += 1;
    };
    let out = writer.wait_with_output().unwrap();
    assert!(status.success(), "writer: {}", describe(&out));
    let logged: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(logged, (1..=u64::from(count)).collect::<Vec<_>>());
    // Once more after the writer, then everything it logged must read back.
    artifacts_ok(root.path(), action);
    assert_eq!(versions_of(&listing(root.path()), "w"), logged);
    for v in logged {
        verify_version(root.path(), "w", v);
    }
    (root, runs)
}

#[test]
fn gc_while_a_writer_logs_loses_nothing() {
    let (root, runs) = maintain_while_writing(&["gc"], 12, 600_000);
    assert!(runs >= 2, "gc ran only {runs} times during the writes");
    // The deleted artifact's bytes are gone, the writer's are all there.
    assert!(versions_of(&listing(root.path()), "gone").is_empty());
}

#[test]
fn pack_while_a_writer_logs_loses_nothing() {
    let (root, runs) = maintain_while_writing(&["pack"], 6, 5 << 20);
    assert!(runs >= 1, "pack never ran during the writes");
    let got = listing(root.path());
    let w = got["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "w")
        .unwrap();
    for v in w["versions"].as_array().unwrap() {
        let big = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "big.bin")
            .unwrap();
        assert_eq!(big["stored"], "chunked", "{v}");
    }
    // Chunks are shared: far less on disk than the checkpoints' total.
    assert!(
        got["stored_bytes"].as_u64().unwrap() < got["files_bytes"].as_u64().unwrap() / 2,
        "{}",
        got["pool"]
    );
}

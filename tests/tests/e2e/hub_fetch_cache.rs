//! `runicorn-hub fetch`, `cache`, `cache gc` and the background prefetch, as a user runs them:
//! runs written on a "server" (a real OpenSSH sshd on loopback, or a local root), synced by the
//! real `runicorn-hub connect`, files copied out by the real `fetch` (byte-identical, checked by
//! `sha256sum`), then the server stopped (sshd and every session killed) to prove what the cache
//! holds and what it does not.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{hub, json_of, show, sync_local_once_with};
use runicorn_tests::ssh_hub::SshHub;
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{noise, output_within, sha256sum};
use serde_json::Value;

/// Longest any one command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// Writes `mib` MiB that differ block by block, a block at a time (this process's memory stays
/// small), into `path`, creating its folder.
fn write_noise_file(path: &Path, mib: u8, seed: u64) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = std::fs::File::create(path).unwrap();
    let block = noise(1 << 20, seed);
    for i in 0..mib {
        out.write_all(&[i]).unwrap();
        out.write_all(&block[1..]).unwrap();
    }
}

/// A finished run `run_id` under `root` with `files` (relative path, bytes) of its own.
fn write_run(root: &Path, run_id: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("fetch".to_owned());
    spec.run_id = Some(run_id.to_owned());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    let dir = w.dir().to_owned();
    for (path, bytes) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    w.finish(RunOutcome::finished()).unwrap();
    dir
}

fn fetch(home: &ClientHome, hub_dir: &Path, args: &[&str]) -> Output {
    output_within(
        hub(home.path(), hub_dir).arg("fetch").args(args),
        COMMAND_LIMIT,
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn fetch_copies_a_runs_files_and_serves_them_from_the_cache_once_the_server_is_gone() {
    let mut s = SshHub::start();
    let run_dir = write_run(
        s.root(),
        "fetchme",
        &[
            ("ckpt/epoch2.pt", noise(700_000, 2)),
            ("ckpt/old/epoch0.pt", noise(1000, 3)),
            ("media/sample.png", noise(5000, 4)),
            (
                "notes.txt",
                b"not fetched while the server was up\n".to_vec(),
            ),
        ],
    );
    // A 200 MiB checkpoint (unhashed by the agent: over its 64 MiB hashing limit).
    write_noise_file(&run_dir.join("ckpt/epoch1.pt"), 200, 1);
    s.connect_once(&["--prefetch", "none"]);
    let out_dir = tempfile::tempdir().unwrap();

    // `*` stays within its folder: ckpt/old/ is not matched.
    let first = out_dir.path().join("first");
    let out = fetch(
        &s.home,
        s.hub_dir(),
        &[
            "gpu/fetchme",
            "--files",
            "ckpt/*.pt",
            "-o",
            first.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("fetched 2 of 2 files"),
        "{}",
        show(&out)
    );
    for name in ["ckpt/epoch1.pt", "ckpt/epoch2.pt"] {
        assert_eq!(
            sha256sum(&first.join(name)),
            sha256sum(&run_dir.join(name)),
            "{name}"
        );
    }
    assert!(!first.join("ckpt/old").exists());
    assert!(!first.join("media").exists());

    // A glob that matches nothing says so and how many files there are.
    let out = fetch(&s.home, s.hub_dir(), &["fetchme", "--files", "*.bin"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("no file of run gpu/fetchme matches"),
        "{}",
        show(&out)
    );

    // The server goes away, sessions and all: what was fetched comes from the cache.
    s.sshd.stop();
    let second = out_dir.path().join("second");
    let out = fetch(
        &s.home,
        s.hub_dir(),
        &[
            "fetchme",
            "--files",
            "ckpt/*.pt",
            "-o",
            second.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(stderr(&out).contains("0 B from gpu"), "{}", show(&out));
    for name in ["ckpt/epoch1.pt", "ckpt/epoch2.pt"] {
        assert_eq!(
            sha256sum(&second.join(name)),
            sha256sum(&run_dir.join(name))
        );
    }
    // What was never fetched is not there, and the error says why, naming the file.
    let third = out_dir.path().join("third");
    let out = fetch(
        &s.home,
        s.hub_dir(),
        &[
            "fetchme",
            "--files",
            "notes.txt",
            "-o",
            third.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("notes.txt"), "{err}");
    assert!(err.to_lowercase().contains("offline"), "{err}");
    assert!(!third.join("notes.txt").exists());
}

/// The cache folder's content files, by hash.
fn cached_files(hub_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(hub_dir.join("files")).unwrap().flatten() {
        let prefix = shard.file_name().to_string_lossy().into_owned();
        if prefix.len() != 2 {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            found.push((
                format!("{prefix}{}", f.file_name().to_string_lossy()),
                f.path(),
            ));
        }
    }
    found.sort();
    found
}

fn touch(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn cache_gc_removes_least_recently_used_files_first_and_keeps_files_in_use() {
    let root = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let sizes = [100_000usize, 200_000, 300_000, 400_000];
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("ckpt/{i}.pt"), noise(n, 10 + i as u64)))
        .collect();
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let run_dir = write_run(root.path(), "gcrun", &borrowed);
    // The same bytes in a second run are stored once.
    write_run(root.path(), "twin", &borrowed[..1]);
    sync_local_once_with(
        home.path(),
        hub_dir.path(),
        root.path(),
        "box",
        &["--prefetch", "all"],
    );

    let usage = json_of(hub(home.path(), hub_dir.path()).args(["cache", "--json"]));
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    // `--prefetch all` brought every file of both runs (records included), each content once.
    assert!(usage["bytes"].as_u64().unwrap() >= total, "{usage}");
    let remotes = usage["remotes"].as_array().unwrap();
    assert_eq!(remotes.len(), 1, "{usage}");
    assert_eq!(remotes[0]["remote"], "box");

    // Ages by size: the smallest checkpoint was used last; the largest is held open.
    let by_sha: Vec<(String, PathBuf)> = cached_files(hub_dir.path());
    let sha_of = |i: usize| sha256sum(&run_dir.join(format!("ckpt/{i}.pt")));
    let path_of = |sha: &str| {
        by_sha
            .iter()
            .find(|(s, _)| s == sha)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("{sha} is not cached"))
    };
    for (sha, path) in &by_sha {
        let _ = sha;
        touch(path, Duration::from_secs(10_000));
    }
    for (i, age) in [(0usize, 10), (1, 400), (2, 300), (3, 500)] {
        touch(&path_of(&sha_of(i)), Duration::from_secs(age));
    }
    // A reader holds the largest one (as the dashboard does while it streams a file).
    let held = std::fs::File::open(path_of(&sha_of(3))).unwrap();
    held.try_lock_shared().unwrap();

    let limit = (sizes[0] + sizes[3] + 1000).to_string();
    let dry = json_of(hub(home.path(), hub_dir.path()).args([
        "cache",
        "gc",
        "--max-size",
        &limit,
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        cached_files(hub_dir.path()).len(),
        by_sha.len(),
        "a dry run removes nothing"
    );

    let done = json_of(hub(home.path(), hub_dir.path()).args([
        "cache",
        "gc",
        "--max-size",
        &limit,
        "--json",
    ]));
    assert_eq!(
        done["removed"], dry["removed"],
        "the dry run said what gc does"
    );
    let removed: Vec<&str> = done["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha256"].as_str().unwrap())
        .collect();
    // The records (oldest) went first, then checkpoints 1 and 2; 3 is in use, 0 was used last.
    assert!(removed.contains(&sha_of(1).as_str()), "{done}");
    assert!(removed.contains(&sha_of(2).as_str()), "{done}");
    assert!(!removed.contains(&sha_of(0).as_str()), "{done}");
    let kept: Vec<&str> = done["kept_in_use"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [sha_of(3).as_str()], "{done}");
    assert!(done["bytes_after"].as_u64().unwrap() <= limit.parse::<u64>().unwrap());
    let left: Vec<String> = cached_files(hub_dir.path())
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(left, {
        let mut l = vec![sha_of(0), sha_of(3)];
        l.sort();
        l
    });
    drop(held);

    // The listing no longer claims the removed files are cached; fetching brings one back.
    let served = ServedDashboard::start(hub_dir.path(), None);
    let page = served.json("/api/runs/gcrun/files?prefix=ckpt%2F");
    let cached: Vec<(String, bool)> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["cached"] == true))
        .collect();
    assert_eq!(
        cached,
        [
            ("ckpt/0.pt".to_owned(), true),
            ("ckpt/1.pt".to_owned(), false),
            ("ckpt/2.pt".to_owned(), false),
            ("ckpt/3.pt".to_owned(), true),
        ]
    );
    served.stop(Duration::from_secs(10));
    let again = tempfile::tempdir().unwrap();
    let out = fetch(
        &home,
        hub_dir.path(),
        &[
            "gcrun",
            "--files",
            "ckpt/1.pt",
            "-o",
            again.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(sha256sum(&again.path().join("ckpt/1.pt")), sha_of(1));
}

#[test]
fn default_prefetch_leaves_a_runs_images_served_offline_but_not_its_big_checkpoint() {
    let mut s = SshHub::start();
    let images: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("media/step{i}.png"),
                noise(20_000 + i * 1000, 40 + i as u64),
            )
        })
        .collect();
    let files: Vec<(&str, Vec<u8>)> = images
        .iter()
        .map(|(p, b)| (p.as_str(), b.clone()))
        .collect();
    let run_dir = write_run(s.root(), "pictures", &files);
    // A 200 MiB checkpoint: far over the media threshold, and not media.
    write_noise_file(&run_dir.join("ckpt/model.pt"), 200, 99);
    // Default prefetch; `--once` returns when the prefetch is done.
    s.connect_once(&[]);
    s.sshd.stop();

    let store = StoreHandle::open(s.hub_dir()).unwrap();
    let fetcher: Arc<dyn runicorn_web::FileFetcher> = Arc::new(RemoteFiles::new(store));
    let served = ServedDashboard::start(s.hub_dir(), Some(fetcher));
    for (path, bytes) in &images {
        let r = served.get(&format!("/api/runs/pictures/files/{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(&r.body, bytes, "{path}");
    }
    let big = served.get("/api/runs/pictures/files/ckpt/model.pt");
    assert_eq!(big.status, 503, "{}", big.text());
    let page = served.json("/api/runs/pictures/files?prefix=ckpt%2F");
    assert_eq!(page["files"][0]["cached"], false, "{page}");
    served.stop(Duration::from_secs(10));
    let usage: Value = json_of(s.hub().args(["cache", "--json"]));
    assert!(usage["bytes"].as_u64().unwrap() < 10 << 20, "{usage}");
    let _ = std::fs::remove_file(run_dir.join("ckpt/model.pt"));
}

/// The upstream 0.7.2 fixture's run (`runs/assets/compat/<id>`).
const UPSTREAM_RUN: &str = "20261205_025340_694eef";

/// The fixture's `archive/blobs/<sha[:2]>/<sha>`.
fn blob_of(root: &Path, sha: &str) -> PathBuf {
    root.join("archive/blobs").join(&sha[..2]).join(sha)
}

#[test]
fn fetch_assets_copies_an_upstream_runs_assets_out_of_its_archive_verified() {
    let s = SshHub::with_root(runicorn_tests::fixture_copy("upstream-0.7.2-assets"));
    s.connect_once(&["--prefetch", "none"]);
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("assets");
    let run_ref = format!("gpu/{UPSTREAM_RUN}");
    let out = fetch(
        &s.home,
        s.hub_dir(),
        &["assets", &run_ref, "--json", "-o", dest.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = s.root();
    let rolling = r.join("archive/outputs/rolling").join(UPSTREAM_RUN);
    let expected: Vec<(&str, PathBuf)> = vec![
        (
            "code/code_snapshot.zip",
            blob_of(
                r,
                "b91074e4b79f2b6b0190706ab8c685705d82c2e2e745512ce888ba6c9ab38bca",
            ),
        ),
        (
            "datasets/cifar/labels.txt",
            blob_of(
                r,
                "f641fdcd8af73b2f6334ab63c13d2eb857cd16f2aa4ea0ba20ba0eb9627918b5",
            ),
        ),
        (
            "datasets/cifar/train/0.bin",
            blob_of(
                r,
                "e96760a87768717bcebcfd25ddc7d46b4dbc95a4b0014def080c08539f7d90d0",
            ),
        ),
        (
            "datasets/cifar/train/1.bin",
            blob_of(
                r,
                "003164e6603fa379c3e677ac09e2b6e5b761d47bd7418e9e5642196d2d26f536",
            ),
        ),
        (
            "datasets/labels/labels.csv",
            blob_of(
                r,
                "1f04397277afc61518ab25842e57836eed0e517d60adf6c5a9005b6ebce1bf69",
            ),
        ),
        (
            "pretrained/backbone/backbone.pt",
            blob_of(
                r,
                "0b1bfe37435c033b1d8c236dc3f56973904e75b14285b165ebb29ef631c01320",
            ),
        ),
        (
            "outputs/outputs/train.log",
            rolling.join("8bbe27ff1b7b71a4ac5ce6e7febb25f61fee8e0c_train.log"),
        ),
        (
            "outputs/outputs/best.pt",
            rolling.join("f2f368bc853633c8e2c0f81cbf2841272a2a34da_best.pt"),
        ),
        (
            "outputs/outputs/ckpt_dir/shard-0.bin",
            rolling.join("626f6f2de160841cd0c508f6977ef039a2f4eb9a_ckpt_dir/shard-0.bin"),
        ),
        (
            "outputs/outputs/ckpt_dir/shard-1.bin",
            rolling.join("626f6f2de160841cd0c508f6977ef039a2f4eb9a_ckpt_dir/shard-1.bin"),
        ),
        (
            "outputs/outputs_cas/final.pt",
            blob_of(
                r,
                "c0565ee3a219c051473652e70de3f91924ca60788b7d595e19d4ef0a9d152056",
            ),
        ),
    ];
    for (written, source) in &expected {
        let got = dest.join(written);
        assert!(got.is_file(), "{written} missing: {}", show(&out));
        assert_eq!(sha256sum(&got), sha256sum(source), "{written}");
    }
    // Nothing else: no marker file, no absolute path followed, no unsaved asset.
    let mut all = Vec::new();
    let mut pending = vec![dest.clone()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            } else {
                all.push(e.path());
            }
        }
    }
    assert_eq!(all.len(), expected.len(), "{all:?}");
    let assets = report["assets"].as_array().unwrap();
    let skipped: Vec<&str> = assets
        .iter()
        .filter(|a| a["skipped"].is_string())
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["unsaved", "hub-model"], "{report}");
    let verified = |name: &str| {
        assets
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["verified"].clone())
    };
    assert_eq!(verified("best.pt"), Some(Value::Bool(true)), "{report}");
    assert_eq!(verified("cifar"), Some(Value::Bool(true)), "{report}");
    // Upstream kept only a stat fingerprint of the log: copied, said to be unverified.
    assert_eq!(verified("train.log"), Some(Value::Bool(false)), "{report}");
    assert_eq!(report["files"], 11, "{report}");
    assert!(
        stderr(&out).contains("fetched 8 of 8 saved assets"),
        "{}",
        stderr(&out)
    );

    // A rolling checkpoint altered on the server no longer matches its SHA-256: refused.
    let best = rolling.join("f2f368bc853633c8e2c0f81cbf2841272a2a34da_best.pt");
    let mut bytes = std::fs::read(&best).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&best, &bytes).unwrap();
    let again = out_dir.path().join("again");
    let out = fetch(
        &s.home,
        s.hub_dir(),
        &["assets", &run_ref, "-o", again.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("best.pt") && stderr(&out).contains("SHA-256"),
        "{}",
        stderr(&out)
    );
    assert!(!again.join("outputs/outputs/best.pt").exists());
    assert!(!again.join("outputs/outputs/best.pt.part").exists());
    // The blobs came from the hub's cache this time, still byte-identical.
    assert_eq!(
        sha256sum(&again.join("code/code_snapshot.zip")),
        sha256sum(&expected[0].1)
    );
}

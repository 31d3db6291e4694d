//! `runicorn-hub fetch artifact` and the artifact download route over a real OpenSSH sshd on
//! loopback: versions written on the "server" by the Rust writer (v1 as a whole pool file the
//! agent cuts on the fly, v2 and v3 as chunks), synced by the real `runicorn-hub connect`, fetched
//! by the real binary. The bytes written out are the source's; fetching v3 after v2 moves exactly
//! the chunks v2 lacked (checked against the chunk lists computed here); a chunk damaged on the
//! server is refused and nothing of it is cached; once the server is gone, a cached version is
//! still served and an uncached one fails saying the remote is offline.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use runicorn_artifact_store::chunking::cut_stream;
use runicorn_artifact_store::writer::{log_artifact_with, Artifact, LogOptions};
use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{connect_ssh_once, hub, show};
use runicorn_tests::ssh_hub::SshHub;
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{noise, output_within};
use serde_json::Value;

/// Longest any one command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// `base` with `regions` stretches of 3000 bytes overwritten at places set by `seed`.
fn edited(base: &[u8], regions: usize, seed: u64) -> Vec<u8> {
    let mut out = base.to_vec();
    let places = noise(regions * 8, seed);
    for (i, p) in places.chunks(8).enumerate() {
        let at = (u64::from_le_bytes(p.try_into().unwrap()) as usize) % (out.len() - 3000);
        out[at..at + 3000].copy_from_slice(&noise(3000, seed * 100 + i as u64));
    }
    out
}

/// The server's root with model `m` v1..v3 (`weights.bin` of 6 MiB changing in a few places
/// from version to version, and the same small `config.json`); returns each version's weights.
fn write_versions(root: &Path, scratch: &Path) -> Vec<Vec<u8>> {
    let v1 = noise(6 << 20, 7);
    let v2 = edited(&v1, 4, 8);
    let v3 = edited(&v2, 4, 9);
    std::fs::write(scratch.join("config.json"), b"{\"lr\": 0.1}\n").unwrap();
    for (i, weights) in [&v1, &v2, &v3].into_iter().enumerate() {
        let file = scratch.join(format!("weights{}.bin", i + 1));
        std::fs::write(&file, weights).unwrap();
        let mut art = Artifact::new("m", "model").unwrap();
        art.add_file(&file, Some("weights.bin")).unwrap();
        art.add_file(&scratch.join("config.json"), None).unwrap();
        let aliases: &[&str] = if i == 1 { &["best"] } else { &[] };
        // v1 whole in the pool (the agent cuts it when asked), the others as chunks.
        let options = LogOptions {
            chunk_large_files: i > 0,
        };
        log_artifact_with(root, &art, aliases, None, &options).unwrap();
    }
    vec![v1, v2, v3]
}

fn fetch_artifact(home: &ClientHome, hub_dir: &Path, reference: &str, out: &Path) -> Output {
    output_within(
        hub(home.path(), hub_dir)
            .args(["fetch", "artifact", reference, "--json", "-o"])
            .arg(out),
        COMMAND_LIMIT,
    )
}

fn report(out: &Output) -> Value {
    assert!(out.status.success(), "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// The distinct chunks of `bytes` (hash → size).
fn chunks_of(bytes: &[u8]) -> Vec<(String, u64)> {
    let cut = cut_stream(bytes, |_, _, _| Ok(())).unwrap();
    let mut seen = HashSet::new();
    cut.chunks
        .into_iter()
        .filter(|c| seen.insert(c.sha256.clone()))
        .map(|c| (c.sha256, u64::from(c.size)))
        .collect()
}

/// A server with the three versions, synced into a fresh hub.
struct Setup {
    ssh: SshHub,
    out: tempfile::TempDir,
    weights: Vec<Vec<u8>>,
}

fn setup() -> Setup {
    let ssh = SshHub::start();
    let weights = write_versions(ssh.root(), ssh.scratch());
    ssh.connect_once(&["--prefetch", "none"]);
    Setup {
        ssh,
        out: tempfile::tempdir().unwrap(),
        weights,
    }
}

impl Setup {
    fn dir(&self, name: &str) -> PathBuf {
        self.out.path().join(name)
    }

    fn fetch(&self, reference: &str, dir: &str) -> Output {
        fetch_artifact(
            &self.ssh.home,
            self.ssh.hub_dir(),
            reference,
            &self.dir(dir),
        )
    }
}

#[test]
fn v1_and_v3_fetched_are_byte_identical_and_v3_after_v2_moves_only_the_missing_chunks() {
    let s = setup();
    // v1 (a whole pool file cut by the agent) and v3 (chunks), byte for byte.
    for (reference, dir, index) in [("m:v1", "v1", 0), ("m:latest", "v3", 2)] {
        let r = report(&s.fetch(reference, dir));
        assert_eq!(r["version"], index + 1, "{r}");
        let got = std::fs::read(s.dir(dir).join("weights.bin")).unwrap();
        assert!(got == s.weights[index], "{reference}: the bytes differ");
        assert_eq!(
            std::fs::read(s.dir(dir).join("config.json")).unwrap(),
            b"{\"lr\": 0.1}\n"
        );
    }

    // A fresh hub: v2 first (by its alias), then v3 moves only what v2 lacked.
    let hub2 = tempfile::tempdir().unwrap();
    connect_ssh_once(
        &s.ssh.home,
        hub2.path(),
        &s.ssh.sshd,
        s.ssh.root(),
        &["--prefetch", "none"],
    );
    let r2 = report(&fetch_artifact(
        &s.ssh.home,
        hub2.path(),
        "m:best",
        &s.dir("h2v2"),
    ));
    assert_eq!(r2["version"], 2, "{r2}");
    let v2_chunks = chunks_of(&s.weights[1]);
    assert_eq!(r2["chunks_moved"], v2_chunks.len(), "{r2}");
    let r3 = report(&fetch_artifact(
        &s.ssh.home,
        hub2.path(),
        "m:v3",
        &s.dir("h2v3"),
    ));
    let held: HashSet<String> = v2_chunks.into_iter().map(|(h, _)| h).collect();
    let missing: Vec<(String, u64)> = chunks_of(&s.weights[2])
        .into_iter()
        .filter(|(h, _)| !held.contains(h))
        .collect();
    let missing_bytes: u64 = missing.iter().map(|(_, n)| n).sum();
    assert!(!missing.is_empty() && missing.len() < 20, "{missing:?}");
    assert_eq!(r3["chunks_moved"], missing.len(), "{r3}");
    // config.json is the same bytes in both versions: from the cache.
    assert_eq!(r3["bytes_moved"], missing_bytes, "{r3}");
    assert_eq!(r3["contents_cached"], 1, "{r3}");
    assert!(std::fs::read(s.dir("h2v3").join("weights.bin")).unwrap() == s.weights[2]);
}

#[test]
fn a_chunk_damaged_on_the_server_is_refused_and_nothing_bad_is_cached() {
    let s = setup();
    // Damage one chunk of v2's weights that v1 does not have, keeping its length.
    let v1: HashSet<String> = chunks_of(&s.weights[0]).into_iter().map(|c| c.0).collect();
    let (victim, _) = chunks_of(&s.weights[1])
        .into_iter()
        .find(|(h, _)| !v1.contains(h))
        .unwrap();
    let path = s
        .ssh
        .root()
        .join("artifacts/.chunks")
        .join(&victim[..2])
        .join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    let out = s.fetch("m:v2", "bad");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match its SHA-256") && err.contains(&victim),
        "{err}"
    );
    assert!(!s.dir("bad").join("weights.bin").exists());
    let cached = s
        .ssh
        .hub_dir()
        .join("files/chunks")
        .join(&victim[..2])
        .join(&victim);
    assert!(!cached.exists(), "the damaged chunk was cached");
    // No chunk file in the cache holds bytes other than its name says.
    for shard in std::fs::read_dir(s.ssh.hub_dir().join("files/chunks")).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_str().unwrap().to_owned();
            assert_eq!(runicorn_tests::sha256sum(&f), name);
        }
    }
    // Nothing recorded the damaged content as held.
    let db = recorded_contents(s.ssh.hub_dir());
    let weights_sha = runicorn_artifact_store::chunking::sha256_hex(&s.weights[1]);
    assert!(
        !db.contains(&weights_sha),
        "v2's weights recorded as cached"
    );
    // v1 is unaffected.
    report(&s.fetch("m:v1", "good"));
    assert!(std::fs::read(s.dir("good").join("weights.bin")).unwrap() == s.weights[0]);
}

/// The contents of m's versions the hub records as held by chunks.
fn recorded_contents(hub_dir: &Path) -> Vec<String> {
    let store = runicorn_store::Store::open_read_only(hub_dir).unwrap();
    let mut names = Vec::new();
    for v in 1..=3u64 {
        let version = store
            .resolve_artifact(&format!("m:v{v}"), None, None)
            .unwrap();
        for f in version.files {
            if !store.content_chunks(&f.sha256).unwrap().is_empty() {
                names.push(f.sha256);
            }
        }
    }
    names
}

#[test]
fn offline_a_cached_version_is_served_and_an_uncached_one_fails_clearly() {
    let mut s = setup();
    report(&s.fetch("m:v2", "online"));
    let store = StoreHandle::open(s.ssh.hub_dir()).unwrap();
    let fetcher: Arc<dyn runicorn_web::FileFetcher> = Arc::new(RemoteFiles::with_connect_options(
        store,
        s.ssh.home.options(),
    ));
    let dash = ServedDashboard::start(s.ssh.hub_dir(), Some(fetcher));
    // While the server is up, the route fetches v1 on demand and answers ranges.
    let ranged =
        runicorn_tests::http::Request::get("/api/artifacts/gpu/model/m/v1/files/weights.bin")
            .header("Range", "bytes=100-199")
            .send(dash.addr);
    assert_eq!(ranged.status, 206, "{}", ranged.text());
    assert!(ranged.body == s.weights[0][100..200]);

    // The server goes away, sessions and all.
    s.ssh.sshd.stop();
    let out_dir = tempfile::tempdir().unwrap();
    let out = fetch_artifact(
        &s.ssh.home,
        s.ssh.hub_dir(),
        "m:best",
        &out_dir.path().join("offline"),
    );
    let r = report(&out);
    assert_eq!(r["bytes_moved"], 0, "{r}");
    let got = std::fs::read(out_dir.path().join("offline/weights.bin")).unwrap();
    assert!(got == s.weights[1]);
    let whole = dash.get("/api/artifacts/gpu/model/m/v2/files/weights.bin");
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert!(whole.body == s.weights[1]);

    // v3 was never fetched: the CLI and the route say the remote is offline.
    let out = fetch_artifact(
        &s.ssh.home,
        s.ssh.hub_dir(),
        "m:v3",
        &out_dir.path().join("never"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("offline") && err.contains("m:v3/weights.bin"),
        "{err}"
    );
    let refused = dash.get("/api/artifacts/gpu/model/m/v3/files/weights.bin");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(
        refused.json()["error"]["code"],
        "remote_offline",
        "{}",
        refused.text()
    );
    assert!(dash.stop(Duration::from_secs(20)));
}

#[test]
fn an_upstream_blob_is_fetched_by_its_sha256_and_served_from_the_cache_offline() {
    let mut s = SshHub::start();
    // Upstream 0.7's blob store: archive/blobs/<sha[:2]>/<sha>, 5 MiB (cut by the agent).
    let blob = noise(5 << 20, 11);
    let sha = runicorn_artifact_store::chunking::sha256_hex(&blob);
    let dir = s.root().join("archive/blobs").join(&sha[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&sha), &blob).unwrap();
    s.connect_once(&["--prefetch", "none"]);
    let store = StoreHandle::open(s.hub_dir()).unwrap();
    let fetcher: Arc<dyn runicorn_web::FileFetcher> =
        Arc::new(RemoteFiles::with_connect_options(store, s.home.options()));
    let dash = ServedDashboard::start(s.hub_dir(), Some(fetcher));
    let url = format!("/api/remotes/gpu/blobs/{sha}");

    let got = dash.get(&url);
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.body == blob, "the blob's bytes differ");
    let absent = dash.get(&format!("/api/remotes/gpu/blobs/{}", "0".repeat(64)));
    assert_eq!(absent.status, 404, "{}", absent.text());
    assert_eq!(dash.get("/api/remotes/gpu/blobs/..%2f..%2fetc").status, 400);

    s.sshd.stop();
    let ranged = runicorn_tests::http::Request::get(&url)
        .header("Range", "bytes=-1000")
        .send(dash.addr);
    assert_eq!(ranged.status, 206, "{}", ranged.text());
    assert!(ranged.body == blob[blob.len() - 1000..]);
    assert!(dash.stop(Duration::from_secs(20)));
}

#[test]
fn the_agent_lists_chunks_over_pipes_for_recipes_whole_files_and_blobs_and_refuses_bad_names() {
    use runicorn_protocol::wire::{Body, ChunksRequest, CHUNKS_CAPABILITY};
    use runicorn_tests::agent_pipe::AgentPipe;
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let weights = write_versions(root.path(), scratch.path());
    let blob = noise(300_000, 12);
    let blob_sha = runicorn_artifact_store::chunking::sha256_hex(&blob);
    let dir = root.path().join("archive/blobs").join(&blob_sha[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&blob_sha), &blob).unwrap();
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let hello = agent.hello.clone().unwrap();
    assert!(hello.capabilities.iter().any(|c| c == CHUNKS_CAPABILITY));

    let mut contents: Vec<(String, Vec<u8>)> = [&weights[0], &weights[2], &blob]
        .into_iter()
        .map(|b| (runicorn_artifact_store::chunking::sha256_hex(b), b.clone()))
        .collect();
    contents.push(("../../etc/passwd".into(), vec![]));
    contents.push(("f".repeat(64), vec![]));
    let asked = contents.iter().map(|(s, _)| s.clone()).collect();
    let Body::ChunkList(list) = agent.request(Body::Chunks(ChunksRequest {
        contents: asked,
        ..Default::default()
    })) else {
        panic!("no chunk_list; stderr: {}", agent.stderr());
    };
    assert_eq!(list.contents.len(), 5);
    for (answer, (sha, bytes)) in list.contents.iter().zip(&contents).take(3) {
        assert_eq!(&answer.sha256, sha);
        assert_eq!(answer.error, None, "{sha}");
        assert_eq!(answer.size, bytes.len() as u64);
        // Each location holds exactly the chunk's bytes, and they tile the content.
        let mut at = 0usize;
        for c in &answer.chunks {
            let file = std::fs::read(root.path().join(&c.path)).unwrap();
            let o = c.offset as usize;
            let piece = &file[o..o + c.size as usize];
            assert_eq!(
                runicorn_artifact_store::chunking::sha256_hex(piece),
                c.sha256
            );
            assert!(piece == &bytes[at..at + c.size as usize]);
            at += c.size as usize;
        }
        assert_eq!(at, bytes.len());
    }
    // v3 is packed: its chunks are chunk files; v1 and the blob are cut where they lie.
    assert!(list.contents[1]
        .chunks
        .iter()
        .all(|c| c.path.starts_with("artifacts/.chunks/")));
    assert!(list.contents[0]
        .chunks
        .iter()
        .all(|c| c.path.starts_with("artifacts/.pool/")));
    assert!(list.contents[2]
        .chunks
        .iter()
        .all(|c| c.path.starts_with("archive/blobs/")));
    for bad in &list.contents[3..] {
        assert!(bad.error.is_some() && bad.chunks.is_empty(), "{bad:?}");
    }
}

/// A server with model `big`: v1 a ~50 MiB file whole in the pool (cut by the agent when asked),
/// v2 the same with a few places changed, as chunks.
fn write_big_versions(root: &Path, scratch: &Path) -> Vec<Vec<u8>> {
    let v1 = noise(50 << 20, 21);
    let v2 = edited(&v1, 6, 22);
    for (i, weights) in [&v1, &v2].into_iter().enumerate() {
        let file = scratch.join("weights.bin");
        std::fs::write(&file, weights).unwrap();
        let mut art = Artifact::new("big", "model").unwrap();
        art.add_file(&file, None).unwrap();
        let options = LogOptions {
            chunk_large_files: i > 0,
        };
        log_artifact_with(root, &art, &[], None, &options).unwrap();
    }
    vec![v1, v2]
}

#[test]
fn a_long_chunk_list_is_fetched_in_small_pages_over_sshd_and_moves_each_missing_chunk_once() {
    let s = SshHub::start();
    let scratch = tempfile::tempdir().unwrap();
    let weights = write_big_versions(s.root(), scratch.path());
    drop(scratch);
    s.connect_once(&["--prefetch", "none"]);
    let out = tempfile::tempdir().unwrap();
    // Pages of 37 chunks: v1's list (about 800 chunks) comes in some 20 pages.
    let fetch = |reference: &str, dir: &str| {
        report(&output_within(
            s.hub()
                .env("RUNICORN_CHUNK_PAGE_MAX", "37")
                .args(["fetch", "artifact", reference, "--json", "-o"])
                .arg(out.path().join(dir)),
            COMMAND_LIMIT,
        ))
    };

    let v1_chunks = chunks_of(&weights[0]);
    assert!(v1_chunks.len() > 10 * 37, "{}", v1_chunks.len());
    let r1 = fetch("big:v1", "v1");
    assert!(std::fs::read(out.path().join("v1/weights.bin")).unwrap() == weights[0]);
    assert_eq!(r1["chunks_moved"], v1_chunks.len(), "{r1}");
    let v1_bytes: u64 = v1_chunks.iter().map(|(_, n)| n).sum();
    assert_eq!(r1["bytes_moved"], v1_bytes, "{r1}");

    // v2 (a recipe's list, in pages too) moves only the chunks v1 lacked.
    let held: HashSet<String> = v1_chunks.into_iter().map(|(h, _)| h).collect();
    let missing: Vec<(String, u64)> = chunks_of(&weights[1])
        .into_iter()
        .filter(|(h, _)| !held.contains(h))
        .collect();
    let r2 = fetch("big:v2", "v2");
    assert!(std::fs::read(out.path().join("v2/weights.bin")).unwrap() == weights[1]);
    assert_eq!(r2["chunks_moved"], missing.len(), "{r2}");
    assert_eq!(
        r2["bytes_moved"],
        missing.iter().map(|(_, n)| n).sum::<u64>(),
        "{r2}"
    );
}

#[test]
fn the_agent_pages_a_chunk_list_by_max_chunks_and_the_pages_join_to_the_whole_list() {
    use runicorn_protocol::wire::{Body, ChunksRequest, ContentChunks};
    use runicorn_tests::agent_pipe::AgentPipe;
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let weights = write_versions(root.path(), scratch.path());
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let mut ask = |sha: &str, start: Option<u64>, max: Option<u32>| -> ContentChunks {
        let body = agent.request(Body::Chunks(ChunksRequest {
            contents: vec![sha.to_owned()],
            start_chunk: start,
            max_chunks: max,
        }));
        let Body::ChunkList(mut list) = body else {
            panic!("no chunk_list: {body:?}");
        };
        list.contents.remove(0)
    };
    // v1 whole (cut on the fly) and v3 (a recipe): pages of 5 join to the unpaged list.
    for bytes in [&weights[0], &weights[2]] {
        let sha = runicorn_artifact_store::chunking::sha256_hex(bytes);
        let whole = ask(&sha, None, None);
        assert_eq!((whole.error.as_deref(), whole.next_chunk), (None, None));
        let mut joined = Vec::new();
        let mut start = None;
        loop {
            let page = ask(&sha, start, Some(5));
            assert!(!page.chunks.is_empty() && page.chunks.len() <= 5);
            assert_eq!(page.size, bytes.len() as u64);
            joined.extend(page.chunks);
            match page.next_chunk {
                Some(n) => {
                    assert_eq!(n, joined.len() as u64);
                    start = Some(n);
                }
                None => break,
            }
        }
        assert_eq!(joined, whole.chunks);
    }
}

#[test]
fn a_fetch_whose_pool_file_is_packed_after_the_list_came_asks_again_and_gets_the_bytes() {
    use runicorn_hub::file_fetch::{ContentWanted, MovedCounter};
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = setup();
    let v1 = s.weights[0].clone();
    let sha = runicorn_artifact_store::chunking::sha256_hex(&v1);
    let pooled = s
        .ssh
        .root()
        .join("artifacts/.pool")
        .join(runicorn_protocol::run_format::artifacts::fanout_path(&sha));
    assert!(pooled.is_file(), "v1 starts whole in the pool");
    let store = StoreHandle::open(s.ssh.hub_dir()).unwrap();
    let files = RemoteFiles::with_connect_options(store.clone(), s.ssh.home.options());
    // The list is in hand (cut from the whole file) when progress is first told; the server
    // then packs, as the agent does in the background: the whole file the list points into goes.
    let packed = Arc::new(AtomicBool::new(false));
    let progress: runicorn_hub::file_fetch::TransferProgress = {
        let (packed, root) = (Arc::clone(&packed), s.ssh.root().to_owned());
        Arc::new(move |_| {
            if !packed.swap(true, Ordering::SeqCst) {
                runicorn_artifact_store::pack::pack(&root, false, &mut |_| {}).unwrap();
            }
        })
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let got = runtime.block_on(async {
        let remote = store.call(|st| st.remotes()).await.unwrap().unwrap();
        let want = ContentWanted {
            sha256: sha.clone(),
            size: v1.len() as u64,
            stored: "whole".into(),
            label: "m:v1/weights.bin".into(),
        };
        let moved = Arc::new(MovedCounter::default());
        files
            .ensure_content(remote[0].id, want, Some(progress), moved)
            .await
    });
    got.unwrap_or_else(|e| panic!("the fetch failed: {e}"));
    assert!(packed.load(Ordering::SeqCst) && !pooled.exists());
    drop(files);
    drop(runtime);
    // The content is cached whole and right: the CLI serves it without moving it again.
    let r = report(&s.fetch("m:v1", "v1"));
    assert!(std::fs::read(s.dir("v1").join("weights.bin")).unwrap() == v1);
    assert!(r["contents_cached"].as_u64().unwrap() >= 1, "{r}");
}

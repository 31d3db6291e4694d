//! The hub's chunk cache under load, over a real OpenSSH sshd on loopback: a chunked artifact
//! file streaming to a browser-like client (the download route, read slowly) while the real
//! `runicorn-hub cache gc --max-size 0` runs completes byte-identical (gc keeps every chunk the
//! download holds, removes them once it ended, and the content is then no longer recorded as
//! held); the download touches the chunks (the least-recently-used order sees it); and the agent
//! session the hub keeps for chunk lists closes after its idle time (the agent process on the
//! server exits) and reopens for the next fetch.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use runicorn_artifact_store::writer::{log_artifact_with, Artifact, LogOptions};
use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{hub, show};
use runicorn_tests::ssh_hub::SshHub;
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{noise, output_within, wait_until};
use serde_json::Value;

/// Longest any one command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

fn cache_gc(home: &ClientHome, hub_dir: &Path) -> Value {
    let out = output_within(
        hub(home.path(), hub_dir).args(["cache", "gc", "--max-size", "0", "--json"]),
        COMMAND_LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

/// Every chunk file of the hub's cache.
fn chunk_files(hub_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(shards) = std::fs::read_dir(hub_dir.join("files/chunks")) else {
        return found;
    };
    // Two-digit shards only (`held/` keeps the downloads' hold files).
    for shard in shards.flatten().filter(|s| s.file_name().len() == 2) {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            found.push(f.path());
        }
    }
    found
}

fn age_of(path: &Path) -> Duration {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .elapsed()
        .unwrap_or_default()
}

/// A GET whose body is read only when asked: the download stays in flight meanwhile.
struct SlowDownload {
    reader: BufReader<TcpStream>,
    length: usize,
}

impl SlowDownload {
    fn start(addr: std::net::SocketAddr, target: &str) -> SlowDownload {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status:?}");
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse().unwrap());
                }
            }
        }
        SlowDownload {
            reader,
            length: length.expect("a content-length"),
        }
    }

    fn read(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.reader.read_exact(&mut buf).unwrap();
        buf
    }

    fn rest(mut self, already: usize) -> Vec<u8> {
        self.read(self.length - already)
    }
}

#[test]
fn a_download_streaming_while_cache_gc_runs_completes_byte_identical() {
    let s = SshHub::start();
    let scratch = tempfile::tempdir().unwrap();
    // 24 MiB as chunks on the server: hundreds of chunk files, far more than socket buffers.
    let weights = noise(24 << 20, 5);
    let file = scratch.path().join("weights.bin");
    std::fs::write(&file, &weights).unwrap();
    let mut art = Artifact::new("big", "model").unwrap();
    art.add_file(&file, None).unwrap();
    let options = LogOptions {
        chunk_large_files: true,
    };
    log_artifact_with(s.root(), &art, &[], None, &options).unwrap();
    drop(scratch);
    s.connect_once(&["--prefetch", "none"]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = output_within(
        s.hub()
            .args(["fetch", "artifact", "big:v1", "--json", "-o"])
            .arg(out_dir.path()),
        COMMAND_LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let chunks = chunk_files(s.hub_dir());
    assert!(chunks.len() > 100, "{} chunk files", chunks.len());
    // Used long ago, as far as the cache's order knows.
    let long_ago = SystemTime::now() - Duration::from_secs(7200);
    for c in &chunks {
        std::fs::File::options()
            .write(true)
            .open(c)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }

    let store = StoreHandle::open(s.hub_dir()).unwrap();
    let fetcher: Arc<dyn runicorn_web::FileFetcher> =
        Arc::new(RemoteFiles::with_connect_options(store, s.home.options()));
    let dash = ServedDashboard::start(s.hub_dir(), Some(fetcher));
    let target = "/api/artifacts/gpu/model/big/v1/files/weights.bin";
    let mut download = SlowDownload::start(dash.addr, target);
    assert_eq!(download.length, weights.len());
    let head = download.read(64 * 1024);
    // The download touched its chunks: the least-recently-used order counts it as a use.
    for c in &chunks {
        assert!(
            age_of(c) < Duration::from_secs(600),
            "{} not touched",
            c.display()
        );
    }

    // gc to nothing while the download is in flight: every chunk it holds is kept.
    let report = cache_gc(&s.home, s.hub_dir());
    assert_eq!(
        report["removed"].as_array().unwrap().len(),
        0,
        "gc removed chunks a download holds: {report}"
    );
    assert_eq!(
        report["kept_in_use"].as_array().unwrap().len(),
        chunks.len(),
        "{report}"
    );
    let mut got = head;
    got.extend(download.rest(64 * 1024));
    assert!(got == weights, "the download is not byte-identical");

    // Once it ended, gc removes the chunks and the content is no longer recorded as held.
    let report = cache_gc(&s.home, s.hub_dir());
    assert_eq!(
        report["removed"].as_array().unwrap().len(),
        chunks.len(),
        "{report}"
    );
    let sha = runicorn_artifact_store::chunking::sha256_hex(&weights);
    assert!(
        !s.hub_dir().join("files/chunks/held").join(&sha).exists(),
        "the hold file of a forgotten content stays"
    );
    {
        let read = runicorn_store::Store::open_read_only(s.hub_dir()).unwrap();
        assert!(read.content_chunks(&sha).unwrap().is_empty());
        assert_eq!(read.cached_layout(&sha).unwrap(), None);
    }
    // The next download brings it back from the server, intact.
    let again = dash.get(target);
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.body == weights, "the download after gc differs");
    assert!(dash.stop(Duration::from_secs(20)));
}

/// Agent processes serving the root `root` (started by sshd for the hub's sessions).
fn agents_serving(root: &Path) -> usize {
    let root = root.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .filter(|cmd| {
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.first().is_some_and(|a| a.ends_with("runicorn-agent"))
                && args.iter().any(|a| a == "serve")
                && args.iter().any(|a| a.contains(&root))
        })
        .count()
}

/// Runs `f` while a thread counts the agents serving `root`; the most seen at once.
fn most_agents_during(root: &Path, f: impl FnOnce()) -> usize {
    let (stop, most) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let watcher = {
        let (stop, most, root) = (Arc::clone(&stop), Arc::clone(&most), root.to_owned());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(agents_serving(&root), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    f();
    most.fetch_max(agents_serving(root), Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    most.load(Ordering::Relaxed)
}

#[test]
fn the_chunk_list_session_closes_when_idle_and_reopens_for_the_next_fetch() {
    let s = SshHub::start();
    // Two upstream blobs (archive/blobs/<sha[:2]>/<sha>): fetched by chunk lists.
    let blobs: Vec<Vec<u8>> = (0..2).map(|i| noise(5 << 20, 40 + i)).collect();
    let mut shas = Vec::new();
    for blob in &blobs {
        let sha = runicorn_artifact_store::chunking::sha256_hex(blob);
        let dir = s.root().join("archive/blobs").join(&sha[..2]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&sha), blob).unwrap();
        shas.push(sha);
    }
    s.connect_once(&["--prefetch", "none"]);
    assert!(
        wait_until(20.0, || agents_serving(s.root()) == 0),
        "the sync's agent is still running"
    );
    let store = StoreHandle::open(s.hub_dir()).unwrap();
    let files = RemoteFiles::with_connect_options(store, s.home.options());
    files.set_chunk_agent_idle(Duration::from_secs(2));
    let fetcher: Arc<dyn runicorn_web::FileFetcher> = Arc::new(files);
    let dash = ServedDashboard::start(s.hub_dir(), Some(fetcher));

    let mut first = None;
    let most = most_agents_during(s.root(), || {
        first = Some(dash.get(&format!("/api/remotes/gpu/blobs/{}", shas[0])));
    });
    let first = first.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.body == blobs[0]);
    assert_eq!(most, 1, "one agent session serves the chunk lists");
    // Idle for its 2 s: the hub closes the session and the server's agent exits.
    assert!(
        wait_until(30.0, || agents_serving(s.root()) == 0),
        "the idle chunk-list session was not closed"
    );

    // The next fetch opens a new session and works.
    let mut second = None;
    let most = most_agents_during(s.root(), || {
        second = Some(dash.get(&format!("/api/remotes/gpu/blobs/{}", shas[1])));
    });
    let second = second.unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(second.body == blobs[1]);
    assert_eq!(most, 1, "a new session was opened for the next fetch");
    assert!(
        wait_until(30.0, || agents_serving(s.root()) == 0),
        "the second session was not closed either"
    );
    assert!(dash.stop(Duration::from_secs(20)));
}

//! File bytes on demand over a real OpenSSH sshd: a 200 MiB file streamed back byte-identical
//! through the real `runicorn-hub ui`, `Range` answered from the cache, paths out of the run
//! refused (`..`, absolute, a symlink out of the root), the cached file still served once the
//! server and its sessions are gone while an uncached one answers `503 remote_offline`; and,
//! through the hub's library, a transfer cut half-way by the TCP relay resuming from its
//! partial and verifying, and bytes changed on the server after the manifest was read refused
//! and never cached; the file route streaming a file while it arrives and holding its last
//! byte until it is verified; live follow keeping up during a large transfer.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runicorn_hub::file_fetch::{FetchError, RemoteFiles, TransferProgress};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_store::{RunFilter, RunRow, Store};
use runicorn_tests::http::{get, Request, Response};
use runicorn_tests::hub::{agent_path, hub, show, store_points, sync_local_once_with};
use runicorn_tests::relay::Relay;
use runicorn_tests::serving_hub::ServingHub;
use runicorn_tests::sshd::{current_user, ClientHome, Sshd};
use runicorn_tests::{output_within, sha256sum};

/// Longest a sync or a transfer may take.
const LIMIT: Duration = Duration::from_secs(240);

/// Writes `size` bytes that differ block by block (a 1 MiB pseudo-random block, each copy
/// stamped with its index), so a misplaced block is seen.
fn write_big(path: &Path, size: u64) {
    use std::io::Write;
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut i = 0u64;
    while written < size {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let n = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..n]).unwrap();
        written += n as u64;
        i += 1;
    }
    out.flush().unwrap();
}

/// True when `body` equals the file at `path`, compared a chunk at a time.
fn same_as_file(body: &[u8], path: &Path) -> bool {
    let mut f = std::fs::File::open(path).unwrap();
    if f.metadata().unwrap().len() != body.len() as u64 {
        return false;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return at == body.len();
        }
        if buf[..n] != body[at..at + n] {
            return false;
        }
        at += n;
    }
}

/// A run `RUN_ID` under `root` with the given extra files; returns its directory.
fn write_run(root: &Path, run_id: &str, files: &[(&str, u64)]) -> PathBuf {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("transfer".to_owned());
    spec.run_id = Some(run_id.to_owned());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    let dir = w.dir().to_owned();
    for (name, size) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_big(&path, *size);
    }
    w.finish(RunOutcome::finished()).unwrap();
    dir
}

/// `runicorn-hub connect TARGET --once` remembering the remote as `gpu` (`--root ROOT` for an
/// SSH target; a `local:DIR` target is its own root).
fn sync_once(home: &ClientHome, hub_dir: &Path, target: &str, root: &Path) {
    let mut cmd = hub(home.path(), hub_dir);
    cmd.args(["connect", target, "--once", "--no-ui", "--name", "gpu"])
        .arg("--agent")
        .arg(agent_path());
    if !target.starts_with("local:") {
        cmd.arg("--root").arg(root);
    }
    let out = output_within(&mut cmd, LIMIT);
    assert!(out.status.success(), "{}", show(&out));
}

/// A run `run_id` holding `files` in a local root, synced once, and `ui --offline` serving it.
/// Bind every field (`_root` by name, not `..`): the root must live as long as the test.
struct LocalServed {
    _root: tempfile::TempDir,
    hub_dir: tempfile::TempDir,
    _home: ClientHome,
    run_dir: PathBuf,
    ui: Ui,
}

fn local_served(run_id: &str, files: &[(&str, u64)]) -> LocalServed {
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let run_dir = write_run(root.path(), run_id, files);
    sync_once(
        &home,
        hub_dir.path(),
        &format!("local:{}", root.path().display()),
        root.path(),
    );
    let ui = Ui::start(&home, hub_dir.path());
    LocalServed {
        _root: root,
        hub_dir,
        _home: home,
        run_dir,
        ui,
    }
}

/// `runicorn-hub ui --offline` (no sync: only the dashboard and its on-demand fetches).
struct Ui {
    hub: ServingHub,
    addr: SocketAddr,
}

impl Ui {
    /// `ui --offline`: the dashboard and its fetches, no sync.
    fn start(home: &ClientHome, hub_dir: &Path) -> Ui {
        Ui::start_with(home, hub_dir, &["--offline"])
    }

    fn start_with(home: &ClientHome, hub_dir: &Path, extra: &[&str]) -> Ui {
        let mut cmd = hub(home.path(), hub_dir);
        cmd.args(["ui", "--port", "0"]).args(extra);
        let hub = ServingHub::start(cmd);
        Ui {
            addr: hub.addr,
            hub,
        }
    }

    fn get(&self, target: &str) -> Response {
        self.hub.get(target)
    }

    fn range(&self, target: &str, range: &str) -> Response {
        Request::get(target).header("Range", range).send(self.addr)
    }
}

#[test]
fn a_200_mib_file_streams_back_identical_and_stays_served_when_the_server_is_gone() {
    const BIG: u64 = 200 << 20;
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let run_dir = write_run(
        root.path(),
        "bigrun",
        &[
            ("ckpt/big.bin", BIG),
            ("other.bin", 4096),
            ("media/note.txt", 64),
        ],
    );
    sync_once(&home, hub_dir.path(), &sshd.spec(), root.path());
    let ui = Ui::start(&home, hub_dir.path());
    let big = "/api/runs/bigrun/files/ckpt/big.bin";

    // Fetched on demand and streamed while it arrives, byte for byte.
    let started = Instant::now();
    let r = ui.get(big);
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ui.hub.stderr());
    assert!(
        same_as_file(&r.body, &run_dir.join("ckpt/big.bin")),
        "{} bytes differ from the source",
        r.body.len()
    );
    eprintln!(
        "200 MiB over SFTP through the API in {elapsed:?} ({:.0} MiB/s)",
        200.0 / elapsed.as_secs_f64()
    );
    let listed = ui.get("/api/runs/bigrun/files?prefix=ckpt%2F").json();
    assert_eq!(listed["files"][0]["cached"], true, "{listed}");

    // Ranges of the cached copy.
    let r = ui.range(big, "bytes=1048570-1048589");
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1048570-1048589/{BIG}").as_str())
    );
    let source = std::fs::read(run_dir.join("ckpt/big.bin")).unwrap();
    assert_eq!(r.body, &source[1_048_570..1_048_590]);
    let r = ui.range(big, "bytes=-100");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &source[source.len() - 100..]);
    drop(source);
    let r = ui.range(big, &format!("bytes={BIG}-"));
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{BIG}").as_str())
    );
    assert_eq!(ui.get(big).header("accept-ranges"), Some("bytes"));

    // Out of the run: `..`, an absolute path, a listed file swapped for a link out of the root.
    for target in [
        "/api/runs/bigrun/files/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/runs/bigrun/files/%2Fetc%2Fpasswd",
    ] {
        let r = ui.get(target);
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
        assert!(!r.text().contains("root:"), "{target}");
    }
    std::fs::write(
        outside.path().join("secret.txt"),
        "secret bytes outside the root\n",
    )
    .unwrap();
    std::fs::remove_file(run_dir.join("media/note.txt")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        run_dir.join("media/note.txt"),
    )
    .unwrap();
    let r = ui.get("/api/runs/bigrun/files/media/note.txt");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("outside"), "{}", r.text());
    assert!(!r.text().contains("secret bytes"));

    // The server and every session gone: cached is served, uncached is a plain 503.
    sshd.kill_connections();
    drop(sshd);
    let r = ui.get(big);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.len() as u64, BIG);
    assert!(same_as_file(&r.body, &run_dir.join("ckpt/big.bin")));
    let r = ui.get("/api/runs/bigrun/files/other.bin");
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "remote_offline", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("offline") && message.contains("not in the hub's cache"),
        "{message}"
    );
}

/// The run `run_id` as the store has it.
fn run_row(hub_dir: &Path, run_id: &str) -> RunRow {
    Store::open_read_only(hub_dir)
        .unwrap()
        .list_runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.id == run_id)
        .unwrap_or_else(|| panic!("run {run_id} is not synced"))
}

/// `*.partial` files under the cache's tmp/, with their lengths.
fn partials(hub_dir: &Path) -> Vec<(PathBuf, u64)> {
    let tmp = hub_dir.join("files/tmp");
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "partial"))
        // A partial may be renamed into the cache between the listing and its metadata.
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .collect()
}

#[test]
fn a_cut_transfer_resumes_from_its_partial_and_changed_bytes_are_never_cached() {
    const SIZE: u64 = 48 << 20; // Under the agent's hashing limit: the manifest has its SHA-256.
    let sshd = Sshd::start();
    let relay = Arc::new(Relay::start(sshd.addr(), Duration::from_millis(2)));
    let home = sshd.client_home();
    home.trust_as(
        &format!("[127.0.0.1]:{}", relay.addr.port()),
        sshd.host_public_key(),
    );
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let run_dir = write_run(
        root.path(),
        "cutrun",
        &[
            ("ckpt.bin", SIZE),
            ("changed.bin", 1 << 20),
            ("grown.bin", 1 << 19),
        ],
    );
    let target = format!("{}@127.0.0.1:{}", current_user(), relay.addr.port());
    sync_once(&home, hub_dir.path(), &target, root.path());
    let run = run_row(hub_dir.path(), "cutrun");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let files = RemoteFiles::with_connect_options(
        StoreHandle::open(hub_dir.path()).unwrap(),
        home.options(),
    );
    let fetch = |path: &str, progress: Option<TransferProgress>| {
        let (files, run, path) = (files.clone(), run.clone(), path.to_owned());
        rt.block_on(async move {
            tokio::time::timeout(LIMIT, files.ensure_cached(run, path, progress))
                .await
                .expect("the transfer ends in time")
        })
    };

    // Cut every connection once half the file is on disk.
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let progress: TransferProgress = {
        let (seen, relay) = (Arc::clone(&seen), Arc::clone(&relay));
        Arc::new(move |n| {
            let mut seen = seen.lock().unwrap();
            if n >= SIZE / 2 && seen.last().is_none_or(|&l| l < SIZE / 2) {
                relay.cut_all();
            }
            seen.push(n);
        })
    };
    let err = fetch("ckpt.bin", Some(progress)).unwrap_err();
    assert!(err.is_interrupted(), "{err}");
    assert!(err.to_string().contains("resumes"), "{err}");
    let left = partials(hub_dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let kept = left[0].1;
    assert!((SIZE / 2..SIZE).contains(&kept), "kept {kept} of {SIZE}");

    // The next attempt starts from the partial's length and verifies the whole.
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let progress: TransferProgress = {
        let seen = Arc::clone(&seen);
        Arc::new(move |n| seen.lock().unwrap().push(n))
    };
    let cached = fetch("ckpt.bin", Some(progress)).unwrap();
    let first = seen.lock().unwrap()[0];
    assert_eq!(
        first, kept,
        "the second attempt began at {first}, not at {kept}"
    );
    assert_eq!(cached.size, SIZE);
    assert_eq!(cached.sha256, sha256sum(&run_dir.join("ckpt.bin")));
    assert_eq!(sha256sum(&cached.path), cached.sha256);
    assert!(partials(hub_dir.path()).is_empty());

    // Bytes changed on the server after the manifest was read: refused, reported, not cached.
    write_big(&run_dir.join("changed.bin"), 1 << 20);
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(run_dir.join("changed.bin"))
            .unwrap();
        f.seek(std::io::SeekFrom::Start(4096)).unwrap();
        f.write_all(b"tampered").unwrap();
    }
    let err = fetch("changed.bin", None).unwrap_err();
    assert!(matches!(err, FetchError::HashMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("changed.bin")
            && message.contains("gpu")
            && message.contains("not cached"),
        "{message}"
    );
    let store = Store::open_read_only(hub_dir.path()).unwrap();
    let row = store.file(run.key, "changed.bin").unwrap().unwrap();
    assert_eq!(row.cached_sha256, None);
    assert_eq!(
        store.file_path(&sha256sum(&run_dir.join("changed.bin"))),
        None,
        "the changed bytes must not be in the cache"
    );
    assert!(partials(hub_dir.path()).is_empty());

    // A file that only grew since the sync (telemetry, a log): its listed bytes are fetched and
    // verified; what was appended waits for the next sync.
    let listed = std::fs::read(run_dir.join("grown.bin")).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run_dir.join("grown.bin"))
            .unwrap();
        f.write_all(b"appended after the sync\n").unwrap();
    }
    let grown = fetch("grown.bin", None).unwrap();
    assert_eq!(grown.size, listed.len() as u64);
    assert_eq!(std::fs::read(&grown.path).unwrap(), listed);

    // Once synced, the longer file is fetched from the end of the copy cached before: only the
    // appended bytes cross the link, and the whole is verified.
    sync_once(&home, hub_dir.path(), &target, root.path());
    let first_progress = |path: &str| {
        let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
        let progress: TransferProgress = {
            let seen = Arc::clone(&seen);
            Arc::new(move |n| seen.lock().unwrap().push(n))
        };
        let cached = fetch(path, Some(progress)).unwrap();
        let first = seen.lock().unwrap()[0];
        (cached, first)
    };
    let (longer, began_at) = first_progress("grown.bin");
    assert_eq!(
        began_at,
        listed.len() as u64,
        "the transfer began at {began_at}"
    );
    assert_eq!(longer.sha256, sha256sum(&run_dir.join("grown.bin")));
    assert_eq!(sha256sum(&longer.path), longer.sha256);

    // Rewritten rather than appended to (and longer): the earlier copy is no prefix, so the
    // file comes again in full, right.
    let mut rewritten = std::fs::read(run_dir.join("grown.bin")).unwrap();
    rewritten[0] ^= 0xff;
    rewritten.extend_from_slice(b"and more\n");
    std::fs::write(run_dir.join("grown.bin"), &rewritten).unwrap();
    sync_once(&home, hub_dir.path(), &target, root.path());
    let (whole, _) = first_progress("grown.bin");
    assert_eq!(std::fs::read(&whole.path).unwrap(), rewritten);
    assert!(partials(hub_dir.path()).is_empty());

    // Once cached, nothing is asked of the server: it works with the server gone.
    drop(relay);
    sshd.kill_connections();
    drop(sshd);
    let again = fetch("ckpt.bin", None).unwrap();
    assert_eq!(again, cached);
}

/// A fetcher that writes a file's bytes by hand, a step at a time, so the test sees what the
/// client receives while the transfer is under way; it ends as the test says (verified or not).
struct SteppedFetcher {
    /// Where it writes the "partial".
    dir: PathBuf,
    /// The bytes it delivers.
    bytes: Vec<u8>,
    /// `Some(n)`: write n more bytes; `Some(0)`: end verified; `None`: end as failed.
    steps: Mutex<Option<std::sync::mpsc::Receiver<Option<usize>>>>,
}

impl runicorn_web::FileFetcher for SteppedFetcher {
    fn fetch(
        &self,
        _run: RunRow,
        _path: String,
        progress: Option<runicorn_web::FetchProgress>,
        started: Option<runicorn_web::FetchStarted>,
    ) -> futures::future::BoxFuture<
        'static,
        Result<runicorn_web::FetchedFile, runicorn_web::FetchFailure>,
    > {
        let steps = self.steps.lock().unwrap().take().expect("one fetch");
        let (dir, bytes) = (self.dir.clone(), self.bytes.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let partial = dir.join("stepped.partial");
                let mut out = std::fs::File::create(&partial).unwrap();
                if let Some(started) = started {
                    started(std::fs::File::open(&partial).unwrap());
                }
                let mut written = 0;
                while let Ok(step) = steps.recv() {
                    let Some(n) = step else {
                        return Err(runicorn_web::FetchFailure {
                            kind: runicorn_web::FetchFailureKind::Failed,
                            message: "the bytes do not match the manifest's SHA-256".into(),
                        });
                    };
                    if n == 0 {
                        break;
                    }
                    let end = (written + n).min(bytes.len());
                    out.write_all(&bytes[written..end]).unwrap();
                    written = end;
                    if let Some(p) = &progress {
                        p(written as u64);
                    }
                }
                Ok(runicorn_web::FetchedFile {
                    sha256: sha256sum(&partial),
                    size: written as u64,
                    path: partial,
                })
            })
            .await
            .unwrap()
        })
    }
}

/// Reads from `stream` until `want` bytes are in `got` or `limit` passes; returns whether the
/// stream ended (closed) meanwhile.
fn read_until(stream: &mut impl Read, got: &mut Vec<u8>, want: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < want && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// `GET target` on a raw connection; returns the reader positioned at the body, and the head.
fn open_get(addr: SocketAddr, target: &str) -> (BufReader<std::net::TcpStream>, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !head.ends_with("\r\n\r\n") && Instant::now() < deadline {
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        head.push_str(&line);
    }
    (reader, head)
}

#[test]
fn a_file_is_streamed_while_it_arrives_and_its_last_byte_waits_for_verification() {
    const SIZE: usize = 3 << 20;
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let run_dir = write_run(root.path(), "streamrun", &[("stream.bin", SIZE as u64)]);
    sync_local_once_with(home.path(), hub_dir.path(), root.path(), "gpu", &[]);
    let bytes = std::fs::read(run_dir.join("stream.bin")).unwrap();

    for verified in [true, false] {
        let (tx, rx) = std::sync::mpsc::channel();
        let fetcher = SteppedFetcher {
            dir: scratch.path().to_owned(),
            bytes: bytes.clone(),
            steps: Mutex::new(Some(rx)),
        };
        let served = runicorn_tests::dashboard::ServedDashboard::start(
            hub_dir.path(),
            Some(Arc::new(fetcher)),
        );
        let (mut body, head) = open_get(served.addr, "/api/runs/streamrun/files/stream.bin");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {SIZE}")),
            "{head}"
        );
        // A first MiB arrives while the transfer is still under way.
        let mut got = Vec::new();
        tx.send(Some(1 << 20)).unwrap();
        assert!(!read_until(
            &mut body,
            &mut got,
            1 << 20,
            Duration::from_secs(20)
        ));
        assert_eq!(got.len(), 1 << 20, "the first MiB was not streamed");
        assert_eq!(got, &bytes[..1 << 20]);
        // All bytes written: every one but the last goes out; the last waits for the verdict.
        tx.send(Some(SIZE)).unwrap();
        let ended = read_until(&mut body, &mut got, SIZE, Duration::from_secs(3));
        assert!(!ended, "the answer ended before the verdict");
        assert_eq!(
            got.len(),
            SIZE - 1,
            "the last byte must wait for the verdict"
        );
        tx.send(if verified { Some(0) } else { None }).unwrap();
        let ended = read_until(&mut body, &mut got, SIZE, Duration::from_secs(20));
        if verified {
            assert_eq!(got, bytes, "a verified file arrives whole");
        } else {
            let ended = ended || read_until(&mut body, &mut got, SIZE + 1, Duration::from_secs(20));
            assert!(ended, "a file that failed verification must end its answer");
            assert_eq!(got.len(), SIZE - 1, "and never complete");
        }
        drop(served);
    }
}

#[test]
fn live_follow_keeps_up_while_a_large_file_transfers() {
    const BIG: u64 = 200 << 20;
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new(root.path(), "runicorn-tests");
    spec.path = Some("transfer".to_owned());
    spec.run_id = Some("liverun".to_owned());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    w.flush().unwrap();
    write_big(&w.dir().join("big.bin"), BIG);
    sync_once(&home, hub_dir.path(), &sshd.spec(), root.path());
    let ui = Ui::start_with(&home, hub_dir.path(), &[]);
    let stored_steps = || {
        store_points(hub_dir.path(), "gpu")
            .values()
            .flat_map(|keys| keys.get("loss"))
            .map(|series| series.len())
            .sum::<usize>()
    };
    assert_eq!(stored_steps(), 1);

    let addr = ui.addr;
    let transfer = std::thread::spawn(move || get(addr, "/api/runs/liverun/files/big.bin"));
    let tmp = hub_dir.path().join("files/tmp");
    assert!(
        runicorn_tests::wait_until(60.0, || partials(hub_dir.path())
            .iter()
            .any(|(_, len)| *len > 0)),
        "the transfer never began ({})",
        tmp.display()
    );
    // Points logged during the transfer reach the store while it still runs.
    let started = Instant::now();
    w.log_metrics(&[("loss", 0.5)], Some(1), None).unwrap();
    w.flush().unwrap();
    let arrived = runicorn_tests::wait_until(20.0, || stored_steps() == 2);
    let latency = started.elapsed();
    let still_transferring = !transfer.is_finished();
    assert!(
        arrived,
        "a point logged during a transfer did not arrive\n{}",
        ui.hub.stderr()
    );
    assert!(
        still_transferring,
        "the transfer ended before the point arrived ({latency:?}): make the file bigger"
    );
    eprintln!("a point arrived {latency:?} after it was logged, during a 200 MiB transfer");
    let r = transfer.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, BIG);
    w.finish(RunOutcome::finished()).unwrap();
}

#[test]
fn two_requests_for_one_uncached_file_both_get_it_whole_and_it_is_cached_once() {
    const SIZE: u64 = 48 << 20;
    let LocalServed {
        _root,
        hub_dir,
        _home,
        run_dir,
        ui,
    } = local_served("tworun", &[("both.bin", SIZE)]);
    let addr = ui.addr;
    let requests: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(addr, "/api/runs/tworun/files/both.bin")))
        .collect();
    for r in requests {
        let r = r.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(same_as_file(&r.body, &run_dir.join("both.bin")));
    }
    // One copy in the cache, no partial left.
    let sha = sha256sum(&run_dir.join("both.bin"));
    let store = Store::open_read_only(hub_dir.path()).unwrap();
    assert!(store.file_path(&sha).is_some());
    assert!(partials(hub_dir.path()).is_empty());
}

#[test]
fn a_range_of_a_file_not_cached_yet_is_answered_from_the_transfer_and_the_file_is_cached() {
    const SIZE: u64 = 24 << 20;
    let LocalServed {
        _root,
        hub_dir,
        _home,
        run_dir,
        ui,
    } = local_served("rangerun", &[("part.bin", SIZE)]);
    // A browser resuming a download: the middle of the file, before the hub holds any of it.
    let (start, end) = (5 << 20, (5 << 20) + 999_999);
    let r = Request::new("GET", "/api/runs/rangerun/files/part.bin")
        .header("Range", &format!("bytes={start}-{end}"))
        .send(ui.addr);
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {start}-{end}/{SIZE}").as_str())
    );
    let whole = std::fs::read(run_dir.join("part.bin")).unwrap();
    assert_eq!(r.body.len(), 1_000_000);
    assert!(r.body == whole[start..=end], "the range's bytes");
    drop(whole);
    // The transfer went on to the end: the file is cached, and ranges keep working.
    let sha = sha256sum(&run_dir.join("part.bin"));
    assert!(runicorn_tests::wait_until(60.0, || {
        Store::open_read_only(hub_dir.path()).is_ok_and(|s| s.file_path(&sha).is_some())
    }));
    let r = Request::new("GET", "/api/runs/rangerun/files/part.bin")
        .header("Range", &format!("bytes={}-", SIZE - 10))
        .send(ui.addr);
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body.len(), 10);
}

#[test]
fn at_most_four_transfers_run_at_once_and_the_rest_wait_their_turn() {
    const FILES: usize = 10;
    const SIZE: u64 = 16 << 20;
    let names: Vec<String> = (0..FILES).map(|i| format!("shard{i}.bin")).collect();
    let files: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), SIZE)).collect();
    let LocalServed {
        _root,
        hub_dir,
        _home,
        run_dir,
        ui,
    } = local_served("manyrun", &files);
    let addr = ui.addr;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let requests: Vec<_> = names
        .iter()
        .map(|n| {
            let (target, done) = (format!("/api/runs/manyrun/files/{n}"), Arc::clone(&done));
            std::thread::spawn(move || {
                let r = get(addr, &target);
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r
            })
        })
        .collect();
    // Transfers in flight are the partial files under the cache's tmp/.
    let mut most = 0;
    while done.load(std::sync::atomic::Ordering::Relaxed) < FILES {
        most = most.max(partials(hub_dir.path()).len());
        std::thread::sleep(Duration::from_millis(2));
    }
    for (r, name) in requests.into_iter().zip(&names) {
        let r = r.join().unwrap();
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(same_as_file(&r.body, &run_dir.join(name)), "{name}");
    }
    assert!(most <= 4, "{most} transfers at once (the limit is 4)");
    assert!(most >= 2, "transfers ran one at a time ({most})");
}

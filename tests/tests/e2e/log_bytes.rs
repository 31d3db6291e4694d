//! Logs are bytes, end to end: a run whose `logs.txt` holds bytes that are not UTF-8,
//! multi-byte characters (some cut in half by the writer), CR redraws and lines longer than
//! every budget, synced by the real hub (`runicorn-hub connect local:ROOT` serving the
//! dashboard, and once over a real sshd). Every page of `GET /logs` walked from the start is
//! exactly `lossy(file[offset..next])` and the pages tile the file; the live stream's events
//! tile the bytes appended while it is open the same way; `?format=raw` is the file byte for
//! byte; out-of-bounds parameters are a 400 naming them; the store holds the file's bytes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runicorn_protocol::run_format::{RunSpec, RunWriter};
use runicorn_store::{RunFilter, Store};
use runicorn_tests::http::{get, EventStream, Response};
use runicorn_tests::hub::{agent_path, connect_local, connect_ssh_once};
use runicorn_tests::serving_hub::ServingHub;
use runicorn_tests::sshd::{ClientHome, Sshd};
use runicorn_tests::wait_until;
use serde_json::Value;

/// Every test here ends within this, or fails (and its hub is killed).
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `body` on a thread; fails the test and kills the processes it registered when it takes
/// longer than `TEST_TIMEOUT`.
fn within_timeout(body: impl FnOnce(&Pids) + Send + 'static) {
    let pids: Pids = Arc::default();
    let (tx, rx) = mpsc::channel();
    let registered = Arc::clone(&pids);
    let worker = std::thread::spawn(move || {
        body(&registered);
        let _ = tx.send(());
    });
    match rx.recv_timeout(TEST_TIMEOUT) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: show its panic.
            if let Err(e) = worker.join() {
                std::panic::resume_unwind(e);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            for pid in pids.lock().unwrap().iter() {
                unsafe {
                    libc::kill(*pid as i32, libc::SIGKILL);
                }
            }
            panic!("the test did not finish within {TEST_TIMEOUT:?}");
        }
    }
}

type Pids = Arc<Mutex<Vec<u32>>>;

/// The first part of the log: every kind of odd byte, small enough to be fetched whole.
fn first_part() -> Vec<u8> {
    let mut log = Vec::new();
    log.extend(b"plain ascii line\n");
    log.extend(
        "accents: d\u{e9}j\u{e0} vu, euro \u{20ac}, emoji \u{1f600}, CJK \u{4e2d}\u{6587}\n"
            .as_bytes(),
    );
    log.extend(b"invalid: \xFF\xFE and a lone continuation \x80 here\n");
    log.extend(b"a character cut in half: \xE2\x82 then ascii\n");
    log.extend(b"an overlong NUL \xC0\x80 and a surrogate \xED\xA0\x80\n");
    log.extend(b"progress  10%\rprogress  50%\rprogress 100%\r\n");
    log.extend(b"\x1b[31mred\x1b[0m and a bell \x07\n");
    for i in 0..200 {
        log.extend(format!("step {i}: loss \u{2248} 0.{i:03} \u{2713}\n").as_bytes());
        if i % 17 == 0 {
            log.extend(b"\xF0\x9F\x98 torn emoji\n");
        }
    }
    log
}

/// A line of `bytes` bytes (plus its newline): multi-byte characters with invalid bytes
/// sprinkled in, so any cut lands inside or beside a character.
fn long_line(bytes: usize, salt: usize) -> Vec<u8> {
    let pieces: [&[u8]; 6] = [
        "\u{e9}".as_bytes(),
        "\u{20ac}".as_bytes(),
        "\u{1f600}".as_bytes(),
        b"x",
        b"\xFF",
        b"\xE2\x82",
    ];
    let mut line = Vec::with_capacity(bytes + 1);
    let mut i = salt;
    while line.len() < bytes {
        line.extend(pieces[i % pieces.len()]);
        i = i.wrapping_mul(31).wrapping_add(7) % 1009;
    }
    line.push(b'\n');
    line
}

/// The second part, appended while the live stream is open: more invalid bytes, CRs, a line
/// longer than a page (1 MiB), and one longer than the sync's budget per request (2 MiB).
fn second_part() -> Vec<Vec<u8>> {
    vec![
        b"resumed \xFF\xFF\r\nepoch 2 \xE2\x82\xAC\n".to_vec(),
        long_line(1_300_000, 3),
        b"short after long \x80\n".to_vec(),
        long_line(2_600_000, 11),
        b"done \xC3\n".to_vec(),
    ]
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// A running run (its writer kept open) whose `logs.txt` is written byte by byte by the test.
fn hostile_run(root: &Path) -> (RunWriter, PathBuf) {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("odd/logs".into());
    spec.run_id = Some("runbytes".into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    w.flush().unwrap();
    let dir = root.join("runs/odd/logs/runbytes");
    let logs = dir.join("logs.txt");
    std::fs::write(&logs, first_part()).unwrap();
    (w, logs)
}

/// `runicorn-hub connect local:ROOT` following the root and serving the dashboard.
struct Following {
    hub: ServingHub,
    addr: SocketAddr,
}

impl Following {
    fn start(home: &Path, hub_dir: &Path, root: &Path, pids: &Pids) -> Following {
        let mut cmd = connect_local(home, hub_dir, root, &agent_path());
        cmd.args(["--name", "here", "--poll", "0.5", "--ui-port", "0"]);
        let hub = ServingHub::start(cmd);
        pids.lock().unwrap().push(hub.pid());
        Following {
            addr: hub.addr,
            hub,
        }
    }

    fn json(&self, target: &str) -> Value {
        self.hub.json(target)
    }

    /// Where the store's copy of the run's log ends (0 before any).
    fn stored_end(&self, id: i64) -> u64 {
        self.json(&format!("/api/runs/{id}/logs?limit=1"))["end"]
            .as_u64()
            .unwrap()
    }

    fn stop(self) {
        self.hub.interrupt();
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether a cut at `at` splits a valid UTF-8 character of `file` that begins after `from`.
fn splits_a_character(file: &[u8], from: usize, at: usize) -> bool {
    (at.saturating_sub(3).max(from + 1)..at).any(|begin| {
        file[begin] >= 0xC0
            && (2..=4).any(|w| {
                begin + w > at
                    && file.get(begin..begin + w).is_some_and(|ch| {
                        std::str::from_utf8(ch).is_ok_and(|s| s.chars().count() == 1)
                    })
            })
    })
}

/// Checks one page (or live event) `offset..next` against the file. A live event may also end
/// where the store's copy ended at the time (`at_copy_end`): inside a line, never inside a
/// character.
fn check_piece(
    file: &[u8],
    what: &str,
    (offset, next): (u64, u64),
    text: &str,
    limit: u64,
    at_copy_end: bool,
) {
    let (o, n) = (offset as usize, next as usize);
    assert!(
        o < n && n <= file.len(),
        "{what}: {o}..{n} of {}",
        file.len()
    );
    assert!(
        text == lossy(&file[o..n]),
        "{what}: text of {o}..{n} is not the lossy decoding of those bytes"
    );
    let bytes = &file[o..n];
    if bytes.last() != Some(&b'\n') && n < file.len() {
        // Cut inside a line: only when the line is longer than the limit, and never inside a
        // valid character.
        assert!(
            at_copy_end || !bytes[..bytes.len() - 1].contains(&b'\n') || bytes.len() as u64 > limit,
            "{what}: {o}..{n} ends inside a line although a newline fits"
        );
        assert!(
            !splits_a_character(file, o, n),
            "{what}: {o}..{n} splits a character"
        );
    }
    assert!(
        (n - o) as u64 <= limit.max(4),
        "{what}: {o}..{n} is longer than the limit {limit}"
    );
}

/// Walks every page from `start` with `limit`; returns how many.
fn walk_pages(f: &Following, id: i64, file: &[u8], start: u64, limit: u64) -> usize {
    let end = file.len() as u64;
    let mut at = start;
    let mut pages = 0;
    loop {
        let page = f.json(&format!("/api/runs/{id}/logs?offset={at}&limit={limit}"));
        let (offset, next) = (
            page["offset"].as_u64().unwrap(),
            page["next"].as_u64().unwrap(),
        );
        assert_eq!(offset, at, "limit {limit}: pages tile the file");
        assert_eq!(page["end"].as_u64().unwrap(), end);
        check_piece(
            file,
            &format!("page at {at} (limit {limit})"),
            (offset, next),
            page["text"].as_str().unwrap(),
            limit,
            false,
        );
        at = next;
        pages += 1;
        if page["eof"] == true {
            assert_eq!(at, end, "limit {limit}: the last page ends at the end");
            return pages;
        }
    }
}

fn error_of(r: &Response) -> String {
    r.json()["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn pages_live_events_and_raw_downloads_agree_with_the_file_byte_for_byte() {
    within_timeout(|pids| {
        let home = ClientHome::empty();
        let hub_dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let (_writer, logs) = hostile_run(root.path());
        let f = Following::start(home.path(), hub_dir.path(), root.path(), pids);

        let first = std::fs::read(&logs).unwrap();
        let mut id = 0;
        assert!(
            wait_until(60.0, || {
                let page = f.json("/api/runs?q=runbytes");
                if let Some(run) = page["runs"].get(0) {
                    id = run["key"].as_i64().unwrap();
                    f.stored_end(id) == first.len() as u64
                } else {
                    false
                }
            }),
            "the first part never arrived:\n{}",
            f.hub.stderr()
        );

        // The live stream from the end of the first part, while the log grows.
        let mut live = EventStream::open(f.addr, &format!("/api/runs/{id}/live"));
        assert_eq!(live.status, 200);
        let mut file = first.clone();
        for part in second_part() {
            append(&logs, &part);
            file.extend(&part);
        }
        let end = file.len() as u64;
        let mut at = first.len() as u64;
        let mut events = 0;
        let deadline = Instant::now() + Duration::from_secs(90);
        while at < end {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(ev) = live.until(left, |e| e.event == "log") else {
                panic!(
                    "live log stopped at {at} of {end} (store at {}):\n{}",
                    f.stored_end(id),
                    f.hub.stderr()
                );
            };
            let ev = ev.json();
            let (offset, next) = (ev["offset"].as_u64().unwrap(), ev["next"].as_u64().unwrap());
            assert_eq!(offset, at, "live events tile the file");
            check_piece(
                &file,
                &format!("live event at {at}"),
                (offset, next),
                ev["text"].as_str().unwrap(),
                1 << 20,
                true,
            );
            // The same range read as a page says the same.
            let page = f.json(&format!(
                "/api/runs/{id}/logs?offset={offset}&limit={}",
                (next - offset).min(1 << 20)
            ));
            assert_eq!(page["offset"].as_u64(), Some(offset));
            assert!(page["next"].as_u64().unwrap() <= next);
            assert!(ev["text"]
                .as_str()
                .unwrap()
                .starts_with(page["text"].as_str().unwrap()));
            at = next;
            events += 1;
        }
        assert!(events >= 3, "a 2.6 MB line cannot be one event: {events}");
        assert!(wait_until(30.0, || f.stored_end(id) == end));
        let on_disk = std::fs::read(&logs).unwrap();
        assert_eq!(on_disk, file);

        // Pages walked from the start tile the file, whatever the limit.
        for limit in [65_536, 1 << 20, 100_000, 4093] {
            let pages = walk_pages(&f, id, &file, 0, limit);
            assert!(pages as u64 >= end / limit, "limit {limit}: {pages} pages");
        }
        // Tiny pages through the odd first part (a character longer than the page still comes
        // whole, and nothing is skipped).
        let mut at = 0u64;
        while at < first.len() as u64 {
            let page = f.json(&format!("/api/runs/{id}/logs?offset={at}&limit=3"));
            let next = page["next"].as_u64().unwrap();
            assert_eq!(page["offset"].as_u64(), Some(at));
            assert!(next > at && next - at <= 4, "{page}");
            assert_eq!(
                page["text"].as_str().unwrap(),
                lossy(&file[at as usize..next as usize])
            );
            at = next;
        }
        // The tail page starts after a newline and ends at the end.
        let tail = f.json(&format!("/api/runs/{id}/logs?limit=5000"));
        let (o, n) = (
            tail["offset"].as_u64().unwrap(),
            tail["next"].as_u64().unwrap(),
        );
        assert_eq!((n, tail["eof"].as_bool()), (end, Some(true)));
        assert_eq!(file[o as usize - 1], b'\n');
        assert_eq!(tail["text"].as_str().unwrap(), lossy(&file[o as usize..]));

        // A stream from offset 0 replays the whole file in tiles, though nothing changes.
        let mut replay = EventStream::open(f.addr, &format!("/api/runs/{id}/live?log_offset=0"));
        let mut at = 0;
        while at < end {
            let ev = replay
                .until(Duration::from_secs(20), |e| e.event == "log")
                .unwrap_or_else(|| panic!("the replay stopped at {at} of {end}"))
                .json();
            let (offset, next) = (ev["offset"].as_u64().unwrap(), ev["next"].as_u64().unwrap());
            assert_eq!(offset, at, "replayed events tile the file");
            check_piece(
                &file,
                "replay",
                (offset, next),
                ev["text"].as_str().unwrap(),
                1 << 20,
                false,
            );
            at = next;
        }
        drop(replay);

        // The raw download is the file.
        let raw = get(f.addr, &format!("/api/runs/{id}/logs?format=raw"));
        assert_eq!(raw.status, 200, "{}", raw.text());
        assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
        assert!(raw
            .header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment") && d.contains("runbytes")));
        assert_eq!(raw.header("x-runicorn-log-start"), Some("0"));
        assert!(raw.body == file, "the raw download differs from the file");

        // Out-of-bounds parameters are a 400 that names them.
        for (query, name) in [
            ("limit=0", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=1048577", "limit"),
            ("offset=-5", "offset"),
            ("offset=abc", "offset"),
            ("offset=1.5", "offset"),
            ("format=xml", "format"),
            ("format=raw&offset=3", "offset"),
            ("format=raw&limit=10", "limit"),
        ] {
            let r = get(f.addr, &format!("/api/runs/{id}/logs?{query}"));
            assert_eq!(r.status, 400, "{query}: {}", r.text());
            assert!(error_of(&r).contains(name), "{query}: {}", r.text());
        }
        for (query, name) in [
            ("log_offset=-1", "log_offset"),
            ("log_offset=x", "log_offset"),
        ] {
            let r = get(f.addr, &format!("/api/runs/{id}/live?{query}"));
            assert_eq!(r.status, 400, "{query}: {}", r.text());
            assert!(error_of(&r).contains(name), "{query}: {}", r.text());
        }
        // An offset past the end is moved to the end: an empty last page, never `next > end`.
        let past = f.json(&format!("/api/runs/{id}/logs?offset={}", end + 100));
        assert_eq!(
            (
                past["offset"].as_u64(),
                past["next"].as_u64(),
                past["eof"].as_bool()
            ),
            (Some(end), Some(end), Some(true))
        );
        drop(live);
        f.stop();

        // The store holds the file's bytes.
        let store = Store::open_read_only(hub_dir.path()).unwrap();
        let run = store
            .list_runs(&RunFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.id == "runbytes")
            .unwrap();
        let (start, stored) = store.log_text(run.key).unwrap().unwrap();
        assert_eq!(start, 0);
        assert!(stored == file, "the stored copy differs from the file");
    });
}

#[test]
fn a_sync_over_sshd_stores_the_exact_bytes() {
    within_timeout(|_| {
        let sshd = Sshd::start();
        let home = sshd.client_home();
        home.trust(&sshd);
        let hub_dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let (_writer, logs) = hostile_run(root.path());
        let sync = || {
            connect_ssh_once(&home, hub_dir.path(), &sshd, root.path(), &[]);
        };
        sync();
        // Then the rest (several requests: one line is longer than a request's budget).
        for part in second_part() {
            append(&logs, &part);
        }
        sync();
        let file = std::fs::read(&logs).unwrap();
        let store = Store::open_read_only(hub_dir.path()).unwrap();
        let run = store
            .list_runs(&RunFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.id == "runbytes")
            .unwrap();
        let (start, stored) = store.log_text(run.key).unwrap().unwrap();
        assert_eq!(start, 0);
        assert_eq!(stored.len(), file.len());
        assert!(stored == file, "the copy over sshd differs from the file");
    });
}

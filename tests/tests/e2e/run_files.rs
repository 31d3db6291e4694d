//! `GET /api/runs/{run}/files` end to end: a run written with the Rust writer plus files of its
//! own (a folder of checkpoints, a text file), synced by a real `runicorn-hub connect
//! local:DIR --once`, listed by the real dashboard a page at a time, within a prefix, by key and
//! by run id; sizes and SHA-256 checked against the files on disk (hashed by `sha256sum`).

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_store::{RunFilter, RunKey, Store};
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::sync_local_once_with;
use runicorn_tests::sha256sum;
use runicorn_tests::sshd::ClientHome;
use serde_json::Value;

/// Checkpoints written into the run's `ckpt/` folder.
const CHECKPOINTS: usize = 25;

fn paths(page: &Value) -> Vec<String> {
    page["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files in {page}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_runs_files_are_listed_by_page_and_prefix() {
    let root = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();

    let mut spec = RunSpec::new(root.path(), "runicorn-tests");
    spec.path = Some("files".to_owned());
    spec.run_id = Some("withfiles".to_owned());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    w.log_text("hello").unwrap();
    let run_dir = w.dir().to_owned();
    std::fs::create_dir_all(run_dir.join("ckpt")).unwrap();
    for i in 0..CHECKPOINTS {
        let bytes: Vec<u8> = (0..(100 + i * 37)).map(|b| (b * 7 + i) as u8).collect();
        std::fs::write(run_dir.join(format!("ckpt/epoch{i:03}.pt")), bytes).unwrap();
    }
    std::fs::write(run_dir.join("ckpt.txt"), "not in the folder\n").unwrap();
    std::fs::write(run_dir.join("notes.txt"), "some notes\n").unwrap();
    w.finish(RunOutcome::finished()).unwrap();

    sync_local_once_with(home.path(), hub_dir.path(), root.path(), "gpu1", &[]);

    // One file cached, as the dashboard's fetcher would leave it.
    let key = {
        let mut store = Store::open(hub_dir.path()).unwrap();
        let run = store
            .list_runs(&RunFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.id == "withfiles")
            .expect("the run is synced");
        let f = std::fs::File::open(run_dir.join("notes.txt")).unwrap();
        let (sha, _) = store.put_file(f, 1 << 20).unwrap();
        assert!(store
            .record_cached_file(run.key, "notes.txt", &sha)
            .unwrap());
        run.key
    };
    let RunKey(k) = key;
    let served = ServedDashboard::start(hub_dir.path(), None);

    // Everything, in one page, sorted by path; each file as it is on disk.
    let all = served.json(&format!("/api/runs/{k}/files"));
    let listed = paths(&all);
    let total = all["total"].as_u64().unwrap();
    assert_eq!(total as usize, listed.len(), "{all}");
    assert!(listed.len() >= CHECKPOINTS + 2, "{listed:?}");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    for f in all["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let on_disk = run_dir.join(path);
        let meta = std::fs::metadata(&on_disk).unwrap();
        assert_eq!(f["size"].as_u64(), Some(meta.len()), "{f}");
        if f["sha256"].is_string() {
            assert_eq!(f["sha256"].as_str().unwrap(), sha256sum(&on_disk), "{f}");
        }
        assert_eq!(f["cached"], path == "notes.txt", "{f}");
        assert!(f["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("/api/runs/{k}/files/")));
    }
    let checkpoint = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "ckpt/epoch003.pt")
        .unwrap();
    assert_eq!(
        checkpoint["sha256"].as_str(),
        Some(sha256sum(&run_dir.join("ckpt/epoch003.pt")).as_str()),
        "the agent hashes small files: {checkpoint}"
    );

    // The folder, a page at a time: every checkpoint once, in order, `ckpt.txt` not among them.
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let page = served.json(&format!(
            "/api/runs/{k}/files?prefix=ckpt%2F&limit=10&offset={offset}"
        ));
        assert_eq!(page["total"], CHECKPOINTS as u64, "{page}");
        let got = paths(&page);
        assert!(got.len() <= 10);
        if got.is_empty() {
            break;
        }
        offset += got.len();
        paged.extend(got);
    }
    let expected: Vec<String> = (0..CHECKPOINTS)
        .map(|i| format!("ckpt/epoch{i:03}.pt"))
        .collect();
    assert_eq!(paged, expected);
    // A prefix without a slash is a plain string prefix.
    let both = served.json(&format!("/api/runs/{k}/files?prefix=ckpt"));
    assert_eq!(both["total"], CHECKPOINTS as u64 + 1, "{both}");
    assert_eq!(paths(&both)[0], "ckpt.txt");

    // By run id and by REMOTE/RUN_ID, the same answer.
    for reference in ["withfiles", "gpu1%2Fwithfiles"] {
        let page = served.json(&format!("/api/runs/{reference}/files?prefix=notes"));
        assert_eq!(paths(&page), ["notes.txt"], "{reference}: {page}");
        assert_eq!(page["files"][0]["cached"], true);
    }

    // Bad parameters are 400s naming the parameter; an unknown run is a 404.
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
    ] {
        let r = served.get(&format!("/api/runs/{k}/files?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.text().contains(name), "{query}: {}", r.text());
    }
    let r = served.get("/api/runs/nosuchrun/files");
    assert_eq!(r.status, 404, "{}", r.text());

    // The file route beside it still answers.
    let r = served.get(&format!("/api/runs/{k}/files/notes.txt"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"some notes\n");
}

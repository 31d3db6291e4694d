//! Run references end to end: a run named by its key, its run id or `REMOTE/RUN_ID` in
//! `runicorn-hub ls` and in every `/api/runs/{run}` route and `/api/compare`, against a store
//! filled by real syncs of two local remotes (`gpu1` and `gpu2`, both holding a run `shared`)
//! and served by the real dashboard on loopback.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_store::{RunFilter, Store};
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::http::EventStream;
use runicorn_tests::hub::{hub, show, sync_local_once_with};
use runicorn_tests::output_within;
use runicorn_tests::sshd::ClientHome;
use serde_json::{json, Value};
use tempfile::TempDir;

/// Longest a `runicorn-hub` command of these tests may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// Longest an event of a live stream may take to come.
const EVENT_LIMIT: Duration = Duration::from_secs(20);

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nbytes of a sample image";

/// Two storage roots synced into one store: `gpu1` holds `only1` (metrics, logs, an image) and
/// `shared`; `gpu2` holds `shared` and `31337` (a run id of digits only).
struct World {
    home: ClientHome,
    hub_dir: TempDir,
    roots: [TempDir; 2],
}

fn write_run(root: &Path, run_id: &str, steps: i64, image: bool) {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("refs".to_owned());
    spec.run_id = Some(run_id.to_owned());
    let mut w = RunWriter::create(&spec).unwrap();
    for s in 0..steps {
        w.log_metrics(&[("loss", 1.0 / (s as f64 + 1.0))], Some(s), None)
            .unwrap();
    }
    for i in 0..20 {
        w.log_text(&format!("{run_id} line {i}")).unwrap();
    }
    if image {
        w.log_image("sample", PNG, "png", Some(1), None).unwrap();
    }
    w.finish(RunOutcome::finished()).unwrap();
}

impl World {
    fn new() -> World {
        let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        write_run(roots[0].path(), "only1", 40, true);
        write_run(roots[0].path(), "shared", 10, false);
        write_run(roots[1].path(), "shared", 12, false);
        write_run(roots[1].path(), "31337", 5, false);
        let world = World {
            home: ClientHome::empty(),
            hub_dir: tempfile::tempdir().unwrap(),
            roots,
        };
        for (root, name) in world.roots.iter().zip(["gpu1", "gpu2"]) {
            sync_local_once_with(
                world.home.path(),
                world.hub_dir.path(),
                root.path(),
                name,
                &[],
            );
        }
        world.cache_image_of_only1();
        world
    }

    fn hub(&self) -> std::process::Command {
        hub(self.home.path(), self.hub_dir.path())
    }

    fn ls(&self, args: &[&str]) -> Output {
        output_within(self.hub().arg("ls").args(args), COMMAND_LIMIT)
    }

    /// The key of the run `run_id` of `remote`, read from the store.
    fn key(&self, remote: &str, run_id: &str) -> i64 {
        let store = Store::open_read_only(self.hub_dir.path()).unwrap();
        let runs = store
            .list_runs(&RunFilter {
                remote: Some(remote.to_owned()),
                ..RunFilter::default()
            })
            .unwrap();
        runs.iter()
            .find(|r| r.id == run_id)
            .unwrap_or_else(|| panic!("{remote}/{run_id} not in the store"))
            .key
            .0
    }

    /// Puts the image of `only1` into the store's file cache (as the dashboard's fetcher would),
    /// so the files route has bytes to answer.
    fn cache_image_of_only1(&self) {
        let root = self.roots[0].path();
        let mut store = Store::open(self.hub_dir.path()).unwrap();
        let key = runicorn_store::RunKey(self.key("gpu1", "only1"));
        let run = store.run_by_key(key).unwrap().unwrap();
        let image = store
            .files(key)
            .unwrap()
            .into_iter()
            .find(|f| f.path.ends_with(".png"))
            .expect("only1 lists its image");
        let file = std::fs::File::open(root.join(&run.dir).join(&image.path)).unwrap();
        let (sha, _) = store.put_file(file, 1 << 20).unwrap();
        store.record_cached_file(key, &image.path, &sha).unwrap();
    }
}

/// The real dashboard over the world's store.
fn serve(world: &World) -> ServedDashboard {
    ServedDashboard::start(world.hub_dir.path(), None)
}

/// The first event of `/live` (after step -1, from log byte 0) named `event`.
fn first_live_event(served: &ServedDashboard, reference: &str, event: &str) -> Value {
    let target = format!("/api/runs/{reference}/live?after_step=-1&log_offset=0");
    let mut stream = EventStream::open(served.addr, &target);
    assert_eq!(stream.status, 200, "{target}");
    stream
        .until(EVENT_LIMIT, |e| e.event == event)
        .unwrap_or_else(|| panic!("no {event} event from {target}"))
        .json()
}

/// A reference as one path segment (`gpu1/x` → `gpu1%2Fx`).
fn segment(reference: &str) -> String {
    reference.replace('/', "%2F")
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// Every route under `/api/runs/{run}` as (method, path after the reference, body).
fn every_run_route(image: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", String::new(), None),
        ("PATCH", String::new(), Some(json!({"notes": "n"}))),
        ("DELETE", String::new(), None),
        ("POST", "/restore".into(), None),
        ("GET", "/metrics".into(), None),
        ("GET", "/logs".into(), None),
        ("GET", "/live".into(), None),
        ("GET", format!("/files/{image}"), None),
    ]
}

#[test]
fn hub_ls_takes_each_kind_of_reference() {
    let world = World::new();
    let only1 = world.key("gpu1", "only1");
    let key_text = only1.to_string();
    for reference in [key_text.as_str(), "only1", "gpu1/only1"] {
        let listed = stdout_json(&world.ls(&[reference, "--json"]));
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 1, "{reference}: {listed:?}");
        assert_eq!(listed[0]["key"], only1, "{reference}");
        assert_eq!(listed[0]["run_id"], "only1", "{reference}");
        assert_eq!(listed[0]["remote"], "gpu1", "{reference}");
        assert!(listed[0].get("id").is_none(), "{reference}: {}", listed[0]);
    }
    // REMOTE/RUN_ID picks one of two runs with the same run id; several references list
    // several runs, in their order, each once.
    let gpu2_shared = world.key("gpu2", "shared");
    let listed = stdout_json(&world.ls(&["gpu2/shared", "only1", &key_text, "--json"]));
    let keys: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_i64().unwrap())
        .collect();
    assert_eq!(keys, [gpu2_shared, only1]);
    // Digits that are no key name the run whose run id they spell.
    let listed = stdout_json(&world.ls(&["31337", "--json"]));
    assert_eq!(listed[0]["run_id"], "31337", "{listed}");
    assert_eq!(listed[0]["remote"], "gpu2", "{listed}");

    // The table shows the key and the run id.
    let out = world.ls(&["gpu1/shared"]);
    assert!(out.status.success(), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("KEY") && header.contains("RUN ID"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&world.key("gpu1", "shared").to_string()) && row.contains("shared"),
        "{table}"
    );
    assert_eq!(lines.next(), None, "{table}");

    // Ambiguous: fails, naming every candidate and how to choose.
    let out = world.ls(&["shared"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for candidate in [
        format!("gpu1/shared (key {})", world.key("gpu1", "shared")),
        format!("gpu2/shared (key {gpu2_shared})"),
    ] {
        assert!(err.contains(&candidate), "{candidate} missing: {err}");
    }
    assert!(err.contains("use one of them"), "{err}");
    assert!(out.stdout.is_empty(), "{}", show(&out));

    // Unknown and malformed references fail with a message saying what to do.
    for (reference, says) in [
        ("nope", "runicorn-hub ls"),
        ("gpu9/only1", "no remote named \"gpu9\""),
        ("424242", "runicorn-hub ls"),
        ("gpu1/", "REMOTE/RUN_ID"),
    ] {
        let out = world.ls(&[reference]);
        assert!(!out.status.success(), "{reference}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{reference}: {err}");
    }
}

#[test]
fn every_run_route_answers_the_same_for_each_kind_of_reference() {
    let world = World::new();
    let served = serve(&world);
    let key = world.key("gpu1", "only1");
    let by_key = served.json(&format!("/api/runs/{key}"));
    assert_eq!(by_key["key"], key);
    assert_eq!(by_key["run_id"], "only1");
    assert!(by_key.get("id").is_none(), "{by_key}");
    let image_url = by_key["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".png"))
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    // The server's own URLs keep using the key.
    assert!(
        image_url.starts_with(&format!("/api/runs/{key}/files/")),
        "{image_url}"
    );
    let image_path = image_url.split_once("/files/").unwrap().1.to_owned();
    let metrics = served.json(&format!("/api/runs/{key}/metrics"));
    let logs = served.json(&format!("/api/runs/{key}/logs?offset=0"));
    assert!(
        logs["text"].as_str().unwrap().contains("only1 line 19"),
        "{logs}"
    );
    let live_metrics = first_live_event(&served, &key.to_string(), "metrics");
    let live_log = first_live_event(&served, &key.to_string(), "log");

    for reference in [key.to_string(), "only1".into(), "gpu1/only1".into()] {
        let r = segment(&reference);
        assert_eq!(
            served.json(&format!("/api/runs/{r}")),
            by_key,
            "{reference}"
        );
        assert_eq!(
            served.json(&format!("/api/runs/{r}/metrics")),
            metrics,
            "{reference}"
        );
        assert_eq!(
            served.json(&format!("/api/runs/{r}/logs?offset=0")),
            logs,
            "{reference}"
        );
        let raw = served.get(&format!("/api/runs/{r}/logs?format=raw"));
        assert_eq!(raw.status, 200, "{reference}: {}", raw.text());
        assert!(raw.text().contains("only1 line 0\n"), "{reference}");
        let file = served.get(&format!("/api/runs/{r}/files/{image_path}"));
        assert_eq!(file.status, 200, "{reference}: {}", file.text());
        assert_eq!(file.body, PNG, "{reference}");
        assert_eq!(
            first_live_event(&served, &r, "metrics"),
            live_metrics,
            "{reference}"
        );
        assert_eq!(
            first_live_event(&served, &r, "log"),
            live_log,
            "{reference}"
        );

        // The writes: annotate, into the recycle bin (still found by reference), and back.
        let alias = format!("via {reference}");
        let patched = served.write(
            "PATCH",
            &format!("/api/runs/{r}"),
            Some(json!({ "alias": alias })),
        );
        assert_eq!(patched.status, 200, "{reference}: {}", patched.text());
        assert_eq!(patched.json()["key"], key);
        assert_eq!(patched.json()["alias"], alias.as_str());
        let trashed = served.write("DELETE", &format!("/api/runs/{r}"), None);
        assert_eq!(trashed.status, 200, "{reference}: {}", trashed.text());
        assert!(trashed.json()["trashed_at"].is_number(), "{reference}");
        let in_bin = served.json(&format!("/api/runs/{r}"));
        assert_eq!(in_bin["key"], key, "{reference}");
        let restored = served.write("POST", &format!("/api/runs/{r}/restore"), None);
        assert_eq!(restored.status, 200, "{reference}: {}", restored.text());
        assert!(restored.json()["trashed_at"].is_null(), "{reference}");
        assert_eq!(restored.json()["key"], key);
        // Back to the state compared above (alias cleared to the run's own).
        let cleared = served.write(
            "PATCH",
            &format!("/api/runs/{r}"),
            Some(json!({"alias": null})),
        );
        assert_eq!(cleared.status, 200, "{reference}: {}", cleared.text());
    }

    // The one run with a run id of digits: no run has that key, so the run id is meant.
    let digits = served.json("/api/runs/31337");
    assert_eq!(digits["run_id"], "31337");
    assert_eq!(digits["key"], world.key("gpu2", "31337"));
    // REMOTE/RUN_ID tells two runs with one run id apart.
    for remote in ["gpu1", "gpu2"] {
        let run = served.json(&format!("/api/runs/{remote}%2Fshared"));
        assert_eq!(run["key"], world.key(remote, "shared"), "{remote}");
        assert_eq!(run["remote"], remote);
    }
}

#[test]
fn an_ambiguous_reference_is_a_409_listing_the_candidates_on_every_route() {
    let world = World::new();
    let served = serve(&world);
    let want = json!([
        {"key": world.key("gpu1", "shared"), "remote": "gpu1", "run_id": "shared"},
        {"key": world.key("gpu2", "shared"), "remote": "gpu2", "run_id": "shared"},
    ]);
    let mut targets = Vec::new();
    for (method, rest, body) in every_run_route("media/x.png") {
        targets.push((method, format!("/api/runs/shared{rest}"), body));
    }
    targets.push(("GET", "/api/compare?runs=only1,shared".into(), None));
    for (method, target, body) in targets {
        let r = if method == "GET" {
            served.get(&target)
        } else {
            served.write(method, &target, body)
        };
        assert_eq!(r.status, 409, "{method} {target}: {}", r.text());
        let answer = r.json();
        assert_eq!(answer["error"]["code"], "conflict", "{target}");
        assert_eq!(answer["candidates"], want, "{method} {target}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("use one of them"), "{message}");
    }
    // Nothing was written by the refused writes.
    for remote in ["gpu1", "gpu2"] {
        let run = served.json(&format!("/api/runs/{remote}%2Fshared"));
        assert!(
            run["notes"].is_null() && run["trashed_at"].is_null(),
            "{run}"
        );
    }
}

#[test]
fn unknown_references_are_404_and_malformed_ones_400() {
    let world = World::new();
    let served = serve(&world);
    let routes = every_run_route("media/x.png");
    for (reference, status, says) in [
        ("nope", 404, "runicorn-hub ls"),
        ("424242", 404, "no run 424242"),
        ("gpu9%2Fonly1", 404, "no remote named"),
        ("gpu2%2Fonly1", 404, "remote \\\"gpu2\\\" has no run"),
        ("gpu1%2F", 400, "REMOTE/RUN_ID"),
        ("a%2Fb%2Fc", 400, "REMOTE/RUN_ID"),
        ("%FF", 400, "unusable path"),
    ] {
        for (method, rest, body) in &routes {
            let target = format!("/api/runs/{reference}{rest}");
            let r = if *method == "GET" {
                served.get(&target)
            } else {
                served.write(method, &target, body.clone())
            };
            assert_eq!(r.status, status, "{method} {target}: {}", r.text());
            assert!(r.text().contains(says), "{method} {target}: {}", r.text());
        }
    }
    let r = served.get("/api/compare?runs=only1,nope");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("\\\"nope\\\""), "{}", r.text());
    let r = served.get("/api/compare?runs=only1,gpu1/");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("parameter runs"), "{}", r.text());
}

#[test]
fn compare_takes_references_and_counts_each_run_once() {
    let world = World::new();
    let served = serve(&world);
    let only1 = world.key("gpu1", "only1");
    let gpu2 = world.key("gpu2", "shared");
    let by_key = served.json(&format!("/api/compare?runs={only1},{gpu2}&keys=loss"));
    let by_ref = served.json("/api/compare?runs=only1,gpu2/shared,gpu1%2Fonly1&keys=loss");
    assert_eq!(by_ref, by_key);
    let keys: Vec<&Value> = by_ref["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["key"])
        .collect();
    assert_eq!(keys, [&json!(only1), &json!(gpu2)]);
    assert_eq!(by_ref["series"][0]["run"], only1);
}

//! The dashboard's HTTP API (docs/api.md) against a real store filled by a real sync
//! (`runicorn-hub connect local:DIR --once` over runs written with the Rust writer), served by
//! the real `runicorn_web::Dashboard` on loopback and driven over raw HTTP/1.1, so each test
//! can send any `Host` or `Origin` header.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunStatus, RunWriter};
use runicorn_store::{RunRow, Store};
use runicorn_tests::http::{get, EventStream, Request, Response};
use runicorn_tests::hub::{agent_path, hub, show};
use runicorn_tests::sshd::ClientHome;
use runicorn_web::{Dashboard, DashboardConfig, FileFetcher};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Steps of the long run; a spike sits at `SPIKE_STEP`.
const LONG_STEPS: i64 = 20_000;
const SPIKE_STEP: i64 = 12_345;

/// A storage root with sample runs, a hub store synced from it, and the client's HOME.
struct World {
    home: ClientHome,
    root: TempDir,
    hub_dir: TempDir,
}

fn write_run(
    root: &Path,
    path: &str,
    run_id: &str,
    steps: i64,
    summary: Value,
    config: Value,
    status: RunStatus,
) -> RunWriter {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some(path.to_owned());
    spec.run_id = Some(run_id.to_owned());
    spec.alias = Some(format!("own-{run_id}"));
    let mut w = RunWriter::create(&spec).unwrap();
    for s in 0..steps {
        let loss = if s == 3 {
            f64::NAN
        } else {
            1.0 / (s as f64 + 1.0)
        };
        w.log_metrics(&[("loss", loss), ("acc", s as f64 / 1e3)], Some(s), None)
            .unwrap();
    }
    if let Value::Object(map) = summary {
        w.update_summary(map).unwrap();
    }
    if !config.is_null() {
        w.log_config(config, json!({}), &[]).unwrap();
    }
    if status != RunStatus::Running {
        w.finish(RunOutcome {
            status,
            exit_code: None,
            signal: None,
            reason: None,
        })
        .unwrap();
    }
    w
}

impl World {
    /// Five finished runs (one failed) over two paths, one long run with a spike, logs and
    /// media files; synced once.
    fn new() -> World {
        let world = World {
            home: ClientHome::empty(),
            root: tempfile::tempdir().unwrap(),
            hub_dir: tempfile::tempdir().unwrap(),
        };
        let root = world.root.path();
        let mut a = write_run(
            root,
            "cv/resnet50",
            "runa",
            30,
            json!({"loss": 0.1, "acc": 0.9}),
            json!({"lr": 0.1, "optim": {"name": "sgd"}, "batch": 32}),
            RunStatus::Running,
        );
        for i in 0..300 {
            a.log_text(&format!("line {i:03} of the training log"))
                .unwrap();
        }
        a.log_image("sample", PNG, "png", Some(1), None).unwrap();
        a.log_image(
            "drawing",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
            "svg",
            Some(1),
            None,
        )
        .unwrap();
        a.finish(RunOutcome::finished()).unwrap();
        write_run(
            root,
            "cv/resnet50",
            "runb",
            20,
            json!({"loss": 0.3, "acc": 0.7}),
            json!({"lr": 0.03, "optim": {"name": "adam"}, "batch": 32}),
            RunStatus::Finished,
        );
        write_run(
            root,
            "cv",
            "runc",
            10,
            json!({}),
            Value::Null,
            RunStatus::Failed,
        );
        write_run(
            root,
            "nlp/bert",
            "rund",
            15,
            json!({"loss": 0.2}),
            json!({"lr": 0.01, "batch": 64}),
            RunStatus::Finished,
        );
        let mut long = write_run(
            root,
            "nlp/long",
            "rune",
            0,
            json!({"loss": 0.05}),
            json!({"lr": 0.001}),
            RunStatus::Running,
        );
        for s in 0..LONG_STEPS {
            let v = if s == SPIKE_STEP {
                100.0
            } else {
                1.0 + (s % 10) as f64 * 0.01
            };
            long.log_metrics(&[("loss", v)], Some(s), None).unwrap();
        }
        long.finish(RunOutcome::finished()).unwrap();
        world.sync();
        world
    }

    /// One `runicorn-hub connect local:ROOT --once`.
    fn sync(&self) {
        let out = hub(self.home.path(), self.hub_dir.path())
            .arg("connect")
            .arg(format!("local:{}", self.root.path().display()))
            .arg("--agent")
            .arg(agent_path())
            .args(["--once", "--no-ui", "--name", "here"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
    }

    fn serve(&self) -> Served {
        Served::start(self.hub_dir.path(), None)
    }
}

/// A dashboard on its own tokio runtime and thread.
struct Served {
    addr: SocketAddr,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ended: std::sync::mpsc::Receiver<()>,
}

impl Served {
    fn start(hub_dir: &Path, files: Option<Arc<dyn FileFetcher>>) -> Served {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ended_tx, ended) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = DashboardConfig {
            store_dir: hub_dir.to_owned(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            files,
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let dashboard = Dashboard::bind(config).await.unwrap();
                ready_tx
                    .send((dashboard.local_addr(), dashboard.url()))
                    .unwrap();
                dashboard
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
            let _ = ended_tx.send(());
        });
        let (addr, url) = ready_rx.recv().unwrap();
        Served {
            addr,
            url,
            stop: Some(stop),
            ended,
        }
    }

    fn get(&self, target: &str) -> Response {
        get(self.addr, target)
    }

    fn json(&self, target: &str) -> Value {
        let r = self.get(target);
        assert_eq!(r.status, 200, "GET {target}: {}", r.text());
        r.json()
    }

    /// The token from `index.html`.
    fn token(&self) -> String {
        let html = self.get("/").text();
        let at = html
            .find(r#"<meta name="runicorn-token" content=""#)
            .expect("the token meta tag");
        let rest = &html[at + r#"<meta name="runicorn-token" content=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    /// A state-changing request with the token and our own origin.
    fn write(&self, method: &str, target: &str, body: Option<Value>) -> Response {
        let mut req = Request::new(method, target)
            .header("X-Runicorn-Token", &self.token())
            .header("Origin", &format!("http://{}", self.addr));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send(self.addr)
    }

    /// Stops the server; true when `serve` returned within `timeout`.
    fn stop(mut self, timeout: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ended.recv_timeout(timeout).is_ok()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn ids_of(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

fn run_by_run_id(served: &Served, run_id: &str) -> Value {
    let page = served.json(&format!("/api/runs?q={run_id}&view=all"));
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("{run_id} not listed: {page}"))
        .clone()
}

fn error_message(r: &Response) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn runs_are_listed_filtered_sorted_and_paged() {
    let world = World::new();
    let served = world.serve();
    let all = served.json("/api/runs");
    assert_eq!(all["total"], 5, "{all}");
    let a = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "runa")
        .unwrap();
    for field in [
        "key",
        "run_id",
        "remote",
        "host",
        "dir",
        "path",
        "alias",
        "tags",
        "notes",
        "status",
        "reason",
        "created_at",
        "ended_at",
        "last_step",
        "points",
        "keys",
        "summary",
        "config",
        "log_bytes",
        "deleted",
        "removed",
        "trashed_at",
    ] {
        assert!(a.get(field).is_some(), "{field} missing: {a}");
    }
    assert_eq!(a["remote"], "here");
    assert_eq!(a["path"], "cv/resnet50");
    assert_eq!(a["alias"], "own-runa");
    assert_eq!(a["last_step"], 29);
    assert_eq!(a["config"]["optim"]["name"], "sgd");
    assert!(
        all.to_string().find("transport").is_none(),
        "no transport settings in listings"
    );

    // Filters.
    let cv = served.json("/api/runs?path=cv");
    assert_eq!(cv["total"], 3);
    let mut cv_ids = ids_of(&cv);
    cv_ids.sort();
    assert_eq!(cv_ids, ["runa", "runb", "runc"]);
    assert_eq!(
        served.json("/api/runs?path=c")["total"],
        0,
        "whole segments only"
    );
    assert_eq!(served.json("/api/runs?path=cv/resnet50")["total"], 2);
    assert_eq!(ids_of(&served.json("/api/runs?status=failed")), ["runc"]);
    assert_eq!(served.json("/api/runs?status=failed,finished")["total"], 5);
    assert_eq!(ids_of(&served.json("/api/runs?q=RUND")), ["rund"]);
    assert_eq!(served.json("/api/runs?remote=here")["total"], 5);
    assert_eq!(served.json("/api/runs?remote=elsewhere")["total"], 0);

    // Sorts: summary, config (dotted), and every plain column answers.
    let by_loss = served.json("/api/runs?sort=summary.loss&order=asc");
    assert_eq!(ids_of(&by_loss), ["rune", "runa", "rund", "runb", "runc"]);
    let by_loss_desc = served.json("/api/runs?sort=summary.loss&order=desc");
    assert_eq!(
        ids_of(&by_loss_desc),
        ["runb", "rund", "runa", "rune", "runc"],
        "runs without the key come last in either order"
    );
    let by_lr = served.json("/api/runs?sort=config.lr&order=asc");
    assert_eq!(ids_of(&by_lr), ["rune", "rund", "runb", "runa", "runc"]);
    let by_optim = served.json("/api/runs?sort=config.optim.name&order=asc");
    assert_eq!(ids_of(&by_optim)[..2], ["runb", "runa"]);
    let by_run_id = served.json("/api/runs?sort=run_id&order=asc");
    assert_eq!(ids_of(&by_run_id), ["runa", "runb", "runc", "rund", "rune"]);
    let by_points = served.json("/api/runs?sort=points&order=desc");
    assert_eq!(ids_of(&by_points)[0], "rune");
    for sort in [
        "created_at",
        "ended_at",
        "path",
        "alias",
        "status",
        "remote",
        "host",
        "last_step",
    ] {
        let page = served.json(&format!("/api/runs?sort={sort}"));
        assert_eq!(page["total"], 5, "{sort}");
        assert_eq!(page["runs"].as_array().unwrap().len(), 5, "{sort}");
    }
    let by_path = served.json("/api/runs?sort=path&order=asc");
    assert_eq!(ids_of(&by_path)[0], "runc");

    // Paging keeps the total and walks the same order.
    let p1 = served.json("/api/runs?sort=run_id&order=asc&limit=2");
    let p2 = served.json("/api/runs?sort=run_id&order=asc&limit=2&offset=2");
    let p3 = served.json("/api/runs?sort=run_id&order=asc&limit=2&offset=4");
    assert_eq!(
        (p1["total"].clone(), p3["total"].clone()),
        (json!(5), json!(5))
    );
    assert_eq!(ids_of(&p1), ["runa", "runb"]);
    assert_eq!(ids_of(&p2), ["runc", "rund"]);
    assert_eq!(ids_of(&p3), ["rune"]);

    // Mistakes name the parameter.
    let r = served.get("/api/runs?sort=colour");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "bad_request");
    assert!(error_message(&r).contains("colour"), "{}", r.text());
    let r = served.get("/api/runs?limit=100000");
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("limit"), "{}", r.text());

    // The run's page.
    let id = a["key"].as_i64().unwrap();
    let detail = served.json(&format!("/api/runs/{id}"));
    assert_eq!(detail["run_id"], "runa");
    assert!(detail["meta"].is_object(), "{detail}");
    assert!(detail["status_record"].is_object(), "{detail}");
    let metrics = detail["metrics"].as_array().unwrap();
    let loss = metrics.iter().find(|m| m["name"] == "loss").unwrap();
    assert_eq!(
        (loss["points"].clone(), loss["last_step"].clone()),
        (json!(30), json!(29))
    );
    let files = detail["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["path"].as_str().unwrap().ends_with(".png")),
        "{detail}"
    );
    assert_eq!(detail["corrupt_lines"], 0);
    assert_eq!(detail["remote_alias"], "own-runa");
    let r = served.get("/api/runs/999999");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    assert!(error_message(&r).contains("run 999999"), "{}", r.text());
    let r = served.get("/api/runs/abc");
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("abc"), "{}", r.text());
}

#[test]
fn annotations_and_the_recycle_bin_survive_a_later_sync() {
    let world = World::new();
    let served = world.serve();
    let b = run_by_run_id(&served, "runb");
    let id = b["key"].as_i64().unwrap();

    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": "best so far", "tags": ["keep", "paper"], "notes": "lr 0.03 wins"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let run = r.json();
    assert_eq!(run["alias"], "best so far");
    assert_eq!(run["tags"], json!(["keep", "paper"]));
    assert_eq!(run["notes"], "lr 0.03 wins");
    assert_eq!(ids_of(&served.json("/api/runs?tag=paper")), ["runb"]);
    assert_eq!(ids_of(&served.json("/api/runs?q=best%20so")), ["runb"]);

    // A later sync (the run changed on its server) keeps the hub's annotations.
    append_text(world.root.path(), "cv/resnet50/runb", "one more line\n");
    world.sync();
    let detail = served.json(&format!("/api/runs/{id}"));
    assert_eq!(detail["alias"], "best so far");
    assert_eq!(detail["notes"], "lr 0.03 wins");
    assert_eq!(detail["remote_alias"], "own-runb");

    // null clears: the run's own alias shows again; a missing field is left alone.
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": null})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["alias"], "own-runb");
    assert_eq!(r.json()["notes"], "lr 0.03 wins");

    // Bad bodies are refused with a message naming the field.
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"colour": "red"})),
    );
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("colour"), "{}", r.text());
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": "x".repeat(201)})),
    );
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("alias"), "{}", r.text());
    let r = served.write("PATCH", "/api/runs/999999", Some(json!({"alias": "x"})));
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("run 999999"), "{}", r.text());
    let big = json!({"notes": "n".repeat(70 * 1024)});
    let r = served.write("PATCH", &format!("/api/runs/{id}"), Some(big));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "payload_too_large");

    // The recycle bin.
    let r = served.write("DELETE", &format!("/api/runs/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["trashed_at"].is_f64(), "{}", r.text());
    assert_eq!(served.json("/api/runs")["total"], 4);
    assert_eq!(ids_of(&served.json("/api/runs?view=trash")), ["runb"]);
    assert_eq!(served.json("/api/runs?view=all")["total"], 5);
    world.sync();
    assert_eq!(
        ids_of(&served.json("/api/runs?view=trash")),
        ["runb"],
        "a sync leaves the bin alone"
    );
    let r = served.write("POST", &format!("/api/runs/{id}/restore"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["trashed_at"].is_null());
    assert_eq!(served.json("/api/runs")["total"], 5);
    assert_eq!(served.json("/api/runs?view=trash")["total"], 0);
}

fn append_text(root: &Path, run: &str, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(root.join("runs").join(run).join("logs.txt"))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn metrics_are_downsampled_keeping_spikes_or_sent_raw() {
    let world = World::new();
    let served = world.serve();
    let id = run_by_run_id(&served, "rune")["key"].as_i64().unwrap();

    let m = served.json(&format!("/api/runs/{id}/metrics?keys=loss&points=200"));
    assert_eq!(m["run"], id);
    assert_eq!(m["x"], "step");
    let s = &m["series"][0];
    assert_eq!(s["key"], "loss");
    assert_eq!(s["total"], LONG_STEPS);
    assert_eq!(s["downsampled"], true);
    let steps = s["steps"].as_array().unwrap();
    let values = s["values"].as_array().unwrap();
    assert!(steps.len() <= 200 && steps.len() >= 100, "{}", steps.len());
    assert_eq!(steps.len(), values.len());
    assert_eq!(steps.len(), s["times"].as_array().unwrap().len());
    let spike = steps
        .iter()
        .position(|st| st == SPIKE_STEP)
        .expect("the spike survives");
    assert_eq!(values[spike], 100.0);
    let ordered: Vec<i64> = steps.iter().map(|s| s.as_i64().unwrap()).collect();
    assert!(ordered.windows(2).all(|w| w[0] < w[1]), "x order");

    // Zoomed in: the spike still there, the range respected.
    let m = served.json(&format!(
        "/api/runs/{id}/metrics?keys=loss&points=20&from=12000&to=13000"
    ));
    let s = &m["series"][0];
    assert_eq!(s["total"], 1001);
    let steps = s["steps"].as_array().unwrap();
    assert!(steps
        .iter()
        .all(|st| (12000..=13000).contains(&st.as_i64().unwrap())));
    assert!(steps.iter().any(|st| st == SPIKE_STEP));

    // Raw: every point.
    let m = served.json(&format!("/api/runs/{id}/metrics?keys=loss&raw=1"));
    let s = &m["series"][0];
    assert_eq!(s["downsampled"], false);
    assert_eq!(s["steps"].as_array().unwrap().len() as i64, LONG_STEPS);

    // x = time.
    let m = served.json(&format!(
        "/api/runs/{id}/metrics?keys=loss&x=time&points=100"
    ));
    assert_eq!(m["x"], "time");
    assert!(m["series"][0]["times"][0].is_f64());

    // All keys by default; NaN is a null.
    let a = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let m = served.json(&format!("/api/runs/{a}/metrics"));
    let keys: Vec<&str> = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let loss = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "loss")
        .unwrap();
    assert_eq!(loss["downsampled"], false);
    assert!(loss["values"][3].is_null(), "NaN is null: {loss}");

    let r = served.get(&format!("/api/runs/{a}/metrics?keys=nope"));
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("nope"), "{}", r.text());
    let r = served.get(&format!("/api/runs/{a}/metrics?points=50000"));
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("points"), "{}", r.text());
    let r = served.get(&format!("/api/runs/{a}/metrics?x=epoch"));
    assert_eq!(r.status, 400);
}

#[test]
fn logs_are_paged_by_byte_offset_at_line_boundaries() {
    let world = World::new();
    let served = world.serve();
    let id = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let full = served.json(&format!("/api/runs/{id}/logs?offset=0&limit=1048576"));
    let text = full["text"].as_str().unwrap().to_owned();
    assert_eq!(full["eof"], true);
    assert_eq!(full["start"], 0);
    assert_eq!(full["end"].as_u64().unwrap() as usize, text.len());
    assert_eq!(text.lines().count(), 300);

    let mut offset = 0;
    let mut joined = String::new();
    let mut pages = 0;
    loop {
        let page = served.json(&format!("/api/runs/{id}/logs?offset={offset}&limit=1000"));
        let t = page["text"].as_str().unwrap();
        assert!(t.len() <= 1000);
        assert!(
            t.is_empty() || t.ends_with('\n'),
            "pages end at a line: {t:?}"
        );
        assert_eq!(page["offset"], offset);
        joined.push_str(t);
        offset = page["next"].as_u64().unwrap();
        pages += 1;
        if page["eof"] == true {
            break;
        }
        assert!(pages < 100);
    }
    assert_eq!(joined, text);
    assert!(pages > 5);

    // Without offset: the tail, starting at a whole line.
    let tail = served.json(&format!("/api/runs/{id}/logs?limit=500"));
    let t = tail["text"].as_str().unwrap();
    assert!(t.len() <= 500);
    assert!(text.ends_with(t));
    assert!(t.contains("line 299"), "{t}");
    assert!(
        text[..tail["offset"].as_u64().unwrap() as usize].ends_with('\n'),
        "the tail starts at a line"
    );
    assert_eq!(tail["eof"], true);
}

#[test]
fn live_streams_deliver_new_points_log_lines_and_changes() {
    let world = World::new();
    // A run still training: its writer stays open in this test.
    let mut spec = RunSpec::new(world.root.path(), "runicorn-tests");
    spec.path = Some("live/run".into());
    spec.run_id = Some("runlive".into());
    let mut w = RunWriter::create(&spec).unwrap();
    for s in 0..5 {
        w.log_metrics(&[("loss", 1.0 / (s as f64 + 1.0))], Some(s), None)
            .unwrap();
    }
    w.log_text("epoch 0 started").unwrap();
    w.flush().unwrap();
    world.sync();
    let served = world.serve();
    let run = run_by_run_id(&served, "runlive");
    assert_eq!(run["status"], "running");
    let id = run["key"].as_i64().unwrap();

    let mut live = EventStream::open(served.addr, &format!("/api/runs/{id}/live"));
    assert_eq!(live.status, 200);
    assert!(
        live.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type")
                && v.starts_with("text/event-stream"))
    );
    let mut changed = EventStream::open(served.addr, "/api/events");
    assert_eq!(changed.status, 200);

    for s in 5..12 {
        w.log_metrics(&[("loss", 1.0 / (s as f64 + 1.0))], Some(s), None)
            .unwrap();
    }
    // A key that appears later, at a step below the run's last: sent whole.
    w.log_metrics(&[("val", 0.5)], Some(2), Some("val"))
        .unwrap();
    w.log_text("epoch 1 started").unwrap();
    w.flush().unwrap();
    world.sync();

    let mut new_points: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    while new_points.len() < 2 {
        let metrics = live
            .until(Duration::from_secs(10), |e| e.event == "metrics")
            .expect("a metrics event");
        for series in metrics.json()["series"].as_array().unwrap() {
            let steps = series["steps"].as_array().unwrap();
            assert_eq!(steps.len(), series["values"].as_array().unwrap().len());
            new_points
                .entry(series["key"].as_str().unwrap().to_owned())
                .or_default()
                .extend(steps.iter().map(|s| s.as_i64().unwrap()));
        }
    }
    assert_eq!(
        new_points["loss"],
        (5..12).collect::<Vec<_>>(),
        "only the new points"
    );
    assert_eq!(new_points["val"], [2]);
    let log = live
        .until(Duration::from_secs(10), |e| e.event == "log")
        .expect("a log event");
    let log = log.json();
    assert!(
        log["text"].as_str().unwrap().contains("epoch 1 started"),
        "{log}"
    );
    assert!(!log["text"].as_str().unwrap().contains("epoch 0"), "{log}");
    assert_eq!(
        log["next"].as_u64().unwrap() - log["offset"].as_u64().unwrap(),
        log["text"].as_str().unwrap().len() as u64
    );
    let tick = changed
        .until(Duration::from_secs(10), |e| e.event == "changed")
        .expect("a changed event");
    assert!(tick.json()["at"].is_f64());

    // An annotation is a change of the run.
    let r = served.write(
        "PATCH",
        &format!("/api/runs/{id}"),
        Some(json!({"alias": "live one"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = live
        .until(Duration::from_secs(10), |e| e.event == "run")
        .expect("a run event");
    assert_eq!(ev.json()["alias"], "live one");

    // The end of the run arrives as a run event with the new status.
    w.finish(RunOutcome::finished()).unwrap();
    world.sync();
    let ev = live
        .until(Duration::from_secs(10), |e| {
            e.event == "run" && e.json()["status"] == "finished"
        })
        .expect("the run's end");
    assert_eq!(ev.json()["run_id"], "runlive");

    // A stream from an earlier step catches up at once.
    let mut again = EventStream::open(
        served.addr,
        &format!("/api/runs/{id}/live?after_step=9&log_offset=0"),
    );
    let ev = again
        .until(Duration::from_secs(5), |e| e.event == "metrics")
        .expect("catch-up points");
    let series = ev.json()["series"].clone();
    let loss = series
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "loss")
        .unwrap()
        .clone();
    assert_eq!(loss["steps"], json!([10, 11]));
    assert!(
        series.as_array().unwrap().iter().all(|s| s["key"] != "val"),
        "after_step applies to every key: {series}"
    );
    let ev = again
        .until(Duration::from_secs(5), |e| e.event == "log")
        .expect("catch-up log");
    assert!(ev.json()["text"]
        .as_str()
        .unwrap()
        .contains("epoch 0 started"));

    // Shutting down ends the open streams instead of waiting for them.
    assert!(served.stop(Duration::from_secs(10)), "serve returned");
    assert!(live.next(Duration::from_secs(5)).is_none());
}

#[test]
fn paths_remotes_columns_and_compare() {
    let world = World::new();
    let served = world.serve();

    let paths = served.json("/api/paths");
    assert_eq!(paths["total"], 5);
    let tree = &paths["tree"];
    assert_eq!(
        (tree["name"].clone(), tree["count"].clone()),
        (json!(""), json!(5))
    );
    let cv = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "cv")
        .unwrap();
    assert_eq!(cv["count"], 3, "{paths}");
    assert_eq!(cv["children"][0]["path"], "cv/resnet50");
    assert_eq!(cv["children"][0]["count"], 2);
    let nlp = served.json("/api/paths?status=failed");
    assert_eq!(nlp["total"], 1);

    let remotes = served.json("/api/remotes");
    let r = &remotes["remotes"][0];
    assert_eq!(r["name"], "here");
    assert_eq!(r["runs"], 5);
    assert!(r["points"].as_u64().unwrap() >= LONG_STEPS as u64);
    assert!(r["last_sync_at"].is_f64());
    assert!(r["lag_seconds"].as_f64().unwrap() >= 0.0);
    assert!(r.get("transport").is_none(), "{remotes}");
    assert!(r["address"].as_str().unwrap().starts_with("local:"), "{r}");

    let columns = served.json("/api/columns");
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let summary = names(&columns["summary"]);
    assert!(
        summary.iter().any(|k| k == "loss") && summary.iter().any(|k| k == "acc"),
        "{columns}"
    );
    let config = names(&columns["config"]);
    assert!(
        config.iter().any(|k| k == "lr") && config.iter().any(|k| k == "optim.name"),
        "{columns}"
    );

    let a = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let b = run_by_run_id(&served, "runb")["key"].as_i64().unwrap();
    let d = run_by_run_id(&served, "rund")["key"].as_i64().unwrap();
    let cmp = served.json(&format!("/api/compare?runs={a},{b},{d}"));
    let runs: Vec<i64> = cmp["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_i64().unwrap())
        .collect();
    assert_eq!(runs, [a, b, d]);
    let mut keys: Vec<&str> = cmp["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["acc", "loss"]);
    assert_eq!(cmp["series"].as_array().unwrap().len(), 6);
    assert!(cmp["series"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["run"] == b && s["key"] == "loss" && s["total"] == 20));
    let diff = cmp["config_diff"].as_array().unwrap();
    let row = |key: &str| diff.iter().find(|r| r["key"] == key).unwrap().clone();
    assert_eq!(row("lr")["values"], json!([0.1, 0.03, 0.01]));
    assert_eq!(row("lr")["differs"], true);
    assert_eq!(row("optim.name")["values"], json!(["sgd", "adam", null]));
    assert_eq!(row("batch")["values"], json!([32, 32, 64]));
    let first_same = diff.iter().position(|r| r["differs"] == false);
    let last_differs = diff.iter().rposition(|r| r["differs"] == true);
    if let (Some(s), Some(d)) = (first_same, last_differs) {
        assert!(d < s, "differing keys first: {diff:?}");
    }
    let cmp = served.json(&format!("/api/compare?runs={a},{b}&keys=loss&points=10"));
    assert_eq!(cmp["series"].as_array().unwrap().len(), 2);
    let r = served.get("/api/compare?runs=1,999999");
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("999999"), "{}", r.text());
    let r = served.get("/api/compare");
    assert_eq!(r.status, 400);
    assert!(error_message(&r).contains("runs"), "{}", r.text());
}

/// Brings a file of a `local:` remote's run into the store's cache by reading it where the
/// run lives: the same job the hub's SFTP fetcher does for SSH remotes.
struct LocalFetcher {
    root: PathBuf,
    hub_dir: PathBuf,
}

impl FileFetcher for LocalFetcher {
    fn fetch(&self, run: RunRow, path: String) -> BoxFuture<'static, Result<(), String>> {
        let file = self.root.join(&run.dir).join(&path);
        let hub_dir = self.hub_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut store = Store::open(&hub_dir).map_err(|e| e.to_string())?;
                let f = std::fs::File::open(&file).map_err(|e| e.to_string())?;
                let (sha, _) = store.put_file(f, 50 << 20).map_err(|e| e.to_string())?;
                store
                    .record_cached_file(run.key, &path, &sha)
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

#[test]
fn files_are_served_from_the_cache_only_by_the_manifest() {
    let world = World::new();
    let cache_only = world.serve();
    let fetching = Served::start(
        world.hub_dir.path(),
        Some(Arc::new(LocalFetcher {
            root: world.root.path().to_owned(),
            hub_dir: world.hub_dir.path().to_owned(),
        })),
    );
    let id = run_by_run_id(&cache_only, "runa")["key"].as_i64().unwrap();
    let detail = cache_only.json(&format!("/api/runs/{id}"));
    let file = |ext: &str| {
        detail["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(ext))
            .unwrap_or_else(|| panic!("no {ext} in {detail}"))
            .clone()
    };
    let png = file(".png");
    let svg = file(".svg");
    assert_eq!(png["cached"], false);
    let png_url = png["url"].as_str().unwrap().to_owned();

    let r = cache_only.get(&png_url);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(error_message(&r).contains("cache"), "{}", r.text());

    let r = fetching.get(&png_url);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, PNG);
    assert_eq!(r.header("content-type"), Some("image/png"));
    // Once cached, the cache-only server has it too.
    let r = cache_only.get(&png_url);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PNG);
    assert_eq!(
        cache_only.json(&format!("/api/runs/{id}"))["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["url"] == png_url.as_str())
            .unwrap()["cached"],
        true
    );

    // SVG may hold script: served as plain text.
    let r = fetching.get(svg["url"].as_str().unwrap());
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // Not in the manifest, or outside the run: refused, nothing read.
    let r = fetching.get(&format!("/api/runs/{id}/files/media/none.png"));
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("media/none.png"), "{}", r.text());
    for target in [
        format!("/api/runs/{id}/files/..%2f..%2f..%2fstore.sqlite"),
        format!("/api/runs/{id}/files/media/..%2f..%2fmeta.json"),
        format!("/api/runs/{id}/files/%2fetc%2fpasswd"),
        format!("/api/runs/{id}/files/../../store.sqlite"),
    ] {
        let r = fetching.get(&target);
        assert!(
            r.status == 400 || r.status == 404,
            "{target}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.body.starts_with(b"SQLite format"), "{target}");
        assert!(!r.text().contains("root:"), "{target}");
    }
}

#[test]
fn foreign_hosts_and_cross_site_writes_are_refused() {
    let world = World::new();
    let served = world.serve();
    let port = served.addr.port();
    assert_eq!(served.url, format!("http://127.0.0.1:{port}/"));
    let id = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();

    // DNS rebinding: a foreign Host is refused, loopback names pass.
    let r = Request::get("/api/runs")
        .header("Host", &format!("evil.example:{port}"))
        .send(served.addr);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden");
    assert!(error_message(&r).contains("evil.example"), "{}", r.text());
    let r = Request::get("/")
        .header("Host", "evil.example")
        .send(served.addr);
    assert_eq!(r.status, 403);
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = Request::get("/api/runs")
            .header("Host", &host)
            .send(served.addr);
        assert_eq!(r.status, 200, "{host}");
    }

    // No CORS, ever; the security headers, always.
    let r = Request::get("/api/runs")
        .header("Origin", "http://evil.example")
        .send(served.addr);
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    for resp in [&r, &served.get("/"), &served.get("/api/nothing")] {
        assert!(resp.header("access-control-allow-origin").is_none());
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert!(resp
            .header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
    }
    let r = Request::new("OPTIONS", "/api/runs")
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "PATCH")
        .send(served.addr);
    assert!(r.header("access-control-allow-origin").is_none());

    // The page carries the token.
    let index = served.get("/");
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let token = served.token();
    assert_eq!(token.len(), 64);
    assert!(index.text().contains(&token));
    // Any page of the app is the app; unknown API routes are JSON 404s.
    let spa = served.get(&format!("/runs/{id}"));
    assert_eq!(spa.status, 200);
    assert!(spa.text().contains(&token));
    let r = served.get("/api/nothing");
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("/api/nothing"), "{}", r.text());

    // Writes: no token, a wrong token, a foreign origin are refused; nothing changes.
    let target = format!("/api/runs/{id}");
    let body = json!({"alias": "pwned"});
    let attempts = [
        Request::new("PATCH", &target).json(&body),
        Request::new("PATCH", &target)
            .header("X-Runicorn-Token", "0".repeat(64).as_str())
            .json(&body),
        Request::new("PATCH", &target)
            .header("X-Runicorn-Token", &token)
            .header("Origin", "http://evil.example")
            .json(&body),
        Request::new("DELETE", &target).header("Origin", "http://evil.example"),
        Request::new("POST", &format!("/api/runs/{id}/restore"))
            .header("Origin", "http://evil.example")
            .header("Content-Type", "text/plain"),
    ];
    for req in attempts {
        let r = req.send(served.addr);
        assert_eq!(r.status, 403, "{req:?}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "forbidden");
    }
    let run = served.json(&target);
    assert_eq!(run["alias"], "own-runa");
    assert!(run["trashed_at"].is_null());
    // With the token and our own origin (or none, as same-origin fetches may send), it works.
    let r = Request::new("PATCH", &target)
        .header("X-Runicorn-Token", &token)
        .json(&json!({"alias": "mine"}))
        .send(served.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = served.write("PATCH", &target, Some(json!({"alias": null})));
    assert_eq!(r.status, 200, "{}", r.text());

    // Every API answer is JSON, mistakes included.
    let r = served.write("PUT", &target, Some(json!({})));
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    let r = served.get(&format!("/api/runs/{id}/files/%ff%fe"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "bad_request");
}

#[test]
fn a_port_in_use_is_reported_with_a_way_out() {
    let world = World {
        home: ClientHome::empty(),
        root: tempfile::tempdir().unwrap(),
        hub_dir: tempfile::tempdir().unwrap(),
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(Dashboard::bind(DashboardConfig {
            store_dir: world.hub_dir.path().to_owned(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            files: None,
        }))
        .err()
        .expect("the port is taken");
    let message = err.to_string();
    assert!(message.contains(&port.to_string()), "{message}");
    assert!(message.contains("--port"), "{message}");
    // An empty store still serves an empty table.
    let served = Served::start(world.hub_dir.path(), None);
    let page = served.json("/api/runs");
    assert_eq!(page, json!({"runs": [], "total": 0}));
    assert_eq!(served.json("/api/paths")["total"], 0);
    assert_eq!(served.json("/api/remotes"), json!({"remotes": []}));
}

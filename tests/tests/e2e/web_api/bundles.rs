//! Offline bundles in the dashboard's API (docs/api.md, "Bundles"): `POST /api/bundles/export`
//! downloads a bundle of the selected runs, `POST /api/bundles/uploads` streams a file in,
//! `POST /api/bundles/uploads/{id}/import` previews (dry run) and imports it.
//!
//! The hub's own service is not at this layer: the dashboard is given [`TestHub`], a small
//! `BundleService` that behaves for real. Its export writes a real bundle of the runs' folders
//! with `runicorn_bundle::write_bundle`; its import reads the upload with `read_bundle` (every
//! check of the real reader) and, unless it is a dry run, syncs each landed root into the
//! store with a real `runicorn-hub connect local:DIR --once`, so the imported runs are listed
//! by the API exactly like synced ones.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use runicorn_bundle::{
    read_bundle, write_bundle, Limits, Omit, ReadBundle, SourceInput, WriteOptions,
};
use runicorn_store::{RunKey, Store};
use runicorn_tests::dashboard::ServedDashboard as Served;
use runicorn_tests::http::Request;
use runicorn_tests::hub::{sync_local_once, write_runs};
use runicorn_tests::sshd::ClientHome;
use runicorn_web::bundle_reports::{
    BundleFailure, BundleKind, BundleService, ExportContents, ExportReport, ImportReport,
    ImportTotals, ImportedBundle, ImportedRun, ImportedSource, RunVerdict,
};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A hub store synced from a root of three runs, and the folders a test double needs.
struct World {
    home: ClientHome,
    root: TempDir,
    hub_dir: TempDir,
    /// Where imports land their roots (they stay: the imported remote's address).
    landed: TempDir,
}

impl World {
    fn new() -> World {
        let world = World {
            home: ClientHome::empty(),
            root: tempfile::tempdir().unwrap(),
            hub_dir: tempfile::tempdir().unwrap(),
            landed: tempfile::tempdir().unwrap(),
        };
        write_runs(world.root.path(), 3, |i| 5 + 10 * i);
        sync_local_once(
            world.home.path(),
            world.hub_dir.path(),
            world.root.path(),
            "here",
        );
        world
    }

    fn hub(&self) -> Arc<TestHub> {
        Arc::new(TestHub {
            home: self.home.path().to_owned(),
            hub_dir: self.hub_dir.path().to_owned(),
            root: self.root.path().to_owned(),
            landed: self.landed.path().to_owned(),
            exports: Mutex::new(Vec::new()),
        })
    }

    fn serve(&self, hub: &Arc<TestHub>) -> Served {
        let service: Arc<dyn BundleService> = hub.clone();
        Served::start_with_bundles(self.hub_dir.path(), None, Some(service))
    }

    fn files_in(&self, sub: &str) -> Vec<PathBuf> {
        match std::fs::read_dir(self.hub_dir.path().join(sub)) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The test double of the hub's bundle service (see the module doc).
struct TestHub {
    home: PathBuf,
    hub_dir: PathBuf,
    /// The storage root the store's remote `here` syncs.
    root: PathBuf,
    landed: PathBuf,
    /// What each export was asked: the runs and `metadata_only`.
    exports: Mutex<Vec<(Vec<RunKey>, bool)>>,
}

fn failure(message: impl Into<String>) -> BundleFailure {
    BundleFailure {
        message: message.into(),
        member: None,
    }
}

impl TestHub {
    fn export_now(
        &self,
        runs: &[RunKey],
        metadata_only: bool,
        out: &Path,
    ) -> Result<ExportReport, BundleFailure> {
        let store = Store::open_read_only(&self.hub_dir).map_err(|e| failure(e.to_string()))?;
        let mut dirs = Vec::new();
        for key in runs {
            let row = store
                .run_by_key(*key)
                .map_err(|e| failure(e.to_string()))?
                .ok_or_else(|| failure(format!("run {} is not in the store", key.0)))?;
            dirs.push(row.dir);
        }
        let source = SourceInput {
            name: "here".into(),
            host: "test-host".into(),
            root_label: self.root.display().to_string(),
            dir: self.root.clone(),
            runs: dirs,
            artifact_versions: Vec::new(),
            extra_paths: Vec::new(),
            omit: if metadata_only {
                Omit::AllButRunFiles(
                    [
                        "meta.json",
                        "status.json",
                        "summary.json",
                        "events.jsonl",
                        "logs.txt",
                    ]
                    .into_iter()
                    .map(String::from)
                    .collect(),
                )
            } else {
                Omit::Nothing
            },
            extra_omitted: Vec::new(),
            annotations: Vec::new(),
            mtimes: Default::default(),
        };
        let options = WriteOptions {
            zstd_level: 3,
            created_by: "runicorn-tests".into(),
        };
        let file = std::fs::File::create(out).map_err(|e| failure(e.to_string()))?;
        let (_, report) =
            write_bundle(&[source], &options, file).map_err(|e| failure(e.to_string()))?;
        Ok(ExportReport {
            file: out.display().to_string(),
            runs: runs.len() as u64,
            members: report.manifest.members.len() as u64,
            omitted: report.omitted as u64,
            contents: report.contents as u64,
            content_bytes: report.content_bytes,
            bundle_bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
            artifact_versions: 0,
            skipped: Vec::new(),
        })
    }

    fn import_now(
        &self,
        bundle: &Path,
        name: String,
        dry_run: bool,
        as_remote: Option<String>,
    ) -> Result<ImportReport, BundleFailure> {
        let dest = tempfile::tempdir_in(&self.landed).unwrap().keep();
        let input = std::fs::File::open(bundle).map_err(|e| failure(e.to_string()))?;
        let read = read_bundle(input, &dest, &Limits::default()).map_err(|e| BundleFailure {
            message: format!("{name}: {e}"),
            member: e.member().map(str::to_owned),
        })?;
        let store = Store::open_read_only(&self.hub_dir).map_err(|e| failure(e.to_string()))?;
        let remotes = store.remotes().map_err(|e| failure(e.to_string()))?;
        let mut totals = ImportTotals::default();
        let mut sources = Vec::new();
        for (i, source) in read.manifest.sources.iter().enumerate() {
            let remote = as_remote.clone().unwrap_or_else(|| source.name.clone());
            let existing = remotes.iter().find(|r| r.name == remote);
            let mut runs = Vec::new();
            for dir in &source.runs {
                let known = match existing {
                    Some(r) => store
                        .run(r.id, dir)
                        .map_err(|e| failure(e.to_string()))?
                        .is_some(),
                    None => false,
                };
                let verdict = if known {
                    totals.runs_unchanged += 1;
                    RunVerdict::Unchanged
                } else {
                    totals.runs_new += 1;
                    RunVerdict::New
                };
                let run_id = dir.rsplit('/').next().unwrap_or(dir).to_owned();
                runs.push(ImportedRun {
                    dir: dir.clone(),
                    run_id,
                    path: dir.clone(),
                    status: "finished".into(),
                    verdict,
                });
            }
            if !dry_run {
                let root = ReadBundle::source_root(&dest, i);
                sync_local_once(&self.home, &self.hub_dir, &root, &remote);
            }
            sources.push(ImportedSource {
                remote,
                remote_created: existing.is_none(),
                host: Some(source.host.clone()),
                root: Some(source.root.clone()),
                runs,
                artifacts: 0,
            });
        }
        if dry_run {
            let _ = std::fs::remove_dir_all(&dest);
        }
        Ok(ImportReport {
            dry_run,
            bundles: vec![ImportedBundle {
                file: name,
                kind: BundleKind::Runicorn,
                created_at: Some(read.manifest.created_at),
                sources,
            }],
            totals,
        })
    }
}

impl BundleService for TestHub {
    fn export(
        &self,
        runs: Vec<RunKey>,
        contents: ExportContents,
        out: PathBuf,
    ) -> BoxFuture<'static, Result<ExportReport, BundleFailure>> {
        let metadata_only = contents.metadata_only;
        self.exports
            .lock()
            .unwrap()
            .push((runs.clone(), metadata_only));
        let me = self.clone_paths();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || me.export_now(&runs, metadata_only, &out))
                .await
                .unwrap_or_else(|e| Err(failure(e.to_string())))
        })
    }

    fn import(
        &self,
        bundle: PathBuf,
        name: String,
        dry_run: bool,
        as_remote: Option<String>,
    ) -> BoxFuture<'static, Result<ImportReport, BundleFailure>> {
        let me = self.clone_paths();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || me.import_now(&bundle, name, dry_run, as_remote))
                .await
                .unwrap_or_else(|e| Err(failure(e.to_string())))
        })
    }
}

impl TestHub {
    /// A copy for a blocking task (the export log stays with the original).
    fn clone_paths(&self) -> TestHub {
        TestHub {
            home: self.home.clone(),
            hub_dir: self.hub_dir.clone(),
            root: self.root.clone(),
            landed: self.landed.clone(),
            exports: Mutex::new(Vec::new()),
        }
    }
}

/// The runs the API lists for `remote` (run id → points), every view.
fn runs_of(served: &Served, remote: &str) -> Vec<(String, u64)> {
    let page = served.json(&format!("/api/runs?remote={remote}&view=all&limit=100"));
    let mut runs: Vec<(String, u64)> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["points"].as_u64().unwrap(),
            )
        })
        .collect();
    runs.sort();
    runs
}

fn key_of(served: &Served, run_id: &str) -> i64 {
    served.json(&format!("/api/runs/{run_id}"))["key"]
        .as_i64()
        .unwrap()
}

/// A request with the token and our own origin, and a raw body.
fn upload(served: &Served, name: &str, bytes: Vec<u8>) -> runicorn_tests::http::Response {
    Request::new("POST", &format!("/api/bundles/uploads?name={name}"))
        .header("X-Runicorn-Token", &served.token())
        .header("Origin", &format!("http://{}", served.addr))
        .header("Content-Type", "application/octet-stream")
        .body(bytes)
        .send(served.addr)
}

fn export(served: &Served, body: Value) -> runicorn_tests::http::Response {
    served.write("POST", "/api/bundles/export", Some(body))
}

fn error_of(r: &runicorn_tests::http::Response) -> Value {
    r.json()["error"].clone()
}

#[test]
fn export_downloads_a_bundle_of_the_selected_runs_and_leaves_no_file() {
    let world = World::new();
    let hub = world.hub();
    let served = world.serve(&hub);
    let second = key_of(&served, "run00001");

    // References as every endpoint takes them: a run id, a key; the same run twice counts once.
    let r = export(
        &served,
        json!({"runs": ["run00000", second, "here/run00001"], "metadata_only": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/zstd"));
    let disposition = r.header("content-disposition").unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"runicorn-2-runs-")
            && disposition.ends_with(".rbundle\""),
        "{disposition}"
    );
    let date = &disposition["attachment; filename=\"runicorn-2-runs-".len()..][..10];
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{disposition}"
    );
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    let asked = hub.exports.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0.len(), 2, "{asked:?}");
    assert!(asked[0].1, "metadata_only reaches the service");

    // The download is the bundle: the real reader accepts it and it holds the two runs.
    let dest = tempfile::tempdir().unwrap();
    let read = read_bundle(&r.body[..], dest.path(), &Limits::default()).unwrap();
    let ids: BTreeSet<String> = read.manifest.sources[0]
        .runs
        .iter()
        .map(|d| d.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["run00000".to_owned(), "run00001".to_owned()])
    );
    assert!(
        world.files_in("tmp/exports").is_empty(),
        "the export file is removed once served: {:?}",
        world.files_in("tmp/exports")
    );

    // A long selection fits (more than the other routes' 64 KiB body); beyond 1 MiB, 413.
    let many = vec![json!("here/run00000"); 6_000];
    let r = export(&served, json!({ "runs": many }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains("runicorn-1-runs-"));
    let huge = vec![json!("x".repeat(1_000)); 1_100];
    let r = export(&served, json!({ "runs": huge }));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(hub.exports.lock().unwrap().len(), 2);

    // Refusals name what is wrong and write nothing.
    let r = export(&served, json!({"runs": []}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        error_of(&r)["message"]
            .as_str()
            .unwrap()
            .contains("at least one run"),
        "{}",
        r.text()
    );
    let r = export(&served, json!({"runs": ["nosuchrun"]}));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("nosuchrun"), "{}", r.text());
    let r = export(&served, json!({"run": ["run00000"]}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(hub.exports.lock().unwrap().len(), 2);
    // Without the token, refused before anything runs.
    let r = Request::new("POST", "/api/bundles/export")
        .json(&json!({"runs": ["run00000"]}))
        .send(served.addr);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(hub.exports.lock().unwrap().len(), 2);
}

/// The dashboard's way: the bundle is written first, then downloaded by the browser straight
/// to disk with a plain GET, once.
#[test]
fn an_export_written_for_later_downloads_once_then_is_gone() {
    let world = World::new();
    let hub = world.hub();
    let served = world.serve(&hub);
    let r = served.write(
        "POST",
        "/api/bundles/exports",
        Some(json!({"runs": ["run00000", "run00001"], "with_artifacts": true})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let ready = r.json();
    let id = ready["id"].as_str().unwrap().to_owned();
    assert!(
        ready["filename"]
            .as_str()
            .unwrap()
            .starts_with("runicorn-2-runs-"),
        "{ready}"
    );
    assert_eq!(ready["report"]["runs"], 2, "{ready}");
    assert_eq!(
        world.files_in("tmp/exports").len(),
        1,
        "it waits for its GET"
    );

    let r = served.get(&format!("/api/bundles/exports/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.len() as u64, ready["size"].as_u64().unwrap());
    assert_eq!(
        r.header("content-disposition").unwrap(),
        format!(
            "attachment; filename=\"{}\"",
            ready["filename"].as_str().unwrap()
        )
    );
    let dest = tempfile::tempdir().unwrap();
    let read = read_bundle(&r.body[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(read.manifest.sources[0].runs.len(), 2);
    assert!(world.files_in("tmp/exports").is_empty());

    // Once only; ids that are not ours never reach the file system.
    let r = served.get(&format!("/api/bundles/exports/{id}"));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("export the runs again"), "{}", r.text());
    for bad in ["..%2F..%2Fstore.db", "abc", &format!("{id}x")] {
        let r = served.get(&format!("/api/bundles/exports/{bad}"));
        assert_eq!(r.status, 404, "{bad}: {}", r.text());
    }
}

#[test]
fn an_uploaded_bundle_is_previewed_then_imported_and_its_runs_are_listed() {
    let world = World::new();
    let hub = world.hub();
    let served = world.serve(&hub);
    let bundle = export(&served, json!({"runs": ["run00001", "run00002"]}));
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    let size = bundle.body.len() as u64;

    let r = upload(&served, "two%20runs.rbundle", bundle.body.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    let up = r.json();
    assert_eq!(up["name"], "two runs.rbundle");
    assert_eq!(up["size"], size);
    let id = up["id"].as_str().unwrap().to_owned();
    let waiting = world.files_in("tmp/uploads");
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(std::fs::read(&waiting[0]).unwrap(), bundle.body);

    // The dry run says what would happen and changes nothing.
    let target = format!("/api/bundles/uploads/{id}/import");
    let r = served.write(
        "POST",
        &target,
        Some(json!({"dry_run": true, "as_remote": "copy"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["bundles"][0]["file"], "two runs.rbundle");
    assert_eq!(report["bundles"][0]["kind"], "runicorn");
    assert_eq!(report["bundles"][0]["sources"][0]["remote"], "copy");
    assert_eq!(report["bundles"][0]["sources"][0]["remote_created"], true);
    assert_eq!(report["totals"]["runs_new"], 2);
    let verdicts: Vec<&str> = report["bundles"][0]["sources"][0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["new", "new"]);
    assert!(runs_of(&served, "copy").is_empty());
    assert_eq!(
        world.files_in("tmp/uploads").len(),
        1,
        "kept after a dry run"
    );

    // The import: the runs are listed under the remote asked for, as synced ones are.
    let r = served.write(
        "POST",
        &target,
        Some(json!({"dry_run": false, "as_remote": "copy"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["dry_run"], false);
    let here: Vec<(String, u64)> = runs_of(&served, "here")
        .into_iter()
        .filter(|(id, _)| id != "run00000")
        .collect();
    assert_eq!(runs_of(&served, "copy"), here);
    assert!(here.iter().all(|(_, points)| *points > 0), "{here:?}");
    assert!(
        world.files_in("tmp/uploads").is_empty(),
        "the upload is removed after the import"
    );
    let r = served.write("POST", &target, Some(json!({"dry_run": true})));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(error_of(&r)["message"].as_str().unwrap().contains(&id));
}

#[test]
fn a_damaged_bundle_is_refused_naming_the_member_and_nothing_is_imported() {
    let world = World::new();
    let hub = world.hub();
    let served = world.serve(&hub);
    let bundle = export(&served, json!({"runs": ["run00002"]}));
    assert_eq!(bundle.status, 200, "{}", bundle.text());

    // Cut short: the reader's own verdict, member and all, reaches the page.
    let cut = bundle.body[..bundle.body.len() * 2 / 3].to_vec();
    let expected = read_bundle(
        &cut[..],
        tempfile::tempdir().unwrap().path(),
        &Limits::default(),
    )
    .unwrap_err();
    let r = upload(&served, "cut.rbundle", cut);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = served.write(
        "POST",
        &format!("/api/bundles/uploads/{id}/import"),
        Some(json!({"dry_run": false, "as_remote": "copy"})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let error = error_of(&r);
    assert_eq!(error["code"], "bad_bundle");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("cut.rbundle: ") && message.contains(&expected.to_string()),
        "{message} / {expected}"
    );
    assert_eq!(error["member"].as_str(), expected.member(), "{}", r.text());
    assert!(runs_of(&served, "copy").is_empty());

    // Bytes that are no bundle at all, larger than the JSON body limit (uploads stream).
    let noise: Vec<u8> = (0..1_500_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let r = upload(&served, "noise.bin", noise);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = served.write(
        "POST",
        &format!("/api/bundles/uploads/{id}/import"),
        Some(json!({"dry_run": true})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["code"], "bad_bundle");
    assert!(error_of(&r)["message"]
        .as_str()
        .unwrap()
        .starts_with("noise.bin: "));
    let remotes = served.json("/api/remotes");
    assert_eq!(remotes["remotes"].as_array().unwrap().len(), 1, "{remotes}");
}

#[test]
fn uploads_are_bounded_guarded_and_checked() {
    let world = World::new();
    let hub = world.hub();
    let served = world.serve(&hub);

    // Declared larger than 8 GiB: 413 before a byte is read, and no file.
    let mut stream = TcpStream::connect(served.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /api/bundles/uploads?name=big HTTP/1.1\r\nHost: {}\r\nOrigin: http://{}\r\n\
         X-Runicorn-Token: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        served.addr,
        served.addr,
        served.token(),
        (8u64 << 30) + 1
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("runicorn-hub import"), "{answer}");
    assert!(world.files_in("tmp/uploads").is_empty());

    // No token: refused. Empty: refused, nothing kept.
    let r = Request::new("POST", "/api/bundles/uploads")
        .body(b"x".to_vec())
        .send(served.addr);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = upload(&served, "empty", Vec::new());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(world.files_in("tmp/uploads").is_empty());

    // A folder in the name is dropped; a bad remote name and an unknown upload are refused.
    let r = upload(&served, "..%2F..%2Fevil.rbundle", b"bytes".to_vec());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "evil.rbundle");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = served.write(
        "POST",
        &format!("/api/bundles/uploads/{id}/import"),
        Some(json!({"dry_run": true, "as_remote": "no/slashes"})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no/slashes"), "{}", r.text());
    let r = served.write(
        "POST",
        "/api/bundles/uploads/0123/import",
        Some(json!({"dry_run": true})),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = served.get("/api/bundles/uploads");
    assert_eq!(r.status, 405, "{}", r.text());
}

#[test]
fn without_a_bundle_service_the_routes_say_what_serves_them() {
    let world = World::new();
    let served = Served::start(world.hub_dir.path(), None);
    let r = export(&served, json!({"runs": ["run00000"]}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("runicorn-hub"), "{}", r.text());
    let r = upload(&served, "b.rbundle", b"bytes".to_vec());
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(world.files_in("tmp/uploads").is_empty());
    let r = served.write(
        "POST",
        "/api/bundles/uploads/abc/import",
        Some(json!({"dry_run": true})),
    );
    assert_eq!(r.status, 503, "{}", r.text());
}

/// The runs (run id → points, log bytes, status) the API lists for `remote`.
fn progress_of(served: &Served, remote: &str) -> Vec<(String, u64, u64, String)> {
    let page = served.json(&format!("/api/runs?remote={remote}&view=all&limit=100"));
    let mut runs: Vec<_> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["points"].as_u64().unwrap(),
                r["log_bytes"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn the_hubs_own_service_carries_runs_from_one_store_to_another() {
    let world = World::new();
    let hub = |dir: &Path| -> Arc<dyn BundleService> {
        Arc::new(runicorn_hub::bundle_service::HubBundles {
            store_dir: dir.to_owned(),
            agent_program: runicorn_tests::hub::agent_path(),
        })
    };
    let a = Served::start_with_bundles(world.hub_dir.path(), None, Some(hub(world.hub_dir.path())));
    let other = tempfile::tempdir().unwrap();
    let b = Served::start_with_bundles(other.path(), None, Some(hub(other.path())));

    let bundle = export(&a, json!({"runs": ["run00001", "run00002"]}));
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    let r = upload(&b, "from-a.rbundle", bundle.body.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let target = format!("/api/bundles/uploads/{id}/import");

    let r = b.write("POST", &target, Some(json!({"dry_run": true})));
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["bundles"][0]["file"], "from-a.rbundle", "{report}");
    assert_eq!(
        report["bundles"][0]["sources"][0]["remote"], "here",
        "{report}"
    );
    assert_eq!(report["totals"]["runs_new"], 2, "{report}");
    assert!(
        progress_of(&b, "here").is_empty(),
        "a dry run changes nothing"
    );

    let r = b.write("POST", &target, Some(json!({"dry_run": false})));
    assert_eq!(r.status, 200, "{}", r.text());
    let wanted: Vec<_> = progress_of(&a, "here")
        .into_iter()
        .filter(|(id, ..)| id != "run00000")
        .collect();
    assert_eq!(progress_of(&b, "here"), wanted);
    assert!(
        wanted
            .iter()
            .all(|(_, points, log, _)| *points > 0 && *log > 0),
        "{wanted:?}"
    );
    assert!(
        other
            .path()
            .join("tmp/uploads")
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "the upload is removed after the import"
    );

    // The same bundle again: nothing would change.
    let r = upload(&b, "again.rbundle", bundle.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = b.write(
        "POST",
        &format!("/api/bundles/uploads/{id}/import"),
        Some(json!({"dry_run": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totals"]["runs_unchanged"], 2, "{}", r.text());
    assert_eq!(r.json()["totals"]["runs_new"], 0, "{}", r.text());
}

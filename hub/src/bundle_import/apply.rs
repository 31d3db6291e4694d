//! One landed storage root into the store, the way a sync stores it: a real `runicorn-agent
//! serve --stdio` over the landed root answers `changes`, `points` and `log` exactly as it would
//! over SSH, and its answers are stored as a merge (`Store::apply_import_batch`) under the
//! source's remote. Then the files the bundle carried go into the file cache (moved, not copied:
//! the landed root is on the store's file system), the files it only listed join the manifests,
//! and a hub export's annotations fill what this hub has not annotated itself.
//!
//! Every store call here runs inside the import's one atomic step (`super::import_bundles`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runicorn_protocol::wire::{ChangeBatch, Cursor, FileEntry, LogWanted, PointsWanted, StoredAs};
use runicorn_store::{BundleAnnotations, ImportVerdict, RemoteId, RemoteSpec};
use runicorn_web::bundle_reports::{ImportedRun, ImportedSource, RunVerdict};

use super::error::ImportError;
use super::ImportObserver;
use crate::local_transport::spawn_local_agent;
use crate::remote_address::RemoteAddress;
use crate::store_thread::StoreHandle;
use crate::sync::{validate, AgentClient};

/// Runs per `changes` answer.
const CHANGES_PER_REQUEST: u32 = 2000;
/// Runs per `points` or `log` request, and their byte budgets (as a sync asks).
const RUNS_PER_REQUEST: usize = 256;
const POINT_BYTES_PER_REQUEST: u64 = 6 * 1024 * 1024;
const LOG_BYTES_PER_REQUEST: u64 = 2 * 1024 * 1024;
/// Requests in flight at once.
const REQUESTS_IN_FLIGHT: usize = 4;

/// A file of a run that the bundle carried, landed and checked.
#[derive(Debug, Clone)]
pub(crate) struct CarriedFile {
    pub run_dir: String,
    /// Relative to the run directory.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub location: PathBuf,
}

/// A file of a run that the bundle listed without its bytes.
#[derive(Debug, Clone)]
pub(crate) struct ListedFile {
    pub run_dir: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// On its host, when the bundle says (else 0).
    pub mtime: f64,
}

/// One storage root of a bundle, landed, and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct SourcePlan {
    /// The remote to store under.
    pub remote: String,
    pub host: Option<String>,
    pub root: Option<String>,
    /// The landed root.
    pub root_dir: PathBuf,
    pub carried: Vec<CarriedFile>,
    pub listed: Vec<ListedFile>,
    /// Artifact contents (SHA-256) the bundle lists without their bytes: the agent over the
    /// landed root finds them missing from the pool; they are stored as `unknown`, never as
    /// lost, and never over what the store knew of them.
    pub omitted_contents: BTreeSet<String>,
    /// Run directory → the exporting hub's annotations.
    pub annotations: BTreeMap<String, BundleAnnotations>,
    /// When the bundle was written on its host (the remote was heard from then).
    pub written_at: Option<f64>,
}

/// What storing one source did.
pub(crate) struct SourceOutcome {
    pub report: ImportedSource,
    pub points: u64,
    pub log_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
}

fn store_err(e: impl std::fmt::Display) -> ImportError {
    ImportError::Store(e.to_string())
}

fn sync_err(e: impl std::fmt::Display) -> ImportError {
    ImportError::Agent(e.to_string())
}

/// Stores one landed source (see the module doc). `dry_run` leaves the file cache alone (the
/// caller rolls the store back).
pub(crate) async fn import_source(
    store: &StoreHandle,
    plan: &SourcePlan,
    agent_program: &Path,
    dry_run: bool,
    observer: &dyn ImportObserver,
) -> Result<SourceOutcome, ImportError> {
    let started = std::time::Instant::now();
    let phase = |what: &str| {
        tracing::debug!(
            remote = plan.remote,
            ms = started.elapsed().as_millis() as u64,
            "import: {what}"
        );
    };
    let (remote, remote_created) = remote_for(store, plan).await?;
    let (at, host, root) = (plan.written_at, plan.host.clone(), plan.root.clone());
    store
        .call(move |s| s.note_heard_from_bundle(remote, at, host.as_deref(), root.as_deref()))
        .await
        .map_err(store_err)?
        .map_err(store_err)?;
    let link = spawn_local_agent(agent_program, &plan.root_dir, &["--no-pack".to_owned()])
        .map_err(|e| ImportError::Agent(e.to_string()))?;
    let client = Arc::new(AgentClient::handshake(link).await.map_err(sync_err)?);

    // The whole listing, stored as a merge; each run judged first.
    let mut runs = Vec::new();
    let mut artifacts = 0;
    // Artifact contents the listing names (SHA-256 → size), brought into the cache below.
    let mut contents: BTreeMap<String, u64> = BTreeMap::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let mut batch = client
            .changes(cursor.clone(), CHANGES_PER_REQUEST)
            .await
            .map_err(sync_err)?;
        let refused = validate::artifact_items(&mut batch);
        not_carried_is_unknown(&mut batch, &plan.omitted_contents);
        for r in &refused {
            tracing::warn!(
                remote = plan.remote,
                artifact = r.name,
                reason = r.reason,
                "artifact refused"
            );
        }
        let more = batch.more;
        cursor = Some(batch.cursor.clone());
        for file in batch
            .artifacts
            .iter()
            .flat_map(|a| &a.versions)
            .flat_map(|v| &v.files)
            .filter(|f| f.stored != StoredAs::Missing)
        {
            contents.insert(file.sha256.clone(), file.size);
        }
        let (outcome, verdicts) = store
            .call(move |s| s.apply_import_batch(remote, &batch))
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        artifacts += outcome.artifacts;
        runs.extend(verdicts);
        observer.runs_listed(runs.len() as u64);
        if !more {
            break;
        }
    }
    phase("runs listed and stored");
    let taken: HashSet<String> = runs
        .iter()
        .filter(|r| matches!(r.verdict, ImportVerdict::New | ImportVerdict::Updated))
        .map(|r| r.dir.clone())
        .collect();

    let points = fetch_points(&client, store, remote, &taken, observer).await?;
    phase("points stored");
    let log_bytes = fetch_logs(&client, store, remote, &taken).await?;
    phase("logs stored");
    drop(client); // the agent exits with its stdin closed; the landed files are ours again

    let (mut files, mut file_bytes) = cache_carried(store, remote, plan, &taken, dry_run).await?;
    let (artifact_files, artifact_bytes) =
        cache_artifact_contents(store, &plan.root_dir, contents, dry_run).await?;
    files += artifact_files;
    file_bytes += artifact_bytes;
    add_listed(store, remote, plan, &taken).await?;
    adopt_annotations(store, remote, plan, &taken).await?;
    phase("files cached");

    let report = ImportedSource {
        remote: plan.remote.clone(),
        remote_created,
        host: plan.host.clone(),
        root: plan.root.clone(),
        runs: runs
            .into_iter()
            .map(|r| ImportedRun {
                dir: r.dir,
                run_id: r.run_id,
                path: r.path,
                status: r.status,
                verdict: match r.verdict {
                    ImportVerdict::New => RunVerdict::New,
                    ImportVerdict::Updated => RunVerdict::Updated,
                    ImportVerdict::Unchanged => RunVerdict::Unchanged,
                    ImportVerdict::Older => RunVerdict::Older,
                },
            })
            .collect(),
        artifacts,
    };
    Ok(SourceOutcome {
        report,
        points,
        log_bytes,
        files,
        file_bytes,
    })
}

/// The remote named by the plan, created (known only from bundles) when the store has none.
async fn remote_for(
    store: &StoreHandle,
    plan: &SourcePlan,
) -> Result<(RemoteId, bool), ImportError> {
    let name = plan.remote.clone();
    if !runicorn_store::valid_remote_name(&name) {
        return Err(ImportError::RemoteName { name });
    }
    let address = RemoteAddress::Offline {
        host: plan.host.clone(),
        root: plan.root.clone(),
    };
    let transport = serde_json::to_value(&address).map_err(store_err)?;
    store
        .call(move |s| {
            if let Some(row) = s.remote(&name)? {
                return Ok((row.id, false));
            }
            let spec = RemoteSpec {
                name,
                address: address.display(),
                transport,
            };
            Ok::<_, runicorn_store::StoreError>((s.upsert_remote(&spec)?, true))
        })
        .await
        .map_err(store_err)?
        .map_err(store_err)
}

/// Fetches the points of the taken runs until the agent has no more to give.
async fn fetch_points(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    taken: &HashSet<String>,
    observer: &dyn ImportObserver,
) -> Result<u64, ImportError> {
    let mut stored = 0;
    let mut refused: HashSet<String> = HashSet::new();
    loop {
        let mut pending: Vec<PointsWanted> = store
            .call(move |s| s.pending_points(remote, 1_000_000))
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        pending.retain(|w| taken.contains(&w.dir) && !refused.contains(&w.dir));
        let mut progressed = false;
        // Several requests in flight, as a sync has them: the agent reads the next runs'
        // events while the store takes the last answer.
        let mut groups = pending
            .chunks(RUNS_PER_REQUEST)
            .map(<[PointsWanted]>::to_vec);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < REQUESTS_IN_FLIGHT {
                let Some(group) = groups.next() else { break };
                let (client, store) = (Arc::clone(client), store.clone());
                tasks.spawn(async move {
                    let checked = client
                        .points(group, POINT_BYTES_PER_REQUEST)
                        .await
                        .map_err(sync_err)?;
                    let (batch, refusals) = (checked.batch, checked.refused);
                    let moved = batch.runs.iter().any(|r| r.to > r.from || r.truncated);
                    let dirs: Vec<String> = refusals.iter().map(|e| e.name.clone()).collect();
                    let ingested = store
                        .call(move |s| {
                            let ingested = s.ingest_points(remote, &batch)?;
                            s.record_refusals(remote, runicorn_store::KIND_POINTS, &refusals)?;
                            Ok::<_, runicorn_store::StoreError>(ingested)
                        })
                        .await
                        .map_err(store_err)?
                        .map_err(store_err)?;
                    Ok::<_, ImportError>((ingested.points, moved, dirs))
                });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let (points, moved, dirs) =
                done.map_err(|e| ImportError::Agent(format!("a fetch task failed: {e}")))??;
            progressed |= moved;
            refused.extend(dirs);
            stored += points;
            observer.points_stored(stored);
        }
        if !progressed {
            return Ok(stored);
        }
    }
}

/// Fetches the log bytes of the taken runs until the agent has no more to give.
async fn fetch_logs(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    taken: &HashSet<String>,
) -> Result<u64, ImportError> {
    let mut stored = 0;
    let mut refused: HashSet<String> = HashSet::new();
    loop {
        let mut pending: Vec<LogWanted> = store
            .call(move |s| s.pending_logs(remote, 1_000_000))
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        pending.retain(|w| taken.contains(&w.dir) && !refused.contains(&w.dir));
        let mut progressed = false;
        for group in pending.chunks(RUNS_PER_REQUEST) {
            // A first tail starts the copy even when the log is empty.
            let first_tail = group.iter().any(|w| w.offset.is_none());
            let checked = client
                .log(group.to_vec(), LOG_BYTES_PER_REQUEST)
                .await
                .map_err(sync_err)?;
            let (batch, refusals) = (checked.batch, checked.refused);
            let bytes: u64 = batch.runs.iter().map(|r| r.to.saturating_sub(r.from)).sum();
            progressed |= bytes > 0
                || (first_tail && !batch.runs.is_empty())
                || batch.runs.iter().any(|r| r.truncated);
            refused.extend(refusals.iter().map(|e| e.name.clone()));
            store
                .call(move |s| {
                    s.ingest_logs(remote, &batch)?;
                    s.record_refusals(remote, runicorn_store::KIND_LOG, &refusals)
                })
                .await
                .map_err(store_err)?
                .map_err(store_err)?;
            stored += bytes;
        }
        if !progressed {
            return Ok(stored);
        }
    }
}

/// Moves the carried files of every run the store kept the bundle's state of into the file
/// cache and records them as cached there. In a dry run, only counts what would come in.
async fn cache_carried(
    store: &StoreHandle,
    remote: RemoteId,
    plan: &SourcePlan,
    taken: &HashSet<String>,
    dry_run: bool,
) -> Result<(u64, u64), ImportError> {
    let carried: Vec<CarriedFile> = plan
        .carried
        .iter()
        .filter(|f| taken.contains(&f.run_dir))
        .cloned()
        .collect();
    let cache = store.call(|s| s.file_cache()).await.map_err(store_err)?;
    let (files, bytes, by_run) = tokio::task::spawn_blocking(move || {
        let mut files = 0;
        let mut bytes = 0;
        let mut by_run: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for f in carried {
            let added = if dry_run {
                cache.path_of(&f.sha256).is_none()
            } else if f.location.is_file() {
                cache.adopt_checked(&f.location, &f.sha256)?
            } else {
                // Another member with the same bytes was moved in already.
                false
            };
            if added {
                files += 1;
                bytes += f.size;
            }
            by_run
                .entry(f.run_dir)
                .or_default()
                .push((f.path, f.sha256));
        }
        Ok::<_, runicorn_store::StoreError>((files, bytes, by_run))
    })
    .await
    .map_err(store_err)?
    .map_err(store_err)?;
    if !dry_run {
        store
            .call(move |s| {
                for (dir, files) in &by_run {
                    s.mark_files_cached(remote, dir, files)?;
                }
                Ok::<_, runicorn_store::StoreError>(())
            })
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
    }
    Ok((files, bytes))
}

/// Marks the artifact files whose contents the bundle did not carry as `unknown` (the agent
/// over the landed root saw them missing from its pool).
fn not_carried_is_unknown(batch: &mut ChangeBatch, omitted: &BTreeSet<String>) {
    if omitted.is_empty() {
        return;
    }
    for file in batch
        .artifacts
        .iter_mut()
        .flat_map(|a| &mut a.versions)
        .flat_map(|v| &mut v.files)
        .filter(|f| f.stored == StoredAs::Missing && omitted.contains(&f.sha256))
    {
        file.stored = StoredAs::Unknown;
    }
}

/// Brings the artifact contents the bundle carried (whole pool files, or chunks assembled by
/// their recipe, each checked against its SHA-256) into the file cache, where the dashboard and
/// `fetch artifact` read them: the remote may never be reachable. Contents of versions the
/// bundle did not carry are not in the landed root and are left out. Returns files and bytes
/// added (in a dry run: that would be).
async fn cache_artifact_contents(
    store: &StoreHandle,
    root: &Path,
    contents: BTreeMap<String, u64>,
    dry_run: bool,
) -> Result<(u64, u64), ImportError> {
    if contents.is_empty() {
        return Ok((0, 0));
    }
    let cache = store.call(|s| s.file_cache()).await.map_err(store_err)?;
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || {
        let (mut files, mut bytes) = (0, 0);
        let temp_dir = cache.root().join("tmp");
        for (sha, size) in contents {
            if cache.path_of(&sha).is_some() {
                continue;
            }
            let in_root = runicorn_artifact_store::layout::pool_file(&root, &sha).is_file()
                || runicorn_artifact_store::pool::read_recipe(&root, &sha)
                    .ok()
                    .flatten()
                    .is_some();
            if !in_root {
                continue;
            }
            if !dry_run {
                let temp = temp_dir.join(format!("{sha}.import-{}", std::process::id()));
                runicorn_artifact_store::pool::materialise(&root, &sha, &temp).map_err(|e| {
                    ImportError::Refused {
                        file: root.display().to_string(),
                        member: Some(format!("artifact content {sha}")),
                        cause: e.to_string(),
                    }
                })?;
                let adopted = cache.adopt_checked(&temp, &sha).map_err(store_err);
                let _ = std::fs::remove_file(&temp);
                adopted?;
            }
            files += 1;
            bytes += size;
        }
        Ok((files, bytes))
    })
    .await
    .map_err(store_err)?
}

/// Files the bundle listed without bytes join their runs' manifests.
async fn add_listed(
    store: &StoreHandle,
    remote: RemoteId,
    plan: &SourcePlan,
    taken: &HashSet<String>,
) -> Result<(), ImportError> {
    let mut by_run: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
    for f in plan.listed.iter().filter(|f| taken.contains(&f.run_dir)) {
        by_run
            .entry(f.run_dir.clone())
            .or_default()
            .push(FileEntry {
                path: f.path.clone(),
                size: f.size,
                mtime: f.mtime,
                sha256: Some(f.sha256.clone()),
            });
    }
    if by_run.is_empty() {
        return Ok(());
    }
    store
        .call(move |s| {
            for (dir, files) in &by_run {
                s.add_listed_files(remote, dir, files)?;
            }
            Ok::<_, runicorn_store::StoreError>(())
        })
        .await
        .map_err(store_err)?
        .map_err(store_err)
}

/// A hub export's annotations, where this hub has none of its own.
async fn adopt_annotations(
    store: &StoreHandle,
    remote: RemoteId,
    plan: &SourcePlan,
    taken: &HashSet<String>,
) -> Result<(), ImportError> {
    let notes: Vec<(String, BundleAnnotations)> = plan
        .annotations
        .iter()
        .filter(|(dir, _)| taken.contains(*dir))
        .map(|(d, a)| (d.clone(), a.clone()))
        .collect();
    if notes.is_empty() {
        return Ok(());
    }
    store
        .call(move |s| {
            for (dir, a) in &notes {
                s.adopt_annotations(remote, dir, a)?;
            }
            Ok::<_, runicorn_store::StoreError>(())
        })
        .await
        .map_err(store_err)?
        .map_err(store_err)
}

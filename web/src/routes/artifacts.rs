//! Artifacts (docs/api.md, "Artifacts"): `GET /api/artifacts` (by type, with versions, aliases,
//! sizes and bytes saved by dedup), `GET /api/artifacts/{remote}/{type}/{name}` (one artifact
//! with each version's files), `GET /api/runs/{run}/artifacts` (what a run produced and used,
//! and its upstream assets) and `GET /api/lineage` (the graph of runs and versions around a run
//! or a version). Read only; the bytes of a version's files are another route's
//! (`artifact_files`).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{
    asset_entries, ArtifactFileRow, ArtifactFilter, ArtifactRow, ArtifactVersionRow, AssetEntry,
    AssetKind, LineageBounds, LineageEdgeKind, LineageGraph, LineageNode, LineageStart, RunLinkRow,
    VersionRef,
};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::query::Params;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// Files of one version an artifact's answer lists at most (`file_count` says how many).
pub const MAX_VERSION_FILES: u64 = 1_000;
/// Depth of a lineage graph when `depth` is not given, and the most asked.
pub const DEFAULT_LINEAGE_DEPTH: u64 = 4;
pub const MAX_LINEAGE_DEPTH: u64 = 12;
/// Nodes of a lineage graph when `max_nodes` is not given, and the most asked.
pub const DEFAULT_LINEAGE_NODES: u64 = 200;
pub const MAX_LINEAGE_NODES: u64 = 2_000;

/// A run a version names: its producer or a user. `key` is the hub's run, `null` when the hub
/// does not have it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunLink"))]
pub struct RunLinkDto {
    pub run_id: String,
    pub dir: String,
    pub host: Option<String>,
    pub key: Option<i64>,
}

impl From<&RunLinkRow> for RunLinkDto {
    fn from(l: &RunLinkRow) -> Self {
        RunLinkDto {
            run_id: l.run_id.clone(),
            dir: l.dir.clone(),
            host: l.host.clone(),
            key: l.key.map(|k| k.0),
        }
    }
}

/// One version of an artifact.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ArtifactVersion"))]
pub struct ArtifactVersionDto {
    pub version: u32,
    pub created_at: Option<f64>,
    pub description: Option<String>,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub metadata: Option<Value>,
    pub size: u64,
    pub file_count: u64,
    pub aliases: Vec<String>,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub references: Value,
    pub produced_by: Option<RunLinkDto>,
    pub used_by: Vec<RunLinkDto>,
}

impl From<&ArtifactVersionRow> for ArtifactVersionDto {
    fn from(v: &ArtifactVersionRow) -> Self {
        ArtifactVersionDto {
            version: v.version,
            created_at: v.created_at,
            description: v.description.clone(),
            metadata: v.metadata.clone(),
            size: v.size,
            file_count: v.file_count,
            aliases: v.aliases.clone(),
            references: v.references.clone(),
            produced_by: v.produced_by.as_ref().map(RunLinkDto::from),
            used_by: v.used_by.iter().map(RunLinkDto::from).collect(),
        }
    }
}

/// An artifact with its versions, newest first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Artifact"))]
pub struct ArtifactDto {
    pub remote: String,
    pub host: Option<String>,
    pub dir: String,
    #[serde(rename = "type")]
    #[cfg_attr(test, ts(rename = "type"))]
    pub kind: String,
    pub name: String,
    pub problem: Option<String>,
    pub removed: bool,
    /// Sum of every version's file sizes.
    pub total_bytes: u64,
    /// Each distinct content once.
    pub stored_bytes: u64,
    /// `total_bytes - stored_bytes`: what dedup saves.
    pub saved_bytes: u64,
    /// What its contents occupy on the server after chunk-level dedup (distinct whole pool
    /// files and distinct chunks), as its agent measured it; `null` from older agents.
    pub server_bytes: Option<u64>,
    /// `total_bytes - server_bytes`: what dedup saves on the server, chunk sharing included.
    pub server_saved_bytes: Option<u64>,
    pub versions: Vec<ArtifactVersionDto>,
}

impl From<&ArtifactRow> for ArtifactDto {
    fn from(a: &ArtifactRow) -> Self {
        ArtifactDto {
            remote: a.remote.clone(),
            host: a.host.clone(),
            dir: a.dir.clone(),
            kind: a.kind.clone(),
            name: a.name.clone(),
            problem: a.problem.clone(),
            removed: a.removed,
            total_bytes: a.total_bytes,
            stored_bytes: a.stored_bytes,
            saved_bytes: a.total_bytes.saturating_sub(a.stored_bytes),
            server_bytes: a.server_bytes,
            server_saved_bytes: a.server_bytes.map(|b| a.total_bytes.saturating_sub(b)),
            versions: a.versions.iter().map(ArtifactVersionDto::from).collect(),
        }
    }
}

/// `GET /api/artifacts`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ArtifactsAnswer"))]
pub struct ArtifactsDto {
    /// By type, name, remote.
    pub artifacts: Vec<ArtifactDto>,
    /// The types listed, sorted.
    pub types: Vec<String>,
    pub total_bytes: u64,
    pub stored_bytes: u64,
    pub saved_bytes: u64,
    /// Sum of the artifacts' `server_bytes` (per artifact: a chunk two artifacts share counts
    /// in both); `null` when no listed artifact has it.
    pub server_bytes: Option<u64>,
    /// Sum of `total_bytes` over the artifacts that have `server_bytes`.
    pub server_measured_bytes: u64,
    /// `server_measured_bytes - server_bytes`.
    pub server_saved_bytes: Option<u64>,
}

/// One file of a version.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ArtifactFile"))]
pub struct ArtifactFileDto {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// `whole`, `chunked` or `missing` on the server.
    pub stored: String,
}

impl From<&ArtifactFileRow> for ArtifactFileDto {
    fn from(f: &ArtifactFileRow) -> Self {
        ArtifactFileDto {
            path: f.path.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            stored: f.stored.clone(),
        }
    }
}

/// The files of one version, by path; `truncated` when there were more than
/// [`MAX_VERSION_FILES`].
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "VersionFiles"))]
pub struct VersionFilesDto {
    pub version: u32,
    pub files: Vec<ArtifactFileDto>,
    pub truncated: bool,
}

/// `GET /api/artifacts/{remote}/{type}/{name}`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ArtifactDetail"))]
pub struct ArtifactDetailDto {
    pub artifact: ArtifactDto,
    /// One entry per version, in the order of `artifact.versions`.
    pub files: Vec<VersionFilesDto>,
}

/// A version as a run's page and the lineage graph name it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "VersionRef"))]
pub struct VersionRefDto {
    pub remote: String,
    pub host: Option<String>,
    #[serde(rename = "type")]
    #[cfg_attr(test, ts(rename = "type"))]
    pub kind: String,
    pub name: String,
    pub version: u32,
    pub aliases: Vec<String>,
    pub size: u64,
    pub created_at: Option<f64>,
    pub removed: bool,
}

impl From<&VersionRef> for VersionRefDto {
    fn from(v: &VersionRef) -> Self {
        VersionRefDto {
            remote: v.remote.clone(),
            host: v.host.clone(),
            kind: v.kind.clone(),
            name: v.name.clone(),
            version: v.version,
            aliases: v.aliases.clone(),
            size: v.size,
            created_at: v.created_at,
            removed: v.removed,
        }
    }
}

/// `GET /api/runs/{run}/artifacts`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunArtifactsAnswer"))]
pub struct RunArtifactsDto {
    pub produced: Vec<VersionRefDto>,
    pub used: Vec<VersionRefDto>,
    /// The run's upstream `assets.json` (code snapshot, datasets, pretrained models, outputs)
    /// as its server has it; `null` when it has none.
    #[cfg_attr(test, ts(type = "unknown"))]
    pub assets: Option<Value>,
    /// The run's remote: a saved asset file's bytes are
    /// `GET /api/remotes/{remote}/blobs/{sha256}`.
    pub remote: String,
    /// `assets` as a flat list, each saved one with where its bytes are on the server.
    pub asset_entries: Vec<RunAssetDto>,
}

/// One upstream asset of a run (from its `assets.json`), never with the writing machine's
/// absolute paths as locations.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunAsset"))]
pub struct RunAssetDto {
    /// `code`, `dataset`, `pretrained` or `output`.
    pub category: String,
    pub name: String,
    /// Whether the bytes were copied into the server's `archive/`.
    pub saved: bool,
    /// `file` or `dir`.
    pub kind: String,
    /// A saved file's SHA-256: its bytes are the remote's blob of that name.
    pub sha256: Option<String>,
    /// Where the saved bytes are, relative to the server's root (`archive/…`).
    pub archive: Option<String>,
    pub size: Option<u64>,
    pub file_count: Option<u64>,
    /// Where it came from on the writing machine (for display only).
    pub uri: Option<String>,
    /// An output's key, a dataset's context, a pretrained model's source type.
    pub detail: Option<String>,
    /// An output's archive mode.
    pub mode: Option<String>,
    /// Where its bytes download (`/api/remotes/{remote}/blobs/{sha256}`): a saved file held in
    /// the server's content-addressed `archive/blobs/`; `null` otherwise (a directory, a
    /// rolling copy, a file only recorded: `runicorn-hub fetch assets` copies those).
    pub download: Option<String>,
}

/// `text` as one URL path segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RunAssetDto {
    fn new(remote: &str, e: &AssetEntry) -> Self {
        let in_blob_store = e
            .archive
            .as_deref()
            .is_some_and(|a| a.starts_with("archive/blobs/"));
        let download = match (&e.sha256, e.saved, e.kind, in_blob_store) {
            (Some(sha), true, AssetKind::File, true) => {
                Some(format!("/api/remotes/{}/blobs/{sha}", path_segment(remote)))
            }
            _ => None,
        };
        RunAssetDto {
            category: e.category.as_str().to_owned(),
            name: e.name.clone(),
            saved: e.saved,
            kind: match e.kind {
                AssetKind::File => "file",
                AssetKind::Dir => "dir",
            }
            .to_owned(),
            sha256: e.sha256.clone(),
            archive: e.archive.clone(),
            size: e.size,
            file_count: e.file_count,
            uri: e.uri.clone(),
            detail: e.detail.clone(),
            mode: e.mode.clone(),
            download,
        }
    }
}

/// A run in the lineage graph; `key` is `null` for a run the hub does not have (only a
/// version names it).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "LineageRun"))]
pub struct LineageRunDto {
    pub key: Option<i64>,
    pub run_id: String,
    pub remote: String,
    pub dir: String,
    pub host: Option<String>,
    pub status: Option<String>,
}

/// A node of the lineage graph: `kind` says which of `run` and `version` it holds.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "LineageNode"))]
pub struct LineageNodeDto {
    /// Unique within the graph; edges name nodes by it.
    pub id: String,
    /// `run` or `version`.
    #[cfg_attr(test, ts(type = "\"run\" | \"version\""))]
    pub kind: &'static str,
    pub run: Option<LineageRunDto>,
    pub version: Option<VersionRefDto>,
}

impl From<&LineageNode> for LineageNodeDto {
    fn from(n: &LineageNode) -> Self {
        match n {
            LineageNode::Run { id, run } => LineageNodeDto {
                id: id.clone(),
                kind: "run",
                run: Some(LineageRunDto {
                    key: run.key.map(|k| k.0),
                    run_id: run.run_id.clone(),
                    remote: run.remote.clone(),
                    dir: run.dir.clone(),
                    host: run.host.clone(),
                    status: run.status.clone(),
                }),
                version: None,
            },
            LineageNode::Version { id, version } => LineageNodeDto {
                id: id.clone(),
                kind: "version",
                run: None,
                version: Some(VersionRefDto::from(version)),
            },
        }
    }
}

/// An edge: a run `produced` a version (run → version), or a version was `used` by a run
/// (version → run).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "LineageEdge"))]
pub struct LineageEdgeDto {
    pub from: String,
    pub to: String,
    /// `produced` or `used`.
    #[cfg_attr(test, ts(type = "\"produced\" | \"used\""))]
    pub kind: &'static str,
}

/// `GET /api/lineage`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Lineage"))]
pub struct LineageDto {
    /// The id of the node the graph starts from.
    pub root: String,
    pub nodes: Vec<LineageNodeDto>,
    pub edges: Vec<LineageEdgeDto>,
    /// True when `depth` or `max_nodes` left links out.
    pub truncated: bool,
}

impl From<&LineageGraph> for LineageDto {
    fn from(g: &LineageGraph) -> Self {
        LineageDto {
            root: g.root.clone(),
            nodes: g.nodes.iter().map(LineageNodeDto::from).collect(),
            edges: g
                .edges
                .iter()
                .map(|e| LineageEdgeDto {
                    from: e.from.clone(),
                    to: e.to.clone(),
                    kind: match e.kind {
                        LineageEdgeKind::Produced => "produced",
                        LineageEdgeKind::Used => "used",
                    },
                })
                .collect(),
            truncated: g.truncated,
        }
    }
}

/// `GET /api/artifacts?type=&remote=&removed=`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<ArtifactsDto>, ApiError> {
    let filter = ArtifactFilter {
        kind: params.short_text("type")?.map(str::to_owned),
        remote: params.short_text("remote")?.map(str::to_owned),
        include_removed: params.flag("removed", false)?,
    };
    let listing = state
        .pool
        .read(move |store| Ok(store.list_artifacts(&filter)?))
        .await?;
    let mut types: Vec<String> = listing.artifacts.iter().map(|a| a.kind.clone()).collect();
    types.sort();
    types.dedup();
    Ok(Json(ArtifactsDto {
        artifacts: listing.artifacts.iter().map(ArtifactDto::from).collect(),
        types,
        total_bytes: listing.total_bytes,
        stored_bytes: listing.stored_bytes,
        saved_bytes: listing.total_bytes.saturating_sub(listing.stored_bytes),
        server_bytes: listing.server_bytes,
        server_measured_bytes: listing.server_measured_bytes,
        server_saved_bytes: listing
            .server_bytes
            .map(|b| listing.server_measured_bytes.saturating_sub(b)),
    }))
}

fn no_artifact(remote: &str, kind: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "remote {remote:?} has no artifact {name:?} of type {kind:?}; GET /api/artifacts lists them"
    ))
}

/// `GET /api/artifacts/{remote}/{type}/{name}`.
pub async fn detail(
    State(state): State<Arc<AppState>>,
    ApiPath((remote, kind, name)): ApiPath<(String, String, String)>,
) -> Result<Json<ArtifactDetailDto>, ApiError> {
    let answer = state
        .pool
        .read(move |store| {
            let artifact = store
                .artifact_by_name(&remote, &kind, &name)?
                .ok_or_else(|| no_artifact(&remote, &kind, &name))?;
            let mut files = Vec::new();
            for v in &artifact.versions {
                let rows =
                    store.artifact_version_files(artifact.id, v.version, MAX_VERSION_FILES)?;
                files.push(VersionFilesDto {
                    version: v.version,
                    truncated: v.file_count > rows.len() as u64,
                    files: rows.iter().map(ArtifactFileDto::from).collect(),
                });
            }
            Ok(ArtifactDetailDto {
                artifact: ArtifactDto::from(&artifact),
                files,
            })
        })
        .await?;
    Ok(Json(answer))
}

/// `GET /api/runs/{run}/artifacts`.
pub async fn of_run(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<RunArtifactsDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let answer = state
        .pool
        .read(move |store| {
            let rows = store.run_artifacts(key)?;
            let assets = store.run_assets(key)?;
            let remote = store.run_by_key(key)?.map(|r| r.remote).unwrap_or_default();
            Ok(RunArtifactsDto {
                produced: rows.produced.iter().map(VersionRefDto::from).collect(),
                used: rows.used.iter().map(VersionRefDto::from).collect(),
                asset_entries: assets
                    .as_ref()
                    .map(|a| {
                        asset_entries(a)
                            .iter()
                            .map(|e| RunAssetDto::new(&remote, e))
                            .collect()
                    })
                    .unwrap_or_default(),
                assets,
                remote,
            })
        })
        .await?;
    Ok(Json(answer))
}

/// `GET /api/lineage?run=RUN` or `?artifact=REMOTE/TYPE/NAME&version=N`, with `depth` and
/// `max_nodes`.
pub async fn lineage(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<LineageDto>, ApiError> {
    let bounds = LineageBounds {
        depth: u32::try_from(params.number_in(
            "depth",
            DEFAULT_LINEAGE_DEPTH,
            1,
            MAX_LINEAGE_DEPTH,
        )?)
        .unwrap_or(u32::MAX),
        max_nodes: usize::try_from(params.number_in(
            "max_nodes",
            DEFAULT_LINEAGE_NODES,
            1,
            MAX_LINEAGE_NODES,
        )?)
        .unwrap_or(usize::MAX),
    };
    let run = params.short_text("run")?.map(str::to_owned);
    let artifact = params.short_text("artifact")?.map(str::to_owned);
    let start = match (run, artifact) {
        (Some(run), None) => Start::Run(resolve_run(&state, &run).await?),
        (None, Some(artifact)) => {
            let mut parts = artifact.splitn(3, '/');
            let (Some(remote), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiError::bad_request(format!(
                    "parameter artifact={artifact:?} is not REMOTE/TYPE/NAME (as GET /api/artifacts \
                     lists them)"
                )));
            };
            let version = params.integer("version")?.ok_or_else(|| {
                ApiError::bad_request(
                    "parameter version is needed with artifact= (a version number, 3 for v3)",
                )
            })?;
            let version = u32::try_from(version).map_err(|_| {
                ApiError::bad_request(format!(
                    "parameter version={version} is not a version number"
                ))
            })?;
            Start::Version {
                remote: remote.to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                version,
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give one of run=RUN or artifact=REMOTE/TYPE/NAME&version=N",
            ))
        }
    };
    let graph = state
        .pool
        .read(move |store| {
            let start = match start {
                Start::Run(key) => LineageStart::Run(key),
                Start::Version {
                    remote,
                    kind,
                    name,
                    version,
                } => {
                    let artifact = store
                        .artifact_by_name(&remote, &kind, &name)?
                        .ok_or_else(|| no_artifact(&remote, &kind, &name))?;
                    LineageStart::Version {
                        artifact: artifact.id,
                        version,
                    }
                }
            };
            store.lineage(start, bounds)?.ok_or_else(|| {
                ApiError::not_found(match start {
                    LineageStart::Run(key) => format!("run {} does not exist", key.0),
                    LineageStart::Version { version, .. } => {
                        format!("the artifact has no version v{version}")
                    }
                })
            })
        })
        .await?;
    Ok(Json(LineageDto::from(&graph)))
}

/// Where a lineage request starts, before the store resolves an artifact's name.
enum Start {
    Run(runicorn_store::RunKey),
    Version {
        remote: String,
        kind: String,
        name: String,
        version: u32,
    },
}

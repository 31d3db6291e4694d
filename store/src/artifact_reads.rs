//! The read side of artifacts (schema 6's `artifacts`, `artifact_versions`, `artifact_aliases`,
//! `artifact_files`, `artifact_usage`, and `runs.assets`): listings by type with versions,
//! aliases, sizes and bytes saved by dedup; one version's files; what a run produced and used;
//! and the lineage graph around a run or a version. The sync writes those tables
//! (`artifacts.rs`); nothing here writes.
//!
//! A version names its producing run (and each user) by run id and run directory on the
//! artifact's remote. That is resolved to a run of the hub ([`RunKey`]) the same way everywhere
//! ([`Store::resolve_run_link`]): the run of the same remote with that directory; failing that,
//! the one run of any remote with that run id (none when several have it). Such a link works both
//! ways: a run's page lists the versions whose links resolve to it.
//!
//! Sizes count whole files: `stored_bytes` counts each distinct content (SHA-256) once, so
//! `total_bytes - stored_bytes` is what whole-file dedup saves. `server_bytes` is the agent's
//! measure at chunk level (distinct whole pool files plus distinct chunks, per artifact), so
//! `total_bytes - server_bytes` is what dedup saves on the server, chunk sharing included.

use std::collections::{HashMap, HashSet, VecDeque};

use rusqlite::OptionalExtension;
use serde_json::Value;

use crate::error::SqliteContext;
use crate::sql::from_sql_int;
use crate::{RemoteId, RunKey, Store, StoreError};

/// An artifact's id in this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactId(pub i64);

/// A run named by a version (its producer or a user), and the hub's run it resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLinkRow {
    pub run_id: String,
    /// The run's directory on the artifact's remote.
    pub dir: String,
    pub host: Option<String>,
    /// The hub's run, when the hub has it.
    pub key: Option<RunKey>,
}

/// One version of an artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactVersionRow {
    pub version: u32,
    pub created_at: Option<f64>,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    /// Bytes of its files.
    pub size: u64,
    pub file_count: u64,
    /// The aliases pointing at it (`latest` among them when it is the newest), by name.
    pub aliases: Vec<String>,
    /// Its references (URIs it names without holding their bytes), as synced.
    pub references: Value,
    pub produced_by: Option<RunLinkRow>,
    pub used_by: Vec<RunLinkRow>,
}

/// An artifact with its versions, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRow {
    pub id: ArtifactId,
    pub remote: String,
    /// The remote's host, as its agent reported it.
    pub host: Option<String>,
    /// `artifacts/<type>/<name>` on the remote.
    pub dir: String,
    pub kind: String,
    pub name: String,
    /// What the agent could not read.
    pub problem: Option<String>,
    /// Gone from its server (kept, like runs).
    pub removed: bool,
    pub versions: Vec<ArtifactVersionRow>,
    /// Sum of the sizes of every version's files.
    pub total_bytes: u64,
    /// Each distinct content counted once.
    pub stored_bytes: u64,
    /// What its contents occupy on the server after chunk-level dedup, as the agent measured
    /// it (`ArtifactChange::stored_bytes`); `None` from agents that do not measure it.
    pub server_bytes: Option<u64>,
}

/// Which artifacts a listing holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactFilter {
    /// Only this type.
    pub kind: Option<String>,
    /// Only this remote (by name).
    pub remote: Option<String>,
    /// Also those gone from their servers.
    pub include_removed: bool,
}

/// A listing and its sizes over all the artifacts it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactListing {
    /// By type, then name, then remote.
    pub artifacts: Vec<ArtifactRow>,
    pub total_bytes: u64,
    /// Each distinct content counted once, across every artifact listed.
    pub stored_bytes: u64,
    /// The sum of the listed artifacts' [`ArtifactRow::server_bytes`] (per artifact: chunks
    /// shared between two artifacts count in both), over those that have it.
    pub server_bytes: Option<u64>,
    /// The sum of [`ArtifactRow::total_bytes`] over the artifacts that have `server_bytes`, to
    /// compare with it.
    pub server_measured_bytes: u64,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFileRow {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// `whole`, `chunked` or `missing` on the server.
    pub stored: String,
}

/// A version as a run's page or the lineage graph names it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRef {
    pub artifact: ArtifactId,
    pub remote: String,
    pub host: Option<String>,
    pub kind: String,
    pub name: String,
    pub version: u32,
    pub aliases: Vec<String>,
    pub size: u64,
    pub created_at: Option<f64>,
    pub removed: bool,
}

/// What a run produced and used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArtifactRows {
    pub produced: Vec<VersionRef>,
    pub used: Vec<VersionRef>,
}

/// Where a lineage graph starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineageStart {
    Run(RunKey),
    Version { artifact: ArtifactId, version: u32 },
}

/// A run in the lineage graph: a run of the hub (`key`), or one only a version names.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageRun {
    pub key: Option<RunKey>,
    pub run_id: String,
    pub remote: String,
    pub dir: String,
    pub host: Option<String>,
    /// The run's status, when the hub has it.
    pub status: Option<String>,
}

/// A node of the lineage graph; `id` is unique within one graph.
#[derive(Debug, Clone, PartialEq)]
pub enum LineageNode {
    Run { id: String, run: LineageRun },
    Version { id: String, version: VersionRef },
}

impl LineageNode {
    pub fn id(&self) -> &str {
        match self {
            LineageNode::Run { id, .. } | LineageNode::Version { id, .. } => id,
        }
    }
}

/// How a run and a version are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineageEdgeKind {
    /// run → version
    Produced,
    /// version → run
    Used,
}

/// An edge, from node id to node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageEdge {
    pub from: String,
    pub to: String,
    pub kind: LineageEdgeKind,
}

/// The nodes within `depth` links of the start (the start first), at most `max_nodes` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageGraph {
    pub root: String,
    pub nodes: Vec<LineageNode>,
    pub edges: Vec<LineageEdge>,
    /// True when the depth or node bound left links out.
    pub truncated: bool,
}

/// Bounds of a lineage graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineageBounds {
    pub depth: u32,
    pub max_nodes: usize,
}

impl Default for LineageBounds {
    fn default() -> Self {
        LineageBounds {
            depth: 4,
            max_nodes: 200,
        }
    }
}

/// Columns of an artifact row, with its remote's name and host.
const ARTIFACT_COLUMNS: &str = "a.id, m.name, m.agent_host, a.dir, a.type, a.name, a.problem, \
     a.removed, a.stored_bytes FROM artifacts a JOIN remotes m ON m.id = a.remote";

/// A run, before resolution: remote, directory, run id, host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LinkKey {
    remote: RemoteId,
    dir: String,
    run_id: String,
}

impl Store {
    /// Artifacts by type, name and remote, each with its versions (newest first).
    pub fn list_artifacts(&self, filter: &ArtifactFilter) -> Result<ArtifactListing, StoreError> {
        let mut sql = format!("SELECT {ARTIFACT_COLUMNS} WHERE 1 = 1");
        let mut params: Vec<String> = Vec::new();
        if let Some(kind) = &filter.kind {
            params.push(kind.clone());
            sql.push_str(&format!(" AND a.type = ?{}", params.len()));
        }
        if let Some(remote) = &filter.remote {
            params.push(remote.clone());
            sql.push_str(&format!(" AND m.name = ?{}", params.len()));
        }
        if !filter.include_removed {
            sql.push_str(" AND a.removed = 0");
        }
        sql.push_str(" ORDER BY a.type, a.name, m.name");
        let heads = self.artifact_heads(&sql, rusqlite::params_from_iter(params.iter()))?;
        let mut listing = ArtifactListing::default();
        for head in heads {
            let row = self.complete_artifact(head)?;
            listing.total_bytes += row.total_bytes;
            if let Some(bytes) = row.server_bytes {
                listing.server_bytes = Some(listing.server_bytes.unwrap_or(0) + bytes);
                listing.server_measured_bytes += row.total_bytes;
            }
            listing.artifacts.push(row);
        }
        let ids: Vec<i64> = listing.artifacts.iter().map(|a| a.id.0).collect();
        listing.stored_bytes = self.distinct_content_bytes(&ids)?;
        Ok(listing)
    }

    /// The artifact `type`/`name` of remote `remote`, whether or not it is still on its server.
    pub fn artifact_by_name(
        &self,
        remote: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<ArtifactRow>, StoreError> {
        let sql =
            format!("SELECT {ARTIFACT_COLUMNS} WHERE m.name = ?1 AND a.type = ?2 AND a.name = ?3");
        let head = self.artifact_heads(&sql, rusqlite::params![remote, kind, name])?;
        head.into_iter()
            .next()
            .map(|h| self.complete_artifact(h))
            .transpose()
    }

    /// The artifact with this id.
    pub fn artifact(&self, id: ArtifactId) -> Result<Option<ArtifactRow>, StoreError> {
        let sql = format!("SELECT {ARTIFACT_COLUMNS} WHERE a.id = ?1");
        let head = self.artifact_heads(&sql, [id.0])?;
        head.into_iter()
            .next()
            .map(|h| self.complete_artifact(h))
            .transpose()
    }

    /// The files of one version by path, at most `limit` of them.
    pub fn artifact_version_files(
        &self,
        artifact: ArtifactId,
        version: u32,
        limit: u64,
    ) -> Result<Vec<ArtifactFileRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, size, sha256, stored FROM artifact_files
                  WHERE artifact = ?1 AND version = ?2 ORDER BY path LIMIT ?3",
            )
            .at(p)?;
        let rows = stmt
            .query_map(
                rusqlite::params![artifact.0, version, crate::sql::to_sql_int(limit)],
                |r| {
                    Ok(ArtifactFileRow {
                        path: r.get(0)?,
                        size: from_sql_int(r.get(1)?),
                        sha256: r.get(2)?,
                        stored: r.get(3)?,
                    })
                },
            )
            .at(p)?
            .collect::<Result<Vec<_>, _>>()
            .at(p)?;
        Ok(rows)
    }

    /// The hub's run a version's link names: the run of `remote` at `dir`, else the one run of
    /// any remote with `run_id` (none when several runs have that id).
    pub fn resolve_run_link(
        &self,
        remote: RemoteId,
        dir: &str,
        run_id: &str,
    ) -> Result<Option<RunKey>, StoreError> {
        let p = &self.db_path;
        let same_dir: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM runs WHERE remote = ?1 AND dir = ?2")
            .and_then(|mut s| {
                s.query_row(rusqlite::params![remote.0, dir], |r| r.get(0))
                    .optional()
            })
            .at(p)?;
        if let Some(key) = same_dir {
            return Ok(Some(RunKey(key)));
        }
        if run_id.is_empty() {
            return Ok(None);
        }
        let by_id: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM runs WHERE run_id = ?1 LIMIT 2")
            .and_then(|mut s| {
                s.query_map([run_id], |r| r.get(0))?
                    .collect::<Result<Vec<i64>, _>>()
            })
            .at(p)?;
        Ok(match by_id.as_slice() {
            [one] => Some(RunKey(*one)),
            _ => None,
        })
    }

    /// The versions a run produced and used (by type, name, version). A run the hub does not
    /// have gives empty lists.
    pub fn run_artifacts(&self, run: RunKey) -> Result<RunArtifactRows, StoreError> {
        let Some((remote, dir, run_id)) = self.run_link_of(run)? else {
            return Ok(RunArtifactRows::default());
        };
        let (produced, used) = self.linked_versions(remote, &dir, &run_id, Some(run))?;
        let mut out = RunArtifactRows::default();
        for (artifact, version) in produced {
            out.produced.extend(self.version_ref(artifact, version)?);
        }
        for (artifact, version) in used {
            out.used.extend(self.version_ref(artifact, version)?);
        }
        let order = |v: &VersionRef| (v.kind.clone(), v.name.clone(), v.remote.clone(), v.version);
        out.produced.sort_by_key(order);
        out.used.sort_by_key(order);
        Ok(out)
    }

    /// A run's upstream assets (`assets.json`: code snapshot, datasets, pretrained models,
    /// outputs) as synced; `None` when the run has none or the hub does not have the run.
    pub fn run_assets(&self, run: RunKey) -> Result<Option<Value>, StoreError> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT assets FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row([run.0], |r| r.get(0)).optional())
            .at(&self.db_path)?
            .flatten();
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The lineage graph around `start`: runs and versions linked by "produced" (run → version)
    /// and "used" (version → run), breadth first within `bounds`. `None` when the start does not
    /// exist.
    pub fn lineage(
        &self,
        start: LineageStart,
        bounds: LineageBounds,
    ) -> Result<Option<LineageGraph>, StoreError> {
        let first = match start {
            LineageStart::Run(key) => match self.lineage_run_node(key)? {
                Some(n) => n,
                None => return Ok(None),
            },
            LineageStart::Version { artifact, version } => {
                match self.version_ref(artifact, version)? {
                    Some(v) => LineageNode::Version {
                        id: version_node_id(artifact, version),
                        version: v,
                    },
                    None => return Ok(None),
                }
            }
        };
        let mut graph = LineageGraph {
            root: first.id().to_owned(),
            nodes: Vec::new(),
            edges: Vec::new(),
            truncated: false,
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut edges_seen: HashSet<(String, String)> = HashSet::new();
        let mut queue: VecDeque<(usize, u32)> = VecDeque::new();
        seen.insert(first.id().to_owned(), 0);
        graph.nodes.push(first);
        queue.push_back((0, 0));
        while let Some((index, depth)) = queue.pop_front() {
            let neighbours = self.lineage_neighbours(&graph.nodes[index])?;
            let here = graph.nodes[index].id().to_owned();
            for (node, kind) in neighbours {
                let there = node.id().to_owned();
                if !seen.contains_key(&there) {
                    if depth >= bounds.depth || graph.nodes.len() >= bounds.max_nodes {
                        graph.truncated = true;
                        continue;
                    }
                    seen.insert(there.clone(), graph.nodes.len());
                    graph.nodes.push(node);
                    queue.push_back((graph.nodes.len() - 1, depth + 1));
                }
                let (from, to) = match kind {
                    LineageEdgeKind::Produced if here.starts_with("run:") => (here.clone(), there),
                    LineageEdgeKind::Produced => (there, here.clone()),
                    LineageEdgeKind::Used if here.starts_with("run:") => (there, here.clone()),
                    LineageEdgeKind::Used => (here.clone(), there),
                };
                if edges_seen.insert((from.clone(), to.clone())) {
                    graph.edges.push(LineageEdge { from, to, kind });
                }
            }
        }
        Ok(Some(graph))
    }

    // ---- helpers ----

    fn artifact_heads<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<ArtifactRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self.conn.prepare(sql).at(p)?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(ArtifactRow {
                    id: ArtifactId(r.get(0)?),
                    remote: r.get(1)?,
                    host: r.get(2)?,
                    dir: r.get(3)?,
                    kind: r.get(4)?,
                    name: r.get(5)?,
                    problem: r.get(6)?,
                    removed: r.get::<_, i64>(7)? != 0,
                    versions: Vec::new(),
                    total_bytes: 0,
                    stored_bytes: 0,
                    server_bytes: r.get::<_, Option<i64>>(8)?.map(from_sql_int),
                })
            })
            .at(p)?
            .collect::<Result<Vec<_>, _>>()
            .at(p)?;
        Ok(rows)
    }

    /// Fills in an artifact's versions and sizes.
    fn complete_artifact(&self, mut row: ArtifactRow) -> Result<ArtifactRow, StoreError> {
        let p = &self.db_path;
        let remote = self.artifact_remote(row.id)?;
        let aliases = self.artifact_aliases(row.id)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.version, v.created_at, v.description, v.metadata, v.size, v.refs,
                        v.produced_run_id, v.produced_dir, v.produced_host,
                        (SELECT count(*) FROM artifact_files f
                          WHERE f.artifact = v.artifact AND f.version = v.version)
                   FROM artifact_versions v WHERE v.artifact = ?1 ORDER BY v.version DESC",
            )
            .at(p)?;
        type Raw = (
            u32,
            Option<f64>,
            Option<String>,
            Option<String>,
            i64,
            String,
        );
        type RawLink = (Option<String>, Option<String>, Option<String>, i64);
        let raws: Vec<(Raw, RawLink)> = stmt
            .query_map([row.id.0], |r| {
                Ok((
                    (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ),
                    (r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?),
                ))
            })
            .at(p)?
            .collect::<Result<Vec<_>, _>>()
            .at(p)?;
        drop(stmt);
        for ((version, created_at, description, metadata, size, refs), link) in raws {
            let (run_id, dir, host, files) = link;
            let produced_by = match (run_id, dir) {
                (None, None) => None,
                (run_id, dir) => {
                    let run_id = run_id.unwrap_or_default();
                    let dir = dir.unwrap_or_default();
                    let key = self.resolve_run_link(remote, &dir, &run_id)?;
                    Some(RunLinkRow {
                        run_id,
                        dir,
                        host,
                        key,
                    })
                }
            };
            row.total_bytes += from_sql_int(size);
            row.versions.push(ArtifactVersionRow {
                version,
                created_at,
                description,
                metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
                size: from_sql_int(size),
                file_count: from_sql_int(files),
                aliases: aliases
                    .iter()
                    .filter(|(_, v)| *v == version)
                    .map(|(a, _)| a.clone())
                    .collect(),
                references: serde_json::from_str(&refs).unwrap_or(Value::Array(vec![])),
                produced_by,
                used_by: self.version_users(row.id, remote, version)?,
            });
        }
        row.stored_bytes = self.distinct_content_bytes(&[row.id.0])?;
        Ok(row)
    }

    fn artifact_remote(&self, id: ArtifactId) -> Result<RemoteId, StoreError> {
        self.conn
            .prepare_cached("SELECT remote FROM artifacts WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.0], |r| r.get(0)))
            .map(RemoteId)
            .at(&self.db_path)
    }

    /// (alias, version) of an artifact, by alias.
    fn artifact_aliases(&self, id: ArtifactId) -> Result<Vec<(String, u32)>, StoreError> {
        let p = &self.db_path;
        self.conn
            .prepare_cached(
                "SELECT alias, version FROM artifact_aliases WHERE artifact = ?1
                  ORDER BY alias = 'latest' DESC, alias",
            )
            .and_then(|mut s| {
                s.query_map([id.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .at(p)
    }

    fn version_users(
        &self,
        id: ArtifactId,
        remote: RemoteId,
        version: u32,
    ) -> Result<Vec<RunLinkRow>, StoreError> {
        let p = &self.db_path;
        let raw: Vec<(String, String, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT run_id, dir, host FROM artifact_usage
                  WHERE artifact = ?1 AND version = ?2 ORDER BY dir",
            )
            .and_then(|mut s| {
                s.query_map(rusqlite::params![id.0, version], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .at(p)?;
        raw.into_iter()
            .map(|(run_id, dir, host)| {
                let key = self.resolve_run_link(remote, &dir, &run_id)?;
                Ok(RunLinkRow {
                    run_id,
                    dir,
                    host,
                    key,
                })
            })
            .collect()
    }

    /// Bytes of the distinct contents of these artifacts' files.
    fn distinct_content_bytes(&self, ids: &[i64]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let p = &self.db_path;
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT coalesce(sum(size), 0) FROM (SELECT sha256, max(size) AS size
               FROM artifact_files WHERE artifact IN ({list}) GROUP BY sha256)"
        );
        let bytes: i64 = self.conn.query_row(&sql, [], |r| r.get(0)).at(p)?;
        Ok(from_sql_int(bytes))
    }

    /// A run's remote, directory and run id.
    fn run_link_of(&self, run: RunKey) -> Result<Option<(RemoteId, String, String)>, StoreError> {
        self.conn
            .prepare_cached("SELECT remote, dir, run_id FROM runs WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([run.0], |r| Ok((RemoteId(r.get(0)?), r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .at(&self.db_path)
    }

    /// The versions a run produced and used, as (artifact, version). A run of the hub (`key`)
    /// takes every link that resolves to it; a run the hub lacks takes the links of its remote
    /// and directory.
    #[allow(clippy::type_complexity)]
    fn linked_versions(
        &self,
        remote: RemoteId,
        dir: &str,
        run_id: &str,
        key: Option<RunKey>,
    ) -> Result<(Vec<(ArtifactId, u32)>, Vec<(ArtifactId, u32)>), StoreError> {
        let p = &self.db_path;
        let mut out = (Vec::new(), Vec::new());
        let queries = [
            "SELECT v.artifact, v.version, a.remote, v.produced_dir, v.produced_run_id
               FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact
              WHERE (a.remote = ?1 AND v.produced_dir = ?2) OR v.produced_run_id = ?3",
            "SELECT u.artifact, u.version, a.remote, u.dir, u.run_id
               FROM artifact_usage u JOIN artifacts a ON a.id = u.artifact
              WHERE (a.remote = ?1 AND u.dir = ?2) OR u.run_id = ?3",
        ];
        for (i, sql) in queries.iter().enumerate() {
            type Raw = (i64, u32, i64, Option<String>, Option<String>);
            let raws: Vec<Raw> = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![remote.0, dir, run_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .at(p)?;
            for (artifact, version, link_remote, link_dir, link_run) in raws {
                let link = LinkKey {
                    remote: RemoteId(link_remote),
                    dir: link_dir.unwrap_or_default(),
                    run_id: link_run.unwrap_or_default(),
                };
                let ours = match key {
                    Some(key) => {
                        self.resolve_run_link(link.remote, &link.dir, &link.run_id)? == Some(key)
                    }
                    None => link.remote == remote && link.dir == dir,
                };
                if ours {
                    let list = if i == 0 { &mut out.0 } else { &mut out.1 };
                    if !list.contains(&(ArtifactId(artifact), version)) {
                        list.push((ArtifactId(artifact), version));
                    }
                }
            }
        }
        Ok(out)
    }

    /// A version as the run page and the lineage graph show it.
    fn version_ref(
        &self,
        artifact: ArtifactId,
        version: u32,
    ) -> Result<Option<VersionRef>, StoreError> {
        let p = &self.db_path;
        let found = self
            .conn
            .prepare_cached(
                "SELECT m.name, m.agent_host, a.type, a.name, a.removed, v.size, v.created_at
                   FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact
                   JOIN remotes m ON m.id = a.remote
                  WHERE v.artifact = ?1 AND v.version = ?2",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![artifact.0, version], |r| {
                    Ok(VersionRef {
                        artifact,
                        remote: r.get(0)?,
                        host: r.get(1)?,
                        kind: r.get(2)?,
                        name: r.get(3)?,
                        removed: r.get::<_, i64>(4)? != 0,
                        size: from_sql_int(r.get(5)?),
                        created_at: r.get(6)?,
                        version,
                        aliases: Vec::new(),
                    })
                })
                .optional()
            })
            .at(p)?;
        let Some(mut found) = found else {
            return Ok(None);
        };
        found.aliases = self
            .artifact_aliases(artifact)?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(a, _)| a)
            .collect();
        Ok(Some(found))
    }

    fn lineage_run_node(&self, key: RunKey) -> Result<Option<LineageNode>, StoreError> {
        let run = self
            .conn
            .prepare_cached(
                "SELECT r.run_id, m.name, r.dir, r.hostname, r.status
                   FROM runs r JOIN remotes m ON m.id = r.remote WHERE r.id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([key.0], |r| {
                    Ok(LineageRun {
                        key: Some(key),
                        run_id: r.get(0)?,
                        remote: r.get(1)?,
                        dir: r.get(2)?,
                        host: r.get(3)?,
                        status: r.get(4)?,
                    })
                })
                .optional()
            })
            .at(&self.db_path)?;
        Ok(run.map(|run| LineageNode::Run {
            id: format!("run:{}", key.0),
            run,
        }))
    }

    /// A version's link as a node: the hub's run when it has it, else the run as named.
    fn link_node(&self, remote: RemoteId, link: &RunLinkRow) -> Result<LineageNode, StoreError> {
        if let Some(key) = link.key {
            if let Some(node) = self.lineage_run_node(key)? {
                return Ok(node);
            }
        }
        Ok(LineageNode::Run {
            id: format!("run:{}:{}", remote.0, link.dir),
            run: LineageRun {
                key: None,
                run_id: link.run_id.clone(),
                remote: self.remote_name(remote)?,
                dir: link.dir.clone(),
                host: link.host.clone(),
                status: None,
            },
        })
    }

    /// The nodes one link away, with the kind of link.
    fn lineage_neighbours(
        &self,
        node: &LineageNode,
    ) -> Result<Vec<(LineageNode, LineageEdgeKind)>, StoreError> {
        let mut out = Vec::new();
        match node {
            LineageNode::Run { run, id } => {
                let (remote, dir, run_id, key) = match run.key {
                    Some(key) => match self.run_link_of(key)? {
                        Some((remote, dir, run_id)) => (remote, dir, run_id, Some(key)),
                        None => return Ok(out),
                    },
                    None => {
                        // id is `run:<remote>:<dir>` for a run the hub lacks.
                        let remote = id
                            .strip_prefix("run:")
                            .and_then(|rest| rest.split_once(':'))
                            .and_then(|(r, _)| r.parse::<i64>().ok());
                        let Some(remote) = remote else {
                            return Ok(out);
                        };
                        (RemoteId(remote), run.dir.clone(), run.run_id.clone(), None)
                    }
                };
                let (produced, used) = self.linked_versions(remote, &dir, &run_id, key)?;
                for (list, kind) in [
                    (produced, LineageEdgeKind::Produced),
                    (used, LineageEdgeKind::Used),
                ] {
                    for (artifact, version) in list {
                        if let Some(v) = self.version_ref(artifact, version)? {
                            out.push((
                                LineageNode::Version {
                                    id: version_node_id(artifact, version),
                                    version: v,
                                },
                                kind,
                            ));
                        }
                    }
                }
            }
            LineageNode::Version { version, .. } => {
                let remote = self.artifact_remote(version.artifact)?;
                let producer = self
                    .conn
                    .prepare_cached(
                        "SELECT produced_run_id, produced_dir, produced_host FROM artifact_versions
                          WHERE artifact = ?1 AND version = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            rusqlite::params![version.artifact.0, version.version],
                            |r| {
                                Ok((
                                    r.get::<_, Option<String>>(0)?,
                                    r.get::<_, Option<String>>(1)?,
                                    r.get::<_, Option<String>>(2)?,
                                ))
                            },
                        )
                        .optional()
                    })
                    .at(&self.db_path)?;
                if let Some((run_id, dir, host)) = producer {
                    if run_id.is_some() || dir.is_some() {
                        let run_id = run_id.unwrap_or_default();
                        let dir = dir.unwrap_or_default();
                        let key = self.resolve_run_link(remote, &dir, &run_id)?;
                        let link = RunLinkRow {
                            run_id,
                            dir,
                            host,
                            key,
                        };
                        out.push((self.link_node(remote, &link)?, LineageEdgeKind::Produced));
                    }
                }
                for link in self.version_users(version.artifact, remote, version.version)? {
                    out.push((self.link_node(remote, &link)?, LineageEdgeKind::Used));
                }
            }
        }
        Ok(out)
    }
}

fn version_node_id(artifact: ArtifactId, version: u32) -> String {
    format!("ver:{}:{}", artifact.0, version)
}

#[cfg(test)]
mod tests;

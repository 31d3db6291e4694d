//! The hub's store: SQLite (WAL) for everything that is queried, and a content-addressed file
//! cache beside it, in one folder (`$RUNICORN_HUB_DIR`, else the platform's data directory).
//!
//! The hub's sync writes it through one [`Store`] (blocking calls, on a dedicated thread):
//! [`Store::apply_change_batch`], [`Store::ingest_points`] and [`Store::ingest_logs`] take the
//! agent's batches as they arrive, each in one transaction, idempotently, after checking every
//! path the peer sent. The dashboard reads through stores opened with
//! [`Store::open_read_only`]; WAL lets them read while the sync writes.
//!
//! Modules form layers; each imports only from the layers above it (no cycles):
//!
//! | layer | module | owns |
//! |---|---|---|
//! | plain | `error` | [`StoreError`]: messages that name the file and what to do |
//! | plain | `ids` | [`RemoteId`], [`RunKey`]: the typed integer keys |
//! | plain | `sql` | SQL conversions: the clock, wire integers, multi-row `INSERT` text |
//! | plain | `file_cache` | the content-addressed file cache on disk (no SQLite) |
//! | derived | `run_values` | the side table that summary and config sorts read; [`flatten_config`] |
//! | derived | `tiles` | the point tile pyramid and its upkeep during ingest |
//! | plain | `run_assets` | a run's upstream `assets.json` as [`AssetEntry`] values with root-relative archive locations (never the writer's absolute paths) |
//! | language | `run_query` | the filter language: [`RunQuery`], its parser ([`FilterError`] with positions), its SQL |
//! | schema | `schema` | tables, indexes, SQL-only migrations, `rebuild_derived` after them |
//! | facade | `store` | [`Store`]: opening, folder, SQLite settings, `default_dir` |
//! | tables | `remotes` | remotes, their state and cursor |
//! | tables | `runs` | the read side's types and per-run reads: records, metric keys, manifests |
//! | tables | `skipped` | what could not be synced and why: skipped runs per remote, skipped files per run |
//! | tables | `files` | a run's files in the file cache |
//! | tables | `host_snapshots` | each remote's latest host sample (GPUs, their runs, load; schema 7) and the runs it names |
//! | tables | `cache_gc` | what the file cache holds (in all, per remote) and trimming it, least recently used first |
//! | tables | `changes` | applying change batches: runs, manifests, removals, full listings |
//! | tables | `alerts` | the agents' alerts about runs (schema 8): stored insert-if-new with change batches, listed, acknowledged |
//! | tables | `artifacts` | applying the artifacts of change batches (schema 6): versions, aliases, files, lineage |
//! | tables | `points` | ingesting metric points (the hot path) |
//! | tables | `logs` | the copy of each run's `logs.txt` |
//! | tables | `pending` | what to fetch next |
//! | tables | `prefetch` | which uncached files a prefetch policy wants, within a per-run budget |
//! | tables | `listing` | run listings (filters, sorts, paging), counts, path counts, column keys |
//! | tables | `annotations` | the hub's own edits of a run: alias, tags, notes, recycle bin |
//! | tables | `artifact_reads` | artifacts, versions, files, a run's produced and used versions, lineage graphs (read only) |
//! | tables | `purge` | deleting runs of the recycle bin for good; purged runs stay out of later syncs |
//! | tables | `run_ref` | run references (key, run id, `REMOTE/RUN_ID`) and their resolution |
//! | tables | `series` | metric series: downsampled (min/max per bucket) from the tiles, raw, live tails |
//! | tables | `content_chunks` | the hub's cache of artifact contents held as chunks (`files/chunks/`), their `content_chunks` rows, reading a cached content from any offset |
//! | tables | `artifact_refs` | resolving `NAME:REF` (latest, vN, alias) to one artifact version and its files |
//! | tables | `export` | what the store holds of a run as its files, for bundles: records as stored, `events.jsonl` rebuilt from the points, the hub's annotations |
//! | tables | `series_stats` | whole-series count, last point, min and max (from the top tile level) |
//!
//! The `tables` modules each add methods to [`Store`] (`impl Store` blocks) and may use the
//! free functions of the layers above them, and of each other without cycles (`changes` uses
//! `skipped`, `remotes` uses `skipped`'s row type, `listing` and `annotations` use `runs`).

mod alerts;
mod annotations;
mod artifact_reads;
mod artifact_refs;
mod artifacts;
mod cache_gc;
mod changes;
mod content_chunks;
mod error;
mod export;
mod file_cache;
mod files;
mod host_snapshots;
mod ids;
mod imports;
mod listing;
mod logs;
mod pending;
mod points;
mod prefetch;
mod purge;
mod remotes;
mod run_assets;
mod run_query;
mod run_ref;
mod run_values;
mod runs;
mod schema;
mod series;
mod series_stats;
mod skipped;
mod sql;
mod store;
#[cfg(test)]
mod testkit;
mod tiles;

pub use alerts::{AlertRow, AlertView};
pub use annotations::RunAnnotation;
pub use artifact_reads::{
    ArtifactFileRow, ArtifactFilter, ArtifactId, ArtifactListing, ArtifactRow, ArtifactVersionRow,
    LineageBounds, LineageEdge, LineageEdgeKind, LineageGraph, LineageNode, LineageRun,
    LineageStart, RunArtifactRows, RunLinkRow, VersionRef,
};
pub use artifact_refs::{split_reference, ArtifactRefError, ResolvedVersion};
pub use cache_gc::{CacheEntry, CacheGcReport, CacheUsage, RemoteCacheUsage};
pub use changes::{ChangeOutcome, MAX_RECORD_DEPTH};
pub use content_chunks::{
    hash_content, layout_on_disk, CachedLayout, ChunkCache, ChunkRefused, ContentChunk,
    ContentReader, CHUNKS_DIR,
};
pub use error::StoreError;
pub use export::{EventsWritten, HubAnnotations, RunRecordTexts};
pub use file_cache::{is_sha256_hex, CachedContent, FileCache, Partial};
pub use files::MAX_BYTES_IN_MEMORY;
pub use host_snapshots::{HostRunRow, HostSnapshot};
pub use ids::{RemoteId, RunKey};
pub use imports::{BundleAnnotations, ImportVerdict, ImportedRunState};
pub use logs::{LogChunkRow, LogStats};
pub use points::IngestStats;
pub use prefetch::PrefetchCandidate;
pub use purge::{PurgeRefusal, PurgeReport};
pub use remotes::{
    is_imported_address, this_host, valid_remote_name, Lease, RemoteRow, RemoteSpec, RemoteState,
    RenameOutcome, FOLLOW_BEAT_SECONDS, FOLLOW_HEARTBEAT_SECONDS, FOLLOW_LEASE_SECONDS,
    IMPORTED_ADDRESS_KIND, SKIPPED_SHOWN,
};
pub use run_assets::{
    archive_relative, asset_entries, blob_path, manifest_entries, safe_relative, AssetCategory,
    AssetEntry, AssetKind, ManifestEntry, CODE_SNAPSHOT_NAME,
};
pub use run_query::{Agg, FilterError, FilterKey, Literal, Op, RunQuery, MAX_FILTER_CHARS};
pub use run_ref::{RunCandidate, RunRef, RunRefError, MAX_RUN_REF_BYTES};
pub use run_values::flatten_config;
pub use runs::{
    ColumnKeys, FileRow, MetricKey, RunFilter, RunOrder, RunProgress, RunRecords, RunRow, RunSort,
    TrashView, ROW_KEYS,
};
pub use series::{KeyExtent, SeriesAxis, SeriesPoints, SeriesQuery};
pub use series_stats::SeriesStats;
pub use skipped::{
    SkippedFiles, SkippedItem, KIND_ARTIFACT, KIND_LOG, KIND_POINTS, MAX_FILES_LISTED,
};
pub use store::{default_dir, Store, FILES_DIR, HUB_DIR_ENV, STORE_FILE};

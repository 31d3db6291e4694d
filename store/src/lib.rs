//! The hub's store: SQLite (WAL) for everything that is queried, and a content-addressed file
//! cache beside it, in one folder (`$RUNICORN_HUB_DIR`, else the platform's data directory).
//!
//! The hub's sync writes it through one [`Store`] (blocking calls, on a dedicated thread):
//! [`Store::apply_change_batch`], [`Store::ingest_points`] and [`Store::ingest_logs`] take the
//! agent's batches as they arrive, each in one transaction, idempotently, after checking every
//! path the peer sent. The dashboard reads through stores opened with
//! [`Store::open_read_only`]; WAL lets them read while the sync writes.
//!
//! | module | owns |
//! |---|---|
//! | `store` | opening: folder, SQLite settings, `default_dir` |
//! | `schema` | tables, indexes and migrations |
//! | `error` | [`StoreError`]: messages that name the file and what to do |
//! | `remotes` | remotes, their state and cursor |
//! | `changes` | applying change batches: runs, manifests, removals, full listings |
//! | `points` | ingesting metric points (the hot path) |
//! | `logs` | the copy of each run's `logs.txt` |
//! | `pending` | what to fetch next |
//! | `runs` | the read side's types and per-run reads: records, metric keys, manifests |
//! | `listing` | run listings (filters, sorts, paging), counts, path counts, column keys |
//! | `annotations` | the hub's own edits of a run: alias, tags, notes, recycle bin |
//! | `run_values` | the side table that summary and config sorts read; [`flatten_config`] |
//! | `tiles` | the point tile pyramid and its upkeep during ingest |
//! | `series` | metric series: downsampled (min/max per bucket) from the tiles, raw, live tails |
//! | `run_ref` | run references (key, run id, `REMOTE/RUN_ID`) and their resolution |
//! | `skipped` | what could not be synced and why: skipped runs per remote, skipped files per run |
//! | `files` | the content-addressed file cache |

mod annotations;
mod changes;
mod error;
mod files;
mod listing;
mod logs;
mod pending;
mod points;
mod remotes;
mod run_ref;
mod run_values;
mod runs;
mod schema;
mod series;
mod skipped;
mod store;
#[cfg(test)]
mod testkit;
mod tiles;

pub use annotations::RunAnnotation;
pub use changes::{ChangeOutcome, MAX_RECORD_DEPTH};
pub use error::StoreError;
pub use files::{is_sha256_hex, MAX_BYTES_IN_MEMORY};
pub use logs::{LogChunkRow, LogStats};
pub use points::IngestStats;
pub use remotes::{RemoteId, RemoteRow, RemoteSpec, SKIPPED_SHOWN};
pub use run_ref::{RunCandidate, RunRef, RunRefError, MAX_RUN_REF_BYTES};
pub use run_values::flatten_config;
pub use runs::{
    ColumnKeys, FileRow, MetricKey, RunFilter, RunKey, RunOrder, RunProgress, RunRecords, RunRow,
    RunSort, TrashView, ROW_KEYS,
};
pub use series::{KeyExtent, SeriesAxis, SeriesPoints, SeriesQuery};
pub use skipped::{SkippedFiles, SkippedItem, KIND_LOG, KIND_POINTS, MAX_FILES_LISTED};
pub use store::{default_dir, Store, FILES_DIR, HUB_DIR_ENV, STORE_FILE};

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
//! | `runs` | the read side: run listings, series, manifests |
//! | `files` | the content-addressed file cache |

mod changes;
mod error;
mod files;
mod logs;
mod pending;
mod points;
mod remotes;
mod runs;
mod schema;
mod store;
#[cfg(test)]
mod testkit;

pub use changes::ChangeOutcome;
pub use error::StoreError;
pub use files::{is_sha256_hex, MAX_BYTES_IN_MEMORY};
pub use logs::{LogChunkRow, LogStats};
pub use points::IngestStats;
pub use remotes::{RemoteId, RemoteRow, RemoteSpec};
pub use runs::{FileRow, MetricKey, RunFilter, RunKey, RunOrder, RunRecords, RunRow, RunSort};
pub use store::{default_dir, Store, FILES_DIR, HUB_DIR_ENV, STORE_FILE};

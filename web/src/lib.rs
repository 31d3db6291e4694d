//! The dashboard: an axum HTTP API over the hub's store (`docs/api.md`) and the embedded
//! browser UI. The hub builds a [`DashboardConfig`], calls [`Dashboard::bind`] (which reports a
//! port in use) and runs [`Dashboard::serve`] beside its sync tasks.
//!
//! | module | owns |
//! |---|---|
//! | `bundle_reports` | offline bundles' import and export reports (CLI `--json` and API), and the [`bundle_reports::BundleService`] the hub gives |
//! | `config` | [`DashboardConfig`] and the [`FileFetcher`] the hub may give |
//! | `server` | binding, serving, graceful shutdown |
//! | `connections` | the accept loop: header-read and stall timeouts, the connection cap |
//! | `security` | Host allow-list, token and Origin checks, security headers |
//! | `assets` | the embedded UI, `index.html` with the token |
//! | `content_type` | content types of UI assets and of run files |
//! | `store_pool` | read-only store connections and the writer, on the blocking pool |
//! | `ticks` | the `data_version` poller behind live updates |
//! | `query` | query-string parsing, the run filter |
//! | `tree` | the path tree with counts |
//! | `dto` | the JSON shapes of the API |
//! | `fleet` | the fleet view (`/api/fleet`, `runicorn-hub fleet`): remotes, their hosts' GPUs and the runs holding them, the free rule |
//! | `routes/*` | one module per resource |
//! | `error` | [`WebError`] and the API's JSON errors |
//! | `typescript` | (tests) the generated TypeScript declarations of the API, `web/ui/src/generated/api.ts` |

mod assets;
pub mod bundle_reports;
mod config;
mod connections;
mod content_type;
mod dto;
mod error;
pub mod fleet;
mod query;
mod routes;
mod security;
mod server;
mod state;
mod store_pool;
mod ticks;
mod tree;
#[cfg(test)]
mod typescript;

pub use config::{
    ContentAsk, DashboardConfig, FetchFailure, FetchFailureKind, FetchProgress, FetchStarted,
    FetchedFile, FileFetcher, DEFAULT_PORT,
};
pub use error::WebError;
pub use security::TOKEN_HEADER;
pub use server::Dashboard;

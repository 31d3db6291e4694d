//! The laptop side of Runicorn as a library: the binary `runicorn-hub` (`main.rs`, with its
//! commands under `cli/`) is glue over these modules, and the end-to-end tests drive `ssh`
//! directly where a process boundary would only hide what failed.
//!
//! Public, because the binary or another crate uses them:
//!
//! | module | owns |
//! |---|---|
//! | `ssh` | the SSH client: `~/.ssh/config`, known hosts, authentication, ProxyJump, the agent's exec channel, SFTP |
//! | `remote_address` | how a remote is reached, as typed and as remembered |
//! | `sync` | the protocol client, answer validation, sync rounds and live follow |
//! | `supervisor` | one remote kept in sync: opens its link, reconnects with backoff |
//! | `followers` | the remotes a command follows live: their leases in the store, a supervisor each, remotes added, removed, paused or asked to sync by other processes |
//! | `store_thread` | the store on a thread of its own, called from async code |
//! | `bundle_export` | the runs of the store as an offline bundle (`runicorn-hub export`, the dashboard's export): each run rewritten from the store into a temporary root, then bundled |
//! | `bundle_service` | the dashboard's bundle export and import (`runicorn_web::bundle_reports::BundleService`) over `bundle_export` and `bundle_import` |
//! | `bundle_import` | `import`: offline bundles checked, landed, read by a real agent and stored as one atomic merge |
//! | `agent_install` | `connect --install-agent`: the agent uploaded over SFTP, verified, upgraded when older |
//! | `file_fetch` | file bytes on demand (SFTP or a local read) into the store's cache, for the dashboard |
//! | `prefetch` | which files to bring before anyone asks (small media by default), fetched in the background after sync rounds |
//!
//! Private:
//!
//! | module | owns |
//! |---|---|
//! | `link` | an open byte stream to an agent and what its carrier knows (stderr, exit code) |
//! | `local_transport` | the agent as a child process (`local:DIR`) |
//! | `open_link` | opening a link for a remembered address, SSH or local |

pub mod agent_install;
pub mod bundle_export;
pub mod bundle_import;
pub mod bundle_service;
pub mod file_fetch;
pub mod followers;
mod link;
mod local_transport;
pub use local_transport::local_agent_program;
mod open_link;
pub mod prefetch;
pub mod remote_address;
pub mod ssh;
pub mod store_thread;
pub mod supervisor;
pub mod sync;

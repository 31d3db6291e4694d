//! The laptop side of Runicorn as a library: the binary `runicorn-hub` (`main.rs`) is glue over
//! these modules, and the end-to-end tests drive them directly where a process boundary would
//! only hide what failed.
//!
//! | module | owns |
//! |---|---|
//! | `ssh` | the SSH client: `~/.ssh/config`, known hosts, authentication, ProxyJump, the agent's exec channel, SFTP |
//! | `link` | an open byte stream to an agent and what its carrier knows (stderr, exit code) |
//! | `local_transport` | the agent as a child process (`local:DIR`) |
//! | `open_link` | opening a link for a remembered address, SSH or local |
//! | `remote_address` | how a remote is reached, as typed and as remembered |
//! | `sync` | the protocol client, answer validation, sync rounds and live follow |
//! | `supervisor` | one remote kept in sync: reconnects with backoff |
//! | `store_thread` | the store on a thread of its own, called from async code |
//! | `file_fetch` | file bytes on demand (SFTP or a local read) into the store's cache, for the dashboard |
//! | `demo_runs` | the sample runs of `runicorn-hub demo` |

pub mod demo_runs;
pub mod file_fetch;
pub mod link;
pub mod local_transport;
pub mod open_link;
pub mod remote_address;
pub mod ssh;
pub mod store_thread;
pub mod supervisor;
pub mod sync;

//! The laptop side of Runicorn as a library: the binary `runicorn-hub` (`main.rs`) is glue over
//! these modules, and the end-to-end tests drive them directly where a process boundary would
//! only hide what failed.
//!
//! | module | owns |
//! |---|---|
//! | `ssh` | the SSH client: `~/.ssh/config`, known hosts, authentication, ProxyJump, the agent's exec channel, SFTP |

pub mod ssh;

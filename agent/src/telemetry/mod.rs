//! Telemetry of a run while it runs on this host: what its processes cost (CPU, memory, I/O)
//! and what the GPUs they use are doing.
//!
//! - `process_tree`: the process tree of a run's root pid, read from `/proc`, and its figures;
//! - `nvidia_smi`: the GPUs and the processes using them, as `nvidia-smi` reports them, under a
//!   time limit;
//! - `sampler`: the two put together per run (`RunSampler`, `RunSample` and its `sys/…`
//!   points) and host-wide (`HostGpus`).
//!
//! Nothing here writes files: the caller decides where samples go. Everything is synchronous
//! and bounded in time (a sample reads `/proc` and waits at most the `nvidia-smi` timeout), so
//! a caller on an async runtime runs it on a blocking thread.

pub mod nvidia_smi;
pub mod process_tree;
pub mod sampler;

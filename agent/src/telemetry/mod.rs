//! Telemetry of a run while it runs on this host: what its processes cost (CPU, memory, I/O)
//! and what the GPUs they use are doing.
//!
//! - `process_tree`: the process tree of a run's root pid, read from `/proc`, and its figures;
//! - `nvidia_smi`: the GPUs and the processes using them, as `nvidia-smi` reports them, under a
//!   time limit;
//! - `sampler`: the two put together per run (`RunSampler`, `RunSample` and its `sys/…`
//!   points) and host-wide (`HostGpus`);
//! - `run_owners`: which running run a process belongs to (up its parents to a run's writer,
//!   by pid and start time), for the host-wide view;
//! - `host_load`: CPUs, load averages and memory of the host;
//! - `settings`: the telemetry options of `run` and `daemon` (`--telemetry-interval`, …);
//! - `system_file`: `<run>/system.jsonl`, the lines samples are appended as.
//!
//! Only `system_file` writes, and only where its caller says. Everything is synchronous
//! and bounded in time (a sample reads `/proc` and waits at most the `nvidia-smi` timeout), so
//! a caller on an async runtime runs it on a blocking thread.

pub mod host_load;
pub mod nvidia_smi;
pub mod process_tree;
pub mod run_owners;
pub mod sampler;
pub mod settings;
pub mod system_file;
#[cfg(test)]
pub(crate) mod test_support;

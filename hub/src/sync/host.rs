//! Host samples for the fleet view: asking an agent that announces the `host` capability for
//! its `host_status` (its GPUs, who uses each, its load) and storing the latest one per remote.
//!
//! A [`HostPoller`] asks at once when a session starts, then, while the hub follows, again
//! [`HOST_INTERVAL`] after each answer (never more often than the agent answers). It runs
//! beside the sync rounds, never inside them: the agent answers `host` on a thread of its own,
//! and a sample that takes longer than [`HOST_ANSWER_TIMEOUT`] (a hung nvidia-smi is killed by
//! the agent much sooner) is given up without touching the round or the link. Older agents
//! are never asked. What an agent sends is checked ([`checked`]) before it is stored. A one-off
//! sync waits at most [`ONE_OFF_HOST_WAIT`] after its round for the sample, then ends without it.

use std::sync::Arc;
use std::time::Duration;

use runicorn_protocol::wire::{check_wire_path, HostStatus};
use runicorn_store::RemoteId;
use tokio::task::JoinHandle;

use super::client::AgentClient;
use crate::store_thread::StoreHandle;

/// Time between the answer to one `host` request and the next, while following.
pub const HOST_INTERVAL: Duration = Duration::from_secs(10);
/// Longest the hub waits for one `host` answer before it gives that sample up.
pub const HOST_ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a one-off sync (`sync`, `connect --once`) waits for its host sample after its round:
/// a slow nvidia-smi (hundreds of ms, seconds when the driver is wedged) must not hold up the
/// command. A sample later than that is given up; the remote keeps its last one.
pub const ONE_OFF_HOST_WAIT: Duration = Duration::from_secs(1);
/// GPUs kept of one sample, and compute processes of one GPU.
pub const MAX_GPUS: usize = 256;
pub const MAX_GPU_PROCESSES: usize = 1024;
/// Longest hostname, GPU name or uuid kept, and longest GPU error, in bytes.
const MAX_NAME_BYTES: usize = 256;
const MAX_ERROR_BYTES: usize = 4096;

/// Asks one agent for host samples in the background until dropped.
pub struct HostPoller {
    task: JoinHandle<()>,
}

impl Drop for HostPoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostPoller {
    /// Starts asking `client` (at once, then every [`HOST_INTERVAL`] when `repeat`); `None`
    /// when the agent does not answer `host`.
    pub fn start(
        client: &Arc<AgentClient>,
        store: &StoreHandle,
        remote: RemoteId,
        repeat: bool,
    ) -> Option<HostPoller> {
        if !client.answers_host() {
            return None;
        }
        let (client, store) = (Arc::clone(client), store.clone());
        let task = tokio::spawn(async move {
            loop {
                sample_once(&client, &store, remote).await;
                if !repeat {
                    return;
                }
                tokio::time::sleep(HOST_INTERVAL).await;
            }
        });
        Some(HostPoller { task })
    }

    /// Waits at most `wait` for a one-off poller's sample to be stored (a `sync --once` ends
    /// with a fresh sample when the agent gives one in time).
    pub async fn finish(mut self, wait: Duration) {
        let _ = tokio::time::timeout(wait, &mut self.task).await;
    }
}

/// Asks once and stores the answer; a failure is logged, never raised: the sync goes on.
async fn sample_once(client: &AgentClient, store: &StoreHandle, remote: RemoteId) {
    let status = match tokio::time::timeout(HOST_ANSWER_TIMEOUT, client.host()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            tracing::warn!(remote = client.remote(), error = %e, "host sample failed");
            return;
        }
        Err(_) => {
            tracing::warn!(
                remote = client.remote(),
                seconds = HOST_ANSWER_TIMEOUT.as_secs(),
                "the agent did not send a host sample in time; asking again later"
            );
            return;
        }
    };
    if let Some(error) = &status.gpu_error {
        tracing::debug!(
            remote = client.remote(),
            error,
            "the agent could not read its GPUs"
        );
    }
    let stored = store
        .call(move |s| s.put_host_snapshot(remote, runicorn_cli::now(), &status))
        .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(remote = client.remote(), error = %e, "storing a host sample"),
        Err(e) => tracing::warn!(remote = client.remote(), error = %e, "storing a host sample"),
    }
}

/// `status` within the hub's limits: at most [`MAX_GPUS`] GPUs of [`MAX_GPU_PROCESSES`]
/// processes each, names and the error cut to their limits, and a run named only by a
/// directory that passes the wire's path rule (one that does not is dropped, the process kept).
pub fn checked(mut status: HostStatus) -> HostStatus {
    cut(&mut status.hostname, MAX_NAME_BYTES);
    if let Some(error) = &mut status.gpu_error {
        cut(error, MAX_ERROR_BYTES);
    }
    status.gpus.truncate(MAX_GPUS);
    for gpu in &mut status.gpus {
        cut(&mut gpu.name, MAX_NAME_BYTES);
        cut(&mut gpu.uuid, MAX_NAME_BYTES);
        gpu.processes.truncate(MAX_GPU_PROCESSES);
        for process in &mut gpu.processes {
            if process
                .run
                .as_ref()
                .is_some_and(|run| check_wire_path(&run.dir).is_err())
            {
                process.run = None;
            }
            if let Some(run) = &mut process.run {
                cut(&mut run.path, MAX_NAME_BYTES * 16);
                cut(&mut run.run_id, MAX_NAME_BYTES);
            }
        }
    }
    status
}

/// Cuts `text` to at most `max` bytes at a character boundary.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::{GpuProcess, HostGpuStatus, HostRun};

    #[test]
    fn what_breaks_the_rules_is_cut_or_dropped() {
        let process = |dir: &str| GpuProcess {
            pid: 1,
            used_mib: None,
            run: Some(HostRun {
                dir: dir.into(),
                path: "p".into(),
                run_id: "r".into(),
            }),
        };
        let status = HostStatus {
            hostname: "é".repeat(300),
            gpus: (0..300)
                .map(|i| HostGpuStatus {
                    index: i,
                    processes: vec![process("../etc"), process("runs/a/1")],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let status = checked(status);
        assert!(status.hostname.len() <= MAX_NAME_BYTES);
        assert_eq!(status.gpus.len(), MAX_GPUS);
        let gpu = &status.gpus[0];
        assert_eq!(
            gpu.processes[0].run, None,
            "a path out of the root is dropped"
        );
        assert_eq!(gpu.processes[0].pid, 1, "the process is kept");
        assert!(gpu.processes[1].run.is_some());
    }
}

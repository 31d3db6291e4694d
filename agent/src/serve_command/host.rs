//! `host` answers (`host_status`): the host's GPUs as nvidia-smi reports them, which running
//! run each GPU process belongs to, and the host's load.
//!
//! They are made on a thread of their own, one at a time in the order asked, so a slow or hung
//! nvidia-smi (killed after its timeout) never holds up `changes`, `points` or `log` answers:
//! a `host_status` may come after answers to later requests (the hub matches answers by id).

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;

use runicorn_protocol::run_format::process::local_hostname;
use runicorn_protocol::run_format::unix_now;
use runicorn_protocol::wire::{
    Body, Envelope, ErrorCode, GpuProcess, HostGpuStatus, HostRun, HostStatus,
};

use super::output::SendError;
use super::shared::Shared;
use crate::run_index::feed::RunningRun;
use crate::telemetry::host_load::HostLoad;
use crate::telemetry::nvidia_smi::NvidiaSmi;
use crate::telemetry::process_tree::process_parents;
use crate::telemetry::run_owners::{RunOwners, RunRoot};
use crate::telemetry::sampler::HostGpus;

const MIB: f64 = 1024.0 * 1024.0;

/// Where `host` requests go: the thread that answers them.
pub struct HostRequests {
    to_thread: mpsc::Sender<u64>,
}

impl HostRequests {
    /// Starts the answering thread, which asks `nvidia_smi` for the GPUs.
    pub fn spawn(shared: Arc<Shared>, nvidia_smi: NvidiaSmi) -> std::io::Result<Self> {
        let (to_thread, requests) = mpsc::channel::<u64>();
        std::thread::Builder::new()
            .name("host".into())
            .spawn(move || {
                let hostname = local_hostname();
                for id in requests {
                    // The feed's running runs, no older than a scan the other answers accept.
                    shared.rescan_if_stale();
                    let runs = shared.index().running_runs();
                    let runs = runs.unwrap_or_else(|e| {
                        eprintln!("runicorn-agent serve: reading the running runs: {e}");
                        Vec::new()
                    });
                    let status = sample_host(&hostname, &runs, &nvidia_smi);
                    let sent = shared.out.send(&Envelope {
                        id,
                        body: Body::HostStatus(status),
                    });
                    if sent.is_err() {
                        return; // the session is over; the worker notices too
                    }
                }
            })?;
        Ok(HostRequests { to_thread })
    }

    /// Hands request `id` to the thread (an `internal` error when the thread is gone).
    pub fn ask(&self, shared: &Shared, id: u64) -> Result<(), SendError> {
        if self.to_thread.send(id).is_err() {
            return shared.out.send_error(
                id,
                ErrorCode::Internal,
                "the agent's host sampler stopped; restart the session".into(),
            );
        }
        Ok(())
    }
}

/// One sample of this host: load, GPUs, and the runs among `running` (those of this host) that
/// hold GPU processes.
pub fn sample_host(hostname: &str, running: &[RunningRun], nvidia_smi: &NvidiaSmi) -> HostStatus {
    let load = HostLoad::read();
    let (gpus, gpu_error) = match HostGpus::query(nvidia_smi) {
        Ok(host) => (host, None),
        Err(e) => (HostGpus::default(), Some(e.to_string())),
    };
    // Matched after nvidia-smi answered, so a process it names is in the table if still alive;
    // `/proc` is read only when some GPU has a compute process.
    let any_process = gpus.gpus.iter().any(|gpu| !gpu.apps.is_empty());
    let processes = if any_process {
        process_parents()
    } else {
        HashMap::new()
    };
    let owners = RunOwners::with_processes(
        running.iter().filter_map(|run| {
            let here = run.host.as_deref().is_none_or(|h| h == hostname);
            let pid = u32::try_from(run.pid?).ok().filter(|&p| p > 0)?;
            here.then(|| {
                let root = RunRoot {
                    pid,
                    start_ticks: run.start_ticks,
                };
                let named = HostRun {
                    dir: run.dir.clone(),
                    path: run.path.clone(),
                    run_id: run.run_id.clone(),
                };
                (root, named)
            })
        }),
        processes,
    );
    let mib = |bytes: Option<u64>| bytes.map(|b| b as f64 / MIB);
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    HostStatus {
        hostname: hostname.to_owned(),
        sampled_at: unix_now(),
        cpu_count: load.cpu_count,
        load_avg: load.load_avg,
        mem_total_mib: load.mem_total_mib,
        mem_available_mib: load.mem_available_mib,
        gpus: gpus
            .gpus
            .into_iter()
            .map(|gpu| HostGpuStatus {
                index: gpu.state.index,
                uuid: gpu.state.uuid,
                name: gpu.state.name,
                util_percent: finite(gpu.state.util_percent),
                mem_used_mib: mib(gpu.state.mem_used_bytes),
                mem_total_mib: mib(gpu.state.mem_total_bytes),
                temp_c: finite(gpu.state.temp_c),
                power_w: finite(gpu.state.power_w),
                processes: gpu
                    .apps
                    .iter()
                    .map(|app| GpuProcess {
                        pid: app.pid,
                        used_mib: mib(app.used_memory_bytes),
                        run: owners.owner_of(app.pid).cloned(),
                    })
                    .collect(),
            })
            .collect(),
        gpu_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::nvidia_smi::Program;
    use crate::telemetry::process_tree::ProcessId;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvidia-smi")
    }

    /// The stand-in nvidia-smi answering with the 8-GPU host's recording, `{RUN_PID}` and
    /// `{RUN_CHILD_PID}` replaced.
    fn eight_gpus(run_pid: u32, child_pid: u32) -> (tempfile::TempDir, NvidiaSmi) {
        let dir = tempfile::tempdir().expect("temp dir");
        let from = fixtures();
        std::fs::copy(from.join("stand-in.sh"), dir.path().join("nvidia-smi")).expect("copy");
        for file in ["query-gpu.csv", "query-compute-apps.csv"] {
            let text = std::fs::read_to_string(from.join("host-8gpu").join(file)).expect("read");
            let text = text
                .replace("{RUN_PID}", &run_pid.to_string())
                .replace("{RUN_CHILD_PID}", &child_pid.to_string());
            std::fs::write(dir.path().join(file), text).expect("write");
        }
        let smi = NvidiaSmi {
            program: Program::Path(dir.path().join("nvidia-smi")),
            timeout: Duration::from_secs(2),
        };
        (dir, smi)
    }

    /// A run's writer: `sh` waiting for a sleeping child, killed whole when dropped.
    struct Writer(Child);

    impl Writer {
        fn start() -> (Writer, ProcessId, u32) {
            let child = Command::new("sh")
                .args(["-c", "sleep 60 & wait"])
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start sh");
            let writer = Writer(child);
            let shell = ProcessId::of_pid(writer.0.id()).expect("the shell runs");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let parents = crate::telemetry::process_tree::process_parents();
                if let Some((id, _)) = parents.values().find(|(_, p)| *p == shell.pid) {
                    return (writer, shell, id.pid);
                }
                assert!(Instant::now() < deadline, "no child");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Writer {
        fn drop(&mut self) {
            // SAFETY: kill has no memory preconditions; the group is ours and not yet reaped.
            unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
            let _ = self.0.wait();
        }
    }

    fn running(shell: ProcessId, start_ticks: Option<u64>, host: &str) -> RunningRun {
        RunningRun {
            dir: "runs/cv/20261205_000000_abc123".into(),
            path: "cv".into(),
            run_id: "20261205_000000_abc123".into(),
            host: Some(host.into()),
            pid: Some(i64::from(shell.pid)),
            start_ticks,
            writer: None,
        }
    }

    fn runs_of(status: &HostStatus) -> Vec<(u32, Vec<Option<String>>)> {
        status
            .gpus
            .iter()
            .map(|g| {
                let runs = g
                    .processes
                    .iter()
                    .map(|p| p.run.as_ref().map(|r| r.run_id.clone()))
                    .collect();
                (g.index, runs)
            })
            .collect()
    }

    #[test]
    fn gpu_processes_are_matched_to_the_run_by_pid_and_start_time() {
        let (_writer, shell, child) = Writer::start();
        let (_dir, smi) = eight_gpus(shell.pid, child);
        let run = running(shell, Some(shell.start_ticks), "here");
        let status = sample_host("here", &[run], &smi);
        assert!(status.gpu_error.is_none(), "{:?}", status.gpu_error);
        assert_eq!(status.hostname, "here");
        assert_eq!(status.gpus.len(), 8);
        let id = Some("20261205_000000_abc123".to_owned());
        let runs = runs_of(&status);
        assert_eq!(runs[2], (2, vec![id.clone()]), "the writer itself");
        assert_eq!(
            runs[5],
            (5, vec![id.clone(), None]),
            "its child, beside a stranger"
        );
        assert_eq!(runs[0], (0, vec![None]), "another user's process");
        assert!(runs[3].1.is_empty() && runs[4].1.is_empty() && runs[7].1.is_empty());
        let five = &status.gpus[5];
        assert_eq!(five.processes[0].used_mib, Some(39472.0));
        assert_eq!(five.mem_used_mib, Some(40402.0));
        assert_eq!(five.mem_total_mib, Some(81920.0));
        assert_eq!(status.gpus[6].util_percent, None, "[Not Supported]");
        assert_eq!(status.gpus[7].power_w, None, "[N/A]");
        assert_eq!(status.gpus[2].temp_c, Some(55.0));
        assert!(status.cpu_count.is_some() && status.mem_total_mib.is_some());
    }

    #[test]
    fn a_pid_reused_by_another_process_or_a_run_of_another_host_is_not_matched() {
        let (_writer, shell, child) = Writer::start();
        let (_dir, smi) = eight_gpus(shell.pid, child);
        // The run recorded this pid for a process that started at another time.
        let reused = running(shell, Some(shell.start_ticks + 7), "here");
        let elsewhere = running(shell, Some(shell.start_ticks), "gpu-02");
        let status = sample_host("here", &[reused, elsewhere], &smi);
        assert!(status
            .gpus
            .iter()
            .flat_map(|g| &g.processes)
            .all(|p| p.run.is_none()));
    }

    #[test]
    fn no_nvidia_smi_is_no_gpus_and_a_failing_one_is_an_error() {
        let none = NvidiaSmi {
            program: Program::Search("/nonexistent".into()),
            timeout: Duration::from_secs(2),
        };
        let status = sample_host("here", &[], &none);
        assert!(status.gpus.is_empty());
        assert_eq!(status.gpu_error, None);

        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("nvidia-smi");
        std::fs::write(&script, "#!/bin/sh\necho 'NVIDIA-SMI has failed'\nexit 9\n").expect("w");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let failing = NvidiaSmi {
            program: Program::Path(script),
            timeout: Duration::from_secs(2),
        };
        let status = sample_host("here", &[], &failing);
        assert!(status.gpus.is_empty());
        let error = status.gpu_error.expect("an error");
        assert!(error.contains("NVIDIA-SMI has failed"), "{error}");
    }
}

//! The run's telemetry while `runicorn-agent run` runs its command: the thread that samples
//! the command's process tree and GPUs (`crate::telemetry`) every interval and appends one line
//! per sample to `<run>/system.jsonl` (`crate::telemetry::system_file`; the format is
//! docs/run-format.md, "`system.jsonl`"). The options are `crate::telemetry::settings`.
//!
//! Telemetry is tracking: a line that cannot be written is reported once through the run's
//! `TrackingProblems` (and tried again at the next sample), a failing nvidia-smi is reported
//! once and the samples go on without GPU figures, and neither ever touches the command.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runicorn_cli::warning_label;

use super::TrackingProblems;
use crate::telemetry::sampler::{RunSampler, SamplerConfig};
pub use crate::telemetry::settings::{TelemetryArgs, TelemetrySettings};
use crate::telemetry::system_file::{epoch_seconds, system_line, SystemFile};

/// The sampling thread of a run; `stop` ends it and waits for it.
pub struct TelemetryThread {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl TelemetryThread {
    /// Starts sampling the process tree under `root_pid` (the command, not yet waited for) into
    /// `<run_dir>/system.jsonl`; `None` when telemetry is off or the thread cannot start (said
    /// on stderr; the command runs untracked by telemetry).
    pub fn start(
        settings: &TelemetrySettings,
        root_pid: u32,
        run_dir: &Path,
        tracking: TrackingProblems,
    ) -> Option<TelemetryThread> {
        let period = settings.interval?;
        // Made here, before the command can be reaped, so that its pid is still its own.
        let sampler = RunSampler::new(
            root_pid,
            SamplerConfig {
                nvidia_smi: Some(settings.nvidia_smi.clone()),
            },
        );
        let file = SystemFile::new(run_dir);
        let run_dir = run_dir.to_owned();
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("runicorn-telemetry".into())
            .spawn(move || {
                sample_until_stopped(sampler, file, period, &stopped, &tracking, &run_dir)
            });
        match spawned {
            Ok(thread) => Some(TelemetryThread { stop, thread }),
            Err(err) => {
                eprintln!(
                    "{}: runicorn could not start its telemetry thread ({err}); the command runs \
                     without system.jsonl",
                    warning_label()
                );
                None
            }
        }
    }

    /// Stops sampling; once this returns, nothing more is written (a sample under way is
    /// finished first, which takes at most nvidia-smi's timeout).
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The thread's loop: a first reading of the tree at once (no line: it only starts the CPU
/// count), then one sample and one line every `period` (ticks missed by a slow sample are
/// skipped), until `stopped` is dropped or the command's process is gone.
fn sample_until_stopped(
    mut sampler: RunSampler,
    mut file: SystemFile,
    period: Duration,
    stopped: &mpsc::Receiver<()>,
    tracking: &TrackingProblems,
    run_dir: &Path,
) {
    let start = Instant::now();
    if sampler.sample_with(start, None).tree.ended {
        return;
    }
    let mut gpu_warned = false;
    let mut next = start + period;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match stopped.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped (or the sender gone): the command has ended.
            _ => return,
        }
        let now = Instant::now();
        while next <= now {
            next += period;
        }
        let sample = sampler.sample(now);
        if sample.tree.ended {
            return;
        }
        if let Some(error) = &sample.gpu_error {
            if !gpu_warned {
                gpu_warned = true;
                eprintln!(
                    "{}: runicorn could not read the GPUs for the run in {}: {error}; its \
                     telemetry goes on without GPU figures while this lasts, and the command \
                     keeps running",
                    warning_label(),
                    run_dir.display()
                );
            }
        }
        let points = sample.points();
        if points.is_empty() {
            continue;
        }
        tracking.report(file.append(&system_line(epoch_seconds(), &points)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::nvidia_smi::{NvidiaSmi, Program};
    use crate::telemetry::system_file::SYSTEM_FILE;
    use crate::telemetry::test_support::BusyChild;

    #[test]
    fn a_thread_samples_a_busy_command_and_stops_when_asked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = BusyChild::start();
        let settings = TelemetrySettings {
            interval: Some(Duration::from_millis(100)),
            nvidia_smi: NvidiaSmi {
                program: Program::Search(std::ffi::OsString::new()),
                timeout: Duration::from_secs(2),
            },
        };
        let tracking = TrackingProblems::new(dir.path().to_owned());
        let thread = TelemetryThread::start(&settings, child.pid(), dir.path(), tracking)
            .expect("telemetry is on");
        let path = dir.path().join(SYSTEM_FILE);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&path).map_or(0, |t| t.lines().count()) < 3 {
            assert!(Instant::now() < deadline, "no three samples in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.stop();
        let text = std::fs::read_to_string(&path).expect("read");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            text,
            "nothing is written once stopped, though the command still runs"
        );
        drop(child);
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
            assert!(
                value["data"]["sys/cpu_percent"].as_f64().is_some(),
                "{line}"
            );
            assert_eq!(value["data"]["sys/procs"].as_f64(), Some(1.0), "{line}");
        }
    }
}

//! The demo's wrapped run: a real command started under `runicorn-agent run`, so the demo shows
//! what the agent records of a process it wraps (its console log and its `system.jsonl`
//! telemetry: CPU, memory, I/O, threads) next to the SDK-written sample runs.
//!
//! The wrapped command is this executable again (`runicorn-hub demo-worker`, hidden): it
//! alternates bursts of CPU work with sleeps, grows and shrinks a buffer so memory moves, and
//! prints a progress line per step. It ends by itself when the demo's hub is gone, so a killed
//! demo leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The wrapped run's path in the demo's root.
pub const WRAPPED_RUN_PATH: &str = "demo/agent-run";
/// Seconds between telemetry samples of the wrapped run (the agent's default is 10; the demo
/// wants the System tab to move while one watches).
const TELEMETRY_INTERVAL: &str = "2";
/// How long `spawn_wrapped_run` waits for the agent to create the run directory.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// `runicorn-hub demo-worker`: the command the demo wraps.
#[derive(clap::Args, Debug)]
pub struct DemoWorkerArgs {
    /// End when this process (the demo's hub) is gone
    #[arg(long, value_name = "PID")]
    pub hub_pid: u32,
    /// Milliseconds of CPU work per step
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub busy_ms: u64,
}

/// The running `runicorn-agent run` of the demo; stopping it interrupts the run like Ctrl-C.
pub struct WrappedRun {
    child: Child,
}

impl WrappedRun {
    /// Sends SIGINT (the agent passes it on to the command and records the run as
    /// interrupted), then waits a little and kills what is left.
    pub fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `AGENT run --root ROOT --path demo/agent-run -- <this exe> demo-worker` and waits
/// until its run directory exists, so the first sync already lists it.
pub fn spawn_wrapped_run(agent: &Path, root: &Path) -> anyhow::Result<WrappedRun> {
    let me = std::env::current_exe().context("cannot find the hub's own executable")?;
    let child = Command::new(agent)
        .arg("run")
        .arg("--root")
        .arg(root)
        .args(["--path", WRAPPED_RUN_PATH, "--alias", "wrapped-command"])
        .args(["--telemetry-interval", TELEMETRY_INTERVAL, "--quiet", "--"])
        .arg(&me)
        .arg("demo-worker")
        .arg("--hub-pid")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {} run", agent.display()))?;
    let mut wrapped = WrappedRun { child };
    let runs = root.join("runs").join(WRAPPED_RUN_PATH);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if has_run_dir(&runs) {
            return Ok(wrapped);
        }
        if let Ok(Some(status)) = wrapped.child.try_wait() {
            anyhow::bail!("{} run ended at once ({status})", agent.display());
        }
        if Instant::now() > deadline {
            wrapped.stop();
            anyhow::bail!(
                "{} run did not create its run under {} within {} s",
                agent.display(),
                runs.display(),
                START_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a run directory with its `meta.json` exists under `runs`.
fn has_run_dir(runs: &Path) -> bool {
    std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("meta.json").is_file())
}

/// The worker's loop: a step every second, until the hub is gone.
pub fn run_worker(args: DemoWorkerArgs) -> anyhow::Result<u8> {
    let hub = PathBuf::from(format!("/proc/{}", args.hub_pid));
    let mut buffer: Vec<u8> = Vec::new();
    let mut step: u64 = 0;
    while hub.exists() {
        step += 1;
        // Memory rises for 30 steps and falls back: 8 MiB to 128 MiB.
        let mib = 8 + 4 * (step % 30) as usize;
        buffer.resize(mib << 20, 0);
        // Touch every page so it counts as resident.
        for i in (0..buffer.len()).step_by(4096) {
            buffer[i] = step as u8;
        }
        let checksum = burn(Duration::from_millis(args.busy_ms));
        println!("step {step}: buffer {mib} MiB, work checksum {checksum:016x}");
        std::thread::sleep(Duration::from_millis(1000u64.saturating_sub(args.busy_ms)));
    }
    Ok(0)
}

/// Keeps one core busy for about `time`; the result keeps the work from being optimised away.
fn burn(time: Duration) -> u64 {
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while start.elapsed() < time {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    x
}

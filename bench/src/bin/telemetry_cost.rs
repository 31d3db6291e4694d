//! Benchmark: the CPU cost of sampling a run's telemetry on a host with 100 running processes.
//!
//! Starts a run of `--processes` sleeping processes (a `sh` and its `sleep` children, so the
//! tree has N + 1 members), then runs the same once-a-second loop for `--seconds` three times:
//! - **baseline**: the loop only sleeps;
//! - **tree**: each tick samples the run's process tree (`/proc` of every process on the
//!   host, then the tree's members);
//! - **tree + GPUs**: each tick also asks nvidia-smi, here the stand-in of the agent's tests
//!   (`agent/tests/fixtures/nvidia-smi`, the 8-GPU host with the run on two GPUs), so the
//!   figure is the agent's own work plus starting a small process twice.
//!
//! For each loop it prints the CPU time the benchmark process used (getrusage `RUSAGE_SELF`) and
//! that of the children it waited for (`RUSAGE_CHILDREN`: the nvidia-smi stand-ins) as % of
//! one core over the loop's wall time, and the ratio to the baseline. A real nvidia-smi costs
//! far more than the stand-in (tens of ms of CPU per call, mostly in the driver); measure it on
//! a GPU host to know it.
//!
//! The sampling code is the agent's own (`agent/src/telemetry`, compiled into this benchmark:
//! the agent is a binary crate).
//!
//! With `--runs N` it measures the resident agent's case instead: N runs of `--processes`
//! sleeping processes each, sampled once a second in two loops of the same length:
//! - **per run**: each run's sampler reads the host's `/proc` itself (the daemon before it
//!   shared one reading per round);
//! - **one table**: the host's process table is read once per tick and each run's tree derived
//!   from it (`ProcessTable::read` + `sample_from`, what the daemon does now).
//!
//! Usage: cargo build --release --bin telemetry_cost && target/release/telemetry_cost
//! [--seconds 20] [--processes 100] [--quick] [--runs N]

// The agent's module, compiled here as well; the benchmark uses only part of its API.
#[allow(dead_code)]
#[path = "../../../agent/src/telemetry/mod.rs"]
mod telemetry;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use runicorn_bench::machine_description;
use telemetry::nvidia_smi::{NvidiaSmi, Program};
use telemetry::process_tree::{ProcessTable, ProcessTreeSampler};
use telemetry::sampler::{RunSampler, SamplerConfig};

#[derive(Parser)]
struct Args {
    /// Seconds each loop runs (one sample a second)
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Sleeping processes in the sampled run
    #[arg(long, default_value_t = 100)]
    processes: usize,
    /// Three seconds per loop: a smoke test
    #[arg(long)]
    quick: bool,
    /// Sample this many runs (of --processes sleeping processes each) per tick, comparing one
    /// `/proc` reading per run with one per tick
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
}

/// The run's processes, killed whole when the benchmark ends.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.0.id()) {
            // SAFETY: kill has no memory preconditions; the group is ours and not yet reaped.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }
}

/// CPU time of this process and of its waited-for children so far.
#[derive(Clone, Copy)]
struct CpuTimes {
    own: Duration,
    children: Duration,
}

impl CpuTimes {
    fn now() -> anyhow::Result<Self> {
        let read = |who| -> anyhow::Result<Duration> {
            // SAFETY: an all-zero rusage is a valid value of this plain C struct.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `usage` is a valid, writable rusage for the call to fill.
            let rc = unsafe { libc::getrusage(who, &mut usage) };
            anyhow::ensure!(
                rc == 0,
                "getrusage failed: {}",
                std::io::Error::last_os_error()
            );
            let time = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec.max(0) as u64)
                    + Duration::from_micros(t.tv_usec.max(0) as u64)
            };
            Ok(time(usage.ru_utime) + time(usage.ru_stime))
        };
        Ok(CpuTimes {
            own: read(libc::RUSAGE_SELF)?,
            children: read(libc::RUSAGE_CHILDREN)?,
        })
    }
}

/// What one loop cost.
struct LoopCost {
    wall: Duration,
    own: Duration,
    children: Duration,
    /// Wall time of each tick's work, shortest first.
    ticks: Vec<Duration>,
}

impl LoopCost {
    fn percent(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.wall.as_secs_f64() * 100.0
    }
}

/// Runs `work` once a second for `seconds`, measuring the CPU it all took.
fn timed_loop(
    seconds: u64,
    mut work: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<LoopCost> {
    let before = CpuTimes::now()?;
    let start = Instant::now();
    let mut ticks = Vec::new();
    for tick in 0..seconds {
        let began = Instant::now();
        work()?;
        ticks.push(began.elapsed());
        let next = start + Duration::from_secs(tick + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let wall = start.elapsed();
    let after = CpuTimes::now()?;
    ticks.sort();
    Ok(LoopCost {
        wall,
        own: after.own.saturating_sub(before.own),
        children: after.children.saturating_sub(before.children),
        ticks,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = if args.quick { 3 } else { args.seconds.max(1) };
    if let Some(runs) = args.runs {
        return many_runs(runs.max(1), args.processes, seconds);
    }
    let run = start_run(args.processes)?;
    let root = run.0.id();
    let (members, child) = wait_for_tree(root, args.processes + 1)?;
    let stand_in = stand_in_nvidia_smi(root, child)?;
    let host_processes = std::fs::read_dir("/proc")?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    println!("machine: {}", machine_description());
    println!(
        "run: {members} processes ({} sleeping + their sh); host: {host_processes} processes; \
         {seconds} samples per loop, one a second",
        args.processes
    );

    let baseline = timed_loop(seconds, || Ok(()))?;

    let mut tree_only = RunSampler::new(root, SamplerConfig { nvidia_smi: None });
    let mut seen = 0;
    let tree = timed_loop(seconds, || {
        let sample = tree_only.sample(Instant::now());
        seen = sample.tree.processes;
        anyhow::ensure!(!sample.tree.ended, "the run ended while sampled");
        Ok(())
    })?;
    anyhow::ensure!(
        seen as usize == members,
        "sampled {seen} processes, not {members}"
    );

    let mut with_gpus = RunSampler::new(
        root,
        SamplerConfig {
            nvidia_smi: Some(NvidiaSmi {
                program: Program::Path(stand_in.path().join("nvidia-smi")),
                timeout: telemetry::nvidia_smi::DEFAULT_TIMEOUT,
            }),
        },
    );
    let mut gpus = 0;
    let gpu = timed_loop(seconds, || {
        let sample = with_gpus.sample(Instant::now());
        if let Some(error) = sample.gpu_error {
            anyhow::bail!("the stand-in nvidia-smi failed: {error}");
        }
        gpus = sample.gpus.len();
        Ok(())
    })?;
    anyhow::ensure!(gpus == 2, "the run was matched to {gpus} GPUs, not 2");

    println!();
    println!(
        "{:<14} {:>12} {:>14} {:>14} {:>12} {:>12}",
        "loop", "CPU ms", "% of a core", "children ms", "tick p50", "tick max"
    );
    for (name, cost) in [
        ("baseline", &baseline),
        ("tree", &tree),
        ("tree + GPUs", &gpu),
    ] {
        println!(
            "{name:<14} {:>12.1} {:>14.3} {:>14.1} {:>12} {:>12}",
            cost.own.as_secs_f64() * 1e3,
            cost.percent(cost.own),
            cost.children.as_secs_f64() * 1e3,
            format!(
                "{:.2} ms",
                cost.ticks[cost.ticks.len() / 2].as_secs_f64() * 1e3
            ),
            format!(
                "{:.2} ms",
                cost.ticks.last().copied().unwrap_or_default().as_secs_f64() * 1e3
            ),
        );
    }
    let ratio = |cost: &LoopCost| {
        if baseline.own.is_zero() {
            "∞ (the baseline used no measurable CPU)".to_owned()
        } else {
            format!(
                "{:.1}×",
                cost.own.as_secs_f64() / baseline.own.as_secs_f64()
            )
        }
    };
    println!();
    println!(
        "sampling the tree: {:.3} % of one core ({} the baseline's {:.3} %)",
        tree.percent(tree.own),
        ratio(&tree),
        baseline.percent(baseline.own)
    );
    println!(
        "tree + GPUs: {:.3} % of one core in the agent ({}), + {:.3} % in the nvidia-smi stand-ins",
        gpu.percent(gpu.own),
        ratio(&gpu),
        gpu.percent(gpu.children)
    );
    Ok(())
}

/// `--runs N`: N runs sampled per tick, each reading `/proc` itself, then from one table.
fn many_runs(runs: usize, processes: usize, seconds: u64) -> anyhow::Result<()> {
    let mut started = Vec::new();
    for _ in 0..runs {
        let run = start_run(processes)?;
        wait_for_tree(run.0.id(), processes + 1)?;
        started.push(run);
    }
    let roots: Vec<u32> = started.iter().map(|r| r.0.id()).collect();
    let host_processes = ProcessTable::read().parents().len();
    println!("machine: {}", machine_description());
    println!(
        "{runs} runs of {} processes ({processes} sleeping + their sh); host: {host_processes} \
         processes; {seconds} ticks per loop, one a second",
        processes + 1
    );
    let samplers = || -> Vec<RunSampler> {
        roots
            .iter()
            .map(|&root| RunSampler::new(root, SamplerConfig { nvidia_smi: None }))
            .collect()
    };
    let check = |sample: &telemetry::sampler::RunSample| -> anyhow::Result<()> {
        anyhow::ensure!(!sample.tree.ended, "a run ended while sampled");
        anyhow::ensure!(
            sample.tree.pids.len() == processes + 1,
            "sampled {} processes of a run, not {}",
            sample.tree.pids.len(),
            processes + 1
        );
        Ok(())
    };
    let baseline = timed_loop(seconds, || Ok(()))?;
    let mut each = samplers();
    let per_run = timed_loop(seconds, || {
        let now = Instant::now();
        for sampler in &mut each {
            check(&sampler.sample_with(now, None))?;
        }
        Ok(())
    })?;
    let mut shared = samplers();
    let one_table = timed_loop(seconds, || {
        let now = Instant::now();
        let table = ProcessTable::read();
        for sampler in &mut shared {
            check(&sampler.sample_from(&table, now, None))?;
        }
        Ok(())
    })?;
    println!();
    println!(
        "{:<14} {:>12} {:>14} {:>12} {:>12}",
        "loop", "CPU ms", "% of a core", "tick p50", "tick max"
    );
    for (name, cost) in [
        ("baseline", &baseline),
        ("per run", &per_run),
        ("one table", &one_table),
    ] {
        println!(
            "{name:<14} {:>12.1} {:>14.3} {:>12} {:>12}",
            cost.own.as_secs_f64() * 1e3,
            cost.percent(cost.own),
            format!(
                "{:.2} ms",
                cost.ticks[cost.ticks.len() / 2].as_secs_f64() * 1e3
            ),
            format!(
                "{:.2} ms",
                cost.ticks.last().copied().unwrap_or_default().as_secs_f64() * 1e3
            ),
        );
    }
    println!();
    println!(
        "{runs} runs: {:.3} % of one core reading /proc per run, {:.3} % reading it once per tick",
        per_run.percent(per_run.own),
        one_table.percent(one_table.own)
    );
    Ok(())
}

/// Starts `sh` with `processes` sleeping children, in a process group of its own.
fn start_run(processes: usize) -> anyhow::Result<Run> {
    let script =
        format!("i=0; while [ $i -lt {processes} ]; do sleep 3600 & i=$((i + 1)); done; wait");
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the run's sh")?;
    Ok(Run(child))
}

/// Waits until the run has `members` processes; their count and one child's pid.
fn wait_for_tree(root: u32, members: usize) -> anyhow::Result<(usize, u32)> {
    let mut sampler = ProcessTreeSampler::new(root);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sample = sampler.sample(Instant::now());
        if sample.pids.len() == members {
            return Ok((members, sample.pids.get(1).copied().unwrap_or(root)));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the run has {} processes after 30 s, not {members}",
            sample.pids.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent tests' stand-in nvidia-smi for the 8-GPU host, with the run's pids put in.
fn stand_in_nvidia_smi(root: u32, child: u32) -> anyhow::Result<tempfile::TempDir> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures/nvidia-smi");
    let dir = tempfile::tempdir()?;
    std::fs::copy(fixtures.join("stand-in.sh"), dir.path().join("nvidia-smi"))
        .with_context(|| format!("copying the stand-in from {}", fixtures.display()))?;
    for file in ["query-gpu.csv", "query-compute-apps.csv"] {
        let from = fixtures.join("host-8gpu").join(file);
        let text = std::fs::read_to_string(&from)
            .with_context(|| format!("reading {}", from.display()))?
            .replace("{RUN_PID}", &root.to_string())
            .replace("{RUN_CHILD_PID}", &child.to_string());
        std::fs::write(dir.path().join(file), text)?;
    }
    Ok(dir)
}

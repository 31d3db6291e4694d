//! Benchmark: what the resident agent costs while nothing happens. A root of N runs (100 steps ×
//! 3 metrics each, the tree of `sync_vs_rsync`) is indexed by `runicorn-agent daemon`; one hub
//! session lists it through `serve --stdio` (so the feed is complete and every run known), then
//! the daemon is left alone for `--minutes`, its file watcher on and its full scan every 60 s (the
//! default `--poll`). Reported: resident memory (VmRSS) sampled every second (median, max), the
//! peak during indexing (VmHWM), and CPU (user + system ticks of the daemon over the idle time)
//! as a percentage of one core. Baseline: the same root listed once by `runicorn-agent ls`
//! (its wall time and peak memory), the cost of the work the daemon keeps doing.
//!
//! Goals (issue 15): < 20 MB RSS and < 1 % of a core with 10,000 runs.
//!
//! Usage: cargo build --release --bins && target/release/daemon_idle [--runs 10000]
//! [--minutes 10] [--quick] [--agent PATH] [--tree DIR]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use runicorn_bench::sync_setup::{load_average, show, write_tree};
use runicorn_bench::{machine_description, sibling_binary};
use runicorn_tests::agent_pipe::AgentPipe;
use runicorn_tests::daemon::Daemon;

#[derive(Parser)]
struct Args {
    /// Runs in the tree
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Steps per run (3 metrics each)
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Minutes the daemon is left idle while measured
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// 300 runs and 10 seconds: a smoke test for CI
    #[arg(long)]
    quick: bool,
    /// The `runicorn-agent` to measure (default: the one beside this benchmark), e.g. the
    /// portable build that servers run (`target/agent-release/runicorn-agent`)
    #[arg(long, value_name = "PATH")]
    agent: Option<std::path::PathBuf>,
    /// Keep the tree in DIR (written there when DIR holds no `runs/` yet, reused otherwise:
    /// its index is removed first, so the daemon always starts on a fresh one)
    #[arg(long, value_name = "DIR")]
    tree: Option<std::path::PathBuf>,
}

/// A field of `/proc/PID/status` in kB.
fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU ticks of a process.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit(')')
        .next()
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?;
    // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    Ok(get(14)? + get(15)?)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// `runicorn-agent ls` of the root once: wall time and peak RSS (the baseline).
fn ls_once(agent: &Path, root: &Path) -> anyhow::Result<(Duration, u64)> {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(agent)
        .args(["ls", "--json", "--root"])
        .arg(root)
        .output();
    let wall = start.elapsed();
    match out {
        Ok(o) if o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let kb = err
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0);
            Ok((wall, kb))
        }
        _ => {
            // No /usr/bin/time: the wall time alone.
            let start = Instant::now();
            let o = Command::new(agent)
                .args(["ls", "--json", "--root"])
                .arg(root)
                .output()?;
            anyhow::ensure!(o.status.success(), "runicorn-agent ls failed");
            Ok((start.elapsed(), 0))
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = args.runs.min(300);
        args.steps = args.steps.min(20);
        args.minutes = args.minutes.min(10.0 / 60.0);
    }
    let agent = match &args.agent {
        Some(path) => path.clone(),
        None => sibling_binary("runicorn-agent")?,
    };
    let base = tempfile::Builder::new().prefix("daemon-idle-").tempdir()?;
    let root = match &args.tree {
        Some(dir) => dir.clone(),
        None => base.path().join("root"),
    };
    let wrote = if root.join("runs").is_dir() {
        // A kept tree: the index goes, so the daemon starts on a fresh one as in a fresh tree.
        let index = root.join(".runicorn-agent");
        if index.exists() {
            std::fs::remove_dir_all(&index)?;
        }
        Duration::ZERO
    } else {
        std::fs::create_dir_all(&root)?;
        write_tree(&root, args.runs, args.steps)?
    };
    println!("machine: {}", machine_description());
    println!(
        "tree: {} runs × {} steps × 3 metrics, written in {} (not measured); agent {}",
        args.runs,
        args.steps,
        show(wrote),
        agent.display()
    );
    println!("load average at start: {}", load_average());
    let (ls_wall, ls_kb) = ls_once(&agent, &root)?;

    let started = Instant::now();
    let daemon = Daemon::spawn_command(Command::new(&agent), &root, &[]).wait_answering();
    let pid = daemon.pid();
    // One session lists everything: the first full scan is done and the feed complete.
    let mut pipe = AgentPipe::handshake(AgentPipe::spawn_command(
        Command::new(&agent),
        &root,
        &[],
        &[],
    ));
    let listed: usize = pipe
        .changes_all(None, 2000)
        .iter()
        .map(|b| b.runs.len())
        .sum();
    anyhow::ensure!(
        listed == args.runs,
        "the daemon listed {listed} of {} runs",
        args.runs
    );
    pipe.close_stdin();
    let _ = pipe.wait_exit(Duration::from_secs(30));
    let indexed = started.elapsed();
    let hwm = status_kb(pid, "VmHWM:")?;
    // Let the session's end settle before measuring.
    std::thread::sleep(Duration::from_secs(2));

    let idle = Duration::from_secs_f64(args.minutes * 60.0);
    let ticks_before = cpu_ticks(pid)?;
    let t0 = Instant::now();
    let mut rss = Vec::new();
    let mut rss_at: Vec<(f64, u64)> = Vec::new();
    while t0.elapsed() < idle {
        std::thread::sleep(Duration::from_secs(1).min(idle.saturating_sub(t0.elapsed())));
        rss.push(status_kb(pid, "VmRSS:")?);
        rss_at.push((t0.elapsed().as_secs_f64(), *rss.last().unwrap_or(&0)));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu_s = (cpu_ticks(pid)? - ticks_before) as f64 / ticks_per_second();
    let cpu_pct = cpu_s / wall * 100.0;
    rss.sort_unstable();
    let median = rss.get(rss.len() / 2).copied().unwrap_or(0);
    let max = rss.last().copied().unwrap_or(0);
    drop(daemon);

    println!(
        "baseline: runicorn-agent ls of the root once: {} (peak RSS {})",
        show(ls_wall),
        if ls_kb > 0 { mb(ls_kb) } else { "?".into() }
    );
    println!(
        "daemon: started, indexed and listed {} runs in {} (peak RSS while indexing {})",
        args.runs,
        show(indexed),
        mb(hwm)
    );
    println!(
        "daemon idle for {:.1} min: RSS median {}, max {} ({} samples); CPU {:.2} s = {:.2} % of one core",
        wall / 60.0,
        mb(median),
        mb(max),
        rss.len(),
        cpu_s,
        cpu_pct
    );
    // When the highest samples were taken (seconds into the idle time): a full scan every
    // `--poll` (60 s) shows as a peak at that period.
    rss_at.sort_by_key(|s| std::cmp::Reverse(s.1));
    let peaks: Vec<String> = rss_at
        .iter()
        .take(5)
        .map(|(t, kb)| format!("{} at {t:.0} s", mb(*kb)))
        .collect();
    println!("highest RSS samples: {}", peaks.join(", "));
    println!("load average at the end: {}", load_average());
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "goal idle RSS < 20 MB ({} runs): {}",
        args.runs,
        verdict(max < 20 * 1024)
    );
    println!(
        "goal idle CPU < 1 % of a core ({} runs): {}",
        args.runs,
        verdict(cpu_pct < 1.0)
    );
    Ok(())
}

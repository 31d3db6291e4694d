//! Benchmark: a first and an incremental sync by `runicorn-hub` over SSH, against `rsync -a` of
//! the same tree over the same sshd, in the same run.
//!
//! Builds a storage root of N runs (100 steps × 3 metrics each, written by the Rust writer;
//! timed apart, not measured), starts a real OpenSSH server on loopback, and times:
//!
//! - the first sync: the whole `runicorn-hub connect USER@127.0.0.1:PORT --agent … --root …
//!   --once` command (SSH handshake, agent start, listing, every point into a fresh store),
//!   with a fresh agent index and with one the agent built before, against `rsync -a` of the
//!   root (its index left out) into an empty folder. "Cold" drops the page cache before each
//!   command and reads the programs back (cold data, warm programs; `--cold-programs` leaves
//!   them cold), for both sides alike. Every store and copy is kept until the end (deleting a
//!   big tree slows the next file creations down on some disks);
//! - the incremental sync: one run gains 10 steps, then `runicorn-hub sync --json` end to end
//!   (and the `seconds` and `requests` it prints), against `rsync -a` into the synced copy;
//!   without, then with a resident agent (`runicorn-agent daemon` on the root, which the
//!   agent that `sync` starts over SSH attaches to; issue 15: < 200 ms);
//! - both again through a relay that adds `--rtt-ms` of round-trip time (both sides use it);
//! - a breakdown of where a first sync's time goes: the fixed cost of a connection (an empty
//!   root), the agent alone on pipes with the hub's requests, and `connect local:ROOT` (no SSH).
//!
//! Goals (issue "Sync over SSH"): first sync ≤ 1.0 × rsync; incremental < 200 ms and ≤ 3 round
//! trips.
//!
//! Usage: cargo build --release --bins && target/release/sync_vs_rsync [--runs 10000] [--quick]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use runicorn_bench::sync_setup::{
    agent_alone, append_steps, best_median, load_average, private_binaries, program_files,
    remove_agent_index, run_rel_dir, show, store_totals, time_command, tree_size, warm_programs,
    write_tree, AgentBreakdown, Link, Server, SyncReport, METRICS_PER_STEP,
};
use runicorn_bench::{drop_page_cache, machine_description};
use runicorn_tests::daemon::Daemon;
use tempfile::TempDir;

#[derive(Parser)]
struct Args {
    /// Runs in the tree
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Steps per run (3 metrics each)
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Repetitions of each first sync
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Incremental syncs (each after a change of another run)
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// Steps appended to the changed run
    #[arg(long, default_value_t = 10)]
    change_steps: usize,
    /// Round-trip time added by the relay for the second set of figures (0: skip them)
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// Skip the breakdown of the first sync
    #[arg(long)]
    no_breakdown: bool,
    /// Skip the warm page cache figures of the first sync
    #[arg(long)]
    no_warm: bool,
    /// "Cold" leaves the programs cold too (by default they are read back into the page cache
    /// after it is dropped, so only the data is cold)
    #[arg(long)]
    cold_programs: bool,
    /// Skip the first-sync figures (measure the incremental syncs only)
    #[arg(long)]
    no_first: bool,
    /// Skip the incremental syncs with a resident agent
    #[arg(long)]
    no_resident: bool,
    /// Folder for the tree, stores and copies (default: a temporary folder)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A small tree and one repetition: a smoke test for CI (seconds)
    #[arg(long)]
    quick: bool,
    /// Only write the tree into this folder and exit (for profiling by hand)
    #[arg(long, value_name = "DIR")]
    write_tree: Option<PathBuf>,
}

struct Bench {
    hub: PathBuf,
    agent: PathBuf,
    server: Server,
    base: TempDir,
    root: PathBuf,
    runs: usize,
    /// Points in the tree (grows with every change).
    points: u64,
    can_drop: bool,
    /// Whether "cold" re-reads the programs after dropping the cache (data cold, programs warm).
    warm_programs: bool,
    programs: Vec<PathBuf>,
    changed: usize,
    /// Stores and copies made so far, deleted only at the end: on this kind of virtual disk,
    /// creating files right after deleting a tree of them is several times slower, which would
    /// make the next command (rsync's 30,000 new files) look worse than it is.
    kept: std::cell::RefCell<Vec<TempDir>>,
}

/// One side's timings in a table row.
/// Wall times and the machine's CPU seconds of some repetitions.
type Samples = Vec<(Duration, f64)>;

fn walls(samples: &[(Duration, f64)]) -> Vec<Duration> {
    samples.iter().map(|s| s.0).collect()
}

fn median_wall(samples: &[(Duration, f64)]) -> Duration {
    best_median(&walls(samples)).1
}

fn row(label: &str, samples: &[(Duration, f64)]) -> String {
    let (best, median) = best_median(&walls(samples));
    let mut cpu: Vec<f64> = samples.iter().map(|s| s.1).collect();
    cpu.sort_by(f64::total_cmp);
    format!(
        "  {label:<52} best {:>8}  median {:>8}  (CPU {:.2} s)",
        show(best),
        show(median),
        cpu.get(cpu.len() / 2).copied().unwrap_or(f64::NAN)
    )
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

impl Bench {
    /// A fresh folder, kept until the end of the benchmark.
    fn scratch(&self, prefix: &str) -> anyhow::Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.base.path())?;
        let path = dir.path().to_owned();
        self.kept.borrow_mut().push(dir);
        Ok(path)
    }

    /// Before a timed command: the writes of the previous one reach the disk (so their
    /// write-back does not land in this one), and for "cold" the page cache is dropped.
    fn settle(&self, cold: bool) {
        let _ = std::process::Command::new("sync").status();
        if cold && self.can_drop {
            drop_page_cache();
            if self.warm_programs {
                warm_programs(&self.programs);
            }
        }
    }

    /// One whole `connect --once` into a fresh store; checks the store got every point.
    fn hub_first(
        &self,
        link: &Link,
        fresh_index: bool,
        cold: bool,
    ) -> anyhow::Result<(Duration, f64)> {
        let hub_dir = &self.scratch("store-")?;
        if fresh_index {
            remove_agent_index(&self.root)?;
        }
        self.settle(cold);
        let mut cmd = self
            .server
            .connect(&self.hub, hub_dir, link, &self.agent, &self.root);
        let took = time_command(cmd.args(["--once", "--quiet"]))?;
        let (runs, points) = store_totals(hub_dir)?;
        anyhow::ensure!(
            runs == self.runs as u64 && points == self.points,
            "the store holds {runs} runs / {points} points, the tree {} / {}",
            self.runs,
            self.points
        );
        Ok((took.wall, took.cpu))
    }

    /// One `rsync -a` into an empty folder; checks every file arrived.
    fn rsync_first(&self, link: &Link, cold: bool) -> anyhow::Result<(Duration, f64)> {
        let dest = &self.scratch("rsync-")?;
        self.settle(cold);
        let took = time_command(&mut self.server.rsync(link, &self.root, dest))?;
        let (want, _) = tree_size(&self.root);
        let (got, _) = tree_size(dest);
        anyhow::ensure!(got == want, "rsync copied {got} of {want} files");
        Ok((took.wall, took.cpu))
    }

    fn first_sync(&self, link: &Link, cold: bool, repeats: usize) -> anyhow::Result<(f64, f64)> {
        let (mut fresh, mut built, mut rsync) = (Samples::new(), Samples::new(), Samples::new());
        for _ in 0..repeats {
            fresh.push(self.hub_first(link, true, cold)?);
            built.push(self.hub_first(link, false, cold)?);
            rsync.push(self.rsync_first(link, cold)?);
        }
        println!(
            "first sync, {} page cache ({} repetitions, interleaved):",
            if cold { "cold" } else { "warm" },
            repeats
        );
        println!("{}", row("hub connect --once, fresh agent index", &fresh));
        println!(
            "{}",
            row("hub connect --once, agent index already built", &built)
        );
        println!("{}", row("rsync -a into an empty folder", &rsync));
        let r = median_wall(&rsync).as_secs_f64();
        let ratio_fresh = median_wall(&fresh).as_secs_f64() / r;
        let ratio_built = median_wall(&built).as_secs_f64() / r;
        println!(
            "  ratio hub / rsync (medians): fresh index {ratio_fresh:.2}, built index {ratio_built:.2}"
        );
        Ok((ratio_fresh, ratio_built))
    }

    /// Changes one more run (appends steps) and returns its index.
    fn change_a_run(&mut self, steps: usize) -> anyhow::Result<()> {
        let i = (self.changed * 7919 + 17) % self.runs;
        self.changed += 1;
        let dir = self.root.join(run_rel_dir(i));
        append_steps(&dir, 1_000_000 + self.changed as i64 * 1000, steps)?;
        self.points += (steps * METRICS_PER_STEP) as u64;
        Ok(())
    }

    /// The incremental syncs; with `resident`, a resident agent serves the root meanwhile (it
    /// has indexed the root before the first sync; the sessions attach to it).
    fn incremental(
        &mut self,
        link: &Link,
        changes: usize,
        steps: usize,
        resident: bool,
    ) -> anyhow::Result<bool> {
        let _daemon = if resident {
            let d = Daemon::spawn_command(std::process::Command::new(&self.agent), &self.root, &[]);
            Some(d.wait_answering())
        } else {
            None
        };
        let label = if resident {
            "hub sync --json, whole command, resident agent"
        } else {
            "hub sync --json, whole command"
        };
        // A synced store and a synced copy to start from.
        let hub_dir = &self.scratch("store-")?;
        let mut connect = self
            .server
            .connect(&self.hub, hub_dir, link, &self.agent, &self.root);
        time_command(connect.args(["--once", "--quiet"]))?;
        let dest = &self.scratch("rsync-")?;
        time_command(&mut self.server.rsync(link, &self.root, dest))?;

        let mut results = Vec::new();
        for cold in [false, true] {
            if cold && !self.can_drop {
                continue;
            }
            let (mut hub, mut rsync, mut reports) = (Samples::new(), Samples::new(), Vec::new());
            for _ in 0..changes {
                self.change_a_run(steps)?;
                self.settle(cold);
                let mut sync = self.server.hub(&self.hub, hub_dir);
                let took = time_command(sync.args(["sync", "--json"]))?;
                let report = SyncReport::parse(&took.stdout)?;
                anyhow::ensure!(
                    report.points == (steps * METRICS_PER_STEP) as u64 && report.runs == 1,
                    "the incremental sync moved {report:?}"
                );
                hub.push((took.wall, took.cpu));
                reports.push(report);
                self.settle(cold);
                let r = time_command(&mut self.server.rsync(link, &self.root, dest))?;
                rsync.push((r.wall, r.cpu));
            }
            let (_, store_points) = store_totals(hub_dir)?;
            anyhow::ensure!(store_points == self.points, "the store missed points");
            let mut secs: Vec<f64> = reports.iter().map(|r| r.seconds).collect();
            secs.sort_by(f64::total_cmp);
            let requests = reports.iter().map(|r| r.requests).max().unwrap_or(0);
            println!(
                "incremental sync, {} page cache: one run gains {steps} steps × 3 metrics ({changes} times)",
                if cold { "cold" } else { "warm" }
            );
            println!("{}", row(label, &hub));
            println!(
                "  {:<52} median {:.0} ms; requests: {requests} (max), handshake not counted",
                "  its own `seconds` (the round after the handshake)",
                secs[secs.len() / 2] * 1e3
            );
            println!("{}", row("rsync -a into the synced copy", &rsync));
            let hub_median = median_wall(&hub);
            let ratio = hub_median.as_secs_f64() / median_wall(&rsync).as_secs_f64();
            println!("  ratio hub / rsync (medians): {ratio:.2}");
            results.push((cold, hub_median, requests));
        }
        let warm = results.iter().find(|r| !r.0).copied();
        Ok(warm.is_some_and(|(_, median, requests)| {
            median < Duration::from_millis(200) && requests <= 3
        }))
    }

    fn breakdown(&self, link: &Link, warm_ratio: Option<f64>) -> anyhow::Result<()> {
        println!("breakdown of the first sync (warm page cache, fresh agent index, best of 3):");
        // The fastest of three, with the CPU it took.
        let best = |f: &mut dyn FnMut() -> anyhow::Result<(Duration, f64)>| {
            let mut t = Vec::new();
            for _ in 0..3 {
                t.push(f()?);
            }
            t.sort_by_key(|s| s.0);
            anyhow::Ok(t[0])
        };
        let empty = &self.scratch("empty-root-")?;
        let fixed = best(&mut || {
            let hub_dir = &self.scratch("store-")?;
            let mut cmd = self
                .server
                .connect(&self.hub, hub_dir, link, &self.agent, empty);
            let t = time_command(cmd.args(["--once", "--quiet"]))?;
            Ok((t.wall, t.cpu))
        })?;
        println!(
            "{}",
            row(
                "hub connect --once, empty root (SSH + agent + store)",
                &[fixed]
            )
        );
        let mut alone_fresh = AgentBreakdown::default();
        let mut alone_built = AgentBreakdown::default();
        let mut best_fresh = Duration::MAX;
        let mut best_built = Duration::MAX;
        for _ in 0..3 {
            remove_agent_index(&self.root)?;
            let b = agent_alone(&self.agent, &self.root)?;
            let total = b.hello + b.changes + b.points;
            if total < best_fresh {
                best_fresh = total;
                alone_fresh = b;
            }
            let b = agent_alone(&self.agent, &self.root)?;
            let total = b.hello + b.changes + b.points;
            if total < best_built {
                best_built = total;
                alone_built = b;
            }
        }
        for (label, b, total) in [
            ("fresh index", &alone_fresh, best_fresh),
            ("built index", &alone_built, best_built),
        ] {
            println!(
                "  agent alone on pipes, {label}: total {} = start+hello {} + changes {} (first page {}, {} runs) + points {} ({} requests, {} points, {:.1} MB of frames; decoding them here {})",
                show(total),
                show(b.hello),
                show(b.changes),
                show(b.first_changes),
                b.runs,
                show(b.points),
                b.point_requests,
                b.point_count,
                b.frame_bytes as f64 / 1e6,
                show(b.decode)
            );
        }
        let local = best(&mut || {
            let hub_dir = &self.scratch("store-")?;
            remove_agent_index(&self.root)?;
            let mut cmd = self.server.hub(&self.hub, hub_dir);
            cmd.arg("connect")
                .arg(format!("local:{}", self.root.display()))
                .arg("--agent")
                .arg(&self.agent)
                .args(["--name", "gpu", "--no-ui", "--once", "--quiet"]);
            let t = time_command(&mut cmd)?;
            Ok((t.wall, t.cpu))
        })?;
        println!(
            "{}",
            row(
                "hub connect local:ROOT --once (no SSH), fresh index",
                &[local]
            )
        );
        let ssh = best(&mut || self.hub_first(link, true, false))?;
        println!(
            "{}",
            row("hub connect over SSH --once, fresh index", &[ssh])
        );
        println!(
            "  ⇒ over SSH minus local: {:+.2} s; local minus agent alone (hub decode + store, where they do not overlap the agent): {:+.2} s; agent alone {}",
            ssh.0.as_secs_f64() - local.0.as_secs_f64(),
            local.0.as_secs_f64() - best_fresh.as_secs_f64(),
            show(best_fresh)
        );
        if let Some(r) = warm_ratio {
            println!("  (warm ratio hub / rsync with a fresh index, from above: {r:.2})");
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = args.runs.min(200);
        args.steps = args.steps.min(20);
        args.repeats = 1;
        args.changes = args.changes.min(2);
    }
    if let Some(dir) = &args.write_tree {
        let took = write_tree(dir, args.runs, args.steps)?;
        println!(
            "wrote {} runs into {} in {}",
            args.runs,
            dir.display(),
            show(took)
        );
        return Ok(());
    }
    let base = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new()
                .prefix("sync-bench-")
                .tempdir_in(d)?
        }
        None => tempfile::Builder::new().prefix("sync-bench-").tempdir()?,
    };
    let (hub, agent) = private_binaries(base.path())?;
    let root = base.path().join("root");
    std::fs::create_dir_all(&root)?;
    let wrote = write_tree(&root, args.runs, args.steps)?;
    let (files, bytes) = tree_size(&root);
    let can_drop = drop_page_cache();
    let server = Server::start()?;
    let programs = program_files(&[&hub, &agent]);

    println!("machine: {}", machine_description());
    println!(
        "tree: {} runs × {} steps × {METRICS_PER_STEP} metrics = {} points; {files} files, {:.1} MB; written in {} (not measured)",
        args.runs,
        args.steps,
        args.runs * args.steps * METRICS_PER_STEP,
        bytes as f64 / 1e6,
        show(wrote)
    );
    println!(
        "hub: {} (agent {}); rsync: {}",
        hub.display(),
        agent.display(),
        first_line("rsync", &["--version"])
    );
    println!(
        "page cache: {}",
        match (can_drop, args.cold_programs) {
            (true, false) => "dropped before each cold command, then the programs (hub, agent, rsync, ssh, sshd, their libraries) read back: cold data, warm programs, for both sides alike",
            (true, true) => "dropped before each cold command (data and programs cold), for both sides alike",
            (false, _) => "cannot be dropped (not root): every figure is warm",
        }
    );
    println!("remote sessions: HOME is an empty folder (no ~/.bashrc runs on the server side)");
    println!(
        "CPU: busy seconds of the whole machine during each command (both ends); load average at start: {}",
        load_average()
    );

    let mut bench = Bench {
        hub,
        agent,
        server,
        root,
        base,
        runs: args.runs,
        points: (args.runs * args.steps * METRICS_PER_STEP) as u64,
        can_drop,
        warm_programs: !args.cold_programs,
        programs,
        changed: 0,
        kept: std::cell::RefCell::default(),
    };
    let mut rtts = vec![Duration::ZERO];
    if args.rtt_ms > 0 {
        rtts.push(Duration::from_millis(args.rtt_ms));
    }
    let mut goals = Vec::new();
    for rtt in rtts {
        let link = bench.server.link(rtt);
        println!();
        println!("== link: {} ==", link.describe());
        let (cold_fresh, cold_built) = if args.no_first {
            (f64::NAN, f64::NAN)
        } else {
            bench.first_sync(&link, can_drop, args.repeats)?
        };
        let warm = if args.no_first || args.no_warm || !can_drop {
            None
        } else {
            Some(bench.first_sync(&link, false, args.repeats)?)
        };
        let incremental = bench.incremental(&link, args.changes, args.change_steps, false)?;
        let resident = if args.no_resident {
            None
        } else {
            Some(bench.incremental(&link, args.changes, args.change_steps, true)?)
        };
        if rtt.is_zero() && !args.no_breakdown && !args.no_first {
            bench.breakdown(&link, warm.map(|w| w.0))?;
        }
        goals.push((
            link.describe(),
            cold_fresh,
            cold_built,
            incremental,
            resident,
        ));
    }
    println!();
    println!("load average at the end: {}", load_average());
    for (link, fresh, built, incremental, resident) in goals {
        if !args.no_first {
            println!(
            "goal first sync ≤ 1.0 × rsync ({link}, {}): fresh index {fresh:.2} -> {}; built index {built:.2} -> {}",
            if can_drop { "cold" } else { "warm" },
            verdict(fresh <= 1.0),
            verdict(built <= 1.0)
        );
        }
        println!(
            "goal incremental < 200 ms and ≤ 3 requests ({link}, warm): {}",
            verdict(incremental)
        );
        if let Some(resident) = resident {
            println!(
                "goal incremental < 200 ms and ≤ 3 requests with a resident agent ({link}, warm): {}",
                verdict(resident)
            );
        }
    }
    Ok(())
}

fn first_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}

//! Shared pieces of the sync benchmarks (`sync_vs_rsync`, `live_latency`): a storage root of
//! sample runs, a real sshd on loopback (optionally behind a relay that adds delay), the
//! `runicorn-hub` and `rsync` commands against it, counting what the hub's store holds, and a
//! hand-driven agent session (`agent_alone`) for the breakdown of where a sync's time goes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use runicorn_protocol::wire::frame::read_frame_payload;
use runicorn_protocol::wire::{
    decode_payload, write_frame, Body, ChangesRequest, Cursor, Envelope, Hello, PointsRequest,
    PointsWanted, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_NAME, PROTOCOL_VERSION,
};
use runicorn_store::{RunFilter, Store};
use runicorn_tests::relay::Relay;
use runicorn_tests::sshd::{current_user, ClientHome, Sshd};

use crate::write_sample_run;

/// Metrics per step of the sample runs (`write_sample_run`: loss, acc, lr).
pub const METRICS_PER_STEP: usize = 3;

/// Where sample run `i` lives, relative to the root (the layout of `ls_many_runs`).
pub fn run_rel_dir(i: usize) -> PathBuf {
    PathBuf::from(format!("runs/group{}/sub{}/run{i:06}", i % 10, i % 7))
}

/// Writes `runs` finished sample runs of `steps` steps under `root` on two threads; returns
/// how long it took (reported, never part of a measurement).
pub fn write_tree(root: &Path, runs: usize, steps: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for i in (t..runs).step_by(threads) {
                        write_sample_run(
                            root,
                            Some(format!("group{}/sub{}", i % 10, i % 7)),
                            format!("run{i:06}"),
                            steps,
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a tree-writing thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(start.elapsed())
}

/// Files and bytes under `dir`, not following links, skipping the agent's index.
pub fn tree_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if entry.file_name() != ".runicorn-agent" {
                    stack.push(entry.path());
                }
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata().map_or(0, |m| m.len());
            }
        }
    }
    (files, bytes)
}

/// Appends `steps` steps of the three sample metrics to run `dir`'s `events.jsonl`, as the Rust
/// writer formats them (one change of a run in the middle of training).
pub fn append_steps(run_dir: &Path, from_step: i64, steps: usize) -> anyhow::Result<()> {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut text = String::new();
    for s in 0..steps as i64 {
        let step = from_step + s;
        text.push_str(&format!(
            "{{\"ts\": {t}, \"type\": \"metrics\", \"data\": {{\"loss\": {}, \"acc\": {}, \"lr\": 0.001, \"global_step\": {step}, \"time\": {t}}}}}\n",
            1.0 / (step as f64 + 1.0),
            step as f64 / 1e4
        ));
    }
    let path = run_dir.join("events.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Deletes the agent's index under `root` (the next agent starts with a fresh one).
pub fn remove_agent_index(root: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(root.join(".runicorn-agent")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A real sshd on loopback and a client home that trusts it (and any relay in front of it).
/// Remote sessions get an empty `HOME`, so the login shell of each SSH command does not run
/// this machine's `~/.bashrc` (here `pyenv init`, about 130 ms per command, for both sides).
pub struct Server {
    pub sshd: Sshd,
    pub home: ClientHome,
    pub user: String,
    _remote_home: tempfile::TempDir,
}

/// How the client reaches the server: straight to sshd, or through a delay relay.
pub struct Link {
    pub port: u16,
    /// Added round-trip time.
    pub rtt: Duration,
    _relay: Option<Relay>,
}

impl Link {
    pub fn describe(&self) -> String {
        if self.rtt.is_zero() {
            "loopback".into()
        } else {
            format!("loopback + {} ms round trip (relay)", self.rtt.as_millis())
        }
    }
}

impl Server {
    pub fn start() -> anyhow::Result<Server> {
        let remote_home = tempfile::Builder::new().prefix("remote-home-").tempdir()?;
        let sshd = Sshd::builder().remote_home(remote_home.path()).start();
        let home = sshd.client_home();
        home.trust(&sshd);
        Ok(Server {
            sshd,
            home,
            user: current_user(),
            _remote_home: remote_home,
        })
    }

    /// A link to sshd adding `rtt` of round-trip time (none: straight to sshd).
    pub fn link(&self, rtt: Duration) -> Link {
        if rtt.is_zero() {
            return Link {
                port: self.sshd.port(),
                rtt,
                _relay: None,
            };
        }
        let relay = Relay::start(self.sshd.addr(), rtt / 2);
        self.home.trust_as(
            &format!("[127.0.0.1]:{}", relay.addr.port()),
            self.sshd.host_public_key(),
        );
        Link {
            port: relay.addr.port(),
            rtt,
            _relay: Some(relay),
        }
    }

    /// `user@127.0.0.1:PORT` for the hub.
    pub fn spec(&self, link: &Link) -> String {
        format!("{}@127.0.0.1:{}", self.user, link.port)
    }

    /// `rsync -a` of `root/` into `dest/` over this link, with OpenSSH's client using the
    /// same key and known hosts as the hub (the agent's index is left out: the hub does not
    /// copy it either).
    pub fn rsync(&self, link: &Link, root: &Path, dest: &Path) -> Command {
        let ssh = format!(
            "ssh -F /dev/null -p {} -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes",
            link.port,
            self.home.ssh_dir().join("id_ed25519").display(),
            self.home.known_hosts().display()
        );
        let mut cmd = Command::new("rsync");
        cmd.env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .args(["-a", "--exclude=/.runicorn-agent/", "-e", &ssh])
            .arg(format!("{}@127.0.0.1:{}/", self.user, root.display()))
            .arg(format!("{}/", dest.display()));
        cmd
    }

    /// `runicorn-hub` with this client home and store directory.
    pub fn hub(&self, hub: &Path, hub_dir: &Path) -> Command {
        hub_command(hub, self.home.path(), hub_dir)
    }

    /// `runicorn-hub connect user@127.0.0.1:PORT --agent AGENT --root ROOT --name gpu --no-ui`.
    pub fn connect(
        &self,
        hub: &Path,
        hub_dir: &Path,
        link: &Link,
        agent: &Path,
        root: &Path,
    ) -> Command {
        let mut cmd = self.hub(hub, hub_dir);
        cmd.arg("connect")
            .arg(self.spec(link))
            .arg("--agent")
            .arg(agent)
            .arg("--root")
            .arg(root)
            .args(["--name", "gpu", "--no-ui"]);
        cmd
    }
}

/// `runicorn-hub` with `HOME`, the store directory, no ssh-agent and no colour.
pub fn hub_command(hub: &Path, home: &Path, hub_dir: &Path) -> Command {
    let mut cmd = Command::new(hub);
    cmd.env("HOME", home)
        .env("RUNICORN_HUB_DIR", hub_dir)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUNICORN_DIR")
        .env_remove("RUNICORN_LOG");
    cmd
}

/// One finished command: its wall time, the CPU time the whole machine spent meanwhile (both
/// ends of the link: hub or rsync, ssh, sshd, agent), and what it printed.
pub struct Timed {
    pub wall: Duration,
    /// Busy CPU seconds of every core during the command (from `/proc/stat`).
    pub cpu: f64,
    pub stdout: Vec<u8>,
}

/// Busy CPU seconds of the machine so far (user, nice, system, irq, softirq, steal).
pub fn machine_cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    // USER_HZ is 100 on Linux.
    busy / 100.0
}

/// Runs `cmd` to the end and times it; fails with its output when it fails.
pub fn time_command(cmd: &mut Command) -> anyhow::Result<Timed> {
    let cpu_before = machine_cpu_seconds();
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    let wall = start.elapsed();
    let cpu = machine_cpu_seconds() - cpu_before;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Timed {
        wall,
        cpu,
        stdout: out.stdout,
    })
}

/// The machine's load averages, for the record.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// What `runicorn-hub sync --json` printed for one remote.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncReport {
    pub runs: u64,
    pub points: u64,
    pub log_bytes: u64,
    pub requests: u64,
    pub seconds: f64,
}

impl SyncReport {
    pub fn parse(stdout: &[u8]) -> anyhow::Result<SyncReport> {
        let v: serde_json::Value =
            serde_json::from_slice(stdout).context("sync --json printed no JSON")?;
        let r = &v[0];
        anyhow::ensure!(r["ok"] == true, "the sync failed: {r}");
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        Ok(SyncReport {
            runs: n("runs"),
            points: n("points"),
            log_bytes: n("log_bytes"),
            requests: n("requests"),
            seconds: r["seconds"].as_f64().unwrap_or(f64::NAN),
        })
    }
}

/// Runs and metric points the hub's store holds (every remote).
pub fn store_totals(hub_dir: &Path) -> anyhow::Result<(u64, u64)> {
    let store = Store::open_read_only(hub_dir)?;
    let runs = store.list_runs(&RunFilter {
        include_deleted: true,
        ..RunFilter::default()
    })?;
    Ok((runs.len() as u64, runs.iter().map(|r| r.points).sum()))
}

/// The fastest and the median of some timings.
pub fn best_median(times: &[Duration]) -> (Duration, Duration) {
    let mut t = times.to_vec();
    t.sort();
    match t.len() {
        0 => (Duration::ZERO, Duration::ZERO),
        n => (t[0], t[n / 2]),
    }
}

/// The `p`-th percentile (0–100, nearest rank) of some values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Seconds, as `1.234 s` or `87 ms`.
pub fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// Where a first sync's time goes on the agent's side, measured without the hub: the agent on
/// pipes, answers read as fast as they come.
#[derive(Debug, Default)]
pub struct AgentBreakdown {
    /// Spawn until the `hello` answer.
    pub hello: Duration,
    /// The first `changes` page (it waits for the agent's first scan of the root).
    pub first_changes: Duration,
    /// Every `changes` page.
    pub changes: Duration,
    pub runs: usize,
    /// Every `points` request, sent at once, until the last answer is in.
    pub points: Duration,
    pub point_requests: usize,
    pub point_count: u64,
    /// Bytes of every answer frame.
    pub frame_bytes: u64,
    /// Time spent decoding answer frames (JSON → messages) on this side, included above.
    pub decode: Duration,
}

/// Copies `runicorn-hub` and `runicorn-agent` from beside this benchmark into `dir`, so that a
/// rebuild in the shared target folder cannot change them halfway through a measurement.
pub fn private_binaries(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for name in ["runicorn-hub", "runicorn-agent"] {
        let from = crate::sibling_binary(name)?;
        let to = dir.join(name);
        std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        out.push(to);
    }
    Ok((out[0].clone(), out[1].clone()))
}

/// Programs whose files `warm_programs` reads: the given ones, `rsync`, `ssh`, `sshd`, and the
/// shared libraries each of them loads (from `ldd`).
pub fn program_files(ours: &[&Path]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ours.iter().map(|p| p.to_path_buf()).collect();
    for system in [
        "/usr/bin/rsync",
        "/usr/bin/ssh",
        "/usr/sbin/sshd",
        "/bin/sh",
        "/bin/bash",
    ] {
        files.push(PathBuf::from(system));
    }
    let mut libs = Vec::new();
    for f in &files {
        let Ok(out) = Command::new("ldd").arg(f).output() else {
            continue;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = line
                .split("=>")
                .nth(1)
                .unwrap_or(line)
                .split_whitespace()
                .next()
                .unwrap_or("");
            if path.starts_with('/') && !libs.iter().any(|l: &PathBuf| l == Path::new(path)) {
                libs.push(PathBuf::from(path));
            }
        }
    }
    files.extend(libs);
    files
}

/// Reads every file in `files` (so programs start from memory after the page cache was
/// dropped: "cold" then means the data, for both sides alike).
pub fn warm_programs(files: &[PathBuf]) {
    for f in files {
        if let Ok(mut file) = std::fs::File::open(f) {
            let _ = std::io::copy(&mut file, &mut std::io::sink());
        }
    }
}

/// A `runicorn-agent serve --stdio` on pipes.
struct Pipe {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    next_id: u64,
    frame_bytes: u64,
    decode: Duration,
}

impl Pipe {
    fn send(&mut self, body: Body) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        write_frame(stdin, &Envelope { id, body }, DEFAULT_MAX_FRAME_BYTES)?;
        Ok(id)
    }

    fn recv(&mut self) -> anyhow::Result<Envelope> {
        loop {
            let payload = read_frame_payload(&mut self.stdout, DEFAULT_MAX_FRAME_BYTES)?;
            self.frame_bytes += payload.len() as u64 + 4;
            let t = Instant::now();
            let env = decode_payload(&payload)?;
            self.decode += t.elapsed();
            if !matches!(env.body, Body::Notice(_)) {
                return Ok(env);
            }
        }
    }

    fn request(&mut self, body: Body) -> anyhow::Result<Body> {
        let id = self.send(body)?;
        let env = self.recv()?;
        anyhow::ensure!(env.id == id, "answer {} to request {id}", env.id);
        Ok(env.body)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a whole first sync against `runicorn-agent serve --stdio --root ROOT` by hand (the
/// hub's requests: `changes` pages of 2,000 runs, then `points` for 256 runs per request with a
/// 6 MiB budget) and times each phase. Nothing is stored.
pub fn agent_alone(agent: &Path, root: &Path) -> anyhow::Result<AgentBreakdown> {
    let mut b = AgentBreakdown::default();
    let start = Instant::now();
    let mut child = Command::new(agent)
        .args(["serve", "--stdio", "--root"])
        .arg(root)
        .env_remove("RUNICORN_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let mut pipe = Pipe {
        stdin: child.stdin.take(),
        child,
        stdout: std::io::BufReader::with_capacity(256 * 1024, stdout),
        next_id: 1,
        frame_bytes: 0,
        decode: Duration::ZERO,
    };
    let hello = Hello {
        protocol: PROTOCOL_NAME.into(),
        versions: vec![PROTOCOL_VERSION],
        capabilities: vec![],
        software: "runicorn-bench/0".into(),
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        root: None,
        host: None,
        epoch: None,
    };
    match pipe.request(Body::Hello(hello))? {
        Body::Hello(_) => {}
        other => anyhow::bail!("expected hello, got {}", other.kind()),
    }
    b.hello = start.elapsed();

    let changes_start = Instant::now();
    let mut since: Option<Cursor> = None;
    let mut wanted = Vec::new();
    loop {
        let body = pipe.request(Body::Changes(ChangesRequest {
            since: since.clone(),
            max_runs: 2000,
        }))?;
        if b.first_changes.is_zero() {
            b.first_changes = changes_start.elapsed();
        }
        let Body::ChangeBatch(batch) = body else {
            anyhow::bail!("expected change_batch, got {}", body.kind());
        };
        for r in &batch.runs {
            if r.events.bytes > 0 {
                wanted.push((r.dir.clone(), r.events.bytes));
            }
        }
        b.runs += batch.runs.len();
        since = Some(batch.cursor);
        if !batch.more {
            break;
        }
    }
    b.changes = changes_start.elapsed();

    let points_start = Instant::now();
    let mut todo: Vec<PointsWanted> = wanted
        .iter()
        .map(|(dir, _)| PointsWanted {
            dir: dir.clone(),
            offset: 0,
            next_line: 1,
        })
        .collect();
    let sizes: std::collections::HashMap<String, u64> = wanted.into_iter().collect();
    while !todo.is_empty() {
        // Every request at once (the agent reads stdin on its own thread), then every answer.
        let mut ids = Vec::new();
        for group in todo.chunks(256) {
            ids.push(pipe.send(Body::Points(PointsRequest {
                runs: group.to_vec(),
                max_bytes: 6 * 1024 * 1024,
            }))?);
        }
        b.point_requests += ids.len();
        let mut next = Vec::new();
        for id in ids {
            let env = pipe.recv()?;
            anyhow::ensure!(env.id == id, "answer {} to request {id}", env.id);
            let Body::PointBatch(batch) = env.body else {
                anyhow::bail!("expected point_batch, got {}", env.body.kind());
            };
            for r in batch.runs {
                b.point_count += r.series.iter().map(|s| s.values.len() as u64).sum::<u64>();
                if !r.eof && !r.missing && r.to < sizes.get(&r.dir).copied().unwrap_or(0) {
                    next.push(PointsWanted {
                        dir: r.dir,
                        offset: r.to,
                        next_line: r.next_line,
                    });
                }
            }
        }
        todo = next;
    }
    b.points = points_start.elapsed();
    b.frame_bytes = pipe.frame_bytes;
    b.decode = pipe.decode;
    Ok(b)
}

//! Benchmark: one big file of a run brought from the server by the hub (a cache miss through
//! the dashboard's file route of a real `runicorn-hub ui`, which streams it over SFTP into the
//! cache, verifies it and sends it on) against OpenSSH's `sftp` getting the same file over the
//! same sshd, in the same run, at loopback and through a relay adding round-trip time.
//!
//! `sftp` runs twice: with its defaults (ChaCha20-Poly1305, 64 requests of 32 KiB in flight),
//! and with the cipher the hub prefers (`-c aes256-gcm@openssh.com`). Each `sftp` time includes its SSH
//! handshake (a few ms at loopback, about 4 round trips through the relay); the hub's first
//! transfer includes opening its file connection, later ones reuse it.
//!
//! A third figure is the transfer alone, as `runicorn-hub fetch` does it: the hub's library
//! (`RemoteFiles::ensure_cached`) in this process, into the cache, without the HTTP hop.
//!
//! Also: the hub's peak RSS (VmHWM) over the whole run of transfers, and the time of a cache
//! miss on a small file (the remote's file connection already open) in round trips.
//!
//! Goals (issue 11): throughput ≥ 0.9 × `sftp` at loopback and through the 50 ms relay; hub
//! RSS < 100 MB while fetching 1 GiB; a small miss ≈ one round trip plus the transfer.
//!
//! Usage: cargo build --release -p runicorn-hub -p runicorn-agent -p runicorn-bench
//!        target/release/transfer_vs_sftp [--size-mib 1024] [--rtt-ms 50] [--quick]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use runicorn_bench::machine_description;
use runicorn_bench::sync_setup::{private_binaries, show, time_command, Link, Server};
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};

#[derive(Parser)]
struct Args {
    /// Size of the big file, MiB
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Repetitions of each transfer (the best and the median are shown)
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Round-trip time added by the relay for the second set of figures (0: skip them)
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// A small file and one repetition: a smoke test for CI
    #[arg(long)]
    quick: bool,
}

/// The run the files live in, relative to the root.
const RUN_ID: &str = "transferbench";
const BIG: &str = "ckpt/big.bin";
const SMALL: &str = "media/small.png";
const SMALL_BYTES: u64 = 100 * 1024;

fn write_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::create_dir_all(path.parent().context("a parent")?)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut i) = (0u64, 0u64);
    while written < size {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let n = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        written += n as u64;
        i += 1;
    }
    out.flush()?;
    Ok(())
}

/// A run holding the big file and `count` small ones (one per cache miss measured).
fn write_run(root: &Path, size: u64, small_files: usize) -> anyhow::Result<PathBuf> {
    let mut spec = RunSpec::new(root, "runicorn-bench");
    spec.run_id = Some(RUN_ID.to_owned());
    let mut w = RunWriter::create(&spec)?;
    w.log_metrics(&[("loss", 1.0)], Some(0), None)?;
    let dir = w.dir().to_owned();
    write_file(&dir.join(BIG), size)?;
    for i in 0..small_files {
        write_file(&dir.join(format!("{SMALL}.{i}")), SMALL_BYTES)?;
        // Each small file different, so none is a cache hit of another.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(format!("{SMALL}.{i}")))?;
        f.write_all(format!("{i:>16}").as_bytes())?;
    }
    w.finish(RunOutcome::finished())?;
    Ok(dir)
}

/// `runicorn-hub ui --offline` on a free port; dropped: killed.
struct Ui {
    child: Child,
    addr: SocketAddr,
}

impl Ui {
    fn start(mut cmd: Command) -> anyhow::Result<Ui> {
        let mut child = cmd
            .args(["ui", "--offline", "--port", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let pipe = child.stderr.take().context("stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("dashboard: ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60))?;
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        Ok(Ui { child, addr })
    }

    /// Peak resident set of the hub so far, in MiB (VmHWM).
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// `GET target`, the body read and dropped; returns its length. Fails unless 200.
    fn fetch(&self, target: &str) -> anyhow::Result<u64> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut reader = BufReader::with_capacity(1 << 20, stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        anyhow::ensure!(line.contains(" 200 "), "GET {target}: {line}");
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line.trim().is_empty() {
                break;
            }
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Empties the hub's file cache (the store still lists the files: the next GET is a miss).
fn clear_cache(hub_dir: &Path) -> anyhow::Result<()> {
    let files = hub_dir.join("files");
    for entry in std::fs::read_dir(&files)?.flatten() {
        if entry.file_name() != "tmp" {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// `sftp -b BATCH` getting `remote` into `local` over `link`, as OpenSSH's client, with its
/// defaults, or `aes`: with the hub's cipher (`-c aes256-gcm@openssh.com`).
fn sftp_get(server: &Server, link: &Link, remote: &Path, local: &Path, tuned: bool) -> Command {
    let mut cmd = Command::new("sftp");
    cmd.env("HOME", server.home.path())
        .env_remove("SSH_AUTH_SOCK");
    if tuned {
        cmd.args(["-c", "aes256-gcm@openssh.com"]);
    }
    cmd.args(["-q", "-F", "/dev/null", "-P", &link.port.to_string(), "-i"])
        .arg(server.home.ssh_dir().join("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            server.home.known_hosts().display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-b",
        ])
        .arg(batch_file(remote, local))
        .arg(format!("{}@127.0.0.1", server.user));
    cmd
}

/// A batch file for `sftp -b` with one `get`.
fn batch_file(remote: &Path, local: &Path) -> PathBuf {
    let path = local.with_extension("batch");
    let _ = std::fs::write(
        &path,
        format!("get \"{}\" \"{}\"\n", remote.display(), local.display()),
    );
    path
}

/// Times `ensure_cached` of the big file `repeats` times in this process, the cache emptied
/// before each.
fn library_transfers(
    server: &Server,
    hub_dir: &Path,
    repeats: usize,
    size: u64,
) -> anyhow::Result<Vec<Duration>> {
    use runicorn_hub::file_fetch::RemoteFiles;
    use runicorn_hub::store_thread::StoreHandle;
    let run = runicorn_store::Store::open_read_only(hub_dir)?
        .list_runs(&runicorn_store::RunFilter::default())?
        .into_iter()
        .find(|r| r.id == RUN_ID)
        .context("the bench run is synced")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let files =
        RemoteFiles::with_connect_options(StoreHandle::open(hub_dir)?, server.home.options());
    let mut times = Vec::new();
    for _ in 0..repeats {
        clear_cache(hub_dir)?;
        let start = Instant::now();
        let cached = rt.block_on(files.ensure_cached(run.clone(), BIG.to_owned(), None))?;
        times.push(start.elapsed());
        anyhow::ensure!(
            cached.size == size,
            "cached {} of {size} bytes",
            cached.size
        );
    }
    clear_cache(hub_dir)?;
    Ok(times)
}

fn best_and_median(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (size, repeats) = if args.quick {
        (16 << 20, 1)
    } else {
        (args.size_mib << 20, args.repeats.max(1))
    };
    let work = tempfile::Builder::new()
        .prefix("transfer-bench-")
        .tempdir()?;
    let (hub, agent) = private_binaries(work.path())?;
    let root = work.path().join("root");
    let run_dir = write_run(&root, size, repeats * 2)?;
    let server = Server::start()?;
    println!("machine: {}", machine_description());
    println!(
        "file: {} MiB; repetitions: {repeats}; the hub's and sftp's copies on the same disk",
        size >> 20
    );
    let mut links = vec![Duration::ZERO];
    if args.rtt_ms > 0 {
        links.push(Duration::from_millis(args.rtt_ms));
    }
    for rtt in links {
        let link = server.link(rtt);
        let hub_dir = work.path().join(format!("hub-{}", rtt.as_millis()));
        time_command(
            server
                .connect(&hub, &hub_dir, &link, &agent, &root)
                .arg("--once"),
        )?;
        let ui = Ui::start(server.hub(&hub, &hub_dir))?;
        let big = format!("/api/runs/{RUN_ID}/files/{BIG}");
        let (mut ours, mut theirs, mut tuned) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            clear_cache(&hub_dir)?;
            let start = Instant::now();
            let got = ui.fetch(&big)?;
            ours.push(start.elapsed());
            anyhow::ensure!(got == size, "the hub sent {got} of {size} bytes");

            for (is_tuned, times) in [(false, &mut theirs), (true, &mut tuned)] {
                let local = work.path().join("sftp-copy.bin");
                let mut cmd = sftp_get(&server, &link, &run_dir.join(BIG), &local, is_tuned);
                times.push(time_command(&mut cmd)?.wall);
                anyhow::ensure!(std::fs::metadata(&local)?.len() == size, "sftp copy size");
                std::fs::remove_file(&local)?;
            }
        }
        let peak = ui.peak_rss_mib();
        let library = library_transfers(&server, &hub_dir, repeats, size)?;
        // Small misses: the file connection is open now (the big transfers opened it).
        let mut small = Vec::new();
        for i in 0..repeats * 2 {
            let start = Instant::now();
            ui.fetch(&format!("/api/runs/{RUN_ID}/files/{SMALL}.{i}"))?;
            small.push(start.elapsed());
        }
        drop(ui);
        clear_cache(&hub_dir)?;
        let (ours_best, ours_median) = best_and_median(ours);
        let (sftp_best, sftp_median) = best_and_median(theirs);
        let (tuned_best, tuned_median) = best_and_median(tuned);
        let (small_best, small_median) = best_and_median(small);
        let (lib_best, lib_median) = best_and_median(library);
        println!("\n{}:", link.describe());
        println!(
            "  hub (cache miss through the API): best {} ({:.0} MiB/s), median {}",
            show(ours_best),
            mib_s(size, ours_best),
            show(ours_median)
        );
        println!(
            "  OpenSSH sftp get:                 best {} ({:.0} MiB/s), median {}",
            show(sftp_best),
            mib_s(size, sftp_best),
            show(sftp_median)
        );
        println!(
            "  sftp -c aes256-gcm@openssh.com:   best {} ({:.0} MiB/s), median {}",
            show(tuned_best),
            mib_s(size, tuned_best),
            show(tuned_median)
        );
        println!(
            "  throughput ratio hub/sftp: {:.2} (best), {:.2} (median); goal ≥ 0.9; \
             hub/sftp with AES-GCM: {:.2} (best), {:.2} (median)",
            sftp_best.as_secs_f64() / ours_best.as_secs_f64(),
            sftp_median.as_secs_f64() / ours_median.as_secs_f64(),
            tuned_best.as_secs_f64() / ours_best.as_secs_f64(),
            tuned_median.as_secs_f64() / ours_median.as_secs_f64()
        );
        println!(
            "  hub library (ensure_cached, no HTTP hop): best {} ({:.0} MiB/s), median {}; \
             ratio to sftp {:.2}, to sftp with AES-GCM {:.2} (medians)",
            show(lib_best),
            mib_s(size, lib_best),
            show(lib_median),
            sftp_median.as_secs_f64() / lib_median.as_secs_f64(),
            tuned_median.as_secs_f64() / lib_median.as_secs_f64()
        );
        println!("  hub peak RSS over the run: {peak:.0} MiB; goal < 100 MB");
        let rounds = if rtt.is_zero() {
            String::new()
        } else {
            format!(
                " = {:.1} round trips",
                small_median.as_secs_f64() / rtt.as_secs_f64()
            )
        };
        println!(
            "  small miss ({} KiB, connection open): best {}, median {}{rounds}",
            SMALL_BYTES / 1024,
            show(small_best),
            show(small_median)
        );
    }
    Ok(())
}

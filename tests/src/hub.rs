//! Helpers for the hub's end-to-end tests: the `runicorn-hub` command in a scratch HOME and
//! store, sample runs written with the Rust writer, and a point-for-point comparison of a
//! storage root against the hub's store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runicorn_protocol::run_format::{
    discover_runs, scan_events, Event, RunOutcome, RunSpec, RunWriter,
};
use runicorn_store::{RunFilter, Store};
use serde_json::Value;

use crate::binary;

/// `runicorn-hub` with `HOME` (for `~/.ssh`) and the store directory set, no ssh-agent, no colour.
pub fn hub(home: &Path, hub_dir: &Path) -> Command {
    let mut cmd = Command::new(binary("runicorn-hub"));
    cmd.env("HOME", home)
        .env("RUNICORN_HUB_DIR", hub_dir)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUNICORN_DIR");
    cmd
}

/// Describes a finished command for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, asserts success, returns stdout parsed as JSON.
pub fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("runicorn-hub runs");
    assert!(out.status.success(), "{}", show(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

/// Writes `count` finished runs under `root` (paths `exp/gN`), run `i` with `steps(i)` steps of
/// `loss` and `acc`, every 7th step also a sparse `val` key, and one NaN / Infinity per run.
pub fn write_runs(root: &Path, count: usize, steps: impl Fn(usize) -> usize) {
    for i in 0..count {
        let mut spec = RunSpec::new(root, "runicorn-tests");
        spec.path = Some(format!("exp/g{}", i % 7));
        spec.run_id = Some(format!("run{i:05}"));
        let mut w = RunWriter::create(&spec).expect("create run");
        let n = steps(i);
        for s in 0..n {
            let x = s as f64 + i as f64 * 0.001;
            let loss = match s {
                3 => f64::NAN,
                4 => f64::INFINITY,
                _ => 1.0 / (x + 1.0),
            };
            w.log_metrics(&[("loss", loss), ("acc", x / 1e3)], None, None)
                .expect("log");
            if s % 7 == 0 {
                w.log_metrics(&[("val", x)], Some(s as i64 + 1), Some("val"))
                    .expect("log");
            }
        }
        w.log_text(&format!("run {i} done")).expect("log text");
        w.finish(RunOutcome::finished()).expect("finish");
    }
}

/// Appends `steps` more steps of `loss` to an existing run.
pub fn append_steps(run_dir: &Path, from_step: i64, steps: usize) {
    let events = run_dir.join("events.jsonl");
    let mut lines = String::new();
    for s in 0..steps as i64 {
        let step = from_step + s;
        lines.push_str(&format!(
            "{{\"ts\": 1795696136.5, \"type\": \"metrics\", \"data\": {{\"loss\": {}, \"global_step\": {step}, \"time\": 1795696136.5}}}}\n",
            0.5 / (step as f64)
        ));
    }
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .expect("open events");
    f.write_all(lines.as_bytes()).expect("append");
}

/// run dir (relative to root) → key → step → value, as the files hold them (a later value of
/// the same step wins, as in the store).
pub type Series = BTreeMap<String, BTreeMap<String, BTreeMap<i64, u64>>>;

/// Every metric point under `root`, values as bit patterns (so NaN compares equal).
pub fn source_points(root: &Path) -> Series {
    source_points_read_with(root, |events| std::fs::read(events).unwrap_or_default())
}

/// [`source_points`] with each run's `events.jsonl` read by `read_events` (which may decline a
/// file by giving no bytes).
pub fn source_points_read_with(root: &Path, read_events: impl Fn(&Path) -> Vec<u8>) -> Series {
    let mut out = Series::new();
    for loc in discover_runs(root).runs {
        let rel = loc
            .dir
            .strip_prefix(root)
            .expect("run under root")
            .to_string_lossy()
            .into_owned();
        let bytes = read_events(&loc.dir.join("events.jsonl"));
        let entry = out.entry(rel).or_default();
        let mut line_no = 0u64;
        scan_events(&bytes, 0, 1, |event| {
            line_no += 1;
            if let Event::Metrics(m) = event {
                let step = m.step.unwrap_or(line_no as i64);
                for (key, value) in m.values {
                    entry
                        .entry(key.into_owned())
                        .or_default()
                        .insert(step, canonical(value));
                }
            }
        });
    }
    out
}

fn canonical(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// Every metric point of remote `remote` in the store at `hub_dir`.
pub fn store_points(hub_dir: &Path, remote: &str) -> Series {
    let store = Store::open_read_only(hub_dir).expect("open store");
    let runs = store
        .list_runs(&RunFilter {
            remote: Some(remote.to_owned()),
            include_deleted: true,
            ..RunFilter::default()
        })
        .expect("list runs");
    let mut out = Series::new();
    for run in runs {
        let entry = out.entry(run.dir.clone()).or_default();
        for key in store.metric_keys(run.key).expect("keys") {
            let points = store.points(run.key, &key.name).expect("points");
            let series = entry.entry(key.name.clone()).or_default();
            for (step, _time, value) in points {
                series.insert(step, canonical(value));
            }
        }
    }
    out
}

/// Total points in a series map.
pub fn count(series: &Series) -> usize {
    series
        .values()
        .flat_map(|keys| keys.values())
        .map(BTreeMap::len)
        .sum()
}

/// Asserts the store holds exactly the points of the source.
pub fn assert_same_points(root: &Path, hub_dir: &Path, remote: &str) {
    let source = source_points(root);
    let stored = store_points(hub_dir, remote);
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>(),
        "the store's runs differ from the source's"
    );
    for (dir, keys) in &source {
        assert_eq!(&stored[dir], keys, "points of {dir} differ");
    }
}

/// The absolute path of the agent binary, to pass as `--agent`.
pub fn agent_path() -> PathBuf {
    binary("runicorn-agent")
}

/// `runicorn-hub connect local:ROOT --agent AGENT` with this home and hub folder, not yet
/// started: the caller adds `--once`, `--name`, … (and runs it).
pub fn connect_local(home: &Path, hub_dir: &Path, root: &Path, agent: &Path) -> Command {
    let mut cmd = hub(home, hub_dir);
    cmd.arg("connect")
        .arg(format!("local:{}", root.display()))
        .arg("--agent")
        .arg(agent);
    cmd
}

/// `runicorn-hub connect local:ROOT --once --no-ui --name NAME --prefetch none` with the test
/// agent: one sync of a storage root on this machine into `hub_dir`; panics with the hub's
/// output if it fails.
pub fn sync_local_once(home: &Path, hub_dir: &Path, root: &Path, name: &str) {
    sync_local_once_with(home, hub_dir, root, name, &["--prefetch", "none"]);
}

/// [`sync_local_once`] with `extra` options in place of `--prefetch none`
/// (`--once --no-ui --name NAME EXTRA…`).
pub fn sync_local_once_with(home: &Path, hub_dir: &Path, root: &Path, name: &str, extra: &[&str]) {
    let out = crate::output_within(
        connect_local(home, hub_dir, root, &agent_path())
            .args(["--once", "--no-ui", "--name", name])
            .args(extra),
        std::time::Duration::from_secs(240),
    );
    assert!(out.status.success(), "{}", show(&out));
}

/// `runicorn-hub connect SPEC --agent AGENT --root ROOT` to `sshd` with this home and hub
/// folder, not yet started: the caller adds `--once`, `--name`, … (and runs it).
pub fn connect_ssh(
    home: &Path,
    hub_dir: &Path,
    sshd: &crate::sshd::Sshd,
    root: &Path,
    agent: &Path,
) -> Command {
    let mut cmd = hub(home, hub_dir);
    cmd.arg("connect")
        .arg(sshd.spec())
        .arg("--agent")
        .arg(agent)
        .arg("--root")
        .arg(root);
    cmd
}

/// `runicorn-hub connect SPEC --root ROOT --once --no-ui --name gpu` with the built agent and
/// `extra` options: one sync of a root over a real sshd into `hub_dir`; panics with the hub's
/// output if it fails; returns its stderr.
pub fn connect_ssh_once(
    home: &crate::sshd::ClientHome,
    hub_dir: &Path,
    sshd: &crate::sshd::Sshd,
    root: &Path,
    extra: &[&str],
) -> String {
    let out = crate::output_within(
        connect_ssh(home.path(), hub_dir, sshd, root, &agent_path())
            .args(["--once", "--no-ui", "--name", "gpu"])
            .args(extra),
        std::time::Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

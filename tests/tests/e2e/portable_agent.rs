//! The portable agent that `scripts/build-agent.sh` makes for servers (x86_64 Linux, glibc
//! 2.17 and newer): the symbol versions it needs, and that it does the agent's work — `ls
//! --json` over a storage root and `serve --stdio` with the hub's handshake.
//!
//! The binary is named by `RUNICORN_PORTABLE_AGENT` (`scripts/test-all.sh` builds it and sets
//! it). Without it the tests are skipped with a note, except in CI (`CI` set), where a missing
//! portable agent is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_protocol::wire::PROTOCOL_VERSION;
use runicorn_tests::agent_pipe::AgentPipe;
use runicorn_tests::{describe, output_within};
use serde_json::Value;

/// The highest glibc the portable agent may need (CentOS 7).
const MAX_GLIBC: (u32, u32) = (2, 17);

/// How long one run of the portable agent's short commands may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// The portable agent named by `RUNICORN_PORTABLE_AGENT`, or `None` (with a note) outside CI.
fn portable_agent() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("RUNICORN_PORTABLE_AGENT").map(PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "RUNICORN_PORTABLE_AGENT is not set: build the agent with scripts/build-agent.sh and \
             set RUNICORN_PORTABLE_AGENT to the path it prints"
        );
        eprintln!(
            "skipped: RUNICORN_PORTABLE_AGENT not set (scripts/build-agent.sh builds the agent)"
        );
        return None;
    };
    assert!(
        path.is_file(),
        "RUNICORN_PORTABLE_AGENT={} is not a file: build it with scripts/build-agent.sh",
        path.display()
    );
    Some(path)
}

/// The portable agent as a command, in the environment the other agent tests use.
fn portable_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_remove("RUNICORN_DIR")
        .env_remove("RUNICORN_RUN_DIR")
        .env("NO_COLOR", "1");
    cmd
}

/// Every `GLIBC_x.y[.z]` version named in `readelf -V` output, as (major, minor); the patch
/// level never matters for the 2.17 bound. `GLIBC_PRIVATE` is not a version and is skipped.
fn glibc_versions(readelf_out: &str) -> Vec<(u32, u32)> {
    readelf_out
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(str::parse::<u32>);
            match (parts.next(), parts.next()) {
                (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn glibc_versions_are_read_from_readelf_output() {
    let sample = "  0x0010:   Name: GLIBC_2.2.5  Flags: none  Version: 2\n\
                  \x20 004:   2 (GLIBC_2.2.5)   c (GLIBC_2.17)   f (GLIBC_2.3.4)\n\
                  \x20 0x0020:   Name: GLIBC_PRIVATE  Flags: none\n\
                  \x20 0x0030:   Name: GLIBC_2.34  Flags: none  Version: 9\n";
    let versions = glibc_versions(sample);
    assert_eq!(versions.iter().max(), Some(&(2, 34)));
    assert!(versions.contains(&(2, 3)));
    assert!(versions.contains(&(2, 17)));
    assert_eq!(versions.len(), 5, "{versions:?}");
}

#[test]
fn portable_agent_needs_at_most_glibc_2_17() {
    let Some(bin) = portable_agent() else {
        return;
    };
    let out = output_within(
        Command::new("readelf").args(["-V", "--wide"]).arg(&bin),
        COMMAND_LIMIT,
    );
    assert!(
        out.status.success(),
        "readelf -V {} failed (is binutils installed?)\n{}",
        bin.display(),
        describe(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let versions = glibc_versions(&text);
    // A dynamically linked agent names at least glibc's base version; none at all would mean
    // readelf printed nothing useful, not that the binary is static.
    assert!(
        !versions.is_empty(),
        "no GLIBC symbol versions in readelf -V {}:\n{text}",
        bin.display()
    );
    let highest = versions.iter().max().copied().unwrap_or_default();
    assert!(
        highest <= MAX_GLIBC,
        "{} needs GLIBC_{}.{}, above GLIBC_{}.{}",
        bin.display(),
        highest.0,
        highest.1,
        MAX_GLIBC.0,
        MAX_GLIBC.1
    );
}

#[test]
fn portable_agent_lists_runs_and_serves_the_handshake() {
    let Some(bin) = portable_agent() else {
        return;
    };
    let version = output_within(portable_command(&bin).arg("--version"), COMMAND_LIMIT);
    assert!(version.status.success(), "{}", describe(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("runicorn-agent {}", env!("CARGO_PKG_VERSION"))
    );

    let root = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new(root.path(), "runicorn-tests");
    spec.path = Some("portable/check".into());
    let mut writer = RunWriter::create(&spec).unwrap();
    for step in 1..=3 {
        writer
            .log_metrics(&[("loss", 1.0 / f64::from(step))], None, None)
            .unwrap();
    }
    writer.finish(RunOutcome::finished()).unwrap();
    let run_id = writer.id().to_owned();

    let ls = output_within(
        portable_command(&bin)
            .arg("ls")
            .arg("--root")
            .arg(root.path())
            .arg("--json"),
        COMMAND_LIMIT,
    );
    assert!(ls.status.success(), "{}", describe(&ls));
    let runs: Value = serde_json::from_slice(&ls.stdout).expect("ls --json prints JSON");
    let runs = runs.as_array().expect("ls --json prints an array");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["path"], "portable/check");
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[0]["points"], 3);

    let mut agent = AgentPipe::handshake(AgentPipe::spawn_command(
        portable_command(&bin),
        root.path(),
        &[],
        &[],
    ));
    let hello = agent.hello.clone().expect("handshake done");
    assert_eq!(hello.versions, vec![PROTOCOL_VERSION]);
    assert!(
        hello.software.starts_with("runicorn-agent/"),
        "{}",
        hello.software
    );
    assert!(hello.epoch.is_some(), "{hello:?}");
    let batch = agent.changes(None, 100);
    assert_eq!(batch.runs.len(), 1, "{:?}", batch.runs);
    assert_eq!(batch.runs[0].id, run_id);
    assert_eq!(batch.runs[0].status, "finished");

    agent.close_stdin();
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the agent did not exit on EOF\n{}", agent.stderr()));
    assert!(status.success(), "{status:?}\n{}", agent.stderr());
}

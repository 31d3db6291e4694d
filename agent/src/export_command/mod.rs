//! `runicorn-agent export`: packs runs of the storage root into one offline bundle
//! (`docs/run-format.md`, "Offline bundles (format)") written to a file or standard output, so
//! runs can be carried where no SSH reaches (`ssh login-node runicorn-agent export -o - >
//! runs.rbundle`). Selection ([`selection`]) is `runicorn-agent ls`'s, plus `--run` and
//! `--since` ([`since`]); `--with-artifacts` adds the artifact versions the runs touched
//! ([`artifacts`]); the file appears only once whole ([`output`]); progress and messages go to
//! stderr ([`progress`]), and `--json` prints the report ([`report`]). Files whose size and
//! mtime match what the agent's index cached are not hashed again ([`known_hashes`]).

mod artifacts;
mod known_hashes;
mod output;
mod progress;
mod report;
mod selection;
mod since;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use runicorn_bundle::{
    write_bundle_known, BundleError, CountingWriter, GeneratedFile, KnownHashes, Omit, SourceInput,
    WriteOptions, METADATA_ONLY_FILES,
};
use runicorn_cli::{safe, warning_label};
use runicorn_protocol::run_format::process::local_hostname;
use runicorn_protocol::run_format::RunStatus;

use crate::root_args::RootArgs;
use output::Output;
use report::{ExportReport, ExportSkipped};
use selection::{select_runs, Filters};

/// zstd level of exported bundles (zstd's default: fast, and events compress very well).
const ZSTD_LEVEL: i32 = 3;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub root: RootArgs,
    /// Only runs whose path is PREFIX or lies below it (`cv` matches `cv/yolo`, not `cvx`)
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Only this run: its id, or its directory (relative to the root or absolute); repeat for
    /// more. Each must name exactly one run
    #[arg(long = "run", value_name = "REF")]
    pub runs: Vec<String>,
    /// Only runs created, ended or logging since TIME: an ISO date or date-time (local time
    /// unless it has an offset) or a span back from now (90m, 12h, 3d, 2w)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only runs with this status
    #[arg(long, value_name = "S", value_parser = clap::builder::PossibleValuesParser::new(
        RunStatus::ALL.map(|s| s.as_str())))]
    pub status: Option<String>,
    /// Also export soft-deleted runs (those holding a .deleted marker; a run named by --run is
    /// always exported)
    #[arg(long)]
    pub all: bool,
    /// Carry only each run's records, events.jsonl and logs.txt; list every other file (media,
    /// checkpoints) by size and SHA-256 without its bytes
    #[arg(long)]
    pub metadata_only: bool,
    /// Also carry the artifact versions the runs produced or used (their files and pool
    /// contents)
    #[arg(long)]
    pub with_artifacts: bool,
    /// The remote name the runs are imported under [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Where to write the bundle; `-` for standard output (nothing else is written there)
    #[arg(short = 'o', long = "output", value_name = "FILE|-")]
    pub output: PathBuf,
    /// Hash every file, instead of taking the SHA-256 the agent's index cached for files whose
    /// size and modification time did not change
    #[arg(long)]
    pub rehash: bool,
    /// Print a JSON report (file, runs, members, omitted, contents, content_bytes,
    /// bundle_bytes, skipped) instead of the summary line; on stderr with `-o -`
    #[arg(long)]
    pub json: bool,
}

pub fn export(args: ExportArgs) -> anyhow::Result<u8> {
    let root = args.root.resolve();
    if !root.is_dir() {
        bail!(
            "storage root {} is not a directory; give the root holding the runs with --root",
            root.display()
        );
    }
    let since = args
        .since
        .as_deref()
        .map(|text| since::parse_since(text, runicorn_cli::time::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let filters = Filters {
        path: args.path.clone(),
        status: args.status.clone(),
        all: args.all,
        refs: args.runs.clone(),
        since,
    };
    let runs = select_runs(&root, &filters)?;
    if runs.is_empty() {
        eprintln!(
            "{}: no run under {} matches; the bundle holds no runs",
            warning_label(),
            safe(&root.to_string_lossy())
        );
    }

    let mut input = SourceInput {
        name: args.name.clone().unwrap_or_else(local_hostname),
        host: local_hostname(),
        root_label: std::fs::canonicalize(&root)
            .unwrap_or_else(|_| root.clone())
            .to_string_lossy()
            .into_owned(),
        dir: root.clone(),
        runs: runs.iter().map(|r| r.dir.clone()).collect(),
        artifact_versions: Vec::new(),
        extra_paths: Vec::new(),
        omit: if args.metadata_only {
            Omit::AllButRunFiles(
                METADATA_ONLY_FILES
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect(),
            )
        } else {
            Omit::Nothing
        },
        extra_omitted: Vec::new(),
        annotations: Vec::new(),
        mtimes: Default::default(),
    };
    if input.name.trim().is_empty() {
        bail!("--name is empty; give the remote name the runs are imported under");
    }

    // Packing and gc wait while the bundle is written, so no pool file it lists disappears.
    let mut generated = Vec::new();
    let _pool_lock = if args.with_artifacts {
        let found = artifacts::collect(&root, &runs);
        for problem in &found.problems {
            eprintln!("{}: {}", warning_label(), safe(problem));
        }
        input.artifact_versions = found.versions;
        input.extra_paths = found.paths;
        generated = found.indexes;
        if input.extra_paths.is_empty() {
            None
        } else {
            match runicorn_artifact_store::locks::pool_shared(&root) {
                Ok(lock) => Some(lock),
                Err(err) => {
                    eprintln!(
                        "{}: {err}; exporting without holding the pool lock",
                        warning_label()
                    );
                    None
                }
            }
        }
    } else {
        None
    };

    let known = match args.rehash {
        true => KnownHashes::new(),
        false => known_hashes::from_index(&root, &input.runs),
    };
    let report = write_retrying(&args.output, &input, &generated, known)?;
    let to_stdout = args.output == Path::new("-");
    if args.json {
        let text = serde_json::to_string_pretty(&report).context("writing the report")?;
        if to_stdout {
            eprintln!("{text}");
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").context("writing the report")?;
        }
    } else {
        eprintln!(
            "exported {} run{} ({} files, {} only listed; {} of contents) to {} ({})",
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            report.members,
            report.omitted,
            runicorn_cli::human::bytes(report.content_bytes),
            safe(&report.file),
            runicorn_cli::human::bytes(report.bundle_bytes),
        );
    }
    Ok(0)
}

/// [`write`], and once more hashing every file when a hash the index cached turns out stale
/// (a file rewritten with its size and time kept). Standard output cannot take a bundle back:
/// there the error says to export again with `--rehash`.
fn write_retrying(
    target: &Path,
    input: &SourceInput,
    generated: &[GeneratedFile],
    known: KnownHashes,
) -> anyhow::Result<ExportReport> {
    if known.is_empty() {
        return write(target, input, generated, &known).map_err(|e| e.into_anyhow(target));
    }
    match write(target, input, generated, &known) {
        Err(Failed::Bundle(BundleError::StaleKnownHash { path })) if target != Path::new("-") => {
            eprintln!(
                "{}: {} changed without its size or time changing; exporting again, hashing every file",
                warning_label(),
                safe(&path.to_string_lossy())
            );
            write(target, input, generated, &KnownHashes::new()).map_err(|e| e.into_anyhow(target))
        }
        Err(Failed::Bundle(err @ BundleError::StaleKnownHash { .. })) => Err(anyhow::anyhow!(
            "exporting to {}: {err} (runicorn-agent export --rehash ...)",
            target.display()
        )),
        done => done.map_err(|e| e.into_anyhow(target)),
    }
}

/// Why writing failed: the bundle's own error (kept typed for the retry), or anything else.
enum Failed {
    Bundle(BundleError),
    Other(anyhow::Error),
}

impl Failed {
    fn into_anyhow(self, target: &Path) -> anyhow::Error {
        match self {
            // the bundle error's text already carries its cause: no chain, no repeat
            Failed::Bundle(err) => anyhow::anyhow!("exporting to {}: {err}", target.display()),
            Failed::Other(err) => err,
        }
    }
}

impl From<anyhow::Error> for Failed {
    fn from(err: anyhow::Error) -> Failed {
        Failed::Other(err)
    }
}

/// Writes the bundle of `input` to `target` (`-`: standard output) and reports it.
fn write(
    target: &Path,
    input: &SourceInput,
    generated: &[GeneratedFile],
    known: &KnownHashes,
) -> Result<ExportReport, Failed> {
    let options = WriteOptions {
        zstd_level: ZSTD_LEVEL,
        created_by: format!("runicorn-agent {}", env!("CARGO_PKG_VERSION")),
    };
    let output = Output::open(target)?;
    let mut bar = progress::BundleProgress::new();
    let counted = CountingWriter::new(output);
    let written = write_bundle_known(
        std::slice::from_ref(input),
        generated,
        std::slice::from_ref(known),
        &options,
        counted,
        &mut bar,
    );
    bar.finish();
    let (counted, written) = match written {
        Ok(done) => done,
        Err(err) => {
            // the writer consumed the output; a partial file is removed by name
            remove_partial(target);
            return Err(Failed::Bundle(err));
        }
    };
    let bundle_bytes = counted.bytes;
    counted.inner.finish()?;
    for skipped in &written.skipped {
        eprintln!(
            "{}: {} left out: {}",
            warning_label(),
            safe(&skipped.path),
            skipped.reason
        );
    }
    let runs: BTreeSet<&str> = written
        .manifest
        .sources
        .iter()
        .flat_map(|s| s.runs.iter().map(String::as_str))
        .collect();
    Ok(ExportReport {
        file: target.to_string_lossy().into_owned(),
        runs: runs.len() as u64,
        members: written.manifest.members.len() as u64,
        omitted: written.omitted as u64,
        contents: written.contents as u64,
        content_bytes: written.content_bytes,
        bundle_bytes,
        skipped: written
            .skipped
            .iter()
            .map(|s| ExportSkipped {
                path: s.path.clone(),
                reason: s.reason.to_owned(),
            })
            .collect(),
    })
}

/// Removes `FILE.partial` after a failed export to `FILE`.
fn remove_partial(target: &Path) {
    if target != Path::new("-") {
        let mut name = target.as_os_str().to_owned();
        name.push(".partial");
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_bundle::{read_bundle, KnownHash, Limits};
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_stale_cached_hash_is_caught_and_the_export_done_again_hashing_every_file() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let run = "runs/p/a";
        std::fs::create_dir_all(root.join(run)).unwrap();
        std::fs::write(root.join(run).join("meta.json"), b"{\"id\":\"a\"}").unwrap();
        // Larger than what the writer reads once before the manifest: its cached hash is used.
        let ckpt = root.join(run).join("ckpt.bin");
        let bytes: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&ckpt, &bytes).unwrap();
        let meta = std::fs::metadata(&ckpt).unwrap();
        // What the index held before the file was rewritten, size and time kept.
        let stale = KnownHash {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            sha256: hex(&Sha256::digest(b"the bytes it had before")),
        };
        let known: KnownHashes = [(format!("{run}/ckpt.bin"), stale)].into_iter().collect();
        let input = SourceInput {
            name: "gpu".to_owned(),
            host: "gpu".to_owned(),
            root_label: root.to_string_lossy().into_owned(),
            dir: root.clone(),
            runs: vec![run.to_owned()],
            ..Default::default()
        };
        let target = t.path().join("runs.rbundle");
        // The writer takes the cached hash and catches it while streaming the file...
        assert!(matches!(
            write(&target, &input, &[], &known),
            Err(Failed::Bundle(BundleError::StaleKnownHash { ref path })) if path == &ckpt
        ));
        assert!(!target.exists() && !t.path().join("runs.rbundle.partial").exists());
        // ...and the export is done again without it.
        let report = write_retrying(&target, &input, &[], known).unwrap();
        assert_eq!(report.members, 2);
        let dest = tempfile::tempdir().unwrap();
        let file = std::fs::File::open(&target).unwrap();
        read_bundle(file, dest.path(), &Limits::default()).unwrap();
        assert_eq!(
            std::fs::read(dest.path().join("0").join(run).join("ckpt.bin")).unwrap(),
            bytes
        );
        assert!(!t.path().join("runs.rbundle.partial").exists());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

//! Which runs `runicorn-agent export` bundles: the runs `runicorn-agent ls` lists (read through
//! the same index, filtered by `--path`, `--status` and `--all` the same way), narrowed by
//! `--run REF` and `--since TIME`.

use std::collections::BTreeSet;
use std::path::Path;

use runicorn_protocol::run_format::{discover_runs, LivenessContext, RunOverview, RunStatus};

use crate::list_command::{path_is_under, read_overviews};

/// The selection options, as parsed.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub path: Option<String>,
    pub status: Option<String>,
    /// Include soft-deleted runs (a run named by `--run` is always included).
    pub all: bool,
    pub refs: Vec<String>,
    /// Seconds since the epoch: runs created, ended or logging since then.
    pub since: Option<f64>,
}

/// A run chosen for export.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The run directory relative to the root, `/`-separated.
    pub dir: String,
}

/// Why a selection failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectionError {
    #[error("--run {reference:?} matches no run under {root}; `runicorn-agent ls --all --root {root}` lists them (a run id, or its directory relative to the root)")]
    NoMatch { reference: String, root: String },
    #[error("--run {reference:?} matches {} runs: {}; name one by its directory", .dirs.len(), .dirs.join(", "))]
    Ambiguous {
        reference: String,
        dirs: Vec<String>,
    },
    #[error("run directory {dir} is not below the root {root}")]
    OutsideRoot { dir: String, root: String },
}

/// Selects runs under `root`, oldest first.
pub fn select_runs(root: &Path, filters: &Filters) -> Result<Vec<Selected>, SelectionError> {
    let discovery = discover_runs(root);
    for problem in &discovery.problems {
        eprintln!(
            "{}: {}: {}",
            runicorn_cli::warning_label(),
            runicorn_cli::safe(&problem.path.to_string_lossy()),
            runicorn_cli::safe(&problem.reason)
        );
    }
    let ctx = LivenessContext::here_and_now();
    let mut runs = read_overviews(root, &discovery.runs, &ctx, true);
    runs.sort_by(|a, b| {
        a.created_at
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.created_at.unwrap_or(f64::INFINITY))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut candidates = Vec::with_capacity(runs.len());
    for run in runs {
        let dir = relative_dir(root, &run)?;
        candidates.push((dir, run));
    }
    let named = resolve_refs(root, &candidates, &filters.refs)?;
    let prefix = filters.path.as_deref().map(|p| p.trim_matches('/'));
    Ok(candidates
        .into_iter()
        .filter(|(dir, run)| {
            let is_named = named.contains(dir);
            (filters.refs.is_empty() || is_named)
                && (filters.all || is_named || !run.deleted)
                && prefix.is_none_or(|p| path_is_under(&run.path, p))
                && filters
                    .status
                    .as_deref()
                    .is_none_or(|s| run.status == RunStatus::parse(s))
                && filters.since.is_none_or(|since| touched_since(run, since))
        })
        .map(|(dir, _)| Selected { dir })
        .collect())
}

/// Whether the run was created, ended or logged an event at or after `since`.
fn touched_since(run: &RunOverview, since: f64) -> bool {
    [run.created_at, run.ended_at, run.last_event_at]
        .into_iter()
        .flatten()
        .any(|at| at >= since)
}

/// The run's directory relative to the root, `/`-separated.
fn relative_dir(root: &Path, run: &RunOverview) -> Result<String, SelectionError> {
    let outside = || SelectionError::OutsideRoot {
        dir: run.dir.to_string_lossy().into_owned(),
        root: root.to_string_lossy().into_owned(),
    };
    let rel = run.dir.strip_prefix(root).map_err(|_| outside())?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()
        .ok_or_else(outside)?;
    if parts.is_empty() {
        return Err(outside());
    }
    Ok(parts.join("/"))
}

/// The directories the `--run` references name, each exactly one run.
fn resolve_refs(
    root: &Path,
    candidates: &[(String, RunOverview)],
    refs: &[String],
) -> Result<BTreeSet<String>, SelectionError> {
    let mut named = BTreeSet::new();
    for reference in refs {
        let wanted = reference.trim_end_matches('/');
        let as_path = Path::new(wanted);
        let matches: Vec<&str> = candidates
            .iter()
            .filter(|(dir, run)| {
                run.id == wanted
                    || dir == wanted
                    || run.dir == as_path
                    || (!as_path.is_absolute() && root.join(as_path) == run.dir)
                    || (!run.path.is_empty() && format!("{}/{}", run.path, run.id) == wanted)
            })
            .map(|(dir, _)| dir.as_str())
            .collect();
        match matches.as_slice() {
            [] => {
                return Err(SelectionError::NoMatch {
                    reference: reference.clone(),
                    root: root.to_string_lossy().into_owned(),
                })
            }
            [one] => {
                named.insert((*one).to_owned());
            }
            many => {
                return Err(SelectionError::Ambiguous {
                    reference: reference.clone(),
                    dirs: many.iter().map(|d| (*d).to_owned()).collect(),
                })
            }
        }
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(root: &Path, path: &str, id: &str, created: f64) {
        let dir = root.join("runs").join(path).join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = serde_json::json!({"id": id, "path": path, "created_at": created});
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        let status = serde_json::json!({"status": "finished", "ended_at": created + 10.0});
        std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
    }

    fn ids(runs: &[Selected]) -> Vec<&str> {
        runs.iter()
            .map(|r| r.dir.rsplit('/').next().unwrap())
            .collect()
    }

    #[test]
    fn filters_combine() {
        let root = tempfile::tempdir().unwrap();
        write_run(root.path(), "cv", "r1", 1000.0);
        write_run(root.path(), "cv/yolo", "r2", 2000.0);
        write_run(root.path(), "nlp", "r3", 3000.0);
        write_run(root.path(), "nlp", "r1", 4000.0);
        let all = select_runs(root.path(), &Filters::default()).unwrap();
        assert_eq!(ids(&all), ["r1", "r2", "r3", "r1"]);
        assert_eq!(all[1].dir, "runs/cv/yolo/r2");

        let cv = Filters {
            path: Some("cv".into()),
            ..Filters::default()
        };
        assert_eq!(ids(&select_runs(root.path(), &cv).unwrap()), ["r1", "r2"]);

        let since = Filters {
            since: Some(2500.0),
            ..Filters::default()
        };
        assert_eq!(
            ids(&select_runs(root.path(), &since).unwrap()),
            ["r3", "r1"]
        );

        let by_ref = Filters {
            refs: vec!["r3".into(), "runs/cv/yolo/r2/".into(), "nlp/r1".into()],
            ..Filters::default()
        };
        let picked = select_runs(root.path(), &by_ref).unwrap();
        assert_eq!(ids(&picked), ["r2", "r3", "r1"]);
        assert_eq!(picked[2].dir, "runs/nlp/r1");
    }

    #[test]
    fn a_ref_must_name_exactly_one_run() {
        let root = tempfile::tempdir().unwrap();
        write_run(root.path(), "cv", "r1", 1000.0);
        write_run(root.path(), "nlp", "r1", 2000.0);
        let err = select_runs(
            root.path(),
            &Filters {
                refs: vec!["r1".into()],
                ..Filters::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, SelectionError::Ambiguous { ref dirs, .. } if dirs.len() == 2));
        assert!(err.to_string().contains("runs/cv/r1"), "{err}");
        let err = select_runs(
            root.path(),
            &Filters {
                refs: vec!["nope".into()],
                ..Filters::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, SelectionError::NoMatch { .. }), "{err}");
    }
}

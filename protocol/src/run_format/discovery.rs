//! Finding run directories under a storage root, in both layouts.
//!
//! Current layout: `<root>/runs/<path…>/<run_id>/`; legacy: `<root>/<project>/<name>/runs/<id>/`.
//! A directory is a run when it holds `meta.json` or `status.json`. The walk never follows
//! symbolic links, skips hidden directories, is bounded in depth, and turns every problem (an
//! unreadable directory, a name that is not UTF-8) into a reported problem, never a failure.

use std::fs;
use std::path::{Path, PathBuf};

use crate::parallel::{io_workers, map_in_order};

/// Directory names at the top of a root that are never legacy projects.
const NOT_LEGACY_PROJECTS: [&str; 5] = ["runs", "archive", "index", "webui", "artifacts"];
/// Deepest run path (in segments) the walk descends to.
pub const MAX_PATH_DEPTH: usize = 32;

/// Which layout a run was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Current,
    Legacy,
}

/// Where one run lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLocation {
    pub dir: PathBuf,
    /// The run path derived from where the directory is (`cv/resnet`, `""` for the root).
    pub run_path: String,
    /// The directory's own name: the run id.
    pub dir_name: String,
    pub layout: Layout,
}

impl RunLocation {
    /// The storage root this run was found under: `dir` climbed by the run path's segments and
    /// two more (`runs/` and the id in the current layout, `runs/` and the id below
    /// `<project>/<name>` in the legacy one).
    pub fn root(&self) -> PathBuf {
        let segments = self.run_path.split('/').filter(|s| !s.is_empty()).count();
        let mut root = self.dir.as_path();
        for _ in 0..segments + 2 {
            root = root.parent().unwrap_or(root);
        }
        root.to_owned()
    }

    /// The location of the run whose directory is `key` below `root` (the relative path the
    /// feed names it by: `runs/<run path>/<id>`, or `<project>/<name>/runs/<id>` in the legacy
    /// layout). `None` when `key` does not have `layout`'s shape.
    pub fn from_key(root: &Path, key: &str, layout: Layout) -> Option<RunLocation> {
        let (parent, id) = key.rsplit_once('/')?;
        let run_path = match layout {
            Layout::Current => match parent.strip_prefix("runs")? {
                "" => String::new(),
                rest => rest.strip_prefix('/')?.to_owned(),
            },
            Layout::Legacy => parent.strip_suffix("/runs")?.to_owned(),
        };
        if id.is_empty() {
            return None;
        }
        Some(RunLocation {
            dir: root.join(key),
            run_path,
            dir_name: id.to_owned(),
            layout,
        })
    }
}

/// Something under the root that could not be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryProblem {
    pub path: PathBuf,
    pub reason: String,
}

/// All runs found under a root, and what could not be looked at.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub runs: Vec<RunLocation>,
    pub problems: Vec<DiscoveryProblem>,
}

/// Walks a storage root. A root that does not exist holds no runs. Runs come out sorted by
/// run path, then id.
pub fn discover_runs(root: &Path) -> Discovery {
    let mut found = Discovery::default();
    let runs_dir = root.join("runs");
    if runs_dir.is_dir() {
        walk_current(&runs_dir, &mut found);
    }
    walk_legacy(root, &mut found);
    found.runs.sort_by(|a, b| {
        (a.layout as u8, &a.run_path, &a.dir_name).cmp(&(b.layout as u8, &b.run_path, &b.dir_name))
    });
    found
}

struct Listing {
    is_run: bool,
    subdirs: Vec<(String, PathBuf)>,
    problems: Vec<DiscoveryProblem>,
}

fn list_dir(dir: &Path) -> Result<Listing, DiscoveryProblem> {
    let entries = fs::read_dir(dir).map_err(|e| DiscoveryProblem {
        path: dir.to_owned(),
        reason: format!("cannot list: {e}"),
    })?;
    let mut listing = Listing {
        is_run: false,
        subdirs: Vec::new(),
        problems: Vec::new(),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            // A folder that may hold runs cannot be named; a file is its run's business (the
            // agent's manifest reports it).
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                listing.problems.push(DiscoveryProblem {
                    path: entry.path(),
                    reason: "the folder's name is not UTF-8; skipped (rename it)".into(),
                });
            }
            continue;
        };
        if name == "meta.json" || name == "status.json" {
            listing.is_run = true;
            continue;
        }
        // file_type() does not follow links, so a link is never descended into.
        if name.starts_with('.') || !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        listing.subdirs.push((name.to_owned(), entry.path()));
    }
    Ok(listing)
}

/// Walks `runs/` level by level, listing each level's directories in parallel (a cold disk
/// answers several directory reads at once faster than one after another).
fn walk_current(runs_dir: &Path, found: &mut Discovery) {
    let root_listing = match list_dir(runs_dir) {
        Ok(l) => l,
        Err(problem) => return found.problems.push(problem),
    };
    // Directories known not to be runs, with their run path.
    let mut frontier: Vec<(String, Listing)> = vec![(String::new(), root_listing)];
    let mut depth = 0;
    while !frontier.is_empty() {
        let mut children: Vec<(String, String, PathBuf)> = Vec::new();
        for (run_path, listing) in frontier.drain(..) {
            found.problems.extend(listing.problems);
            for (name, path) in listing.subdirs {
                children.push((run_path.clone(), name, path));
            }
        }
        let listings = map_in_order(&children, io_workers(), |_, (_, _, path)| list_dir(path));
        for ((run_path, name, path), listing) in children.into_iter().zip(listings) {
            match listing {
                Err(problem) => found.problems.push(problem),
                Ok(listing) if listing.is_run => {
                    found.problems.extend(listing.problems);
                    found.runs.push(RunLocation {
                        dir: path,
                        run_path,
                        dir_name: name,
                        layout: Layout::Current,
                    });
                }
                Ok(listing) if depth < MAX_PATH_DEPTH => {
                    let child_path = if run_path.is_empty() {
                        name
                    } else {
                        format!("{run_path}/{name}")
                    };
                    frontier.push((child_path, listing));
                }
                Ok(_) => found.problems.push(DiscoveryProblem {
                    path,
                    reason: format!("deeper than {MAX_PATH_DEPTH} levels; skipped"),
                }),
            }
        }
        depth += 1;
    }
}

fn walk_legacy(root: &Path, found: &mut Discovery) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let mut projects: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
        .filter(|(n, _)| !n.starts_with('.') && !NOT_LEGACY_PROJECTS.contains(&n.as_str()))
        .collect();
    projects.sort();
    for (project, project_dir) in projects {
        let Ok(names) = fs::read_dir(&project_dir) else {
            continue;
        };
        let mut names: Vec<(String, PathBuf)> = names
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        names.sort();
        for (name, name_dir) in names {
            let runs_dir = name_dir.join("runs");
            if !fs::symlink_metadata(&runs_dir)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                continue;
            }
            let listing = match list_dir(&runs_dir) {
                Ok(l) => l,
                Err(problem) => {
                    found.problems.push(problem);
                    continue;
                }
            };
            for (id, dir) in listing.subdirs {
                if list_dir(&dir).is_ok_and(|l| l.is_run) {
                    found.runs.push(RunLocation {
                        dir,
                        run_path: format!("{project}/{name}"),
                        dir_name: id,
                        layout: Layout::Legacy,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_run(dir: &Path, file: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), "{}").unwrap();
    }

    #[test]
    fn finds_both_layouts_and_skips_links_and_hidden() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        touch_run(&root.join("runs/cv/yolo/r1"), "meta.json");
        touch_run(&root.join("runs/r0"), "status.json");
        touch_run(&root.join("runs/.trash/r9"), "meta.json");
        touch_run(&root.join("proj/exp/runs/r2"), "meta.json");
        touch_run(&root.join("archive/x/runs/r3"), "meta.json");
        fs::create_dir_all(root.join("runs/empty/dir")).unwrap();
        std::os::unix::fs::symlink(root.join("runs/cv"), root.join("runs/link")).unwrap();
        let d = discover_runs(root);
        let got: Vec<(String, String, Layout)> = d
            .runs
            .iter()
            .map(|r| (r.run_path.clone(), r.dir_name.clone(), r.layout))
            .collect();
        assert_eq!(
            got,
            vec![
                ("".into(), "r0".into(), Layout::Current),
                ("cv/yolo".into(), "r1".into(), Layout::Current),
                ("proj/exp".into(), "r2".into(), Layout::Legacy),
            ]
        );
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        for run in &d.runs {
            assert_eq!(run.root(), root, "{run:?}");
            // The feed keeps only the key and the layout, and gets the location back from them.
            let key = run.dir.strip_prefix(root).unwrap().to_str().unwrap();
            assert_eq!(
                RunLocation::from_key(root, key, run.layout).as_ref(),
                Some(run)
            );
        }
        assert_eq!(RunLocation::from_key(root, "runs/r0", Layout::Legacy), None);
        assert_eq!(
            RunLocation::from_key(root, "proj/exp/runs/r2", Layout::Current),
            None
        );
        assert_eq!(RunLocation::from_key(root, "runs/", Layout::Current), None);
    }

    #[test]
    fn missing_root_is_empty() {
        let d = discover_runs(Path::new("/nonexistent/runicorn/root"));
        assert!(d.runs.is_empty());
    }
}

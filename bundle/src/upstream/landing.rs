//! The staging tree of an upstream archive being read: entry names checked and normalised,
//! duplicates and file/directory conflicts refused, files created under `dest/.staging`, and at
//! the end the run directories found (by the storage layouts the agent reads) moved into `dest`
//! whole, everything else dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::BundleError;
use crate::paths::check_member_path;

use super::UpstreamRead;

/// The staging directory inside `dest`. A name starting with `.` is never part of a run
/// directory the layouts accept, so no landed run can collide with it.
const STAGING: &str = ".staging";
/// Files whose presence makes a directory a run.
const RUN_MARKERS: [&str; 2] = ["meta.json", "status.json"];
/// Top-level names that are never a project in the legacy layout.
const NOT_PROJECTS: [&str; 5] = ["runs", "archive", "index", "webui", "artifacts"];
/// Largest `meta.json` read for the host and root.
const MAX_META_BYTES: u64 = 1 << 20;

/// An entry name, checked: its normalised path and whether it names a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EntryName {
    /// The archive's root itself (`.`, `./`): nothing to do.
    Root,
    /// A path, `/`-separated, relative, checked.
    Path { path: String, dir_suffix: bool },
}

/// Checks a raw entry name: UTF-8, a leading `./` and a trailing `/` tolerated (tar and zip
/// tools write them), otherwise the bundle path rule (no `..`, not absolute, no empty or `.`
/// component, no backslash, no NUL).
pub(super) fn entry_name(raw: &[u8]) -> Result<EntryName, BundleError> {
    let name = std::str::from_utf8(raw).map_err(|_| BundleError::InvalidPath {
        member: String::from_utf8_lossy(raw).into_owned(),
        reason: "not UTF-8".to_owned(),
    })?;
    let mut path = name;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    if path.is_empty() || path == "." {
        return if name.is_empty() {
            Err(BundleError::InvalidPath {
                member: name.to_owned(),
                reason: "empty name".to_owned(),
            })
        } else {
            Ok(EntryName::Root)
        };
    }
    let dir_suffix = path.ends_with('/') && !path.ends_with("//");
    let path = if dir_suffix {
        &path[..path.len() - 1]
    } else {
        path
    };
    check_member_path(name, path)?;
    Ok(EntryName::Path {
        path: path.to_owned(),
        dir_suffix,
    })
}

/// The tree being staged.
pub(super) struct Landing {
    dest: PathBuf,
    staging: PathBuf,
    /// Every file path, with its size.
    files: BTreeMap<String, u64>,
    /// Directories named by an entry.
    explicit_dirs: BTreeSet<String>,
    /// Every directory a file or directory needs (its ancestors and explicit ones).
    dirs: BTreeSet<String>,
}

impl Landing {
    /// Creates `dest/.staging` (`dest` was checked empty).
    pub(super) fn new(dest: &Path) -> Result<Self, BundleError> {
        let staging = dest.join(STAGING);
        fs::create_dir(&staging).map_err(|source| BundleError::WriteFile {
            path: staging.clone(),
            source,
        })?;
        Ok(Landing {
            dest: dest.to_path_buf(),
            staging,
            files: BTreeMap::new(),
            explicit_dirs: BTreeSet::new(),
            dirs: BTreeSet::new(),
        })
    }

    /// Records the ancestors of `path`, refusing one that is a file.
    fn claim_ancestors(&mut self, path: &str) -> Result<(), BundleError> {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let ancestor = &path[..end + slash];
            if self.files.contains_key(ancestor) {
                return Err(BundleError::PathConflict {
                    member: ancestor.to_owned(),
                });
            }
            self.dirs.insert(ancestor.to_owned());
            end += slash + 1;
        }
        Ok(())
    }

    /// A directory entry.
    pub(super) fn add_dir(&mut self, path: &str) -> Result<(), BundleError> {
        if self.files.contains_key(path) {
            return Err(BundleError::PathConflict {
                member: path.to_owned(),
            });
        }
        if !self.explicit_dirs.insert(path.to_owned()) {
            return Err(BundleError::DuplicateMember {
                member: path.to_owned(),
            });
        }
        self.claim_ancestors(path)?;
        self.dirs.insert(path.to_owned());
        let location = self.staged(path);
        fs::create_dir_all(&location).map_err(|source| BundleError::WriteFile {
            path: location,
            source,
        })
    }

    /// A file entry of `size` bytes: copies `data` to its staged place. `read_error` turns an
    /// error of `data` into the reader's error for this member; fewer bytes than `size` are
    /// [`BundleError::Truncated`], more a [`BundleError::SizeMismatch`] (the caller bounds
    /// `data` to `size + 1` bytes).
    pub(super) fn add_file(
        &mut self,
        path: &str,
        size: u64,
        mut data: impl Read,
        read_error: impl Fn(io::Error) -> BundleError,
    ) -> Result<(), BundleError> {
        if self.files.contains_key(path) || self.explicit_dirs.contains(path) {
            return Err(BundleError::DuplicateMember {
                member: path.to_owned(),
            });
        }
        if self.dirs.contains(path) {
            return Err(BundleError::PathConflict {
                member: path.to_owned(),
            });
        }
        self.claim_ancestors(path)?;
        self.files.insert(path.to_owned(), size);
        let location = self.staged(path);
        let write_error = |source| BundleError::WriteFile {
            path: location.clone(),
            source,
        };
        if let Some(parent) = location.parent() {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&location)
            .map_err(write_error)?;
        let copied = copy(&mut data, &mut file, &read_error, &write_error)?;
        if copied < size {
            return Err(BundleError::Truncated {
                member: path.to_owned(),
            });
        }
        if copied > size {
            return Err(BundleError::SizeMismatch {
                member: path.to_owned(),
                expected: size,
                what: "its data holds more, at least",
                actual: copied,
            });
        }
        file.flush().map_err(write_error)
    }

    fn staged(&self, path: &str) -> PathBuf {
        path.split('/').fold(self.staging.clone(), |p, c| p.join(c))
    }

    /// Finds the run directories, moves each into `dest` whole, removes the staging tree, and
    /// reads the runs' host and root.
    pub(super) fn finish(self) -> Result<UpstreamRead, BundleError> {
        let runs = run_dirs(self.files.keys().map(String::as_str));
        let mut read = UpstreamRead {
            runs: runs.iter().cloned().collect(),
            ..UpstreamRead::default()
        };
        for (path, size) in &self.files {
            if runs.iter().any(|run| is_inside(path, run)) {
                read.files += 1;
                read.bytes += size;
            } else {
                read.skipped.push(path.clone());
            }
        }
        for run in &runs {
            let from = self.staged(run);
            let to = run.split('/').fold(self.dest.clone(), |p, c| p.join(c));
            let write_error = |source| BundleError::WriteFile {
                path: to.clone(),
                source,
            };
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(write_error)?;
            }
            fs::rename(&from, &to).map_err(write_error)?;
        }
        fs::remove_dir_all(&self.staging).map_err(|source| BundleError::WriteFile {
            path: self.staging.clone(),
            source,
        })?;
        let metas: Vec<serde_json::Value> = runs
            .iter()
            .filter_map(|run| read_meta(&self.dest, run))
            .collect();
        read.host = agreed(&metas, "hostname");
        read.root = agreed(&metas, "storage_dir");
        Ok(read)
    }
}

/// Copies `data` to `out`, returning the number of bytes.
fn copy(
    data: &mut impl Read,
    out: &mut File,
    read_error: &impl Fn(io::Error) -> BundleError,
    write_error: &impl Fn(io::Error) -> BundleError,
) -> Result<u64, BundleError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        out.write_all(&buf[..n]).map_err(write_error)?;
        copied += n as u64;
    }
}

/// `path` is `dir` or below it.
fn is_inside(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The run directories among `files`: the directories holding a run marker whose path fits a
/// layout the agent discovers (`runs/<path…>/<id>`; legacy `<project>/<name>/runs/<id>`; no
/// component starting with `.`), outermost only (a run's own subdirectories are its files).
fn run_dirs<'a>(files: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let candidates: BTreeSet<&str> = files
        .filter_map(|path| {
            let (dir, name) = path.rsplit_once('/')?;
            (RUN_MARKERS.contains(&name) && fits_layout(dir)).then_some(dir)
        })
        .collect();
    candidates
        .iter()
        .filter(|dir| {
            !candidates
                .iter()
                .any(|other| other != *dir && is_inside(dir, other))
        })
        .map(|dir| (*dir).to_owned())
        .collect()
}

/// `dir` is a run directory in one of the two layouts.
fn fits_layout(dir: &str) -> bool {
    let parts: Vec<&str> = dir.split('/').collect();
    if parts.iter().any(|p| p.starts_with('.')) {
        return false;
    }
    match parts.as_slice() {
        ["runs", _, ..] => true,
        [project, _name, "runs", _id] => !NOT_PROJECTS.contains(project),
        _ => false,
    }
}

/// A landed run's `meta.json` (bounded), when it is a JSON object.
fn read_meta(dest: &Path, run: &str) -> Option<serde_json::Value> {
    let path = run
        .split('/')
        .fold(dest.to_path_buf(), |p, c| p.join(c))
        .join("meta.json");
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_META_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(serde_json::Value::is_object)
}

/// The string every meta holds at `key`, when they all hold the same one.
fn agreed(metas: &[serde_json::Value], key: &str) -> Option<String> {
    let mut values = metas.iter().map(|meta| meta.get(key)?.as_str());
    let first = values.next()??;
    values
        .all(|value| value == Some(first))
        .then(|| first.to_owned())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn names_are_checked_and_normalised() {
        assert_eq!(entry_name(b"./").unwrap(), EntryName::Root);
        assert_eq!(
            entry_name(b"./runs/a/").unwrap(),
            EntryName::Path {
                path: "runs/a".into(),
                dir_suffix: true
            }
        );
        assert!(matches!(
            entry_name(b"runs/../x"),
            Err(BundleError::PathTraversal { .. })
        ));
        assert!(matches!(
            entry_name(b"/etc/passwd"),
            Err(BundleError::AbsolutePath { .. })
        ));
        assert!(matches!(
            entry_name(b"runs/\xff"),
            Err(BundleError::InvalidPath { .. })
        ));
        assert!(entry_name(b"runs//x").is_err());
        assert!(entry_name(b"").is_err());
    }

    #[test]
    fn runs_are_found_in_both_layouts_outermost_only() {
        let files = [
            "runs/cv/r1/meta.json",
            "runs/cv/r1/sub/meta.json",
            "runs/r2/status.json",
            "proj/exp/runs/r3/meta.json",
            "archive/x/runs/r4/meta.json",
            "runs/.hidden/r5/meta.json",
            "meta.json",
            "runs/meta.json",
            "other/r6/meta.json",
        ];
        let runs: Vec<String> = run_dirs(files.into_iter()).into_iter().collect();
        assert_eq!(runs, ["proj/exp/runs/r3", "runs/cv/r1", "runs/r2"]);
    }

    #[test]
    fn host_is_kept_only_when_runs_agree() {
        let a = serde_json::json!({"hostname": "gpu1"});
        let b = serde_json::json!({"hostname": "gpu2"});
        assert_eq!(
            agreed(&[a.clone(), a.clone()], "hostname"),
            Some("gpu1".into())
        );
        assert_eq!(agreed(&[a, b], "hostname"), None);
        assert_eq!(agreed(&[], "hostname"), None);
    }
}

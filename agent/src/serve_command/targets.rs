//! Turning a run directory named by the hub into a place on disk. Every name is checked
//! (`check_wire_path`: relative, no `..`) and must be a run the feed knows; a run the feed knows
//! as removed, or whose directory vanished since, is `Missing`. Names never reach the file
//! system unchecked, so a broken or hostile hub cannot read outside the root.

use std::path::PathBuf;

use runicorn_protocol::run_format::safe_read::open_regular;
use runicorn_protocol::wire::check_wire_path;

use super::request_error::RequestError;
use super::shared::Shared;
use crate::run_index::feed::Presence;

/// Where a requested run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The run directory (absolute).
    Present(PathBuf),
    /// The run was removed.
    Missing,
}

/// Resolves every directory of a request, failing the whole request on the first bad one.
pub fn resolve_all<'a>(
    shared: &Shared,
    dirs: impl Iterator<Item = &'a str>,
) -> Result<Vec<Target>, RequestError> {
    let dirs: Vec<&str> = dirs.collect();
    for dir in &dirs {
        check_wire_path(dir).map_err(|reason| RequestError::OutsideRoot {
            dir: (*dir).to_owned(),
            reason,
        })?;
    }
    let presence: Vec<Option<Presence>> = {
        let index = shared.index();
        dirs.iter()
            .map(|d| index.feed_presence(d))
            .collect::<Result<_, _>>()?
    };
    dirs.iter()
        .zip(presence)
        .map(|(dir, p)| match p {
            None => Err(RequestError::NotFound {
                dir: (*dir).to_owned(),
                root: shared.root.display().to_string(),
            }),
            Some(Presence::Removed) => Ok(Target::Missing),
            Some(Presence::Live) => {
                let path = shared.root.join(dir);
                let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                Ok(if is_dir {
                    Target::Present(path)
                } else {
                    Target::Missing
                })
            }
        })
        .collect()
}

/// Opens a file of a run for reading through `safe_read` (never blocks; never a FIFO, device
/// or directory): a symbolic link or anything that is not a regular file is treated as absent.
pub fn open_run_file(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    // Checked again on the open descriptor: it may have been replaced since.
    let root = path.parent().unwrap_or(path);
    match open_regular(path, root) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_refused() || e.is_not_found() => Ok(None),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Reads the requested runs in order until `budget` bytes were read, always at least one run so
/// reading progresses; runs left over are not in the answer (the hub asks again). `read` gets
/// the bytes still allowed; `bytes_read` says how many an answer used.
pub fn read_within_budget<W, T>(
    wanted: &[W],
    targets: &[Target],
    budget: u64,
    mut read: impl FnMut(&W, &Target, u64) -> T,
    bytes_read: impl Fn(&T) -> u64,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut used = 0u64;
    for (w, target) in wanted.iter().zip(targets) {
        if used >= budget && !out.is_empty() {
            break;
        }
        let answer = read(w, target, budget.saturating_sub(used).max(1));
        used += bytes_read(&answer);
        out.push(answer);
    }
    out
}

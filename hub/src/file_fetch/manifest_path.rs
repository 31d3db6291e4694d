//! The paths the hub asks a remote for: a manifest path passes the wire's one path rule
//! (`check_wire_path`: relative, normalised), and joined under the run's directory it stays
//! below the storage root, whatever it says.

use runicorn_protocol::wire::check_wire_path;

use super::FetchError;

/// Checks a path of a run's manifest by the wire's one path rule (the rule the store checked it
/// by when it came in): relative, no `..`, `.` or empty segment, no backslash or NUL.
pub fn check_manifest_path(path: &str) -> Result<(), FetchError> {
    check_wire_path(path).map_err(|reason| FetchError::BadPath {
        path: path.to_owned(),
        reason,
    })
}

/// `run_dir/path` relative to the storage root, both checked by the same rule.
pub fn relative_to_root(run_dir: &str, path: &str) -> Result<String, FetchError> {
    check_manifest_path(path)?;
    check_manifest_path(run_dir).map_err(|_| FetchError::BadPath {
        path: format!("{run_dir}/{path}"),
        reason: "the run's directory is not a plain relative path".into(),
    })?;
    Ok(format!("{run_dir}/{path}"))
}

/// True when `resolved` (a real path) is `root` (a real path) or below it.
pub fn is_under(resolved: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return resolved.starts_with('/');
    }
    resolved
        .strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in ["media/a.png", "a", "x/y/z.txt", "a..b", "..a"] {
            assert!(check_manifest_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../store.sqlite",
            "media/../../x",
            "a//b",
            "a\\b",
            "./a",
            "a/.",
            "a\u{0}",
        ] {
            assert!(check_manifest_path(bad).is_err(), "{bad:?}");
        }
        assert!(relative_to_root("runs/a", "../../etc/passwd").is_err());
        assert!(relative_to_root("/abs", "x").is_err());
        assert_eq!(
            relative_to_root("runs/a", "m/x.png").unwrap(),
            "runs/a/m/x.png"
        );
    }

    #[test]
    fn under_the_root_means_below_a_whole_segment() {
        assert!(is_under("/data/root/runs/a", "/data/root"));
        assert!(is_under("/data/root", "/data/root/"));
        assert!(!is_under("/data/rootless/x", "/data/root"));
        assert!(!is_under("/etc/passwd", "/data/root"));
        assert!(is_under("/x", "/"));
    }
}

//! Checks of the relative, `/`-separated paths a bundle names (members, run directories).

use crate::error::BundleError;

/// Why a path is refused, before it is tied to a member name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    Absolute,
    Traversal,
    Invalid(&'static str),
}

/// Checks that `path` is relative, `/`-separated, with no `..`, `.` or empty components, no
/// backslash and no NUL.
pub fn check_relative(path: &str) -> Result<(), PathProblem> {
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Err(PathProblem::Absolute);
    }
    if path.is_empty() {
        return Err(PathProblem::Invalid("empty path"));
    }
    for component in path.split('/') {
        match component {
            ".." => return Err(PathProblem::Traversal),
            "" => return Err(PathProblem::Invalid("empty component")),
            "." => return Err(PathProblem::Invalid("`.` component")),
            c if c.contains('\\') => return Err(PathProblem::Invalid("backslash")),
            c if c.contains('\0') => return Err(PathProblem::Invalid("NUL byte")),
            _ => {}
        }
    }
    Ok(())
}

/// [`check_relative`] as a [`BundleError`] naming `member`.
pub fn check_member_path(member: &str, path: &str) -> Result<(), BundleError> {
    check_relative(path).map_err(|problem| match problem {
        PathProblem::Absolute => BundleError::AbsolutePath {
            member: member.to_owned(),
        },
        PathProblem::Traversal => BundleError::PathTraversal {
            member: member.to_owned(),
        },
        PathProblem::Invalid(reason) => BundleError::InvalidPath {
            member: member.to_owned(),
            reason: reason.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_could_escape() {
        assert_eq!(check_relative("runs/a/b.txt"), Ok(()));
        assert_eq!(check_relative("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(check_relative("C:/x"), Err(PathProblem::Absolute));
        assert_eq!(check_relative("runs/../x"), Err(PathProblem::Traversal));
        assert!(check_relative("runs//x").is_err());
        assert!(check_relative("runs/./x").is_err());
        assert!(check_relative("runs/a\\..\\x").is_err());
        assert!(check_relative("").is_err());
    }
}

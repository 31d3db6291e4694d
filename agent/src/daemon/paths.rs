//! Where the resident agent's files are (`<root>/.runicorn-agent/daemon.{lock,sock,log}`), the
//! agent folder made safe to hold them (ours, not writable by others), and the socket's address:
//! a Unix socket path holds at most 107 bytes, so a longer one is reached through the folder's
//! descriptor (`/proc/self/fd/N/daemon.sock`) instead.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The agent's folder in the root (the index lives there too).
pub const AGENT_DIR: &str = ".runicorn-agent";
pub const LOCK_FILE: &str = "daemon.lock";
pub const SOCKET_FILE: &str = "daemon.sock";
pub const LOG_FILE: &str = "daemon.log";

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes with the final NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The resident agent's files for one storage root.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub dir: PathBuf,
    pub lock: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot create {path}: {cause}")]
    Create { path: PathBuf, cause: io::Error },
    #[error("{path} is not a folder (a link or a file); remove it so the agent can make its own")]
    NotAFolder { path: PathBuf },
    #[error(
        "{path} belongs to another user (uid {owner}); the resident agent keeps its socket only in a folder of its own user"
    )]
    NotOwned { path: PathBuf, owner: u32 },
    #[error("{path} is writable by other users (mode {mode:o}); fix it with `chmod go-w {path}`")]
    OpenToOthers { path: PathBuf, mode: u32 },
}

impl DaemonPaths {
    pub fn of(root: &Path) -> DaemonPaths {
        let dir = root.join(AGENT_DIR);
        DaemonPaths {
            lock: dir.join(LOCK_FILE),
            socket: dir.join(SOCKET_FILE),
            log: dir.join(LOG_FILE),
            dir,
        }
    }

    /// Creates the agent folder (mode 0700) when missing and checks that it can hold a socket
    /// safely: a real folder of this user that no one else can write to.
    pub fn prepare_dir(&self) -> Result<(), PathsError> {
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(cause) => {
                return Err(PathsError::Create {
                    path: self.dir.clone(),
                    cause,
                })
            }
        }
        let meta = std::fs::symlink_metadata(&self.dir).map_err(|cause| PathsError::Create {
            path: self.dir.clone(),
            cause,
        })?;
        if !meta.is_dir() {
            return Err(PathsError::NotAFolder {
                path: self.dir.clone(),
            });
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(PathsError::NotOwned {
                path: self.dir.clone(),
                owner: meta.uid(),
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(PathsError::OpenToOthers {
                path: self.dir.clone(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(())
    }
}

/// The socket's address as the kernel will take it: the path itself, or, when that is too
/// long, the same file named through an open descriptor of its folder (kept open while used).
pub struct SocketAddress {
    path: PathBuf,
    /// Holds the folder open while `path` names it through `/proc/self/fd`.
    _dir: Option<File>,
}

impl SocketAddress {
    pub fn of(socket: &Path) -> io::Result<SocketAddress> {
        if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(SocketAddress {
                path: socket.to_owned(),
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a socket path", socket.display()),
            ));
        };
        let folder = File::open(dir)?;
        let short = PathBuf::from(format!("/proc/self/fd/{}", folder.as_raw_fd())).join(name);
        if short.as_os_str().len() > MAX_SOCKET_PATH || !short.parent().is_some_and(Path::is_dir) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the socket path {} is {} bytes, over the {MAX_SOCKET_PATH}-byte limit of Unix sockets, and /proc is not available to shorten it; use a storage root with a shorter path",
                    socket.display(),
                    socket.as_os_str().len()
                ),
            ));
        }
        Ok(SocketAddress {
            path: short,
            _dir: Some(folder),
        })
    }

    pub fn bind(&self) -> io::Result<UnixListener> {
        UnixListener::bind(&self.path)
    }

    pub fn connect(&self) -> io::Result<UnixStream> {
        UnixStream::connect(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_socket_path_over_the_limit_is_reached_through_its_folder() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join(SOCKET_FILE);
        assert!(socket.as_os_str().len() > MAX_SOCKET_PATH);
        let address = SocketAddress::of(&socket).unwrap();
        let listener = address.bind().unwrap();
        // The socket is where the long path says.
        assert!(std::fs::symlink_metadata(&socket).is_ok());
        let client = SocketAddress::of(&socket).unwrap().connect().unwrap();
        let (server, _) = listener.accept().unwrap();
        drop((client, server));
        let short = t.path().join(SOCKET_FILE);
        let address = SocketAddress::of(&short).unwrap();
        assert_eq!(address.path, short);
    }

    #[test]
    fn the_folder_must_be_ours_and_closed_to_others() {
        let t = tempfile::tempdir().unwrap();
        let paths = DaemonPaths::of(t.path());
        paths.prepare_dir().unwrap();
        let mode = std::fs::metadata(&paths.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = paths.prepare_dir().unwrap_err().to_string();
        assert!(err.contains("chmod go-w"), "{err}");
        std::fs::remove_dir(&paths.dir).unwrap();
        std::os::unix::fs::symlink(t.path(), &paths.dir).unwrap();
        assert!(matches!(
            paths.prepare_dir(),
            Err(PathsError::NotAFolder { .. })
        ));
    }
}

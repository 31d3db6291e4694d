//! The daemon's socket: bound safely (mode 0600, created under a umask that never lets it be
//! wider; a stale socket of a dead daemon replaced, anything else at its path refused), and
//! the accept loop. Each connection of this user gets the greeting line, then one protocol
//! session on its own thread over the warm feed (`serve_command::serve_connection`), exactly
//! as `serve --stdio` would serve it.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use runicorn_protocol::wire::DEFAULT_MAX_FRAME_BYTES;

use super::paths::SocketAddress;
use super::{GREETING, VERSION};
use crate::serve_command::{serve_connection, ConnectionOptions, FrameWriter, Warm};

/// Most sessions served at once; more are refused with a line saying so.
pub const MAX_SESSIONS: usize = 64;

/// Binds the socket at `path` (mode 0600). The caller holds the daemon lock, so whatever socket
/// is there belongs to a daemon that is gone.
pub fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            eprintln!(
                "runicorn-agent daemon: replacing the stale socket {} of a daemon that is gone",
                path.display()
            );
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; remove it so the daemon can listen there",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let address = SocketAddress::of(path)?;
    // SAFETY: umask only swaps the process's file mode mask; the daemon binds before it starts
    // any thread that creates files, and restores the mask right after.
    let old = unsafe { libc::umask(0o177) };
    let bound = address.bind();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The user id of the peer of a Unix stream.
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the descriptor is open.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(cred.uid)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What the accept loop counts.
#[derive(Default)]
pub struct Sessions {
    /// Connections being served now (hello exchanged or not).
    pub open: AtomicUsize,
    /// Connections served since the daemon started.
    pub total: AtomicU64,
}

/// Accepts connections until the listener fails; each is served on its own thread.
pub fn accept_loop(listener: &UnixListener, warm: &Arc<Warm>, sessions: &Arc<Sessions>) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("runicorn-agent daemon: accepting a connection failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        match peer_uid(&stream) {
            Ok(uid) if uid == me => {}
            other => {
                eprintln!(
                    "runicorn-agent daemon: refused a connection from another user ({other:?})"
                );
                continue;
            }
        }
        if sessions.open.load(Ordering::SeqCst) >= MAX_SESSIONS {
            let _ = writeln!(
                stream,
                "busy: this daemon serves {MAX_SESSIONS} sessions already"
            );
            continue;
        }
        let n = sessions.total.fetch_add(1, Ordering::SeqCst) + 1;
        sessions.open.fetch_add(1, Ordering::SeqCst);
        let warm = Arc::clone(warm);
        let counts = Arc::clone(sessions);
        let spawned = std::thread::Builder::new()
            .name(format!("session-{n}"))
            .spawn(move || {
                serve_one(stream, &warm, n, &counts);
                counts.open.fetch_sub(1, Ordering::SeqCst);
                // What the session read and sent is freed: its pages go back now.
                crate::heap::trim();
            });
        if let Err(e) = spawned {
            sessions.open.fetch_sub(1, Ordering::SeqCst);
            eprintln!("runicorn-agent daemon: cannot start a session thread: {e}");
        }
    }
}

fn serve_one(mut stream: UnixStream, warm: &Arc<Warm>, n: u64, counts: &Sessions) {
    let greeting = format!("{GREETING} pid={} version={VERSION}\n", std::process::id());
    if let Err(e) = stream.write_all(greeting.as_bytes()) {
        eprintln!("runicorn-agent daemon: session {n}: {e}");
        return;
    }
    let (reader, writer) = match (stream.try_clone(), stream.try_clone()) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("runicorn-agent daemon: session {n}: {e}");
            return;
        }
    };
    eprintln!(
        "runicorn-agent daemon: session {n} attached ({} open)",
        counts.open.load(Ordering::SeqCst)
    );
    let out = FrameWriter::new(Box::new(writer), DEFAULT_MAX_FRAME_BYTES);
    let options = ConnectionOptions {
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        exit_process_on_close: false,
        log_name: "daemon",
    };
    let reader = io::BufReader::with_capacity(256 * 1024, reader);
    match serve_connection(warm, reader, out, &options, || Ok(())) {
        Ok(code) => eprintln!("runicorn-agent daemon: session {n} ended (code {code})"),
        Err(e) => eprintln!("runicorn-agent daemon: session {n} failed: {e:#}"),
    }
    // Wakes the session's reader thread if it still waits for a frame.
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_socket_is_owner_only_and_a_stale_one_is_replaced() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("daemon.sock");
        let first = bind_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(first); // the file stays, like a killed daemon's
        let second = bind_socket(&path).unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let (server, _) = second.accept().unwrap();
        assert_eq!(peer_uid(&server).unwrap(), unsafe { libc::geteuid() });
        drop(client);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "not a socket").unwrap();
        let err = bind_socket(&path).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
    }
}

//! `serve --stdio` attaching to the root's resident agent: connect to its socket, wait (briefly)
//! for its greeting line, then relay bytes both ways (stdin → socket, socket → stdout) until
//! either side ends, so the hub sees exactly the protocol it would see from an in-process
//! session. No daemon, a stale socket, or one that does not greet in time: `None`, and the
//! caller serves the session in-process. The daemon ending the session while the hub still
//! talks: a clear line on stderr and exit code 2, so the hub reconnects (and lands on the
//! fallback when the daemon is gone).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::paths::{DaemonPaths, SocketAddress};
use super::start::start_detached;
use super::{GREETING, VERSION};

/// How long the daemon has to send its greeting after accepting.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the relay waits for the daemon to close the session after the hub closed its side.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Longest greeting line read.
const MAX_GREETING: usize = 256;

/// A daemon that greeted us.
pub struct Attached {
    pub stream: UnixStream,
    pub pid: String,
}

/// Why no daemon was reached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no resident agent runs for this root")]
    NoSocket,
    #[error("the resident agent's socket {0} is stale (no daemon listens)")]
    Stale(String),
    #[error("the resident agent at {socket} did not greet: {cause}")]
    NoGreeting { socket: String, cause: String },
    #[error("cannot reach the resident agent at {socket}: {cause}")]
    Connect { socket: String, cause: io::Error },
    #[error(
        "the resident agent (pid {pid}) is runicorn-agent {theirs}, this is {VERSION}; restart it (`kill {pid}`) to serve with this version"
    )]
    OtherVersion { pid: String, theirs: String },
}

/// Attaches to the root's daemon (starting one first when `start` gives its idle exit) and
/// relays the session; returns the exit code, or `None` to serve in-process.
pub fn attach(root: &Path, start: Option<u64>) -> Option<u8> {
    let paths = DaemonPaths::of(root);
    let attached = match (connect(&paths.socket), start) {
        (Ok(a), _) => a,
        // It holds the lock: no other daemon can start until it is restarted.
        (Err(e @ AttachError::OtherVersion { .. }), _) => {
            eprintln!("runicorn-agent serve: {e}; serving this session in-process");
            return None;
        }
        (Err(e), Some(idle_exit)) => {
            if !matches!(e, AttachError::NoSocket) {
                eprintln!("runicorn-agent serve: {e}; starting a new one");
            }
            match start_detached(root, &paths, idle_exit) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!(
                        "runicorn-agent serve: could not start a resident agent ({e:#}); serving this session in-process"
                    );
                    return None;
                }
            }
        }
        (Err(AttachError::NoSocket), None) => return None,
        (Err(e), None) => {
            eprintln!("runicorn-agent serve: {e}; serving this session in-process");
            return None;
        }
    };
    Some(relay(attached))
}

/// Connects and reads the greeting.
pub fn connect(socket: &Path) -> Result<Attached, AttachError> {
    let shown = socket.display().to_string();
    match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AttachError::NoSocket),
        _ => {}
    }
    let address = SocketAddress::of(socket).map_err(|cause| AttachError::Connect {
        socket: shown.clone(),
        cause,
    })?;
    let mut stream = match address.connect() {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(AttachError::Stale(shown))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AttachError::NoSocket),
        Err(cause) => {
            return Err(AttachError::Connect {
                socket: shown,
                cause,
            })
        }
    };
    let no_greeting = |cause: String| AttachError::NoGreeting {
        socket: shown.clone(),
        cause,
    };
    stream
        .set_read_timeout(Some(GREETING_TIMEOUT))
        .map_err(|e| no_greeting(e.to_string()))?;
    let line = read_line(&mut stream).map_err(|e| no_greeting(e.to_string()))?;
    let Some(rest) = line.strip_prefix(GREETING) else {
        return Err(no_greeting(format!("it said {line:?}")));
    };
    let field = |name: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or("?")
            .to_owned()
    };
    let pid = field("pid=");
    let theirs = field("version=");
    if theirs != VERSION {
        return Err(AttachError::OtherVersion { pid, theirs });
    }
    stream
        .set_read_timeout(None)
        .map_err(|e| no_greeting(e.to_string()))?;
    Ok(Attached { stream, pid })
}

/// Reads one line byte by byte (nothing after it may be consumed: frames follow).
fn read_line(stream: &mut UnixStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_GREETING {
        match stream.read(&mut byte) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(_) if byte[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the greeting line is too long",
    ))
}

/// Relays the session; returns the exit code.
fn relay(attached: Attached) -> u8 {
    let Attached { stream, pid } = attached;
    let hub_closed = Arc::new(AtomicBool::new(false));
    let to_daemon = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("runicorn-agent serve: relaying to the resident agent: {e}");
            return 2;
        }
    };
    let closed = Arc::clone(&hub_closed);
    let upstream = std::thread::Builder::new()
        .name("relay-in".into())
        .spawn(move || {
            let _ = copy_flushing(&mut io::stdin().lock(), &mut &to_daemon);
            closed.store(true, Ordering::SeqCst);
            // The daemon reads the end of the stream and ends the session.
            let _ = to_daemon.shutdown(std::net::Shutdown::Write);
            let _ = to_daemon.set_read_timeout(Some(CLOSE_GRACE));
        });
    if let Err(e) = upstream {
        eprintln!("runicorn-agent serve: relaying to the resident agent: {e}");
        return 2;
    }
    let mut from_daemon = &stream;
    let result = copy_flushing(&mut from_daemon, &mut io::stdout().lock());
    if hub_closed.load(Ordering::SeqCst) {
        return 0;
    }
    match result {
        // The hub stopped reading: it is gone.
        Err(Side::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(Side::Write(e)) => {
            eprintln!("runicorn-agent serve: writing to the hub: {e}");
            2
        }
        Ok(()) | Err(Side::Read(_)) => {
            let how = match result {
                Err(Side::Read(e)) => format!(" ({e})"),
                _ => String::new(),
            };
            eprintln!(
                "runicorn-agent serve: the resident agent (pid {pid}) ended the session while the hub was still connected{how}: it stopped or died; the next connection is served without it unless it is restarted"
            );
            2
        }
    }
}

/// Which side of a copy failed.
enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// Copies until the end of `from`, flushing after each read so frames are never held back.
fn copy_flushing(from: &mut impl Read, to: &mut impl Write) -> Result<(), Side> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Side::Read(e)),
        };
        to.write_all(&buf[..n])
            .and_then(|()| to.flush())
            .map_err(Side::Write)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn greetings_stale_sockets_and_silence() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("daemon.sock");
        assert!(matches!(connect(&path), Err(AttachError::NoSocket)));
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(format!("{GREETING} pid=77 version={VERSION}\nrest").as_bytes())
                .unwrap();
            let (mut old, _) = listener.accept().unwrap();
            old.write_all(format!("{GREETING} pid=78 version=0.0.1\n").as_bytes())
                .unwrap();
            let (silent, _) = listener.accept().unwrap();
            std::thread::sleep(GREETING_TIMEOUT + Duration::from_millis(300));
            drop((s, old, silent));
        });
        let mut a = connect(&path).unwrap();
        assert_eq!(a.pid, "77");
        let mut rest = [0u8; 4];
        a.stream.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"rest");
        match connect(&path) {
            Err(e @ AttachError::OtherVersion { .. }) => {
                assert!(e.to_string().contains("kill 78"), "{e}")
            }
            other => panic!("{:?}", other.err()),
        }
        assert!(matches!(
            connect(&path),
            Err(AttachError::NoGreeting { .. })
        ));
        server.join().unwrap();
        // The listener is gone but its file stays: stale.
        assert!(matches!(connect(&path), Err(AttachError::Stale(_))));
    }
}

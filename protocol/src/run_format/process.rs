//! Facts about processes on this host that liveness checks need: the hostname, whether a pid is
//! alive, and a process's start time (to tell a reused pid apart). Linux reads `/proc`; other
//! Unix systems fall back to `kill(pid, 0)` and have no start time.

use std::path::Path;

/// This machine's hostname as the SDKs record it.
pub fn local_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), when
/// this system has `/proc`.
pub fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 on; field 22 is the 20th of them.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process with this pid exists now (zombies count as gone).
pub fn pid_alive(pid: i64) -> bool {
    let Ok(pid32) = u32::try_from(pid) else {
        return false;
    };
    if pid32 == 0 {
        return false;
    }
    if Path::new("/proc/self/stat").exists() {
        return match std::fs::read_to_string(format!("/proc/{pid32}/stat")) {
            Ok(stat) => !matches!(
                stat.rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().next()),
                Some("Z" | "X")
            ),
            Err(_) => false,
        };
    }
    let Ok(pid_t) = libc::pid_t::try_from(pid32) else {
        return false;
    };
    // SAFETY: kill with signal 0 performs only the existence and permission check.
    let rc = unsafe { libc::kill(pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        assert!(pid_alive(std::process::id() as i64));
        assert!(!pid_alive(-5));
        assert!(!pid_alive(0));
        if Path::new("/proc/self/stat").exists() {
            assert!(proc_start_ticks(std::process::id()).is_some());
        }
        assert!(!local_hostname().is_empty());
    }

    #[test]
    fn reaped_child_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i64;
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }
}

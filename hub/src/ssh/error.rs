//! `SshError`: every way reaching a server can fail, each message naming the host and what the
//! user can do about it.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the SSH transport. `target` fields are `user@host:port` (see `SshTarget`'s
/// `Display`), so a message always says which server it is about.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host argument could not be understood.
    #[error("invalid SSH destination {spec:?}: {reason} (expected [user@]host[:port])")]
    InvalidTarget { spec: String, reason: String },

    /// `~/.ssh/config` could not be read or parsed.
    #[error("cannot use SSH config {}: {message}; fix the file or move it aside", path.display())]
    Config { path: PathBuf, message: String },

    /// The host name does not resolve.
    #[error(
        "cannot resolve host {host:?} (for {target}): {message}; check the name, \
         your network and `HostName` in ~/.ssh/config"
    )]
    Dns {
        target: String,
        host: String,
        message: String,
    },

    /// Nothing listens on the port.
    #[error(
        "connection to {target} refused: no SSH server listens on port {port}; check the port \
         (-p or `Port` in ~/.ssh/config) and that sshd runs there"
    )]
    ConnectionRefused { target: String, port: u16 },

    /// A step took longer than the connect timeout.
    #[error(
        "timed out after {}s while {stage} ({target}); the host may be down, firewalled or \
         unreachable from here (use ProxyJump/-J if it sits behind a gateway)",
        after.as_secs_f64()
    )]
    Timeout {
        target: String,
        stage: &'static str,
        after: Duration,
    },

    /// Any other failure to open the TCP connection.
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },

    /// The SSH handshake (version exchange, key exchange) failed.
    #[error("SSH handshake with {target} failed: {message}")]
    Handshake { target: String, message: String },

    /// The server's host key is not in known_hosts.
    #[error(
        "the host key of {target} is not known: {key} is not in {}. Check the fingerprint \
         with the server's administrator (on the server: `ssh-keygen -lf \
         /etc/ssh/ssh_host_*_key.pub`), then connect once with --accept-new-host-key (or \
         `{ssh_command}`) to record it{note}",
        known_hosts.display()
    )]
    HostKeyUnknown {
        target: String,
        /// The key type and its SHA256 fingerprint: `ssh-ed25519 SHA256:…`.
        key: String,
        known_hosts: PathBuf,
        /// The `ssh` command that would record the key the OpenSSH way.
        ssh_command: String,
        /// Empty, or a remark on other key types recorded for this host.
        note: String,
    },

    /// The server's host key differs from the one recorded: refused, always.
    #[error(
        "WARNING: the host key of {target} HAS CHANGED. Someone could be intercepting the \
         connection (man-in-the-middle), or the server was reinstalled. The server offered \
         {key}; {}:{line} records a different one. Refusing to connect \
         (--accept-new-host-key does not override this). If you have confirmed the new key \
         with the server's administrator, remove the old entry with \
         `ssh-keygen -R '{entry}' -f {}` and connect again.",
        known_hosts.display(), known_hosts.display()
    )]
    HostKeyChanged {
        target: String,
        /// The known_hosts name: `host` or `[host]:port`.
        entry: String,
        /// The key type and its SHA256 fingerprint: `ssh-ed25519 SHA256:…`.
        key: String,
        known_hosts: PathBuf,
        line: usize,
    },

    /// known_hosts could not be read or written.
    #[error("cannot use known_hosts file {} (for {target}): {message}", path.display())]
    KnownHosts {
        target: String,
        path: PathBuf,
        message: String,
    },

    /// No key was accepted.
    #[error(
        "authentication to {target} failed: the server accepts {server_methods}; tried: {}. \
         Add your public key to ~/.ssh/authorized_keys on the server (`{copy_id}`), pass the \
         right key with -i, load it into ssh-agent (`ssh-add`), or check the user name \
         (-l/`User` in ~/.ssh/config)",
        if tried.is_empty() { "nothing (no ssh-agent keys, no key files found)".to_string() } else { tried.join("; ") }
    )]
    AuthFailed {
        target: String,
        /// One entry per method/key tried and what came of it.
        tried: Vec<String>,
        server_methods: String,
        /// The `ssh-copy-id` command for this destination.
        copy_id: String,
    },

    /// Reaching the target through a ProxyJump host failed.
    #[error("cannot reach {target} through jump host {jump}: {source}")]
    Jump {
        jump: String,
        target: String,
        #[source]
        source: Box<SshError>,
    },

    /// A channel (exec, agent, SFTP, forwarding) could not be opened or used.
    #[error("{what} on {target} failed: {message}")]
    Channel {
        target: String,
        what: String,
        message: String,
    },

    /// The connection went away (network cut, server restart, keepalive timeout).
    #[error(
        "SSH connection to {target} lost: {message}; the hub reconnects when the host is \
         reachable again"
    )]
    Disconnected { target: String, message: String },
}

impl SshError {
    /// True when retrying later may help (network trouble), false for errors that need the user
    /// (host keys, authentication, configuration).
    pub fn is_transient(&self) -> bool {
        match self {
            SshError::Dns { .. }
            | SshError::ConnectionRefused { .. }
            | SshError::Timeout { .. }
            | SshError::Connect { .. }
            | SshError::Handshake { .. }
            | SshError::Channel { .. }
            | SshError::Disconnected { .. } => true,
            SshError::Jump { source, .. } => source.is_transient(),
            SshError::InvalidTarget { .. }
            | SshError::Config { .. }
            | SshError::HostKeyUnknown { .. }
            | SshError::HostKeyChanged { .. }
            | SshError::KnownHosts { .. }
            | SshError::AuthFailed { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_host_and_the_remedy() {
        let e = SshError::HostKeyUnknown {
            target: "me@gpu1:22".into(),
            key: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: "/home/me/.ssh/known_hosts".into(),
            ssh_command: "ssh me@gpu1".into(),
            note: String::new(),
        };
        let text = e.to_string();
        assert!(
            text.contains("me@gpu1:22") && text.contains("SHA256:abc"),
            "{text}"
        );
        assert!(text.contains("--accept-new-host-key"), "{text}");
        assert!(!e.is_transient());

        let e = SshError::HostKeyChanged {
            target: "me@gpu1:2222".into(),
            entry: "[gpu1]:2222".into(),
            key: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: "/k".into(),
            line: 3,
        };
        let text = e.to_string();
        assert!(
            text.contains("/k:3") && text.contains("ssh-keygen -R '[gpu1]:2222'"),
            "{text}"
        );

        let e = SshError::AuthFailed {
            target: "me@gpu1:22".into(),
            tried: vec![],
            server_methods: "publickey".into(),
            copy_id: "ssh-copy-id me@gpu1".into(),
        };
        assert!(e.to_string().contains("nothing"), "{e}");
    }

    #[test]
    fn errors_stay_small() {
        // Returned through every layer; clippy's large_enum/result_large_err limit is 128.
        assert!(
            std::mem::size_of::<SshError>() <= 120,
            "{}",
            std::mem::size_of::<SshError>()
        );
    }
}

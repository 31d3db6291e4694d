//! SFTP on a second channel of the same connection (the `sftp` subsystem), with settings for
//! bulk transfer over a slow link: more reads in flight and a request timeout that leaves dead
//! links to the keepalives.

use russh_sftp::client::{Config, SftpSession};

use super::connect::SshSession;
use super::error::SshError;

/// Reads in flight per file; each is up to the server's limit (255 KiB for OpenSSH).
const CONCURRENT_READS: usize = 32;
/// Seconds a single SFTP request may take. A dead link is detected by keepalives well before.
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// The SFTP settings `SshSession::sftp` uses.
pub fn default_sftp_config() -> Config {
    Config {
        max_concurrent_reads: CONCURRENT_READS,
        request_timeout_secs: REQUEST_TIMEOUT_SECS,
        ..Config::default()
    }
}

impl SshSession {
    /// An SFTP session on a new channel of this connection.
    pub async fn sftp(&self) -> Result<SftpSession, SshError> {
        self.sftp_with_config(default_sftp_config()).await
    }

    /// An SFTP session with explicit settings.
    pub async fn sftp_with_config(&self, config: Config) -> Result<SftpSession, SshError> {
        let what = "starting SFTP";
        let mut channel = self.open_session(what).await?;
        if let Err(e) = channel.request_subsystem(true, "sftp").await {
            return Err(self.channel_error(what, e.to_string()));
        }
        self.await_reply(
            &mut channel,
            what,
            "the server has no SFTP subsystem (`Subsystem sftp` in its sshd_config)",
        )
        .await?;
        let init = SftpSession::new_with_config(channel.into_stream(), config);
        match tokio::time::timeout(self.timeout, init).await {
            Err(_) => Err(SshError::Timeout {
                target: self.target.to_string(),
                stage: "starting SFTP",
                after: self.timeout,
            }),
            Ok(Err(e)) => Err(self.channel_error(what, e.to_string())),
            Ok(Ok(sftp)) => Ok(sftp),
        }
    }
}

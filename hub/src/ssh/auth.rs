//! User authentication: the keys of ssh-agent first, then key files (`-i`, `IdentityFile`s,
//! the default `id_*`). An encrypted key asks for its passphrase on a terminal and, off one,
//! says to load it into ssh-agent. RSA signatures use the best hash the server supports.
//! A failure lists every key tried and what the server said.

use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{MethodKind, MethodSet};

use super::connect::ClientHandler;
use super::error::SshError;
use super::known_hosts::fingerprint;
use super::target::{ConnectOptions, SshTarget};

/// How many times a passphrase is asked for before the key is skipped.
const PASSPHRASE_ATTEMPTS: usize = 3;

type Agent = AgentClient<tokio::net::UnixStream>;

/// One authentication attempt in progress: what was tried, what the server accepts.
struct Attempt<'a> {
    handle: &'a mut Handle<ClientHandler>,
    target: &'a SshTarget,
    timeout: Duration,
    tried: Vec<String>,
    /// Public keys already offered (an agent key is not offered again from its file).
    offered: Vec<PublicKey>,
    server_methods: MethodSet,
    /// `None` until asked; then the server's RSA hash preference.
    rsa_hash: Option<Option<HashAlg>>,
}

enum Outcome {
    Success,
    /// Refused; keep trying other keys.
    Refused,
    /// Stop: publickey is no longer possible (server closed, or publickey not accepted).
    Stop(String),
}

/// Authenticates `handle` as `target.user`.
pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    opts: &ConnectOptions,
) -> Result<(), SshError> {
    let mut attempt = Attempt {
        handle,
        target,
        timeout: opts.connect_timeout,
        tried: Vec::new(),
        offered: Vec::new(),
        server_methods: MethodSet::empty(),
        rsa_hash: None,
    };

    // "none" first, as OpenSSH does: it tells which methods the server accepts.
    let user = target.user.clone();
    let none = within(
        opts.connect_timeout,
        target,
        attempt.handle.authenticate_none(user),
    )
    .await?;
    match none {
        Ok(AuthResult::Success) => return Ok(()),
        Ok(AuthResult::Failure {
            remaining_methods, ..
        }) => attempt.server_methods = remaining_methods,
        Err(e) => return Err(attempt.lost(&e.to_string())),
    }
    if !attempt.server_methods.contains(&MethodKind::PublicKey) {
        attempt.tried.push(
            "nothing: the server does not accept public keys, and the hub authenticates \
             only with keys"
                .to_string(),
        );
        return Err(attempt.failed());
    }

    let identity_keys: Vec<PublicKey> = if target.identities_only {
        target
            .identity_files
            .iter()
            .filter_map(|path| public_key_of(path))
            .collect()
    } else {
        Vec::new()
    };

    if let Some(mut agent) = attempt.open_agent(opts).await {
        match attempt.with_agent(&mut agent, &identity_keys).await? {
            Outcome::Success => return Ok(()),
            Outcome::Stop(note) => {
                attempt.tried.push(note);
                return Err(attempt.failed());
            }
            Outcome::Refused => {}
        }
    }

    for (index, path) in target.identity_files.iter().enumerate() {
        let explicit = index == 0 && opts.identity.as_deref() == Some(path.as_path());
        match attempt.with_key_file(path, explicit).await? {
            Outcome::Success => return Ok(()),
            Outcome::Stop(note) => {
                attempt.tried.push(note);
                return Err(attempt.failed());
            }
            Outcome::Refused => {}
        }
    }
    Err(attempt.failed())
}

impl Attempt<'_> {
    fn failed(&mut self) -> SshError {
        let methods: Vec<&str> = self.server_methods.iter().map(<&str>::from).collect();
        let t = self.target;
        let port = if t.port == 22 {
            String::new()
        } else {
            format!("-p {} ", t.port)
        };
        SshError::AuthFailed {
            target: t.to_string(),
            copy_id: format!("ssh-copy-id {port}{}@{}", t.user, t.host),
            tried: std::mem::take(&mut self.tried),
            server_methods: if methods.is_empty() {
                "no further methods".to_string()
            } else {
                methods.join(",")
            },
        }
    }

    /// The connection closed while offering a key: after refusals that is the server giving
    /// up (MaxAuthTries), reported with the keys tried; before any, a lost connection.
    fn closed_mid_auth(&self, message: &str) -> Result<Outcome, SshError> {
        if self.tried.iter().any(|t| t.ends_with(": refused")) {
            Ok(Outcome::Stop(format!(
                "the server then closed the connection ({message}; too many keys offered? set \
                 `IdentitiesOnly yes` or pass the right key with -i)"
            )))
        } else {
            Err(self.lost(message))
        }
    }

    fn lost(&self, message: &str) -> SshError {
        SshError::Disconnected {
            target: self.target.to_string(),
            message: format!("during authentication: {message}"),
        }
    }

    /// The hash for RSA signatures (asked once; SHA-1 only for servers that know nothing else).
    async fn rsa_hash(&mut self) -> Option<HashAlg> {
        if let Some(hash) = self.rsa_hash {
            return hash;
        }
        let asked = within(
            self.timeout,
            self.target,
            self.handle.best_supported_rsa_hash(),
        )
        .await;
        let hash = match asked {
            Ok(Ok(Some(hash))) => hash,
            // No server-sig-algs: a server older than OpenSSH 7.2, which knows only SHA-1.
            Ok(Ok(None)) => None,
            Ok(Err(_)) | Err(_) => Some(HashAlg::Sha256),
        };
        self.rsa_hash = Some(hash);
        hash
    }

    /// Interprets the server's answer to one key.
    fn judge(&mut self, result: AuthResult, what: String) -> Outcome {
        match result {
            AuthResult::Success => Outcome::Success,
            AuthResult::Failure {
                remaining_methods,
                partial_success,
            } => {
                if partial_success {
                    self.tried.push(format!(
                        "{what}: accepted, but the server also requires {} (not supported by \
                         the hub)",
                        remaining_methods
                            .iter()
                            .map(<&str>::from)
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                    return Outcome::Stop("stopped: multi-factor login is not supported".into());
                }
                self.tried.push(format!("{what}: refused"));
                if self.handle.is_closed() {
                    return Outcome::Stop(
                        "the server then closed the connection (too many keys offered? set \
                         `IdentitiesOnly yes` or pass the right key with -i)"
                            .to_string(),
                    );
                }
                if !remaining_methods.is_empty() {
                    self.server_methods = remaining_methods;
                }
                if self.server_methods.contains(&MethodKind::PublicKey) {
                    Outcome::Refused
                } else {
                    Outcome::Stop("stopped: the server no longer accepts public keys".into())
                }
            }
        }
    }

    async fn open_agent(&mut self, opts: &ConnectOptions) -> Option<Agent> {
        let (path, from_env) = match &opts.agent_socket {
            Some(path) => (path.clone(), false),
            None => match std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                Some(path) => (PathBuf::from(path), true),
                None => return None,
            },
        };
        if !path.exists() {
            if from_env {
                self.tried.push(format!(
                    "ssh-agent: SSH_AUTH_SOCK points to {}, which does not exist",
                    path.display()
                ));
            }
            return None;
        }
        match AgentClient::connect_uds(&path).await {
            Ok(agent) => Some(agent),
            Err(e) => {
                self.tried.push(format!(
                    "ssh-agent at {}: cannot connect ({e})",
                    path.display()
                ));
                None
            }
        }
    }

    async fn with_agent(
        &mut self,
        agent: &mut Agent,
        identity_keys: &[PublicKey],
    ) -> Result<Outcome, SshError> {
        // OpenSSH agents show destination-constrained keys only to a bound session; an agent
        // without the extension refuses, which is fine.
        if let Some(binding) = self.handle.agent_session_binding().cloned() {
            if let Err(e) = agent.bind_session(&binding, false).await {
                tracing::debug!("ssh-agent session-bind: {e}");
            }
        }
        let identities = match within(self.timeout, self.target, agent.request_identities()).await?
        {
            Ok(ids) => ids,
            Err(e) => {
                self.tried
                    .push(format!("ssh-agent: cannot list keys ({e})"));
                return Ok(Outcome::Refused);
            }
        };
        if identities.is_empty() {
            self.tried.push("ssh-agent: holds no keys".to_string());
        }
        for identity in identities {
            let AgentIdentity::PublicKey { key, comment } = identity else {
                continue; // Certificates: not used by the hub.
            };
            let what = format!(
                "ssh-agent key {} {}{}",
                key.algorithm().as_str(),
                fingerprint(&key),
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(" ({comment})")
                }
            );
            if self.target.identities_only
                && !identity_keys.iter().any(|k| k.key_data() == key.key_data())
            {
                continue;
            }
            let hash = if key.algorithm().is_rsa() {
                self.rsa_hash().await
            } else {
                None
            };
            self.offered.push(key.clone());
            let user = self.target.user.clone();
            let (timeout, target) = (self.timeout, self.target);
            let request = self
                .handle
                .authenticate_publickey_with(user, key, hash, agent);
            let result = within(timeout, target, request).await?;
            let outcome = match result {
                Ok(result) => self.judge(result, what),
                Err(e) => {
                    if self.handle.is_closed() {
                        return self.closed_mid_auth(&e.to_string());
                    }
                    self.tried
                        .push(format!("{what}: the agent did not sign ({e})"));
                    Outcome::Refused
                }
            };
            if !matches!(outcome, Outcome::Refused) {
                return Ok(outcome);
            }
        }
        Ok(Outcome::Refused)
    }

    async fn with_key_file(&mut self, path: &Path, explicit: bool) -> Result<Outcome, SshError> {
        if !path.exists() {
            if explicit {
                self.tried.push(format!("{}: no such file", path.display()));
            }
            return Ok(Outcome::Refused);
        }
        let Some(key) = self.load_key(path).await else {
            return Ok(Outcome::Refused);
        };
        let public = key.public_key().clone();
        if self
            .offered
            .iter()
            .any(|k| k.key_data() == public.key_data())
        {
            return Ok(Outcome::Refused); // Already refused when the agent offered it.
        }
        self.offered.push(public);
        let hash = if key.algorithm().is_rsa() {
            self.rsa_hash().await
        } else {
            None
        };
        let what = format!("key file {}", path.display());
        let user = self.target.user.clone();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        let (timeout, target) = (self.timeout, self.target);
        match within(
            timeout,
            target,
            self.handle.authenticate_publickey(user, key),
        )
        .await?
        {
            Ok(result) => Ok(self.judge(result, what)),
            Err(e) => self.closed_mid_auth(&e.to_string()),
        }
    }

    /// Loads a private key, asking for its passphrase on a terminal; `None` (with a note in
    /// `tried`) when it cannot be used.
    async fn load_key(&mut self, path: &Path) -> Option<PrivateKey> {
        match russh::keys::load_secret_key(path, None) {
            Ok(key) => return Some(key),
            Err(russh::keys::Error::KeyIsEncrypted) => {}
            Err(e) => {
                self.tried
                    .push(format!("{}: cannot read the key ({e})", path.display()));
                return None;
            }
        }
        if !std::io::stdin().is_terminal() {
            self.tried.push(format!(
                "{}: encrypted, and there is no terminal to ask for its passphrase; load it \
                 into ssh-agent (`ssh-add {}`) so the hub can use it",
                path.display(),
                path.display()
            ));
            return None;
        }
        for _ in 0..PASSPHRASE_ATTEMPTS {
            let prompt = format!("Enter passphrase for key '{}': ", path.display());
            let pass = match tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
                .await
            {
                Ok(Ok(pass)) => pass,
                _ => break,
            };
            if pass.is_empty() {
                break;
            }
            let owned = path.to_owned();
            let loaded = tokio::task::spawn_blocking(move || {
                russh::keys::load_secret_key(owned, Some(&pass))
            })
            .await;
            match loaded {
                Ok(Ok(key)) => return Some(key),
                _ => eprintln!("Bad passphrase, try again."),
            }
        }
        self.tried.push(format!(
            "{}: encrypted, no passphrase given (or `ssh-add` it to ssh-agent)",
            path.display()
        ));
        None
    }
}

/// Runs one request/response with the server under the connect timeout.
async fn within<T>(
    timeout: Duration,
    target: &SshTarget,
    request: impl Future<Output = T>,
) -> Result<T, SshError> {
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| SshError::Timeout {
            target: target.to_string(),
            stage: "authenticating",
            after: timeout,
        })
}

/// The public half of a key file: `PATH.pub`, else the private key if it is not encrypted.
fn public_key_of(path: &Path) -> Option<PublicKey> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path))
        .ok()
        .or_else(|| {
            russh::keys::load_secret_key(path, None)
                .ok()
                .map(|k| k.public_key().clone())
        })
}

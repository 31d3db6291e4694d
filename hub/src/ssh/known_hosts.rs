//! Host key verification against `<ssh_dir>/known_hosts`, plain and hashed entries, with
//! OpenSSH's `[host]:port` names for non-default ports (matching by `russh::keys::known_hosts`).
//! Unknown keys are refused unless the user asked to record new ones; a changed key is always
//! refused. Also orders the host key algorithms so that a type already recorded is negotiated
//! first, as OpenSSH does.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use russh::keys::known_hosts::known_host_keys_path;
use russh::keys::{Algorithm, HashAlg, PublicKey};

use super::error::SshError;

/// Where and under which name a server's key is looked up.
#[derive(Debug, Clone)]
pub(crate) struct HostKeyPolicy {
    /// `user@host:port`, for messages.
    pub target: String,
    /// The name recorded in known_hosts (HostName or HostKeyAlias).
    pub lookup_host: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub accept_new: bool,
}

/// What known_hosts says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Known,
    /// Not recorded; `other_types` lists the key types that are recorded for this host.
    Unknown {
        other_types: Vec<String>,
    },
    /// A different key of the same type is recorded at this (1-based) line.
    Changed {
        line: usize,
    },
}

/// The known_hosts name of a host: `host`, or `[host]:port` for a port other than 22.
pub(crate) fn entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:…`, as `ssh-keygen -lf` prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `ssh-ed25519 SHA256:…`.
fn describe(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm().as_str(), fingerprint(key))
}

/// Looks `key` up for `host`/`port` in `path` (a missing file knows no host).
pub(crate) fn check(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<Verdict, String> {
    let recorded = known_host_keys_path(host, port, path).map_err(|e| e.to_string())?;
    if recorded.iter().any(|(_, k)| k.key_data() == key.key_data()) {
        return Ok(Verdict::Known);
    }
    if let Some((line, _)) = recorded
        .iter()
        .find(|(_, k)| k.algorithm() == key.algorithm())
    {
        return Ok(Verdict::Changed {
            line: file_line(path, *line),
        });
    }
    let mut other_types: Vec<String> = recorded
        .iter()
        .map(|(_, k)| k.algorithm().as_str().to_string())
        .collect();
    other_types.dedup();
    Ok(Verdict::Unknown { other_types })
}

/// Applies the policy to the key a server presented: `Ok(())` to proceed, else the error to
/// report. An unknown key is recorded when the policy accepts new keys.
pub(crate) fn verify(policy: &HostKeyPolicy, key: &PublicKey) -> Result<(), SshError> {
    let path = &policy.known_hosts;
    let verdict = check(path, &policy.lookup_host, policy.port, key).map_err(|message| {
        SshError::KnownHosts {
            target: policy.target.clone(),
            path: path.clone(),
            message,
        }
    })?;
    match verdict {
        Verdict::Known => Ok(()),
        Verdict::Changed { line } => Err(SshError::HostKeyChanged {
            target: policy.target.clone(),
            entry: entry_name(&policy.lookup_host, policy.port),
            key: describe(key),
            known_hosts: path.clone(),
            line,
        }),
        Verdict::Unknown { other_types } if !policy.accept_new => Err(SshError::HostKeyUnknown {
            target: policy.target.clone(),
            key: describe(key),
            known_hosts: path.clone(),
            ssh_command: if policy.port == 22 {
                format!("ssh {}", policy.lookup_host)
            } else {
                format!("ssh -p {} {}", policy.port, policy.lookup_host)
            },
            note: if other_types.is_empty() {
                String::new()
            } else {
                format!(
                    " (known_hosts has a {} key for this host, which the server did not offer)",
                    other_types.join("/")
                )
            },
        }),
        Verdict::Unknown { .. } => {
            record(path, &policy.lookup_host, policy.port, key).map_err(|message| {
                SshError::KnownHosts {
                    target: policy.target.clone(),
                    path: path.clone(),
                    message: format!("cannot record the new host key: {message}"),
                }
            })?;
            tracing::warn!(
                "recorded the {} host key {} of {} in {}",
                key.algorithm().as_str(),
                fingerprint(key),
                entry_name(&policy.lookup_host, policy.port),
                path.display()
            );
            Ok(())
        }
    }
}

/// Appends `NAME KEY` to known_hosts, as `ssh` does for a new host (creating the file and its
/// directory if needed).
fn record(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        line.push('\n');
    }
    let mut bare = key.clone();
    bare.set_comment("");
    let text = bare.to_openssh().map_err(|e| e.to_string())?;
    line.push_str(&format!("{} {}\n", entry_name(host, port), text.trim_end()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    file.write_all(line.as_bytes()).map_err(|e| e.to_string())
}

/// russh numbers known_hosts lines without counting `#` comment lines; this maps its number
/// back to the line of the file a user would open.
fn file_line(path: &Path, russh_line: usize) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return russh_line;
    };
    let mut counted = 0;
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.first() == Some(&b'#') {
            continue;
        }
        counted += 1;
        if counted == russh_line {
            return index + 1;
        }
    }
    russh_line
}

/// russh's host key algorithms, with those of the keys recorded for this host first, so that
/// a server with several host keys presents the one we know.
pub(crate) fn preferred_host_key_algorithms(
    path: &Path,
    host: &str,
    port: u16,
) -> Cow<'static, [Algorithm]> {
    let default = russh::Preferred::DEFAULT.key;
    let known: Vec<Algorithm> = match known_host_keys_path(host, port, path) {
        Ok(keys) => keys.into_iter().map(|(_, k)| k.algorithm()).collect(),
        Err(_) => return default,
    };
    if known.is_empty() {
        return default;
    }
    let is_rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
    let is_known = |a: &Algorithm| known.iter().any(|k| k == a || (is_rsa(k) && is_rsa(a)));
    let mut ordered: Vec<Algorithm> = default.iter().filter(|a| is_known(a)).cloned().collect();
    ordered.extend(default.iter().filter(|a| !is_known(a)).cloned());
    Cow::Owned(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn verdicts_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!(
                "# comment\n# another\n[h]:2222 ssh-ed25519 {KEY_A}\nplain ssh-ed25519 {KEY_A}\n"
            ),
        )
        .unwrap();
        assert_eq!(
            check(&path, "h", 2222, &key(KEY_A)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(&path, "h", 2222, &key(KEY_B)).unwrap(),
            Verdict::Changed { line: 3 }
        );
        assert_eq!(
            check(&path, "h", 22, &key(KEY_A)).unwrap(),
            Verdict::Unknown {
                other_types: vec![]
            }
        );
        assert_eq!(
            check(&path, "plain", 22, &key(KEY_B)).unwrap(),
            Verdict::Changed { line: 4 }
        );
        assert_eq!(
            check(&dir.path().join("missing"), "h", 22, &key(KEY_A)).unwrap(),
            Verdict::Unknown {
                other_types: vec![]
            }
        );
    }

    #[test]
    fn accepting_records_and_never_overrides_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let policy = HostKeyPolicy {
            target: "u@h:2200".into(),
            lookup_host: "h".into(),
            port: 2200,
            known_hosts: dir.path().join("sub/known_hosts"),
            accept_new: false,
        };
        let err = verify(&policy, &key(KEY_A)).unwrap_err();
        assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err}");
        let accept = HostKeyPolicy {
            accept_new: true,
            ..policy.clone()
        };
        verify(&accept, &key(KEY_A)).unwrap();
        verify(&policy, &key(KEY_A)).unwrap();
        let text = std::fs::read_to_string(&policy.known_hosts).unwrap();
        assert!(text.starts_with("[h]:2200 ssh-ed25519 "), "{text}");
        let err = verify(&accept, &key(KEY_B)).unwrap_err();
        assert!(
            matches!(err, SshError::HostKeyChanged { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn known_types_are_preferred() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let default = russh::Preferred::DEFAULT.key;
        assert_eq!(preferred_host_key_algorithms(&path, "h", 22), default);
        let rsa = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC4ycyT6FaI8HrOa24XMHjhHVt2lUyvrNePhZjKNP2kdo/JXX09yRk+rYjknbE8+TFU+4bDHLTi/c4LQn9g/qwQSRJ6blIL612Kff45PlVJAW517JiEg4VWL5uVezraGlnWnCOaLdasY6vNYEIdC5xYm8v/e+OiKVLLKJO1n+NbKw==";
        std::fs::write(&path, format!("h ssh-rsa {rsa}\n")).unwrap();
        let ordered = preferred_host_key_algorithms(&path, "h", 22);
        assert!(
            ordered[0].clone().is_rsa() && ordered[1].clone().is_rsa(),
            "{ordered:?}"
        );
        assert_eq!(ordered.len(), default.len());
    }
}

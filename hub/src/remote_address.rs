//! Where a remote is and how to reach it, as the user typed it (`gpu-01`, `me@10.0.0.5:2222`,
//! `local:/data/runs`) and as the store remembers it, so `runicorn-hub sync NAME` can reach it
//! again later with the same options.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to reach a remote's agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteAddress {
    /// Over SSH: `target` is `[user@]host[:port]` or a `~/.ssh/config` alias.
    Ssh {
        target: String,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        identity: Option<PathBuf>,
        #[serde(default)]
        jump: Option<String>,
        /// Path of `runicorn-agent` on the remote, when not on its PATH or in ~/.runicorn/bin.
        #[serde(default)]
        agent: Option<String>,
        /// Storage root on the remote (default: the agent's own default).
        #[serde(default)]
        root: Option<String>,
        /// Attach to the root's resident agent, starting it when none runs
        /// (`serve --stdio --start-daemon`; `connect --resident-agent`).
        #[serde(default, skip_serializing_if = "is_false")]
        resident: bool,
    },
    /// A storage root on this machine, served by a local agent process.
    Local {
        dir: PathBuf,
        #[serde(default)]
        agent: Option<PathBuf>,
        /// As for `Ssh`.
        #[serde(default, skip_serializing_if = "is_false")]
        resident: bool,
    },
    /// Known only from imported bundles (`runicorn-hub import`): no link to open. `connect` of
    /// the same name gives it one; its runs stay.
    Offline {
        #[serde(default)]
        host: Option<String>,
        #[serde(default)]
        root: Option<String>,
    },
}

impl RemoteAddress {
    /// Parses what the user typed after `connect`.
    pub fn parse(target: &str) -> Result<RemoteAddress, String> {
        if let Some(dir) = target.strip_prefix("local:") {
            if dir.is_empty() {
                return Err("`local:` needs a directory, e.g. local:~/.runicorn".into());
            }
            let dir = expand_home(dir);
            let dir = std::path::absolute(&dir)
                .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
            return Ok(RemoteAddress::Local {
                dir,
                agent: None,
                resident: false,
            });
        }
        if target.is_empty() || target.starts_with('-') || target.contains(char::is_whitespace) {
            return Err(format!(
                "{target:?} is not a host: give [user@]host[:port], an alias from ~/.ssh/config, or local:DIR"
            ));
        }
        Ok(RemoteAddress::Ssh {
            target: target.to_owned(),
            port: None,
            identity: None,
            jump: None,
            agent: None,
            root: None,
            resident: false,
        })
    }

    /// Whether sessions go to a resident agent that is started on demand.
    pub fn resident(&self) -> bool {
        match self {
            RemoteAddress::Ssh { resident, .. } | RemoteAddress::Local { resident, .. } => {
                *resident
            }
            RemoteAddress::Offline { .. } => false,
        }
    }

    /// Asks for a resident agent (`--resident-agent`); a remote known only from bundles has
    /// no agent to ask.
    pub fn set_resident(&mut self, on: bool) {
        match self {
            RemoteAddress::Ssh { resident, .. } | RemoteAddress::Local { resident, .. } => {
                *resident = on;
            }
            RemoteAddress::Offline { .. } => {}
        }
    }

    /// Arguments of `runicorn-agent serve` this address adds (`--start-daemon`).
    pub fn serve_args(&self) -> Vec<String> {
        if self.resident() {
            vec!["--start-daemon".to_owned()]
        } else {
            Vec::new()
        }
    }

    /// The address as shown in listings.
    pub fn display(&self) -> String {
        match self {
            RemoteAddress::Ssh {
                target, port, jump, ..
            } => {
                let mut s = target.clone();
                if let Some(p) = port {
                    s.push_str(&format!(" -p {p}"));
                }
                if let Some(j) = jump {
                    s.push_str(&format!(" -J {j}"));
                }
                s
            }
            RemoteAddress::Local { dir, .. } => format!("local:{}", dir.display()),
            RemoteAddress::Offline { host, root } => match (host, root) {
                (Some(h), Some(r)) => format!("imported from {h}:{r}"),
                (Some(h), None) => format!("imported from {h}"),
                _ => "imported".to_owned(),
            },
        }
    }

    /// The name a remote gets when the user gives none: the host (without user and port), or
    /// `local` for a local root.
    pub fn default_name(&self) -> String {
        match self {
            RemoteAddress::Ssh { target, .. } => {
                let host = target.rsplit('@').next().unwrap_or(target);
                let host = match host.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(v6),
                    None => host.split(':').next().unwrap_or(host),
                };
                host.to_owned()
            }
            RemoteAddress::Local { .. } => "local".to_owned(),
            RemoteAddress::Offline { host, .. } => {
                host.clone().unwrap_or_else(|| "imported".to_owned())
            }
        }
    }

    /// Whether there is a link to open (not a remote known only from bundles).
    pub fn is_reachable(&self) -> bool {
        !matches!(self, RemoteAddress::Offline { .. })
    }
}

/// Checks a remote name: it appears in listings and on command lines.
pub fn check_remote_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "remote name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'; pass --name"
        ))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_name_themselves() {
        let a = RemoteAddress::parse("me@gpu-01:2222").unwrap();
        assert_eq!(a.default_name(), "gpu-01");
        let b = RemoteAddress::parse("local:/tmp/x").unwrap();
        assert_eq!(b.default_name(), "local");
        assert_eq!(b.display(), "local:/tmp/x");
        assert!(RemoteAddress::parse("-oProxyCommand=evil").is_err());
        assert!(RemoteAddress::parse("local:").is_err());
        assert_eq!(
            RemoteAddress::parse("[::1]:22").unwrap().default_name(),
            "::1"
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["kind"], "ssh");
        assert!(json.get("resident").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<RemoteAddress>(json).unwrap(), a);
        let mut r = a.clone();
        r.set_resident(true);
        assert_eq!(r.serve_args(), ["--start-daemon"]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["resident"], true);
        assert_eq!(serde_json::from_value::<RemoteAddress>(json).unwrap(), r);
        assert!(a.serve_args().is_empty());
    }

    #[test]
    fn remote_names_are_checked() {
        assert!(check_remote_name("gpu-01").is_ok());
        assert!(check_remote_name("").is_err());
        assert!(check_remote_name("a b").is_err());
    }
}

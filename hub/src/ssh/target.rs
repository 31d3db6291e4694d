//! Where to connect: `ConnectOptions` (the CLI's flags), `[user@]host[:port]` parsing, and
//! `~/.ssh/config` (Host aliases, HostName, User, Port, IdentityFile, ProxyJump, plus
//! HostKeyAlias and IdentitiesOnly) through the `ssh2-config` parser. Flags override the config,
//! as with OpenSSH.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{HostParams, ParseRule, SshConfig};

use super::error::SshError;

/// How to connect: what the user passed on the command line, plus transport settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `-p`: overrides `Port` in the config (a port in the destination itself wins over both).
    pub port: Option<u16>,
    /// `-i`: tried first among the key files.
    pub identity: Option<PathBuf>,
    /// `-J`: comma-separated jump hosts, overriding `ProxyJump` in the config (`none` disables).
    pub jump: Option<String>,
    /// `-l`: overrides `User` in the config (a user in the destination itself wins over both).
    pub user: Option<String>,
    /// Record an unknown host key in known_hosts instead of refusing (never a changed one).
    pub accept_new_host_key: bool,
    /// Where `config`, `known_hosts` and the default `id_*` keys live; `$HOME/.ssh` if unset.
    pub ssh_dir: Option<PathBuf>,
    /// Limit for each network step of connecting (TCP connect, handshake, each auth exchange).
    pub connect_timeout: Duration,
    /// Keepalive interval; a dead link is detected after about 4 × this (3 unanswered probes).
    /// Zero disables keepalives.
    pub keepalive: Duration,
    /// The ssh-agent socket; `None` means `$SSH_AUTH_SOCK`. A path that does not exist means no
    /// agent (tests use that to stay independent of the developer's agent).
    pub agent_socket: Option<PathBuf>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            port: None,
            identity: None,
            jump: None,
            user: None,
            accept_new_host_key: false,
            ssh_dir: None,
            connect_timeout: Duration::from_secs(15),
            keepalive: Duration::from_secs(5),
            agent_socket: None,
        }
    }
}

impl ConnectOptions {
    /// The SSH directory in use (`ssh_dir` or `$HOME/.ssh`).
    pub fn ssh_dir(&self) -> PathBuf {
        match &self.ssh_dir {
            Some(dir) => dir.clone(),
            None => local_home().join(".ssh"),
        }
    }

    /// The known_hosts file in use.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }

    /// The directory `~` stands for in the config: the parent of a `.ssh` directory, else $HOME.
    fn home_for_tilde(&self) -> PathBuf {
        match &self.ssh_dir {
            Some(dir) if dir.file_name().is_some_and(|n| n == ".ssh") => {
                dir.parent().map(Path::to_owned).unwrap_or_else(local_home)
            }
            _ => local_home(),
        }
    }
}

/// A fully resolved destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The name the user gave (a `Host` alias or a host name).
    pub alias: String,
    /// The name or address to connect to (`HostName`, else the alias).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Key files to try, in order: `-i`, then `IdentityFile`s, then the default `id_*` files.
    /// Files that do not exist are skipped when authenticating.
    pub identity_files: Vec<PathBuf>,
    /// Jump hosts, first hop first; each is resolved (config and all) when connecting.
    pub proxy_jump: Vec<String>,
    /// `HostKeyAlias`: the name looked up in known_hosts instead of `host`.
    pub host_key_alias: Option<String>,
    /// `IdentitiesOnly yes`: use only agent keys that match one of `identity_files`.
    pub identities_only: bool,
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

impl SshTarget {
    /// The name under which the host key is recorded in known_hosts.
    pub fn known_hosts_host(&self) -> &str {
        self.host_key_alias.as_deref().unwrap_or(&self.host)
    }
}

/// The parts of a `[user@]host[:port]` (or `ssh://user@host:port`) destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parses `[user@]host[:port]`, `[user@][v6addr]:port` and `ssh://[user@]host[:port]`.
pub(crate) fn parse_destination(spec: &str) -> Result<Destination, SshError> {
    let invalid = |reason: &str| SshError::InvalidTarget {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let rest = spec.trim();
    let rest = rest.strip_prefix("ssh://").unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid("it is empty"));
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some(("", _)) => return Err(invalid("the user name is empty")),
        Some((user, hostport)) => (Some(user.to_string()), hostport),
        None => (None, rest),
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(invalid("a '[' without its ']'"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid("unexpected text after ']'")),
            },
        }
    } else {
        match hostport.matches(':').count() {
            0 => (hostport, None),
            1 => match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            },
            // A bare IPv6 address.
            _ => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("the host name is empty"));
    }
    if host.starts_with('-') {
        return Err(invalid("a host name cannot start with '-'"));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "the host name contains spaces or control characters",
        ));
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid(&format!("{text:?} is not a port number"))),
            Ok(port) => Some(port),
        },
    };
    Ok(Destination {
        user,
        host: host.to_string(),
        port,
    })
}

/// Resolves a destination against `~/.ssh/config` and the options. Flags win over the config;
/// a user or port written in `spec` itself wins over the flags.
pub fn resolve_target(spec: &str, opts: &ConnectOptions) -> Result<SshTarget, SshError> {
    let config = load_config(opts)?;
    resolve_with_config(spec, opts, &config, true)
}

/// Resolves a jump host: its own config entry applies, but not the flags meant for the target
/// (`-i`, `-p`, `-l`, `-J`), as with OpenSSH.
pub(crate) fn resolve_jump(spec: &str, opts: &ConnectOptions) -> Result<SshTarget, SshError> {
    let config = load_config(opts)?;
    resolve_with_config(spec, opts, &config, false)
}

pub(crate) fn load_config(opts: &ConnectOptions) -> Result<SshConfig, SshError> {
    let path = opts.ssh_dir().join("config");
    let base = SshConfig::default().home_dir(opts.home_for_tilde());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(base),
        Err(e) => {
            return Err(SshError::Config {
                path,
                message: e.to_string(),
            })
        }
    };
    base.parse(
        &mut without_match_blocks(&text).as_bytes(),
        ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
    )
    .map_err(|e| SshError::Config {
        path,
        message: e.to_string(),
    })
}

/// ssh2-config does not know `Match`: it would apply a Match block's lines to the `Host` block
/// before it. Each `Match` line becomes a `Host` line no destination matches, so its block is
/// ignored instead of misapplied.
fn without_match_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let keyword = line
            .trim_start()
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or("");
        if keyword.eq_ignore_ascii_case("match") {
            out.push_str("Host runicorn-hub-ignores-match-blocks.invalid");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn resolve_with_config(
    spec: &str,
    opts: &ConnectOptions,
    config: &SshConfig,
    apply_flags: bool,
) -> Result<SshTarget, SshError> {
    let dest = parse_destination(spec)?;
    let params = config.query(&dest.host);
    let alias = dest.host.clone();

    let host = match &params.host_name {
        Some(name) => expand_tokens(name, &[('h', &alias)]),
        None => alias.clone(),
    };
    let flag_port = if apply_flags { opts.port } else { None };
    let port = dest.port.or(flag_port).or(params.port).unwrap_or(22);
    let flag_user = if apply_flags { opts.user.clone() } else { None };
    let user = dest
        .user
        .clone()
        .or(flag_user)
        .or_else(|| params.user.clone())
        .unwrap_or_else(local_user);

    let ssh_dir = opts.ssh_dir();
    let home = opts.home_for_tilde();
    let home_text = home.to_string_lossy().into_owned();
    let local_user = local_user();
    let port_text = port.to_string();
    let tokens: [(char, &str); 5] = [
        ('d', &home_text),
        ('u', &local_user),
        ('h', &host),
        ('r', &user),
        ('p', &port_text),
    ];
    let mut identity_files: Vec<PathBuf> = Vec::new();
    let mut push = |path: PathBuf| {
        if !identity_files.contains(&path) {
            identity_files.push(path);
        }
    };
    if apply_flags {
        if let Some(path) = &opts.identity {
            push(path.clone());
        }
    }
    for path in params.identity_file.iter().flatten() {
        let text = path.to_string_lossy();
        let expanded = PathBuf::from(expand_tokens(&text, &tokens));
        // A relative IdentityFile is relative to the current directory in OpenSSH; keep it.
        push(expanded);
    }
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        push(ssh_dir.join(name));
    }

    let jump_text = if apply_flags { opts.jump.clone() } else { None };
    let proxy_jump = match jump_text {
        Some(text) => split_jumps(&text),
        None if apply_flags => params
            .proxy_jump
            .as_ref()
            .map(|list| split_jumps(&list.join(",")))
            .unwrap_or_default(),
        // Jump hosts' own ProxyJump is not followed (no recursion through the config).
        None => Vec::new(),
    };

    Ok(SshTarget {
        alias,
        host,
        port,
        user,
        identity_files,
        proxy_jump,
        host_key_alias: unsupported_arg(&params, "hostkeyalias"),
        identities_only: unsupported_arg(&params, "identitiesonly")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
    })
}

/// `a,b , c` → `[a, b, c]`; `none` → `[]`.
fn split_jumps(text: &str) -> Vec<String> {
    let hops: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if hops.len() == 1 && hops[0].eq_ignore_ascii_case("none") {
        Vec::new()
    } else {
        hops
    }
}

/// The first argument of a directive that ssh2-config keeps unparsed.
fn unsupported_arg(params: &HostParams, name: &str) -> Option<String> {
    params
        .unsupported_fields
        .get(name)
        .or_else(|| params.ignored_fields.get(name))
        .and_then(|args| args.first())
        .cloned()
}

/// Expands `%x` tokens (and `%%`) as ssh_config(5) does; unknown tokens are kept.
fn expand_tokens(text: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match tokens.iter().find(|(name, _)| *name == t) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push('%');
                    out.push(t);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

/// The local user's home directory: `$HOME`, else the password database.
pub(crate) fn local_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    passwd_entry()
        .map(|(_, home)| PathBuf::from(home))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The local user name: `$USER`, `$LOGNAME`, else the password database.
pub(crate) fn local_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.is_empty() {
                return name;
            }
        }
    }
    passwd_entry()
        .map(|(name, _)| name)
        .unwrap_or_else(|| "root".to_string())
}

/// (name, home) of the effective user from the password database.
fn passwd_entry() -> Option<(String, String)> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids) for
    // getpwuid_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory of the stated size for the whole call;
    // getpwuid_r writes only into `pwd` and `buf`.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: on success getpwuid_r set these to NUL-terminated strings inside `buf`, which
    // is still alive here.
    let (name, dir) = unsafe {
        (
            std::ffi::CStr::from_ptr(pwd.pw_name),
            std::ffi::CStr::from_ptr(pwd.pw_dir),
        )
    };
    Some((
        name.to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(user: Option<&str>, host: &str, port: Option<u16>) -> Destination {
        Destination {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn destinations_parse_like_openssh() {
        assert_eq!(parse_destination("gpu1").unwrap(), dest(None, "gpu1", None));
        assert_eq!(
            parse_destination("me@gpu1:2222").unwrap(),
            dest(Some("me"), "gpu1", Some(2222))
        );
        assert_eq!(
            parse_destination("ssh://me@gpu1:2222/").unwrap(),
            dest(Some("me"), "gpu1", Some(2222))
        );
        assert_eq!(
            parse_destination("a@b@host").unwrap(),
            dest(Some("a@b"), "host", None)
        );
        assert_eq!(
            parse_destination("[::1]:22").unwrap(),
            dest(None, "::1", Some(22))
        );
        assert_eq!(
            parse_destination("fe80::1").unwrap(),
            dest(None, "fe80::1", None)
        );
        for bad in [
            "",
            "@host",
            "host:0",
            "host:x",
            "-oProxyCommand=x",
            "[::1",
            "a b",
        ] {
            assert!(parse_destination(bad).is_err(), "{bad:?} should be refused");
        }
    }

    fn opts_with_config(text: &str) -> (tempfile::TempDir, ConnectOptions) {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("config"), text).unwrap();
        let opts = ConnectOptions {
            ssh_dir: Some(ssh),
            ..ConnectOptions::default()
        };
        (home, opts)
    }

    #[test]
    fn config_aliases_resolve_and_flags_override() {
        let (home, mut opts) = opts_with_config(
            "Host gpu\n  HostName %h.example.org\n  User alice\n  Port 2200\n  \
             IdentityFile ~/.ssh/gpu_%r\n  ProxyJump bastion,jump2:2022\n  \
             HostKeyAlias gpu-key\n  IdentitiesOnly yes\n  ForwardX11 no\n\
             Host *\n  User nobody\n  IdentityFile ~/.ssh/all\n",
        );
        let t = resolve_target("gpu", &opts).unwrap();
        assert_eq!(t.alias, "gpu");
        assert_eq!(t.host, "gpu.example.org");
        assert_eq!(t.port, 2200);
        assert_eq!(t.user, "alice");
        assert_eq!(t.proxy_jump, vec!["bastion", "jump2:2022"]);
        assert_eq!(t.host_key_alias.as_deref(), Some("gpu-key"));
        assert!(t.identities_only);
        let ssh = home.path().join(".ssh");
        assert_eq!(
            t.identity_files,
            vec![
                ssh.join("gpu_alice"),
                ssh.join("all"),
                ssh.join("id_ed25519"),
                ssh.join("id_ecdsa"),
                ssh.join("id_rsa"),
            ]
        );
        assert_eq!(t.to_string(), "alice@gpu.example.org:2200");

        opts.port = Some(1);
        opts.user = Some("bob".into());
        opts.identity = Some("/k".into());
        opts.jump = Some("none".into());
        let t = resolve_target("gpu", &opts).unwrap();
        assert_eq!((t.port, t.user.as_str()), (1, "bob"));
        assert_eq!(t.identity_files[0], PathBuf::from("/k"));
        assert!(t.proxy_jump.is_empty());
        // The destination's own user and port win over the flags.
        let t = resolve_target("carol@gpu:3", &opts).unwrap();
        assert_eq!((t.port, t.user.as_str()), (3, "carol"));

        // Other hosts get only the `Host *` block.
        let t = resolve_target("other", &opts_with_config("Host *\n User nobody\n").1).unwrap();
        assert_eq!(
            (t.host.as_str(), t.user.as_str(), t.port),
            ("other", "nobody", 22)
        );

        // Jump hosts do not take the target's flags.
        let j = resolve_jump("gpu", &opts).unwrap();
        assert_eq!((j.port, j.user.as_str()), (2200, "alice"));
        assert!(j.proxy_jump.is_empty());
        assert!(!j.identity_files.contains(&PathBuf::from("/k")));
    }

    #[test]
    fn match_blocks_are_ignored_not_misapplied() {
        let (_home, opts) = opts_with_config(
            "Host gpu\n  HostName 10.0.0.1\nMatch host 10.0.0.1\n  User bob\n  Port 99\n\
             Host *\n  User amy\n",
        );
        let t = resolve_target("gpu", &opts).unwrap();
        assert_eq!(
            (t.host.as_str(), t.user.as_str(), t.port),
            ("10.0.0.1", "amy", 22)
        );
    }

    #[test]
    fn a_broken_config_names_the_file() {
        let (_home, opts) = opts_with_config("Host x\n  Port notaport\n");
        let err = resolve_target("x", &opts).unwrap_err();
        assert!(matches!(err, SshError::Config { .. }), "{err}");
        assert!(err.to_string().contains("config"), "{err}");
    }

    #[test]
    fn tokens_expand() {
        assert_eq!(expand_tokens("%h-%%-%z", &[('h', "H")]), "H-%-%z");
    }
}

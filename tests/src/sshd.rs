//! A real OpenSSH server for tests: `/usr/sbin/sshd -D -e` on 127.0.0.1 and a free port, with a
//! fresh ed25519 host key and a fresh client key in `AuthorizedKeysFile`, all in a temp dir;
//! killed on drop. `ClientHome` is a matching `~` for the hub's SSH client (`.ssh/config`,
//! `known_hosts`, `id_ed25519`). `SetEnv` gives remote sessions a chosen `HOME` and `PATH`, so a
//! test decides where `runicorn-agent` is found; `kill_connections` cuts live sessions.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runicorn_hub::ssh::ConnectOptions;
use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";

/// Runs `ssh-keygen ARGS`, panicking with its output if it fails.
fn ssh_keygen(args: &[&str]) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh ed25519 key pair `(private path, "ssh-ed25519 AAAA…")` named `name` in `dir`.
fn generate_key(dir: &Path, name: &str) -> (PathBuf, String) {
    generate_key_with(dir, name, &["-t", "ed25519"])
}

/// A fresh key pair made by `ssh-keygen -q -C '' -f DIR/NAME ARGS…` (ARGS choose the type and
/// the passphrase, which is empty unless ARGS give `-N`).
fn generate_key_with(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let path = dir.join(name);
    let path_text = path.to_str().expect("utf-8 temp path");
    let mut all = vec!["-q", "-C", "", "-f", path_text];
    if !args.contains(&"-N") {
        all.extend(["-N", ""]);
    }
    all.extend(args);
    ssh_keygen(&all);
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{path_text}.pub")))
        .expect("public key written");
    (path, public.trim().to_string())
}

/// The SHA256 fingerprint of a public key line, as `ssh-keygen -lf` prints it.
pub fn fingerprint_of(public_line: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("key.pub");
    std::fs::write(&file, format!("{public_line}\n")).expect("write key");
    let out = ssh_keygen(&["-l", "-E", "sha256", "-f", file.to_str().expect("utf-8")]);
    out.split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints a fingerprint")
        .to_string()
}

/// The user the tests connect as (the one running them: sshd runs as root and accepts any
/// existing user whose key is in the authorized keys file).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A client key pair, shareable between servers (a jump host and its target).
#[derive(Clone, Debug)]
pub struct ClientKey {
    /// The private key file (unencrypted OpenSSH format).
    pub private: PathBuf,
    /// `ssh-ed25519 AAAA…`.
    pub public: String,
    _dir: Arc<TempDir>,
}

impl ClientKey {
    /// A fresh unencrypted ed25519 key.
    pub fn generate() -> ClientKey {
        ClientKey::generate_with(&["-t", "ed25519"])
    }

    /// A fresh key from `ssh-keygen` with these options (e.g. `["-t", "rsa", "-b", "3072"]`,
    /// or `["-t", "ed25519", "-N", "secret"]` for an encrypted one).
    pub fn generate_with(args: &[&str]) -> ClientKey {
        let dir = tempfile::tempdir().expect("temp dir");
        let (private, public) = generate_key_with(dir.path(), "id", args);
        ClientKey {
            private,
            public,
            _dir: Arc::new(dir),
        }
    }
}

/// Options for `Sshd`.
#[derive(Debug, Default)]
pub struct SshdBuilder {
    extra: Vec<String>,
    allow_tcp_forwarding: bool,
    client_key: Option<ClientKey>,
    remote_home: Option<PathBuf>,
    remote_path: Option<String>,
}

impl SshdBuilder {
    /// A line appended to sshd_config.
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// `AllowTcpForwarding yes` (needed on a jump host); off by default.
    pub fn allow_tcp_forwarding(mut self, allow: bool) -> Self {
        self.allow_tcp_forwarding = allow;
        self
    }

    /// Authorize this key instead of a fresh one.
    pub fn client_key(mut self, key: ClientKey) -> Self {
        self.client_key = Some(key);
        self
    }

    /// `HOME` of remote sessions.
    pub fn remote_home(mut self, home: &Path) -> Self {
        self.remote_home = Some(home.to_owned());
        self
    }

    /// `PATH` of remote sessions.
    pub fn remote_path(mut self, path: &str) -> Self {
        self.remote_path = Some(path.to_string());
        self
    }

    pub fn start(self) -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let (host_key, host_public) = generate_key(dir.path(), "ssh_host_ed25519_key");
        let client_key = self.client_key.clone().unwrap_or_else(ClientKey::generate);
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n", client_key.public)).expect("authorized_keys");
        let config = dir.path().join("sshd_config");
        let log = dir.path().join("sshd.log");

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut text = format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {}\n\
                 PidFile none\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {}\n\
                 Subsystem sftp internal-sftp\n\
                 AllowTcpForwarding {}\n\
                 UseDNS no\n\
                 MaxStartups 100\n\
                 MaxSessions 50\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                authorized.display(),
                if self.allow_tcp_forwarding {
                    "yes"
                } else {
                    "no"
                },
            );
            let mut env = Vec::new();
            if let Some(home) = &self.remote_home {
                env.push(format!("HOME={}", home.display()));
            }
            if let Some(path) = &self.remote_path {
                env.push(format!("PATH={path}"));
            }
            if !env.is_empty() {
                text.push_str(&format!("SetEnv {}\n", env.join(" ")));
            }
            for line in &self.extra {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&config, text).expect("sshd_config");
            let log_file = std::fs::File::create(&log).expect("sshd log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("start /usr/sbin/sshd");
            if wait_listening(&mut child, &log, Duration::from_secs(10)) {
                return Sshd {
                    child,
                    port,
                    host_public,
                    client_key,
                    log,
                    dir,
                };
            }
            // Another process may have taken the port: try another.
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("sshd did not start:\n{last_log}");
    }
}

/// Waits until sshd logs that it listens; false if it exited or took too long.
fn wait_listening(child: &mut Child, log: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains("Server listening on")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A running sshd; killed (with its sessions) on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    port: u16,
    host_public: String,
    client_key: ClientKey,
    log: PathBuf,
    dir: TempDir,
}

impl Sshd {
    /// An sshd with the default options.
    pub fn start() -> Sshd {
        Sshd::builder().start()
    }

    pub fn builder() -> SshdBuilder {
        SshdBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `user@127.0.0.1:PORT`.
    pub fn spec(&self) -> String {
        format!("{}@127.0.0.1:{}", current_user(), self.port)
    }

    /// The host key, `ssh-ed25519 AAAA…`.
    pub fn host_public_key(&self) -> &str {
        &self.host_public
    }

    /// `SHA256:…` of the host key.
    pub fn host_fingerprint(&self) -> String {
        fingerprint_of(&self.host_public)
    }

    /// The key this server accepts.
    pub fn client_key(&self) -> &ClientKey {
        &self.client_key
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The listener's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `ClientHome` holding this server's client key as `~/.ssh/id_ed25519`.
    pub fn client_home(&self) -> ClientHome {
        let home = ClientHome::empty();
        home.add_key("id_ed25519", &self.client_key);
        home
    }

    /// Pids of the per-connection processes (every descendant of the listener).
    pub fn connection_pids(&self) -> Vec<u32> {
        descendants(self.child.id())
    }

    /// The server goes away now, sessions and all (as on drop, which then has nothing to do).
    pub fn stop(&mut self) {
        self.kill_connections();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILLs every per-connection process, cutting all live sessions; returns how many.
    pub fn kill_connections(&self) -> usize {
        let pids = self.connection_pids();
        for pid in &pids {
            // SAFETY: kill(2) with a pid read from /proc; at worst the process is already gone.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        pids.len()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every descendant of `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// A temp dir to use as the client's `~`: `.ssh/config`, `.ssh/known_hosts`, keys.
#[derive(Debug)]
pub struct ClientHome {
    dir: TempDir,
}

impl ClientHome {
    /// A home with an empty `.ssh`.
    pub fn empty() -> ClientHome {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(".ssh")).expect("mkdir .ssh");
        ClientHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.path().join(".ssh")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }

    /// Copies `key` to `~/.ssh/NAME` (and `NAME.pub`); returns the private key's path.
    pub fn add_key(&self, name: &str, key: &ClientKey) -> PathBuf {
        let path = self.ssh_dir().join(name);
        std::fs::copy(&key.private, &path).expect("copy key");
        std::fs::write(self.ssh_dir().join(format!("{name}.pub")), &key.public)
            .expect("write .pub");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    /// Writes `~/.ssh/config`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.ssh_dir().join("config"), text).expect("write config");
    }

    /// Appends `NAME KEY` to known_hosts (`NAME` as OpenSSH writes it, e.g. `[127.0.0.1]:2222`).
    pub fn trust_as(&self, name: &str, public_line: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.known_hosts())
            .expect("open known_hosts");
        writeln!(file, "{name} {public_line}").expect("write known_hosts");
    }

    /// Records `sshd`'s host key for `[127.0.0.1]:PORT`.
    pub fn trust(&self, sshd: &Sshd) {
        self.trust_as(
            &format!("[127.0.0.1]:{}", sshd.port()),
            sshd.host_public_key(),
        );
    }

    /// Records `sshd`'s host key, then hashes known_hosts (`ssh-keygen -H`).
    pub fn trust_hashed(&self, sshd: &Sshd) {
        self.trust(sshd);
        let path = self.known_hosts();
        ssh_keygen(&["-H", "-f", path.to_str().expect("utf-8")]);
        let _ = std::fs::remove_file(format!("{}.old", path.display()));
    }

    /// OpenSSH's own `ssh` to `sshd` as the current user with this home's key and known_hosts
    /// (batch mode, strict host key checking, no config file); the caller adds the remote
    /// command.
    pub fn openssh(&self, sshd: &Sshd) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .arg("-i")
            .arg(self.ssh_dir().join("id_ed25519"))
            .args(["-p", &sshd.port().to_string(), "-F", "/dev/null"])
            .arg(format!("{}@127.0.0.1", current_user()));
        cmd
    }

    /// Options for the hub's client: this home's `.ssh`, no ssh-agent, short timeouts.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            ssh_dir: Some(self.ssh_dir()),
            agent_socket: Some(self.dir.path().join("no-agent.sock")),
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(5),
            ..ConnectOptions::default()
        }
    }
}

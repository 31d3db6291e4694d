//! The hub's SSH client against a real OpenSSH server: authentication (key files, config,
//! ssh-agent), host keys (unknown, accepted, changed, hashed), ProxyJump, the agent channel,
//! SFTP, added latency, and cut or stalled links. Each test starts its own sshd.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runicorn_hub::ssh::{self, missing_agent_message, ConnectOptions, SshError, SshSession};
use runicorn_tests::relay::Relay;
use runicorn_tests::sshd::{current_user, fingerprint_of, ClientHome, ClientKey, Sshd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(spec: &str, opts: &ConnectOptions) -> Result<SshSession, SshError> {
    let target = ssh::resolve_target(spec, opts)?;
    ssh::connect(&target, opts).await
}

async fn connect_ok(spec: &str, opts: &ConnectOptions, sshd: &Sshd) -> SshSession {
    match connect(spec, opts).await {
        Ok(session) => session,
        Err(e) => panic!("connect {spec}: {e}\n--- sshd log\n{}", sshd.log()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_and_exec_round_trip() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    let out = session
        .exec("echo hello; echo oops >&2; exit 3")
        .await
        .unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
    // Several channels on one connection, concurrently.
    let (a, b) = tokio::join!(session.exec("echo a"), session.exec("echo b"));
    assert_eq!(
        (a.unwrap().stdout, b.unwrap().stdout),
        (b"a\n".to_vec(), b"b\n".to_vec())
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_key_is_refused_with_its_fingerprint() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    let err = connect(&sshd.spec(), &home.options()).await.unwrap_err();
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&sshd.host_fingerprint()), "{text}");
    assert!(text.contains("--accept-new-host-key"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", sshd.port())),
        "{text}"
    );
    assert!(!home.known_hosts().exists(), "nothing may be recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_records_the_key_for_the_next_connection() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    let accept = ConnectOptions {
        accept_new_host_key: true,
        ..home.options()
    };
    connect_ok(&sshd.spec(), &accept, &sshd).await.close().await;
    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert_eq!(
        known,
        format!("[127.0.0.1]:{} {}\n", sshd.port(), sshd.host_public_key())
    );
    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    assert_eq!(session.exec("true").await.unwrap().status, Some(0));
    // OpenSSH agrees with what was recorded.
    let status = home
        .openssh(&sshd)
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_even_with_accept_new() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    std::fs::write(home.known_hosts(), "# a comment line\n").unwrap();
    let other = ClientKey::generate(); // any other ed25519 key stands for the old host key
    home.trust_as(&format!("[127.0.0.1]:{}", sshd.port()), &other.public);
    for accept_new in [false, true] {
        let opts = ConnectOptions {
            accept_new_host_key: accept_new,
            ..home.options()
        };
        let err = connect(&sshd.spec(), &opts).await.unwrap_err();
        let SshError::HostKeyChanged {
            line, known_hosts, ..
        } = &err
        else {
            panic!("expected a changed host key, got: {err}");
        };
        assert_eq!(*line, 2);
        assert_eq!(known_hosts, &home.known_hosts());
        let text = err.to_string();
        assert!(text.contains("HAS CHANGED"), "{text}");
        assert!(text.contains(&sshd.host_fingerprint()), "{text}");
        assert!(
            text.contains(&format!("{}:2", home.known_hosts().display())),
            "{text}"
        );
    }
    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert_eq!(
        known.lines().count(),
        2,
        "known_hosts must not change: {known}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashed_known_hosts_entry_is_accepted() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust_hashed(&sshd);
    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert!(
        known.starts_with("|1|") && !known.contains("127.0.0.1"),
        "{known}"
    );
    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    assert_eq!(session.exec("true").await.unwrap().status, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_naming_the_keys_tried() {
    let sshd = Sshd::start();
    let home = ClientHome::empty();
    let wrong = home.add_key("id_ed25519", &ClientKey::generate());
    let explicit = home.add_key("other", &ClientKey::generate());
    home.trust(&sshd);
    let opts = ConnectOptions {
        identity: Some(explicit.clone()),
        ..home.options()
    };
    let err = connect(&sshd.spec(), &opts).await.unwrap_err();
    let SshError::AuthFailed { tried, .. } = &err else {
        panic!("expected an authentication error, got: {err}");
    };
    assert_eq!(tried.len(), 2, "{tried:?}");
    assert!(
        tried[0].contains(&explicit.display().to_string()),
        "{tried:?}"
    );
    assert!(tried[1].contains(&wrong.display().to_string()), "{tried:?}");
    let text = err.to_string();
    assert!(
        text.contains("refused") && text.contains("publickey"),
        "{text}"
    );
    assert!(text.contains(&current_user()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_keys_sign_with_sha2() {
    // OpenSSH ≥ 8.8 refuses SHA-1 RSA signatures; the client must pick rsa-sha2-*.
    let key = ClientKey::generate_with(&["-t", "rsa", "-b", "2048"]);
    let sshd = Sshd::builder().client_key(key.clone()).start();
    let home = ClientHome::empty();
    home.add_key("id_rsa", &key);
    home.trust(&sshd);
    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    assert_eq!(session.exec("echo rsa").await.unwrap().stdout, b"rsa\n");
    assert!(sshd.log().contains("RSA SHA256:"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_off_a_terminal_points_to_ssh_agent() {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprintln!("skipped: stdin is a terminal, the client would ask for the passphrase");
        return;
    }
    let key = ClientKey::generate_with(&["-t", "ed25519", "-N", "secret"]);
    let sshd = Sshd::builder().client_key(key.clone()).start();
    let home = ClientHome::empty();
    let path = home.add_key("id_ed25519", &key);
    home.trust(&sshd);
    let err = connect(&sshd.spec(), &home.options()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("encrypted") && text.contains(&format!("ssh-add {}", path.display())),
        "{text}"
    );

    // Doing what the message says works.
    let agent = SshAgent::start_empty();
    let askpass = home.path().join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\necho secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("ssh-add")
        .arg(&path)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opts = ConnectOptions {
        agent_socket: Some(agent.socket.clone()),
        ..home.options()
    };
    let session = connect_ok(&sshd.spec(), &opts, &sshd).await;
    assert_eq!(session.exec("true").await.unwrap().status, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_alias_resolves_and_connects() {
    let sshd = Sshd::start();
    let home = ClientHome::empty();
    let key = home.add_key("gpu_key", sshd.client_key());
    home.trust(&sshd);
    home.write_config(&format!(
        "Host gpu\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile ~/.ssh/gpu_key\n",
        sshd.port(),
        current_user()
    ));
    let opts = home.options();
    let target = ssh::resolve_target("gpu", &opts).unwrap();
    assert_eq!(
        (target.host.as_str(), target.port, target.user.as_str()),
        ("127.0.0.1", sshd.port(), current_user().as_str())
    );
    assert_eq!(target.identity_files[0], key);
    let session = ssh::connect(&target, &opts).await.unwrap();
    assert_eq!(session.exec("echo ok").await.unwrap().stdout, b"ok\n");
}

/// An `ssh-agent -D -a SOCK` holding `key`, killed on drop.
struct SshAgent {
    child: std::process::Child,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SshAgent {
    /// An agent holding `key`.
    fn start(key: &ClientKey) -> SshAgent {
        let agent = SshAgent::start_empty();
        let out = Command::new("ssh-add")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        agent
    }

    fn add(&self, key: &ClientKey) {
        let out = Command::new("ssh-add")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_empty() -> SshAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(runicorn_tests::wait_until(5.0, || socket.exists()));
        SshAgent {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_agent_keys_authenticate() {
    let sshd = Sshd::start();
    let agent = SshAgent::start(sshd.client_key());
    let home = ClientHome::empty(); // no key files at all
    home.trust(&sshd);
    let opts = ConnectOptions {
        agent_socket: Some(agent.socket.clone()),
        ..home.options()
    };
    let session = connect_ok(&sshd.spec(), &opts, &sshd).await;
    assert_eq!(session.exec("echo agent").await.unwrap().stdout, b"agent\n");

    // Without the agent, the same home has nothing to offer.
    let err = connect(&sshd.spec(), &home.options()).await.unwrap_err();
    assert!(
        err.to_string().contains("no ssh-agent keys, no key files"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_only_keeps_many_agent_keys_under_max_auth_tries() {
    let right = ClientKey::generate();
    let sshd = Sshd::builder()
        .client_key(right.clone())
        .config_line("MaxAuthTries 2")
        .start();
    let agent = SshAgent::start(&ClientKey::generate());
    for key in [ClientKey::generate(), ClientKey::generate(), right.clone()] {
        agent.add(&key);
    }
    let home = ClientHome::empty();
    home.trust(&sshd);
    let opts = ConnectOptions {
        agent_socket: Some(agent.socket.clone()),
        ..home.options()
    };
    let err = connect(&sshd.spec(), &opts).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{text}");
    assert!(text.contains("IdentitiesOnly"), "{text}");

    // Only the public half is needed on the client: the agent signs.
    std::fs::write(home.ssh_dir().join("right.pub"), &right.public).unwrap();
    home.write_config("Host *\n  IdentitiesOnly yes\n  IdentityFile ~/.ssh/right\n");
    let session = connect_ok(&sshd.spec(), &opts, &sshd).await;
    assert_eq!(session.exec("true").await.unwrap().status, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_jump_reaches_a_host_through_another() {
    let jump = Sshd::builder().allow_tcp_forwarding(true).start();
    let target = Sshd::builder()
        .client_key(jump.client_key().clone())
        .start();
    let home = jump.client_home();
    home.trust(&jump);
    home.trust(&target);

    // -J on the command line.
    let opts = ConnectOptions {
        jump: Some(jump.spec()),
        ..home.options()
    };
    let session = connect_ok(&target.spec(), &opts, &target).await;
    assert_eq!(session.exec("echo via").await.unwrap().stdout, b"via\n");
    assert!(
        !jump.connection_pids().is_empty(),
        "the jump host carries the session"
    );
    session.close().await;

    // ProxyJump from the config, naming another alias.
    home.write_config(&format!(
        "Host gpu\n  HostName 127.0.0.1\n  Port {}\n  ProxyJump bastion\n\
         Host bastion\n  HostName 127.0.0.1\n  Port {}\n",
        target.port(),
        jump.port()
    ));
    let session = connect_ok("gpu", &home.options(), &target).await;
    assert_eq!(session.exec("echo cfg").await.unwrap().stdout, b"cfg\n");

    // A jump host that does not forward: the error says which hop and why.
    let closed = Sshd::builder()
        .client_key(jump.client_key().clone())
        .start();
    home.trust(&closed);
    let opts = ConnectOptions {
        jump: Some(closed.spec()),
        ..home.options()
    };
    let err = connect(&target.spec(), &opts).await.unwrap_err();
    assert!(matches!(err, SshError::Jump { .. }), "{err}");
    assert!(err.to_string().contains("AllowTcpForwarding"), "{err}");

    // The jump host's own key is checked too.
    let strict = ClientHome::empty();
    strict.add_key("id_ed25519", jump.client_key());
    strict.trust(&target);
    let opts = ConnectOptions {
        jump: Some(jump.spec()),
        ..strict.options()
    };
    let err = connect(&target.spec(), &opts).await.unwrap_err();
    let SshError::Jump { source, .. } = &err else {
        panic!("expected a jump host error, got: {err}");
    };
    assert!(matches!(**source, SshError::HostKeyUnknown { .. }), "{err}");
}

async fn read_all(agent: &mut ssh::AgentChannel) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), agent.read_to_end(&mut out))
        .await
        .expect("agent output ends")
        .expect("agent output reads");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_agent_runs_the_real_agent_or_explains_how_to_install_it() {
    let agent_binary = runicorn_tests::binary("runicorn-agent");
    let remote_home = tempfile::tempdir().unwrap();
    let sshd = Sshd::builder()
        .remote_home(remote_home.path())
        .remote_path("/usr/bin:/bin")
        .start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;

    // SetEnv gives the remote session the chosen HOME and PATH.
    let env = session.exec("echo \"$HOME|$PATH\"").await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        format!("{}|/usr/bin:/bin", remote_home.path().display())
    );

    // An explicit path.
    let path = agent_binary.to_str().unwrap();
    let mut agent = session
        .start_agent(Some(path), &["--version".to_string()])
        .await
        .unwrap();
    let out = read_all(&mut agent).await;
    assert!(
        String::from_utf8_lossy(&out).starts_with("runicorn-agent "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(agent.exit_status(Duration::from_secs(5)).await, Some(0));

    // Nothing installed: exit 127 and the install message.
    let mut agent = session
        .start_agent(None, &["--version".to_string()])
        .await
        .unwrap();
    assert!(read_all(&mut agent).await.is_empty());
    let status = agent.exit_status(Duration::from_secs(5)).await;
    assert_eq!(status, Some(127));
    let message = missing_agent_message(session.target(), status, &agent.stderr_tail())
        .expect("a missing agent is explained");
    assert!(
        message.contains("scp ") && message.contains(".runicorn/bin/"),
        "{message}"
    );
    assert!(message.contains("--agent PATH"), "{message}");

    // Installed in ~/.runicorn/bin: found without a path, arguments passed intact.
    let bin = remote_home.path().join(".runicorn/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&agent_binary, bin.join("runicorn-agent")).unwrap();
    let mut agent = session
        .start_agent(None, &["--version".to_string()])
        .await
        .unwrap();
    let out = read_all(&mut agent).await;
    assert!(String::from_utf8_lossy(&out).starts_with("runicorn-agent "));
    assert_eq!(agent.exit_status(Duration::from_secs(5)).await, Some(0));

    // stdin and stdout are the agent's: a conversation through `cat`, stderr kept aside.
    let agent = session
        .start_agent(
            Some("sh"),
            &["-c".into(), "echo started >&2; exec cat".into()],
        )
        .await
        .unwrap();
    let monitor = agent.monitor();
    let (mut stdout, mut stdin, _) = agent.into_parts();
    stdin.write_all(b"it's a 'line'\n").await.unwrap();
    let mut buf = vec![0u8; 14];
    stdout.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, b"it's a 'line'\n");
    stdin.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(monitor.exit_status(Duration::from_secs(5)).await, Some(0));
    assert_eq!(monitor.stderr_tail(), "started\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_reads_files_on_the_same_connection() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let small = sshd.dir().join("small.txt");
    std::fs::write(&small, "hello sftp\n").unwrap();
    let big = sshd.dir().join("big.bin");
    let data: Vec<u8> = (0..6_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();

    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    let sftp = session.sftp().await.unwrap();
    let text = sftp.read(small.to_str().unwrap()).await.unwrap();
    assert_eq!(text, b"hello sftp\n");
    let mut file = sftp.open(big.to_str().unwrap()).await.unwrap();
    let mut got = Vec::new();
    file.read_to_end(&mut got).await.unwrap();
    assert!(
        got == data,
        "the big file differs ({} bytes read)",
        got.len()
    );
    // The connection still runs commands beside SFTP.
    assert_eq!(session.exec("echo x").await.unwrap().stdout, b"x\n");
}

/// The best of several SFTP `stat` round trips (no process is started on the server, so the
/// time is the network's).
async fn best_round_trip(session: &SshSession) -> Duration {
    let sftp = session.sftp().await.unwrap();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        sftp.metadata("/").await.unwrap();
        best = best.min(start.elapsed());
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_adds_measurable_latency_to_a_session() {
    let sshd = Sshd::start();
    let relay = Relay::start(sshd.addr(), Duration::from_millis(25));
    let home = sshd.client_home();
    home.trust(&sshd);
    home.trust_as(
        &format!("[127.0.0.1]:{}", relay.addr.port()),
        sshd.host_public_key(),
    );
    let direct = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    let spec = format!("{}@127.0.0.1:{}", current_user(), relay.addr.port());
    let delayed = connect_ok(&spec, &home.options(), &sshd).await;
    let fast = best_round_trip(&direct).await;
    let slow = best_round_trip(&delayed).await;
    // One request, one answer: 50 ms more through the relay, and not much beyond.
    assert!(
        slow >= fast + Duration::from_millis(48) && slow < fast + Duration::from_millis(150),
        "direct {fast:?}, through the relay {slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_sshd_child_fails_reads_promptly() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let session = connect_ok(&sshd.spec(), &home.options(), &sshd).await;
    let mut agent = session.start_agent(Some("cat"), &[]).await.unwrap();
    agent.write_all(b"ping\n").await.unwrap();
    let mut buf = [0u8; 5];
    agent.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping\n");

    assert!(sshd.kill_connections() > 0);
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), agent.read_to_end(&mut rest))
        .await
        .expect("a read on a cut connection must not hang");
    assert!(
        read.is_err(),
        "a cut must be an error, not a clean end: {read:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let err = read.unwrap_err().to_string();
    assert!(err.contains("lost") && err.contains("127.0.0.1"), "{err}");

    let err = session.exec("true").await.unwrap_err();
    assert!(matches!(err, SshError::Disconnected { .. }), "{err}");
    assert!(session.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_is_detected_by_keepalives() {
    let sshd = Sshd::start();
    let relay = Relay::start(sshd.addr(), Duration::from_millis(1));
    let home = sshd.client_home();
    home.trust_as(
        &format!("[127.0.0.1]:{}", relay.addr.port()),
        sshd.host_public_key(),
    );
    let opts = ConnectOptions {
        keepalive: Duration::from_secs(1),
        ..home.options()
    };
    let spec = format!("{}@127.0.0.1:{}", current_user(), relay.addr.port());
    let session = connect_ok(&spec, &opts, &sshd).await;
    let mut agent = session.start_agent(Some("cat"), &[]).await.unwrap();
    agent.write_all(b"ping\n").await.unwrap();
    let mut buf = [0u8; 5];
    agent.read_exact(&mut buf).await.unwrap();

    relay.set_stalled(true);
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), agent.read_to_end(&mut rest))
        .await
        .expect("keepalives must end a silent connection");
    assert!(read.is_err(), "{read:?}");
    // 3 unanswered probes a second apart, plus the first interval.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert!(session.is_closed());
    let reason = session.disconnect_reason().unwrap_or_default();
    assert!(reason.contains("keepalive"), "{reason}");
}

#[test]
fn fingerprints_match_ssh_keygen() {
    // The harness's fingerprint helper is what the tests compare messages with.
    let key = ClientKey::generate();
    let fp = fingerprint_of(&key.public);
    assert!(fp.starts_with("SHA256:") && fp.len() > 40, "{fp}");
}

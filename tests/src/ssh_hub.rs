//! The set-up of scenarios that sync a storage root into a hub over a real sshd: a server
//! ([`Sshd`]), a client home that trusts it, an empty storage root for the agent, an empty hub
//! folder and a scratch folder, each removed on drop; and the `runicorn-hub` commands against
//! them, the remote named `gpu`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::hub::{agent_path, connect_ssh, connect_ssh_once, hub, show};
use crate::output_within;
use crate::sshd::{ClientHome, Sshd};

/// How long a one-off `runicorn-hub` command of these scenarios (`sync`) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// A server with a storage root, a client home that trusts it, a hub folder and a scratch
/// folder.
pub struct SshHub {
    /// The server the hub connects to.
    pub sshd: Sshd,
    /// `HOME` for the hub's SSH client, trusting `sshd`.
    pub home: ClientHome,
    root: TempDir,
    hub_dir: TempDir,
    scratch: TempDir,
}

impl SshHub {
    /// Starts the server and makes the folders, all empty.
    pub fn start() -> SshHub {
        SshHub::with_root(tempfile::tempdir().expect("temp dir"))
    }

    /// [`SshHub::start`] serving `root` (a fixture's copy, say) as the storage root.
    pub fn with_root(root: TempDir) -> SshHub {
        let sshd = Sshd::start();
        let home = sshd.client_home();
        home.trust(&sshd);
        SshHub {
            sshd,
            home,
            root,
            hub_dir: tempfile::tempdir().expect("temp dir"),
            scratch: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The storage root the agent serves.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The hub's folder (`RUNICORN_HUB_DIR`: its store and remotes).
    pub fn hub_dir(&self) -> &Path {
        self.hub_dir.path()
    }

    /// A folder of the test's own (programs, hook output).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// `runicorn-hub` with this home and hub folder.
    pub fn hub(&self) -> Command {
        hub(self.home.path(), self.hub_dir())
    }

    /// `runicorn-hub connect SPEC --agent AGENT --root ROOT --name gpu --no-ui EXTRA…`, not yet
    /// started.
    pub fn connect(&self, extra: &[&str]) -> Command {
        let mut cmd = connect_ssh(
            self.home.path(),
            self.hub_dir(),
            &self.sshd,
            self.root(),
            &agent_path(),
        );
        cmd.args(["--name", "gpu", "--no-ui"]).args(extra);
        cmd
    }

    /// `connect EXTRA…` following live (no `--once`): stdout to nowhere, stderr piped, to be
    /// read when it is stopped with [`crate::interrupt`].
    pub fn follow(&self, extra: &[&str]) -> Child {
        self.connect(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runicorn-hub connect starts")
    }

    /// The first sync: `connect --once EXTRA…` registers remote `gpu` and syncs it; panics
    /// with the hub's output if it fails; returns its stderr.
    pub fn connect_once(&self, extra: &[&str]) -> String {
        connect_ssh_once(&self.home, self.hub_dir(), &self.sshd, self.root(), extra)
    }

    /// `runicorn-hub sync --json`, which must succeed for the one remote, `gpu`: that round's
    /// figures (`runs`, `points`, `log_bytes`, …).
    pub fn sync(&self) -> Value {
        let out = output_within(self.hub().args(["sync", "--json"]), COMMAND_LIMIT);
        assert!(out.status.success(), "{}", show(&out));
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
        assert_eq!(v.as_array().map(Vec::len), Some(1), "one remote: {v}");
        assert_eq!(v[0]["ok"], true, "{v}");
        v[0].clone()
    }
}

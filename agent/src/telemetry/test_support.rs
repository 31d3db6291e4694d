//! Test-only helpers shared by the telemetry tests of `telemetry/`, `run_command/` and
//! `daemon/`: a real child process burning one core, killed when dropped (so a failing test
//! leaves nothing behind). Only std and sibling modules, by relative path, so the copy of this
//! module that `bench/` compiles in by path builds too.

use std::process::{Child, Command};

use super::process_tree::ProcessId;

/// `sh -c 'while :; do :; done'`: a command burning one core until dropped.
pub(crate) struct BusyChild(Child);

impl BusyChild {
    /// Starts the burner; panics (the test fails) if `sh` cannot be started.
    pub(crate) fn start() -> BusyChild {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("start sh");
        BusyChild(child)
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Its pid and start time, as the samplers name a process.
    pub(crate) fn process_id(&self) -> ProcessId {
        ProcessId::of_pid(self.pid()).expect("the burner runs")
    }
}

impl Drop for BusyChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

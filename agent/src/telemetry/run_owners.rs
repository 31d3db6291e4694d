//! Which running run a process belongs to: from the process, up through its parents (one
//! snapshot of `/proc`), to the process a run's records name as its writer (the SDK's process,
//! or the `runicorn-agent run` wrapper), each named by pid *and* start time.
//!
//! A pid is matched to a run only when the process that has it now is the one the run
//! recorded: when `status.json` records the writer's start time (`proc_start_ticks`), a process
//! with the same pid and another start time is not the run's. Walking up stops at a parent that
//! started after its child: that pid was given to a newer process after the real parent ended.

use std::collections::HashMap;

use super::process_tree::ProcessId;

/// The writer process a run's records name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRoot {
    pub pid: u32,
    /// Its start time in clock ticks after boot, when the records hold it; without it the pid
    /// alone decides (older writers, upstream's runs).
    pub start_ticks: Option<u64>,
}

/// The running runs of the host and the process table to find their processes in.
#[derive(Debug)]
pub struct RunOwners<T> {
    roots: HashMap<u32, Vec<(Option<u64>, T)>>,
    /// Every live process: its identity and its parent's pid.
    processes: HashMap<u32, (ProcessId, u32)>,
}

impl<T> RunOwners<T> {
    /// The runs `roots` against a process table (pid → identity and parent pid), such as
    /// `process_tree::process_parents` reads from `/proc`.
    pub fn with_processes(
        roots: impl IntoIterator<Item = (RunRoot, T)>,
        processes: HashMap<u32, (ProcessId, u32)>,
    ) -> Self {
        let mut by_pid: HashMap<u32, Vec<(Option<u64>, T)>> = HashMap::new();
        for (root, run) in roots {
            by_pid
                .entry(root.pid)
                .or_default()
                .push((root.start_ticks, run));
        }
        RunOwners {
            roots: by_pid,
            processes,
        }
    }

    /// The run whose writer is `pid` or one of its ancestors; `None` when no running run's
    /// writer is (or the process is not in the table: gone, or in another pid namespace).
    pub fn owner_of(&self, pid: u32) -> Option<&T> {
        let mut current = self.processes.get(&pid)?;
        // Bounded by the table: a chain of parents cannot be longer than the processes in it.
        for _ in 0..=self.processes.len() {
            let (id, parent) = *current;
            if let Some(runs) = self.roots.get(&id.pid) {
                let matching = runs
                    .iter()
                    .find(|(ticks, _)| ticks.is_none_or(|t| t == id.start_ticks));
                if let Some((_, run)) = matching {
                    return Some(run);
                }
            }
            let next = self.processes.get(&parent)?;
            if parent == 0 || next.0.start_ticks > id.start_ticks {
                return None; // the top, or a pid reused since the real parent ended
            }
            current = next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::process_tree::process_parents;
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn id(pid: u32, start_ticks: u64) -> ProcessId {
        ProcessId { pid, start_ticks }
    }

    /// init (1) → shell 10 → python 20 → worker 30; and 40, a process that got the pid of an
    /// earlier parent of 50 after it ended (it started after 50).
    fn table() -> HashMap<u32, (ProcessId, u32)> {
        [
            (1, (id(1, 1), 0)),
            (10, (id(10, 100), 1)),
            (20, (id(20, 200), 10)),
            (30, (id(30, 300), 20)),
            (40, (id(40, 900), 1)),
            (50, (id(50, 500), 40)),
        ]
        .into_iter()
        .collect()
    }

    fn root(pid: u32, start_ticks: Option<u64>) -> RunRoot {
        RunRoot { pid, start_ticks }
    }

    #[test]
    fn a_process_belongs_to_the_run_of_its_nearest_recorded_ancestor() {
        let owners = RunOwners::with_processes(
            [(root(20, Some(200)), "run-a"), (root(10, None), "run-b")],
            table(),
        );
        assert_eq!(owners.owner_of(30), Some(&"run-a"), "a child of the writer");
        assert_eq!(owners.owner_of(20), Some(&"run-a"), "the writer itself");
        assert_eq!(
            owners.owner_of(10),
            Some(&"run-b"),
            "no start time: the pid decides"
        );
        assert_eq!(owners.owner_of(1), None);
        assert_eq!(owners.owner_of(77), None, "not in the table");
    }

    #[test]
    fn a_reused_pid_is_not_the_runs() {
        // The run recorded pid 20 with another start time: the process that has 20 now is not it.
        let owners = RunOwners::with_processes([(root(20, Some(199)), "run")], table());
        assert_eq!(owners.owner_of(30), None);
        assert_eq!(owners.owner_of(20), None);
        // 40 started after its "child" 50: it is not 50's real parent, so 50 is not 40's run's.
        let owners = RunOwners::with_processes([(root(40, Some(900)), "run")], table());
        assert_eq!(owners.owner_of(50), None);
        assert_eq!(owners.owner_of(40), Some(&"run"));
    }

    /// `sh` waiting for a sleeping child, killed whole when dropped.
    struct Tree(std::process::Child);

    impl Drop for Tree {
        fn drop(&mut self) {
            // SAFETY: kill has no memory preconditions; the group is ours and not yet reaped.
            unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
            let _ = self.0.wait();
        }
    }

    #[test]
    fn real_processes_are_matched_by_pid_and_start_time() {
        let tree = Tree(
            Command::new("sh")
                .args(["-c", "sleep 60 & wait"])
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start sh"),
        );
        let shell = ProcessId::of_pid(tree.0.id()).expect("the shell runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        let child = loop {
            let parents = process_parents();
            let found = parents
                .values()
                .find(|(_, parent)| *parent == shell.pid)
                .map(|(id, _)| *id);
            if let Some(child) = found {
                break child;
            }
            assert!(Instant::now() < deadline, "the shell started no child");
            std::thread::sleep(Duration::from_millis(10));
        };
        let owners = RunOwners::with_processes(
            [(root(shell.pid, Some(shell.start_ticks)), "run")],
            process_parents(),
        );
        assert_eq!(owners.owner_of(child.pid), Some(&"run"));
        assert_eq!(
            owners.owner_of(std::process::id()),
            None,
            "the test is no run's"
        );

        let reused = RunOwners::with_processes(
            [(root(shell.pid, Some(shell.start_ticks + 1)), "run")],
            process_parents(),
        );
        assert_eq!(
            reused.owner_of(child.pid),
            None,
            "another process had that pid"
        );
    }
}

//! The process tree of a run's root process, read from `/proc`, and its figures: CPU % of one
//! core, resident memory, storage I/O, processes and threads.
//!
//! A process is named by its pid *and* its start time (`ProcessId`), so a pid the kernel has
//! given to another process is never taken for the run's: a root whose start time changed has
//! ended, and a pid seen in two samples counts as the same process only when its start time
//! is the same.
//!
//! Each sample reads `/proc/<pid>/stat` of every process on the host (children are found by
//! their parent pid: the `children` files of `/proc/<pid>/task/*` are not reliable while
//! processes come and go), then `/proc/<pid>/io` of the tree's members. A caller sampling
//! several runs at once (the resident agent) reads that host-wide table once per round
//! (`ProcessTable::read`) and derives each run's tree from it (`ProcessTreeSampler::sample_from`).
//!
//! How the figures are made:
//! - **CPU %** (of one core; 250 means two and a half cores) is the CPU time the tree used between
//!   two samples over the wall time between them, so the first sample has none. A process's
//!   time counts its own user and system time and that of the children it waited for, so a
//!   short-lived child started and reaped between two samples is counted (through its parent);
//!   a departed process whose time went to a parent in the tree is not counted twice.
//! - **Resident memory** is the sum of the members' RSS: pages shared between processes (forked
//!   data-loader workers) are counted once per process, as `ps` and `top` do.
//! - **I/O** is the bytes the members (and the children they waited for) read from and wrote to
//!   storage so far (`read_bytes`/`write_bytes` of `/proc/<pid>/io`), summed over the members
//!   whose file is readable; `None` when none is (another user's processes, or a kernel
//!   without I/O accounting).
//! - **Processes and threads** count the live members; zombies (exited, not yet reaped) are
//!   kept only for the CPU accounting.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::time::Instant;

/// Where the kernel shows processes.
const PROC: &str = "/proc";

/// A process, named so that a reused pid is a different process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub pid: u32,
    /// When the process started, in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
    pub start_ticks: u64,
}

impl ProcessId {
    /// The process that has `pid` now; `None` when there is none.
    pub fn of_pid(pid: u32) -> Option<Self> {
        let mut text = String::new();
        read_stat(pid, &mut text).map(|stat| stat.id)
    }
}

/// The figures of a run's process tree at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeSample {
    /// The root process is gone (or its pid belongs to another process now, or it is a
    /// zombie): every other field is empty.
    pub ended: bool,
    /// The live members' pids, the root first, then in increasing order.
    pub pids: Vec<u32>,
    /// Live members (the root and its descendants, zombies excluded).
    pub processes: u32,
    /// Threads of the live members.
    pub threads: u64,
    /// Sum of the live members' resident memory.
    pub rss_bytes: u64,
    /// CPU time used since the previous sample over the wall time since it, in % of one core;
    /// `None` for the first sample.
    pub cpu_percent: Option<f64>,
    /// Bytes read from storage by the members and the children they waited for, so far.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to storage by the members and the children they waited for, so far.
    pub io_write_bytes: Option<u64>,
}

impl TreeSample {
    fn ended() -> Self {
        TreeSample {
            ended: true,
            pids: Vec::new(),
            processes: 0,
            threads: 0,
            rss_bytes: 0,
            cpu_percent: None,
            io_read_bytes: None,
            io_write_bytes: None,
        }
    }
}

/// Samples the process tree under one root process; keeps the previous sample for the CPU %.
#[derive(Debug)]
pub struct ProcessTreeSampler {
    /// `None` when the root was already gone when the sampler was made.
    root: Option<ProcessId>,
    previous: Option<TreeSnapshot>,
    clock: KernelUnits,
    /// Reused between samples: the text of one `/proc` file.
    buffer: String,
}

impl ProcessTreeSampler {
    /// A sampler of the tree under the process that has `root_pid` now.
    pub fn new(root_pid: u32) -> Self {
        Self::for_process(ProcessId::of_pid(root_pid))
    }

    /// A sampler of the tree under `root` (`None`: a root already gone, every sample ended).
    pub fn for_process(root: Option<ProcessId>) -> Self {
        ProcessTreeSampler {
            root,
            previous: None,
            clock: KernelUnits::get(),
            buffer: String::new(),
        }
    }

    /// The root process this sampler follows.
    // Kept for the resident agent (issue 15), which follows runs it did not start.
    #[allow(dead_code)]
    pub fn root(&self) -> Option<ProcessId> {
        self.root
    }

    /// Reads the tree now; `now` is the moment the CPU % is measured to.
    pub fn sample(&mut self, now: Instant) -> TreeSample {
        if self.root.is_none() {
            return TreeSample::ended();
        }
        let table = ProcessTable::read_with(&mut self.buffer);
        self.sample_from(&table, now)
    }

    /// The tree as found in `table` (the host's processes read once for several runs), its
    /// members' I/O read now; `now` is the moment the CPU % is measured to.
    pub fn sample_from(&mut self, table: &ProcessTable, now: Instant) -> TreeSample {
        let Some(root) = self.root else {
            return TreeSample::ended();
        };
        let Some(snapshot) = TreeSnapshot::from_table(root, table, now, &mut self.buffer) else {
            self.previous = None;
            return TreeSample::ended();
        };
        let cpu_percent = self.previous.as_ref().and_then(|previous| {
            let seconds = now.checked_duration_since(previous.at)?.as_secs_f64();
            if seconds <= 0.0 {
                return None;
            }
            let ticks = increment(previous, &snapshot, |m| Some(m.cpu_ticks));
            Some(ticks as f64 / self.clock.ticks_per_second / seconds * 100.0)
        });
        let live = || snapshot.members.values().filter(|m| !m.zombie);
        let mut pids: Vec<u32> = live().map(|m| m.id.pid).collect();
        pids.sort_unstable_by_key(|&pid| (pid != root.pid, pid));
        let sum_io = |pick: fn(&IoCounters) -> u64| {
            let mut readable = snapshot.members.values().filter_map(|m| m.io.as_ref());
            let first = readable.next()?;
            Some(readable.fold(pick(first), |sum, io| sum.saturating_add(pick(io))))
        };
        let sample = TreeSample {
            ended: false,
            processes: u32::try_from(pids.len()).unwrap_or(u32::MAX),
            pids,
            threads: live().map(|m| m.threads).sum(),
            rss_bytes: live().map(|m| m.rss_pages).sum::<u64>() * self.clock.page_size,
            cpu_percent,
            io_read_bytes: sum_io(|io| io.read_bytes),
            io_write_bytes: sum_io(|io| io.write_bytes),
        };
        self.previous = Some(snapshot);
        sample
    }
}

/// Every live process of the host at one moment, each with its parent's pid (zombies left
/// out): what walking up from a process to its ancestors needs.
pub fn process_parents() -> HashMap<u32, (ProcessId, u32)> {
    ProcessTable::read().parents()
}

/// The `/proc/<pid>/stat` of every process of the host at one moment, zombies included (their
/// CPU time still counts until they are reaped), by pid and by parent.
#[derive(Debug, Default)]
pub struct ProcessTable {
    by_pid: HashMap<u32, Member>,
    /// The pids of each parent's children.
    children: HashMap<u32, Vec<u32>>,
}

impl ProcessTable {
    /// Reads every process of the host now (an unreadable `/proc` gives an empty table).
    pub fn read() -> Self {
        Self::read_with(&mut String::new())
    }

    fn read_with(buffer: &mut String) -> Self {
        let mut table = ProcessTable::default();
        for pid in all_pids() {
            let Some(stat) = read_stat(pid, buffer) else {
                continue; // gone since the directory was listed
            };
            if stat.parent != 0 {
                table.children.entry(stat.parent).or_default().push(pid);
            }
            table.by_pid.insert(pid, stat);
        }
        table
    }

    /// The process that has `pid` in the table.
    pub fn process(&self, pid: u32) -> Option<ProcessId> {
        self.by_pid.get(&pid).map(|m| m.id)
    }

    /// [`process_parents`] of this table.
    pub fn parents(&self) -> HashMap<u32, (ProcessId, u32)> {
        self.by_pid
            .values()
            .filter(|member| !member.zombie)
            .map(|member| (member.id.pid, (member.id, member.parent)))
            .collect()
    }
}

/// The kernel's units for times and memory in `/proc`.
#[derive(Debug, Clone, Copy)]
struct KernelUnits {
    ticks_per_second: f64,
    page_size: u64,
}

impl KernelUnits {
    fn get() -> Self {
        // SAFETY: sysconf only reads a configuration value; it has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        KernelUnits {
            // Linux has reported 100 on every architecture for decades; used if sysconf fails.
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        }
    }
}

/// One member of the tree as read from `/proc`.
#[derive(Debug, Clone)]
struct Member {
    id: ProcessId,
    parent: u32,
    zombie: bool,
    threads: u64,
    rss_pages: u64,
    /// User + system time of the process and of the children it waited for, in clock ticks.
    cpu_ticks: u64,
    io: Option<IoCounters>,
}

#[derive(Debug, Clone, Copy)]
struct IoCounters {
    read_bytes: u64,
    write_bytes: u64,
}

/// The members of the tree at one moment, by pid.
#[derive(Debug)]
struct TreeSnapshot {
    at: Instant,
    members: HashMap<u32, Member>,
}

impl TreeSnapshot {
    /// The tree under `root` in `table`, its members' I/O read now; `None` when the root has
    /// ended (another process with the root's pid is not the root, nor in its tree).
    fn from_table(
        root: ProcessId,
        table: &ProcessTable,
        at: Instant,
        buffer: &mut String,
    ) -> Option<Self> {
        let root_member = table
            .by_pid
            .get(&root.pid)
            .filter(|m| m.id == root && !m.zombie)?;
        let mut members = HashMap::new();
        let mut to_visit = vec![root_member];
        while let Some(member) = to_visit.pop() {
            if members.contains_key(&member.id.pid) {
                continue; // the table is one moment: no cycle, but never loop on one
            }
            if let Some(children) = table.children.get(&member.id.pid) {
                // A child cannot have started before its parent: one that did is a process
                // that got the pid of an earlier child of a parent that died since.
                to_visit.extend(
                    children
                        .iter()
                        .filter_map(|pid| table.by_pid.get(pid))
                        .filter(|c| c.id.pid != root.pid)
                        .filter(|c| c.id.start_ticks >= member.id.start_ticks),
                );
            }
            let mut member = member.clone();
            member.io = read_io(member.id.pid, buffer);
            members.insert(member.id.pid, member);
        }
        Some(TreeSnapshot { at, members })
    }

    /// The member that is the same process as `id`, if it is still in the tree.
    fn same(&self, id: ProcessId) -> Option<&Member> {
        self.members.get(&id.pid).filter(|m| m.id == id)
    }
}

/// How much a cumulative per-process counter grew in the tree between two snapshots.
///
/// A member in both counts its growth; a new member counts all of its value (it started after
/// `previous`, or joined the tree since). A member gone since `previous` whose counters were
/// handed to a parent still in the tree (the parent waited for it, which adds the child's
/// totals to the parent's) is subtracted, since the parent's growth holds all of it.
fn increment(
    previous: &TreeSnapshot,
    now: &TreeSnapshot,
    counter: impl Fn(&Member) -> Option<u64>,
) -> u64 {
    let mut total: i128 = 0;
    for member in now.members.values() {
        let Some(value) = counter(member) else {
            continue;
        };
        let before = previous.same(member.id).and_then(&counter).unwrap_or(0);
        total += i128::from(value) - i128::from(before);
    }
    for member in previous.members.values() {
        if now.same(member.id).is_none() && handed_to_tree(member, previous, now) {
            total -= i128::from(counter(member).unwrap_or(0));
        }
    }
    u64::try_from(total.max(0)).unwrap_or(u64::MAX)
}

/// Whether a member gone since `previous` was waited for by a process still in the tree: its
/// parent is still there, or went the same way (and so on up).
fn handed_to_tree(member: &Member, previous: &TreeSnapshot, now: &TreeSnapshot) -> bool {
    if ProcessId::of_pid(member.id.pid) == Some(member.id) {
        return false; // still alive, under another parent: it left the tree
    }
    let mut parent_pid = member.parent;
    // Bounded by the tree's size: the chain of parents cannot be longer.
    for _ in 0..previous.members.len() {
        let Some(parent) = previous.members.get(&parent_pid) else {
            return false; // `member` was the root
        };
        if now.same(parent.id).is_some() {
            return true;
        }
        parent_pid = parent.parent;
    }
    false
}

/// Every pid listed in `/proc` (an unreadable `/proc` lists none).
fn all_pids() -> impl Iterator<Item = u32> {
    fs::read_dir(PROC)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// Reads `/proc/<pid>/<name>` into `buffer`; `false` when it cannot be read.
fn read_proc_file(pid: u32, name: &str, buffer: &mut String) -> bool {
    buffer.clear();
    fs::File::open(format!("{PROC}/{pid}/{name}"))
        .and_then(|mut file| file.read_to_string(buffer))
        .is_ok()
}

/// The member fields of `/proc/<pid>/stat` (`io` left empty); `None` when the process is gone
/// or the line is not as proc(5) describes it.
fn read_stat(pid: u32, buffer: &mut String) -> Option<Member> {
    if !read_proc_file(pid, "stat", buffer) {
        return None;
    }
    parse_stat(pid, buffer)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted after the last `)`.
fn parse_stat(pid: u32, line: &str) -> Option<Member> {
    let after_name = &line[line.rfind(')')? + 1..];
    // Field n of proc(5) (1-based) is fields[n - 3].
    let mut fields = [""; 22];
    for (slot, field) in fields.iter_mut().zip(after_name.split_ascii_whitespace()) {
        *slot = field;
    }
    // A missing field stays empty, which is no number.
    let number = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let state = fields[0];
    let ticks = [14, 15, 16, 17]
        .iter()
        .try_fold(0u64, |sum, &n| Some(sum.saturating_add(number(n)?)))?;
    Some(Member {
        id: ProcessId {
            pid,
            start_ticks: number(22)?,
        },
        parent: u32::try_from(number(4)?).ok()?,
        zombie: state == "Z" || state == "X",
        threads: number(20)?,
        rss_pages: number(24)?,
        cpu_ticks: ticks,
        io: None,
    })
}

/// `read_bytes` and `write_bytes` of `/proc/<pid>/io`; `None` when it is not readable.
fn read_io(pid: u32, buffer: &mut String) -> Option<IoCounters> {
    if !read_proc_file(pid, "io", buffer) {
        return None;
    }
    parse_io(buffer)
}

fn parse_io(text: &str) -> Option<IoCounters> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some(IoCounters {
        read_bytes: field("read_bytes")?,
        write_bytes: field("write_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// A process group started by a test, killed whole when the test ends (pass or fail).
    struct Group(Child);

    impl Group {
        fn start(script: &str) -> Group {
            let child = Command::new("sh")
                .args(["-c", script])
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start sh");
            Group(child)
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            // SAFETY: kill has no memory preconditions; the group is ours and not yet reaped.
            unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
            let _ = self.0.wait();
        }
    }

    /// User + system time of `pid` itself, read here without the sampler.
    fn own_ticks(pid: u32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("a live pid");
        let fields: Vec<u64> = stat[stat.rfind(')').expect("a stat line") + 2..]
            .split(' ')
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        fields[11] + fields[12] // fields 14 and 15 of proc(5)
    }

    /// Samples until `done` holds for a sample, or panics after 10 s.
    fn sample_until(
        sampler: &mut ProcessTreeSampler,
        what: &str,
        done: impl Fn(&TreeSample) -> bool,
    ) -> TreeSample {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sample = sampler.sample(Instant::now());
            if done(&sample) {
                return sample;
            }
            assert!(Instant::now() < deadline, "{what}: last sample {sample:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_burning_child_and_grandchild_are_one_busy_tree_until_the_grandchild_dies() {
        let group = Group::start("sh -c 'while :; do :; done' & while :; do :; done");
        let mut sampler = ProcessTreeSampler::new(group.pid());
        let first = sample_until(&mut sampler, "the grandchild appears", |s| s.processes == 2);
        assert!(!first.ended);
        assert_eq!(first.pids[0], group.pid(), "the root comes first");
        assert!(first.threads >= 2, "{first:?}");
        assert!(first.rss_bytes > 0, "{first:?}");

        // The sampler's window nested in one measured here by reading the two processes'
        // own user + system time directly.
        let (root, grandchild) = (first.pids[0], first.pids[1]);
        let ticks_before = own_ticks(root) + own_ticks(grandchild);
        let start = Instant::now();
        let first = sampler.sample(start);
        std::thread::sleep(Duration::from_secs(1));
        let end = Instant::now();
        let busy = sampler.sample(end);
        let used_ticks = (own_ticks(root) + own_ticks(grandchild) - ticks_before) as f64;
        assert!(
            first.cpu_percent.is_some(),
            "not the sampler's first sample"
        );
        assert_eq!(busy.processes, 2, "{busy:?}");
        assert!(busy.rss_bytes > 0);
        let cpu = busy.cpu_percent.expect("a second sample has a CPU %");
        // Two burners are busy even on a loaded machine, and use at most every core.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(cpu > 20.0, "two burning processes used only {cpu:.1} %");
        assert!(cpu <= cores * 100.0 * 1.1, "{cpu:.1} % on {cores} cores");
        // Both processes are in the figure: it matches their own accounting.
        let units = KernelUnits::get();
        let sampled_ticks = cpu / 100.0 * (end - start).as_secs_f64() * units.ticks_per_second;
        assert!(
            sampled_ticks <= used_ticks + 3.0 && sampled_ticks >= used_ticks * 0.85 - 3.0,
            "the sampler saw {sampled_ticks:.1} ticks, the processes used {used_ticks}"
        );

        // SAFETY: kill has no memory preconditions; the pid is a live member of our group.
        assert_eq!(unsafe { libc::kill(grandchild as i32, libc::SIGKILL) }, 0);
        // Its parent, busy in its loop, may leave it a zombie: it is no longer counted.
        let alone = sample_until(&mut sampler, "the grandchild goes", |s| s.processes == 1);
        assert_eq!(alone.pids, vec![group.pid()]);
    }

    #[test]
    fn one_table_read_gives_each_run_its_own_tree() {
        let busy = Group::start("sh -c 'while :; do :; done' & wait");
        let idle = Group::start("sleep 60 & sleep 60 & wait");
        let mut busy_tree = ProcessTreeSampler::new(busy.pid());
        let mut idle_tree = ProcessTreeSampler::new(idle.pid());
        sample_until(&mut busy_tree, "the burner appears", |s| s.processes == 2);
        sample_until(&mut idle_tree, "the sleepers appear", |s| s.processes == 3);
        std::thread::sleep(Duration::from_millis(500));
        let now = Instant::now();
        let table = ProcessTable::read();
        let busy_sample = busy_tree.sample_from(&table, now);
        let idle_sample = idle_tree.sample_from(&table, now);
        assert_eq!(busy_sample.pids.len(), 2, "{busy_sample:?}");
        assert_eq!(busy_sample.pids[0], busy.pid());
        assert_eq!(idle_sample.pids.len(), 3, "{idle_sample:?}");
        assert_eq!(idle_sample.pids[0], idle.pid());
        assert!(
            busy_sample
                .pids
                .iter()
                .all(|p| !idle_sample.pids.contains(p)),
            "two trees, no shared member"
        );
        let busy_cpu = busy_sample.cpu_percent.expect("a CPU %");
        let idle_cpu = idle_sample.cpu_percent.expect("a CPU %");
        // Low bounds: other tests burn CPU beside this one on a machine of two cores.
        assert!(busy_cpu > 5.0, "the burner: {busy_cpu:.1} %");
        assert!(idle_cpu < 2.0, "the sleepers: {idle_cpu:.1} %");
        assert_eq!(table.process(busy.pid()), ProcessId::of_pid(busy.pid()));
        assert!(
            table.parents().contains_key(&idle_sample.pids[1]),
            "the table's parents hold every live process"
        );
    }

    #[test]
    fn descendants_cpu_counts_when_the_root_only_waits() {
        let group = Group::start("sh -c 'while :; do :; done' & wait");
        let mut sampler = ProcessTreeSampler::new(group.pid());
        sample_until(&mut sampler, "the burner appears", |s| s.processes == 2);
        std::thread::sleep(Duration::from_millis(1000));
        let busy = sampler.sample(Instant::now());
        let cpu = busy.cpu_percent.expect("a second sample has a CPU %");
        assert!(
            cpu > 30.0,
            "the burning grandchild's CPU is missing: {cpu:.1} %"
        );
    }

    #[test]
    fn a_dead_root_gives_ended_samples() {
        let mut child = Command::new("true").spawn().expect("start true");
        let pid = child.id();
        child.wait().expect("wait for true");
        let mut sampler = ProcessTreeSampler::new(pid);
        let sample = sampler.sample(Instant::now());
        assert!(sample.ended);
        assert_eq!((sample.processes, sample.rss_bytes), (0, 0));
        assert!(sample.pids.is_empty() && sample.cpu_percent.is_none());
    }

    #[test]
    fn a_root_that_exits_while_sampled_ends_the_tree() {
        let mut group = Group::start("sleep 30");
        let mut sampler = ProcessTreeSampler::new(group.pid());
        assert!(!sampler.sample(Instant::now()).ended);
        // SAFETY: kill has no memory preconditions; the child is ours and not yet reaped.
        unsafe { libc::kill(group.pid() as i32, libc::SIGKILL) };
        // Not yet reaped: a zombie root has ended too.
        sample_until(&mut sampler, "the root's death is seen", |s| s.ended);
        group.0.wait().expect("reap the root");
        assert!(sampler.sample(Instant::now()).ended);
    }

    #[test]
    fn a_pid_with_another_start_time_is_not_the_root() {
        let me = ProcessId::of_pid(std::process::id()).expect("this process is in /proc");
        let reused = ProcessId {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        let mut sampler = ProcessTreeSampler::for_process(Some(reused));
        assert!(sampler.sample(Instant::now()).ended);
        let mut sampler = ProcessTreeSampler::for_process(Some(me));
        let sample = sampler.sample(Instant::now());
        assert!(!sample.ended && sample.processes >= 1);
        assert!(
            sample.io_read_bytes.is_some(),
            "our own /proc/self/io is readable"
        );
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (a) (b c)) S 17 4242 4242 0 -1 4194304 100 0 0 0 \
                    250 50 7 3 20 0 3 0 98765 123456789 2048 18446744073709551615";
        let member = parse_stat(4242, line).expect("a stat line");
        assert_eq!(member.parent, 17);
        assert_eq!(member.cpu_ticks, 250 + 50 + 7 + 3);
        assert_eq!(member.threads, 3);
        assert_eq!(member.id.start_ticks, 98765);
        assert_eq!(member.rss_pages, 2048);
        assert!(!member.zombie);
        assert!(parse_stat(1, "1 (init").is_none());
        assert!(parse_stat(1, "1 (x) S 0 1").is_none(), "cut short");
    }

    #[test]
    fn io_files_parse() {
        let text = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\n\
                    write_bytes: 8192\ncancelled_write_bytes: 0\n";
        let io = parse_io(text).expect("an io file");
        assert_eq!((io.read_bytes, io.write_bytes), (4096, 8192));
        assert!(parse_io("rchar: 10\n").is_none());
    }

    fn member(pid: u32, parent: u32, cpu_ticks: u64) -> Member {
        Member {
            // Start times no real process has, so `handed_to_tree` never finds them alive.
            id: ProcessId {
                pid,
                start_ticks: u64::MAX - u64::from(pid),
            },
            parent,
            zombie: false,
            threads: 1,
            rss_pages: 1,
            cpu_ticks,
            io: None,
        }
    }

    fn snapshot(members: Vec<Member>) -> TreeSnapshot {
        TreeSnapshot {
            at: Instant::now(),
            members: members.into_iter().map(|m| (m.id.pid, m)).collect(),
        }
    }

    #[test]
    fn cpu_of_a_child_reaped_between_samples_is_counted_once() {
        let ticks = |m: &Member| Some(m.cpu_ticks);
        let before = snapshot(vec![member(1, 0, 100), member(2, 1, 500)]);
        // The child used 20 more ticks, exited, and its parent waited for it: the parent's
        // time now holds the child's 520 (and 10 of its own).
        let after = snapshot(vec![member(1, 0, 100 + 10 + 520)]);
        assert_eq!(increment(&before, &after, ticks), 30);
        // A child started and reaped between the samples counts whole.
        let after = snapshot(vec![member(1, 0, 100 + 40), member(2, 1, 510)]);
        assert_eq!(increment(&before, &after, ticks), 50);
        // A new member counts all its time.
        let after = snapshot(vec![member(1, 0, 100), member(2, 1, 500), member(3, 2, 7)]);
        assert_eq!(increment(&before, &after, ticks), 7);
        // A child and grandchild gone, both waited for up the chain.
        let before = snapshot(vec![member(1, 0, 0), member(2, 1, 5), member(3, 2, 5)]);
        let after = snapshot(vec![member(1, 0, 12)]);
        assert_eq!(increment(&before, &after, ticks), 2);
        // The root gone: nothing waited for it in the tree; never below zero.
        let after = snapshot(vec![]);
        assert_eq!(increment(&before, &after, ticks), 0);
    }
}

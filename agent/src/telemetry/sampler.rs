//! A run's telemetry sample (`RunSampler`, `RunSample`) and the host's GPUs (`HostGpus`).
//!
//! A `RunSample` is the run's process tree figures (`process_tree`) and, for every GPU a
//! process of the tree uses (its pid among nvidia-smi's compute apps), that GPU's state and the
//! run's own memory on it. `RunSample::points` turns it into metric points under the `sys/`
//! prefix, only for the values that are known:
//!
//! | key | value |
//! |---|---|
//! | `sys/cpu_percent` | CPU of the tree since the previous sample, % of one core (not in the first sample) |
//! | `sys/rss_mib` | resident memory of the tree, MiB |
//! | `sys/io_read_mib`, `sys/io_write_mib` | read from / written to storage by the tree so far, MiB |
//! | `sys/procs`, `sys/threads` | live processes and their threads in the tree |
//! | `sys/gpu.N/util_percent` | GPU N's utilisation, % (the whole GPU's, shared with any other process on it) |
//! | `sys/gpu.N/mem_used_mib`, `sys/gpu.N/mem_total_mib` | GPU N's memory used (by every process) and its size, MiB |
//! | `sys/gpu.N/run_mem_mib` | GPU memory used by the run's own processes on GPU N, MiB |
//! | `sys/gpu.N/temp_c`, `sys/gpu.N/power_w` | GPU N's temperature, °C, and power draw, W |
//!
//! N is nvidia-smi's index of the GPU on the host. A sample of an ended run has no points.
//!
//! `HostGpus` is the host-wide view: every GPU, and which pids use it. A resident agent
//! sampling several runs queries it once and hands it to each run (`RunSampler::sample_with`).

use std::collections::HashSet;
use std::time::Instant;

use super::nvidia_smi::{ComputeApp, GpuState, NvidiaSmi, NvidiaSmiError};
use super::process_tree::{ProcessId, ProcessTable, ProcessTreeSampler, TreeSample};

const MIB: f64 = 1024.0 * 1024.0;

/// What a `RunSampler` samples.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// How to ask for the GPUs; `None` samples no GPUs.
    pub nvidia_smi: Option<NvidiaSmi>,
}

impl Default for SamplerConfig {
    /// GPUs through `nvidia-smi` on the PATH, 2 s per query.
    fn default() -> Self {
        SamplerConfig {
            nvidia_smi: Some(NvidiaSmi::default()),
        }
    }
}

/// One GPU of the host and the processes using it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGpu {
    pub state: GpuState,
    /// The compute apps on this GPU, in nvidia-smi's order.
    pub apps: Vec<ComputeApp>,
}

/// Every GPU of the host, in nvidia-smi's order (empty on a host without NVIDIA GPUs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostGpus {
    pub gpus: Vec<HostGpu>,
}

impl HostGpus {
    /// Asks nvidia-smi (both queries at once, within its timeout).
    pub fn query(nvidia_smi: &NvidiaSmi) -> Result<Self, NvidiaSmiError> {
        let (states, apps) = nvidia_smi.gpus_and_apps()?;
        Ok(Self::from_parts(states, apps))
    }

    /// Puts each compute app with its GPU; an app naming no listed GPU is dropped.
    pub fn from_parts(states: Vec<GpuState>, apps: Vec<ComputeApp>) -> Self {
        let mut gpus: Vec<HostGpu> = states
            .into_iter()
            .map(|state| HostGpu {
                state,
                apps: Vec::new(),
            })
            .collect();
        for app in apps {
            if let Some(gpu) = gpus.iter_mut().find(|g| g.state.uuid == app.gpu_uuid) {
                gpu.apps.push(app);
            }
        }
        HostGpus { gpus }
    }

    /// The GPUs no process uses.
    // Kept for the resident agent's fleet view (issue 15).
    #[allow(dead_code)]
    pub fn free(&self) -> impl Iterator<Item = &HostGpu> {
        self.gpus.iter().filter(|gpu| gpu.apps.is_empty())
    }

    /// The GPUs used by any of `pids`, with those pids' memory on each.
    pub fn used_by(&self, pids: &[u32]) -> Vec<RunGpu> {
        let pids: HashSet<u32> = pids.iter().copied().collect();
        self.gpus
            .iter()
            .filter_map(|gpu| {
                let ours: Vec<&ComputeApp> =
                    gpu.apps.iter().filter(|a| pids.contains(&a.pid)).collect();
                if ours.is_empty() {
                    return None;
                }
                let known: Vec<u64> = ours.iter().filter_map(|a| a.used_memory_bytes).collect();
                Some(RunGpu {
                    state: gpu.state.clone(),
                    run_mem_bytes: (!known.is_empty()).then(|| known.iter().sum()),
                    pids: ours.iter().map(|a| a.pid).collect(),
                })
            })
            .collect()
    }
}

/// A GPU one run uses.
#[derive(Debug, Clone, PartialEq)]
pub struct RunGpu {
    pub state: GpuState,
    /// Memory the run's own processes use on it (`None` when nvidia-smi does not say).
    pub run_mem_bytes: Option<u64>,
    /// The run's pids on it.
    pub pids: Vec<u32>,
}

/// A run's telemetry at one moment.
#[derive(Debug)]
pub struct RunSample {
    pub tree: TreeSample,
    /// The GPUs the run's processes use, in nvidia-smi's order.
    pub gpus: Vec<RunGpu>,
    /// Why the GPUs could not be read this time (`gpus` is then empty); the tree figures stand.
    pub gpu_error: Option<NvidiaSmiError>,
}

impl RunSample {
    /// The sample as metric points under `sys/` (the module doc lists the keys), only for the
    /// values that are known; none for an ended run.
    pub fn points(&self) -> Vec<(String, f64)> {
        let tree = &self.tree;
        if tree.ended {
            return Vec::new();
        }
        let mut points = Vec::new();
        let mut put = |key: String, value: Option<f64>| {
            if let Some(value) = value.filter(|v| v.is_finite()) {
                points.push((key, value));
            }
        };
        let mib = |bytes: Option<u64>| bytes.map(|b| b as f64 / MIB);
        put("sys/cpu_percent".into(), tree.cpu_percent);
        put("sys/rss_mib".into(), mib(Some(tree.rss_bytes)));
        put("sys/io_read_mib".into(), mib(tree.io_read_bytes));
        put("sys/io_write_mib".into(), mib(tree.io_write_bytes));
        put("sys/procs".into(), Some(f64::from(tree.processes)));
        put("sys/threads".into(), Some(tree.threads as f64));
        for gpu in &self.gpus {
            let state = &gpu.state;
            let key = |name: &str| format!("sys/gpu.{}/{name}", state.index);
            put(key("util_percent"), state.util_percent);
            put(key("mem_used_mib"), mib(state.mem_used_bytes));
            put(key("mem_total_mib"), mib(state.mem_total_bytes));
            put(key("run_mem_mib"), mib(gpu.run_mem_bytes));
            put(key("temp_c"), state.temp_c);
            put(key("power_w"), state.power_w);
        }
        points
    }
}

/// Samples one run: its process tree and the GPUs it uses.
#[derive(Debug)]
pub struct RunSampler {
    tree: ProcessTreeSampler,
    config: SamplerConfig,
}

impl RunSampler {
    /// A sampler of the run whose root process has `root_pid` now.
    pub fn new(root_pid: u32, config: SamplerConfig) -> Self {
        RunSampler {
            tree: ProcessTreeSampler::new(root_pid),
            config,
        }
    }

    /// A sampler of the run whose root process is `root` (`None`: gone, every sample ended).
    pub fn for_process(root: Option<ProcessId>, config: SamplerConfig) -> Self {
        RunSampler {
            tree: ProcessTreeSampler::for_process(root),
            config,
        }
    }

    /// The run's root process (`None` when it was gone before the sampler was made).
    // Kept for the resident agent (issue 15), which follows runs it did not start.
    #[allow(dead_code)]
    pub fn root(&self) -> Option<ProcessId> {
        self.tree.root()
    }

    /// Samples the tree, then asks nvidia-smi (when configured) for the GPUs it uses.
    pub fn sample(&mut self, now: Instant) -> RunSample {
        let tree = self.tree.sample(now);
        let host = match &self.config.nvidia_smi {
            Some(smi) if !tree.ended => Some(HostGpus::query(smi)),
            _ => None,
        };
        match host {
            Some(Err(error)) => RunSample {
                tree,
                gpus: Vec::new(),
                gpu_error: Some(error),
            },
            Some(Ok(host)) => Self::with_gpus(tree, Some(&host)),
            None => Self::with_gpus(tree, None),
        }
    }

    /// Samples the tree and matches it against `host`, GPUs read once for every run of the
    /// host (`None`: no GPUs); the sampler's own nvidia-smi is not run.
    pub fn sample_with(&mut self, now: Instant, host: Option<&HostGpus>) -> RunSample {
        Self::with_gpus(self.tree.sample(now), host)
    }

    /// [`RunSampler::sample_with`] with the tree taken from `table`, the host's processes read
    /// once for every run of a round.
    pub fn sample_from(
        &mut self,
        table: &ProcessTable,
        now: Instant,
        host: Option<&HostGpus>,
    ) -> RunSample {
        Self::with_gpus(self.tree.sample_from(table, now), host)
    }

    fn with_gpus(tree: TreeSample, host: Option<&HostGpus>) -> RunSample {
        let gpus = match host {
            Some(host) if !tree.ended => host.used_by(&tree.pids),
            _ => Vec::new(),
        };
        RunSample {
            tree,
            gpus,
            gpu_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::nvidia_smi::Program;
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvidia-smi")
    }

    /// The stand-in nvidia-smi for `host`, with the run's pids put in, in a temp dir.
    fn stand_in(host: &str, run_pid: u32, child_pid: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let from = fixtures();
        std::fs::copy(from.join("stand-in.sh"), dir.path().join("nvidia-smi")).expect("copy");
        for file in ["query-gpu.csv", "query-compute-apps.csv"] {
            let text = std::fs::read_to_string(from.join(host).join(file)).expect("a fixture");
            let text = text
                .replace("{RUN_PID}", &run_pid.to_string())
                .replace("{RUN_CHILD_PID}", &child_pid.to_string());
            std::fs::write(dir.path().join(file), text).expect("write fixture");
        }
        dir
    }

    fn config_with_path_first(dir: &Path) -> SamplerConfig {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        SamplerConfig {
            nvidia_smi: Some(NvidiaSmi {
                program: Program::Search(std::env::join_paths(dirs).expect("a PATH")),
                timeout: Duration::from_secs(2),
            }),
        }
    }

    /// A run: `sh` waiting for a sleeping child, killed whole at the end of the test.
    struct Run(Child);

    impl Run {
        fn start() -> Run {
            let child = Command::new("sh")
                .args(["-c", "sleep 60 & wait"])
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start sh");
            Run(child)
        }

        /// The root's pid and, once it is there, its child's.
        fn pids(&self) -> (u32, u32) {
            let mut tree = ProcessTreeSampler::new(self.0.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let sample = tree.sample(Instant::now());
                if let [root, child] = sample.pids[..] {
                    return (root, child);
                }
                assert!(Instant::now() < deadline, "no child: {sample:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Run {
        fn drop(&mut self) {
            // SAFETY: kill has no memory preconditions; the group is ours and not yet reaped.
            unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
            let _ = self.0.wait();
        }
    }

    fn point(points: &[(String, f64)], key: &str) -> Option<f64> {
        points.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    #[test]
    fn a_run_on_two_of_eight_gpus_gets_those_two() {
        let run = Run::start();
        let (root, child) = run.pids();
        let smi = stand_in("host-8gpu", root, child);
        let mut sampler = RunSampler::new(root, config_with_path_first(smi.path()));
        let sample = sampler.sample(Instant::now());
        assert!(sample.gpu_error.is_none(), "{:?}", sample.gpu_error);
        let indices: Vec<u32> = sample.gpus.iter().map(|g| g.state.index).collect();
        assert_eq!(indices, vec![2, 5]);
        let (two, five) = (&sample.gpus[0], &sample.gpus[1]);
        assert_eq!(two.pids, vec![root]);
        assert_eq!(five.pids, vec![child], "the child's GPU is the run's");
        assert_eq!(two.state.name, "NVIDIA A100-SXM4-80GB");
        assert!(two.state.uuid.starts_with("GPU-"));

        let points = sample.points();
        let expect = [
            ("sys/procs", 2.0),
            ("sys/threads", 2.0),
            ("sys/gpu.2/util_percent", 87.0),
            ("sys/gpu.2/mem_used_mib", 45690.0),
            ("sys/gpu.2/mem_total_mib", 81920.0),
            ("sys/gpu.2/run_mem_mib", 45274.0),
            ("sys/gpu.2/temp_c", 55.0),
            ("sys/gpu.2/power_w", 301.44),
            // GPU 5 is shared with another user's process: the run's memory is its own.
            ("sys/gpu.5/mem_used_mib", 40402.0),
            ("sys/gpu.5/run_mem_mib", 39472.0),
        ];
        for (key, value) in expect {
            assert_eq!(point(&points, key), Some(value), "{key} in {points:?}");
        }
        assert!(point(&points, "sys/rss_mib").is_some_and(|v| v > 0.0));
        assert!(
            point(&points, "sys/io_read_mib").is_some(),
            "own processes' io is readable"
        );
        assert!(
            point(&points, "sys/cpu_percent").is_none(),
            "a first sample has no CPU %"
        );
        assert!(points.iter().all(|(k, _)| k.starts_with("sys/")));
        assert!(
            !points.iter().any(|(k, _)| k.starts_with("sys/gpu.0/")),
            "another user's GPU is not the run's"
        );

        let second = sampler.sample(Instant::now());
        assert!(point(&second.points(), "sys/cpu_percent").is_some());
    }

    #[test]
    fn the_host_view_lists_every_gpu_and_who_uses_it() {
        let smi = stand_in("host-8gpu", 4242, 4343);
        let config = config_with_path_first(smi.path());
        let host = HostGpus::query(config.nvidia_smi.as_ref().expect("configured")).expect("GPUs");
        assert_eq!(host.gpus.len(), 8);
        let users: Vec<Vec<u32>> = host
            .gpus
            .iter()
            .map(|g| g.apps.iter().map(|a| a.pid).collect())
            .collect();
        assert_eq!(users[2], vec![4242]);
        assert_eq!(users[5], vec![4343, 99871]);
        let free: Vec<u32> = host.free().map(|g| g.state.index).collect();
        assert_eq!(free, vec![3, 4, 7]);
        assert_eq!(host.gpus[6].state.util_percent, None, "[Not Supported]");
        assert_eq!(host.gpus[7].state.power_w, None, "[N/A]");
        assert_eq!(host.gpus[7].state.temp_c, Some(31.0));
        // A run is matched through any of its pids.
        let used: Vec<u32> = host
            .used_by(&[4343])
            .iter()
            .map(|g| g.state.index)
            .collect();
        assert_eq!(used, vec![5]);
    }

    #[test]
    fn a_run_on_a_one_gpu_host() {
        let run = Run::start();
        let (root, child) = run.pids();
        let smi = stand_in("host-1gpu", root, child);
        let mut sampler = RunSampler::new(root, config_with_path_first(smi.path()));
        let points = sampler.sample(Instant::now()).points();
        assert_eq!(point(&points, "sys/gpu.0/util_percent"), Some(76.0));
        assert_eq!(point(&points, "sys/gpu.0/run_mem_mib"), Some(17702.0));
        assert_eq!(point(&points, "sys/gpu.0/power_w"), Some(287.45));
        assert_eq!(point(&points, "sys/gpu.0/mem_total_mib"), Some(24564.0));

        let host = HostGpus::query(&NvidiaSmi {
            program: Program::Path(smi.path().join("nvidia-smi")),
            timeout: Duration::from_secs(2),
        })
        .expect("GPUs");
        let shared = sampler.sample_with(Instant::now(), Some(&host));
        assert_eq!(shared.gpus.len(), 1);
        assert!(sampler.sample_with(Instant::now(), None).gpus.is_empty());
    }

    #[test]
    fn a_failing_nvidia_smi_keeps_the_tree_figures() {
        let run = Run::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("nvidia-smi");
        std::fs::write(&script, "#!/bin/sh\necho 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the NVIDIA driver.'\nexit 9\n")
            .expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut sampler = RunSampler::new(run.0.id(), config_with_path_first(dir.path()));
        let sample = sampler.sample(Instant::now());
        let error = sample.gpu_error.as_ref().expect("the failure is kept");
        assert!(
            error.to_string().contains(
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
            ),
            "{error}"
        );
        assert!(sample.gpus.is_empty());
        assert!(point(&sample.points(), "sys/procs").is_some());
    }

    #[test]
    fn an_ended_run_has_no_points_and_runs_no_nvidia_smi() {
        let mut child = Command::new("true").spawn().expect("start true");
        let pid = child.id();
        child.wait().expect("wait");
        let config = SamplerConfig {
            nvidia_smi: Some(NvidiaSmi {
                program: Program::Path("/nonexistent/nvidia-smi".into()),
                timeout: Duration::from_secs(2),
            }),
        };
        let sample = RunSampler::new(pid, config).sample(Instant::now());
        assert!(sample.tree.ended);
        assert!(sample.gpu_error.is_none(), "nvidia-smi was not asked");
        assert!(sample.points().is_empty());
    }
}

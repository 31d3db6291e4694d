//! The host-wide view on the wire: the hub's `host` request and the agent's `host_status`
//! answer (the host's GPUs, who uses each, which run those processes belong to, and the host's
//! load). Agents that answer it announce [`HOST_CAPABILITY`]; the hub asks no other agent.

use serde::{Deserialize, Serialize};

/// The capability of an agent that answers `host` with a [`HostStatus`].
pub const HOST_CAPABILITY: &str = "host";

/// Hub → agent: what this host's GPUs are doing now. No fields yet; unknown ones are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRequest {}

/// Agent → hub: one sample of the host.
///
/// Every figure the host could not tell is absent (`null`), never a made-up zero. Numbers are
/// always finite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The agent machine's hostname.
    pub hostname: String,
    /// When the sample was taken (Unix seconds, the agent's clock).
    pub sampled_at: f64,
    /// Logical CPUs online.
    #[serde(default)]
    pub cpu_count: Option<u32>,
    /// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
    #[serde(default)]
    pub load_avg: Option<[f64; 3]>,
    /// Memory of the host and what is available to new work (`/proc/meminfo`), MiB.
    #[serde(default)]
    pub mem_total_mib: Option<f64>,
    #[serde(default)]
    pub mem_available_mib: Option<f64>,
    /// Every NVIDIA GPU of the host in nvidia-smi's order; empty on a host without nvidia-smi.
    #[serde(default)]
    pub gpus: Vec<HostGpuStatus>,
    /// Why the GPUs could not be read this time (nvidia-smi failed or timed out); `gpus` is
    /// then empty. A host without nvidia-smi has no error, only no GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_error: Option<String>,
}

/// One GPU of the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostGpuStatus {
    /// nvidia-smi's index of the GPU on the host.
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// Utilisation, % (of the whole GPU, every process on it).
    #[serde(default)]
    pub util_percent: Option<f64>,
    /// Memory used (by every process) and the GPU's size, MiB.
    #[serde(default)]
    pub mem_used_mib: Option<f64>,
    #[serde(default)]
    pub mem_total_mib: Option<f64>,
    /// Temperature, °C.
    #[serde(default)]
    pub temp_c: Option<f64>,
    /// Power draw, W.
    #[serde(default)]
    pub power_w: Option<f64>,
    /// The compute processes on it, in nvidia-smi's order.
    #[serde(default)]
    pub processes: Vec<GpuProcess>,
}

/// A compute process on a GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// Its memory on this GPU, MiB.
    #[serde(default)]
    pub used_mib: Option<f64>,
    /// The running run whose process tree it is in, when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<HostRun>,
}

/// A run of the agent's root, named as the change feed names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRun {
    /// The run directory relative to the root (the run's key on this remote).
    pub dir: String,
    pub path: String,
    pub run_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_from_a_newer_agent_with_more_fields_still_reads() {
        let text = r#"{"hostname":"gpu-01","sampled_at":1.5,"future":1,
            "gpus":[{"index":3,"uuid":"GPU-1","name":"A100","util_percent":null,"watts":2,
                     "processes":[{"pid":7,"run":{"dir":"runs/a/1","path":"a","run_id":"1"}}]}]}"#;
        let status: HostStatus = serde_json::from_str(text).expect("reads");
        assert_eq!(status.gpus[0].index, 3);
        assert_eq!(status.gpus[0].processes[0].used_mib, None);
        assert_eq!(
            status.gpus[0].processes[0]
                .run
                .as_ref()
                .map(|r| r.dir.as_str()),
            Some("runs/a/1")
        );
        assert_eq!(status.load_avg, None);
        assert!(status.gpu_error.is_none());
    }
}

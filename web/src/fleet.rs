//! The fleet view (`GET /api/fleet`, `runicorn-hub fleet`): every remote with its state, its
//! host's latest sample (GPUs, their use, the run holding each, the host's load), which GPUs
//! are free, and totals. Built from the store's remotes, their host samples and the runs those
//! name, so the API and the CLI print the same thing.
//!
//! **Free GPUs.** A GPU is free when nvidia-smi lists no compute process on it and its
//! utilisation is below [`FREE_UTIL_BELOW`] % (an unknown utilisation counts as low: no process
//! uses it). A GPU of a remote that is not live counts as well, from its last sample; `stale`
//! says the sample is more than a minute old.

use std::collections::HashMap;

use runicorn_protocol::wire::{HostGpuStatus, HostRun, HostStatus};
use runicorn_store::{HostRunRow, HostSnapshot, RemoteRow, Store, StoreError};
use serde::Serialize;

use crate::dto::RemoteStateDto;

/// Utilisation, %, below which a GPU without compute processes is free.
pub const FREE_UTIL_BELOW: f64 = 10.0;
/// A sample older than this (seconds) is marked `stale`.
pub const STALE_AFTER_SECONDS: f64 = 60.0;

/// The whole fleet (`Fleet` in docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Fleet"))]
pub struct FleetDto {
    pub remotes: Vec<FleetRemoteDto>,
    pub totals: FleetTotalsDto,
    /// The free rule, for people.
    pub free_rule: String,
}

/// Counts over every remote listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "FleetTotals"))]
pub struct FleetTotalsDto {
    pub remotes: u64,
    /// Remotes with a host sample.
    pub hosts: u64,
    pub gpus: u64,
    pub free_gpus: u64,
    /// GPUs some run of the hub's remotes holds.
    pub gpus_with_runs: u64,
}

/// One remote and its host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "FleetRemote"))]
pub struct FleetRemoteDto {
    pub name: String,
    pub state: RemoteStateDto,
    /// The host's name: the sample's, else the agent's from its handshake.
    pub host: Option<String>,
    /// The last time the hub heard from the remote (Unix seconds).
    pub heard_at: Option<f64>,
    /// When the host was sampled (the agent's clock) and when the hub received it.
    pub sampled_at: Option<f64>,
    pub received_at: Option<f64>,
    /// The sample is older than a minute (the remote is offline, or its agent is slow).
    pub stale: bool,
    /// The agent cannot report its host (older than the `host` capability) or has not yet.
    pub sampled: bool,
    /// Why the agent could not read its GPUs (nvidia-smi failed or hung).
    pub gpu_error: Option<String>,
    pub cpu_count: Option<u32>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load_avg: Option<Vec<f64>>,
    pub mem_total_mib: Option<f64>,
    pub mem_available_mib: Option<f64>,
    pub gpus: Vec<FleetGpuDto>,
    pub free_gpus: u64,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "FleetGpu"))]
pub struct FleetGpuDto {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub util_percent: Option<f64>,
    pub mem_used_mib: Option<f64>,
    pub mem_total_mib: Option<f64>,
    pub temp_c: Option<f64>,
    pub power_w: Option<f64>,
    /// See the free rule.
    pub free: bool,
    /// The runs holding it (each once), in the order of their processes.
    pub runs: Vec<FleetRunDto>,
    pub processes: Vec<FleetProcessDto>,
}

/// A compute process on a GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "FleetProcess"))]
pub struct FleetProcessDto {
    pub pid: u32,
    pub used_mib: Option<f64>,
    /// The run whose process tree it is in; `null`: no run of this remote's root (another
    /// user's process, or a run the agent does not see).
    pub run: Option<FleetRunDto>,
}

/// A run holding a GPU, named as the runs API names runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "FleetRun"))]
pub struct FleetRunDto {
    /// The hub's key of the run; `null` until the run is synced.
    pub key: Option<i64>,
    /// `REMOTE/RUN_ID`, a reference `/api/runs/{run}` and `runicorn-hub ls` take.
    #[serde(rename = "ref")]
    pub run_ref: String,
    pub run_id: String,
    pub path: String,
    pub alias: Option<String>,
    /// The run directory on the remote.
    pub dir: String,
}

/// The free rule applied to one GPU.
pub fn is_free(gpu: &HostGpuStatus) -> bool {
    gpu.processes.is_empty() && gpu.util_percent.is_none_or(|u| u < FREE_UTIL_BELOW)
}

/// The fleet as the store holds it now (`now`: Unix seconds). Removed remotes are left out.
pub fn read_fleet(store: &Store, now: f64) -> Result<FleetDto, StoreError> {
    let remotes = store.remotes()?;
    let mut snapshots: HashMap<i64, HostSnapshot> = store
        .host_snapshots()?
        .into_iter()
        .map(|s| (s.remote.0, s))
        .collect();
    let mut listed = Vec::new();
    for remote in remotes.iter().filter(|r| r.removed_at.is_none()) {
        let snapshot = snapshots.remove(&remote.id.0);
        let runs = match &snapshot {
            Some(s) => {
                let dirs: Vec<&str> = run_dirs(&s.status).collect();
                store.runs_at_dirs(remote.id, &dirs)?
            }
            None => HashMap::new(),
        };
        listed.push(fleet_remote(remote, snapshot, &runs, now));
    }
    let mut totals = FleetTotalsDto {
        remotes: listed.len() as u64,
        ..FleetTotalsDto::default()
    };
    for remote in &listed {
        totals.hosts += u64::from(remote.sampled);
        totals.gpus += remote.gpus.len() as u64;
        totals.free_gpus += remote.free_gpus;
        totals.gpus_with_runs += remote.gpus.iter().filter(|g| !g.runs.is_empty()).count() as u64;
    }
    Ok(FleetDto {
        remotes: listed,
        totals,
        free_rule: format!(
            "a GPU is free when no compute process uses it and its utilisation is below {FREE_UTIL_BELOW} %"
        ),
    })
}

fn run_dirs(status: &HostStatus) -> impl Iterator<Item = &str> {
    status
        .gpus
        .iter()
        .flat_map(|g| &g.processes)
        .filter_map(|p| Some(p.run.as_ref()?.dir.as_str()))
}

fn fleet_remote(
    remote: &RemoteRow,
    snapshot: Option<HostSnapshot>,
    runs: &HashMap<String, HostRunRow>,
    now: f64,
) -> FleetRemoteDto {
    let state: RemoteStateDto = remote.state(now).into();
    let mut dto = FleetRemoteDto {
        name: remote.name.clone(),
        state,
        host: remote.agent_host.clone(),
        heard_at: remote.heard_at,
        sampled_at: None,
        received_at: None,
        stale: false,
        sampled: false,
        gpu_error: None,
        cpu_count: None,
        load_avg: None,
        mem_total_mib: None,
        mem_available_mib: None,
        gpus: Vec::new(),
        free_gpus: 0,
    };
    let Some(snapshot) = snapshot else {
        return dto;
    };
    let status = snapshot.status;
    let run_dto = |run: &HostRun| {
        let stored = runs.get(&run.dir);
        FleetRunDto {
            key: stored.map(|r| r.key.0),
            run_ref: format!(
                "{}/{}",
                remote.name,
                stored.map_or(run.run_id.as_str(), |r| r.run_id.as_str())
            ),
            run_id: stored.map_or_else(|| run.run_id.clone(), |r| r.run_id.clone()),
            path: stored.map_or_else(|| run.path.clone(), |r| r.path.clone()),
            alias: stored.and_then(|r| r.alias.clone()),
            dir: run.dir.clone(),
        }
    };
    dto.gpus = status
        .gpus
        .iter()
        .map(|gpu| {
            let processes: Vec<FleetProcessDto> = gpu
                .processes
                .iter()
                .map(|p| FleetProcessDto {
                    pid: p.pid,
                    used_mib: p.used_mib,
                    run: p.run.as_ref().map(run_dto),
                })
                .collect();
            let mut holders: Vec<FleetRunDto> = Vec::new();
            for run in processes.iter().filter_map(|p| p.run.as_ref()) {
                if !holders.iter().any(|h| h.dir == run.dir) {
                    holders.push(run.clone());
                }
            }
            FleetGpuDto {
                index: gpu.index,
                uuid: gpu.uuid.clone(),
                name: gpu.name.clone(),
                util_percent: gpu.util_percent,
                mem_used_mib: gpu.mem_used_mib,
                mem_total_mib: gpu.mem_total_mib,
                temp_c: gpu.temp_c,
                power_w: gpu.power_w,
                free: is_free(gpu),
                runs: holders,
                processes,
            }
        })
        .collect();
    dto.free_gpus = dto.gpus.iter().filter(|g| g.free).count() as u64;
    dto.host = Some(status.hostname.clone())
        .filter(|h| !h.is_empty())
        .or(dto.host);
    dto.sampled_at = Some(status.sampled_at);
    dto.received_at = Some(snapshot.received_at);
    dto.stale = now - snapshot.received_at > STALE_AFTER_SECONDS;
    dto.sampled = true;
    dto.gpu_error = status.gpu_error;
    dto.cpu_count = status.cpu_count;
    dto.load_avg = status.load_avg.map(|l| l.to_vec());
    dto.mem_total_mib = status.mem_total_mib;
    dto.mem_available_mib = status.mem_available_mib;
    dto
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(util: Option<f64>, processes: usize) -> HostGpuStatus {
        HostGpuStatus {
            util_percent: util,
            processes: (0..processes)
                .map(|i| runicorn_protocol::wire::GpuProcess {
                    pid: i as u32 + 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_free_rule() {
        assert!(is_free(&gpu(Some(0.0), 0)));
        assert!(is_free(&gpu(Some(9.9), 0)));
        assert!(is_free(&gpu(None, 0)), "unknown utilisation, nobody on it");
        assert!(
            !is_free(&gpu(Some(10.0), 0)),
            "busy without a compute process"
        );
        assert!(!is_free(&gpu(Some(0.0), 1)), "a process holds it");
    }
}

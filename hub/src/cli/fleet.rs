//! `runicorn-hub fleet`: every remote's host and its GPUs (use, memory, temperature, power, the
//! run holding each), free GPUs at a glance, from the latest host samples in the store: the
//! same view as `GET /api/fleet` (`--json` prints exactly its answer). Works offline: a remote
//! that is not live shows what was last heard.

use std::io::Write;
use std::path::PathBuf;

use runicorn_cli::color::{BOLD, BOLD_YELLOW};
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::{color_stdout, paint, safe, safe_lines, time};
use runicorn_web::fleet::{read_fleet, FleetDto, FleetGpuDto, FleetRemoteDto};

#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// Print the fleet as JSON (the same object as `GET /api/fleet`) instead of tables
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: FleetArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    let now = runicorn_cli::now();
    let fleet = rt.block_on(store.call(move |s| read_fleet(s, now)))??;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &fleet)?;
        writeln!(out)?;
        return Ok(0);
    }
    write_tables(&mut out, &fleet, color_stdout())?;
    Ok(0)
}

fn when(t: Option<f64>) -> String {
    time::local_second(t).unwrap_or_else(|| "never".into())
}

fn write_tables(out: &mut impl Write, fleet: &FleetDto, color: bool) -> std::io::Result<()> {
    if fleet.remotes.is_empty() {
        writeln!(
            out,
            "no remotes yet; add one with `runicorn-hub connect HOST`"
        )?;
        return Ok(());
    }
    let totals = &fleet.totals;
    writeln!(
        out,
        "{}",
        paint(
            color,
            BOLD,
            &format!(
                "{} of {} GPUs free on {} remote{}",
                totals.free_gpus,
                totals.gpus,
                totals.remotes,
                if totals.remotes == 1 { "" } else { "s" }
            )
        )
    )?;
    writeln!(out, "({})", fleet.free_rule)?;
    for remote in &fleet.remotes {
        writeln!(out)?;
        write_remote(out, remote, color)?;
    }
    Ok(())
}

fn write_remote(out: &mut impl Write, remote: &FleetRemoteDto, color: bool) -> std::io::Result<()> {
    let state = serde_json::to_value(remote.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    writeln!(
        out,
        "{}  {}  host {}  last heard {}",
        paint(color, BOLD, &safe(&remote.name)),
        state,
        safe(remote.host.as_deref().unwrap_or("?")),
        when(remote.heard_at)
    )?;
    if !remote.sampled {
        writeln!(
            out,
            "  no host sample yet (the agent reports its GPUs from the version with the `host` capability on)"
        )?;
        return Ok(());
    }
    let mut load = format!("  sampled {}", when(remote.sampled_at));
    if remote.stale {
        load.push_str(" (stale)");
    }
    if let (Some(cpus), Some([one, ..])) = (remote.cpu_count, remote.load_avg.as_deref()) {
        load.push_str(&format!(", {cpus} CPUs, load {one:.2}"));
    }
    if let (Some(total), Some(available)) = (remote.mem_total_mib, remote.mem_available_mib) {
        load.push_str(&format!(
            ", memory {:.1} of {:.1} GiB free",
            available / 1024.0,
            total / 1024.0
        ));
    }
    writeln!(out, "{load}")?;
    if let Some(error) = &remote.gpu_error {
        writeln!(
            out,
            "  {}: {}",
            paint(color, BOLD_YELLOW, "GPUs unreadable"),
            safe_lines(error)
        )?;
    }
    if remote.gpus.is_empty() {
        if remote.gpu_error.is_none() {
            writeln!(out, "  no GPUs (no nvidia-smi on the host)")?;
        }
        return Ok(());
    }
    let mut table = Table::new(&[
        ("  GPU", Align::Right),
        ("NAME", Align::Left),
        ("UTIL", Align::Right),
        ("MEMORY", Align::Right),
        ("TEMP", Align::Right),
        ("POWER", Align::Right),
        ("HELD BY", Align::Left),
    ]);
    for gpu in &remote.gpus {
        table.push(gpu_row(gpu));
    }
    table.write(out, color)
}

fn gpu_row(gpu: &FleetGpuDto) -> Vec<Cell> {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let memory = match (gpu.mem_used_mib, gpu.mem_total_mib) {
        (Some(used), Some(total)) => format!("{:.1}/{:.1} GiB", used / 1024.0, total / 1024.0),
        (Some(used), None) => format!("{:.1} GiB", used / 1024.0),
        _ => "-".into(),
    };
    let held_by = if gpu.free {
        Cell::painted("free", "32")
    } else if gpu.runs.is_empty() {
        Cell::from(format!(
            "{} other process{}",
            gpu.processes.len(),
            if gpu.processes.len() == 1 { "" } else { "es" }
        ))
    } else {
        let names: Vec<String> = gpu
            .runs
            .iter()
            .map(|r| {
                let alias = r.alias.as_deref().map(|a| format!(" ({})", safe(a)));
                format!("{}{}", safe(&r.run_ref), alias.unwrap_or_default())
            })
            .collect();
        Cell::from(names.join(", "))
    };
    vec![
        Cell::from(format!("  {}", gpu.index)),
        Cell::from(safe(&gpu.name).into_owned()),
        Cell::from(or_dash(gpu.util_percent.map(|u| format!("{u:.0} %")))),
        Cell::from(memory),
        Cell::from(or_dash(gpu.temp_c.map(|t| format!("{t:.0} °C")))),
        Cell::from(or_dash(gpu.power_w.map(|p| format!("{p:.0} W")))),
        held_by,
    ]
}

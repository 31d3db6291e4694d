//! The host's load, as cheap as it comes: CPUs online, the load averages (`/proc/loadavg`) and
//! memory (`MemTotal` and `MemAvailable` of `/proc/meminfo`). What cannot be read is `None`.

const MIB: f64 = 1024.0 * 1024.0;

/// The host's load at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostLoad {
    pub cpu_count: Option<u32>,
    /// 1, 5 and 15 minutes.
    pub load_avg: Option<[f64; 3]>,
    pub mem_total_mib: Option<f64>,
    pub mem_available_mib: Option<f64>,
}

impl HostLoad {
    /// Reads the host's load now.
    pub fn read() -> Self {
        // SAFETY: sysconf only reads a configuration value; it has no preconditions.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (mem_total_mib, mem_available_mib) = parse_meminfo(&meminfo);
        HostLoad {
            cpu_count: u32::try_from(cpus).ok().filter(|&n| n > 0),
            load_avg: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|text| parse_loadavg(&text)),
            mem_total_mib,
            mem_available_mib,
        }
    }
}

/// The three load averages of `/proc/loadavg` (`0.52 0.58 0.59 1/467 12345`).
fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
    let mut next = || fields.next()?.ok().filter(|v| v.is_finite());
    Some([next()?, next()?, next()?])
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo` (in kB there), MiB.
fn parse_meminfo(text: &str) -> (Option<f64>, Option<f64>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|kb| kb as f64 * 1024.0 / MIB)
    };
    (field("MemTotal"), field("MemAvailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        assert_eq!(
            parse_loadavg("0.52 0.58 1.50 1/467 12345\n"),
            Some([0.52, 0.58, 1.5])
        );
        assert_eq!(parse_loadavg("garbage"), None);
        let meminfo = "MemTotal:       16384000 kB\nMemFree:  1 kB\nMemAvailable:    8192000 kB\n";
        assert_eq!(parse_meminfo(meminfo), (Some(16000.0), Some(8000.0)));
        assert_eq!(parse_meminfo(""), (None, None));
    }

    #[test]
    fn this_host_has_a_load() {
        let load = HostLoad::read();
        assert!(load.cpu_count.is_some_and(|n| n >= 1));
        let (total, available) = (load.mem_total_mib.unwrap(), load.mem_available_mib.unwrap());
        assert!(total > 0.0 && available <= total, "{load:?}");
        assert!(load.load_avg.is_some());
    }
}

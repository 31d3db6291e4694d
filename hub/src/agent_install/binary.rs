//! The agent file to upload, found on this machine: `--agent-binary` (or
//! `RUNICORN_AGENT_BINARY`), else `runicorn-agent-<arch>-linux` beside the hub's executable (where
//! the laptop wheel puts it), else `../portable/runicorn-agent` from the hub's directory (a
//! checkout after `scripts/build-agent.sh`, x86_64 only). It must be an ELF executable for the
//! server's architecture: its header is checked before anything is sent.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::InstallError;

/// A server's system, from `uname -s` and `uname -m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    /// The ELF `e_machine` of an agent for this platform; `None` when none is made for it.
    fn elf_machine(&self) -> Option<u16> {
        if self.os != "Linux" {
            return None;
        }
        match self.arch.as_str() {
            "x86_64" | "amd64" => Some(EM_X86_64),
            "aarch64" | "arm64" => Some(EM_AARCH64),
            _ => None,
        }
    }

    /// The architecture in the name of a bundled agent (`x86_64`, `aarch64`).
    fn canonical_arch(&self) -> &str {
        match self.arch.as_str() {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            other => other,
        }
    }
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The name of the ELF machine `machine`, for messages.
fn machine_name(machine: u16) -> String {
    match machine {
        EM_X86_64 => "x86_64".to_owned(),
        EM_AARCH64 => "aarch64".to_owned(),
        3 => "i386".to_owned(),
        40 => "arm".to_owned(),
        243 => "riscv".to_owned(),
        other => format!("machine {other}"),
    }
}

/// Where the agent for `platform` is looked for, in order. `explicit` (the flag or its
/// environment variable) is the only candidate when given.
pub fn candidates(explicit: Option<&Path>, hub_exe: &Path, platform: &Platform) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_owned()];
    }
    let Some(dir) = hub_exe.parent() else {
        return Vec::new();
    };
    if platform.elf_machine().is_none() {
        return Vec::new();
    }
    let mut found = vec![dir.join(format!(
        "runicorn-agent-{}-linux",
        platform.canonical_arch()
    ))];
    if platform.canonical_arch() == "x86_64" {
        found.push(dir.join("../portable/runicorn-agent"));
    }
    found
}

/// Chooses the agent to install on `remote` (of `platform`): the first candidate that exists,
/// checked to be an ELF executable for that platform.
pub fn choose(
    explicit: Option<&Path>,
    hub_exe: &Path,
    platform: &Platform,
    remote: &str,
) -> Result<PathBuf, InstallError> {
    let looked = candidates(explicit, hub_exe, platform);
    let Some(path) = looked.iter().find(|p| p.is_file()).cloned() else {
        if let Some(path) = explicit {
            return Err(InstallError::LocalRead {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        return Err(InstallError::NoAgentFor {
            remote: remote.to_owned(),
            os: platform.os.clone(),
            arch: platform.arch.clone(),
            looked,
        });
    };
    let wrong = |reason: String| InstallError::WrongBinary {
        remote: remote.to_owned(),
        path: path.clone(),
        os: platform.os.clone(),
        arch: platform.arch.clone(),
        reason,
    };
    let Some(want) = platform.elf_machine() else {
        return Err(wrong(format!(
            "runicorn-agent runs on Linux (x86_64, aarch64), not on {} {}",
            platform.os, platform.arch
        )));
    };
    let mut header = Vec::with_capacity(ELF_HEADER_CHECKED);
    std::fs::File::open(&path)
        .and_then(|f| f.take(ELF_HEADER_CHECKED as u64).read_to_end(&mut header))
        .map_err(|source| InstallError::LocalRead {
            path: path.clone(),
            source,
        })?;
    check_elf_header(&header, want).map_err(wrong)?;
    Ok(path)
}

/// Bytes of the ELF header read: identification (16), type (2), machine (2).
const ELF_HEADER_CHECKED: usize = 20;

/// Checks the start of a file: a 64-bit little-endian ELF executable for `machine`.
fn check_elf_header(header: &[u8], machine: u16) -> Result<(), String> {
    if !header.starts_with(b"\x7fELF") {
        let what = if header.starts_with(b"#!") {
            "a script"
        } else {
            "not an ELF file"
        };
        return Err(format!("it is {what}, not a runicorn-agent executable"));
    }
    if header.len() < ELF_HEADER_CHECKED {
        return Err("it is too short to be an executable".to_owned());
    }
    if header[4] != 2 || header[5] != 1 {
        return Err("it is not a 64-bit little-endian ELF executable".to_owned());
    }
    let found = u16::from_le_bytes([header[18], header[19]]);
    if found != machine {
        return Err(format!(
            "it is built for {}, the server is {}",
            machine_name(found),
            machine_name(machine)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(arch: &str) -> Platform {
        Platform {
            os: "Linux".into(),
            arch: arch.into(),
        }
    }

    fn elf(machine: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn the_lookup_order_is_flag_then_beside_the_hub_then_the_portable_build() {
        let hub = Path::new("/venv/bin/runicorn-hub");
        assert_eq!(
            candidates(Some(Path::new("/x/agent")), hub, &linux("x86_64")),
            vec![PathBuf::from("/x/agent")]
        );
        assert_eq!(
            candidates(None, hub, &linux("x86_64")),
            vec![
                PathBuf::from("/venv/bin/runicorn-agent-x86_64-linux"),
                PathBuf::from("/venv/bin/../portable/runicorn-agent"),
            ]
        );
        assert_eq!(
            candidates(None, hub, &linux("arm64")),
            vec![PathBuf::from("/venv/bin/runicorn-agent-aarch64-linux")]
        );
        let mac = Platform {
            os: "Darwin".into(),
            arch: "arm64".into(),
        };
        assert!(candidates(None, hub, &mac).is_empty());
        assert!(candidates(None, hub, &linux("riscv64")).is_empty());
    }

    #[test]
    fn only_an_elf_for_the_servers_machine_passes() {
        assert!(check_elf_header(&elf(EM_X86_64), EM_X86_64).is_ok());
        let arm = check_elf_header(&elf(EM_AARCH64), EM_X86_64).unwrap_err();
        assert!(arm.contains("aarch64") && arm.contains("x86_64"), "{arm}");
        let mut script = [b' '; 20];
        script[..2].copy_from_slice(b"#!");
        assert!(check_elf_header(&script, EM_X86_64)
            .unwrap_err()
            .contains("script"));
        let mut thirty_two = elf(EM_X86_64);
        thirty_two[4] = 1;
        assert!(check_elf_header(&thirty_two, EM_X86_64).is_err());
    }

    #[test]
    fn choosing_names_the_platform_when_nothing_fits() {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path().join("bin/runicorn-hub");
        let err = choose(None, &hub, &linux("aarch64"), "gpu").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Linux aarch64") && text.contains("gpu"),
            "{text}"
        );
        assert!(text.contains("--agent-binary"), "{text}");

        let file = dir.path().join("agent");
        std::fs::write(&file, elf(EM_AARCH64)).unwrap();
        let err = choose(Some(&file), &hub, &linux("x86_64"), "gpu").unwrap_err();
        assert!(matches!(err, InstallError::WrongBinary { .. }), "{err}");
        assert!(choose(Some(&file), &hub, &linux("aarch64"), "gpu").is_ok());
        std::fs::write(&file, b"\x7fELF\x02\x01").unwrap();
        let err = choose(Some(&file), &hub, &linux("aarch64"), "gpu").unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
    }
}

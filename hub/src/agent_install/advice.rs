//! The exact command that installs the agent on a remote, as the user would type it again with
//! the options the remote was reached with, and the errors rewritten to carry it.

use crate::remote_address::RemoteAddress;
use crate::ssh::shell_quote;
use crate::sync::SyncError;

/// `runicorn-hub connect TARGET [-p P] [-i KEY] [-J JUMP] [--root DIR] [--name NAME]
/// --install-agent`; `None` for a local root or an explicit `--agent` path, which
/// `--install-agent` does not serve.
pub fn install_command(address: &RemoteAddress, name: &str) -> Option<String> {
    let RemoteAddress::Ssh {
        target,
        port,
        identity,
        jump,
        agent: None,
        root,
        ..
    } = address
    else {
        return None;
    };
    let mut words = vec![
        "runicorn-hub".to_owned(),
        "connect".to_owned(),
        shell_quote(target),
    ];
    if let Some(port) = port {
        words.push(format!("-p {port}"));
    }
    if let Some(identity) = identity {
        words.push(format!(
            "-i {}",
            shell_quote(&identity.display().to_string())
        ));
    }
    if let Some(jump) = jump {
        words.push(format!("-J {}", shell_quote(jump)));
    }
    if let Some(root) = root {
        words.push(format!("--root {}", shell_quote(root)));
    }
    if name != address.default_name() {
        words.push(format!("--name {}", shell_quote(name)));
    }
    words.push("--install-agent".to_owned());
    Some(words.join(" "))
}

/// `error` (a missing, unusable or older agent) with the exact install command in its advice.
pub fn with_install_command(error: SyncError, address: &RemoteAddress, name: &str) -> SyncError {
    let Some(command) = install_command(address, name) else {
        return error;
    };
    match error {
        SyncError::AgentMissing { remote, message } => {
            let said = message
                .split_once(". It said: ")
                .map(|(_, s)| format!(" It said: {s}"))
                .unwrap_or_default();
            SyncError::AgentMissing {
                message: format!(
                    "runicorn-agent was not found on {remote} (looked on PATH and in ~/.runicorn/bin). Install it with:\n  {command}\n(it uploads the agent that comes with this hub), or copy the portable agent to ~/.runicorn/bin/runicorn-agent there, or pass --agent PATH.{said}"
                ),
                remote,
            }
        }
        SyncError::AgentExited {
            remote,
            status: Some(126),
            stderr,
        } => SyncError::AgentMissing {
            message: format!(
                "runicorn-agent on {remote} cannot be executed (exit 126: built for another platform, or not executable). Replace it with:\n  {command}{}",
                if stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!("\nIt said: {}", stderr.trim())
                }
            ),
            remote,
        },
        SyncError::ProtocolMismatch {
            remote,
            agent,
            agent_versions,
            ..
        } => SyncError::ProtocolMismatch {
            remote,
            agent,
            agent_versions,
            advice: format!("upgrade the agent; this installs the hub's own:\n  {command}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_repeats_the_options_the_remote_was_reached_with() {
        let mut address = RemoteAddress::parse("me@gpu-01").unwrap();
        assert_eq!(
            install_command(&address, "gpu-01").as_deref(),
            Some("runicorn-hub connect me@gpu-01 --install-agent")
        );
        if let RemoteAddress::Ssh {
            port,
            jump,
            root,
            identity,
            ..
        } = &mut address
        {
            *port = Some(2222);
            *jump = Some("bastion".into());
            *root = Some("/data/my runs".into());
            *identity = Some("/home/me/.ssh/id_gpu".into());
        }
        assert_eq!(
            install_command(&address, "box").as_deref(),
            Some("runicorn-hub connect me@gpu-01 -p 2222 -i /home/me/.ssh/id_gpu -J bastion --root '/data/my runs' --name box --install-agent")
        );
        let local = RemoteAddress::parse("local:/tmp").unwrap();
        assert_eq!(install_command(&local, "local"), None);
    }

    #[test]
    fn a_missing_agent_gets_the_command() {
        let address = RemoteAddress::parse("gpu").unwrap();
        let error = SyncError::AgentMissing {
            remote: "gpu".into(),
            message: "runicorn-agent was not found on gpu. It said: sh: not found".into(),
        };
        let text = with_install_command(error, &address, "gpu").to_string();
        assert!(
            text.contains("runicorn-hub connect gpu --install-agent"),
            "{text}"
        );
        assert!(text.contains("It said: sh: not found"), "{text}");
    }
}

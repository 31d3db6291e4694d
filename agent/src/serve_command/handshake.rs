//! The handshake: the hub's `hello` must come first and speak a protocol version this agent
//! knows. The answer names the version chosen and what the hub needs to know of this agent
//! (its root, host, index epoch and frame limit). Refusals say which side to upgrade; their
//! message begins `no common protocol version: this is <software> (protocol <name>, versions
//! [<v>, …])`, which the hub reads to tell an older agent from a newer one (docs/protocol.md).

use runicorn_protocol::wire::{
    ErrorBody, ErrorCode, Hello, CAPABILITIES, MIN_MAX_FRAME_BYTES, PROTOCOL_NAME,
    PROTOCOL_VERSION, RESIDENT_CAPABILITY,
};

/// What this agent announces.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub root: String,
    pub host: String,
    pub epoch: String,
    /// Largest frame this agent accepts.
    pub max_frame_bytes: u32,
    /// The session is served by the resident agent (`runicorn-agent daemon`): the answer adds
    /// the `resident` capability.
    pub resident: bool,
}

/// Debug builds only: `RUNICORN_AGENT_TEST_PROTOCOL_VERSION=N` makes this agent speak protocol
/// version N instead of its own, so the tests can play an older or a newer agent.
#[cfg(debug_assertions)]
const TEST_VERSION_ENV: &str = "RUNICORN_AGENT_TEST_PROTOCOL_VERSION";

/// The protocol version this agent speaks.
pub fn protocol_version() -> u32 {
    #[cfg(debug_assertions)]
    if let Some(v) = std::env::var(TEST_VERSION_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return v;
    }
    PROTOCOL_VERSION
}

/// This agent's program name and version.
pub fn software() -> String {
    format!("runicorn-agent/{}", env!("CARGO_PKG_VERSION"))
}

/// The agreed session: the answer to send and the hub's frame limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub answer: Hello,
    pub hub_max_frame_bytes: u32,
}

/// Checks the hub's `hello` and builds the answer, or the error to send before exiting.
pub fn negotiate(hub: &Hello, me: &AgentIdentity) -> Result<Agreement, ErrorBody> {
    negotiate_as(protocol_version(), hub, me)
}

/// `negotiate` for an agent speaking `version`.
fn negotiate_as(version: u32, hub: &Hello, me: &AgentIdentity) -> Result<Agreement, ErrorBody> {
    let ours = format!(
        "{} (protocol {PROTOCOL_NAME}, versions [{version}])",
        software()
    );
    let theirs = format!(
        "{} (protocol {}, versions {:?})",
        hub.software, hub.protocol, hub.versions
    );
    if hub.protocol != PROTOCOL_NAME {
        return Err(ErrorBody {
            code: ErrorCode::Incompatible,
            message: format!(
                "this is {ours}; the peer {theirs} speaks another protocol: connect with runicorn-hub"
            ),
        });
    }
    if !hub.versions.contains(&version) {
        let advice = if hub.versions.iter().all(|&v| v > version) && !hub.versions.is_empty() {
            "upgrade runicorn-agent on this host (`runicorn-hub connect HOST --install-agent` \
             installs the hub's own)"
        } else {
            "upgrade runicorn-hub on the laptop"
        };
        return Err(ErrorBody {
            code: ErrorCode::Incompatible,
            message: format!(
                "no common protocol version: this is {ours}, the hub is {theirs}; {advice}"
            ),
        });
    }
    if hub.max_frame_bytes < MIN_MAX_FRAME_BYTES {
        return Err(ErrorBody {
            code: ErrorCode::BadRequest,
            message: format!(
                "the hub {theirs} announces max_frame_bytes {} below the protocol's minimum {MIN_MAX_FRAME_BYTES}",
                hub.max_frame_bytes
            ),
        });
    }
    let mut capabilities: Vec<String> = CAPABILITIES.iter().map(|c| (*c).to_owned()).collect();
    if me.resident {
        capabilities.push(RESIDENT_CAPABILITY.to_owned());
    }
    Ok(Agreement {
        answer: Hello {
            protocol: PROTOCOL_NAME.to_owned(),
            versions: vec![version],
            capabilities,
            software: software(),
            max_frame_bytes: me.max_frame_bytes,
            root: Some(me.root.clone()),
            host: Some(me.host.clone()),
            epoch: Some(me.epoch.clone()),
        },
        hub_max_frame_bytes: hub.max_frame_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> AgentIdentity {
        AgentIdentity {
            root: "/data/runicorn".into(),
            host: "gpu-01".into(),
            epoch: "e1".into(),
            max_frame_bytes: 16 << 20,
            resident: false,
        }
    }

    fn hub(versions: Vec<u32>) -> Hello {
        Hello {
            protocol: PROTOCOL_NAME.into(),
            versions,
            capabilities: vec![],
            software: "runicorn-hub/9.9.9".into(),
            max_frame_bytes: 4 << 20,
            root: None,
            host: None,
            epoch: None,
        }
    }

    #[test]
    fn a_common_version_is_chosen_and_the_answer_is_complete() {
        let a = negotiate(&hub(vec![1, 2]), &me()).unwrap();
        assert_eq!(a.answer.versions, vec![PROTOCOL_VERSION]);
        assert_eq!(a.hub_max_frame_bytes, 4 << 20);
        assert_eq!(a.answer.epoch.as_deref(), Some("e1"));
        assert_eq!(a.answer.root.as_deref(), Some("/data/runicorn"));
        assert!(a.answer.capabilities.iter().any(|c| c == "changes"));
        assert!(a.answer.software.starts_with("runicorn-agent/"));
        assert!(!a.answer.capabilities.iter().any(|c| c == "resident"));
        let resident = AgentIdentity {
            resident: true,
            ..me()
        };
        let b = negotiate(&hub(vec![1]), &resident).unwrap();
        assert!(b.answer.capabilities.iter().any(|c| c == "resident"));
    }

    #[test]
    fn refusals_name_both_sides_and_what_to_upgrade() {
        let newer = negotiate(&hub(vec![7, 8]), &me()).unwrap_err();
        assert_eq!(newer.code, ErrorCode::Incompatible);
        assert!(newer.message.contains("[7, 8]") && newer.message.contains("[1]"));
        assert!(
            newer.message.contains("upgrade runicorn-agent"),
            "{}",
            newer.message
        );
        let older = negotiate(&hub(vec![0]), &me()).unwrap_err();
        assert!(
            older.message.contains("upgrade runicorn-hub"),
            "{}",
            older.message
        );
        let mut other = hub(vec![1]);
        other.protocol = "ftp".into();
        assert_eq!(
            negotiate(&other, &me()).unwrap_err().code,
            ErrorCode::Incompatible
        );
        let mut tiny = hub(vec![1]);
        tiny.max_frame_bytes = 100;
        assert_eq!(
            negotiate(&tiny, &me()).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn an_older_agent_says_so_in_the_form_the_hub_reads() {
        let old =
            negotiate_as(PROTOCOL_VERSION - 1, &hub(vec![PROTOCOL_VERSION]), &me()).unwrap_err();
        let expected = format!(
            "no common protocol version: this is {} (protocol {PROTOCOL_NAME}, versions [{}])",
            software(),
            PROTOCOL_VERSION - 1
        );
        assert!(old.message.starts_with(&expected), "{}", old.message);
        assert!(old.message.contains("--install-agent"), "{}", old.message);
        let agreed = negotiate_as(7, &hub(vec![7]), &me()).unwrap();
        assert_eq!(agreed.answer.versions, vec![7]);
    }

    #[test]
    #[cfg(debug_assertions)]
    fn the_protocol_version_is_the_crates_unless_a_debug_test_overrides_it() {
        if std::env::var_os(TEST_VERSION_ENV).is_none() {
            assert_eq!(protocol_version(), PROTOCOL_VERSION);
        }
    }
}

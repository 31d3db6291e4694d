//! Reading the hub's frames from stdin: a thread that decodes each frame and hands it to the
//! worker in order. A frame that cannot be trusted (too large, not JSON, an unknown message)
//! ends the stream: the worker answers it with an error and the agent exits with code 2.

use std::io::Read;
use std::sync::mpsc::Sender;
use std::time::Duration;

use runicorn_protocol::wire::frame::read_frame_payload;
use runicorn_protocol::wire::{decode_payload, Envelope, ErrorCode, FrameError};

/// How long the reader lets the worker finish after the hub closed stdin, before it ends the
/// process itself (a scan in progress must not keep a closed session alive).
const EXIT_GRACE: Duration = Duration::from_millis(700);

/// What the reader hands the worker.
#[derive(Debug)]
pub enum Incoming {
    Request(Envelope),
    /// A frame that cannot be trusted: answer with this error, then exit with code 2.
    Broken {
        id: u64,
        code: ErrorCode,
        message: String,
    },
    /// The hub closed its side (stdin at its end).
    Closed,
}

/// Reads and decodes one frame.
pub fn read_one(reader: &mut impl Read, max_bytes: u32) -> Incoming {
    let payload = match read_frame_payload(reader, max_bytes) {
        Ok(p) => p,
        Err(FrameError::Closed) => return Incoming::Closed,
        Err(e @ FrameError::Truncated { .. }) | Err(e @ FrameError::Io(_)) => {
            eprintln!("runicorn-agent: reading the hub's frames: {e}; ending the session");
            return Incoming::Closed;
        }
        Err(e @ FrameError::Oversized { .. }) => {
            return Incoming::Broken {
                id: 0,
                code: ErrorCode::TooLarge,
                message: e.to_string(),
            }
        }
        Err(e) => {
            return Incoming::Broken {
                id: 0,
                code: ErrorCode::BadRequest,
                message: e.to_string(),
            }
        }
    };
    match decode_payload(&payload) {
        Ok(envelope) => Incoming::Request(envelope),
        Err(e) => Incoming::Broken {
            // An unknown message type still names its id when the JSON is sound.
            id: request_id(&payload).unwrap_or(0),
            code: ErrorCode::BadRequest,
            message: format!(
                "{e}; this agent (runicorn-agent/{}) does not know this message: upgrade runicorn-agent on this host",
                env!("CARGO_PKG_VERSION")
            ),
        },
    }
}

fn request_id(payload: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()?
        .get("id")?
        .as_u64()
}

/// Starts the reader thread: frames go to `to_worker` until the stream ends or breaks.
/// `exit_process_on_close`: the hub closing the stream ends the process (after a grace period),
/// as for `serve --stdio`; the resident agent only ends that session.
pub fn spawn_reader(
    mut reader: impl Read + Send + 'static,
    max_bytes: u32,
    to_worker: Sender<Incoming>,
    exit_process_on_close: bool,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("frame-reader".into())
        .spawn(move || loop {
            let incoming = read_one(&mut reader, max_bytes);
            let last = !matches!(incoming, Incoming::Request(_));
            let closed = matches!(incoming, Incoming::Closed);
            if to_worker.send(incoming).is_err() {
                return;
            }
            if last {
                if closed && exit_process_on_close {
                    std::thread::sleep(EXIT_GRACE);
                    std::process::exit(0);
                }
                return;
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::{write_frame, Body};

    #[test]
    fn frames_broken_frames_and_the_end() {
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &Envelope {
                id: 4,
                body: Body::Subscribe {},
            },
            1 << 20,
        )
        .unwrap();
        let unknown = br#"{"id":9,"body":{"teleport":{}}}"#;
        buf.extend_from_slice(&(unknown.len() as u32).to_be_bytes());
        buf.extend_from_slice(unknown);
        let mut r = buf.as_slice();
        assert!(matches!(read_one(&mut r, 1 << 20), Incoming::Request(e) if e.id == 4));
        match read_one(&mut r, 1 << 20) {
            Incoming::Broken { id, code, .. } => {
                assert_eq!((id, code), (9, ErrorCode::BadRequest))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_one(&mut r, 1 << 20), Incoming::Closed));
        let mut huge: &[u8] = &u32::MAX.to_be_bytes();
        assert!(matches!(
            read_one(&mut huge, 1 << 20),
            Incoming::Broken {
                id: 0,
                code: ErrorCode::TooLarge,
                ..
            }
        ));
        let mut not_json: &[u8] = b"\0\0\0\x03abc";
        assert!(matches!(
            read_one(&mut not_json, 1 << 20),
            Incoming::Broken { id: 0, .. }
        ));
    }
}

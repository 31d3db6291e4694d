//! The one writer of the agent's stdout: whole frames, one at a time (a mutex), never larger
//! than the limit the hub announced. Nothing else in the agent writes to stdout.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use runicorn_protocol::wire::{encode_frame, Body, Envelope, ErrorBody, ErrorCode, FrameError};

/// Why a frame was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The hub closed the stream (broken pipe): the session is over, quietly.
    #[error("the hub closed the connection")]
    Closed,
    #[error("writing to the hub: {0}")]
    Io(io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The frame writer shared by every thread that talks to the hub.
pub struct FrameWriter {
    out: Mutex<Box<dyn Write + Send>>,
    limit: AtomicU32,
}

impl FrameWriter {
    pub fn new(out: Box<dyn Write + Send>, limit: u32) -> FrameWriter {
        FrameWriter {
            out: Mutex::new(out),
            limit: AtomicU32::new(limit),
        }
    }

    /// Largest payload the hub accepts.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Encodes and sends one message.
    pub fn send(&self, message: &Envelope) -> Result<(), SendError> {
        let frame = encode_frame(message, self.limit())?;
        self.send_encoded(&frame)
    }

    /// Sends an error answer.
    pub fn send_error(&self, id: u64, code: ErrorCode, message: String) -> Result<(), SendError> {
        self.send(&Envelope {
            id,
            body: Body::Error(ErrorBody { code, message }),
        })
    }

    /// Sends a frame already encoded (prefix included) within the limit.
    pub fn send_encoded(&self, frame: &[u8]) -> Result<(), SendError> {
        // A thread that panicked while writing left at worst a partial frame; the hub sees a
        // broken stream either way, so the poisoned lock is used as it is.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let result = out.write_all(frame).and_then(|()| out.flush());
        result.map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => SendError::Closed,
            _ => SendError::Io(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::read_frame;
    use std::sync::Arc;

    /// A `Write` whose bytes stay readable by the test.
    #[derive(Clone, Default)]
    pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frames_are_written_whole_and_the_limit_holds() {
        let sink = Shared::default();
        let w = FrameWriter::new(Box::new(sink.clone()), 1 << 20);
        w.send_error(7, ErrorCode::NotFound, "x".into()).unwrap();
        let bytes = sink.0.lock().unwrap().clone();
        let env = read_frame(&mut bytes.as_slice(), 1 << 20).unwrap();
        assert_eq!(env.id, 7);
        w.set_limit(10);
        assert!(matches!(
            w.send_error(1, ErrorCode::NotFound, "long message".into()),
            Err(SendError::Frame(FrameError::Oversized { .. }))
        ));
        let broken = FrameWriter::new(Box::new(Broken), 1 << 20);
        assert!(matches!(
            broken.send_error(1, ErrorCode::Internal, "x".into()),
            Err(SendError::Closed)
        ));
    }
}

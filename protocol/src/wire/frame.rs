//! Frames: a 4-byte big-endian payload length, then that many bytes of UTF-8 JSON holding one
//! [`Envelope`]. A reader refuses a length above its maximum before reading the payload, so a
//! broken or hostile peer can never make it allocate more; the error shows the first bytes as
//! text, because a length that large is usually a shell's greeting printed where frames belong.

use std::io::{self, Read, Write};

use serde::Serialize;

use super::messages::Envelope;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    #[error("the peer closed the connection")]
    Closed,
    /// The stream ended inside a frame.
    #[error("the connection ended in the middle of a frame ({got} of {expected} bytes)")]
    Truncated { got: usize, expected: usize },
    #[error("a frame of {len} bytes is larger than the limit of {max} bytes (it starts with {preview:?}); the peer is not a compatible runicorn agent or hub, or something on the remote side (a login banner, a shell profile) printed text into the channel")]
    Oversized { len: u64, max: u32, preview: String },
    #[error("a frame is not a valid message: {cause} (it starts with {preview:?})")]
    Invalid {
        cause: serde_json::Error,
        preview: String,
    },
    #[error("cannot encode a message: {0}")]
    Encode(serde_json::Error),
    #[error("connection I/O: {0}")]
    Io(#[from] io::Error),
}

/// Printable preview of the first bytes of a frame, for error messages.
pub fn preview(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(60)];
    String::from_utf8_lossy(head).into_owned()
}

/// Encodes one message as a whole frame (prefix included).
pub fn encode_frame<T: Serialize>(message: &T, max_bytes: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; LENGTH_PREFIX_BYTES];
    serde_json::to_writer(&mut buf, message).map_err(FrameError::Encode)?;
    let len = buf.len() - LENGTH_PREFIX_BYTES;
    if len as u64 > u64::from(max_bytes) {
        return Err(FrameError::Oversized {
            len: len as u64,
            max: max_bytes,
            preview: preview(&buf[LENGTH_PREFIX_BYTES..]),
        });
    }
    // `len` fits: it is at most `max_bytes`, a u32.
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Decodes a frame payload (without its prefix).
pub fn decode_payload(payload: &[u8]) -> Result<Envelope, FrameError> {
    serde_json::from_slice(payload).map_err(|cause| FrameError::Invalid {
        cause,
        preview: preview(payload),
    })
}

/// Checks a length prefix against the limit.
pub fn check_length(
    prefix: [u8; LENGTH_PREFIX_BYTES],
    max_bytes: u32,
) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len > max_bytes {
        return Err(FrameError::Oversized {
            len: u64::from(len),
            max: max_bytes,
            preview: preview(&prefix),
        });
    }
    Ok(len as usize)
}

/// An oversized-frame error showing the prefix and the bytes read after it (the async reader
/// waits briefly for them; the blocking one cannot).
#[cfg(feature = "async-frames")]
fn with_more_preview(
    err: FrameError,
    prefix: [u8; LENGTH_PREFIX_BYTES],
    more: &[u8],
) -> FrameError {
    match err {
        FrameError::Oversized { len, max, .. } => {
            let mut shown = prefix.to_vec();
            shown.extend_from_slice(more);
            FrameError::Oversized {
                len,
                max,
                preview: preview(&shown),
            }
        }
        other => other,
    }
}

/// Reads one frame's payload from a blocking stream.
pub fn read_frame_payload(reader: &mut impl Read, max_bytes: u32) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    let got = read_full(reader, &mut prefix)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < LENGTH_PREFIX_BYTES {
        return Err(FrameError::Truncated {
            got,
            expected: LENGTH_PREFIX_BYTES,
        });
    }
    // A blocking reader shows only the prefix: reading on for a longer preview could wait
    // forever on a peer that sent a bad length and then waits itself.
    let len = check_length(prefix, max_bytes)?;
    let mut payload = vec![0u8; len];
    let got = read_full(reader, &mut payload)?;
    if got < len {
        return Err(FrameError::Truncated { got, expected: len });
    }
    Ok(payload)
}

/// Reads one message from a blocking stream.
pub fn read_frame(reader: &mut impl Read, max_bytes: u32) -> Result<Envelope, FrameError> {
    decode_payload(&read_frame_payload(reader, max_bytes)?)
}

/// Writes one message to a blocking stream and flushes it.
pub fn write_frame<T: Serialize>(
    writer: &mut impl Write,
    message: &T,
    max_bytes: u32,
) -> Result<(), FrameError> {
    let frame = encode_frame(message, max_bytes)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The same frame format on tokio streams (the hub's side; feature `async-frames`).
#[cfg(feature = "async-frames")]
pub mod async_io {
    use super::*;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Reads one frame's payload.
    pub async fn read_frame_payload<R: AsyncRead + Unpin>(
        reader: &mut R,
        max_bytes: u32,
    ) -> Result<Vec<u8>, FrameError> {
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        let got = read_full(reader, &mut prefix).await?;
        if got == 0 {
            return Err(FrameError::Closed);
        }
        if got < LENGTH_PREFIX_BYTES {
            return Err(FrameError::Truncated {
                got,
                expected: LENGTH_PREFIX_BYTES,
            });
        }
        let len = match check_length(prefix, max_bytes) {
            Ok(len) => len,
            Err(e) => {
                let mut more = [0u8; 56];
                let n = tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    read_full(reader, &mut more),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
                return Err(with_more_preview(e, prefix, &more[..n]));
            }
        };
        let mut payload = vec![0u8; len];
        let got = read_full(reader, &mut payload).await?;
        if got < len {
            return Err(FrameError::Truncated { got, expected: len });
        }
        Ok(payload)
    }

    /// Reads one message.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        reader: &mut R,
        max_bytes: u32,
    ) -> Result<Envelope, FrameError> {
        decode_payload(&read_frame_payload(reader, max_bytes).await?)
    }

    /// Writes one message and flushes it.
    pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
        writer: &mut W,
        message: &T,
        max_bytes: u32,
    ) -> Result<(), FrameError> {
        let frame = encode_frame(message, max_bytes)?;
        writer.write_all(&frame).await?;
        writer.flush().await?;
        Ok(())
    }

    async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::{Body, Envelope};

    fn ping(id: u64) -> Envelope {
        Envelope {
            id,
            body: Body::Subscribed {},
        }
    }

    #[test]
    fn frames_round_trip_and_stop_cleanly_at_the_end() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &ping(1), 1024).unwrap();
        write_frame(&mut buf, &ping(2), 1024).unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r, 1024).unwrap().id, 1);
        assert_eq!(read_frame(&mut r, 1024).unwrap().id, 2);
        assert!(matches!(read_frame(&mut r, 1024), Err(FrameError::Closed)));
    }

    #[test]
    fn a_text_greeting_is_refused_by_size_and_shown() {
        let mut r: &[u8] = b"Welcome to gpu-01! Last login: yesterday\n";
        match read_frame(&mut r, 16 << 20) {
            Err(FrameError::Oversized { preview, .. }) => assert_eq!(preview, "Welc"),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(feature = "async-frames")]
    #[tokio::test]
    async fn the_async_reader_shows_more_of_a_greeting() {
        let mut r: &[u8] = b"Welcome to gpu-01! Last login: yesterday\n";
        match async_io::read_frame(&mut r, 16 << 20).await {
            Err(FrameError::Oversized { preview, .. }) => {
                assert!(preview.starts_with("Welcome to gpu-01"), "{preview}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn torn_and_invalid_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &ping(1), 1024).unwrap();
        buf.truncate(buf.len() - 2);
        assert!(matches!(
            read_frame(&mut buf.as_slice(), 1024),
            Err(FrameError::Truncated { .. })
        ));
        let mut bad = 5u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"{nope");
        assert!(matches!(
            read_frame(&mut bad.as_slice(), 1024),
            Err(FrameError::Invalid { .. })
        ));
    }

    #[test]
    fn the_writer_enforces_the_limit_too() {
        assert!(matches!(
            encode_frame(&ping(1), 4),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[cfg(feature = "async-frames")]
    #[tokio::test]
    async fn async_frames_round_trip() {
        let mut buf = Vec::new();
        async_io::write_frame(&mut buf, &ping(9), 1024)
            .await
            .unwrap();
        let mut r = buf.as_slice();
        assert_eq!(async_io::read_frame(&mut r, 1024).await.unwrap().id, 9);
    }
}

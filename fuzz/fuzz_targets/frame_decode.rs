//! The frame reader on a hostile byte stream: the blocking `read_frame` reads frame after frame
//! from the input (handed out in small uneven pieces, with `Interrupted` errors between them)
//! until it stops, and every outcome must match what the bytes say.
//!
//! Input: one control byte (low 2 bits: the frame limit; the rest: the largest piece the stream
//! hands out, 0 = whole reads), then the stream.
//!
//! Checked: a frame read is exactly `4 + prefix` bytes, the prefix is within the limit, and the
//! message equals `decode_payload` of those bytes; what is read can be encoded, and the encoding
//! reads back to the same message; `Closed` only at the very end; `Truncated` only when the
//! stream really ends inside a frame, with the right counts; `Oversized` only for a prefix above
//! the limit, without reading past the prefix; `Invalid` only when `decode_payload` refuses too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn_fuzz::{debug_text, ChunkedReader};
use runicorn_protocol::wire::{
    decode_payload, encode_frame, read_frame, FrameError, DEFAULT_MAX_FRAME_BYTES,
    MIN_MAX_FRAME_BYTES,
};

fn prefix_at(stream: &[u8], at: usize) -> usize {
    let mut p = [0u8; 4];
    p.copy_from_slice(&stream[at..at + 4]);
    u32::from_be_bytes(p) as usize
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = match control & 3 {
        0 => 64,
        1 => 4096,
        2 => MIN_MAX_FRAME_BYTES,
        _ => DEFAULT_MAX_FRAME_BYTES,
    };
    let mut reader = ChunkedReader::new(stream, usize::from(control >> 2));
    loop {
        let before = reader.consumed();
        let left = stream.len() - before;
        match read_frame(&mut reader, max) {
            Ok(message) => {
                assert!(left >= 4, "a frame from {left} bytes");
                let len = prefix_at(stream, before);
                assert!(
                    len <= max as usize,
                    "a frame of {len} bytes passed a limit of {max}"
                );
                assert_eq!(
                    reader.consumed(),
                    before + 4 + len,
                    "a frame is prefix + payload"
                );
                let payload = &stream[before + 4..before + 4 + len];
                let direct = decode_payload(payload).expect("read_frame and decode_payload agree");
                assert_eq!(debug_text(&message), debug_text(&direct));
                // What was read can be sent on, and reads back the same.
                let frame = encode_frame(&message, u32::MAX).expect("a decoded message encodes");
                let mut again = frame.as_slice();
                let back = read_frame(&mut again, u32::MAX).expect("an encoded frame reads back");
                assert!(again.is_empty(), "one frame, nothing left over");
                assert_eq!(debug_text(&message), debug_text(&back));
            }
            Err(FrameError::Closed) => {
                assert_eq!(left, 0, "Closed with {left} bytes left");
                break;
            }
            Err(FrameError::Truncated { got, expected }) => {
                assert!(got < expected);
                assert_eq!(reader.consumed(), stream.len(), "Truncated before the end");
                if left < 4 {
                    assert_eq!((got, expected), (left, 4));
                } else {
                    assert_eq!(expected, prefix_at(stream, before));
                    assert_eq!(got, left - 4);
                }
                break;
            }
            Err(FrameError::Oversized {
                len,
                max: limit,
                preview,
            }) => {
                assert!(left >= 4);
                assert_eq!(limit, max);
                assert_eq!(len, prefix_at(stream, before) as u64);
                assert!(len > u64::from(max));
                assert_eq!(
                    reader.consumed(),
                    before + 4,
                    "the blocking reader reads nothing past an oversized prefix"
                );
                assert!(preview.chars().count() <= 4, "preview {preview:?}");
                break;
            }
            Err(FrameError::Invalid { .. }) => {
                let len = prefix_at(stream, before);
                assert_eq!(reader.consumed(), before + 4 + len);
                let payload = &stream[before + 4..before + 4 + len];
                assert!(decode_payload(payload).is_err());
                break;
            }
            Err(other) => panic!("unexpected error from a slice reader: {other}"),
        }
    }
});

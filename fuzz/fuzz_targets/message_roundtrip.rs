//! Wire messages decode → encode → decode: any payload the decoder accepts is a message we can
//! send on unchanged.
//!
//! Input: one frame payload (the JSON text, without its length prefix).
//!
//! Checked: a decoded message encodes; the encoding decodes to the same message (NaN included)
//! and encodes to the same bytes again (a fixed point); it has exactly the shape the protocol
//! specifies (`{"id": N, "body": {"<kind>": ...}}` with `kind()` as the tag); and `encode_frame`
//! refuses it exactly when its payload is above the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn_fuzz::debug_text;
use runicorn_protocol::wire::{decode_payload, encode_frame, Envelope, FrameError};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_payload(data);
    // The frame decoder is serde_json on an Envelope, nothing more lenient, nothing stricter.
    assert_eq!(
        decoded.is_ok(),
        serde_json::from_slice::<Envelope>(data).is_ok()
    );
    let Ok(message) = decoded else {
        return;
    };
    let first = serde_json::to_vec(&message).expect("a decoded message encodes");
    let again = decode_payload(&first).expect("what we encode, we decode");
    assert_eq!(debug_text(&message), debug_text(&again));
    let second = serde_json::to_vec(&again).expect("encodes again");
    assert_eq!(first, second, "encoding is a fixed point");

    let shape: Value = serde_json::from_slice(&first).expect("an encoded message is JSON");
    let object = shape.as_object().expect("an envelope is an object");
    assert_eq!(object.len(), 2, "id and body only: {shape}");
    assert_eq!(object["id"].as_u64(), Some(message.id));
    let body = object["body"].as_object().expect("the body is an object");
    assert_eq!(body.len(), 1, "externally tagged: one key");
    assert!(body.contains_key(message.body.kind()), "tag = kind()");

    let len = u32::try_from(first.len()).expect("fuzz inputs are small");
    let frame = encode_frame(&message, len).expect("a payload exactly at the limit is sent");
    assert_eq!(&frame[4..], &first[..]);
    assert_eq!(frame[..4], len.to_be_bytes());
    assert!(matches!(
        encode_frame(&message, len - 1),
        Err(FrameError::Oversized { .. })
    ));
});

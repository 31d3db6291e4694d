//! The worker: answers the hub's requests one at a time, in the order they came, until the
//! hub closes the stream (exit code 0) or sends something that breaks it (an error frame, then
//! exit code 2). A request that fails is answered with an `error` frame carrying its id and the
//! session goes on.

use std::sync::mpsc::Receiver;

use runicorn_protocol::wire::{Body, Envelope, ErrorCode};

use super::host::HostRequests;
use super::input::Incoming;
use super::output::SendError;
use super::request_error::RequestError;
use super::shared::Shared;
use super::{changes, chunks, logs, points};

/// Serves requests until the session ends; returns the process exit code.
pub fn serve_requests(shared: &Shared, incoming: &Receiver<Incoming>, host: &HostRequests) -> u8 {
    for message in incoming {
        let sent = match message {
            Incoming::Request(envelope) => answer(shared, host, envelope),
            Incoming::Broken { id, code, message } => {
                eprintln!("runicorn-agent serve: the hub sent a broken frame: {message}; ending the session");
                let _ = shared.out.send_error(id, code, message);
                return 2;
            }
            Incoming::Closed => return 0,
        };
        match sent {
            Ok(()) => {}
            Err(SendError::Closed) => return 0,
            Err(e) => {
                eprintln!("runicorn-agent serve: {e}; ending the session");
                return 2;
            }
        }
    }
    0
}

fn answer(shared: &Shared, host: &HostRequests, envelope: Envelope) -> Result<(), SendError> {
    let id = envelope.id;
    let frame = match &envelope.body {
        Body::Changes(req) => changes::answer(shared, id, req),
        Body::Points(req) => points::answer(shared, id, req),
        Body::Log(req) => logs::answer(shared, id, req),
        Body::Chunks(req) => chunks::answer(shared, id, req),
        Body::Host(_) => return host.ask(shared, id),
        Body::Subscribe {} => {
            shared.out.send(&Envelope {
                id,
                body: Body::Subscribed {},
            })?;
            shared.subscribe();
            let counter = shared.index().feed_counter();
            return match counter {
                Ok(counter) => shared.notify_if_moved(counter),
                Err(e) => {
                    eprintln!("runicorn-agent serve: {e}");
                    Ok(())
                }
            };
        }
        Body::Hello(_) => {
            return shared.out.send_error(
                id,
                ErrorCode::BadRequest,
                "hello was already exchanged; a session has one handshake".into(),
            )
        }
        other => Err(RequestError::NotARequest { kind: other.kind() }),
    };
    match frame {
        Ok(frame) => shared.out.send_encoded(&frame),
        Err(e) => {
            if matches!(e, RequestError::Index(_) | RequestError::TooLarge { .. }) {
                eprintln!("runicorn-agent serve: request {id} failed: {e}");
            }
            let body = e.to_body();
            shared.out.send_error(id, body.code, body.message)
        }
    }
}

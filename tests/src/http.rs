//! A tiny HTTP/1.1 client over `TcpStream` for the dashboard's tests: it sends exactly the
//! headers a test gives (any `Host`, any `Origin`), reads whole answers (content-length or
//! chunked), and follows a Server-Sent Events stream event by event.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: not JSON ({e}): {}", self.status, self.text()))
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: &Value) -> Request {
        self.body = body.to_string().into_bytes();
        self.header("Content-Type", "application/json")
    }

    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The bytes on the wire; `Host` is the server's address unless the test set one.
    fn encode(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !self.has("host") {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() || !["GET", "HEAD"].contains(&self.method.as_str()) {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends the request and reads the whole answer.
    pub fn send(&self, addr: SocketAddr) -> Response {
        let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(&self.encode(addr)).expect("send request");
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader);
        let body = if self.method == "HEAD" || status == 304 || status == 204 {
            Vec::new()
        } else if header_of(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            let mut body = Vec::new();
            while let Some(chunk) = read_chunk(&mut reader) {
                body.extend(chunk);
            }
            body
        } else if let Some(len) = header_of(&headers, "content-length") {
            let mut body = vec![0; len.parse().expect("content-length is a number")];
            reader.read_exact(&mut body).expect("read body");
            body
        } else {
            let mut body = Vec::new();
            reader.read_to_end(&mut body).expect("read body");
            body
        };
        Response {
            status,
            headers,
            body,
        }
    }
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_line(reader: &mut impl BufRead) -> String {
    try_read_line(reader).expect("read a line")
}

/// A line without its end; `None` on a timeout, an error or the end of the stream.
fn try_read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let status_line = read_line(reader);
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader);
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    (status, headers)
}

/// One chunk of a chunked body; `None` at the last (empty) chunk.
fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let size_line = try_read_line(reader)?;
    let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
    if size == 0 {
        try_read_line(reader);
        return None;
    }
    let mut chunk = vec![0; size];
    reader.read_exact(&mut chunk).ok()?;
    try_read_line(reader);
    Some(chunk)
}

/// `GET` with the server's own Host.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    Request::get(target).send(addr)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// An open event stream.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    chunked: bool,
    buffer: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl EventStream {
    /// Opens `target` as an event stream.
    pub fn open(addr: SocketAddr, target: &str) -> EventStream {
        let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
        let request = Request::get(target).header("Accept", "text/event-stream");
        stream.write_all(&request.encode(addr)).expect("send");
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader);
        let chunked =
            header_of(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked"));
        EventStream {
            reader,
            chunked,
            buffer: String::new(),
            status,
            headers,
        }
    }

    /// The next event (comments skipped), or `None` when none came within `timeout` or the
    /// stream ended.
    pub fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let bytes = if self.chunked {
                read_chunk(&mut self.reader)?
            } else {
                let mut buf = vec![0; 8192];
                let n = self.reader.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                buf.truncate(n);
                buf
            };
            self.buffer.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    /// Events until `pred` holds for one (returned) or `timeout` passes.
    pub fn until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&SseEvent) -> bool,
    ) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let event = self.next(left)?;
            if pred(&event) {
                return Some(event);
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            self.buffer = normalized;
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = SseEvent {
                event: "message".to_owned(),
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event.event = name.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:") {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                    has_data = true;
                }
            }
            if has_data {
                return Some(event);
            }
        }
    }
}

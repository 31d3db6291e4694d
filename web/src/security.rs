//! What keeps other web pages and other hosts out (docs/api.md, "Security"): the `Host`
//! allow-list against DNS rebinding, the per-process token and the `Origin` check on every
//! state-changing request, and the headers every answer carries (CSP, nosniff, no referrer).
//! No CORS header is ever sent.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The header state-changing requests carry the token in.
pub const TOKEN_HEADER: &str = "x-runicorn-token";

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'";

/// Which `Host` and `Origin` values name this dashboard.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    bound: IpAddr,
    port: u16,
}

impl HostPolicy {
    pub fn new(bound: IpAddr, port: u16) -> HostPolicy {
        HostPolicy { bound, port }
    }

    /// True when `host` (a `Host` header: name and port) is the bound address, `localhost`,
    /// `127.0.0.1` or `[::1]` with the bound port. Bound to an unspecified address (`0.0.0.0`,
    /// `::`), any IP literal with the port is accepted too: rebinding needs a domain name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let Some((name, port)) = split_host_port(&host) else {
            return false;
        };
        if port != Some(self.port) && !(port.is_none() && self.port == 80) {
            return false;
        }
        if name == "localhost" {
            return true;
        }
        let ip = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return false;
        };
        if name.contains(':') && !name.starts_with('[') {
            return false; // a bare IPv6 address is not a valid Host
        }
        ip.is_loopback() && (ip == IpAddr::from([127, 0, 0, 1]) || ip.is_ipv6())
            || ip == self.bound
            || self.bound.is_unspecified()
    }

    /// True when `origin` (an `Origin` header) is this dashboard's own origin.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| !host.contains('/') && self.allows_host(host))
    }
}

/// `name[:port]` split; `None` when the port is not a number.
fn split_host_port(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        let name = &host[..end + 2];
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (name, Some(p)),
            None if after.is_empty() => (name, None),
            None => return None,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) if !n.contains(':') => (n, Some(p)),
            Some(_) => (host, None),
            None => (host, None),
        }
    };
    match port {
        Some(p) => p.parse().ok().map(|p| (name, Some(p))),
        None => Some((name, None)),
    }
}

/// A fresh token: 32 bytes from the operating system's generator (getrandom), as hex. The OS
/// generator is used, not a seeded PRNG, because the token is a secret a cross-site page must
/// not be able to guess.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without an early exit, so timing says nothing about how much of a guess matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the security layer needs.
#[derive(Debug, Clone)]
pub struct Guard {
    pub hosts: HostPolicy,
    pub token: Arc<str>,
}

impl Guard {
    /// Checks a request's headers; the error says what was wrong.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.allows_host(host) {
            return Err(ApiError::forbidden(format!(
                "host {host:?} is not this dashboard's address; open it through \
                 http://127.0.0.1:{}/",
                self.hosts.port
            )));
        }
        if method == Method::GET || method == Method::HEAD {
            return Ok(());
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.hosts.allows_origin(origin) {
                return Err(ApiError::forbidden(format!(
                    "cross-site request from origin {origin:?} refused"
                )));
            }
        }
        let token = headers
            .get(TOKEN_HEADER)
            .map(|t| t.as_bytes())
            .unwrap_or_default();
        if !same_secret(token, self.token.as_bytes()) {
            return Err(ApiError::forbidden(
                "missing or wrong X-Runicorn-Token header; reload the dashboard page",
            ));
        }
        Ok(())
    }
}

/// Middleware: refuses what [`Guard::check`] refuses, and adds the security headers.
pub async fn guard_layer(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match guard.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> HostPolicy {
        HostPolicy::new(IpAddr::from([127, 0, 0, 1]), 23300)
    }

    #[test]
    fn loopback_names_with_the_port_are_allowed() {
        let p = local();
        for host in [
            "127.0.0.1:23300",
            "localhost:23300",
            "LOCALHOST:23300",
            "[::1]:23300",
        ] {
            assert!(p.allows_host(host), "{host}");
        }
    }

    #[test]
    fn other_hosts_and_ports_are_refused() {
        let p = local();
        for host in [
            "evil.example:23300",
            "evil.example",
            "127.0.0.1:80",
            "127.0.0.1",
            "localhost",
            "127.0.0.2:23300",
            "10.0.0.1:23300",
            "::1:23300",
            "[::1]x:23300",
            "localhost.evil.example:23300",
            "",
            "127.0.0.1:abc",
        ] {
            assert!(!p.allows_host(host), "{host}");
        }
    }

    #[test]
    fn the_bound_address_is_allowed_and_unspecified_allows_ip_literals() {
        let p = HostPolicy::new("192.168.1.5".parse().unwrap(), 8080);
        assert!(p.allows_host("192.168.1.5:8080"));
        assert!(!p.allows_host("192.168.1.6:8080"));
        let any = HostPolicy::new("0.0.0.0".parse().unwrap(), 8080);
        assert!(any.allows_host("192.168.1.6:8080"));
        assert!(!any.allows_host("rebind.evil.example:8080"));
    }

    #[test]
    fn only_our_own_origin_is_allowed() {
        let p = local();
        assert!(p.allows_origin("http://127.0.0.1:23300"));
        assert!(p.allows_origin("http://localhost:23300"));
        assert!(!p.allows_origin("http://evil.example"));
        assert!(!p.allows_origin("https://127.0.0.1:23300"));
        assert!(!p.allows_origin("null"));
        assert!(!p.allows_origin("http://127.0.0.1:23300/x"));
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn writes_need_the_token_and_no_foreign_origin() {
        let guard = Guard {
            hosts: local(),
            token: Arc::from("secret"),
        };
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:23300"));
        assert!(guard.check(&Method::GET, &h).is_ok());
        assert!(guard.check(&Method::PATCH, &h).is_err());
        h.insert(TOKEN_HEADER, HeaderValue::from_static("secret"));
        assert!(guard.check(&Method::PATCH, &h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(guard.check(&Method::DELETE, &h).is_err());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:23300"),
        );
        assert!(guard.check(&Method::POST, &h).is_ok());
        h.insert(TOKEN_HEADER, HeaderValue::from_static("secreT"));
        assert!(guard.check(&Method::POST, &h).is_err());
    }
}

//! The embedded browser UI: the front end's build (`$RUNICORN_UI_DIST`, made by `build.rs`),
//! compiled into the binary. `index.html` is served for `/` and for every non-API path (the
//! page routes itself), with this process's token put in its `runicorn-token` meta tag;
//! `/assets/*` (content-hashed names) are cached for a year.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::content_type;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "$RUNICORN_UI_DIST"]
struct UiDist;

const TOKEN_META: &str = r#"<meta name="runicorn-token" content="">"#;

/// `index.html` with the token in place, made once at start-up.
#[derive(Clone)]
pub struct IndexPage(Arc<str>);

impl IndexPage {
    pub fn new(token: &str) -> IndexPage {
        let html = UiDist::get("index.html")
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
            .unwrap_or_else(|| {
                format!(
                    "<!doctype html><html><head>{TOKEN_META}<title>Runicorn</title></head>\
                     <body><p>The dashboard's page was not built into this binary.</p></body></html>"
                )
            });
        IndexPage(Arc::from(with_token(&html, token)))
    }

    fn response(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// Puts the token into the meta tag (adding the tag to `<head>` when the page lacks it).
pub fn with_token(html: &str, token: &str) -> String {
    let filled = format!(r#"<meta name="runicorn-token" content="{token}">"#);
    if html.contains(TOKEN_META) {
        html.replacen(TOKEN_META, &filled, 1)
    } else if let Some(at) = html.find("<head>") {
        let at = at + "<head>".len();
        format!("{}{filled}{}", &html[..at], &html[at..])
    } else {
        format!("{filled}{html}")
    }
}

/// `GET /`.
pub async fn index(State(state): State<Arc<AppState>>) -> Response {
    state.index.response()
}

/// An embedded file by its path in the build, or `None`.
fn embedded(path: &str, immutable: bool) -> Option<Response> {
    if path == "index.html" {
        return None;
    }
    let file = UiDist::get(path)?;
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, content_type::of_asset(path)),
                (header::CACHE_CONTROL, cache),
            ],
            file.data.into_owned(),
        )
            .into_response(),
    )
}

/// Everything the API does not claim: `/assets/*` and other files of the build, else
/// `index.html` for a GET (a page of the app), else a 404 naming the path.
pub async fn fallback(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/').to_owned();
    if path == "api" || path.starts_with("api/") {
        return ApiError::not_found(format!("no API route {}", request.uri().path()))
            .into_response();
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::not_found(format!(
            "no route {} {}",
            request.method(),
            request.uri().path()
        ))
        .into_response();
    }
    if let Some(response) = embedded(&path, path.starts_with("assets/")) {
        return response;
    }
    if path.starts_with("assets/") {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    }
    state.index.response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_into_the_meta_tag() {
        let html = r#"<html><head><meta name="runicorn-token" content=""></head></html>"#;
        assert_eq!(
            with_token(html, "abc"),
            r#"<html><head><meta name="runicorn-token" content="abc"></head></html>"#
        );
        let bare = "<html><head><title>x</title></head></html>";
        assert!(
            with_token(bare, "abc").contains(r#"<head><meta name="runicorn-token" content="abc">"#)
        );
    }
}

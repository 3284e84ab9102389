//! The status page: an HTML shell, a script and a style sheet, embedded in the binary and
//! served on the API's listener at `/`, `/page.js` and `/page.css`.
//!
//! They hold no data: the script fetches everything from the API (`/status`, `/history`,
//! `/probes`, the `/events` long poll) and acts through it (drain, undrain, failback), with the
//! token the user gives it once. So they are served without the token, and under a
//! Content-Security-Policy that lets the page load nothing but these files and talk to
//! nothing but this origin. No build step: plain HTML, CSS and JavaScript, drawn with SVG.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the page may load and talk to: this origin's script, style and data, nothing inline,
/// nothing framed, no form posted anywhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("text/html; charset=utf-8", HTML) }))
        .route("/page.js", get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/page.css", get(|| async { file("text/css; charset=utf-8", STYLE) }))
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // A new weiche brings a new page: never an old one from the cache.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing inline, nothing from elsewhere: what the policy forbids is not in the files
    /// either, so the page works under it.
    #[test]
    fn the_files_keep_to_the_policy() {
        for bad in ["<script>", "style=", "onclick", "onload", "http://", "https://", "javascript:", "<style"] {
            assert!(!HTML.contains(bad), "index.html has {bad}");
        }
        assert!(HTML.contains(r#"<script src="/page.js" defer></script>"#));
        assert!(HTML.contains(r#"<link rel="stylesheet" href="/page.css">"#));
        // The SVG namespace is a name, not a place the page goes to.
        let script = SCRIPT.replace("'http://www.w3.org/2000/svg'", "SVG_NS");
        for bad in
            ["innerHTML", "eval(", "new Function", "http://", "https://", "setAttribute('style'", "document.write"]
        {
            assert!(!script.contains(bad), "page.js has {bad}");
        }
        for bad in ["@import", "url(http", "url(https", "@font-face"] {
            assert!(!STYLE.contains(bad), "page.css has {bad}");
        }
    }
}

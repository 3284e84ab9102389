//! `type = "http"` / `"https"`: a request sent to the target's address with the service's Host
//! header and TLS SNI; the status and optionally the body decide.

use std::net::SocketAddr;

use super::{Probe, io_cause};
use crate::model::pool::{Check, Probe as Spec};

/// Largest HTTP body read to look for `body_contains`.
const MAX_BODY: usize = 64 * 1024;

pub struct HttpProbe {
    client: reqwest::Client,
    url: String,
    head: bool,
    statuses: Vec<(u16, u16)>,
    body_contains: Option<String>,
}

impl HttpProbe {
    pub fn new(addr: SocketAddr, check: &Check, source: Option<std::net::IpAddr>) -> Result<HttpProbe, String> {
        let Spec::Http { tls, host, path, tls_verify, headers, method, statuses, body_contains } = &check.probe else {
            unreachable!("an http prober for a {:?} check", check.kind)
        };
        crate::config::install_crypto_provider();
        let scheme = if *tls { "https" } else { "http" };
        let host_part = match host {
            Some(h) if h.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{h}]"),
            Some(h) => h.clone(),
            None if addr.is_ipv6() => format!("[{}]", addr.ip()),
            None => addr.ip().to_string(),
        };
        let url = format!("{scheme}://{host_part}:{}{path}", addr.port());
        let mut default_headers = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            let name =
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header {k:?}: {e}"))?;
            let value = reqwest::header::HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?;
            default_headers.insert(name, value);
        }
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("weiche/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .no_proxy()
            .timeout(check.timeout)
            .connect_timeout(check.timeout)
            .default_headers(default_headers)
            .danger_accept_invalid_certs(!tls_verify)
            .local_address(source.filter(|s| s.is_ipv4() == addr.is_ipv4()));
        if let Some(h) = host {
            // Connect to the target while naming the service (Host header and SNI).
            b = b.resolve(h, addr);
        }
        let client = b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpProbe {
            client,
            url,
            head: method == "HEAD",
            statuses: statuses.clone(),
            body_contains: body_contains.clone(),
        })
    }
}

impl Probe for HttpProbe {
    async fn probe(&self) -> Result<(), String> {
        let req = if self.head { self.client.head(&self.url) } else { self.client.get(&self.url) };
        let mut resp = req.send().await.map_err(|e| http_error(&e))?;
        let status = resp.status().as_u16();
        if !self.statuses.iter().any(|&(a, b)| (a..=b).contains(&status)) {
            let want: Vec<String> =
                self.statuses.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
            return Err(format!("HTTP {status} (expected {})", want.join(", ")));
        }
        if let Some(needle) = &self.body_contains {
            let mut body = Vec::new();
            while body.len() < MAX_BODY {
                match resp.chunk().await.map_err(|e| http_error(&e))? {
                    Some(c) => body.extend_from_slice(&c),
                    None => break,
                }
            }
            if !body.windows(needle.len().max(1)).any(|w| w == needle.as_bytes()) {
                return Err(format!("body does not contain {needle:?}"));
            }
        }
        Ok(())
    }
}

/// What went wrong, in a few words: the underlying I/O error when there is one ("connection
/// refused"), else reqwest's error with its causes.
fn http_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut source = std::error::Error::source(e);
    let mut chain = vec![e.to_string()];
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_cause(io);
        }
        chain.push(s.to_string());
        source = s.source();
    }
    chain.dedup();
    chain.join(": ")
}

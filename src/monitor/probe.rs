//! One probe of one target: TCP connect (optionally send/expect), or an HTTP(S) request sent to
//! the target's address with the service's Host header and TLS SNI.
//!
//! A probe never outlives its check's timeout (the caller enforces it) and opens a fresh
//! connection every time: a reused one would hide firewall and load-balancer failures.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::pool::{Check, Probe};

/// What is needed to probe one (address, check) repeatedly.
pub struct Prober {
    addr: SocketAddr,
    check: std::sync::Arc<Check>,
    http: Option<(reqwest::Client, String)>,
}

/// Largest HTTP body read to look for `body_contains`.
const MAX_BODY: usize = 64 * 1024;

impl Prober {
    pub fn new(addr: SocketAddr, check: std::sync::Arc<Check>) -> Result<Prober, String> {
        let http = match &check.probe {
            Probe::Tcp { .. } => None,
            Probe::Http { tls, host, path, tls_verify, headers, .. } => {
                crate::config::install_crypto_provider();
                let scheme = if *tls { "https" } else { "http" };
                let host_part = match host {
                    Some(h) => h.clone(),
                    None if addr.is_ipv6() => format!("[{}]", addr.ip()),
                    None => addr.ip().to_string(),
                };
                let url = format!("{scheme}://{host_part}:{}{path}", addr.port());
                let mut default_headers = reqwest::header::HeaderMap::new();
                for (k, v) in headers {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("header {k:?}: {e}"))?;
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
                    .danger_accept_invalid_certs(!tls_verify);
                if let Some(h) = host {
                    // Connect to the target while naming the service (Host header and SNI).
                    b = b.resolve(h, addr);
                }
                Some((b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?, url))
            }
        };
        Ok(Prober { addr, check, http })
    }

    /// Runs one probe: Ok(()) if the target passed, or why it failed.
    pub async fn probe(&self) -> Result<(), String> {
        let timeout = self.check.timeout;
        match tokio::time::timeout(timeout, self.run()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", fmt_duration(timeout))),
        }
    }

    async fn run(&self) -> Result<(), String> {
        match (&self.check.probe, &self.http) {
            (Probe::Tcp { send, expect }, _) => tcp(self.addr, send.as_deref(), expect.as_deref()).await,
            (Probe::Http { method, statuses, body_contains, .. }, Some((client, url))) => {
                let req = if method == "HEAD" { client.head(url) } else { client.get(url) };
                let mut resp = req.send().await.map_err(|e| http_error(&e))?;
                let status = resp.status().as_u16();
                if !statuses.iter().any(|&(a, b)| (a..=b).contains(&status)) {
                    let want: Vec<String> = statuses
                        .iter()
                        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
                        .collect();
                    return Err(format!("HTTP {status} (expected {})", want.join(", ")));
                }
                if let Some(needle) = body_contains {
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
            (Probe::Http { .. }, None) => unreachable!("HTTP probers are built with a client"),
        }
    }
}

async fn tcp(addr: SocketAddr, send: Option<&str>, expect: Option<&str>) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| io_cause(&e))?;
    if let Some(data) = send {
        s.write_all(data.as_bytes()).await.map_err(|e| format!("send failed: {}", io_cause(&e)))?;
    }
    if let Some(want) = expect {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).await.map_err(|e| format!("read failed: {}", io_cause(&e)))?;
            if n == 0 {
                return Err(format!("connection closed before {want:?} was seen"));
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(want.len().max(1)).any(|w| w == want.as_bytes()) {
                break;
            }
            if got.len() > 16 * 1024 {
                return Err(format!("{want:?} not in the first 16 KiB"));
            }
        }
    }
    // Close cleanly, so the service sees a normal end rather than a reset.
    let _ = s.shutdown().await;
    Ok(())
}

fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
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

pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

//! The command-line client of the HTTP API: `weiche status`, `drain`, `undrain`, `failback`,
//! `events`. It prints tables for people and JSON (`--json`) for scripts.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

/// Where the API is and how to get in.
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the API at {addr}: is weiche running? see --api ({cause})")]
    Unreachable { addr: SocketAddr, cause: String },
    #[error("{0}")]
    Refused(String),
}

impl Api {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Api {
        crate::install_crypto_provider();
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(75)).build().expect("an HTTP client");
        Api { addr, token, http }
    }

    async fn call(&self, post: bool, path: &str) -> Result<Value, ClientError> {
        let url = format!("http://{}{path}", self.addr);
        let mut req = if post { self.http.post(&url) } else { self.http.get(&url) };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let unreachable =
            |e: reqwest::Error| ClientError::Unreachable { addr: self.addr, cause: e.without_url().to_string() };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let msg = body["error"].as_str().unwrap_or("request failed").to_string();
        Err(ClientError::Refused(format!("{msg} (HTTP {})", status.as_u16())))
    }

    pub async fn status(&self) -> Result<Value, ClientError> {
        self.call(false, "/status?events=10").await
    }

    pub async fn drain(&self, address: &str, pool: Option<&str>, drain: bool) -> Result<Value, ClientError> {
        let verb = if drain { "drain" } else { "undrain" };
        let q = pool.map(|p| format!("?pool={p}")).unwrap_or_default();
        self.call(true, &format!("/targets/{address}/{verb}{q}")).await
    }

    pub async fn failback(&self, pool: &str) -> Result<Value, ClientError> {
        self.call(true, &format!("/pools/{pool}/failback")).await
    }

    pub async fn events(&self, since: u64, wait: u64) -> Result<Value, ClientError> {
        self.call(false, &format!("/events?since={since}&wait={wait}")).await
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The `weiche status` table.
pub fn status_table(st: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    for z in st["zones"].as_array().unwrap_or(&empty) {
        let err = z["last_error"].as_str().map(|e| format!("  LAST RELOAD FAILED: {e}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "zone {:<28} serial {:<12} loaded {}{err}",
            s(&z["zone"]),
            s(&z["serial"]),
            s(&z["loaded_at"])
        );
    }
    for p in st["pools"].as_array().unwrap_or(&empty) {
        let _ = writeln!(out);
        let held =
            if p["held"].is_null() { String::new() } else { "  HELD (manual failback: weiche failback POOL)".into() };
        let _ = writeln!(
            out,
            "pool {}  check={} all_down={} failback={}{held}",
            s(&p["pool"]),
            s(&p["check"]),
            s(&p["policy"]),
            s(&p["failback"])
        );
        for (fam, label) in [("a", "A"), ("aaaa", "AAAA")] {
            let f = &p[fam];
            let answer: Vec<String> = f["answer"].as_array().unwrap_or(&empty).iter().map(s).collect();
            let has = p["targets"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .any(|t| s(&t["address"]).contains(':') == (fam == "aaaa"));
            if !has {
                continue;
            }
            let answer = if answer.is_empty() { "(nothing)".to_string() } else { answer.join(", ") };
            let _ = writeln!(
                out,
                "  {label:<5} -> {answer}  (priority {}, {}, ttl {})",
                s(&f["priority"]),
                s(&f["mode"]),
                s(&f["ttl"])
            );
        }
        for t in p["targets"].as_array().unwrap_or(&empty) {
            let verdict = s(&t["verdict"]).to_uppercase();
            let doubt = if t["in_doubt"] == true { " (in doubt)" } else { "" };
            let drained = if t["drained"] == true { "  DRAINED" } else { "" };
            let last = &t["last_probe"];
            let probe = match last["error"].as_str() {
                Some(e) => format!("last probe failed: {e}"),
                None if last.is_null() => "not probed yet".into(),
                None => format!("last probe ok in {} ms", s(&last["latency_ms"])),
            };
            let _ = writeln!(
                out,
                "    {:<18} p{:<3} {:<8}{doubt} since {:<26} {probe}{drained}",
                s(&t["address"]),
                s(&t["priority"]),
                verdict,
                s(&t["since"])
            );
        }
    }
    let events = st["events"].as_array().unwrap_or(&empty);
    if !events.is_empty() {
        let _ = writeln!(out, "\nrecent events:");
        for e in events {
            let _ = writeln!(out, "{}", event_line(e));
        }
    }
    out
}

pub fn event_line(e: &Value) -> String {
    format!("  {} #{:<5} {:<17} {}", s(&e["time"]), s(&e["seq"]), s(&e["kind"]), s(&e["message"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_reads_well() {
        let st = serde_json::json!({
            "zones": [{"zone": "example.com.", "serial": 7, "loaded_at": "2026-11-21T00:00:00.000Z", "last_error": null}],
            "pools": [{
                "pool": "www.example.com.", "check": "web", "policy": "keep-primary", "failback": "auto", "held": null,
                "a": {"answer": ["192.0.2.11"], "priority": 2, "mode": "fallback", "ttl": 5},
                "aaaa": {"answer": [], "priority": null, "mode": "alldown", "ttl": 5},
                "targets": [
                    {"address": "192.0.2.10", "priority": 1, "verdict": "down", "in_doubt": false, "since": "2026-11-21T00:01:00.000Z",
                     "last_probe": {"ok": false, "error": "connection refused", "latency_ms": 0.2}, "drained": false},
                    {"address": "192.0.2.11", "priority": 2, "verdict": "up", "in_doubt": false, "since": "2026-11-21T00:00:01.000Z",
                     "last_probe": {"ok": true, "error": null, "latency_ms": 1.5}, "drained": true}
                ]
            }],
            "events": [{"time": "2026-11-21T00:01:00.000Z", "seq": 3, "kind": "failover", "message": "www.example.com. A failed over"}]
        });
        let t = status_table(&st);
        assert!(t.contains("pool www.example.com.  check=web all_down=keep-primary failback=auto"), "{t}");
        assert!(t.contains("A     -> 192.0.2.11  (priority 2, fallback, ttl 5)"), "{t}");
        assert!(!t.contains("AAAA"), "no IPv6 targets, no AAAA line: {t}");
        assert!(t.contains("192.0.2.10         p1   DOWN"), "{t}");
        assert!(t.contains("last probe failed: connection refused"), "{t}");
        assert!(t.contains("DRAINED"), "{t}");
        assert!(t.contains("#3     failover"), "{t}");
    }
}

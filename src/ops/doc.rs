//! The documents of the HTTP API, as types: the server serialises them and the CLI (or any
//! Rust client) deserialises the same types, so the two cannot drift apart.
//!
//! The JSON is what the README's API section documents and what scripts (the Checkmk check)
//! parse: absent values are `null`, never missing, and names are kept as published.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::model::chart;
use crate::ops::events::{Event, EventKind};

/// `GET /status`: everything an operator wants to see at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The server's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub zones: Vec<ZoneStatus>,
    pub pools: Vec<PoolStatus>,
    /// Every drain in force.
    pub drained: Vec<Drained>,
    /// The most recent events, oldest first.
    pub events: Vec<Event>,
    /// Whether drains, holds and serials are on disk for the next start.
    #[serde(default)]
    pub state: StateStatus,
    /// weiche.toml: where it was read from, when, and why the last reload failed.
    #[serde(default)]
    pub config: ConfigStatus,
    /// Whether events reach the journal on disk.
    #[serde(default)]
    pub journal: JournalStatus,
    /// The cluster as this member sees it (None: no `[cluster]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::peers::ClusterStatus>,
}

/// The configuration file as loaded: from where, when it last loaded, and the error of the
/// last reload that failed (None: it loaded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub file: Option<String>,
    pub loaded_at: Option<String>,
    pub last_error: Option<String>,
}

/// `POST /reload`: what a reload of weiche.toml did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// Everything it read was applied (false: `error` says what was not).
    pub ok: bool,
    /// Settings applied now.
    pub changed: Vec<String>,
    /// Settings the file changes that take effect at the next restart.
    pub restart: Vec<String>,
    pub error: Option<String>,
    /// Zone files not loaded after the reload looked at them, each with its first error.
    #[serde(default)]
    pub zone_errors: Vec<String>,
}

pub use crate::ops::events::JournalStatus;

/// Where drains, manual-failback holds and serials are kept across restarts, and whether the
/// latest of them is on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateStatus {
    /// The state file (None: nothing is kept; `server.state_dir` is not set).
    pub file: Option<String>,
    /// Whether the latest write of it succeeded (None: nothing is kept). While false, what
    /// changed since the last write that succeeded holds until weiche restarts only.
    pub persisted: Option<bool>,
    /// Why the latest write failed.
    pub error: Option<String>,
}

/// One zone file and what is served from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneStatus {
    pub zone: String,
    /// The serial served: the file's, moved forward when pool answers change (None: not served).
    pub serial: Option<u32>,
    /// The serial in the file as last loaded.
    pub file_serial: Option<u32>,
    pub served: bool,
    pub files: Vec<String>,
    /// RFC 3339, UTC.
    pub loaded_at: Option<String>,
    /// Why the latest version of the file was not loaded (None: it was), with file:line:col.
    pub last_error: Option<String>,
    /// How a zone weiche signs is signed (absent for an unsigned zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<DnssecStatus>,
}

/// The signatures a zone is served with, and its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnssecStatus {
    /// When the signatures served now were made, and until when they are valid (RFC 3339).
    pub signed_at: String,
    pub valid_until: String,
    /// When weiche signs again (halfway through, or a key's next timing event).
    pub next_signing: String,
    pub keys: Vec<KeyStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub tag: u16,
    pub algorithm: u8,
    /// KSK (flags 257: signs the keys, or everything as a CSK when no ZSK signs) or ZSK.
    pub role: String,
    /// In the DNSKEY RRset now; signing now.
    pub published: bool,
    pub signing: bool,
    pub file: String,
}

/// One pool: its policies, its answer per address family, its targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub pool: String,
    pub zone: String,
    /// The name of the pool's first check (the only one, unless `check` is a list).
    pub check: String,
    /// The names of every check of the pool: a target that names no checks of its own must
    /// pass them all.
    #[serde(default)]
    pub checks: Vec<String>,
    /// How many targets of a level must be up for it to count: a count ("1", "2") or a share
    /// ("50%"), as configured.
    #[serde(default)]
    pub min_up: String,
    /// The all-down policy.
    pub policy: Policy,
    pub failback: Failback,
    /// The levels a manual failback holds (None: no hold).
    pub held: Option<Held>,
    pub a: FamilyStatus,
    pub aaaa: FamilyStatus,
    pub targets: Vec<TargetStatus>,
}

/// Levels held by manual failback, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub a: Option<u8>,
    pub aaaa: Option<u8>,
}

/// What DNS answers for one address family of a pool right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyStatus {
    /// Empty: NODATA.
    pub answer: Vec<IpAddr>,
    /// The priority level answered from (None when the answer is empty or spans levels).
    pub priority: Option<u8>,
    pub mode: Mode,
    pub ttl: u32,
}

/// A target as its checks judge it together: down if any check is down, up only if all are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The address answered.
    pub address: IpAddr,
    /// Where its first check probes.
    pub probe: SocketAddr,
    pub priority: u8,
    pub verdict: Verdict,
    /// A probe result disagreed and may soon change the verdict: a check of an up target in
    /// doubt, or every down check of a down target in doubt.
    pub in_doubt: bool,
    /// When the verdict last changed (RFC 3339, UTC; None: never probed). With several
    /// checks: for an up target when its last check came up, for a down one when the first
    /// of the checks that are down now went down.
    pub since: Option<String>,
    /// The most telling of its checks' last probes: a failure (of a check that is down, first),
    /// else the slowest.
    pub last_probe: Option<LastProbe>,
    /// The streak of the check whose last probe is shown.
    pub streak: Option<Streak>,
    pub drained: bool,
    /// Each check on its own, in the order written.
    #[serde(default)]
    pub checks: Vec<CheckStatus>,
}

/// One check of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// The check's name (`NAME (inline)` for a check table written in place).
    pub name: String,
    /// Where it probes.
    pub probe: SocketAddr,
    pub verdict: Verdict,
    /// A probe result disagreed with its verdict and is being confirmed.
    pub in_doubt: bool,
    /// When its verdict last changed (None: never probed).
    pub since: Option<String>,
    pub last_probe: Option<LastProbe>,
    pub streak: Option<Streak>,
    /// In a cluster: each member's own verdict, by member name (`verdict` is the cluster's).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub votes: std::collections::BTreeMap<String, Verdict>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastProbe {
    /// RFC 3339, UTC.
    pub at: String,
    pub ok: bool,
    /// Rounded to a tenth.
    pub latency_ms: f64,
    /// Why it failed (None: it passed).
    pub error: Option<String>,
}

/// Consecutive probe results of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    pub ok: Option<bool>,
    pub count: u32,
}

/// `GET /probes`: the latest probes of every pool target, per check, oldest first, for the
/// page's sparklines. Pools and targets come in the order of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probes {
    pub pools: Vec<PoolProbes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolProbes {
    pub pool: String,
    pub targets: Vec<TargetProbes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetProbes {
    pub address: IpAddr,
    /// In the order of the target's `checks` in `/status`.
    pub checks: Vec<CheckProbes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckProbes {
    pub name: String,
    pub probe: SocketAddr,
    pub recent: Vec<ProbeSample>,
}

/// One probe: when, how long it took, whether it passed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeSample {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// Rounded to a tenth.
    pub latency_ms: f64,
    pub ok: bool,
}

/// A drain in force: everywhere (pool None) or in one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    pub address: IpAddr,
    pub pool: Option<String>,
}

/// What the monitor says of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Unknown,
    Up,
    Down,
}

/// Why a family's answer is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Preferred,
    Fallback,
    /// Published as `alldown` (unlike the event kind `all_down`); scripts match on it.
    AllDown,
}

/// A pool's all-down policy, spelled as in the zone TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    KeepPrimary,
    All,
    Last,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    Auto,
    Manual,
}

/// `POST /targets/{address}/drain` and `/undrain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReply {
    pub ok: bool,
    pub address: IpAddr,
    pub drained: bool,
}

/// `POST /pools/{name}/failback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailbackReply {
    pub ok: bool,
    /// The pool's name, with the final dot.
    pub pool: String,
}

/// The body of every answer that is not a 2xx (a reload's 422 carries its whole
/// [`ReloadReply`], whose `error` this reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

// The model's enums stay free of the API's spelling; these are the one place the two meet.

impl From<chart::Health> for Verdict {
    fn from(h: chart::Health) -> Verdict {
        match h {
            chart::Health::Unknown => Verdict::Unknown,
            chart::Health::Up => Verdict::Up,
            chart::Health::Down => Verdict::Down,
        }
    }
}

impl From<chart::Mode> for Mode {
    fn from(m: chart::Mode) -> Mode {
        match m {
            chart::Mode::Preferred => Mode::Preferred,
            chart::Mode::Fallback => Mode::Fallback,
            chart::Mode::AllDown => Mode::AllDown,
        }
    }
}

impl From<chart::AllDown> for Policy {
    fn from(p: chart::AllDown) -> Policy {
        match p {
            chart::AllDown::KeepPrimary => Policy::KeepPrimary,
            chart::AllDown::All => Policy::All,
            chart::AllDown::Last => Policy::Last,
            chart::AllDown::None => Policy::None,
        }
    }
}

impl From<chart::Failback> for Failback {
    fn from(f: chart::Failback) -> Failback {
        match f {
            chart::Failback::Auto => Failback::Auto,
            chart::Failback::Manual => Failback::Manual,
        }
    }
}

/// The words the CLI prints are the words the API sends.
macro_rules! display_as_json {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(std::fmt::Error),
                }
            }
        }
    )*};
}

display_as_json!(Verdict, Mode, Policy, Failback, EventKind);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pool failed over on A, with no AAAA answer, a drained target and two events.
    pub(crate) fn sample() -> Status {
        let target = |address: &str, priority, verdict, error: Option<&str>, drained| {
            let last_probe = Some(LastProbe {
                at: "2026-11-21T00:01:02.000Z".into(),
                ok: error.is_none(),
                latency_ms: 1.5,
                error: error.map(Into::into),
            });
            let probe = format!("{address}:8080").parse().unwrap();
            let since = Some("2026-11-21T00:01:00.000Z".to_string());
            let streak = Some(Streak { ok: Some(error.is_none()), count: 3 });
            TargetStatus {
                address: address.parse().unwrap(),
                probe,
                priority,
                verdict,
                in_doubt: false,
                since: since.clone(),
                last_probe: last_probe.clone(),
                streak,
                drained,
                checks: vec![CheckStatus {
                    name: "web".into(),
                    probe,
                    verdict,
                    in_doubt: false,
                    since,
                    last_probe,
                    streak,
                    votes: Default::default(),
                }],
            }
        };
        let failover = Event {
            seq: 3,
            time: "2026-11-21T00:01:00.000Z".into(),
            zone: Some("example.com.".into()),
            pool: Some("www.example.com.".into()),
            rtype: Some("A".into()),
            from: Some("192.0.2.10".into()),
            to: Some("192.0.2.11".into()),
            priority: Some(2),
            message: "www.example.com. A failed over".into(),
            ..Event::new(EventKind::Failover, "192.0.2.10 down")
        };
        let drain = Event {
            seq: 4,
            time: "2026-11-21T00:02:00.000Z".into(),
            target: Some("192.0.2.11".into()),
            message: "target 192.0.2.11 drained".into(),
            ..Event::new(EventKind::Drain, "operator")
        };
        Status {
            version: "0.1.0".into(),
            zones: vec![ZoneStatus {
                zone: "example.com.".into(),
                serial: Some(7),
                file_serial: Some(7),
                served: true,
                files: vec!["zones/example.com.toml".into()],
                loaded_at: Some("2026-11-21T00:00:00.000Z".into()),
                last_error: None,
                dnssec: None,
            }],
            pools: vec![PoolStatus {
                pool: "www.example.com.".into(),
                zone: "example.com.".into(),
                check: "web".into(),
                checks: vec!["web".into()],
                min_up: "1".into(),
                policy: Policy::KeepPrimary,
                failback: Failback::Auto,
                held: None,
                a: FamilyStatus {
                    answer: vec!["192.0.2.11".parse().unwrap()],
                    priority: Some(2),
                    mode: Mode::Fallback,
                    ttl: 5,
                },
                aaaa: FamilyStatus { answer: vec![], priority: None, mode: Mode::AllDown, ttl: 5 },
                targets: vec![
                    target("192.0.2.10", 1, Verdict::Down, Some("connection refused"), false),
                    target("192.0.2.11", 2, Verdict::Up, None, true),
                ],
            }],
            drained: vec![Drained { address: "192.0.2.11".parse().unwrap(), pool: None }],
            events: vec![failover, drain],
            state: StateStatus {
                file: Some("/var/lib/weiche/weiche-state.json".into()),
                persisted: Some(true),
                error: None,
            },
            config: ConfigStatus::default(),
            journal: JournalStatus { dir: Some("/var/lib/weiche/journal".into()), persisted: Some(true), error: None },
            cluster: None,
        }
    }

    #[test]
    fn a_status_document_reads_back_as_written() {
        let st = sample();
        let text = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), st);
        // Absent values are null, not missing: scripts index them.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["pools"][0]["held"].is_null() && v["pools"][0].as_object().unwrap().contains_key("held"));
        assert_eq!(v["pools"][0]["aaaa"]["priority"], serde_json::Value::Null);
        assert_eq!(v["pools"][0]["targets"][0]["probe"], "192.0.2.10:8080");
        // Events leave out what does not apply.
        assert!(!v["events"][1].as_object().unwrap().contains_key("pool"));
    }

    #[test]
    fn enums_are_spelled_as_published_and_displayed_the_same() {
        let cases = [
            (serde_json::to_value(Mode::AllDown).unwrap(), Mode::AllDown.to_string(), "alldown"),
            (serde_json::to_value(Policy::KeepPrimary).unwrap(), Policy::KeepPrimary.to_string(), "keep-primary"),
            (serde_json::to_value(Verdict::Unknown).unwrap(), Verdict::Unknown.to_string(), "unknown"),
            (serde_json::to_value(Failback::Manual).unwrap(), Failback::Manual.to_string(), "manual"),
            (serde_json::to_value(EventKind::AllDown).unwrap(), EventKind::AllDown.to_string(), "all_down"),
        ];
        for (json, shown, want) in cases {
            assert_eq!((json.as_str().unwrap(), shown.as_str()), (want, want));
        }
    }
}

//! Events: every change a person may want to know of (a target down or up, an answer that moved,
//! a drain), as one record that is logged, kept for the status API, sent to subscribers
//! (webhooks, `weiche events --follow`, the page) and appended to the journal on disk
//! (`ops::journal`).

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};

/// How many recent events are kept for `/status` and `/events`.
pub const KEEP: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    TargetDown,
    TargetUp,
    /// A pool's answer moved to a worse priority level.
    Failover,
    /// A pool's answer moved back to a better level.
    Failback,
    /// No target of a family is healthy: the all-down policy answers.
    AllDown,
    /// Out of all-down again.
    Recovered,
    Drain,
    Undrain,
    FailbackReleased,
    ZoneLoaded,
    ZoneError,
    ZoneRemoved,
    /// The event journal cannot be written (a full disk): once per episode.
    JournalFailed,
    /// The event journal is written again.
    JournalResumed,
    /// weiche started serving: what came before is history (the page's timelines tell a run
    /// from the next by it).
    Started,
    /// weiche stopped cleanly (kept in the journal only).
    Stopped,
    /// This cluster member left the primary component: it hears too little weight.
    QuorumLost,
    /// This cluster member is in the primary component (again).
    QuorumRegained,
    /// Another cluster member is heard again, or no longer.
    MemberUp,
    MemberDown,
    /// weiche.toml was read again (SIGHUP, `weiche reload`).
    ConfigReloaded,
    /// weiche.toml did not load: the previous configuration stays.
    ConfigError,
}

impl EventKind {
    /// As in the JSON, the CLI and metric labels: `failover`, `target_down`.
    pub fn name(self) -> &'static str {
        use EventKind::*;
        match self {
            TargetDown => "target_down",
            TargetUp => "target_up",
            Failover => "failover",
            Failback => "failback",
            AllDown => "all_down",
            Recovered => "recovered",
            Drain => "drain",
            Undrain => "undrain",
            FailbackReleased => "failback_released",
            ZoneLoaded => "zone_loaded",
            ZoneError => "zone_error",
            ZoneRemoved => "zone_removed",
            JournalFailed => "journal_failed",
            JournalResumed => "journal_resumed",
            Started => "started",
            Stopped => "stopped",
            QuorumLost => "quorum_lost",
            QuorumRegained => "quorum_regained",
            MemberUp => "member_up",
            MemberDown => "member_down",
            ConfigReloaded => "config_reloaded",
            ConfigError => "config_error",
        }
    }

    /// Events that notifications (webhooks, commands) are sent for.
    pub fn notifies(self) -> bool {
        use EventKind::*;
        matches!(
            self,
            Failover
                | Failback
                | AllDown
                | Recovered
                | Drain
                | Undrain
                | FailbackReleased
                | QuorumLost
                | QuorumRegained
        )
    }
}

/// One event, as logged, kept, sent to webhooks and read back by the CLI. Fields that do not
/// apply are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub kind: Option<EventKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// A or AAAA, for answer changes.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub rtype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Consecutive probe results that brought a target event about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The answer before and after, comma-separated addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The SOA serial served from now on, for a zone loaded (it may differ from the file's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// The cluster member an event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Why: a probe's failure cause, what changed, who asked.
    pub reason: String,
    /// One sentence for a person.
    pub message: String,
}

impl Event {
    pub fn new(kind: EventKind, reason: impl Into<String>) -> Event {
        Event { kind: Some(kind), reason: reason.into(), ..Default::default() }
    }

    /// The log line: WARN for trouble, ERROR for all down, INFO for recovery and operator actions.
    fn log(&self) {
        // Shown as plain text (not quoted), and left out when absent.
        let d = |v: &Option<String>| v.clone().map(tracing::field::display);
        let (pool, target, check, from, to) =
            (d(&self.pool), d(&self.target), d(&self.check), d(&self.from), d(&self.to));
        let (zone, rtype, reason) =
            (d(&self.zone), self.rtype.as_deref().map(tracing::field::display), self.reason.as_str());
        match self.kind.expect("events have a kind") {
            EventKind::TargetDown => {
                warn!(pool, target, check, failures = self.count, cause = reason, zone, "target down")
            }
            EventKind::TargetUp => info!(pool, target, check, successes = self.count, zone, "target up"),
            EventKind::Failover => {
                warn!(pool, r#type = rtype, from, to, priority = self.priority, reason, "answer changed")
            }
            EventKind::Failback => {
                info!(pool, r#type = rtype, from, to, priority = self.priority, reason, "answer changed")
            }
            EventKind::AllDown => {
                error!(pool, r#type = rtype, policy = d(&self.policy), answering = to, reason, "all targets down")
            }
            EventKind::Recovered => info!(pool, r#type = rtype, answering = to, reason, "targets back up"),
            EventKind::Drain => warn!(target, pool, reason, "target drained"),
            EventKind::Undrain => info!(target, pool, reason, "target undrained"),
            EventKind::FailbackReleased => info!(pool, reason, "manual failback released"),
            EventKind::ZoneLoaded => info!(zone, serial = self.serial, reason, "zone loaded"),
            EventKind::ZoneError => warn!(zone, reason, "zone file has errors"),
            EventKind::ZoneRemoved => warn!(zone, reason, "zone removed"),
            EventKind::JournalFailed => warn!(reason, "event journal not written"),
            EventKind::JournalResumed => info!(reason, "event journal written again"),
            // The server logs these itself, with more to say ("weiche serving", "shutting down").
            EventKind::Started => debug!(reason, "started"),
            EventKind::Stopped => debug!(reason, "stopped"),
            EventKind::QuorumLost => error!(reason, "cluster quorum lost"),
            EventKind::QuorumRegained => info!(reason, "cluster quorum regained"),
            EventKind::MemberUp => info!(member = d(&self.member), reason, "cluster member heard"),
            EventKind::MemberDown => warn!(member = d(&self.member), reason, "cluster member lost"),
            // The reloader has logged these with the file's name.
            EventKind::ConfigReloaded | EventKind::ConfigError => {}
        }
    }
}

/// The event journal in `state_dir/journal/`, and whether events reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Its folder (None: no journal; `server.state_dir` is not set).
    pub dir: Option<String>,
    /// Whether the latest write succeeded (None: no journal). While false, new events are kept
    /// in memory and written once the disk takes them again.
    pub persisted: Option<bool>,
    /// Why the latest write failed.
    pub error: Option<String>,
}

/// Where events are kept beyond memory (`ops::journal::Writer`, the journal on disk).
pub trait Sink: Send + Sync {
    /// Keeps `e`; never waits on the disk.
    fn append(&self, e: &Event);
    /// Whether what was appended reaches the disk.
    fn status(&self) -> JournalStatus;
}

/// The recent events, the subscribers to new ones, and the way to the journal on disk.
pub struct Journal {
    next: u64,
    recent: VecDeque<Event>,
    tx: broadcast::Sender<Event>,
    disk: Option<Box<dyn Sink>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal { next: 1, recent: VecDeque::new(), tx: broadcast::channel(1024).0, disk: None }
    }
}

impl Journal {
    /// Takes back the events a journal on disk kept (oldest first): they are kept as recent
    /// events again, with their times and numbers, and numbering goes on after them. Nothing
    /// is logged or sent: they happened before.
    pub fn restore(&mut self, events: Vec<Event>) {
        let extra = events.len().saturating_sub(KEEP);
        self.recent = events.into_iter().skip(extra).collect();
        if let Some(last) = self.recent.iter().map(|e| e.seq).max() {
            self.next = self.next.max(last + 1);
        }
    }

    /// Appends every event from now on to the journal on disk through `writer`.
    pub fn keep_on_disk(&mut self, writer: impl Sink + 'static) {
        self.disk = Some(Box::new(writer));
    }

    /// Whether events reach the journal on disk (all None without one).
    pub fn disk_status(&self) -> JournalStatus {
        self.disk.as_ref().map(|d| d.status()).unwrap_or_default()
    }

    /// Numbers, stamps, logs, keeps and broadcasts an event.
    pub fn push(&mut self, mut e: Event) {
        e.seq = self.next;
        self.next += 1;
        e.time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        if e.message.is_empty() {
            e.message = describe(&e);
        }
        e.log();
        if let Some(kind) = e.kind {
            metrics::counter!("weiche_events_total", "kind" => kind.name()).increment(1);
        }
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(e.clone());
        if let Some(disk) = &self.disk {
            disk.append(&e);
        }
        let _ = self.tx.send(e);
    }

    /// Events after `seq` (0: all kept), oldest first, at most `limit`.
    pub fn since(&self, seq: u64, limit: usize) -> Vec<Event> {
        let newer: Vec<&Event> = self.recent.iter().filter(|e| e.seq > seq).collect();
        newer[newer.len().saturating_sub(limit)..].iter().map(|e| (*e).clone()).collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A handle others can subscribe through later.
    pub fn sender(&self) -> broadcast::Sender<Event> {
        self.tx.clone()
    }
}

/// A clean stop is the last event of a run in the journal.
impl Drop for Journal {
    fn drop(&mut self) {
        if self.disk.is_some() {
            self.push(Event::new(EventKind::Stopped, "shut down"));
        }
    }
}

/// The sentence a person reads in a notification.
fn describe(e: &Event) -> String {
    let pool = e.pool.as_deref().unwrap_or("?");
    let rt = e.rtype.as_deref().unwrap_or("");
    match e.kind.expect("events have a kind") {
        EventKind::TargetDown => {
            format!("{pool}: target {} is down ({})", e.target.as_deref().unwrap_or("?"), e.reason)
        }
        EventKind::TargetUp => {
            let again = if e.from.as_deref() == Some("down") { " again" } else { "" };
            format!("{pool}: target {} is up{again}", e.target.as_deref().unwrap_or("?"))
        }
        EventKind::Failover => format!(
            "{pool} {rt} failed over from {} to {} ({})",
            e.from.as_deref().unwrap_or("?"),
            e.to.as_deref().unwrap_or("?"),
            e.reason
        ),
        EventKind::Failback => format!(
            "{pool} {rt} is back on {} (was {}; {})",
            e.to.as_deref().unwrap_or("?"),
            e.from.as_deref().unwrap_or("?"),
            e.reason
        ),
        EventKind::AllDown => format!(
            "{pool} {rt}: all targets down; answering {} by policy {}",
            e.to.as_deref().unwrap_or("nothing"),
            e.policy.as_deref().unwrap_or("?")
        ),
        EventKind::Recovered => format!("{pool} {rt}: targets back up; answering {}", e.to.as_deref().unwrap_or("?")),
        EventKind::Drain => format!(
            "target {} drained{}",
            e.target.as_deref().unwrap_or("?"),
            e.pool.as_deref().map(|p| format!(" in {p}")).unwrap_or_default()
        ),
        EventKind::Undrain => format!(
            "target {} undrained{}",
            e.target.as_deref().unwrap_or("?"),
            e.pool.as_deref().map(|p| format!(" in {p}")).unwrap_or_default()
        ),
        EventKind::FailbackReleased => format!("{pool}: manual failback released"),
        EventKind::ZoneLoaded => {
            let serving = e.serial.map(|s| format!(", serving serial {s}")).unwrap_or_default();
            format!("zone {} loaded{serving} ({})", e.zone.as_deref().unwrap_or("?"), e.reason)
        }
        EventKind::ZoneError => format!("zone {} not reloaded: {}", e.zone.as_deref().unwrap_or("?"), e.reason),
        EventKind::ZoneRemoved => format!("zone {} removed ({})", e.zone.as_deref().unwrap_or("?"), e.reason),
        EventKind::JournalFailed => format!("events are no longer written to the journal: {}", e.reason),
        EventKind::JournalResumed => format!("events are written to the journal again ({})", e.reason),
        EventKind::Started => format!("weiche started ({})", e.reason),
        EventKind::Stopped => format!("weiche stopped ({})", e.reason),
        EventKind::QuorumLost => format!("lost quorum: {}", e.reason),
        EventKind::QuorumRegained => format!("quorum regained: {}", e.reason),
        EventKind::MemberUp => format!("cluster member {} is heard", e.member.as_deref().unwrap_or("?")),
        EventKind::MemberDown => {
            format!("cluster member {} is lost ({})", e.member.as_deref().unwrap_or("?"), e.reason)
        }
        EventKind::ConfigReloaded => format!("configuration reloaded: {}", e.reason),
        EventKind::ConfigError => format!("configuration not reloaded: {}", e.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metric labels use the names of the JSON and the CLI.
    #[test]
    fn kind_names_are_the_json_names() {
        use EventKind::*;
        for k in [
            TargetDown,
            TargetUp,
            Failover,
            Failback,
            AllDown,
            Recovered,
            Drain,
            Undrain,
            FailbackReleased,
            ZoneLoaded,
            ZoneError,
            ZoneRemoved,
            JournalFailed,
            JournalResumed,
            Started,
            Stopped,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }

    #[test]
    fn journal_numbers_keeps_and_broadcasts() {
        let mut j = Journal::default();
        let mut rx = j.subscribe();
        for i in 0..(KEEP + 5) {
            j.push(Event { target: Some(format!("192.0.2.{}", i % 250)), ..Event::new(EventKind::Drain, "operator") });
        }
        assert_eq!(j.since(0, usize::MAX).len(), KEEP);
        assert_eq!(j.since(0, usize::MAX)[0].seq, 6);
        assert_eq!(
            j.since(KEEP as u64, 3).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![KEEP as u64 + 3, KEEP as u64 + 4, KEEP as u64 + 5]
        );
        let first = rx.try_recv().unwrap();
        assert_eq!((first.seq, first.message.as_str()), (1, "target 192.0.2.0 drained"));
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(json["kind"], "drain");
        assert!(json.get("pool").is_none(), "absent fields are left out");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), first, "the CLI reads back what was sent");
    }
}

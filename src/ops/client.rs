//! The command-line client of the HTTP API: `weiche status`, `drain`, `undrain`, `failback`,
//! `events`. It prints tables for people and JSON (`--json`) for scripts.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::ops::doc::{ApiError, DrainReply, FailbackReply, LastProbe, Status};
use crate::ops::events::Event;

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
    #[error("the API at {addr} answered with something this weiche cannot read: is it the same version? ({cause})")]
    Unreadable { addr: SocketAddr, cause: String },
}

impl Api {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Api {
        crate::config::install_crypto_provider();
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(75)).build().expect("an HTTP client");
        Api { addr, token, http }
    }

    async fn call<T: DeserializeOwned>(&self, post: bool, path: &str) -> Result<T, ClientError> {
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
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Unreadable { addr: self.addr, cause: e.to_string() });
        }
        // Whatever answers (a proxy, say) may not send our error document.
        let msg = serde_json::from_slice::<ApiError>(&bytes).map_or_else(|_| "request failed".into(), |e| e.error);
        Err(ClientError::Refused(format!("{msg} (HTTP {})", status.as_u16())))
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(false, "/status?events=10").await
    }

    pub async fn drain(&self, address: &str, pool: Option<&str>, drain: bool) -> Result<DrainReply, ClientError> {
        let verb = if drain { "drain" } else { "undrain" };
        let q = pool.map(|p| format!("?pool={p}")).unwrap_or_default();
        self.call(true, &format!("/targets/{address}/{verb}{q}")).await
    }

    pub async fn reload(&self) -> Result<crate::ops::doc::ReloadReply, ClientError> {
        self.call(true, "/reload").await
    }

    pub async fn failback(&self, pool: &str) -> Result<FailbackReply, ClientError> {
        self.call(true, &format!("/pools/{pool}/failback")).await
    }

    /// Events since `since` (a duration back or a time), from the journal and memory.
    pub async fn history(&self, since: &str, pool: Option<&str>) -> Result<Vec<Event>, ClientError> {
        let enc = |s: &str| s.replace('%', "%25").replace('+', "%2B").replace('&', "%26").replace(' ', "%20");
        let pool = pool.map(|p| format!("&pool={}", enc(p))).unwrap_or_default();
        self.call(false, &format!("/history?since={}{pool}&limit={}", enc(since), crate::ops::api::HISTORY_LIMIT)).await
    }

    pub async fn events(&self, since: u64, wait: u64) -> Result<Vec<Event>, ClientError> {
        self.call(false, &format!("/events?since={since}&wait={wait}")).await
    }
}

/// A value for a table cell; "-" when there is none.
fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The `weiche status` table.
pub fn status_table(st: &Status) -> String {
    let mut out = String::new();
    if st.state.persisted == Some(false) {
        let why = st.state.error.as_deref().unwrap_or("the state file cannot be written");
        let _ = writeln!(out, "STATE NOT PERSISTED: {why}");
        let _ = writeln!(out, "  drains, holds and serials changed since hold until weiche restarts only\n");
    }
    if st.journal.persisted == Some(false) {
        let why = st.journal.error.as_deref().unwrap_or("the event journal cannot be written");
        let _ = writeln!(out, "EVENT JOURNAL NOT WRITTEN: {why}");
        let _ = writeln!(out, "  new events are kept in memory until the disk takes them again\n");
    }
    if let Some(c) = &st.cluster {
        let role = if c.primary { "PRIMARY" } else { "NOT PRIMARY" };
        let _ = writeln!(
            out,
            "cluster: member {}, {role} (weight {} of {} heard, quorum {}), pool answers {}, minority = {}, \
             dissent on {} target(s)",
            c.member, c.heard_weight, c.total_weight, c.quorum, c.serving, c.minority, c.dissent
        );
        let _ = writeln!(
            out,
            "  {:<16} {:<12} {:>6}  {:<9} {:<7} last heard",
            "member", "site", "weight", "connected", "primary"
        );
        for m in &c.members {
            let name = if m.me { format!("{} (this)", m.name) } else { m.name.clone() };
            let yes = |b: bool| if b { "yes" } else { "no" };
            let connected = if m.away { "left" } else { yes(m.connected) };
            let heard = match (m.me, m.last_heard_ms) {
                (true, _) => "-".to_string(),
                (false, Some(ms)) => format!("{ms} ms ago"),
                (false, None) => "never".to_string(),
            };
            let witness = if m.witness { "  witness" } else { "" };
            let _ = writeln!(
                out,
                "  {name:<16} {:<12} {:>6}  {connected:<9} {:<7} {heard}{witness}",
                m.site,
                m.weight,
                yes(m.primary)
            );
        }
        let _ = writeln!(out);
    }
    for z in &st.zones {
        let err = z.last_error.as_ref().map(|e| format!("  LAST RELOAD FAILED: {e}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "zone {:<28} serial {:<12} loaded {}{err}",
            z.zone,
            or_dash(z.serial),
            or_dash(z.loaded_at.as_ref())
        );
        if let Some(d) = &z.dnssec {
            let keys: Vec<String> = d
                .keys
                .iter()
                .map(|k| {
                    let state = match (k.signing, k.published) {
                        (true, _) => "signing",
                        (false, true) => "published",
                        (false, false) => "not published",
                    };
                    format!("{} {} {state}", k.role, k.tag)
                })
                .collect();
            let _ = writeln!(
                out,
                "  signed, valid until {}, signed again {}; keys: {}",
                d.valid_until,
                d.next_signing,
                keys.join(", ")
            );
        }
    }
    for p in &st.pools {
        let _ = writeln!(out);
        let held = if p.held.is_some() { "  HELD (manual failback: weiche failback POOL)" } else { "" };
        // A server from before several checks per pool sends `check` alone.
        let checks = if p.checks.is_empty() { p.check.clone() } else { p.checks.join(",") };
        // The threshold only when it is not the default one target.
        let min_up =
            if p.min_up.is_empty() || p.min_up == "1" { String::new() } else { format!(" min_up={}", p.min_up) };
        let _ = writeln!(
            out,
            "pool {}  check={checks}{min_up} all_down={} failback={}{held}",
            p.pool, p.policy, p.failback
        );
        for (f, label, v6) in [(&p.a, "A", false), (&p.aaaa, "AAAA", true)] {
            // A family without targets has nothing to say.
            if !p.targets.iter().any(|t| t.address.is_ipv6() == v6) {
                continue;
            }
            let answer = if f.answer.is_empty() {
                "(nothing)".to_string()
            } else {
                f.answer.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(
                out,
                "  {label:<5} -> {answer}  (priority {}, {}, ttl {})",
                or_dash(f.priority),
                f.mode,
                f.ttl
            );
        }
        for t in &p.targets {
            let verdict = t.verdict.to_string().to_uppercase();
            let doubt = if t.in_doubt { " (in doubt)" } else { "" };
            let drained = if t.drained { "  DRAINED" } else { "" };
            // In a cluster, each member's own verdict (the line's verdict is the cluster's).
            let votes = match t.checks.as_slice() {
                [c] if !c.votes.is_empty() => votes_text(&c.votes),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "    {:<18} p{:<3} {:<8}{doubt} since {:<26} {}{drained}{votes}",
                t.address.to_string(),
                t.priority,
                verdict,
                or_dash(t.since.as_ref()),
                probe_text(&t.last_probe),
            );
            // Each check on its own line where one alone does not tell: several checks, or
            // checks of the target's own.
            let names: Vec<&String> = t.checks.iter().map(|c| &c.name).collect();
            if t.checks.len() > 1 || (!p.checks.is_empty() && names != p.checks.iter().collect::<Vec<_>>()) {
                for c in &t.checks {
                    let doubt = if c.in_doubt { " (in doubt)" } else { "" };
                    let _ = writeln!(
                        out,
                        "      check {:<20} {:<8}{doubt} since {:<26} {}{}",
                        c.name,
                        c.verdict.to_string().to_uppercase(),
                        or_dash(c.since.as_ref()),
                        probe_text(&c.last_probe),
                        votes_text(&c.votes),
                    );
                }
            }
        }
    }
    if !st.events.is_empty() {
        let _ = writeln!(out, "\nrecent events:");
        for e in &st.events {
            let _ = writeln!(out, "{}", event_line(e));
        }
    }
    out
}

/// Members' votes as `  votes a=up b=down` (nothing outside a cluster).
fn votes_text(votes: &std::collections::BTreeMap<String, crate::ops::doc::Verdict>) -> String {
    if votes.is_empty() {
        return String::new();
    }
    let list: Vec<String> = votes.iter().map(|(m, v)| format!("{m}={v}")).collect();
    format!("  votes {}", list.join(" "))
}

fn probe_text(p: &Option<LastProbe>) -> String {
    match p {
        None => "not probed yet".into(),
        Some(LastProbe { error: Some(e), .. }) => format!("last probe failed: {e}"),
        Some(LastProbe { latency_ms, .. }) => format!("last probe ok in {latency_ms} ms"),
    }
}

pub fn event_line(e: &Event) -> String {
    format!("  {} #{:<5} {:<17} {}", e.time, e.seq, or_dash(e.kind), e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_member_shows_the_members_and_their_votes() {
        use crate::cluster::peers::{ClusterStatus, MemberStatus};
        use crate::ops::doc::Verdict;
        let mut st = crate::ops::doc::tests::sample();
        let member = |name: &str, weight, me, connected, primary, last_heard_ms| MemberStatus {
            name: name.into(),
            site: format!("dc-{name}"),
            address: "192.0.2.1:8553".into(),
            weight,
            witness: name == "c",
            me,
            connected,
            primary,
            away: false,
            last_heard_ms,
        };
        st.cluster = Some(ClusterStatus {
            member: "a".into(),
            primary: true,
            serving: "normal".into(),
            minority: "withdraw".into(),
            heard_weight: 13,
            total_weight: 19,
            quorum: 10,
            members: vec![
                member("a", 5, true, true, true, None),
                member("b", 6, false, false, false, Some(2100)),
                member("c", 8, false, true, true, Some(120)),
            ],
            dissent: 1,
        });
        st.pools[0].targets[0].checks[0].votes =
            [("a", Verdict::Down), ("b", Verdict::Unknown), ("c", Verdict::Up)].map(|(m, v)| (m.into(), v)).into();
        let t = status_table(&st);
        for want in [
            "cluster: member a, PRIMARY (weight 13 of 19 heard, quorum 10), pool answers normal, minority = withdraw, dissent on 1 target(s)\n",
            "  a (this)         dc-a              5  yes       yes     -\n",
            "  b                dc-b              6  no        no      2100 ms ago\n",
            "  c                dc-c              8  yes       yes     120 ms ago  witness\n",
            "last probe failed: connection refused  votes a=down b=unknown c=up\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    #[test]
    fn table_reads_well() {
        let t = status_table(&crate::ops::doc::tests::sample());
        assert!(
            t.contains("zone example.com.                 serial 7            loaded 2026-11-21T00:00:00.000Z\n"),
            "{t}"
        );
        assert!(t.contains("pool www.example.com.  check=web all_down=keep-primary failback=auto\n"), "{t}");
        assert!(t.contains("  A     -> 192.0.2.11  (priority 2, fallback, ttl 5)\n"), "{t}");
        assert!(!t.contains("AAAA"), "no IPv6 targets, no AAAA line: {t}");
        assert!(!t.contains("      check "), "one check, the pool's: no line of its own: {t}");
        assert!(
            t.contains("    192.0.2.10         p1   DOWN     since 2026-11-21T00:01:00.000Z   last probe failed: connection refused\n"),
            "{t}"
        );
        assert!(t.contains("p2   UP       since 2026-11-21T00:01:00.000Z   last probe ok in 1.5 ms  DRAINED\n"), "{t}");
        assert!(
            t.contains("  2026-11-21T00:01:00.000Z #3     failover          www.example.com. A failed over\n"),
            "{t}"
        );
        assert!(!t.contains("HELD"), "{t}");
        assert!(!t.contains("PERSISTED"), "{t}");
    }

    #[test]
    fn a_signed_zone_shows_until_when_and_its_keys() {
        use crate::ops::doc::{DnssecStatus, KeyStatus};
        let mut st = crate::ops::doc::tests::sample();
        let key = |tag, role: &str, signing| KeyStatus {
            tag,
            algorithm: 13,
            role: role.into(),
            published: true,
            signing,
            file: format!("/k/Kexample.com.+013+{tag:05}.key"),
        };
        st.zones[0].dnssec = Some(DnssecStatus {
            signed_at: "2026-12-02T12:00:00.000Z".into(),
            valid_until: "2026-12-16T12:00:00.000Z".into(),
            next_signing: "2026-12-09T12:00:00.000Z".into(),
            keys: vec![key(12345, "KSK", true), key(23456, "ZSK", true), key(34567, "ZSK", false)],
        });
        let t = status_table(&st);
        assert!(
            t.contains(
                "  signed, valid until 2026-12-16T12:00:00.000Z, signed again 2026-12-09T12:00:00.000Z; keys: \
                 KSK 12345 signing, ZSK 23456 signing, ZSK 34567 published\n"
            ),
            "{t}"
        );
    }

    #[test]
    fn table_says_first_when_the_state_is_not_persisted() {
        let mut st = crate::ops::doc::tests::sample();
        st.state.persisted = Some(false);
        st.state.error = Some("cannot write the state file /s/weiche-state.json: No space left on device".into());
        let t = status_table(&st);
        assert!(
            t.starts_with(
                "STATE NOT PERSISTED: cannot write the state file /s/weiche-state.json: No space left on device\n  \
                 drains, holds and serials changed since hold until weiche restarts only\n\nzone example.com."
            ),
            "{t}"
        );
    }

    #[test]
    fn table_says_first_when_the_journal_is_not_written() {
        let mut st = crate::ops::doc::tests::sample();
        st.journal.persisted = Some(false);
        st.journal.error = Some("cannot write the event journal in /s/journal: File too large (os error 27)".into());
        let t = status_table(&st);
        assert!(
            t.starts_with(
                "EVENT JOURNAL NOT WRITTEN: cannot write the event journal in /s/journal: File too large (os error 27)\n  \
                 new events are kept in memory until the disk takes them again\n\nzone example.com."
            ),
            "{t}"
        );
    }

    #[test]
    fn table_shows_holds_errors_and_targets_not_probed() {
        let mut st = crate::ops::doc::tests::sample();
        st.zones[0].last_error = Some("example.com.toml:3:9: bad address".into());
        st.zones[0].serial = None;
        st.pools[0].held = Some(crate::ops::doc::Held { a: Some(2), aaaa: None });
        let t = &mut st.pools[0].targets[0];
        (t.address, t.last_probe, t.since, t.in_doubt) = ("2001:db8::1".parse().unwrap(), None, None, true);
        let t = status_table(&st);
        assert!(t.contains("serial -            loaded"), "{t}");
        assert!(t.contains("LAST RELOAD FAILED: example.com.toml:3:9: bad address"), "{t}");
        assert!(t.contains("failback=auto  HELD (manual failback: weiche failback POOL)"), "{t}");
        assert!(t.contains("  AAAA  -> (nothing)  (priority -, alldown, ttl 5)"), "{t}");
        assert!(t.contains("2001:db8::1        p1   DOWN     (in doubt) since -"), "{t}");
        assert!(t.contains("not probed yet"), "{t}");
    }

    #[test]
    fn table_shows_each_check_where_one_alone_does_not_tell() {
        let mut st = crate::ops::doc::tests::sample();
        let p = &mut st.pools[0];
        p.checks = vec!["web".into(), "db".into()];
        let mut db = p.targets[0].checks[0].clone();
        (db.name, db.verdict, db.in_doubt) = ("db".into(), crate::ops::doc::Verdict::Up, true);
        p.targets[0].checks.push(db);
        p.targets[1].checks[0].name = "weak".into();
        let t = status_table(&st);
        assert!(t.contains("pool www.example.com.  check=web,db all_down"), "{t}");
        assert!(
            t.contains(
                "last probe failed: connection refused\n      \
                 check web                  DOWN     since 2026-11-21T00:01:00.000Z   last probe failed: connection refused\n      \
                 check db                   UP       (in doubt) since 2026-11-21T00:01:00.000Z   last probe failed: connection refused\n"
            ),
            "{t}"
        );
        assert!(t.contains("DRAINED\n      check weak  "), "a target's own check is shown: {t}");
    }
}

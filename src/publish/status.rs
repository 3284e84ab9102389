//! The `/status` document: a view of the publisher's state, built on request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::{ProbeStatus, Publisher, hold_key, rfc3339};
use crate::model::chart::Health;
use crate::model::pool::Target;
use crate::model::snapshot::FamilyAnswer;
use crate::monitor::{ProbeKey, TargetState};
use crate::ops::doc::{
    CheckProbes, CheckStatus, Drained, FamilyStatus, Held, LastProbe, PoolProbes, PoolStatus, ProbeSample, Probes,
    Status, Streak, TargetProbes, TargetStatus, ZoneStatus,
};
use crate::ops::events::Event;

fn dnssec_status(s: &crate::dnssec::zone::SignedZone) -> crate::ops::doc::DnssecStatus {
    let at = |t: u64| rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(t));
    let active = crate::dnssec::keys::active_at(&s.keys, s.signed_at);
    let keys = s
        .keys
        .iter()
        .map(|k| crate::ops::doc::KeyStatus {
            tag: k.tag,
            algorithm: k.algorithm.number(),
            role: if k.is_ksk() { "KSK" } else { "ZSK" }.into(),
            published: active.published.iter().any(|p| std::ptr::eq(*p, k)),
            signing: active.zone_signers.iter().chain(&active.key_signers).any(|p| std::ptr::eq(*p, k)),
            file: k.path.display().to_string(),
        })
        .collect();
    crate::ops::doc::DnssecStatus {
        signed_at: at(s.signed_at),
        valid_until: at(u64::from(s.window.expiration)),
        next_signing: at(s.refresh_at),
        keys,
    }
}

impl Publisher {
    /// Everything an operator wants to see at a glance (the `/status` document), with `recent`
    /// events.
    pub fn status(&self, recent: Vec<Event>) -> Status {
        let snap = &self.current;
        let zones = self
            .tracked
            .values()
            .map(|t| ZoneStatus {
                zone: t.file.apex.to_string(),
                serial: snap.zone(&t.file.apex.key()).map(|e| e.serial),
                file_serial: t.served.as_ref().map(|z| z.serial),
                served: t.served.is_some(),
                files: t.files.iter().map(|f| f.display().to_string()).collect(),
                loaded_at: t.loaded_at.map(rfc3339),
                last_error: t.last_error.clone(),
                dnssec: t.signed.as_ref().map(|s| dnssec_status(s)),
            })
            .collect();
        let mut pools = Vec::new();
        for entry in &snap.zones {
            let zone = &entry.zone;
            let keys = self.index.per_zone.get(&(Arc::as_ptr(zone) as usize));
            for (pi, pool) in zone.pools.iter().enumerate() {
                let hold = hold_key(&pool.name);
                let answer = &entry.answers[pi];
                let targets = pool
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| {
                        let drained = self.admin.is_drained(t.address, &hold);
                        self.target_status(t, keys.map(|k| k[pi][ti].as_slice()), drained)
                    })
                    .collect();
                pools.push(PoolStatus {
                    pool: pool.name.to_string(),
                    zone: zone.apex.to_string(),
                    check: pool.checks[0].name.clone(),
                    checks: pool.checks.iter().map(|c| c.name.clone()).collect(),
                    min_up: pool.min_up.to_string(),
                    policy: pool.all_down.into(),
                    failback: pool.failback.into(),
                    held: self.admin.held.get(&hold).map(|h| Held { a: h[0], aaaa: h[1] }),
                    a: family(&answer.a),
                    aaaa: family(&answer.aaaa),
                    targets,
                });
            }
        }
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            zones,
            pools,
            drained: self.admin.drained.iter().map(|d| Drained { address: d.address, pool: d.pool.clone() }).collect(),
            events: recent,
            // The state file, the journal and the cluster are the driver's to report.
            state: Default::default(),
            config: Default::default(),
            journal: Default::default(),
            cluster: None,
        }
    }
}

impl Publisher {
    /// The `/probes` document: every pool target's latest probes, per check.
    pub fn probes(&self) -> Probes {
        let mut pools = Vec::new();
        for entry in &self.current.zones {
            let keys = self.index.per_zone.get(&(Arc::as_ptr(&entry.zone) as usize));
            for (pi, pool) in entry.zone.pools.iter().enumerate() {
                let targets = pool
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| TargetProbes {
                        address: t.address,
                        checks: t
                            .checks
                            .iter()
                            .enumerate()
                            .map(|(ci, tc)| {
                                let key = keys.map(|k| &k[pi][ti][ci]);
                                let recent = key.and_then(|k| self.probes.get(k)).map_or_else(Vec::new, |st| {
                                    st.recent
                                        .iter()
                                        .map(|r| ProbeSample {
                                            at: r.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                                            latency_ms: (f64::from(r.latency_ms) * 10.0).round() / 10.0,
                                            ok: r.ok,
                                        })
                                        .collect()
                                });
                                CheckProbes { name: tc.check.name.clone(), probe: tc.probe, recent }
                            })
                            .collect(),
                    })
                    .collect();
                pools.push(PoolProbes { pool: pool.name.to_string(), targets });
            }
        }
        Probes { pools }
    }

    /// A target as its checks judge it together, and each check on its own. `keys` are its
    /// probe keys, one per check (None: not indexed, so nothing is known).
    fn target_status(&self, t: &Target, keys: Option<&[ProbeKey]>, drained: bool) -> TargetStatus {
        let seen: Vec<_> = (0..t.checks.len())
            .map(|ci| {
                let key = keys.map(|k| &k[ci]);
                (key.and_then(|k| self.verdicts.get(k)), key.and_then(|k| self.probes.get(k)))
            })
            .collect();
        let checks: Vec<CheckStatus> = t
            .checks
            .iter()
            .zip(&seen)
            .map(|(tc, (v, st))| CheckStatus {
                name: tc.check.name.clone(),
                probe: tc.probe,
                verdict: v.map_or(Health::Unknown, |v| v.verdict).into(),
                in_doubt: v.is_some_and(TargetState::in_doubt),
                since: st.map(|s| rfc3339(s.since)),
                last_probe: st.map(last_probe),
                streak: v.map(|v| Streak { ok: v.last_ok, count: v.streak }),
                votes: Default::default(),
            })
            .collect();
        let (verdict, due) = keys.map_or((Health::Unknown, None), |k| super::judge(k, &self.verdicts));
        // Up since its last check came up; down since the first of those down now went down.
        let down = |v: &Option<&TargetState>| v.is_some_and(|v| v.verdict == Health::Down);
        let since =
            seen.iter().filter(|(v, _)| verdict != Health::Down || down(v)).filter_map(|(_, st)| st.map(|s| s.since));
        let since = if verdict == Health::Down { since.min() } else { since.max() };
        let telling = most_telling(&seen).map(|ci| &checks[ci]);
        TargetStatus {
            address: t.address,
            probe: t.probe(),
            priority: t.priority,
            verdict: verdict.into(),
            in_doubt: due.is_some(),
            since: since.map(rfc3339),
            last_probe: telling.and_then(|c| c.last_probe.clone()),
            streak: telling.and_then(|c| c.streak),
            drained,
            checks,
        }
    }
}

/// Which check's last probe tells most about its target: a failure (of a check that is down,
/// first), else the slowest; the first written among equals.
fn most_telling(seen: &[(Option<&TargetState>, Option<&ProbeStatus>)]) -> Option<usize> {
    let rank = |(v, s): &(Option<&TargetState>, Option<&ProbeStatus>)| {
        let failed = s.is_some_and(|s| s.error.is_some());
        (s.is_some(), failed, v.is_some_and(|v| v.verdict == Health::Down))
    };
    let latency = |(_, s): &(Option<&TargetState>, Option<&ProbeStatus>)| s.map_or(0.0, |s| s.latency_ms);
    let order = |a: &_, b: &_| rank(a).cmp(&rank(b)).then(latency(a).total_cmp(&latency(b)));
    // `max_by` keeps the last of equals: look from the end.
    seen.iter().enumerate().rev().max_by(|(_, a), (_, b)| order(a, b)).map(|(ci, _)| ci)
}

fn last_probe(s: &ProbeStatus) -> LastProbe {
    LastProbe {
        at: rfc3339(s.checked_at),
        ok: s.error.is_none(),
        latency_ms: (s.latency_ms * 10.0).round() / 10.0,
        error: s.error.clone(),
    }
}

fn family(f: &FamilyAnswer) -> FamilyStatus {
    let answer = f
        .rrset
        .rdatas()
        .filter_map(|rd| match rd.len() {
            4 => <[u8; 4]>::try_from(rd).ok().map(|b| IpAddr::from(Ipv4Addr::from(b))),
            16 => <[u8; 16]>::try_from(rd).ok().map(|b| IpAddr::from(Ipv6Addr::from(b))),
            _ => None,
        })
        .collect();
    FamilyStatus { answer, priority: f.level, mode: f.mode.into(), ttl: f.rrset.ttl }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::monitor::Update;

    const POOL: &str = r#"records = '''
$TTL 60
@ SOA ns1 hm 7 1h 10m 14d 300
@ NS ns1
ns1 A 192.0.2.53
'''
[pools.www]
failback = "manual"
check = { type = "tcp", port = 80, fall = 1, rise = 1 }
targets = [{ address = "127.0.0.1", priority = 1 }, { address = "127.0.0.2", priority = 2 }, { address = "::1", priority = 1 }]
"#;

    fn update(p: &Publisher, addr: &str, ok: bool) -> Update {
        let key = p.probe_keys().into_iter().find(|k| k.addr == addr.parse().unwrap()).unwrap();
        let mut state = p.verdicts.get(&key).cloned().unwrap_or_default();
        let transition = state.observe(ok, key.check.0.rise, key.check.0.fall);
        let cause = (!ok).then(|| "connection refused".into());
        Update {
            key,
            state,
            transition,
            cause,
            latency: std::time::Duration::from_micros(1234),
            probed: true,
            decided_by: None,
        }
    }

    fn publisher(zone: &str) -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), zone).unwrap();
        let mut p = Publisher::new(Default::default());
        let reload = crate::load::watch::Watcher::new(dir.path()).reconcile(true).unwrap().unwrap();
        p.set_zones(reload, super::super::Now::read());
        p
    }

    /// Times and paths vary from run to run; the shape must not.
    fn normalized(mut v: Value) -> Value {
        fn walk(v: &mut Value) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m.iter_mut() {
                        match k.as_str() {
                            "since" | "at" | "loaded_at" | "time" if x.is_string() => *x = "T".into(),
                            "version" if x == env!("CARGO_PKG_VERSION") => *x = "V".into(),
                            "files" => *x = json!(["F"]),
                            _ => walk(x),
                        }
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut v);
        v
    }

    /// The document scripts and the checkmk check parse (README, "The HTTP API"): field names,
    /// nulls and nesting are pinned here.
    #[test]
    fn the_status_document_keeps_its_shape() {
        let mut p = publisher(POOL);
        let mut journal = crate::ops::events::Journal::default();
        let now = super::super::Now::read();
        for (a, ok) in [("127.0.0.1:80", true), ("127.0.0.2:80", true), ("[::1]:80", true), ("127.0.0.1:80", false)] {
            let u = update(&p, a, ok);
            p.apply_all(vec![u], now);
        }
        let www = crate::model::name::Name::parse("www.example.com.", None).unwrap();
        p.set_drain("::1".parse().unwrap(), Some(&www), true, now).unwrap();
        p.take_effects().events.into_iter().for_each(|e| journal.push(e));
        let got = normalized(serde_json::to_value(p.status(journal.since(0, 2))).unwrap());
        let want: Value = serde_json::from_str(
            r#"{
            "drained": [{"address": "::1", "pool": "www.example.com."}],
            "events": [
                {
                    "kind": "drain",
                    "message": "target ::1 drained in www.example.com.",
                    "pool": "www.example.com.",
                    "reason": "operator",
                    "seq": 7,
                    "target": "::1",
                    "time": "T"
                },
                {
                    "from": "::1",
                    "kind": "all_down",
                    "message": "www.example.com. AAAA: all targets down; answering (nothing) by policy keep-primary",
                    "policy": "keep-primary",
                    "pool": "www.example.com.",
                    "reason": "::1 drained by operator",
                    "seq": 8,
                    "time": "T",
                    "to": "(nothing)",
                    "type": "AAAA",
                    "zone": "example.com."
                }
            ],
            "pools": [
                {
                    "a": {"answer": ["127.0.0.2"], "mode": "fallback", "priority": 2, "ttl": 5},
                    "aaaa": {"answer": [], "mode": "alldown", "priority": null, "ttl": 5},
                    "check": "www (inline)",
                    "checks": ["www (inline)"],
                    "min_up": "1",
                    "failback": "manual",
                    "held": {"a": 2, "aaaa": null},
                    "policy": "keep-primary",
                    "pool": "www.example.com.",
                    "targets": [
                        {
                            "address": "127.0.0.1",
                            "checks": [
                                {
                                    "in_doubt": false,
                                    "last_probe": {"at": "T", "error": "connection refused", "latency_ms": 1.2, "ok": false},
                                    "name": "www (inline)",
                                    "probe": "127.0.0.1:80",
                                    "since": "T",
                                    "streak": {"count": 1, "ok": false},
                                    "verdict": "down"
                                }
                            ],
                            "drained": false,
                            "in_doubt": false,
                            "last_probe": {"at": "T", "error": "connection refused", "latency_ms": 1.2, "ok": false},
                            "priority": 1,
                            "probe": "127.0.0.1:80",
                            "since": "T",
                            "streak": {"count": 1, "ok": false},
                            "verdict": "down"
                        },
                        {
                            "address": "127.0.0.2",
                            "checks": [
                                {
                                    "in_doubt": false,
                                    "last_probe": {"at": "T", "error": null, "latency_ms": 1.2, "ok": true},
                                    "name": "www (inline)",
                                    "probe": "127.0.0.2:80",
                                    "since": "T",
                                    "streak": {"count": 1, "ok": true},
                                    "verdict": "up"
                                }
                            ],
                            "drained": false,
                            "in_doubt": false,
                            "last_probe": {"at": "T", "error": null, "latency_ms": 1.2, "ok": true},
                            "priority": 2,
                            "probe": "127.0.0.2:80",
                            "since": "T",
                            "streak": {"count": 1, "ok": true},
                            "verdict": "up"
                        },
                        {
                            "address": "::1",
                            "checks": [
                                {
                                    "in_doubt": false,
                                    "last_probe": {"at": "T", "error": null, "latency_ms": 1.2, "ok": true},
                                    "name": "www (inline)",
                                    "probe": "[::1]:80",
                                    "since": "T",
                                    "streak": {"count": 1, "ok": true},
                                    "verdict": "up"
                                }
                            ],
                            "drained": true,
                            "in_doubt": false,
                            "last_probe": {"at": "T", "error": null, "latency_ms": 1.2, "ok": true},
                            "priority": 1,
                            "probe": "[::1]:80",
                            "since": "T",
                            "streak": {"count": 1, "ok": true},
                            "verdict": "up"
                        }
                    ],
                    "zone": "example.com."
                }
            ],
            "state": {"error": null, "file": null, "persisted": null},
            "journal": {"dir": null, "error": null, "persisted": null},
            "config": {"file": null, "last_error": null, "loaded_at": null},
            "version": "V",
            "zones": [
                {
                    "file_serial": 7,
                    "files": ["F"],
                    "last_error": null,
                    "loaded_at": "T",
                    "serial": 7,
                    "served": true,
                    "zone": "example.com."
                }
            ]
        }"#,
        )
        .unwrap();
        assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
    }

    /// A target with two checks: its verdict is the worst, its last probe the failure, and
    /// each check shows its own.
    #[test]
    fn each_check_of_a_target_is_shown_and_the_worst_is_its_verdict() {
        let pool = POOL.replace(
            "check = { type = \"tcp\", port = 80, fall = 1, rise = 1 }",
            "check = [{ type = \"tcp\", port = 80, fall = 1, rise = 1 }, { type = \"tcp\", port = 81, fall = 3, rise = 1 }]",
        );
        let mut p = publisher(&pool);
        let now = super::super::Now::read();
        for (a, ok) in
            [("127.0.0.1:80", true), ("127.0.0.1:81", true), ("127.0.0.1:81", false), ("127.0.0.2:81", false)]
        {
            let u = update(&p, a, ok);
            p.apply_all(vec![u], now);
        }
        let st = p.status(vec![]);
        let pool = &st.pools[0];
        assert_eq!(
            (pool.check.as_str(), pool.checks.as_slice()),
            ("www (inline 1)", &["www (inline 1)".to_string(), "www (inline 2)".into()][..])
        );
        let t = &pool.targets[0];
        let seen: Vec<_> =
            t.checks.iter().map(|c| (c.name.as_str(), c.probe.to_string(), c.verdict, c.in_doubt)).collect();
        assert_eq!(
            seen,
            [
                ("www (inline 1)", "127.0.0.1:80".to_string(), crate::ops::doc::Verdict::Up, false),
                ("www (inline 2)", "127.0.0.1:81".to_string(), crate::ops::doc::Verdict::Up, true),
            ]
        );
        // Up, and in doubt: one failure of three on port 81.
        assert_eq!(
            (t.verdict, t.in_doubt, t.probe.to_string()),
            (crate::ops::doc::Verdict::Up, true, "127.0.0.1:80".to_string())
        );
        let last = t.last_probe.as_ref().unwrap();
        assert_eq!(
            (last.ok, last.error.as_deref()),
            (false, Some("connection refused")),
            "the failure is the telling probe"
        );
        assert_eq!(t.streak.map(|s| (s.ok, s.count)), Some((Some(false), 1)));
        // The secondary: one check down, one not probed yet.
        let t = &pool.targets[1];
        assert_eq!((t.verdict, t.in_doubt), (crate::ops::doc::Verdict::Down, false));
        assert_eq!(
            t.checks.iter().map(|c| c.verdict).collect::<Vec<_>>(),
            [crate::ops::doc::Verdict::Unknown, crate::ops::doc::Verdict::Down]
        );
        assert!(t.checks[0].last_probe.is_none() && t.checks[1].last_probe.is_some() && t.since.is_some());
    }

    /// `/probes` keeps the latest probes of each check of each target, oldest first, and no
    /// more than [`super::super::RECENT_PROBES`] of them.
    #[test]
    fn the_latest_probes_are_kept_per_check_within_the_bound() {
        let mut p = publisher(POOL);
        let now = super::super::Now::read();
        let total = super::super::RECENT_PROBES + 7;
        for i in 0..total {
            let u = update(&p, "127.0.0.1:80", i % 10 != 3);
            p.apply_all(vec![u], now);
        }
        let u = update(&p, "127.0.0.2:80", true);
        p.apply_all(vec![u], now);
        let doc = p.probes();
        let pool = &doc.pools[0];
        assert_eq!(pool.pool, "www.example.com.");
        let addrs: Vec<String> = pool.targets.iter().map(|t| t.address.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1", "127.0.0.2", "::1"], "in the order of /status");
        let first = &pool.targets[0].checks[0];
        assert_eq!((first.name.as_str(), first.probe.to_string()), ("www (inline)", "127.0.0.1:80".to_string()));
        assert_eq!(first.recent.len(), super::super::RECENT_PROBES);
        // The oldest seven went: the first kept is probe 7, and probe 13 failed.
        let ok: Vec<bool> = first.recent.iter().map(|r| r.ok).collect();
        assert_eq!(ok.iter().position(|ok| !ok), Some(13 - 7), "{ok:?}");
        assert!(first.recent.iter().all(|r| r.latency_ms == 1.2 && r.at > 0));
        assert_eq!(pool.targets[1].checks[0].recent.len(), 1);
        assert!(pool.targets[2].checks[0].recent.is_empty(), "not probed yet");
    }
}

//! The `/status` document: a view of the publisher's state, built on request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::{Publisher, hold_key, rfc3339};
use crate::model::chart::Health;
use crate::model::snapshot::FamilyAnswer;
use crate::monitor::TargetState;
use crate::ops::doc::{Drained, FamilyStatus, Held, LastProbe, PoolStatus, Status, Streak, TargetStatus, ZoneStatus};
use crate::ops::events::Event;

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
                        let key = keys.map(|k| &k[pi][ti]);
                        let v = key.and_then(|k| self.verdicts.get(k));
                        let st = key.and_then(|k| self.probes.get(k));
                        TargetStatus {
                            address: t.address,
                            probe: t.probe,
                            priority: t.priority,
                            verdict: v.map_or(Health::Unknown, |v| v.verdict).into(),
                            in_doubt: v.is_some_and(TargetState::in_doubt),
                            since: st.map(|s| rfc3339(s.since)),
                            last_probe: st.map(|s| LastProbe {
                                at: rfc3339(s.checked_at),
                                ok: s.error.is_none(),
                                latency_ms: (s.latency_ms * 10.0).round() / 10.0,
                                error: s.error.clone(),
                            }),
                            streak: v.map(|v| Streak { ok: v.last_ok, count: v.streak }),
                            drained: self.admin.is_drained(t.address, &hold),
                        }
                    })
                    .collect();
                pools.push(PoolStatus {
                    pool: pool.name.to_string(),
                    zone: zone.apex.to_string(),
                    check: pool.check.name.clone(),
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
        }
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
        Update { key, state, transition, cause, latency: std::time::Duration::from_micros(1234) }
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
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), POOL).unwrap();
        let mut p = Publisher::new(Default::default());
        let mut journal = crate::ops::events::Journal::default();
        let reload = crate::load::watch::Watcher::new(dir.path()).reconcile(true).unwrap().unwrap();
        let now = super::super::Now::read();
        p.set_zones(reload, now);
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
                    "failback": "manual",
                    "held": {"a": 2, "aaaa": null},
                    "policy": "keep-primary",
                    "pool": "www.example.com.",
                    "targets": [
                        {
                            "address": "127.0.0.1",
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
}

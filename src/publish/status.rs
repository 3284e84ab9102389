//! The `/status` document: a view of the publisher's state, built on request.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Publisher, addresses, hold_key, rfc3339};
use crate::model::chart::Health;
use crate::model::snapshot::FamilyAnswer;
use crate::monitor::TargetState;
use crate::ops::events::Event;

impl Publisher {
    /// Everything an operator wants to see at a glance, as JSON (the `/status` document).
    pub fn status(&self, recent: Vec<Event>) -> Value {
        let snap = &self.current;
        let zones: Vec<Value> = self
            .tracked
            .values()
            .map(|t| {
                json!({
                    "zone": t.file.apex.to_string(),
                    "serial": snap.zone(&t.file.apex.key()).map(|e| e.serial),
                    "file_serial": t.served.as_ref().map(|z| z.serial),
                    "served": t.served.is_some(),
                    "files": t.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    "loaded_at": t.loaded_at.map(rfc3339),
                    "last_error": t.last_error,
                })
            })
            .collect();
        let mut pools = Vec::new();
        for entry in &snap.zones {
            let zone = &entry.zone;
            let keys = self.index.per_zone.get(&(Arc::as_ptr(zone) as usize));
            for (pi, pool) in zone.pools.iter().enumerate() {
                let hold = hold_key(&pool.name);
                let answer = &entry.answers[pi];
                let family = |f: &FamilyAnswer| {
                    json!({
                        "answer": addresses(f).split(',').filter(|a| !a.is_empty() && *a != "(nothing)").collect::<Vec<_>>(),
                        "priority": f.level,
                        "mode": format!("{:?}", f.mode).to_lowercase(),
                        "ttl": f.rrset.ttl,
                    })
                };
                let targets: Vec<Value> = pool
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| {
                        let key = keys.map(|k| &k[pi][ti]);
                        let v = key.and_then(|k| self.verdicts.get(k));
                        let st = key.and_then(|k| self.probes.get(k));
                        json!({
                            "address": t.address.to_string(),
                            "probe": t.probe.to_string(),
                            "priority": t.priority,
                            "verdict": format!("{:?}", v.map_or(Health::Unknown, |v| v.verdict)).to_lowercase(),
                            "in_doubt": v.is_some_and(TargetState::in_doubt),
                            "since": st.map(|s| rfc3339(s.since)),
                            "last_probe": st.map(|s| json!({
                                "at": rfc3339(s.checked_at),
                                "ok": s.error.is_none(),
                                "latency_ms": (s.latency_ms * 10.0).round() / 10.0,
                                "error": s.error,
                            })),
                            "streak": v.map(|v| json!({"ok": v.last_ok, "count": v.streak})),
                            "drained": self.admin.is_drained(t.address, &hold),
                        })
                    })
                    .collect();
                pools.push(json!({
                    "pool": pool.name.to_string(),
                    "zone": zone.apex.to_string(),
                    "check": pool.check.name,
                    "policy": pool.all_down.to_string(),
                    "failback": format!("{:?}", pool.failback).to_lowercase(),
                    "held": self.admin.held.get(&hold).map(|h| json!({"a": h[0], "aaaa": h[1]})),
                    "a": family(&answer.a),
                    "aaaa": family(&answer.aaaa),
                    "targets": targets,
                }));
            }
        }
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "zones": zones,
            "pools": pools,
            "drained": self.admin.drained.iter().map(|d| json!({"address": d.address.to_string(), "pool": d.pool})).collect::<Vec<_>>(),
            "events": recent,
        })
    }
}

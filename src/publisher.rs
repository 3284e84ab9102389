//! The publisher: the one owner of what is served. It loads zones, notices changed files, and
//! builds and publishes each new snapshot.
//!
//! Rules it keeps: a file that fails to load leaves the previous version of its zone serving;
//! a file is loaded only once it has stopped changing (same size, time and inode on two looks in
//! a row), so a half-written file is never served; a deleted file removes its zone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::chart::{Admin, Failback, Health, Mode};
use crate::config::Pool;
use crate::loader::{self, Kind, ZoneFile};
use crate::monitor::{ProbeKey, TargetState, Update};
use crate::snapshot::{FamilyAnswer, Snapshot, ZoneEntry, pool_answer};
use crate::zone::Zone;

/// What a file looked like: changes to any of these mean "read it again".
type Signature = Option<(SystemTime, u64, u64)>;

fn signature(path: &Path) -> Signature {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn signatures(files: &[PathBuf]) -> Vec<Signature> {
    files.iter().map(|f| signature(f)).collect()
}

/// A zone file as last seen.
struct Tracked {
    file: ZoneFile,
    /// Files it read, and how they looked when read.
    files: Vec<PathBuf>,
    seen: Vec<Signature>,
    /// What is being served from it (None: it never loaded).
    served: Option<Arc<Zone>>,
}

pub type Store = Arc<ArcSwap<Snapshot>>;

/// Which probe key each pool target has, and which pools each key serves.
#[derive(Default)]
struct ProbeIndex {
    /// Per served zone (by address of its `Arc`): per pool, per target.
    per_zone: HashMap<usize, Vec<Vec<ProbeKey>>>,
    users: HashMap<ProbeKey, Vec<(Arc<Zone>, usize)>>,
}

pub struct Publisher {
    dir: PathBuf,
    store: Store,
    tracked: BTreeMap<PathBuf, Tracked>,
    /// Changed files waiting to be seen unchanged once more before loading.
    pending: BTreeMap<PathBuf, Vec<Signature>>,
    /// The monitor's latest word on each probed target.
    verdicts: HashMap<ProbeKey, TargetState>,
    /// Probe keys of the served pools, built when zones change.
    index: ProbeIndex,
    /// When each target last came back up from down (for `failback_delay`).
    recovered: HashMap<ProbeKey, Instant>,
    /// The next moment a `failback_delay` runs out and answers must be recomputed.
    wake_at: Option<Instant>,
    /// What each pool answered last, per family (A, AAAA), keyed by the pool's name.
    answered: HashMap<Box<[u8]>, [FamilyAnswer; 2]>,
    /// Levels held by manual failback, per pool name and family.
    held: HashMap<Box<[u8]>, [Option<u8>; 2]>,
}

impl Publisher {
    pub fn new(dir: &Path) -> Publisher {
        Publisher {
            dir: dir.into(),
            store: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            tracked: BTreeMap::new(),
            pending: BTreeMap::new(),
            verdicts: HashMap::new(),
            index: ProbeIndex::default(),
            recovered: HashMap::new(),
            wake_at: None,
            answered: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Every (address, check) the served pools need probed.
    pub fn probe_keys(&self) -> Vec<ProbeKey> {
        self.index.users.keys().cloned().collect()
    }

    /// Rebuilds the probe index from the served zones (after zones changed).
    fn reindex(&mut self) {
        let mut index = ProbeIndex::default();
        for zone in self.tracked.values().filter_map(|t| t.served.as_ref()) {
            let keys: Vec<Vec<ProbeKey>> = zone
                .pools
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    let check = Arc::new(crate::monitor::CheckKey((*p.check).clone()));
                    p.targets
                        .iter()
                        .map(|t| {
                            let k = ProbeKey {
                                addr: t.probe,
                                check: check.clone(),
                            };
                            index
                                .users
                                .entry(k.clone())
                                .or_default()
                                .push((zone.clone(), pi));
                            k
                        })
                        .collect()
                })
                .collect();
            index.per_zone.insert(Arc::as_ptr(zone) as usize, keys);
        }
        self.index = index;
    }

    /// Forgets verdicts of targets no longer probed (a reload removed them).
    pub fn retain_verdicts(&mut self, keys: &[ProbeKey]) {
        self.verdicts.retain(|k, _| keys.contains(k));
        self.recovered.retain(|k, _| keys.contains(k));
    }

    pub fn has_verdict(&self, key: &ProbeKey) -> bool {
        self.verdicts
            .get(key)
            .is_some_and(|s| s.verdict != Health::Unknown)
    }

    /// Takes a monitor update: logs target events and publishes the answers that follow.
    pub fn apply(&mut self, u: Update) {
        let reason = self.record(u);
        self.publish(&reason);
    }

    /// Takes several updates that arrived together, and publishes once.
    pub fn apply_all(&mut self, updates: Vec<Update>) {
        let n = updates.len();
        let mut reason = String::new();
        for u in updates {
            reason = self.record(u);
        }
        if n > 1 {
            reason = format!("{n} targets changed (last: {reason})");
        }
        if n > 0 {
            self.publish(&reason);
        }
    }

    /// Records an update and logs its target events; returns the reason for answer changes.
    fn record(&mut self, u: Update) -> String {
        if let Some(t) = u.transition {
            for (zone, pool) in self.pools_probing(&u.key) {
                let check = &pool.check.name;
                let target = u.key.addr;
                match t.to {
                    Health::Down => {
                        warn!(pool = %pool.name, %target, check = %check, failures = t.after, cause = u.cause.as_deref().unwrap_or("?"), zone = %zone, "target down")
                    }
                    Health::Up => {
                        info!(pool = %pool.name, %target, check = %check, successes = t.after, latency_ms = u.latency.as_millis() as u64, zone = %zone, "target up")
                    }
                    Health::Unknown => {}
                }
            }
        }
        let reason = match (u.transition, &u.cause) {
            (Some(t), _) if t.to == Health::Down => format!("{} down", u.key.addr.ip()),
            (Some(t), _) if t.to == Health::Up => format!("{} up", u.key.addr.ip()),
            (_, Some(_)) => format!("{} in doubt", u.key.addr.ip()),
            _ => format!("{} recovered from doubt", u.key.addr.ip()),
        };
        match u.transition {
            Some(t) if t.from == Health::Down && t.to == Health::Up => {
                self.recovered.insert(u.key.clone(), Instant::now());
            }
            Some(_) => {
                self.recovered.remove(&u.key);
            }
            None => {}
        }
        self.verdicts.insert(u.key, u.state);
        reason
    }

    /// When answers must be recomputed because a `failback_delay` runs out (None: nothing waits).
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake_at
    }

    /// Recomputes answers whose `failback_delay` has run out.
    pub fn wake(&mut self) {
        if self.wake_at.is_some_and(|w| w <= Instant::now()) {
            self.publish("failback delay passed");
        }
    }

    /// Releases a manual failback hold: the pool returns to its best healthy level.
    /// Returns false if no served pool has that name.
    pub fn release_failback(&mut self, pool_name: &crate::name::Name) -> bool {
        let key = pool_name.key();
        let known = self
            .tracked
            .values()
            .filter_map(|t| t.served.as_ref())
            .any(|z| z.pools.iter().any(|p| p.name.key() == key));
        if known {
            info!(pool = %pool_name, "manual failback released by operator");
            self.held.remove(&key);
            self.publish("failback released by operator");
        }
        known
    }

    fn pools_probing(&self, key: &ProbeKey) -> Vec<(crate::name::Name, Pool)> {
        let users = self
            .index
            .users
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        users
            .iter()
            .map(|(z, pi)| (z.apex.clone(), z.pools[*pi].clone()))
            .collect()
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Looks at the zones directory and loads what changed. With `now`, changed files are
    /// loaded at once (start-up, SIGHUP) instead of after they have settled.
    pub fn reconcile(&mut self, now: bool) -> Result<(), loader::DirError> {
        let found = loader::scan(&self.dir)?;
        let mut changed = false;
        // Removed files.
        let gone: Vec<PathBuf> = self
            .tracked
            .keys()
            .filter(|p| !found.iter().any(|f| &f.path == *p))
            .cloned()
            .collect();
        for path in gone {
            let t = self.tracked.remove(&path).expect("tracked");
            if t.served.is_some() {
                warn!(zone = %t.file.apex, file = %path.display(), "zone file deleted; zone no longer served");
                changed = true;
            }
        }
        self.pending
            .retain(|p, _| found.iter().any(|f| &f.path == p));
        for file in found {
            let known_files = self
                .tracked
                .get(&file.path)
                .map_or_else(|| vec![file.path.clone()], |t| t.files.clone());
            let now_sig = signatures(&known_files);
            if self
                .tracked
                .get(&file.path)
                .is_some_and(|t| t.seen == now_sig)
            {
                self.pending.remove(&file.path);
                continue;
            }
            if !now && self.pending.get(&file.path) != Some(&now_sig) {
                self.pending.insert(file.path.clone(), now_sig);
                continue;
            }
            self.pending.remove(&file.path);
            changed |= self.load(file);
        }
        // A plain zone file that another zone now includes is a fragment, not a zone.
        let fragments: Vec<PathBuf> = self
            .tracked
            .values()
            .filter(|t| t.file.kind == Kind::Plain)
            .filter(|t| {
                self.tracked.values().any(|o| {
                    o.file.path != t.file.path
                        && o.files.iter().skip(1).any(|f| same_file(f, &t.file.path))
                })
            })
            .map(|t| t.file.path.clone())
            .collect();
        for path in fragments {
            if self.tracked.remove(&path).and_then(|t| t.served).is_some() {
                info!(file = %path.display(), "file is included by another zone; no longer served as a zone of its own");
                changed = true;
            }
        }
        if changed {
            self.reindex();
            self.publish("zone reloaded");
        }
        Ok(())
    }

    /// Loads one zone file; returns whether what is served changed.
    fn load(&mut self, file: ZoneFile) -> bool {
        let included_elsewhere = self
            .tracked
            .values()
            .filter(|t| t.file.path != file.path)
            .any(|t| t.files.iter().skip(1).any(|f| same_file(f, &file.path)));
        if file.kind == Kind::Plain && included_elsewhere {
            // A fragment included by another zone: its changes reload that zone instead.
            self.tracked.remove(&file.path);
            return false;
        }
        let twin = self
            .tracked
            .values()
            .find(|t| t.file.apex == file.apex && t.file.path != file.path && t.served.is_some());
        if let Some(t) = twin {
            warn!(zone = %file.apex, file = %file.path.display(), other = %t.file.path.display(), "zone defined by two files; this one is ignored");
            let seen = signatures(std::slice::from_ref(&file.path));
            self.tracked.insert(
                file.path.clone(),
                Tracked {
                    files: vec![file.path.clone()],
                    seen,
                    file,
                    served: None,
                },
            );
            return false;
        }
        let load = loader::load(file.clone());
        let seen = signatures(&load.files);
        let previous = self.tracked.remove(&file.path).and_then(|t| t.served);
        let (served, changed) = match load.result {
            Ok(zone) => {
                info!(
                    zone = %zone.apex,
                    serial = zone.serial,
                    records = zone.record_count,
                    pools = zone.pools.len(),
                    file = %file.path.display(),
                    "zone loaded"
                );
                (Some(Arc::new(zone)), true)
            }
            Err(errors) => {
                let keeps = if previous.is_some() {
                    "the previous version keeps serving"
                } else {
                    "zone not served"
                };
                warn!(zone = %file.apex, file = %file.path.display(), errors = errors.len(), "zone file has errors; {keeps}");
                for e in &errors {
                    warn!(zone = %file.apex, "{e}");
                }
                (previous, false)
            }
        };
        self.tracked.insert(
            file.path.clone(),
            Tracked {
                file,
                files: load.files,
                seen,
                served,
            },
        );
        changed
    }

    /// Builds and publishes a snapshot of every served zone, logging each pool whose answer
    /// changed (with `reason`, what caused the change).
    fn publish(&mut self, reason: &str) {
        let served: Vec<Arc<Zone>> = self
            .tracked
            .values()
            .filter_map(|t| t.served.clone())
            .collect();
        let mut entries = Vec::with_capacity(served.len());
        let mut answered = HashMap::new();
        let mut held_now = HashMap::new();
        let wake_at: std::cell::Cell<Option<Instant>> = std::cell::Cell::new(None);
        for zone in served {
            let mut answers = Vec::with_capacity(zone.pools.len());
            let zone_keys = &self.index.per_zone[&(Arc::as_ptr(&zone) as usize)];
            for (pi, pool) in zone.pools.iter().enumerate() {
                let name_key = pool.name.key();
                let held = self.held.get(&name_key).copied().unwrap_or([None, None]);
                let (verdicts, recovered) = (&self.verdicts, &self.recovered);
                let answer = pool_answer(
                    pool,
                    zone.neg_ttl,
                    |ti| {
                        let key = &zone_keys[pi][ti];
                        match verdicts.get(key) {
                            // Back up, but not yet for `failback_delay`: not answered yet.
                            Some(s)
                                if s.verdict == Health::Up
                                    && recovered
                                        .get(key)
                                        .is_some_and(|at| at.elapsed() < pool.failback_delay) =>
                            {
                                let ready = recovered[key] + pool.failback_delay;
                                wake_at.set(Some(wake_at.get().map_or(ready, |w| w.min(ready))));
                                (Health::Down, Admin::Auto, true)
                            }
                            Some(s) => (s.verdict, Admin::Auto, s.in_doubt()),
                            None => (Health::Unknown, Admin::Auto, false),
                        }
                    },
                    held,
                );
                // Manual failback: a pool answering from a fallback level stays there. Not
                // before every target has a verdict: a secondary judged before the primary at
                // start-up is no failover.
                let all_judged = zone_keys[pi].iter().all(|k| {
                    self.verdicts
                        .get(k)
                        .is_some_and(|v| v.verdict != Health::Unknown)
                });
                if pool.failback == Failback::Manual && all_judged {
                    let hold = |f: &FamilyAnswer| {
                        if f.mode == Mode::Fallback {
                            f.level
                        } else {
                            None
                        }
                    };
                    held_now.insert(name_key.clone(), [hold(&answer.a), hold(&answer.aaaa)]);
                }
                let now = [answer.a.clone(), answer.aaaa.clone()];
                if let Some(before) = self.answered.get(&name_key) {
                    for (i, rt) in ["A", "AAAA"].into_iter().enumerate() {
                        log_change(pool, rt, &before[i], &now[i], reason);
                    }
                }
                answered.insert(name_key, now);
                answers.push(answer);
            }
            entries.push(ZoneEntry {
                zone,
                answers: answers.into(),
            });
        }
        self.answered = answered;
        self.held = held_now;
        self.wake_at = wake_at.get();
        self.store.store(Arc::new(Snapshot::new(entries)));
    }
}

fn addresses(f: &FamilyAnswer) -> String {
    let list: Vec<String> = f
        .rrset
        .rdatas()
        .map(|rd| match rd.len() {
            4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(rd).unwrap()).to_string(),
            _ => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(rd).unwrap()).to_string(),
        })
        .collect();
    if list.is_empty() {
        "(nothing)".into()
    } else {
        list.join(",")
    }
}

/// One event line per pool answer that changed, readable at 3 a.m.
fn log_change(pool: &Pool, rtype: &str, before: &FamilyAnswer, now: &FamilyAnswer, reason: &str) {
    if before.rrset.data == now.rrset.data && before.mode == now.mode {
        return;
    }
    let (from, to) = (addresses(before), addresses(now));
    if now.mode == Mode::AllDown {
        error!(pool = %pool.name, r#type = %rtype, policy = %pool.all_down, answering = %to, reason, "all targets down");
    } else if before.rrset.data != now.rrset.data {
        let level = now.level.map_or("-".to_string(), |l| l.to_string());
        if now.mode == Mode::Preferred {
            info!(pool = %pool.name, r#type = %rtype, from = %from, to = %to, priority = %level, reason, "answer changed");
        } else {
            warn!(pool = %pool.name, r#type = %rtype, from = %from, to = %to, priority = %level, reason, "answer changed");
        }
    } else if before.mode == Mode::AllDown {
        info!(pool = %pool.name, r#type = %rtype, answering = %to, reason, "targets back up");
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    fn served(p: &Publisher) -> Vec<(String, u32)> {
        p.store
            .load()
            .zones
            .iter()
            .map(|z| (z.zone.apex.to_string(), z.zone.serial))
            .collect()
    }

    #[test]
    fn settles_keeps_previous_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("example.com.zone");
        std::fs::write(&f, ZONE).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 1)]);
        // A change is loaded only when seen twice the same.
        std::fs::write(&f, ZONE.replace(" 1 1h", " 2 1h") + "x A 192.0.2.1\n").unwrap();
        p.reconcile(false).unwrap();
        assert_eq!(served(&p)[0].1, 1);
        p.reconcile(false).unwrap();
        assert_eq!(served(&p)[0].1, 2);
        // A broken edit keeps version 2.
        std::fs::write(&f, ZONE.replace(" 1 1h", " 3 1h") + "x A 192.0.2.999\n").unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p)[0].1, 2);
        // A new zone appears; the deleted one goes.
        std::fs::write(dir.path().join("example.net.zone"), ZONE).unwrap();
        std::fs::remove_file(&f).unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.net.".into(), 1)]);
    }

    fn answer_of(p: &Publisher, name: &str) -> (Vec<Vec<u8>>, u32) {
        let snap = p.store.load();
        let key = crate::name::Name::parse(name, None).unwrap().key();
        for z in &snap.zones {
            if let Some(i) = z.zone.pools.iter().position(|pl| pl.name.key() == key) {
                let a = &z.answers[i].a.rrset;
                return (a.rdatas().map(<[u8]>::to_vec).collect(), a.ttl);
            }
        }
        panic!("no pool {name}");
    }

    fn update(p: &Publisher, addr: &str, ok: bool) -> Update {
        let key = p
            .probe_keys()
            .into_iter()
            .find(|k| k.addr == addr.parse().unwrap())
            .unwrap();
        let mut state = p.verdicts.get(&key).cloned().unwrap_or_default();
        let transition = state.observe(ok, key.check.0.rise, key.check.0.fall);
        Update {
            key,
            state,
            transition,
            cause: (!ok).then(|| "connection refused".into()),
            latency: Default::default(),
        }
    }

    const POOL: &str = r#"records = '''
$TTL 60
@ SOA ns1 hm 1 1h 10m 14d 300
@ NS ns1
ns1 A 192.0.2.53
'''
[pools.www]
failback = "manual"
check = { type = "tcp", port = 80, fall = 1, rise = 1 }
targets = [{ address = "127.0.0.1", priority = 1 }, { address = "127.0.0.2", priority = 2 }]
"#;

    #[test]
    fn manual_failback_holds_until_released_and_reload_keeps_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), POOL).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        for a in ["127.0.0.1:80", "127.0.0.2:80"] {
            let u = update(&p, a, true);
            p.apply(u);
        }
        let www = crate::name::Name::parse("www.example.com.", None).unwrap();
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 1]]
        );
        // The primary fails: the secondary answers.
        let u = update(&p, "127.0.0.1:80", false);
        p.apply(u);
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 2]]
        );
        // The primary recovers: with manual failback the answer stays on the secondary.
        let u = update(&p, "127.0.0.1:80", true);
        p.apply(u);
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 2]]
        );
        // A reload keeps the verdicts of unchanged targets, and the hold.
        std::fs::write(
            dir.path().join("example.com.toml"),
            POOL.replace("1h 10m", "2h 10m"),
        )
        .unwrap();
        p.reconcile(true).unwrap();
        let keys = p.probe_keys();
        p.retain_verdicts(&keys);
        assert_eq!(keys.iter().filter(|k| p.has_verdict(k)).count(), 2);
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 2]]
        );
        // Released: back to the primary, which is up, with the full TTL.
        assert!(p.release_failback(&www));
        assert_eq!(
            answer_of(&p, "www.example.com."),
            (vec![vec![127, 0, 0, 1]], 30)
        );
        assert!(!p.release_failback(&crate::name::Name::parse("nope.example.com.", None).unwrap()));
    }

    #[test]
    fn failback_waits_for_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let text = POOL.replace("failback = \"manual\"", "failback_delay = \"300ms\"");
        std::fs::write(dir.path().join("example.com.toml"), text).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        for (a, ok) in [
            ("127.0.0.1:80", true),
            ("127.0.0.2:80", true),
            ("127.0.0.1:80", false),
        ] {
            let u = update(&p, a, ok);
            p.apply(u);
        }
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 2]]
        );
        assert!(p.wake_at().is_none());
        // Back up: not answered until it has stayed up for the delay.
        let u = update(&p, "127.0.0.1:80", true);
        p.apply(u);
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 2]]
        );
        let at = p.wake_at().expect("a wake-up is scheduled");
        p.wake();
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 2]],
            "too early"
        );
        std::thread::sleep(
            at.saturating_duration_since(Instant::now()) + std::time::Duration::from_millis(10),
        );
        p.wake();
        assert_eq!(
            answer_of(&p, "www.example.com.").0,
            vec![vec![127, 0, 0, 1]]
        );
        assert!(p.wake_at().is_none());
    }

    #[test]
    fn include_changes_reload_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("example.com.toml"),
            "include = \"example.com.zone\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 1)]);
        std::fs::write(
            dir.path().join("example.com.zone"),
            ZONE.replace(" 1 1h", " 5 1h"),
        )
        .unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 5)]);
    }
}

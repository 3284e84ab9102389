//! The publisher: the one owner of what is served. It loads zones, notices changed files, takes
//! the monitor's verdicts and the operators' decisions, and builds and publishes each new
//! snapshot. Every change it makes is an [`Event`].
//!
//! Rules it keeps: a file that fails to load leaves the previous version of its zone serving;
//! a file is loaded only once it has stopped changing (same size, time and inode on two looks in
//! a row), so a half-written file is never served; a deleted file removes its zone; operator
//! decisions (drains, manual-failback holds) survive restarts through the state file.

pub mod admin;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::load::loader::{self, Kind, ZoneFile};
use crate::model::chart::{Admin, Failback, Health, Mode};
use crate::model::history;
use crate::model::name::Name;
use crate::model::snapshot::{FamilyAnswer, Snapshot, ZoneEntry, pool_answer};
use crate::model::zone::Zone;
use crate::monitor::{ProbeKey, TargetState, Update};
use crate::ops::events::{Event, EventKind, Journal};
use crate::publish::admin::{AdminState, Drain, StateFile};

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

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A zone file as last seen.
struct Tracked {
    file: ZoneFile,
    /// Files it read, and how they looked when read.
    files: Vec<PathBuf>,
    seen: Vec<Signature>,
    /// What is being served from it (None: it never loaded).
    served: Option<Arc<Zone>>,
    loaded_at: Option<SystemTime>,
    /// Why the latest version was not loaded (None: it was).
    last_error: Option<String>,
}

pub use crate::model::snapshot::Store;

/// Which probe key each pool target has, and which pools each key serves.
#[derive(Default)]
struct ProbeIndex {
    /// Per served zone (by address of its `Arc`): per pool, per target.
    per_zone: HashMap<usize, Vec<Vec<ProbeKey>>>,
    users: HashMap<ProbeKey, Vec<(Arc<Zone>, usize)>>,
}

/// What the status API shows of a probed target beyond its verdict.
#[derive(Debug, Clone)]
struct ProbeStatus {
    /// When the verdict last changed.
    since: SystemTime,
    checked_at: SystemTime,
    latency_ms: f64,
    /// Why the last probe failed (None: it passed).
    error: Option<String>,
}

pub struct Publisher {
    dir: PathBuf,
    store: Store,
    tracked: BTreeMap<PathBuf, Tracked>,
    /// Changed files waiting to be seen unchanged once more before loading.
    pending: BTreeMap<PathBuf, Vec<Signature>>,
    /// The monitor's latest word on each probed target.
    verdicts: HashMap<ProbeKey, TargetState>,
    probes: HashMap<ProbeKey, ProbeStatus>,
    /// Probe keys of the served pools, built when zones change.
    index: ProbeIndex,
    /// When each target last came back up from down (for `failback_delay`).
    recovered: HashMap<ProbeKey, Instant>,
    /// The next moment a `failback_delay` runs out and answers must be recomputed.
    wake_at: Option<Instant>,
    /// What each pool answered last, per family (A, AAAA), keyed by the pool's name.
    answered: HashMap<Box<[u8]>, [FamilyAnswer; 2]>,
    /// Pools whose every target had a verdict at the last publish: only their answer changes
    /// are events (the start-up round's settling is not a failover).
    judged: std::collections::HashSet<Box<[u8]>>,
    /// Drains and manual-failback holds.
    admin: AdminState,
    state_file: Option<StateFile>,
    /// Serials changed since the state file was written.
    serials_dirty: bool,
    /// The serials the state file held at start.
    restored_serials: BTreeMap<String, (u32, u64)>,
    /// The first probe round is done: from now on, changes move serials.
    settled: bool,
    /// Where serial changes go (NOTIFY to secondaries).
    changes: Option<tokio::sync::mpsc::UnboundedSender<crate::transfer::secondaries::Change>>,
    journal: Journal,
}

impl Publisher {
    pub fn new(dir: &Path) -> Publisher {
        Publisher {
            dir: dir.into(),
            store: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            tracked: BTreeMap::new(),
            pending: BTreeMap::new(),
            verdicts: HashMap::new(),
            probes: HashMap::new(),
            index: ProbeIndex::default(),
            recovered: HashMap::new(),
            wake_at: None,
            answered: HashMap::new(),
            judged: Default::default(),
            admin: AdminState::default(),
            state_file: None,
            serials_dirty: false,
            restored_serials: BTreeMap::new(),
            settled: false,
            changes: None,
            journal: Journal::default(),
        }
    }

    /// Keeps operator decisions in `file`, restoring what it holds now.
    pub fn with_state(mut self, file: StateFile) -> Publisher {
        let (state, problem) = file.load();
        if let Some(p) = problem {
            error!("{p}");
        }
        if !state.drained.is_empty() || !state.held.is_empty() {
            info!(drained = state.drained.len(), held = state.held.len(), file = %file.path.display(), "operator state restored");
        }
        self.restored_serials = state.serials.clone();
        self.admin = state;
        self.state_file = Some(file);
        self
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
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
                            let k = ProbeKey { addr: t.probe, check: check.clone() };
                            index.users.entry(k.clone()).or_default().push((zone.clone(), pi));
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
        self.probes.retain(|k, _| keys.contains(k));
        self.recovered.retain(|k, _| keys.contains(k));
    }

    pub fn has_verdict(&self, key: &ProbeKey) -> bool {
        self.verdicts.get(key).is_some_and(|s| s.verdict != Health::Unknown)
    }

    /// Takes a monitor update and publishes the answers that follow.
    pub fn apply(&mut self, u: Update) {
        self.apply_all(vec![u]);
    }

    /// Takes updates that arrived together; publishes once, and only if a verdict (or its
    /// doubt, which sets the TTL) changed.
    pub fn apply_all(&mut self, updates: Vec<Update>) {
        let mut reasons = Vec::new();
        for u in updates {
            if let Some(r) = self.record(u) {
                reasons.push(r);
            }
        }
        match reasons.len() {
            0 => {}
            1 => self.publish(&reasons[0]),
            n => self.publish(&format!("{n} targets changed (last: {})", reasons[n - 1])),
        }
    }

    /// Records one probe result; returns why answers must be recomputed, if they must.
    fn record(&mut self, u: Update) -> Option<String> {
        let now = SystemTime::now();
        let before = self.verdicts.get(&u.key).cloned().unwrap_or_default();
        let status = self.probes.entry(u.key.clone()).or_insert(ProbeStatus {
            since: now,
            checked_at: now,
            latency_ms: 0.0,
            error: None,
        });
        status.checked_at = now;
        status.latency_ms = u.latency.as_secs_f64() * 1000.0;
        status.error = u.cause.clone();
        if u.transition.is_some() {
            status.since = now;
        }
        if let Some(t) = u.transition {
            let kind = match t.to {
                Health::Down => Some(EventKind::TargetDown),
                Health::Up => Some(EventKind::TargetUp),
                Health::Unknown => None,
            };
            for (zone, pi) in self.index.users.get(&u.key).cloned().unwrap_or_default() {
                let pool = &zone.pools[pi];
                if let Some(kind) = kind {
                    self.journal.push(Event {
                        zone: Some(zone.apex.to_string()),
                        pool: Some(pool.name.to_string()),
                        target: Some(u.key.addr.to_string()),
                        check: Some(pool.check.name.clone()),
                        count: Some(t.after),
                        from: Some(format!("{:?}", t.from).to_lowercase()),
                        to: Some(format!("{:?}", t.to).to_lowercase()),
                        ..Event::new(kind, u.cause.clone().unwrap_or_else(|| format!("{} probes passed", t.after)))
                    });
                }
            }
            match t {
                t if t.from == Health::Down && t.to == Health::Up => {
                    self.recovered.insert(u.key.clone(), Instant::now());
                }
                _ => {
                    self.recovered.remove(&u.key);
                }
            }
        }
        let ip = u.key.addr.ip();
        let reason = match u.transition {
            Some(t) if t.to == Health::Down => Some(format!("{ip} down")),
            Some(t) if t.to == Health::Up => Some(format!("{ip} up")),
            _ if u.state.in_doubt() && !before.in_doubt() => Some(format!("{ip} in doubt")),
            _ if !u.state.in_doubt() && before.in_doubt() => Some(format!("{ip} no longer in doubt")),
            _ => None,
        };
        self.verdicts.insert(u.key, u.state);
        reason
    }

    /// Marks the start-up round done: from now on, every change of content moves the serial.
    /// Every zone is announced to its secondaries once, in case it changed while we were down.
    pub fn settle(&mut self) {
        self.settled = true;
        let snap = self.store.load_full();
        for e in &snap.zones {
            self.announce(&e.zone, e.serial, e.soa.clone());
        }
    }

    /// Sends serial changes to `tx` (the NOTIFY sender).
    pub fn with_changes(
        mut self,
        tx: tokio::sync::mpsc::UnboundedSender<crate::transfer::secondaries::Change>,
    ) -> Publisher {
        self.changes = Some(tx);
        self
    }

    fn announce(&self, zone: &Zone, serial: u32, soa: crate::model::zone::RRset) {
        if let Some(tx) = &self.changes {
            let _ = tx.send(crate::transfer::secondaries::Change {
                apex: zone.apex.clone(),
                serial,
                soa,
                ns_addrs: ns_addresses(zone),
            });
        }
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

    fn pool_exists(&self, name: &Name) -> bool {
        let key = name.key();
        self.tracked.values().filter_map(|t| t.served.as_ref()).any(|z| z.pools.iter().any(|p| p.name.key() == key))
    }

    fn target_exists(&self, address: IpAddr, pool: Option<&Name>) -> bool {
        let key = pool.map(Name::key);
        self.tracked
            .values()
            .filter_map(|t| t.served.as_ref())
            .flat_map(|z| z.pools.iter())
            .filter(|p| key.as_ref().is_none_or(|k| p.name.key() == *k))
            .any(|p| p.targets.iter().any(|t| t.address == address))
    }

    fn save_state(&self) {
        if let Some(f) = &self.state_file
            && let Err(e) = f.save(&self.admin)
        {
            error!("{e}; the change holds until restart only");
        }
    }

    /// Releases a manual failback hold: the pool returns to its best healthy level.
    /// Returns false if no served pool has that name.
    pub fn release_failback(&mut self, pool_name: &Name) -> bool {
        if !self.pool_exists(pool_name) {
            return false;
        }
        self.admin.held.remove(&hold_key(pool_name));
        self.save_state();
        self.journal
            .push(Event { pool: Some(pool_name.to_string()), ..Event::new(EventKind::FailbackReleased, "operator") });
        self.publish("failback released by operator");
        true
    }

    /// Drains (or undrains) an answered address, in every pool or in one. Errors say why not.
    pub fn set_drain(&mut self, address: IpAddr, pool: Option<&Name>, drained: bool) -> Result<(), String> {
        if let Some(p) = pool
            && !self.pool_exists(p)
        {
            return Err(format!("no pool named {p}"));
        }
        if !self.target_exists(address, pool) {
            return Err(format!(
                "{address} is not a target{}",
                pool.map(|p| format!(" of pool {p}")).unwrap_or_default()
            ));
        }
        let d = Drain { address, pool: pool.map(|p| p.to_string().to_ascii_lowercase()) };
        let changed = if drained { self.admin.drained.insert(d) } else { self.admin.drained.remove(&d) };
        if !drained
            && !changed
            && pool.is_some()
            && self.admin.drained.iter().any(|x| x.address == address && x.pool.is_none())
        {
            return Err(format!("{address} is drained in every pool; undrain it without --pool"));
        }
        if changed {
            self.save_state();
            let kind = if drained { EventKind::Drain } else { EventKind::Undrain };
            self.journal.push(Event {
                target: Some(address.to_string()),
                pool: pool.map(Name::to_string),
                ..Event::new(kind, "operator")
            });
            let what = if drained { "drained" } else { "undrained" };
            self.publish(&format!("{address} {what} by operator"));
        }
        Ok(())
    }

    /// Looks at the zones directory and loads what changed. With `now`, changed files are
    /// loaded at once (start-up, SIGHUP) instead of after they have settled.
    pub fn reconcile(&mut self, now: bool) -> Result<(), loader::DirError> {
        let found = loader::scan(&self.dir)?;
        let mut changed = false;
        let gone: Vec<PathBuf> =
            self.tracked.keys().filter(|p| !found.iter().any(|f| &f.path == *p)).cloned().collect();
        for path in gone {
            let t = self.tracked.remove(&path).expect("tracked");
            if t.served.is_some() {
                self.journal.push(Event {
                    zone: Some(t.file.apex.to_string()),
                    ..Event::new(EventKind::ZoneRemoved, format!("{} was deleted", path.display()))
                });
                changed = true;
            }
        }
        self.pending.retain(|p, _| found.iter().any(|f| &f.path == p));
        for file in found {
            let known_files = self.tracked.get(&file.path).map_or_else(|| vec![file.path.clone()], |t| t.files.clone());
            let now_sig = signatures(&known_files);
            if self.tracked.get(&file.path).is_some_and(|t| t.seen == now_sig) {
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
                self.tracked
                    .values()
                    .any(|o| o.file.path != t.file.path && o.files.iter().skip(1).any(|f| same_file(f, &t.file.path)))
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
            trim_heap();
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
        let twin =
            self.tracked.values().find(|t| t.file.apex == file.apex && t.file.path != file.path && t.served.is_some());
        if let Some(t) = twin {
            warn!(zone = %file.apex, file = %file.path.display(), other = %t.file.path.display(), "zone defined by two files; this one is ignored");
            let seen = signatures(std::slice::from_ref(&file.path));
            let last_error = Some(format!("zone also defined by {}", t.file.path.display()));
            self.tracked.insert(
                file.path.clone(),
                Tracked { files: vec![file.path.clone()], seen, file, served: None, loaded_at: None, last_error },
            );
            return false;
        }
        let load = loader::load(file.clone());
        let seen = signatures(&load.files);
        let previous = self.tracked.remove(&file.path);
        let (served, loaded_at, last_error, changed) = match load.result {
            Ok(zone) => {
                let reason = format!(
                    "serial {}, {} records, {} pools, from {}",
                    zone.serial,
                    zone.record_count,
                    zone.pools.len(),
                    file.path.display()
                );
                self.journal
                    .push(Event { zone: Some(zone.apex.to_string()), ..Event::new(EventKind::ZoneLoaded, reason) });
                metrics::counter!("weiche_zone_loads_total", "result" => "ok").increment(1);
                (Some(Arc::new(zone)), Some(SystemTime::now()), None, true)
            }
            Err(errors) => {
                let (served, loaded_at) = previous.map_or((None, None), |p| (p.served, p.loaded_at));
                let keeps = if served.is_some() { "the previous version keeps serving" } else { "zone not served" };
                for e in &errors {
                    warn!(zone = %file.apex, "{e}");
                }
                let reason = format!("{} error(s), first: {}; {keeps}", errors.len(), errors[0]);
                self.journal
                    .push(Event { zone: Some(file.apex.to_string()), ..Event::new(EventKind::ZoneError, reason) });
                metrics::counter!("weiche_zone_loads_total", "result" => "failed").increment(1);
                (served, loaded_at, Some(errors[0].to_string()), false)
            }
        };
        self.tracked
            .insert(file.path.clone(), Tracked { file, files: load.files, seen, served, loaded_at, last_error });
        changed
    }

    /// Builds and publishes a snapshot of every served zone, with an event for each pool whose
    /// answer changed (`reason` says what caused it).
    fn publish(&mut self, reason: &str) {
        let served: Vec<Arc<Zone>> = self.tracked.values().filter_map(|t| t.served.clone()).collect();
        let previous = self.store.load_full();
        let mut entries = Vec::with_capacity(served.len());
        let mut answered = HashMap::new();
        let mut held_now = BTreeMap::new();
        let mut events = Vec::new();
        let mut judged = std::collections::HashSet::new();
        let wake_at: std::cell::Cell<Option<Instant>> = std::cell::Cell::new(None);
        for zone in served {
            let mut answers = Vec::with_capacity(zone.pools.len());
            let zone_keys = &self.index.per_zone[&(Arc::as_ptr(&zone) as usize)];
            for (pi, pool) in zone.pools.iter().enumerate() {
                let hold = hold_key(&pool.name);
                let held = self.admin.held.get(&hold).copied().unwrap_or([None, None]);
                let (verdicts, recovered, admin) = (&self.verdicts, &self.recovered, &self.admin);
                let answer = pool_answer(
                    pool,
                    zone.neg_ttl,
                    |ti| {
                        if admin.is_drained(pool.targets[ti].address, &hold) {
                            return (Health::Unknown, Admin::ForcedDown, false);
                        }
                        let key = &zone_keys[pi][ti];
                        match verdicts.get(key) {
                            // Back up, but not yet for `failback_delay`: not answered yet.
                            Some(s)
                                if s.verdict == Health::Up
                                    && recovered.get(key).is_some_and(|at| at.elapsed() < pool.failback_delay) =>
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
                let all_judged =
                    zone_keys[pi].iter().all(|k| self.verdicts.get(k).is_some_and(|v| v.verdict != Health::Unknown));
                if pool.failback == Failback::Manual {
                    let hold_of = |f: &FamilyAnswer| {
                        if f.mode == Mode::Fallback { f.level } else { None }
                    };
                    let h = if all_judged { [hold_of(&answer.a), hold_of(&answer.aaaa)] } else { held };
                    if h != [None, None] {
                        held_now.insert(hold.clone(), h);
                    }
                }
                export_pool_metrics(&zone, pool, &zone_keys[pi], &self.verdicts, &self.admin, &answer);
                let now = [answer.a.clone(), answer.aaaa.clone()];
                let name_key = pool.name.key();
                let was_judged = self.judged.contains(&name_key);
                if all_judged {
                    judged.insert(name_key.clone());
                }
                if let Some(before) = self.answered.get(&name_key).filter(|_| was_judged && all_judged) {
                    for (i, rt) in ["A", "AAAA"].into_iter().enumerate() {
                        if let Some(e) = change_event(&zone, pool, rt, &before[i], &now[i], reason) {
                            events.push(e);
                        }
                    }
                }
                answered.insert(name_key, now);
                answers.push(answer);
            }
            let prev = previous.zone(&zone.apex.key());
            let entry = self.served_entry(zone, answers.into(), prev);
            metrics::gauge!("weiche_zone_serial", "zone" => entry.zone.apex.to_string()).set(entry.serial as f64);
            entries.push(entry);
        }
        self.answered = answered;
        self.judged = judged;
        if held_now != self.admin.held || self.serials_dirty {
            self.admin.held = held_now;
            self.serials_dirty = false;
            self.save_state();
        }
        self.wake_at = wake_at.get();
        self.store.store(Arc::new(Snapshot::new(entries)));
        for e in events {
            self.journal.push(e);
        }
    }

    /// A zone entry with its serial: unchanged content keeps the serial (and history); a change
    /// takes the next one and is recorded for IXFR. The serial survives restarts through the
    /// state file, keyed by a hash of the content.
    fn served_entry(
        &mut self,
        zone: Arc<Zone>,
        answers: Arc<[crate::model::snapshot::PoolAnswer]>,
        prev: Option<&ZoneEntry>,
    ) -> ZoneEntry {
        let mut e = ZoneEntry {
            soa: zone.soa().clone(),
            negative_soa: Default::default(),
            zone,
            answers,
            serial: 0,
            history: Default::default(),
        };
        let hash = e.content_hash();
        let name = hold_key(&e.zone.apex);
        match prev.filter(|_| self.settled) {
            Some(p) if p.content_hash() == hash => {
                e.serial = p.serial;
                e.history = p.history.clone();
            }
            Some(p) => {
                e.serial = history::next_serial(p.serial, e.zone.serial);
                let (removed, added) = if Arc::ptr_eq(&p.zone, &e.zone) {
                    history::diff(p.pool_records(), e.pool_records())
                } else {
                    history::diff(p.records(), e.records())
                };
                e.history = Arc::new(p.history.with(history::Diff { from: p.serial, to: e.serial, removed, added }));
                self.announce(&e.zone, e.serial, ZoneEntry::soa_with_serial(&e.zone, e.serial));
            }
            // Before the first probe round is done (or a zone's first load), answers settle:
            // the serial is the one restored if the content is the same, else the next.
            None => {
                e.serial = match self.restored_serials.get(&name) {
                    Some(&(s, h)) if h == hash => s,
                    Some(&(s, _)) => history::next_serial(s, e.zone.serial),
                    None => e.zone.serial,
                };
            }
        }
        e.set_soa(ZoneEntry::soa_with_serial(&e.zone, e.serial));
        if self.admin.serials.get(&name) != Some(&(e.serial, hash)) {
            self.admin.serials.insert(name, (e.serial, hash));
            self.serials_dirty = true;
        }
        e
    }
}

/// Carries out one command on the publisher.
pub fn execute(publisher: &mut Publisher, cmd: crate::ops::control::Command) {
    match cmd {
        crate::ops::control::Command::ReleaseFailback { pool, done } => {
            let _ = done.send(publisher.release_failback(&pool));
        }
        crate::ops::control::Command::Drain { address, pool, drain, done } => {
            let _ = done.send(publisher.set_drain(address, pool.as_ref(), drain));
        }
        crate::ops::control::Command::Status { events, done } => {
            let _ = done.send(publisher.status(events));
        }
        crate::ops::control::Command::Events { since, limit, done } => {
            let _ = done.send(publisher.journal().since(since, limit));
        }
    }
}

/// Per-target and per-pool gauges: what is up, what is drained, which level answers.
fn export_pool_metrics(
    zone: &Zone,
    pool: &crate::model::pool::Pool,
    keys: &[ProbeKey],
    verdicts: &HashMap<ProbeKey, TargetState>,
    admin: &AdminState,
    answer: &crate::model::snapshot::PoolAnswer,
) {
    let (z, p) = (zone.apex.to_string(), pool.name.to_string());
    let hold = hold_key(&pool.name);
    for (t, key) in pool.targets.iter().zip(keys) {
        let up = verdicts.get(key).is_some_and(|v| v.verdict == Health::Up);
        let target = t.address.to_string();
        metrics::gauge!("weiche_target_up", "zone" => z.clone(), "pool" => p.clone(), "target" => target.clone())
            .set(up as u8 as f64);
        let drained = admin.is_drained(t.address, &hold);
        metrics::gauge!("weiche_target_admin_drained", "zone" => z.clone(), "pool" => p.clone(), "target" => target)
            .set(drained as u8 as f64);
    }
    for (rt, f) in [("A", &answer.a), ("AAAA", &answer.aaaa)] {
        if pool.targets.iter().any(|t| t.address.is_ipv6() == (rt == "AAAA")) {
            let level = f.level.map_or(0.0, f64::from);
            metrics::gauge!("weiche_pool_priority", "zone" => z.clone(), "pool" => p.clone(), "type" => rt).set(level);
            let fallback = f.mode != Mode::Preferred;
            metrics::gauge!("weiche_pool_degraded", "zone" => z.clone(), "pool" => p.clone(), "type" => rt)
                .set(fallback as u8 as f64);
            let all_down = f.mode == Mode::AllDown;
            metrics::gauge!("weiche_pool_all_down", "zone" => z.clone(), "pool" => p.clone(), "type" => rt)
                .set(all_down as u8 as f64);
        }
    }
}

/// Addresses of the apex's NS names that the zone itself holds.
fn ns_addresses(zone: &Zone) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let Some(ns) = zone.node(crate::model::zone::APEX).rrset(crate::model::rtype::NS) else { return out };
    for rd in ns.rdatas() {
        let Some(id) = zone.node_id(&Name::from_wire_unchecked(rd).key()) else { continue };
        for (rt, len) in [(crate::model::rtype::A, 4), (crate::model::rtype::AAAA, 16)] {
            for a in zone.node(id).rrset(rt).into_iter().flat_map(|s| s.rdatas()) {
                if a.len() == len {
                    out.push(match len {
                        4 => IpAddr::from(<[u8; 4]>::try_from(a).unwrap()),
                        _ => IpAddr::from(<[u8; 16]>::try_from(a).unwrap()),
                    });
                }
            }
        }
    }
    out
}

/// How a pool is named in the state file (and matched for per-pool drains).
fn hold_key(name: &Name) -> String {
    name.to_string().to_ascii_lowercase()
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
    if list.is_empty() { "(nothing)".into() } else { list.join(",") }
}

/// The event for a pool answer that changed, if it did.
fn change_event(
    zone: &Zone,
    pool: &crate::model::pool::Pool,
    rtype: &'static str,
    before: &FamilyAnswer,
    now: &FamilyAnswer,
    reason: &str,
) -> Option<Event> {
    if before.rrset.data == now.rrset.data && before.mode == now.mode {
        return None;
    }
    let kind = if now.mode == Mode::AllDown {
        EventKind::AllDown
    } else if before.mode == Mode::AllDown {
        EventKind::Recovered
    } else if now.level > before.level {
        EventKind::Failover
    } else if before.rrset.data != now.rrset.data {
        EventKind::Failback
    } else {
        return None;
    };
    Some(Event {
        zone: Some(zone.apex.to_string()),
        pool: Some(pool.name.to_string()),
        rtype: Some(rtype.into()),
        from: Some(addresses(before)),
        to: Some(addresses(now)),
        priority: now.level,
        policy: (kind == EventKind::AllDown).then(|| pool.all_down.to_string()),
        ..Event::new(kind, reason)
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Gives the memory a load freed (parsed records, a replaced zone) back to the system: glibc
/// keeps freed heap pages resident otherwise, and a big zone's parse leaves hundreds of MiB.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    fn served(p: &Publisher) -> Vec<(String, u32)> {
        p.store.load().zones.iter().map(|z| (z.zone.apex.to_string(), z.zone.serial)).collect()
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
        let key = crate::model::name::Name::parse(name, None).unwrap().key();
        for z in &snap.zones {
            if let Some(i) = z.zone.pools.iter().position(|pl| pl.name.key() == key) {
                let a = &z.answers[i].a.rrset;
                return (a.rdatas().map(<[u8]>::to_vec).collect(), a.ttl);
            }
        }
        panic!("no pool {name}");
    }

    fn update(p: &Publisher, addr: &str, ok: bool) -> Update {
        let key = p.probe_keys().into_iter().find(|k| k.addr == addr.parse().unwrap()).unwrap();
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
        let www = crate::model::name::Name::parse("www.example.com.", None).unwrap();
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 1]]);
        // The primary fails: the secondary answers.
        let u = update(&p, "127.0.0.1:80", false);
        p.apply(u);
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 2]]);
        // The primary recovers: with manual failback the answer stays on the secondary.
        let u = update(&p, "127.0.0.1:80", true);
        p.apply(u);
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 2]]);
        // A reload keeps the verdicts of unchanged targets, and the hold.
        std::fs::write(dir.path().join("example.com.toml"), POOL.replace("1h 10m", "2h 10m")).unwrap();
        p.reconcile(true).unwrap();
        let keys = p.probe_keys();
        p.retain_verdicts(&keys);
        assert_eq!(keys.iter().filter(|k| p.has_verdict(k)).count(), 2);
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 2]]);
        // Released: back to the primary, which is up, with the full TTL.
        assert!(p.release_failback(&www));
        assert_eq!(answer_of(&p, "www.example.com."), (vec![vec![127, 0, 0, 1]], 30));
        assert!(!p.release_failback(&crate::model::name::Name::parse("nope.example.com.", None).unwrap()));
    }

    #[test]
    fn failback_waits_for_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let text = POOL.replace("failback = \"manual\"", "failback_delay = \"300ms\"");
        std::fs::write(dir.path().join("example.com.toml"), text).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        for (a, ok) in [("127.0.0.1:80", true), ("127.0.0.2:80", true), ("127.0.0.1:80", false)] {
            let u = update(&p, a, ok);
            p.apply(u);
        }
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 2]]);
        assert!(p.wake_at().is_none());
        // Back up: not answered until it has stayed up for the delay.
        let u = update(&p, "127.0.0.1:80", true);
        p.apply(u);
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 2]]);
        let at = p.wake_at().expect("a wake-up is scheduled");
        p.wake();
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 2]], "too early");
        std::thread::sleep(at.saturating_duration_since(Instant::now()) + std::time::Duration::from_millis(10));
        p.wake();
        assert_eq!(answer_of(&p, "www.example.com.").0, vec![vec![127, 0, 0, 1]]);
        assert!(p.wake_at().is_none());
    }

    #[test]
    fn ns_addresses_are_the_in_zone_addresses_of_apex_ns_names() {
        let dir = tempfile::tempdir().unwrap();
        let text = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\n@ NS ns2\n@ NS ns.elsewhere.net.\nns1 A 192.0.2.53\nns2 AAAA 2001:db8::53\nwww A 192.0.2.80\n";
        std::fs::write(dir.path().join("example.com.zone"), text).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        let snap = p.store.load();
        let got = ns_addresses(&snap.zones[0].zone);
        assert_eq!(got, vec!["192.0.2.53".parse::<IpAddr>().unwrap(), "2001:db8::53".parse().unwrap()]);
    }

    #[test]
    fn include_changes_reload_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), "include = \"example.com.zone\"\n").unwrap();
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 1)]);
        std::fs::write(dir.path().join("example.com.zone"), ZONE.replace(" 1 1h", " 5 1h")).unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 5)]);
    }
}

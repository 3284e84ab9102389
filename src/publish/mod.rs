//! The publisher: the one writer of what is served. It takes finished zones from the loader,
//! the monitor's verdicts, the operators' decisions and the time, and turns them into the next
//! immutable [`Snapshot`] and the [`Event`]s that change implies.
//!
//! [`Publisher`] is the pure core: it does no I/O and reads no clock. Every input comes in as a
//! value ([`Now`] included), and what must happen outside (publish a snapshot, log and keep
//! events, write the state file, NOTIFY secondaries, free replaced zones) comes out as
//! [`Effects`]. [`driver`] is the thin async shell that feeds it messages and carries the
//! effects out; nothing slow (parsing, diffing a big zone, disk writes) runs on its path.
//!
//! Rules it keeps: operator decisions (drains, manual-failback holds) and zone serials survive
//! restarts through the state file; a zone's serial moves only when what it serves changes;
//! answer changes are events only once every target of the pool has a first verdict.

pub mod admin;
pub mod driver;
mod status;

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::cluster::peers::Serving;
use crate::dnssec::zone::SignedZone;
use crate::load::watch::{Reload, ZoneDiff, ZoneFileState};
use crate::model::chart::{Admin, Failback, Health, Mode};
use crate::model::history;
use crate::model::name::Name;
use crate::model::pool::Check;
use crate::model::snapshot::{FamilyAnswer, PoolAnswer, Snapshot, ZoneEntry, pool_answer};
use crate::model::zone::Zone;
use crate::monitor::{CheckKey, ProbeKey, TargetState, Update};
use crate::ops::control::ActionError;
use crate::ops::events::{Event, EventKind};
use crate::transfer::secondaries::Change;
use admin::{AdminState, Drain};

/// The time, as the driver read it: monotonic for delays, wall-clock for what people read.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn read() -> Now {
        Now { at: Instant::now(), wall: SystemTime::now() }
    }
}

/// What the driver must carry out after a step of the core, in this order.
#[derive(Default)]
pub struct Effects {
    /// The snapshot to publish (None: what is served did not change).
    pub snapshot: Option<Arc<Snapshot>>,
    /// Events to log, keep and send, oldest first.
    pub events: Vec<Event>,
    /// Zones whose serial changed, for NOTIFY.
    pub announce: Vec<Change>,
    /// The operator state to write to the state file (None: unchanged).
    pub state: Option<AdminState>,
    /// Replaced zones and differences, to be freed away from the publisher's path (freeing a
    /// million records takes a while).
    pub garbage: Vec<Box<dyn Any + Send>>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Which probe keys each pool target has, and which pools each key serves.
#[derive(Default)]
struct ProbeIndex {
    /// Per served zone (by address of its `Arc`): per pool, per target, one key per check of
    /// the target (in the order of `Target::checks`).
    per_zone: HashMap<usize, Vec<Vec<Vec<ProbeKey>>>>,
    /// Where each key is used.
    users: HashMap<ProbeKey, Vec<KeyUse>>,
}

/// One use of a probe key: a check of a target of a pool, by index.
struct KeyUse {
    zone: Arc<Zone>,
    pool: usize,
    target: usize,
    check: usize,
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
    /// The latest probes, oldest first, at most [`RECENT_PROBES`]: the page's sparklines.
    recent: std::collections::VecDeque<RecentProbe>,
}

/// How many probes of each (address, check) are kept for `/probes`.
pub const RECENT_PROBES: usize = 60;

/// One probe, as the page draws it.
#[derive(Debug, Clone, Copy)]
struct RecentProbe {
    at: SystemTime,
    latency_ms: f32,
    ok: bool,
}

pub struct Publisher {
    /// Every zone file the loader knows, and what each serves.
    tracked: BTreeMap<PathBuf, ZoneFileState>,
    /// Differences of reloaded zones not yet published.
    diffs: Vec<ZoneDiff>,
    /// What is served now.
    current: Arc<Snapshot>,
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
    judged: HashSet<Box<[u8]>>,
    /// Drains, manual-failback holds and serials.
    admin: AdminState,
    /// The serials the state file held at start.
    restored_serials: BTreeMap<String, (u32, u64)>,
    /// How many serials a run between the last clean stop and this start may have served
    /// without writing them down (its state file could not be written): a zone whose content
    /// changed since moves past them.
    restored_gap: u32,
    /// The first probe round is done: from now on, changes move serials.
    settled: bool,
    /// How pool names are served: a cluster member out of the majority withdraws or freezes.
    serving: Serving,
    /// In a cluster: the (serial, content hash) each primary peer serves, per zone (by
    /// [`hold_key`]), so that the same content gets the same serial on every member.
    peer_serials: BTreeMap<String, Vec<(u32, u64)>>,
    out: Effects,
}

impl Publisher {
    /// A publisher with nothing loaded, starting from the operator state restored from disk.
    pub fn new(admin: AdminState) -> Publisher {
        Publisher {
            tracked: BTreeMap::new(),
            diffs: Vec::new(),
            current: Arc::new(Snapshot::default()),
            verdicts: HashMap::new(),
            probes: HashMap::new(),
            index: ProbeIndex::default(),
            recovered: HashMap::new(),
            wake_at: None,
            answered: HashMap::new(),
            judged: HashSet::new(),
            restored_serials: admin.serials.clone(),
            // After an unclean stop the serials were moved already (StateFile::open).
            restored_gap: if admin.running { 0 } else { admin.lost_serials(std::time::SystemTime::now()) },
            admin,
            settled: false,
            serving: Serving::Normal,
            peer_serials: BTreeMap::new(),
            out: Effects::default(),
        }
    }

    /// What the last step asks the driver to do.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.out)
    }

    /// What is served now.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.current
    }

    /// Every (address, check) the served pools need probed.
    pub fn probe_keys(&self) -> Vec<ProbeKey> {
        self.index.users.keys().cloned().collect()
    }

    pub fn has_verdict(&self, key: &ProbeKey) -> bool {
        self.verdicts.get(key).is_some_and(|s| s.verdict != Health::Unknown)
    }

    fn served(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.tracked.values().filter_map(|t| t.served.as_ref())
    }

    /// What is served, and signed with what: a zone signed again is a change too.
    fn served_and_signed(&self) -> Vec<(*const Zone, Option<*const SignedZone>)> {
        self.tracked
            .values()
            .filter_map(|t| Some((Arc::as_ptr(t.served.as_ref()?), t.signed.as_ref().map(Arc::as_ptr))))
            .collect()
    }

    /// Takes the loader's new picture of the zones directory. New targets start unknown,
    /// unchanged ones keep their verdicts, removed ones are forgotten.
    pub fn set_zones(&mut self, reload: Reload, now: Now) {
        self.out.events.extend(reload.events);
        let before = self.served_and_signed();
        let old =
            std::mem::replace(&mut self.tracked, reload.zones.into_iter().map(|z| (z.file.path.clone(), z)).collect());
        self.out.garbage.push(Box::new(old));
        self.diffs.extend(reload.diffs);
        let after = self.served_and_signed();
        if before != after {
            self.reindex();
            let keys: HashSet<&ProbeKey> = self.index.users.keys().collect();
            self.verdicts.retain(|k, _| keys.contains(k));
            self.probes.retain(|k, _| keys.contains(k));
            self.recovered.retain(|k, _| keys.contains(k));
            self.publish("zone reloaded", now);
            // A loaded zone's event says the serial it is served with, which may differ from
            // its file's (restored, or moved past one served before).
            let current = self.current.clone();
            for e in self.out.events.iter_mut().filter(|e| e.kind == Some(EventKind::ZoneLoaded)) {
                let served = e.zone.as_deref().and_then(|z| Name::parse(z, None).ok());
                e.serial = served.and_then(|z| current.zone(&z.key()).map(|entry| entry.serial));
            }
        }
    }

    /// Rebuilds the probe index from the served zones (after zones changed).
    fn reindex(&mut self) {
        let mut index = ProbeIndex::default();
        // One key per check, however many targets share it (a pool's checks are shared Arcs).
        let mut check_keys: HashMap<*const Check, Arc<CheckKey>> = HashMap::new();
        for zone in self.tracked.values().filter_map(|t| t.served.as_ref()) {
            let mut pools = Vec::with_capacity(zone.pools.len());
            for (pi, p) in zone.pools.iter().enumerate() {
                let mut targets = Vec::with_capacity(p.targets.len());
                for (ti, t) in p.targets.iter().enumerate() {
                    let mut keys = Vec::with_capacity(t.checks.len());
                    for (ci, tc) in t.checks.iter().enumerate() {
                        let check = check_keys
                            .entry(Arc::as_ptr(&tc.check))
                            .or_insert_with(|| Arc::new(CheckKey((*tc.check).clone())));
                        let k = ProbeKey { addr: tc.probe, check: check.clone() };
                        let used = KeyUse { zone: zone.clone(), pool: pi, target: ti, check: ci };
                        index.users.entry(k.clone()).or_default().push(used);
                        keys.push(k);
                    }
                    targets.push(keys);
                }
                pools.push(targets);
            }
            index.per_zone.insert(Arc::as_ptr(zone) as usize, pools);
        }
        self.index = index;
    }

    /// Takes monitor updates that arrived together; publishes once, and only if a verdict (or
    /// its doubt, which sets the TTL) changed.
    pub fn apply_all(&mut self, updates: Vec<Update>, now: Now) {
        let mut reasons = Vec::new();
        for u in updates {
            if let Some(r) = self.record(u, now) {
                reasons.push(r);
            }
        }
        match reasons.len() {
            0 => {}
            1 => self.publish(&reasons[0], now),
            n => self.publish(&format!("{n} targets changed (last: {})", reasons[n - 1]), now),
        }
    }

    /// Records one probe result; returns why answers must be recomputed, if they must.
    fn record(&mut self, u: Update, now: Now) -> Option<String> {
        if !self.index.users.contains_key(&u.key) {
            // A late result for a target a reload removed.
            return None;
        }
        let before = self.verdicts.get(&u.key).cloned().unwrap_or_default();
        let status = self.probes.entry(u.key.clone()).or_insert(ProbeStatus {
            since: now.wall,
            checked_at: now.wall,
            latency_ms: 0.0,
            error: None,
            recent: std::collections::VecDeque::with_capacity(RECENT_PROBES),
        });
        if u.probed {
            status.checked_at = now.wall;
            status.latency_ms = u.latency.as_secs_f64() * 1000.0;
            status.error = u.cause.clone();
            if status.recent.len() == RECENT_PROBES {
                status.recent.pop_front();
            }
            status.recent.push_back(RecentProbe {
                at: now.wall,
                latency_ms: status.latency_ms as f32,
                ok: u.cause.is_none(),
            });
        }
        if let Some(t) = u.transition {
            let reason = match (&u.decided_by, &u.cause) {
                (Some(who), Some(cause)) if t.to == Health::Down => format!("{who}; here: {cause}"),
                (Some(who), _) => who.clone(),
                (None, Some(cause)) => cause.clone(),
                (None, None) => format!("{} probes passed", t.after),
            };
            status.since = now.wall;
            let kind = match t.to {
                Health::Down => Some(EventKind::TargetDown),
                Health::Up => Some(EventKind::TargetUp),
                Health::Unknown => None,
            };
            // One event per pool and check name: two targets probed at the same address, or
            // two same checks of one target, are one event.
            let mut told = HashSet::new();
            for KeyUse { zone, pool, target, check } in self.index.users.get(&u.key).into_iter().flatten() {
                let (pi, pool) = (*pool, &zone.pools[*pool]);
                let check = &pool.targets[*target].checks[*check].check.name;
                if let Some(kind) = kind
                    && told.insert((Arc::as_ptr(zone), pi, check))
                {
                    self.out.events.push(Event {
                        zone: Some(zone.apex.to_string()),
                        pool: Some(pool.name.to_string()),
                        target: Some(u.key.addr.to_string()),
                        check: Some(check.clone()),
                        count: Some(t.after),
                        from: Some(format!("{:?}", t.from).to_lowercase()),
                        to: Some(format!("{:?}", t.to).to_lowercase()),
                        ..Event::new(kind, reason.clone())
                    });
                }
            }
            if t.from == Health::Down && t.to == Health::Up {
                self.recovered.insert(u.key.clone(), now.at);
            } else {
                self.recovered.remove(&u.key);
            }
        }
        let ip = u.key.addr.ip();
        let reason = match u.transition {
            Some(t) if t.to == Health::Down => Some(format!("{ip} down")),
            Some(t) if t.to == Health::Up => Some(format!("{ip} up")),
            _ if u.state.in_doubt() && !before.in_doubt() => Some(format!("{ip} in doubt")),
            _ if !u.state.in_doubt() && before.in_doubt() => Some(format!("{ip} no longer in doubt")),
            // Each confirming result brings the pending verdict closer, and with it the TTL.
            _ if u.state.in_doubt() && u.state.against != before.against => Some(format!("{ip} still in doubt")),
            _ => None,
        };
        self.verdicts.insert(u.key, u.state);
        reason
    }

    /// Marks the start-up round done: from now on, every change of content moves the serial.
    /// Every zone is announced to its secondaries once, in case it changed while we were down.
    pub fn settle(&mut self) {
        self.settled = true;
        let current = self.current.clone();
        for e in &current.zones {
            self.announce(&e.zone, e.serial, e.soa.clone());
        }
    }

    fn announce(&mut self, zone: &Zone, serial: u32, soa: crate::model::zone::RRset) {
        self.out.announce.push(Change { apex: zone.apex.clone(), serial, soa, ns_addrs: ns_addresses(zone) });
    }

    /// Serves pool names as the cluster says: from the verdicts, withdrawn (SERVFAIL) or
    /// frozen (the answers of now, at each pool's short TTL).
    pub fn set_serving(&mut self, serving: Serving, now: Now) {
        if serving != self.serving {
            self.serving = serving;
            self.publish(&format!("pool answers {}", serving.name()), now);
        }
    }

    /// What the cluster's primary peers serve of each zone. A zone served here with content a
    /// peer serves at a later serial moves up to that serial (its history records no change);
    /// new content takes a serial past every peer's (see [`Self::agreed_serial`]).
    pub fn set_peer_serials(&mut self, serials: BTreeMap<String, Vec<(u32, u64)>>, now: Now) {
        if serials == self.peer_serials {
            return;
        }
        self.peer_serials = serials;
        let behind = self.settled
            && self.current.zones.iter().any(|e| {
                let (serial, hash) = (e.serial, e.content_hash());
                self.peer_serials
                    .get(&hold_key(&e.zone.apex))
                    .is_some_and(|peers| peers.iter().any(|&(s, h)| h == hash && history::serial_gt(s, serial)))
            });
        if behind {
            self.publish("a cluster member serves the same content at a later serial", now);
        }
    }

    /// The serial for content `hash` of the zone `name`, served before at `prev` (`next` is what
    /// a lone server would take): a primary peer's serial for the same content when it is later
    /// than `prev`; for content no peer has, past every peer's serial; else `next`.
    fn agreed_serial(&self, name: &str, hash: u64, prev: u32, next: u32) -> u32 {
        let Some(peers) = self.peer_serials.get(name) else { return next };
        let later = |a: u32, b: u32| if history::serial_gt(a, b) { a } else { b };
        let same = peers
            .iter()
            .filter(|&&(_, h)| h == hash)
            .map(|&(s, _)| s)
            .fold(None, |m: Option<u32>, s| Some(m.map_or(s, |m| later(s, m))));
        match same {
            Some(s) if history::serial_gt(s, prev) || s == next => s,
            Some(_) => next,
            None => peers.iter().fold(next, |n, &(s, _)| later(s.wrapping_add(1), n)),
        }
    }

    /// When answers must be recomputed because a `failback_delay` runs out (None: nothing waits).
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake_at
    }

    /// Recomputes answers whose `failback_delay` has run out.
    pub fn wake(&mut self, now: Now) {
        if self.wake_at.is_some_and(|w| w <= now.at) {
            self.publish("failback delay passed", now);
        }
    }

    fn pool_exists(&self, name: &Name) -> bool {
        let key = name.key();
        self.served().any(|z| z.pools.iter().any(|p| p.name.key() == key))
    }

    fn target_exists(&self, address: IpAddr, pool: Option<&Name>) -> bool {
        let key = pool.map(Name::key);
        self.served()
            .flat_map(|z| z.pools.iter())
            .filter(|p| key.as_ref().is_none_or(|k| p.name.key() == *k))
            .any(|p| p.targets.iter().any(|t| t.address == address))
    }

    /// Asks for the operator state to be written even if it did not change: an operator's
    /// command is answered with the outcome of a write, so asking again after a failed one
    /// tries the disk again rather than claiming what is not on it.
    pub fn save_state(&mut self) {
        self.out.state = Some(self.admin.clone());
    }

    /// Releases a manual failback hold: the pool returns to its best healthy level. Refused,
    /// changing nothing, when there is nothing to release: the pool fails back by itself, it
    /// holds nothing, or no better level is ready to go back to (the hold would form again).
    pub fn release_failback(&mut self, pool_name: &Name, now: Now) -> Result<(), ActionError> {
        self.release_failback_by(pool_name, "operator", now)
    }

    /// [`Self::release_failback`], saying who asked (`by`) in the event.
    pub fn release_failback_by(&mut self, pool_name: &Name, by: &str, now: Now) -> Result<(), ActionError> {
        let key = pool_name.key();
        let current = self.current.clone();
        let found: Vec<(&ZoneEntry, usize)> = current
            .zones
            .iter()
            .flat_map(|e| {
                e.zone.pools.iter().enumerate().filter(|(_, p)| p.name.key() == key).map(move |(i, _)| (e, i))
            })
            .collect();
        if found.is_empty() {
            return Err(ActionError::NotFound(format!("no pool named {pool_name}")));
        }
        if found.iter().all(|(e, pi)| e.zone.pools[*pi].failback == Failback::Auto) {
            return Err(ActionError::Conflict(format!(
                "pool {pool_name} fails back by itself (failback = \"auto\"): there is no hold to release"
            )));
        }
        let hold = hold_key(pool_name);
        let Some(held) = self.admin.held.get(&hold).copied() else {
            return Err(ActionError::Conflict(format!(
                "pool {pool_name} holds nothing: it answers from its best healthy level already"
            )));
        };
        let moves = found.iter().any(|(e, pi)| {
            let (released, _) = self.answer_now(&e.zone, *pi, [None, None], now);
            let served = &e.answers[*pi];
            released.a.rrset.data != served.a.rrset.data || released.aaaa.rrset.data != served.aaaa.rrset.data
        });
        if !moves {
            let levels: Vec<String> = held.iter().flatten().map(u8::to_string).collect();
            return Err(ActionError::Conflict(format!(
                "pool {pool_name} is held on priority {}, and no better level is up (and past its failback_delay): \
                 nothing to fail back to yet; the hold stays",
                levels.join("/")
            )));
        }
        self.admin.held.remove(&hold);
        self.out.state = Some(self.admin.clone());
        self.out
            .events
            .push(Event { pool: Some(pool_name.to_string()), ..Event::new(EventKind::FailbackReleased, by) });
        self.publish(&format!("failback released by {by}"), now);
        Ok(())
    }

    /// Drains (or undrains) an answered address, in every pool or in one. An undrain without a
    /// pool puts the address back in every pool, lifting its per-pool drains too; an undrain in
    /// one pool of an address drained in every pool could not take effect, so it is refused.
    /// Errors say why, and change nothing.
    pub fn set_drain(
        &mut self,
        address: IpAddr,
        pool: Option<&Name>,
        drained: bool,
        now: Now,
    ) -> Result<(), ActionError> {
        self.set_drain_by(address, pool, drained, "operator", now)
    }

    /// The pools (by [`hold_key`]) in which `address` is drained on its own.
    pub fn drained_pools(&self, address: IpAddr) -> Vec<String> {
        self.admin.drained.iter().filter(|d| d.address == address).filter_map(|d| d.pool.clone()).collect()
    }

    /// The cluster's operator writes as the state file holds them.
    pub fn cluster_ops(&self) -> &[crate::cluster::wire::OpWrite] {
        &self.admin.cluster_ops
    }

    /// Keeps the cluster's operator writes in the state file.
    pub fn set_cluster_ops(&mut self, ops: Vec<crate::cluster::wire::OpWrite>) {
        if ops != self.admin.cluster_ops {
            self.admin.cluster_ops = ops;
            self.out.state = Some(self.admin.clone());
        }
    }

    /// Adds an event that is not the publisher's own (the cluster's).
    pub fn note(&mut self, event: Event) {
        self.out.events.push(event);
    }

    /// [`Self::set_drain`], saying who asked (`by`) in the events.
    pub fn set_drain_by(
        &mut self,
        address: IpAddr,
        pool: Option<&Name>,
        drained: bool,
        by: &str,
        now: Now,
    ) -> Result<(), ActionError> {
        if let Some(p) = pool
            && !self.pool_exists(p)
        {
            return Err(ActionError::NotFound(format!("no pool named {p}")));
        }
        if !self.target_exists(address, pool) {
            return Err(ActionError::NotFound(format!(
                "{address} is not a target{}",
                pool.map(|p| format!(" of pool {p}")).unwrap_or_default()
            )));
        }
        if !drained && pool.is_some() && self.admin.drained.contains(&Drain { address, pool: None }) {
            return Err(ActionError::Conflict(format!(
                "{address} is drained in every pool; undrain it without --pool"
            )));
        }
        let in_pool = pool.map(hold_key);
        let changed: Vec<Drain> = if drained {
            let d = Drain { address, pool: in_pool };
            if self.admin.drained.insert(d.clone()) { vec![d] } else { Vec::new() }
        } else {
            let lifted: Vec<Drain> = self
                .admin
                .drained
                .iter()
                .filter(|d| d.address == address && (in_pool.is_none() || d.pool == in_pool))
                .cloned()
                .collect();
            for d in &lifted {
                self.admin.drained.remove(d);
            }
            lifted
        };
        if changed.is_empty() {
            return Ok(());
        }
        self.out.state = Some(self.admin.clone());
        let kind = if drained { EventKind::Drain } else { EventKind::Undrain };
        for d in changed {
            self.out.events.push(Event { target: Some(address.to_string()), pool: d.pool, ..Event::new(kind, by) });
        }
        let what = if drained { "drained" } else { "undrained" };
        self.publish(&format!("{address} {what} by {by}"), now);
        Ok(())
    }

    /// How the chart sees one target now: drained, or judged by its checks with its
    /// `failback_delay` (and when that delay runs out, if it is running).
    fn target_view(
        &self,
        pool: &crate::model::pool::Pool,
        keys: &[ProbeKey],
        ti: usize,
        now: Now,
    ) -> ((Health, Admin, Option<Duration>), Option<Instant>) {
        if self.admin.is_drained(pool.targets[ti].address, &hold_key(&pool.name)) {
            return ((Health::Unknown, Admin::ForcedDown, None), None);
        }
        match judge(keys, &self.verdicts) {
            (Health::Up, due) => {
                // Up since its last check came back: the latest recovery counts, so an older
                // one cannot cut the delay short.
                let recovered = keys.iter().filter_map(|k| self.recovered.get(k)).max();
                match recovered.map(|at| *at + pool.failback_delay) {
                    // Back up, but not yet for `failback_delay`: answered once it runs out.
                    Some(r) if r > now.at => ((Health::Down, Admin::Auto, Some(r - now.at)), Some(r)),
                    _ => ((Health::Up, Admin::Auto, due), None),
                }
            }
            // Once up, it is answered only after the delay.
            (Health::Down, due) => ((Health::Down, Admin::Auto, due.map(|d| d + pool.failback_delay)), None),
            (Health::Unknown, _) => ((Health::Unknown, Admin::Auto, None), None),
        }
    }

    /// What pool `pi` of `zone` answers now with the levels `held`, and the soonest moment a
    /// `failback_delay` of one of its targets runs out.
    fn answer_now(
        &self,
        zone: &Arc<Zone>,
        pi: usize,
        held: [Option<u8>; 2],
        now: Now,
    ) -> (PoolAnswer, Option<Instant>) {
        let pool = &zone.pools[pi];
        let keys = &self.index.per_zone[&(Arc::as_ptr(zone) as usize)][pi];
        let ready_at = std::cell::Cell::new(None);
        let answer = pool_answer(
            pool,
            zone.neg_ttl,
            |ti| {
                let (view, ready) = self.target_view(pool, &keys[ti], ti, now);
                ready_at.set(min_instant(ready_at.get(), ready));
                view
            },
            held,
        );
        (answer, ready_at.get())
    }

    /// Builds the next snapshot of every served zone, with an event for each pool whose answer
    /// changed (`reason` says what caused it).
    fn publish(&mut self, reason: &str, now: Now) {
        let served: Vec<(Arc<Zone>, Option<Arc<SignedZone>>)> =
            self.tracked.values().filter_map(|t| Some((t.served.clone()?, t.signed.clone()))).collect();
        let previous = self.current.clone();
        let mut entries = Vec::with_capacity(served.len());
        let mut answered = HashMap::new();
        let mut held_now = BTreeMap::new();
        let mut events = Vec::new();
        let mut judged = HashSet::new();
        let mut wake_at: Option<Instant> = None;
        for (zone, signed) in served {
            let mut answers = Vec::with_capacity(zone.pools.len());
            let zone_keys = &self.index.per_zone[&(Arc::as_ptr(&zone) as usize)];
            for (pi, pool) in zone.pools.iter().enumerate() {
                let hold = hold_key(&pool.name);
                let held = self.admin.held.get(&hold).copied().unwrap_or([None, None]);
                let (mut answer, ready_at) = self.answer_now(&zone, pi, held, now);
                wake_at = min_instant(wake_at, ready_at);
                match self.serving {
                    Serving::Normal => {}
                    Serving::Withdrawn => answer.withdrawn = true,
                    Serving::Frozen => {
                        for f in [&mut answer.a, &mut answer.aaaa] {
                            f.rrset.ttl = f.rrset.ttl.min(pool.ttl_min);
                        }
                    }
                }
                // Manual failback: a pool answering from a fallback level stays there. Not
                // before every target has a verdict: a secondary judged before the primary at
                // start-up is no failover.
                let all_judged = zone_keys[pi]
                    .iter()
                    .flatten()
                    .all(|k| self.verdicts.get(k).is_some_and(|v| v.verdict != Health::Unknown));
                if pool.failback == Failback::Manual {
                    let hold_of = |f: &FamilyAnswer| if f.mode == Mode::Fallback { f.level } else { None };
                    let h = if all_judged { [hold_of(&answer.a), hold_of(&answer.aaaa)] } else { held };
                    if h != [None, None] {
                        held_now.insert(hold.clone(), h);
                    }
                }
                let fresh = [answer.a.clone(), answer.aaaa.clone()];
                let name_key = pool.name.key();
                let was_judged = self.judged.contains(&name_key);
                if all_judged {
                    judged.insert(name_key.clone());
                }
                if let Some(before) = self.answered.get(&name_key).filter(|_| was_judged && all_judged) {
                    for (i, rt) in ["A", "AAAA"].into_iter().enumerate() {
                        if let Some(e) = change_event(&zone, pool, rt, &before[i], &fresh[i], reason) {
                            events.push(e);
                        }
                    }
                }
                answered.insert(name_key, fresh);
                answers.push(answer);
            }
            let prev = previous.zone(&zone.apex.key());
            let mut entry = self.served_entry(zone, answers.into(), prev, signed.as_deref());
            if let Some(signed) = signed {
                // Every change moves signatures, which the differences do not hold: IXFR of a
                // signed zone is a full transfer (RFC 1995 §4).
                entry.history = Default::default();
                let started = std::time::Instant::now();
                match signed.entry_sigs(&entry.zone, &entry.soa, &entry.answers) {
                    Ok(sigs) => {
                        entry.dnssec = Some(sigs);
                        tracing::debug!(zone = %entry.zone.apex, pools = entry.answers.len(), elapsed_us = started.elapsed().as_micros() as u64, "pool answers signed");
                    }
                    // Never served unsigned (a validator would call it bogus): the zone keeps its
                    // last signed version, if there is one.
                    Err(e) => match prev.filter(|p| p.dnssec.is_some()) {
                        Some(p) => {
                            tracing::error!(zone = %entry.zone.apex, error = %e, serial = p.serial, "pool answers could not be signed; the zone keeps serving its last signed version");
                            entry = p.clone();
                        }
                        None => {
                            entry.dnssec = None;
                            tracing::error!(zone = %entry.zone.apex, error = %e, "pool answers could not be signed; served unsigned");
                        }
                    },
                }
            }
            entries.push(entry);
        }
        self.answered = answered;
        self.judged = judged;
        let mut state_changed = false;
        if held_now != self.admin.held {
            self.admin.held = held_now;
            state_changed = true;
        }
        for e in &entries {
            let name = hold_key(&e.zone.apex);
            let hash = e.content_hash();
            if self.admin.serials.get(&name) != Some(&(e.serial, hash)) {
                self.admin.serials.insert(name, (e.serial, hash));
                state_changed = true;
            }
        }
        if state_changed {
            self.out.state = Some(self.admin.clone());
        }
        self.wake_at = wake_at;
        // Differences no published zone needed (a zone replaced twice before a publish).
        self.out.garbage.extend(self.diffs.drain(..).map(|d| Box::new(d) as Box<dyn Any + Send>));
        let snapshot = Arc::new(Snapshot::new(entries));
        self.current = snapshot.clone();
        self.out.snapshot = Some(snapshot);
        self.out.events.extend(events);
    }

    /// A zone entry with its serial: unchanged content keeps the serial (and history); a change
    /// takes the next one and is recorded for IXFR. The serial survives restarts through the
    /// state file, keyed by a hash of the content.
    fn served_entry(
        &mut self,
        zone: Arc<Zone>,
        answers: Arc<[PoolAnswer]>,
        prev: Option<&ZoneEntry>,
        signed: Option<&SignedZone>,
    ) -> ZoneEntry {
        let mut e = ZoneEntry {
            dnssec: signed.map(|s| crate::model::signed::EntrySigs::of_zone(s.sigs.clone())),
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
                // A cluster peer serves this content at a later serial: move up to it, a
                // serial change with no difference.
                let agreed = self.agreed_serial(&name, hash, p.serial, p.serial);
                if history::serial_gt(agreed, p.serial) {
                    e.serial = agreed;
                    e.history = Arc::new(p.history.with(history::Diff {
                        from: p.serial,
                        to: agreed,
                        removed: Vec::new(),
                        added: Vec::new(),
                    }));
                    let soa = ZoneEntry::soa_with_serial(&e.zone, e.serial);
                    self.announce(&e.zone, e.serial, soa);
                }
            }
            Some(p) => {
                let next = history::next_serial(p.serial, e.zone.serial);
                e.serial = self.agreed_serial(&name, hash, p.serial, next);
                let (mut removed, mut added) = history::diff(p.pool_records(), e.pool_records());
                let reloaded = !Arc::ptr_eq(&p.zone, &e.zone);
                // A reloaded zone's static records were diffed by the loader, off this path.
                let static_diff = reloaded
                    .then(|| {
                        let at = self
                            .diffs
                            .iter()
                            .position(|d| Arc::ptr_eq(&d.from, &p.zone) && Arc::ptr_eq(&d.to, &e.zone))?;
                        Some(self.diffs.swap_remove(at))
                    })
                    .flatten();
                match static_diff {
                    Some(mut d) => {
                        removed.append(&mut d.removed);
                        added.append(&mut d.added);
                        self.out.garbage.push(Box::new(d));
                        e.history =
                            Arc::new(p.history.with(history::Diff { from: p.serial, to: e.serial, removed, added }));
                    }
                    // No difference known (the zone was replaced twice between two publishes):
                    // the history starts over, and IXFR from older serials is a full transfer.
                    None if reloaded => {}
                    None => {
                        e.history =
                            Arc::new(p.history.with(history::Diff { from: p.serial, to: e.serial, removed, added }));
                    }
                }
                let soa = ZoneEntry::soa_with_serial(&e.zone, e.serial);
                self.announce(&e.zone, e.serial, soa);
            }
            // Before the first probe round is done, answers settle: the serial is the one
            // restored if the content is the same, else one past any a run since the last
            // clean stop may have served unwritten. A zone loaded later (or removed and added
            // again) goes on from the last serial this run served it with.
            None => {
                let restored = self.restored_serials.get(&name);
                let known = if self.settled { self.admin.serials.get(&name) } else { restored };
                let gap = if known == restored { self.restored_gap } else { 0 };
                e.serial = match known {
                    Some(&(s, h)) if h == hash => s,
                    Some(&(s, _)) => history::next_serial(s.wrapping_add(gap), e.zone.serial),
                    None => e.zone.serial,
                };
            }
        }
        e.set_soa(ZoneEntry::soa_with_serial(&e.zone, e.serial));
        e
    }
}

impl Publisher {
    /// Sets the pool, target and zone gauges from what is served now.
    pub fn export_metrics(&self) {
        for entry in &self.current.zones {
            let Some(keys) = self.index.per_zone.get(&(Arc::as_ptr(&entry.zone) as usize)) else { continue };
            for (pi, pool) in entry.zone.pools.iter().enumerate() {
                export_pool_metrics(&entry.zone, pool, &keys[pi], &self.verdicts, &self.admin, &entry.answers[pi]);
            }
            metrics::gauge!("weiche_zone_serial", "zone" => entry.zone.apex.to_string()).set(entry.serial as f64);
        }
    }
}

/// What a target's checks say together, for the chart: down if any check is down, up only if
/// all are up, else unknown (gdnsd's worst-wins). With it, how long until a pending verdict
/// could change that (None: nothing pending): for an up target the soonest of its checks in
/// doubt (any one going down takes it down); for a down one, only if every check that is down
/// is in doubt coming up, the last of them. A failback delay is the caller's to add.
fn judge(keys: &[ProbeKey], verdicts: &HashMap<ProbeKey, TargetState>) -> (Health, Option<Duration>) {
    const NOT_YET: TargetState = TargetState { verdict: Health::Unknown, against: 0, streak: 0, last_ok: None };
    let states = || keys.iter().map(|k| (verdicts.get(k).unwrap_or(&NOT_YET), &k.check.0));
    if states().any(|(s, _)| s.verdict == Health::Down) {
        let due: Option<Vec<Duration>> =
            states().filter(|(s, _)| s.verdict == Health::Down).map(|(s, c)| s.decided_within(c)).collect();
        return (Health::Down, due.and_then(|d| d.into_iter().max()));
    }
    if states().all(|(s, _)| s.verdict == Health::Up) {
        return (Health::Up, states().filter_map(|(s, c)| s.decided_within(c)).min());
    }
    (Health::Unknown, None)
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Per-target and per-pool gauges: what is up, what is drained, which level answers.
pub(crate) fn export_pool_metrics(
    zone: &Zone,
    pool: &crate::model::pool::Pool,
    keys: &[Vec<ProbeKey>],
    verdicts: &HashMap<ProbeKey, TargetState>,
    admin: &AdminState,
    answer: &crate::model::snapshot::PoolAnswer,
) {
    let (z, p) = (zone.apex.to_string(), pool.name.to_string());
    let hold = hold_key(&pool.name);
    for (ti, t) in pool.targets.iter().enumerate() {
        if pool.targets[..ti].iter().any(|o| o.address == t.address) {
            continue;
        }
        // A server listed at several priorities is up if one of its listings is.
        let up = pool
            .targets
            .iter()
            .zip(keys)
            .any(|(o, keys)| o.address == t.address && judge(keys, verdicts).0 == Health::Up);
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
    zone.apex_ns().into_iter().flat_map(|(_, addrs)| addrs).collect()
}

/// How a pool is named in the state file (and matched for per-pool drains).
pub(crate) fn hold_key(name: &Name) -> String {
    name.to_string().to_ascii_lowercase()
}

pub(crate) fn addresses(f: &FamilyAnswer) -> String {
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

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::load::watch::Watcher;

    pub(super) const POOL: &str = r#"records = '''
$TTL 60
@ SOA ns1 hm 1 1h 10m 14d 300
@ NS ns1
ns1 A 192.0.2.53
'''
[pools.www]
check = { type = "tcp", port = 80, fall = 1, rise = 1 }
targets = [{ address = "127.0.0.1", priority = 1 }, { address = "127.0.0.2", priority = 2 }]
"#;

    /// A publisher on a zones directory, stepped by hand: the clock moves only when told.
    struct Bench {
        dir: tempfile::TempDir,
        watcher: Watcher,
        p: Publisher,
        start: Instant,
        elapsed: Duration,
    }

    impl Bench {
        fn new(files: &[(&str, &str)]) -> Bench {
            Bench::with_state(files, AdminState::default())
        }

        fn with_state(files: &[(&str, &str)], admin: AdminState) -> Bench {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in files {
                std::fs::write(dir.path().join(name), text).unwrap();
            }
            let watcher = Watcher::new(dir.path());
            let mut b =
                Bench { dir, watcher, p: Publisher::new(admin), start: Instant::now(), elapsed: Duration::ZERO };
            b.reload();
            b
        }

        fn now(&self) -> Now {
            Now { at: self.start + self.elapsed, wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.elapsed }
        }

        fn step(&mut self, d: Duration) {
            self.elapsed += d;
            let now = self.now();
            self.p.wake(now);
        }

        fn reload(&mut self) -> Effects {
            if let Some(r) = self.watcher.reconcile(true).unwrap() {
                let now = self.now();
                self.p.set_zones(r, now);
            }
            self.p.take_effects()
        }

        fn write(&mut self, name: &str, text: &str) -> Effects {
            std::fs::write(self.dir.path().join(name), text).unwrap();
            self.reload()
        }

        /// One probe result for the target probed at `addr` ("127.0.0.1:80").
        fn probe(&mut self, addr: &str, ok: bool) -> Effects {
            let key = self.p.probe_keys().into_iter().find(|k| k.addr == addr.parse().unwrap()).unwrap();
            let mut state = self.p.verdicts.get(&key).cloned().unwrap_or_default();
            let transition = state.observe(ok, key.check.0.rise, key.check.0.fall);
            let cause = (!ok).then(|| "connection refused".into());
            let u = Update {
                key,
                state,
                transition,
                cause,
                latency: Duration::from_millis(3),
                probed: true,
                decided_by: None,
            };
            let now = self.now();
            self.p.apply_all(vec![u], now);
            self.p.take_effects()
        }

        fn both_up(&mut self) {
            self.all_up(&["127.0.0.1:80", "127.0.0.2:80"]);
        }

        /// Every probe key at `addrs` up, and the start-up round done.
        fn all_up(&mut self, addrs: &[&str]) {
            for a in addrs {
                self.probe(a, true);
            }
            self.p.settle();
            self.p.take_effects();
        }

        /// The A answer at `name` and its TTL.
        fn answer(&self, name: &str) -> (Vec<[u8; 4]>, u32) {
            let key = Name::parse(name, None).unwrap().key();
            for z in &self.p.snapshot().zones {
                if let Some(i) = z.zone.pools.iter().position(|pl| pl.name.key() == key) {
                    let a = &z.answers[i].a.rrset;
                    return (a.rdatas().map(|r| <[u8; 4]>::try_from(r).unwrap()).collect(), a.ttl);
                }
            }
            panic!("no pool {name}");
        }

        fn www(&self) -> Vec<[u8; 4]> {
            self.answer("www.example.com.").0
        }

        fn serial(&self) -> u32 {
            self.p.snapshot().zones[0].serial
        }
    }

    const PRIMARY: [u8; 4] = [127, 0, 0, 1];
    const SECONDARY: [u8; 4] = [127, 0, 0, 2];

    fn kinds(e: &Effects) -> Vec<EventKind> {
        e.events.iter().filter_map(|e| e.kind).collect()
    }

    fn www() -> Name {
        Name::parse("www.example.com.", None).unwrap()
    }

    #[test]
    fn failover_and_failback_are_events_with_a_new_serial_and_a_notify() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        let serial = b.serial();
        let e = b.probe("127.0.0.1:80", false);
        assert_eq!(kinds(&e), [EventKind::TargetDown, EventKind::Failover]);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5), "a fallback level answers with ttl_min");
        assert!(e.snapshot.is_some());
        assert_eq!(b.serial(), serial + 1);
        assert_eq!(e.announce.iter().map(|c| c.serial).collect::<Vec<_>>(), [serial + 1]);
        // IXFR history: the pool's record moved.
        let h = &b.p.snapshot().zones[0].history;
        let d = h.since(serial).unwrap();
        assert_eq!((d[0].removed.len(), d[0].added.len()), (1, 1));
        let e = b.probe("127.0.0.1:80", true);
        assert_eq!(kinds(&e), [EventKind::TargetUp, EventKind::Failback]);
        assert_eq!(b.www(), [PRIMARY]);
        assert_eq!(b.serial(), serial + 2);
    }

    /// Issue 18: while a verdict that would change the answer is pending, the TTL is the time
    /// until it is decided (retries left × retry_interval + timeout, rounded up), so a resolver
    /// that refreshes meanwhile comes back once it is, not a whole ttl_min later.
    #[test]
    fn a_pending_verdict_sets_the_ttl_to_its_wait() {
        let slow = POOL.replace(
            "fall = 1, rise = 1",
            "interval = \"2s\", retry_interval = \"1s\", timeout = \"500ms\", fall = 3, rise = 2",
        );
        let mut b = Bench::new(&[("example.com.toml", &slow)]);
        b.both_up();
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 3), "two retries and a timeout: 2.5 s");
        let e = b.probe("127.0.0.1:80", false);
        assert!(e.snapshot.is_some(), "each confirming result republishes");
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 2), "one retry and a timeout: 1.5 s");
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5), "decided: steady on the fallback");
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 2), "the primary in doubt coming up");
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        // Doubt on the fallback, not in use, changes nothing.
        let e = b.probe("127.0.0.2:80", false);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        assert!(e.events.is_empty());
    }

    #[test]
    fn a_failback_delay_counts_in_the_wait() {
        let delayed = POOL.replace(
            "[pools.www]\ncheck = { type = \"tcp\", port = 80, fall = 1, rise = 1 }",
            "[pools.www]\nfailback_delay = \"3s\"\ncheck = { type = \"tcp\", port = 80, interval = \"2s\", retry_interval = \"1s\", timeout = \"500ms\", fall = 1, rise = 2 }",
        );
        let mut b = Bench::new(&[("example.com.toml", &delayed)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5));
        // In doubt coming up: 1.5 s to the verdict, then the 3 s delay, above ttl_min.
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5));
        // Up: answered once the delay runs out.
        b.step(Duration::from_millis(800));
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 3));
        b.step(Duration::from_secs(3));
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
    }

    #[test]
    fn a_probe_that_changes_nothing_publishes_nothing() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        let e = b.probe("127.0.0.1:80", true);
        assert!(e.snapshot.is_none() && e.events.is_empty() && e.state.is_none() && e.announce.is_empty());
    }

    #[test]
    fn the_start_up_round_is_no_failover_and_keeps_the_file_serial() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        // The secondary is judged first: the answer moves, but that is settling, not an event.
        let e = b.probe("127.0.0.2:80", true);
        assert!(!kinds(&e).contains(&EventKind::Failover));
        let e = b.probe("127.0.0.1:80", true);
        assert!(!kinds(&e).iter().any(|k| matches!(k, EventKind::Failover | EventKind::Failback)));
        assert_eq!(b.serial(), 1, "before settling, the file's serial");
        b.p.settle();
        let e = b.p.take_effects();
        assert_eq!(e.announce.len(), 1, "every zone is announced once at start");
    }

    #[test]
    fn manual_failback_holds_until_released_and_reload_keeps_verdicts() {
        let manual = POOL.replace("[pools.www]", "[pools.www]\nfailback = \"manual\"");
        let mut b = Bench::new(&[("example.com.toml", &manual)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.www(), [SECONDARY]);
        // The primary recovers: with manual failback the answer stays, and the hold is saved.
        let e = b.probe("127.0.0.1:80", true);
        assert_eq!(b.www(), [SECONDARY]);
        assert!(!kinds(&e).contains(&EventKind::Failback));
        assert_eq!(b.p.admin.held.get("www.example.com."), Some(&[Some(2), None]));
        // A reload keeps the verdicts of unchanged targets, and the hold.
        let serial_before = b.serial();
        let e = b.write("example.com.toml", &manual.replace("1h 10m", "2h 10m"));
        assert_eq!(kinds(&e), [EventKind::ZoneLoaded]);
        // The file still says serial 1; what is served moved on, and the event says that.
        assert_eq!(e.events[0].serial, Some(b.serial()));
        assert!(b.serial() > serial_before);
        assert!(b.p.probe_keys().iter().all(|k| b.p.has_verdict(k)));
        assert_eq!(b.www(), [SECONDARY]);
        // Released: back to the primary, which is up, with the full TTL; the state is saved.
        let now = b.now();
        assert_eq!(b.p.release_failback(&www(), now), Ok(()));
        let e = b.p.take_effects();
        assert_eq!(kinds(&e), [EventKind::FailbackReleased, EventKind::Failback]);
        assert!(e.state.as_ref().unwrap().held.is_empty());
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        let nope = Name::parse("nope.example.com.", None).unwrap();
        assert_eq!(
            b.p.release_failback(&nope, now),
            Err(ActionError::NotFound("no pool named nope.example.com.".into()))
        );
    }

    /// Issue 13: a release with nothing to release is refused, changes nothing and is no event.
    #[test]
    fn a_failback_release_with_nothing_to_release_is_refused() {
        let conflict = |r: Result<(), ActionError>| match r {
            Err(ActionError::Conflict(m)) => m,
            other => panic!("not a conflict: {other:?}"),
        };
        // A pool that fails back by itself.
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        let now = b.now();
        let m = conflict(b.p.release_failback(&www(), now));
        assert_eq!(m, "pool www.example.com. fails back by itself (failback = \"auto\"): there is no hold to release");
        let e = b.p.take_effects();
        assert!(e.events.is_empty() && e.state.is_none() && e.snapshot.is_none());
        // A manual pool that holds nothing.
        let manual = POOL.replace("[pools.www]", "[pools.www]\nfailback = \"manual\"");
        let mut b = Bench::new(&[("example.com.toml", &manual)]);
        b.both_up();
        let now = b.now();
        let m = conflict(b.p.release_failback(&www(), now));
        assert!(m.contains("holds nothing"), "{m}");
        // Held on the fallback while the primary is still down: nothing better to go back to;
        // the hold stays.
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.p.admin.held.get("www.example.com."), Some(&[Some(2), None]));
        b.p.take_effects();
        let now = b.now();
        let m = conflict(b.p.release_failback(&www(), now));
        assert!(m.contains("held on priority 2") && m.contains("the hold stays"), "{m}");
        let e = b.p.take_effects();
        assert!(e.events.is_empty() && e.state.is_none() && e.snapshot.is_none());
        assert_eq!(b.p.admin.held.get("www.example.com."), Some(&[Some(2), None]));
        // Once the primary is back, the release is done.
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.www(), [SECONDARY]);
        let now = b.now();
        assert_eq!(b.p.release_failback(&www(), now), Ok(()));
        assert_eq!(b.www(), [PRIMARY]);
    }

    #[test]
    fn a_restored_hold_survives_a_restart() {
        let manual = POOL.replace("[pools.www]", "[pools.www]\nfailback = \"manual\"");
        let mut admin = AdminState::default();
        admin.held.insert("www.example.com.".into(), [Some(2), None]);
        let mut b = Bench::with_state(&[("example.com.toml", &manual)], admin);
        b.both_up();
        assert_eq!(b.www(), [SECONDARY], "held on level 2 although the primary is up");
    }

    #[test]
    fn failback_waits_for_the_delay_without_sleeping() {
        let delayed = POOL.replace("[pools.www]", "[pools.www]\nfailback_delay = \"30s\"");
        let mut b = Bench::new(&[("example.com.toml", &delayed)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.www(), [SECONDARY]);
        assert!(b.p.wake_at().is_none());
        // Back up: not answered until it has stayed up for the delay.
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.www(), [SECONDARY]);
        assert_eq!(b.p.wake_at(), Some(b.now().at + Duration::from_secs(30)));
        b.step(Duration::from_secs(29));
        assert!(b.p.take_effects().snapshot.is_none(), "too early: nothing published");
        assert_eq!(b.www(), [SECONDARY]);
        b.step(Duration::from_secs(1));
        let e = b.p.take_effects();
        assert_eq!(kinds(&e), [EventKind::Failback]);
        assert_eq!(e.events[0].reason, "failback delay passed");
        assert_eq!(b.www(), [PRIMARY]);
        assert!(b.p.wake_at().is_none());
    }

    #[test]
    fn a_relapse_during_the_failback_delay_starts_it_over() {
        let delayed = POOL.replace("[pools.www]", "[pools.www]\nfailback_delay = \"30s\"");
        let mut b = Bench::new(&[("example.com.toml", &delayed)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        b.probe("127.0.0.1:80", true);
        b.step(Duration::from_secs(20));
        b.probe("127.0.0.1:80", false);
        assert!(b.p.wake_at().is_none());
        b.probe("127.0.0.1:80", true);
        b.step(Duration::from_secs(20));
        assert_eq!(b.www(), [SECONDARY], "20 s after the second recovery");
        b.step(Duration::from_secs(10));
        assert_eq!(b.www(), [PRIMARY]);
    }

    #[test]
    fn drains_move_the_answer_and_are_kept() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        let now = b.now();
        let primary = "127.0.0.1".parse().unwrap();
        b.p.set_drain(primary, None, true, now).unwrap();
        let e = b.p.take_effects();
        assert_eq!(kinds(&e), [EventKind::Drain, EventKind::Failover]);
        assert_eq!(e.state.as_ref().unwrap().drained.len(), 1);
        assert_eq!(b.www(), [SECONDARY]);
        // Draining again changes nothing and says nothing.
        b.p.set_drain(primary, None, true, now).unwrap();
        assert!(b.p.take_effects().events.is_empty());
        // Errors say why.
        assert_eq!(
            b.p.set_drain("192.0.2.99".parse().unwrap(), None, true, now),
            Err(ActionError::NotFound("192.0.2.99 is not a target".into()))
        );
        let other = Name::parse("nope.example.com.", None).unwrap();
        assert_eq!(
            b.p.set_drain(primary, Some(&other), true, now),
            Err(ActionError::NotFound("no pool named nope.example.com.".into()))
        );
        b.p.set_drain(primary, None, false, now).unwrap();
        assert_eq!(kinds(&b.p.take_effects()), [EventKind::Undrain, EventKind::Failback]);
        assert_eq!(b.www(), [PRIMARY]);
        // A per-pool drain.
        b.p.set_drain(primary, Some(&www()), true, now).unwrap();
        assert_eq!(b.www(), [SECONDARY]);
    }

    /// Issue 13: an undrain does what it says or is refused. Without a pool it lifts every
    /// drain of the address; in one pool of an address drained everywhere it cannot take
    /// effect, so it changes nothing and says why.
    #[test]
    fn an_undrain_does_what_it_says_or_is_refused() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        let now = b.now();
        let primary = "127.0.0.1".parse().unwrap();
        // Drained in the pool, undrained everywhere: answered again.
        b.p.set_drain(primary, Some(&www()), true, now).unwrap();
        b.p.take_effects();
        assert_eq!(b.www(), [SECONDARY]);
        b.p.set_drain(primary, None, false, now).unwrap();
        let e = b.p.take_effects();
        assert_eq!(kinds(&e), [EventKind::Undrain, EventKind::Failback]);
        assert_eq!(e.events[0].pool.as_deref(), Some("www.example.com."), "the event names the drain lifted");
        assert!(e.state.unwrap().drained.is_empty());
        assert_eq!(b.www(), [PRIMARY]);
        // Drained everywhere and in the pool: both are lifted, one event each.
        b.p.set_drain(primary, None, true, now).unwrap();
        b.p.set_drain(primary, Some(&www()), true, now).unwrap();
        b.p.take_effects();
        // An undrain in the pool alone cannot bring it back: refused, nothing changes.
        let refused =
            Err(ActionError::Conflict("127.0.0.1 is drained in every pool; undrain it without --pool".into()));
        assert_eq!(b.p.set_drain(primary, Some(&www()), false, now), refused);
        let e = b.p.take_effects();
        assert!(e.events.is_empty() && e.state.is_none() && e.snapshot.is_none());
        assert_eq!(b.p.admin.drained.len(), 2);
        b.p.set_drain(primary, None, false, now).unwrap();
        assert_eq!(kinds(&b.p.take_effects()), [EventKind::Undrain, EventKind::Undrain, EventKind::Failback]);
        assert!(b.p.admin.drained.is_empty());
        // Undraining what is not drained is done already: no change, no event.
        b.p.set_drain(primary, None, false, now).unwrap();
        assert!(b.p.take_effects().events.is_empty());
    }

    #[test]
    fn a_reload_that_removes_a_target_forgets_it_and_ignores_its_late_results() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.www(), [SECONDARY]);
        let one = POOL.replace(", { address = \"127.0.0.2\", priority = 2 }", "");
        let e = b.write("example.com.toml", &one.replace("1h 10m", "2h 10m"));
        assert!(e.snapshot.is_some());
        assert_eq!(b.p.probe_keys().len(), 1);
        assert_eq!(b.p.verdicts.len(), 1, "the removed target's verdict is gone");
        // Only the (down) primary is left: keep-primary answers it.
        assert_eq!(b.www(), [PRIMARY]);
        let removed = ProbeKey { addr: "127.0.0.2:80".parse().unwrap(), check: b.p.probe_keys()[0].check.clone() };
        let mut state = TargetState::default();
        let transition = state.observe(false, 1, 1);
        let now = b.now();
        b.p.apply_all(
            vec![Update {
                key: removed,
                state,
                transition,
                cause: None,
                latency: Duration::ZERO,
                probed: true,
                decided_by: None,
            }],
            now,
        );
        assert!(b.p.take_effects().events.is_empty(), "a late result of a removed target is no event");
        assert!(b.p.verdicts.len() == 1);
    }

    #[test]
    fn a_broken_reload_keeps_serving_and_a_deleted_zone_goes() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        let serial = b.serial();
        let e = b.write("example.com.toml", &POOL.replace("127.0.0.2\"", "127.0.0.999\""));
        assert_eq!(kinds(&e), [EventKind::ZoneError]);
        assert!(e.snapshot.is_none(), "nothing served changed");
        assert_eq!((b.www(), b.serial()), (vec![PRIMARY], serial));
        assert!(b.p.tracked.values().next().unwrap().last_error.as_deref().unwrap().contains("127.0.0.999"));
        std::fs::remove_file(b.dir.path().join("example.com.toml")).unwrap();
        let e = b.reload();
        assert_eq!(kinds(&e), [EventKind::ZoneRemoved]);
        assert!(b.p.snapshot().zones.is_empty());
        assert!(b.p.probe_keys().is_empty());
    }

    #[test]
    fn a_reloaded_zone_takes_the_next_serial_with_the_loaders_diff() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        let e = b.write("example.com.toml", &POOL.replace("ns1 A 192.0.2.53", "ns1 A 192.0.2.53\nmail A 192.0.2.25"));
        assert_eq!(b.serial(), 2);
        assert_eq!(e.announce.len(), 1);
        assert!(!e.garbage.is_empty(), "the replaced zone is freed by the driver");
        let d = b.p.snapshot().zones[0].history.since(1).unwrap();
        assert_eq!((d[0].removed.len(), d[0].added.len()), (0, 1));
        assert_eq!(d[0].added[0].owner.to_string(), "mail.example.com.");
        // The same content again (a touched file) keeps the serial.
        b.write("example.com.toml", &POOL.replace("ns1 A 192.0.2.53", "ns1 A 192.0.2.53\nmail A 192.0.2.25"));
        assert_eq!(b.serial(), 2);
    }

    #[test]
    fn restored_serials_survive_a_restart_only_with_the_same_content() {
        let mut admin = AdminState::default();
        admin.serials.insert("example.com.".into(), (41, 0));
        let b = Bench::with_state(&[("example.com.toml", POOL)], admin);
        assert_eq!(b.serial(), 42, "changed content: the next serial after the restored one");
        let hash = b.p.snapshot().zones[0].content_hash();
        let mut admin = AdminState::default();
        admin.serials.insert("example.com.".into(), (41, hash));
        let b = Bench::with_state(&[("example.com.toml", POOL)], admin);
        assert_eq!(b.serial(), 41, "same content: the same serial");
    }

    /// A clean stop's state file does not prove that no run came between: one whose state
    /// file could not be written may have served later serials. Changed content moves past
    /// them (ten a second since the clean stop's write); the same content keeps its serial.
    #[test]
    fn changed_content_after_a_clean_stop_skips_what_an_unwritten_run_may_have_served() {
        let saved_at = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 100;
        let mut admin = AdminState { running: false, saved_at: Some(saved_at), ..Default::default() };
        admin.serials.insert("example.com.".into(), (7, 0));
        let b = Bench::with_state(&[("example.com.toml", POOL)], admin.clone());
        assert!((7 + 1000..7 + 1100).contains(&b.serial()), "{}", b.serial());
        let hash = b.p.snapshot().zones[0].content_hash();
        admin.serials.insert("example.com.".into(), (7, hash));
        assert_eq!(Bench::with_state(&[("example.com.toml", POOL)], admin).serial(), 7);
    }

    /// A zone removed and added again goes on from the serial this run last served it with,
    /// not from the one the state file held at start.
    #[test]
    fn a_zone_removed_and_added_again_never_goes_back() {
        let mut admin = AdminState::default();
        admin.serials.insert("example.com.".into(), (10, 0));
        let mut b = Bench::with_state(&[("example.com.toml", POOL)], admin);
        b.both_up();
        assert_eq!(b.serial(), 11);
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.serial(), 12, "the answer moved");
        let file = b.dir.path().join("example.com.toml");
        std::fs::remove_file(&file).unwrap();
        b.reload();
        assert!(b.p.snapshot().zones.is_empty());
        // Before, the serial restored at start (10, then 11 for other content) came back.
        b.write("example.com.toml", POOL);
        let again = b.serial();
        assert!(again == 12 || history::serial_gt(again, 12), "{again}");
        std::fs::remove_file(&file).unwrap();
        b.reload();
        b.write("example.com.toml", &POOL.replace("127.0.0.1", "127.0.0.4"));
        assert!(history::serial_gt(b.serial(), again), "{} after {again}", b.serial());
    }

    /// Issue 13: served 2026112010 while the state file kept 2026112008, then a restart must
    /// not serve 2026112009 (secondaries would ignore it), nor keep 2026112008 for content
    /// that looks the same: the lost serials are skipped, whatever is served now.
    #[test]
    fn a_start_after_lost_writes_serves_past_every_serial_that_may_have_been_lost() {
        let hash = Bench::new(&[("example.com.toml", POOL)]).p.snapshot().zones[0].content_hash();
        for (content, kept) in [(hash, "the same content"), (hash ^ 1, "other content")] {
            let saved_at = 1_800_000_000;
            let mut admin = AdminState { running: true, saved_at: Some(saved_at), ..Default::default() };
            admin.serials.insert("example.com.".into(), (2026112008, content));
            // Two seconds after the last write.
            admin.skip_lost_serials(UNIX_EPOCH + Duration::from_secs(saved_at + 2));
            let mut b = Bench::with_state(&[("example.com.toml", POOL)], admin);
            assert_eq!(b.serial(), 2026112008 + 30 + 1, "{kept}");
            b.both_up();
            assert_eq!(b.serial(), 2026112039, "{kept}: settling keeps it");
        }
    }

    #[test]
    fn all_down_and_recovery_are_events() {
        let mut b = Bench::new(&[("example.com.toml", POOL)]);
        b.both_up();
        b.probe("127.0.0.1:80", false);
        let e = b.probe("127.0.0.2:80", false);
        assert_eq!(kinds(&e), [EventKind::TargetDown, EventKind::AllDown]);
        assert_eq!(e.events[1].policy.as_deref(), Some("keep-primary"));
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 5));
        let e = b.probe("127.0.0.2:80", true);
        assert_eq!(kinds(&e), [EventKind::TargetUp, EventKind::Recovered]);
        assert_eq!(b.www(), [SECONDARY]);
    }

    /// POOL with two checks, on ports 80 and 81, each with its own extra keys.
    fn two_checks(a: &str, b: &str) -> String {
        POOL.replace(
            "check = { type = \"tcp\", port = 80, fall = 1, rise = 1 }",
            &format!("check = [{{ type = \"tcp\", port = 80, {a} }}, {{ type = \"tcp\", port = 81, {b} }}]"),
        )
    }

    const FALL_1: &str = "fall = 1, rise = 1";

    const FOUR: [&str; 4] = ["127.0.0.1:80", "127.0.0.1:81", "127.0.0.2:80", "127.0.0.2:81"];

    /// gdnsd's worst-wins: one failing check of two takes the target down; it is back only
    /// once both pass.
    #[test]
    fn a_target_is_up_only_while_every_check_passes() {
        let mut b = Bench::new(&[("example.com.toml", &two_checks(FALL_1, FALL_1))]);
        assert_eq!(b.p.probe_keys().len(), 4);
        b.probe("127.0.0.1:80", true);
        b.probe("127.0.0.2:80", true);
        b.probe("127.0.0.2:81", true);
        assert!(b.p.judged.is_empty(), "a check without a verdict: not every target judged");
        b.all_up(&["127.0.0.1:81"]);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        let e = b.probe("127.0.0.1:81", false);
        assert_eq!(kinds(&e), [EventKind::TargetDown, EventKind::Failover]);
        assert_eq!(e.events[0].check.as_deref(), Some("www (inline 2)"), "the event names the check that failed");
        assert_eq!(e.events[0].target.as_deref(), Some("127.0.0.1:81"));
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5));
        // The other check failing too changes nothing; one of the two back changes nothing.
        let e = b.probe("127.0.0.1:80", false);
        assert_eq!(kinds(&e), [EventKind::TargetDown]);
        assert_eq!(e.events[0].check.as_deref(), Some("www (inline 1)"));
        let e = b.probe("127.0.0.1:81", true);
        assert_eq!(kinds(&e), [EventKind::TargetUp]);
        assert_eq!(b.www(), [SECONDARY]);
        // Both back: the primary again.
        let e = b.probe("127.0.0.1:80", true);
        assert_eq!(kinds(&e), [EventKind::TargetUp, EventKind::Failback]);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
        // Either check failing on the secondary as well as the primary: all down.
        b.probe("127.0.0.1:80", false);
        let e = b.probe("127.0.0.2:81", false);
        assert_eq!(kinds(&e), [EventKind::TargetDown, EventKind::AllDown]);
    }

    /// A target's own `check` replaces the pool's for it alone: here a weaker check for the
    /// sorry server at priority 2.
    #[test]
    fn a_targets_own_check_replaces_the_pools() {
        let text = two_checks(FALL_1, FALL_1).replace(
            "{ address = \"127.0.0.2\", priority = 2 }",
            "{ address = \"127.0.0.2\", priority = 2, check = { type = \"tcp\", port = 22, fall = 1, rise = 1 } }",
        );
        let mut b = Bench::new(&[("example.com.toml", &text)]);
        let mut keys: Vec<String> = b.p.probe_keys().iter().map(|k| k.addr.to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["127.0.0.1:80", "127.0.0.1:81", "127.0.0.2:22"]);
        b.all_up(&["127.0.0.1:80", "127.0.0.1:81", "127.0.0.2:22"]);
        assert_eq!(b.www(), [PRIMARY]);
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.www(), [SECONDARY]);
        let e = b.probe("127.0.0.2:22", false);
        assert_eq!(e.events[0].check.as_deref(), Some("www 127.0.0.2 (inline)"));
        assert_eq!(kinds(&e), [EventKind::TargetDown, EventKind::AllDown]);
        b.probe("127.0.0.2:22", true);
        assert_eq!(b.www(), [SECONDARY], "its one check passes: up");
    }

    /// A server listed again at a lower priority with a weaker check of its own (Galera's
    /// `wsrep_dirty_reads` fallback): when the strict check fails everywhere, the same server is
    /// answered from the weak level; `all_down = "all"` answers it once, not twice.
    #[test]
    fn a_server_can_be_its_own_weaker_fallback() {
        let text = POOL.replace(
            "{ address = \"127.0.0.2\", priority = 2 }",
            "{ address = \"127.0.0.2\", priority = 2 }, { address = \"127.0.0.1\", priority = 3, check = { type = \"tcp\", port = 22, fall = 1, rise = 1 } }",
        );
        let mut b = Bench::new(&[("example.com.toml", &text)]);
        b.all_up(&["127.0.0.1:80", "127.0.0.2:80", "127.0.0.1:22"]);
        assert_eq!(b.www(), [PRIMARY]);
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.www(), [SECONDARY]);
        b.probe("127.0.0.2:80", false);
        assert_eq!(b.www(), [PRIMARY], "the primary again, from its weaker level");
        assert_eq!(b.p.snapshot().zones[0].answers[0].a.level, Some(3));
        b.probe("127.0.0.1:22", false);
        let all = text.replace("[pools.www]", "[pools.www]\nall_down = \"all\"");
        let mut b = Bench::new(&[("example.com.toml", &all)]);
        b.all_up(&["127.0.0.1:80", "127.0.0.2:80", "127.0.0.1:22"]);
        for k in ["127.0.0.1:80", "127.0.0.2:80", "127.0.0.1:22"] {
            b.probe(k, false);
        }
        let mut got = b.www();
        got.sort();
        assert_eq!(got, [PRIMARY, SECONDARY], "each address once");
    }

    /// The TTL while a verdict is pending: an up target goes down with the first of its checks
    /// in doubt, so the soonest counts; a down one comes up only once every check that is down
    /// has, so the last counts, and only while all of them are in doubt.
    #[test]
    fn the_wait_of_several_checks_in_doubt() {
        let timing = "interval = \"3s\", retry_interval = \"1s\", timeout = \"500ms\"";
        let text = two_checks(&format!("{timing}, fall = 3, rise = 2"), &format!("{timing}, fall = 2, rise = 3"));
        let mut b = Bench::new(&[("example.com.toml", &text)]);
        b.all_up(&FOUR);
        // Port 80 fails once: two retries and a timeout to go, 2.5 s.
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 3));
        // Port 81 fails once: one retry and a timeout, 1.5 s: the soonest.
        b.probe("127.0.0.1:81", false);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 2));
        // Port 81 decides: down, whatever port 80 says.
        b.probe("127.0.0.1:81", false);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5));
        b.probe("127.0.0.1:80", false);
        b.probe("127.0.0.1:80", false);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5), "both down, neither in doubt");
        // Port 80 in doubt coming up (1.5 s), but port 81 is down and steady: nothing is due.
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5));
        // Port 81 in doubt too: two more successes, 2.5 s, the later of the two.
        b.probe("127.0.0.1:81", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 3));
        b.probe("127.0.0.1:80", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 3), "port 80 is up; port 81 still to come");
        b.probe("127.0.0.1:81", true);
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 2));
        b.probe("127.0.0.1:81", true);
        assert_eq!(b.answer("www.example.com."), (vec![PRIMARY], 30));
    }

    /// With several checks a target is back when its last check is, and `failback_delay` counts
    /// from then: an earlier recovery of another check cannot cut it short.
    #[test]
    fn the_failback_delay_counts_from_the_last_check_back() {
        let text = two_checks(FALL_1, FALL_1).replace("[pools.www]", "[pools.www]\nfailback_delay = \"30s\"");
        let mut b = Bench::new(&[("example.com.toml", &text)]);
        b.all_up(&FOUR);
        b.probe("127.0.0.1:80", false);
        b.probe("127.0.0.1:81", false);
        assert_eq!(b.www(), [SECONDARY]);
        // Port 80 back at 10 s, port 81 at 30 s: answered from 60 s, not 40 s.
        b.step(Duration::from_secs(10));
        b.probe("127.0.0.1:80", true);
        assert!(b.p.wake_at().is_none(), "still down: port 81");
        b.step(Duration::from_secs(20));
        b.probe("127.0.0.1:81", true);
        assert_eq!(b.p.wake_at(), Some(b.now().at + Duration::from_secs(30)));
        assert_eq!(b.answer("www.example.com."), (vec![SECONDARY], 5));
        b.step(Duration::from_secs(10));
        assert_eq!(b.www(), [SECONDARY], "30 s after port 80 came back, 10 s after port 81");
        b.step(Duration::from_secs(20));
        assert_eq!(b.www(), [PRIMARY]);
        // Much later port 81 fails and comes back on its own: port 80's recovery, long past,
        // does not count, so the delay runs again in full.
        b.step(Duration::from_secs(100));
        b.probe("127.0.0.1:81", false);
        b.step(Duration::from_secs(5));
        b.probe("127.0.0.1:81", true);
        b.step(Duration::from_secs(29));
        assert_eq!(b.www(), [SECONDARY]);
        b.step(Duration::from_secs(1));
        assert_eq!(b.www(), [PRIMARY]);
    }

    #[test]
    fn judging_several_checks_worst_wins() {
        use Health::{Down, Unknown, Up};
        let check = crate::model::pool::testing::tcp_check(); // retry 200 ms, timeout 500 ms, fall 3, rise 2
        let key = |port| ProbeKey::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)), &check);
        let keys = [key(1), key(2)];
        // A state from results: the first decides, the rest count against it.
        let state = |results: &[bool]| {
            let mut s = TargetState::default();
            for &ok in results {
                s.observe(ok, check.rise, check.fall);
            }
            s
        };
        let ms = Duration::from_millis;
        // Results of the first check, of the second; the target's verdict and due.
        type Case = (&'static [bool], &'static [bool], Health, Option<Duration>);
        let cases: &[Case] = &[
            (&[], &[], Unknown, None),
            (&[true], &[], Unknown, None),
            (&[false], &[], Down, None),
            (&[true], &[true], Up, None),
            (&[true], &[false], Down, None),
            (&[false], &[false], Down, None),
            // Up: the soonest of the checks in doubt going down.
            (&[true, false], &[true], Up, Some(ms(2 * 200 + 500))),
            (&[true, false], &[true, false, false], Up, Some(ms(200 + 500))),
            // Down: only when every check that is down is in doubt coming up, the last of them.
            (&[false, true], &[true], Down, Some(ms(200 + 500))),
            (&[false, true], &[false], Down, None),
            (&[false, true], &[false, true], Down, Some(ms(200 + 500))),
            (&[false, true], &[true, false], Down, Some(ms(200 + 500))),
            // A check still unknown beside one that is down: down, and due as that one is.
            (&[false, true], &[], Down, Some(ms(200 + 500))),
        ];
        for (a, b, health, due) in cases {
            let mut verdicts = HashMap::new();
            for (k, r) in keys.iter().zip([a, b]) {
                if !r.is_empty() {
                    verdicts.insert(k.clone(), state(r));
                }
            }
            assert_eq!(judge(&keys, &verdicts), (*health, *due), "{a:?} {b:?}");
        }
    }

    #[test]
    fn ns_addresses_are_the_in_zone_addresses_of_apex_ns_names() {
        let text = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\n@ NS ns2\n@ NS ns.elsewhere.net.\nns1 A 192.0.2.53\nns2 AAAA 2001:db8::53\nwww A 192.0.2.80\n";
        let b = Bench::new(&[("example.com.zone", text)]);
        let got = ns_addresses(&b.p.snapshot().zones[0].zone);
        assert_eq!(got, vec!["192.0.2.53".parse::<IpAddr>().unwrap(), "2001:db8::53".parse().unwrap()]);
    }
}

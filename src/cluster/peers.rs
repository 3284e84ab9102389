//! One member's view of the cluster, as a pure state machine: who it hears, whether it is in
//! the primary component, each member's vote on each target, and the cluster's verdict. It
//! takes this member's own probe results, the peers' messages and the time, and gives the
//! publisher verdict updates, the serving mode and operator writes; and the messages to send.
//!
//! Rules (`vote` holds the arithmetic):
//! - A member is heard while a message from it came within [`Peers::dead_after`] (2¾
//!   heartbeats; [`Peers::tick`] every quarter heartbeat makes a cut-off member know within 3).
//!   A member that said it leaves is counted out of the total until it is heard again.
//! - In the primary component, a target's verdict is the heavier side of the fresh votes (this
//!   member's own included); a tie or no vote keeps the current one. A member just started, that
//!   holds no verdict yet, takes the one its heaviest peer holds.
//! - Out of it: `withdraw` keeps the verdicts and withdraws pool answers, `freeze` keeps them and
//!   serves them at the short TTL, `local` decides from its own probes alone. A member that has
//!   not yet been primary has nothing agreed to freeze: it withdraws, and `local` waits one
//!   `dead_after` for a majority before it decides alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::operator::{OperatorMap, Stamp, Write};
use crate::cluster::quorum::{Layout, Set};
use crate::cluster::vote;
use crate::cluster::wire::{self, Header, Message, OpKey, OpValue, OpWrite, Vote, ZoneSerial};
use crate::config::cluster::{Cluster, Minority};
use crate::model::chart::Health;
use crate::monitor::{ProbeKey, Transition, Update};

/// How a member serves pool names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// From the verdicts (the cluster's, or in `local` minority its own).
    Normal,
    /// SERVFAIL: resolvers ask another nameserver.
    Withdrawn,
    /// The last agreed answers, at the pool's short TTL.
    Frozen,
}

impl Serving {
    pub fn name(self) -> &'static str {
        match self {
            Serving::Normal => "normal",
            Serving::Withdrawn => "withdrawn",
            Serving::Frozen => "frozen",
        }
    }
}

/// A change of the cluster's state worth an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Primary again (or for the first time): weight heard of the total.
    QuorumGained {
        heard: u32,
        total: u32,
        members: Vec<String>,
    },
    /// Out of the primary component, and what it does now.
    QuorumLost {
        heard: u32,
        total: u32,
        members: Vec<String>,
        serving: Serving,
    },
    /// A member heard again, or no longer.
    MemberUp {
        member: String,
    },
    MemberDown {
        member: String,
        leaving: bool,
    },
}

/// One peer's vote on a target, and when it came.
#[derive(Debug, Clone, Copy)]
struct PeerVote {
    local: Health,
    cluster: Health,
    at: Instant,
}

/// What this member holds of one target.
struct Target {
    /// Local keys with this wire key (usually one).
    keys: Vec<ProbeKey>,
    /// This member's own last result (None: not probed yet).
    own: Option<Update>,
    /// Each member's latest vote (own ignored: `own` holds it).
    peers: Vec<Option<PeerVote>>,
    /// The verdict the publisher holds.
    agreed: Health,
}

impl Target {
    /// This member's own verdict (Unknown before its first probe).
    fn own_verdict(&self) -> Health {
        self.own.as_ref().map_or(Health::Unknown, |u| u.state.verdict)
    }
}

/// Which peer votes count now: from a member heard, and no older than `dead_after`.
#[derive(Clone, Copy)]
struct Fresh {
    connected: Set,
    now: Instant,
    dead_after: Duration,
}

impl Fresh {
    fn vote(self, m: usize, v: &Option<PeerVote>) -> Option<PeerVote> {
        v.filter(|v| self.connected.contains(m) && self.now.saturating_duration_since(v.at) < self.dead_after)
    }
}

/// What to do after a step: updates for the publisher, events, operator writes to apply.
#[derive(Debug, Default)]
pub struct Step {
    pub updates: Vec<Update>,
    pub changes: Vec<Change>,
    /// Operator writes that are new here, to apply to the publisher.
    pub ops: Vec<(OpKey, Write<OpValue>)>,
    /// The serving mode changed to this.
    pub serving: Option<Serving>,
}

impl Step {
    /// Adds a later step's output to this one.
    pub fn merge(&mut self, later: Step) {
        self.updates.extend(later.updates);
        self.changes.extend(later.changes);
        self.ops.extend(later.ops);
        if later.serving.is_some() {
            self.serving = later.serving;
        }
    }
}

/// Per member, what `/status` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    pub name: String,
    pub site: String,
    /// Where peers reach it.
    pub address: String,
    pub weight: u8,
    pub witness: bool,
    /// This instance.
    pub me: bool,
    /// Heard within the last `dead_after` (always true for this instance).
    pub connected: bool,
    /// Says it is (for this instance: is) in the primary component.
    pub primary: bool,
    /// Said it leaves (a clean stop), until heard again.
    pub away: bool,
    /// Milliseconds since its last message (None: never, or this instance).
    pub last_heard_ms: Option<u64>,
}

/// What `/status` shows of the cluster, from this member's side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    /// This member's name.
    pub member: String,
    pub primary: bool,
    /// How pool names are served: normal, withdrawn or frozen.
    pub serving: String,
    pub minority: String,
    /// Weight of the members heard (this one included), of the total (less members away).
    pub heard_weight: u32,
    pub total_weight: u32,
    pub quorum: u32,
    pub members: Vec<MemberStatus>,
    /// Targets on which some member's own verdict differs from the cluster's.
    pub dissent: usize,
}

pub struct Peers {
    cluster: Arc<Cluster>,
    layout: Layout,
    boot: u64,
    seq: u64,
    started: Instant,
    heard: Vec<Option<Instant>>,
    /// What each member last said of itself: primary, leaving.
    said_primary: Vec<bool>,
    away: Set,
    connected: Set,
    primary: bool,
    ever_primary: bool,
    serving: Serving,
    targets: HashMap<String, Target>,
    wire_of: HashMap<ProbeKey, String>,
    ops: OperatorMap<OpKey, OpValue>,
    /// Per member, the zones it serves (apex → serial, content hash).
    serials: Vec<BTreeMap<String, (u32, u64)>>,
    leaving: bool,
}

fn names(c: &Cluster, set: Set) -> Vec<String> {
    set.iter().map(|m| c.members[m].name.clone()).collect()
}

impl Peers {
    /// A member just started at `now`; `boot` is its start as wall-clock milliseconds.
    pub fn new(cluster: Arc<Cluster>, boot: u64, now: Instant) -> Peers {
        let n = cluster.members.len();
        Peers {
            layout: cluster.layout(),
            boot,
            seq: 0,
            started: now,
            heard: vec![None; n],
            said_primary: vec![false; n],
            away: Set::EMPTY,
            connected: Set::EMPTY,
            primary: false,
            ever_primary: false,
            serving: Serving::Withdrawn,
            targets: HashMap::new(),
            wire_of: HashMap::new(),
            ops: OperatorMap::default(),
            serials: vec![BTreeMap::new(); n],
            leaving: false,
            cluster,
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// How long a member stays heard without a message: 2¾ heartbeats, so one lost report
    /// costs nothing and, ticked every quarter heartbeat, a member cut off knows within three.
    pub fn dead_after(&self) -> Duration {
        self.cluster.heartbeat * 11 / 4
    }

    pub fn serving(&self) -> Serving {
        self.serving
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    fn fresh(&self, now: Instant) -> Fresh {
        Fresh { connected: self.connected, now, dead_after: self.dead_after() }
    }

    fn me(&self) -> usize {
        self.cluster.me
    }

    fn weight(&self, m: usize) -> u32 {
        self.layout.weight_of(m)
    }

    /// The targets probed from now on. New ones start with no verdict; removed ones are
    /// forgotten.
    pub fn set_keys(&mut self, keys: &[ProbeKey]) {
        let n = self.cluster.members.len();
        let mut targets: HashMap<String, Target> = HashMap::new();
        let mut wire_of = HashMap::new();
        for k in keys {
            let w = self.wire_of.get(k).cloned().unwrap_or_else(|| wire::wire_key(k));
            wire_of.insert(k.clone(), w.clone());
            let t = match self.targets.remove(&w) {
                Some(mut old) => {
                    old.keys.clear();
                    old
                }
                None => match targets.remove(&w) {
                    Some(t) => t,
                    None => Target { keys: Vec::new(), own: None, peers: vec![None; n], agreed: Health::Unknown },
                },
            };
            targets.entry(w).or_insert(t).keys.push(k.clone());
        }
        self.targets = targets;
        self.wire_of = wire_of;
    }

    /// Whether this member's own probes have judged `key` yet.
    pub fn has_own_verdict(&self, key: &ProbeKey) -> bool {
        self.wire_of.get(key).and_then(|w| self.targets.get(w)).is_some_and(|t| t.own_verdict() != Health::Unknown)
    }

    /// This member's own probe result.
    pub fn local(&mut self, u: Update, now: Instant) -> Step {
        let mut step = Step::default();
        let Some(w) = self.wire_of.get(&u.key).cloned() else {
            return step;
        };
        let t = self.targets.get_mut(&w).expect("indexed");
        t.own = Some(u.clone());
        self.decide(&w, Some(u), now, &mut step);
        step
    }

    /// A peer's message (opened and checked by `wire::Opener`).
    pub fn receive(&mut self, from: usize, m: Message, now: Instant) -> Step {
        let mut step = Step::default();
        self.heard[from] = Some(now);
        self.said_primary[from] = m.primary && !m.leaving;
        if m.leaving {
            self.away = self.away.with(from);
            self.heard[from] = None;
        } else {
            self.away = self.away.minus(Set::one(from));
        }
        for v in &m.votes {
            if let Some(t) = self.targets.get_mut(&v.0) {
                t.peers[from] = Some(PeerVote { local: v.local(), cluster: v.cluster(), at: now });
            }
        }
        for o in m.ops {
            let w = o.write();
            if self.ops.apply(o.key.clone(), w.clone()) {
                step.ops.push((o.key, w));
            }
        }
        if m.part == 0 {
            self.serials[from] = m.serials.into_iter().map(|ZoneSerial(z, s, h)| (z, (s, h))).collect();
        } else {
            for ZoneSerial(z, s, h) in m.serials {
                self.serials[from].insert(z, (s, h));
            }
        }
        let voted: Vec<String> = m.votes.iter().map(|v| v.0.clone()).collect();
        self.membership(now, &mut step);
        for w in voted {
            if self.targets.contains_key(&w) {
                self.decide(&w, None, now, &mut step);
            }
        }
        step
    }

    /// The clock (every quarter heartbeat): members not heard for `dead_after` drop out, and the
    /// decisions follow.
    pub fn tick(&mut self, now: Instant) -> Step {
        let mut step = Step::default();
        self.membership(now, &mut step);
        step
    }

    /// Recomputes who is heard and whether this member is primary; on any change, every
    /// target's verdict.
    fn membership(&mut self, now: Instant, step: &mut Step) {
        let dead_after = self.dead_after();
        let me = self.me();
        let mut connected = Set::EMPTY;
        for (m, at) in self.heard.iter().enumerate() {
            if m != me && at.is_some_and(|at| now.saturating_duration_since(at) < dead_after) {
                connected = connected.with(m);
            }
        }
        for m in connected.minus(self.connected).iter() {
            step.changes.push(Change::MemberUp { member: self.cluster.members[m].name.clone() });
        }
        for m in self.connected.minus(connected).iter() {
            let leaving = self.away.contains(m);
            step.changes.push(Change::MemberDown { member: self.cluster.members[m].name.clone(), leaving });
        }
        let members_changed = connected != self.connected;
        self.connected = connected;
        let primary = vote::in_primary(&self.layout, me, connected, self.away);
        let heard = self.layout.weight(connected.with(me));
        let total = self.layout.total_without(self.away);
        if primary != self.primary {
            self.primary = primary;
            let members = names(&self.cluster, connected.with(me));
            if primary {
                self.ever_primary = true;
                step.changes.push(Change::QuorumGained { heard, total, members });
            } else {
                let serving = self.minority_serving(now);
                step.changes.push(Change::QuorumLost { heard, total, members, serving });
            }
        }
        let serving = if primary { Serving::Normal } else { self.minority_serving(now) };
        let mode_changed = serving != self.serving;
        if mode_changed {
            self.serving = serving;
            step.serving = Some(serving);
        }
        if members_changed || mode_changed {
            let all: Vec<String> = self.targets.keys().cloned().collect();
            for w in all {
                self.decide(&w, None, now, step);
            }
        }
    }

    /// What a member out of the primary component does.
    fn minority_serving(&self, now: Instant) -> Serving {
        match self.cluster.minority {
            Minority::Withdraw => Serving::Withdrawn,
            Minority::Freeze if self.ever_primary => Serving::Frozen,
            Minority::Freeze => Serving::Withdrawn,
            // A majority may still answer at start-up: wait for it before deciding alone.
            Minority::Local
                if !self.ever_primary && now.saturating_duration_since(self.started) < self.dead_after() =>
            {
                Serving::Withdrawn
            }
            Minority::Local => Serving::Normal,
        }
    }

    /// Decides one target; when its verdict moves (or `own` is a fresh result to pass on),
    /// adds the publisher's update to `step`.
    fn decide(&mut self, w: &str, own: Option<Update>, now: Instant, step: &mut Step) {
        let fresh = self.fresh(now);
        let me = self.me();
        let local_decides = !self.primary && self.serving == Serving::Normal;
        let primary = self.primary;
        let weights: Vec<u32> = (0..self.cluster.members.len()).map(|m| self.weight(m)).collect();
        let t = self.targets.get_mut(w).expect("a known target");
        let local = t.own_verdict();
        let fresh_probe = own.is_some();
        let before = t.agreed;
        let (after, why) = if local_decides {
            (local, None)
        } else if !primary {
            (before, None)
        } else {
            let reports = std::iter::once((weights[me], local))
                .chain(t.peers.iter().enumerate().filter_map(|(m, v)| fresh.vote(m, v).map(|v| (weights[m], v.local))));
            let seen = |h: Health| if h == Health::Down { "down" } else { "up" };
            let voted = vote::cluster_verdict(before, reports);
            // Nothing decided here yet: take what the heaviest peer holds.
            let adopted = (voted == Health::Unknown)
                .then(|| {
                    t.peers
                        .iter()
                        .enumerate()
                        .filter_map(|(m, v)| fresh.vote(m, v).map(|v| (weights[m], m, v.cluster)))
                        .filter(|(_, _, h)| *h != Health::Unknown)
                        .max_by_key(|(w, _, _)| *w)
                })
                .flatten();
            let side = |h: Health| {
                let mut who: Vec<&str> = Vec::new();
                let mut weight = 0;
                if local == h {
                    who.push(&self.cluster.members[me].name);
                    weight += weights[me];
                }
                for (m, v) in t.peers.iter().enumerate() {
                    if fresh.vote(m, v).is_some_and(|v| v.local == h) {
                        who.push(&self.cluster.members[m].name);
                        weight += weights[m];
                    }
                }
                who.sort_unstable();
                (who.join(", "), weight)
            };
            match adopted {
                Some((_, m, h)) => {
                    (h, Some(format!("as member {} holds it: {}", self.cluster.members[m].name, seen(h))))
                }
                None if voted == Health::Unknown => (voted, None),
                None => {
                    let (who, weight) = side(voted);
                    let total = self.layout.total_without(self.away);
                    (voted, Some(format!("members {who} ({weight} of {total}) report it {}", seen(voted))))
                }
            }
        };
        t.agreed = after;
        let moved = after != before;
        if !moved && own.is_none() {
            return;
        }
        let base = own.or_else(|| t.own.clone());
        for key in &t.keys {
            let mut state = base.as_ref().map(|u| u.state.clone()).unwrap_or_default();
            if state.verdict != after {
                // Doubt is about this member's own verdict; the cluster's is not in doubt.
                state.against = 0;
            }
            state.verdict = after;
            let transition = moved.then(|| Transition {
                from: before,
                to: after,
                after: base.as_ref().map_or(1, |u| u.state.streak.max(1)),
            });
            step.updates.push(Update {
                key: key.clone(),
                state,
                transition,
                cause: base.as_ref().and_then(|u| u.cause.clone()),
                latency: base.as_ref().map_or(Duration::ZERO, |u| u.latency),
                probed: fresh_probe,
                decided_by: if moved { why.clone() } else { None },
            });
        }
    }

    /// An operator's write made here, stamped `millis`: kept, and sent with the next reports.
    pub fn write(&mut self, key: OpKey, value: OpValue, millis: u64) -> Write<OpValue> {
        let w = Write { stamp: Stamp { millis, member: self.cluster.members[self.me()].name.clone() }, value };
        self.ops.apply(key, w.clone());
        w
    }

    /// The operator writes held (for the state file).
    pub fn ops(&self) -> Vec<OpWrite> {
        self.ops.iter().map(|(k, w)| OpWrite::of(k, w)).collect()
    }

    /// Restores writes from the state file.
    pub fn restore_ops(&mut self, ops: &[OpWrite]) {
        for o in ops {
            self.ops.apply(o.key.clone(), o.write());
        }
    }

    /// What the primary peers serve of each zone: apex → (serial, content hash) per peer.
    pub fn peer_serials(&self) -> BTreeMap<String, Vec<(u32, u64)>> {
        let mut out: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
        for m in self.connected.iter().filter(|&m| self.said_primary[m]) {
            for (z, &sh) in &self.serials[m] {
                out.entry(z.clone()).or_default().push(sh);
            }
        }
        out
    }

    /// This member stops cleanly: the next reports say so.
    pub fn leave(&mut self) {
        self.leaving = true;
    }

    /// The messages of one heartbeat: a report to every other member. `serials` are the zones
    /// served here.
    pub fn reports(&mut self, sent_ms: u64, serials: &[ZoneSerial]) -> Vec<(usize, Message)> {
        let me = self.me();
        let votes: Vec<Vote> =
            self.targets.iter().map(|(w, t)| Vote::new(w.clone(), t.own_verdict(), t.agreed)).collect();
        let ops = self.ops();
        let head = Header {
            from: self.cluster.members[me].name.clone(),
            boot: self.boot,
            leaving: self.leaving,
            primary: self.primary,
        };
        let mut out = Vec::new();
        for (m, member) in self.cluster.members.iter().enumerate() {
            if m == me {
                continue;
            }
            for msg in
                wire::split(&head, &member.name, &mut self.seq, sent_ms, votes.clone(), ops.clone(), serials.to_vec())
            {
                out.push((m, msg));
            }
        }
        out
    }

    pub fn status(&self, now: Instant) -> ClusterStatus {
        let me = self.me();
        let members = self
            .cluster
            .members
            .iter()
            .enumerate()
            .map(|(m, x)| MemberStatus {
                name: x.name.clone(),
                site: x.site.clone(),
                address: x.address.to_string(),
                weight: x.weight,
                witness: x.witness,
                me: m == me,
                connected: m == me || self.connected.contains(m),
                primary: if m == me { self.primary } else { self.connected.contains(m) && self.said_primary[m] },
                away: self.away.contains(m),
                last_heard_ms: (m != me)
                    .then(|| self.heard[m].map(|at| now.saturating_duration_since(at).as_millis() as u64))
                    .flatten(),
            })
            .collect();
        let total = self.layout.total_without(self.away);
        ClusterStatus {
            member: self.cluster.members[me].name.clone(),
            primary: self.primary,
            serving: self.serving.name().into(),
            minority: self.cluster.minority.name().into(),
            heard_weight: self.layout.weight(self.connected.with(me)),
            total_weight: total,
            quorum: crate::cluster::quorum::quorum(total),
            members,
            dissent: self.dissent(now),
        }
    }

    /// Each member's vote on the target `key` (own verdict, as last heard), by member name.
    pub fn votes(&self, key: &ProbeKey, now: Instant) -> Vec<(String, Health)> {
        let Some(t) = self.wire_of.get(key).and_then(|w| self.targets.get(w)) else {
            return Vec::new();
        };
        let fresh = self.fresh(now);
        let me = self.me();
        self.cluster
            .members
            .iter()
            .enumerate()
            .map(|(m, x)| {
                let h = if m == me {
                    t.own_verdict()
                } else {
                    fresh.vote(m, &t.peers[m]).map_or(Health::Unknown, |v| v.local)
                };
                (x.name.clone(), h)
            })
            .collect()
    }

    /// The cluster's gauges: `weiche_cluster_primary`, `weiche_cluster_heard_weight`,
    /// `weiche_cluster_total_weight`, `weiche_cluster_dissent` (targets some member sees
    /// otherwise than the cluster) and `weiche_cluster_member_connected{member}`.
    pub fn export_metrics(&self, now: Instant) {
        let me = self.me();
        metrics::gauge!("weiche_cluster_primary").set(f64::from(u8::from(self.primary)));
        metrics::gauge!("weiche_cluster_heard_weight").set(f64::from(self.layout.weight(self.connected.with(me))));
        metrics::gauge!("weiche_cluster_total_weight").set(f64::from(self.layout.total_without(self.away)));
        metrics::gauge!("weiche_cluster_dissent").set(self.dissent(now) as f64);
        for (m, member) in self.cluster.members.iter().enumerate().filter(|&(m, _)| m != me) {
            metrics::gauge!("weiche_cluster_member_connected", "member" => member.name.clone())
                .set(f64::from(u8::from(self.connected.contains(m))));
        }
    }

    /// Each member's vote on the check `check` probing `probe` (see [`Self::votes`]).
    pub fn votes_at(&self, probe: std::net::SocketAddr, check: &str, now: Instant) -> Vec<(String, Health)> {
        match self.wire_of.keys().find(|k| k.addr == probe && k.check.0.name == check) {
            Some(k) => self.votes(k, now),
            None => Vec::new(),
        }
    }

    /// How many targets some heard member (this one included) sees otherwise than the cluster.
    pub fn dissent(&self, now: Instant) -> usize {
        let fresh = self.fresh(now);
        self.targets
            .values()
            .filter(|t| {
                let own = t.own_verdict();
                let differs = |h: Health| h != Health::Unknown && t.agreed != Health::Unknown && h != t.agreed;
                differs(own)
                    || t.peers.iter().enumerate().any(|(m, v)| fresh.vote(m, v).is_some_and(|v| differs(v.local)))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::tests::cluster;
    use crate::monitor::TargetState;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

    fn key(addr: &str) -> ProbeKey {
        ProbeKey::new(addr.parse().unwrap(), &crate::model::pool::testing::tcp_check())
    }

    fn probe(k: &ProbeKey, state: &mut TargetState, ok: bool) -> Update {
        let transition = state.observe(ok, 1, 1);
        Update {
            key: k.clone(),
            state: state.clone(),
            transition,
            cause: (!ok).then(|| "connection refused".into()),
            latency: Duration::from_millis(1),
            probed: true,
            decided_by: None,
        }
    }

    /// Three members a (5), b (6), c (8) that pass each other's messages by hand.
    struct World {
        members: Vec<Peers>,
        states: Vec<TargetState>,
        k: ProbeKey,
        now: Instant,
        /// Member pairs whose messages are dropped.
        cut: Vec<(usize, usize)>,
    }

    impl World {
        fn new(minority: Minority) -> World {
            let now = Instant::now();
            let k = key("192.0.2.1:80");
            let members = (0..3)
                .map(|me| {
                    let mut c = (*cluster(me, SECRET)).clone();
                    c.minority = minority;
                    let mut p = Peers::new(Arc::new(c), 1000 + me as u64, now);
                    p.set_keys(std::slice::from_ref(&k));
                    p
                })
                .collect();
            World { members, states: vec![TargetState::default(); 3], k, now, cut: Vec::new() }
        }

        fn cut(&self, a: usize, b: usize) -> bool {
            self.cut.contains(&(a, b)) || self.cut.contains(&(b, a))
        }

        /// One heartbeat: every member reports to every other it is not cut from, then ticks.
        fn beat(&mut self) -> Vec<Step> {
            self.now += Duration::from_millis(500);
            let mut steps: Vec<Step> = (0..3).map(|_| Step::default()).collect();
            let mut mail = Vec::new();
            for (from, p) in self.members.iter_mut().enumerate() {
                for (to, m) in p.reports(0, &[]) {
                    mail.push((from, to, m));
                }
            }
            for (from, to, m) in mail {
                if !self.cut(from, to) {
                    let s = self.members[to].receive(from, m, self.now);
                    steps[to].merge(s);
                }
            }
            for (i, p) in self.members.iter_mut().enumerate() {
                let s = p.tick(self.now);
                steps[i].merge(s);
            }
            steps
        }

        fn probe(&mut self, m: usize, ok: bool) -> Step {
            let u = probe(&self.k, &mut self.states[m], ok);
            self.members[m].local(u, self.now)
        }

        fn agreed(&self, m: usize) -> Health {
            self.members[m].targets.values().next().unwrap().agreed
        }
    }

    #[test]
    fn a_member_alone_is_withdrawn_until_it_hears_a_majority() {
        let mut w = World::new(Minority::Withdraw);
        assert_eq!(w.members[0].serving(), Serving::Withdrawn);
        // Its own probe decides nothing while it hears no one.
        let s = w.probe(0, true);
        assert_eq!(s.updates.len(), 1, "the probe's result is passed on");
        assert_eq!(s.updates[0].state.verdict, Health::Unknown, "but not as a verdict");
        let steps = w.beat();
        assert!(w.members.iter().all(|p| p.is_primary()));
        // a hears b first: 11 of 19 is a majority already.
        assert!(steps[0].changes.iter().any(|c| matches!(c, Change::QuorumGained { heard: 11, total: 19, .. })));
        assert_eq!(w.members[0].status(w.now).heard_weight, 19);
        assert_eq!(steps[0].serving, Some(Serving::Normal));
        // a's vote (up) is the only one: every member agrees on up.
        assert_eq!((w.agreed(0), w.agreed(1), w.agreed(2)), (Health::Up, Health::Up, Health::Up));
    }

    #[test]
    fn one_members_dissent_changes_nothing_and_a_majority_does() {
        let mut w = World::new(Minority::Withdraw);
        for m in 0..3 {
            w.probe(m, true);
        }
        w.beat();
        assert_eq!(w.agreed(0), Health::Up);
        // a alone sees it down: 5 down against 14 up.
        let s = w.probe(0, false);
        assert_eq!(s.updates[0].state.verdict, Health::Up, "a's own view is outvoted");
        assert!(s.updates[0].transition.is_none());
        w.beat();
        assert_eq!((w.agreed(0), w.agreed(1), w.agreed(2)), (Health::Up, Health::Up, Health::Up));
        assert_eq!(w.members[1].dissent(w.now), 1);
        assert_eq!(
            w.members[1].votes(&w.k.clone(), w.now),
            [("a".into(), Health::Down), ("b".into(), Health::Up), ("c".into(), Health::Up)]
        );
        // b agrees with a: 11 down against 8.
        let s = w.probe(1, false);
        let t = s.updates[0].transition.expect("b's own result moves the verdict");
        assert_eq!((t.from, t.to), (Health::Up, Health::Down));
        assert_eq!(s.updates[0].decided_by.as_deref(), Some("members a, b (11 of 19) report it down"));
        let steps = w.beat();
        assert_eq!((w.agreed(0), w.agreed(1), w.agreed(2)), (Health::Down, Health::Down, Health::Down));
        let c = &steps[2].updates;
        assert!(c.iter().any(|u| u.transition.is_some_and(|t| t.to == Health::Down) && !u.probed), "{c:?}");
    }

    #[test]
    fn a_cut_off_member_withdraws_and_the_majority_goes_on() {
        let mut w = World::new(Minority::Withdraw);
        for m in 0..3 {
            w.probe(m, true);
        }
        w.beat();
        w.cut = vec![(0, 1), (0, 2)];
        let mut lost_at = None;
        for i in 0..4 {
            let steps = w.beat();
            if steps[0]
                .changes
                .iter()
                .any(|c| matches!(c, Change::QuorumLost { heard: 5, total: 19, serving: Serving::Withdrawn, .. }))
            {
                lost_at = Some(i);
            }
        }
        assert_eq!(lost_at, Some(2), "non-primary on the third heartbeat without peers");
        assert_eq!(w.members[0].serving(), Serving::Withdrawn);
        assert!(w.members[1].is_primary() && w.members[2].is_primary());
        // The backend dies: b and c fail over; a, cut off, keeps what was agreed.
        w.probe(1, false);
        w.probe(2, false);
        w.probe(0, false);
        // c decides at once (its 8 outweighs b's last word, up); b at the next report.
        assert_eq!(w.agreed(2), Health::Down);
        w.beat();
        assert_eq!((w.agreed(0), w.agreed(1), w.agreed(2)), (Health::Up, Health::Down, Health::Down));
        // Heal: a takes the majority's verdict at the first heartbeat that reaches it.
        w.cut.clear();
        let steps = w.beat();
        assert!(w.members[0].is_primary());
        assert_eq!(steps[0].serving, Some(Serving::Normal));
        assert_eq!(w.agreed(0), Health::Down);
    }

    #[test]
    fn freeze_keeps_the_agreed_verdict_and_local_decides_alone() {
        for (minority, expect_serving, expect_verdict) in
            [(Minority::Freeze, Serving::Frozen, Health::Up), (Minority::Local, Serving::Normal, Health::Down)]
        {
            let mut w = World::new(minority);
            for m in 0..3 {
                w.probe(m, true);
            }
            w.beat();
            w.cut = vec![(0, 1), (0, 2)];
            for _ in 0..4 {
                w.beat();
            }
            assert!(!w.members[0].is_primary());
            assert_eq!(w.members[0].serving(), expect_serving, "{minority:?}");
            w.probe(0, false);
            assert_eq!(w.agreed(0), expect_verdict, "{minority:?}");
        }
    }

    #[test]
    fn a_restarted_member_takes_the_majoritys_verdicts() {
        let mut w = World::new(Minority::Local);
        for m in 0..3 {
            w.probe(m, true);
        }
        w.beat();
        w.probe(1, false);
        w.probe(2, false);
        w.beat();
        assert_eq!(w.agreed(1), Health::Down);
        // a restarts: no verdicts, not primary; with minority = local it still waits.
        let mut c = (**w.members[0].cluster()).clone();
        c.minority = Minority::Local;
        w.members[0] = Peers::new(Arc::new(c), 5000, w.now);
        w.members[0].set_keys(std::slice::from_ref(&w.k));
        w.states[0] = TargetState::default();
        assert_eq!(w.members[0].serving(), Serving::Withdrawn, "no cold answers while a majority may exist");
        // Its own first probe says up (it cannot see the outage), yet it serves the majority's down.
        w.probe(0, true);
        let steps = w.beat();
        assert!(w.members[0].is_primary());
        assert_eq!(w.agreed(0), Health::Down, "{:?}", steps[0].updates);
    }

    #[test]
    fn a_clean_leave_counts_the_member_out() {
        let mut w = World::new(Minority::Withdraw);
        w.beat();
        // c (8) leaves cleanly; then b (6) is cut off from a: a (5) of 11 is no quorum, b of 11
        // neither... but a and b together keep 11 of 11.
        w.members[2].leave();
        w.beat();
        w.cut = vec![(0, 2), (1, 2)];
        for _ in 0..4 {
            w.beat();
        }
        let st = w.members[0].status(w.now);
        assert_eq!((st.total_weight, st.heard_weight, st.primary), (11, 11, true));
        assert!(st.members[2].away && !st.members[2].connected);
    }

    /// Every order in which the three members' probe results and one round of reports arrive
    /// ends with every member holding the same verdict.
    #[test]
    fn every_order_of_results_converges() {
        for order in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            for pattern in 0..8u8 {
                let mut w = World::new(Minority::Withdraw);
                for m in 0..3 {
                    w.probe(m, true);
                }
                w.beat();
                for &m in &order {
                    w.probe(m, pattern & (1 << m) == 0);
                    w.beat();
                }
                w.beat();
                let down: u32 = (0..3).filter(|m| pattern & (1 << m) != 0).map(|m| [5, 6, 8][m]).sum();
                let want = if down > 19 - down { Health::Down } else { Health::Up };
                for m in 0..3 {
                    assert_eq!(w.agreed(m), want, "order {order:?} pattern {pattern:03b} member {m}");
                }
            }
        }
    }
}

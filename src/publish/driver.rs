//! The publisher's driver: the one task that feeds the pure [`Publisher`] its messages (the
//! monitor's updates, finished zone loads, operator commands, failback-delay wake-ups) with the
//! time, and carries out the [`Effects`] each step returns.
//!
//! Nothing slow runs here. Zones arrive parsed and diffed; replaced zones are freed on a
//! blocking thread; the state file is written by its own task ([`StateWriter`]), and an
//! operator's command is answered only once the change it made is on disk, or with the
//! reason it is not.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::admin::{AdminState, StateFile};
use super::{Effects, Now, Publisher};
use crate::cluster::net::{Link, wall_ms};
use crate::cluster::peers::{Change as ClusterChange, Peers, Serving, Step};
use crate::cluster::wire::{OpKey, OpValue, ZoneSerial};
use crate::load::watch::{Reload, drop_off_path};
use crate::model::name::Name;
use crate::model::snapshot::Store;
use crate::monitor::{Monitor, ProbeKey, Update};
use crate::ops::control::{ActionError, Command, Commands, Outcome};
use crate::ops::doc::StateStatus;
use crate::ops::events::{Event, EventKind, Journal};
use crate::transfer::secondaries::Change;

/// Called with the outcome of a state-file write.
type AfterWrite = Box<dyn FnOnce(Persisted) + Send>;

/// What the latest write of the state file came to: written, or why not.
pub type Persisted = Result<(), String>;

struct StateWrite {
    state: AdminState,
    then: Option<AfterWrite>,
}

/// How soon a failed write of the state file is tried again when nothing new comes to write.
const RETRY: Duration = Duration::from_secs(5);

/// The state file's writer: the way to its task, and what its latest write came to.
pub struct StateWriter {
    file: String,
    tx: mpsc::UnboundedSender<StateWrite>,
    persisted: watch::Receiver<Persisted>,
}

impl StateWriter {
    /// Starts the task that writes `file`. `written` is the state the start wrote, `outcome`
    /// what that came to. Once the writer is dropped, the task writes the last state once
    /// more as a clean stop and ends; its handle tells when.
    pub fn start(
        file: StateFile,
        written: AdminState,
        outcome: Persisted,
    ) -> (StateWriter, tokio::task::JoinHandle<()>) {
        let name = file.path.display().to_string();
        export_persisted(&name, &outcome);
        let (tx, rx) = mpsc::unbounded_channel();
        let (report, persisted) = watch::channel(outcome);
        let task = tokio::spawn(write_state(file, rx, written, report));
        (StateWriter { file: name, tx, persisted }, task)
    }

    fn status(&self) -> StateStatus {
        let persisted = self.persisted.borrow();
        StateStatus {
            file: Some(self.file.clone()),
            persisted: Some(persisted.is_ok()),
            error: persisted.as_ref().err().cloned(),
        }
    }
}

/// The gauge `weiche_state_persisted{file}`: 1 while the latest write of the state file
/// succeeded.
fn export_persisted(file: &str, persisted: &Persisted) {
    metrics::gauge!("weiche_state_persisted", "file" => file.to_string()).set(persisted.is_ok() as u8 as f64);
}

/// A cluster member's side of the driver: its view of the peers and its socket.
pub struct Member {
    pub peers: Peers,
    pub link: Link,
}

/// The publisher, its journal, and where its effects go.
pub struct Driver {
    core: Publisher,
    store: Store,
    journal: Journal,
    /// The state-file writer (None: operator state is not persisted).
    state: Option<StateWriter>,
    /// To the NOTIFY sender.
    changes: mpsc::UnboundedSender<Change>,
    /// Events raised outside the publisher (the journal's writer on itself), to number and
    /// keep like its own.
    notes: Option<mpsc::UnboundedReceiver<Event>>,
    /// In a cluster: verdicts come from the members' vote.
    cluster: Option<Member>,
    /// Where `weiche reload` goes (None: nothing reloads the configuration).
    reloader: Option<mpsc::UnboundedSender<crate::ops::reload::Ask>>,
    /// weiche.toml as last (re)loaded, for `/status`.
    config: crate::ops::doc::ConfigStatus,
}

impl Driver {
    pub fn new(
        core: Publisher,
        store: Store,
        journal: Journal,
        state: Option<StateWriter>,
        changes: mpsc::UnboundedSender<Change>,
    ) -> Driver {
        Driver {
            core,
            store,
            journal,
            state,
            changes,
            notes: None,
            cluster: None,
            reloader: None,
            config: Default::default(),
        }
    }

    /// Sends `weiche reload` to `reloader` (`ops::reload::run`).
    pub fn set_reloader(&mut self, reloader: mpsc::UnboundedSender<crate::ops::reload::Ask>) {
        self.reloader = Some(reloader);
    }

    /// Takes events raised elsewhere from `notes` too.
    pub fn with_notes(mut self, notes: mpsc::UnboundedReceiver<Event>) -> Driver {
        self.notes = Some(notes);
        self
    }

    /// Makes this driver a cluster member: pool answers wait for the members' vote (withdrawn
    /// until a majority is heard).
    pub fn join(&mut self, member: Member) {
        let serving = member.peers.serving();
        let mut member = member;
        member.peers.restore_ops(self.core.cluster_ops());
        self.cluster = Some(member);
        self.core.set_serving(serving, Now::read());
        if let Some(c) = &mut self.cluster {
            c.peers.set_keys(&self.core.probe_keys());
        }
    }

    /// Takes this member's own probe results: straight to the publisher, or through the
    /// cluster's vote.
    fn take_updates(&mut self, batch: Vec<Update>, now: Now) {
        let Some(c) = &mut self.cluster else {
            self.core.apply_all(batch, now);
            return;
        };
        let mut step = Step::default();
        for u in batch {
            step.merge(c.peers.local(u, now.at));
        }
        self.take_step(step, now);
    }

    /// Carries a step of the cluster's view into the publisher: verdicts, operator writes
    /// made elsewhere, the serving mode, and events.
    fn take_step(&mut self, step: Step, now: Now) {
        let Step { updates, changes, ops, serving } = step;
        if !updates.is_empty() {
            self.core.apply_all(updates, now);
        }
        if !ops.is_empty()
            && let Some(c) = &self.cluster
        {
            self.core.set_cluster_ops(c.peers.ops());
        }
        for (key, write) in ops {
            let by = format!("operator, on member {}", write.stamp.member);
            let outcome = match (&key, write.value) {
                (OpKey::Drain { address, pool }, value) => {
                    let pool = pool.as_deref().and_then(|p| Name::parse(p, None).ok());
                    self.core.set_drain_by(*address, pool.as_ref(), value == OpValue::On, &by, now)
                }
                (OpKey::Release { pool }, _) => match Name::parse(pool, None) {
                    Ok(p) => self.core.release_failback_by(&p, &by, now),
                    Err(e) => Err(ActionError::NotFound(e.to_string())),
                },
            };
            if let Err(e) = outcome {
                tracing::debug!(?key, error = %e, "an operator write from the cluster changes nothing here");
            }
        }
        if let Some(serving) = serving {
            self.core.set_serving(serving, now);
        }

        for change in changes {
            self.core.note(cluster_event(change));
        }
    }

    /// Sends every other member this member's report.
    fn report(&mut self, now: Now) {
        let Some(c) = &mut self.cluster else { return };
        let serials: Vec<ZoneSerial> = self
            .core
            .snapshot()
            .zones
            .iter()
            .map(|e| ZoneSerial(super::hold_key(&e.zone.apex), e.serial, e.content_hash()))
            .collect();
        for (to, m) in c.peers.reports(wall_ms(now.wall), &serials) {
            c.link.send(to, m);
        }
    }

    pub fn core_mut(&mut self) -> &mut Publisher {
        &mut self.core
    }

    /// Carries out what the last step of the core asked for.
    pub fn carry_out(&mut self) {
        self.carry_out_then(None);
    }

    /// Like [`Self::carry_out`]; `then` runs once the state the step wrote is on disk (at once
    /// if the step wrote none, or nothing is persisted).
    fn carry_out_then(&mut self, then: Option<AfterWrite>) {
        let Effects { snapshot, events, announce, state, garbage } = self.core.take_effects();
        let published = snapshot.is_some();
        let old = snapshot.map(|s| self.store.swap(s));
        if !garbage.is_empty() {
            // A zone was replaced: the old snapshot may hold its last reference.
            drop_off_path((old, garbage));
        }
        if published {
            self.core.export_metrics();
        }
        for e in events {
            self.journal.push(e);
        }
        for c in announce {
            let _ = self.changes.send(c);
        }
        match (state, &self.state) {
            (Some(state), Some(writer)) => {
                if let Err(mpsc::error::SendError(StateWrite { then: Some(then), .. })) =
                    writer.tx.send(StateWrite { state, then })
                {
                    then(Err("the state writer has stopped".into()));
                }
            }
            (_, _) => {
                if let Some(then) = then {
                    then(Ok(()));
                }
            }
        }
    }

    /// Applies updates until every target in `keys` has a first verdict, or the longest check
    /// timeout (plus a little) has passed, so pools answer from verdicts rather than from
    /// "unknown" once serving starts.
    pub async fn startup_round(&mut self, updates: &mut mpsc::UnboundedReceiver<Update>, keys: &[ProbeKey]) {
        let Some(longest) = keys.iter().map(|k| k.check.0.timeout).max() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + longest + Duration::from_millis(200);
        // In a cluster, the own probes' first round is what is waited for; the verdicts come
        // from the vote once a majority is heard.
        while !keys.iter().all(|k| self.has_own_verdict(k)) {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Some(u)) => {
                    let batch = batch(u, updates);
                    self.take_updates(batch, Now::read());
                    self.carry_out();
                }
                _ => break,
            }
        }
        let known = keys.iter().filter(|k| self.has_own_verdict(k)).count();
        info!(targets = keys.len(), with_verdict = known, "first probe round done");
    }

    fn has_own_verdict(&self, key: &ProbeKey) -> bool {
        match &self.cluster {
            Some(c) => c.peers.has_own_verdict(key),
            None => self.core.has_verdict(key),
        }
    }

    /// Runs until every input is gone (or the task is aborted at shutdown).
    pub async fn run(
        mut self,
        mut monitor: Monitor,
        mut updates: mpsc::UnboundedReceiver<Update>,
        mut commands: Commands,
        mut reloads: mpsc::UnboundedReceiver<Reload>,
    ) {
        let mut notes = self.notes.take();
        // Membership is looked at every quarter heartbeat; reports go out every fourth tick.
        let beat = self.cluster.as_ref().map_or(Duration::from_secs(3600), |c| c.peers.cluster().heartbeat);
        let mut heartbeat = tokio::time::interval(beat / 4);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        let clustered = self.cluster.is_some();
        loop {
            let wake_at = self.core.wake_at();
            let inbox = async {
                match &mut self.cluster {
                    Some(c) => c.link.inbox.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(u) = updates.recv() => {
                    // Everything that arrived together is published once.
                    let batch = batch(u, &mut updates);
                    self.take_updates(batch, Now::read());
                }
                Some((from, m)) = inbox => {
                    let now = Now::read();
                    let c = self.cluster.as_mut().expect("a member");
                    let mut step = c.peers.receive(from, m, now.at);
                    while let Ok((from, m)) = c.link.inbox.try_recv() {
                        step.merge(c.peers.receive(from, m, now.at));
                    }
                    let serials = c.peers.peer_serials();
                    self.take_step(step, now);
                    self.core.set_peer_serials(serials, now);
                }
                _ = heartbeat.tick(), if clustered => {
                    let now = Now::read();
                    let step = self.cluster.as_mut().expect("a member").peers.tick(now.at);
                    self.take_step(step, now);
                    if let Some(c) = &self.cluster {
                        c.peers.export_metrics(now.at);
                    }
                    if ticks.is_multiple_of(4) {
                        self.report(now);
                    }
                    ticks += 1;
                }
                Some(cmd) = commands.recv() => {
                    self.execute(cmd);
                    continue;
                }
                Some(reload) = reloads.recv() => {
                    self.core.set_zones(reload, Now::read());
                    let keys = self.core.probe_keys();
                    if let Some(c) = &mut self.cluster {
                        c.peers.set_keys(&keys);
                    }
                    monitor.set_targets(keys);
                }
                Some(note) = async { match &mut notes { Some(n) => n.recv().await, None => std::future::pending().await } } => {
                    self.journal.push(note);
                    continue;
                }
                _ = async { match wake_at { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    self.core.wake(Now::read());
                }
                else => return,
            }
            self.carry_out();
        }
    }

    /// Carries out one operator command. A refusal is answered at once; a change once it is
    /// published and the state is written, with what the write came to. The state is written
    /// even when nothing changed, so an answer never rests on an older write.
    fn execute(&mut self, cmd: Command) {
        let now = Now::read();
        match cmd {
            Command::ReleaseFailback { pool, done } => match self.core.release_failback(&pool, now) {
                Ok(()) => {
                    self.share(vec![(OpKey::Release { pool: super::hold_key(&pool) }, OpValue::Released)], now);
                    self.answer_once_written(done, format!("the failback of {pool} is released"))
                }
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            },
            Command::Drain { address, pool, drain, done } => {
                // An undrain everywhere lifts the per-pool drains too: each is written over, so
                // that a member that gets the writes in any order ends the same.
                let lifted: Vec<Option<String>> = if drain || pool.is_some() {
                    vec![pool.as_ref().map(super::hold_key)]
                } else {
                    std::iter::once(None).chain(self.core.drained_pools(address).into_iter().map(Some)).collect()
                };
                match self.core.set_drain(address, pool.as_ref(), drain, now) {
                    Ok(()) => {
                        let value = if drain { OpValue::On } else { OpValue::Off };
                        self.share(
                            lifted.into_iter().map(|pool| (OpKey::Drain { address, pool }, value)).collect(),
                            now,
                        );
                        let verb = if drain { "drained" } else { "undrained" };
                        let pool = pool.map(|p| format!(" in {p}")).unwrap_or_default();
                        self.answer_once_written(done, format!("{address} {verb}{pool}"));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
            Command::Status { events, done } => {
                let mut status = self.core.status(self.journal.since(0, events));
                status.state = self.state.as_ref().map(StateWriter::status).unwrap_or_default();
                status.config = self.config.clone();
                status.journal = self.journal.disk_status();
                if let Some(c) = &self.cluster {
                    status.cluster = Some(c.peers.status(now.at));
                    for check in
                        status.pools.iter_mut().flat_map(|p| p.targets.iter_mut()).flat_map(|t| t.checks.iter_mut())
                    {
                        check.votes = c
                            .peers
                            .votes_at(check.probe, &check.name, now.at)
                            .into_iter()
                            .map(|(m, h)| (m, h.into()))
                            .collect();
                    }
                }
                let _ = done.send(status);
            }
            Command::Reload { done } => {
                let refused = match &self.reloader {
                    Some(r) => r.send(done).err().map(|e| (e.0, "the configuration reloader has stopped")),
                    None => Some((done, "this weiche does not reload its configuration")),
                };
                if let Some((done, why)) = refused {
                    let _ = done.send(crate::ops::doc::ReloadReply { error: Some(why.into()), ..Default::default() });
                }
            }
            Command::Configured { status, event } => {
                self.config = *status;
                if let Some(e) = event {
                    self.journal.push(*e);
                }
            }
            Command::Leave { done } => {
                if let Some(c) = &mut self.cluster {
                    c.peers.leave();
                    self.report(now);
                }
                let _ = done.send(());
            }
            Command::Events { since, limit, done } => {
                let _ = done.send(self.journal.since(since, limit));
            }
            Command::Probes { done } => {
                let _ = done.send(self.core.probes());
            }
        }
    }

    /// Operator writes made here, for the other members: kept with this member's stamp and
    /// sent at once.
    fn share(&mut self, writes: Vec<(OpKey, OpValue)>, now: Now) {
        let Some(c) = &mut self.cluster else { return };
        for (key, value) in writes {
            c.peers.write(key, value, wall_ms(now.wall));
        }
        let ops = c.peers.ops();
        self.core.set_cluster_ops(ops);
        self.report(now);
    }

    /// Carries out what an operator's change asked for, writes the state, and answers `done`
    /// with what the write came to (`what` says what was done).
    fn answer_once_written(&mut self, done: oneshot::Sender<Outcome>, what: String) {
        // A member out of the majority records the change and passes it on, but the members
        // that serve do not have it until they hear from this one again: not done in full.
        let minority = self.cluster.as_ref().filter(|c| !c.peers.is_primary()).map(|c| {
            let st = c.peers.status(Now::read().at);
            format!(
                "{what} on member {} only: it is out of the majority (weight {} of {} heard, {} needed), so the \
                 members serving now do not have it yet; it reaches them when they hear from this member again",
                st.member, st.heard_weight, st.total_weight, st.quorum
            )
        });
        self.core.save_state();
        self.carry_out_then(Some(Box::new(move |written: Persisted| {
            let _ = done.send(match (written, minority) {
                (Err(e), _) => Err(ActionError::NotPersisted(format!(
                    "{what} and served, but {e}: it holds until weiche restarts only"
                ))),
                (Ok(()), Some(m)) => Err(ActionError::NotAgreed(m)),
                (Ok(()), None) => Ok(()),
            });
        })));
    }
}

/// The event of a change in the cluster's state.
fn cluster_event(change: ClusterChange) -> Event {
    match change {
        ClusterChange::QuorumLost { heard, total, members, serving } => {
            let what = match serving {
                Serving::Withdrawn => "pool names get SERVFAIL (minority = withdraw)",
                Serving::Frozen => "pool names keep the last agreed answers at their short TTL (minority = freeze)",
                Serving::Normal => "pool answers follow this member's own probes (minority = local)",
            };
            Event::new(
                EventKind::QuorumLost,
                format!("weight {heard} of {total} heard ({}), not more than half; {what}", members.join(", ")),
            )
        }
        ClusterChange::QuorumGained { heard, total, members } => Event::new(
            EventKind::QuorumRegained,
            format!("weight {heard} of {total} heard ({}); pool answers follow the cluster's vote", members.join(", ")),
        ),
        ClusterChange::MemberUp { member } => {
            Event { member: Some(member), ..Event::new(EventKind::MemberUp, "its messages arrive") }
        }
        ClusterChange::MemberDown { member, leaving } => {
            let why = if leaving { "it left cleanly" } else { "no message for three heartbeats" };
            Event { member: Some(member), ..Event::new(EventKind::MemberDown, why) }
        }
    }
}

/// `first` and every update already waiting behind it.
fn batch(first: Update, updates: &mut mpsc::UnboundedReceiver<Update>) -> Vec<Update> {
    let mut batch = vec![first];
    while let Ok(more) = updates.try_recv() {
        batch.push(more);
    }
    batch
}

/// Writes operator state as it changes, the newest of what is waiting each time, on a blocking
/// thread; then tells whoever waits for it, and reports the outcome (`/status`, the metric,
/// the log when it changes). A failed write is tried again every [`RETRY`] until one
/// succeeds. Once the driver is gone, writes the last state once more as a clean stop.
async fn write_state(
    file: StateFile,
    mut rx: mpsc::UnboundedReceiver<StateWrite>,
    mut last: AdminState,
    report: watch::Sender<Persisted>,
) {
    let name = file.path.display().to_string();
    loop {
        let next = if report.borrow().is_err() {
            tokio::time::timeout(RETRY, rx.recv()).await.ok()
        } else {
            Some(rx.recv().await)
        };
        let mut waiting: Vec<AfterWrite> = Vec::new();
        match next {
            // A retry of the last state.
            None => {}
            Some(None) => {
                if let Err(e) = save(&file, &last, false).await {
                    if file.path.exists() {
                        error!(
                            "{e}; at the next start, zones whose content changed since the file was written move past the serials this run may have served; a zone whose content is back to what the file holds gets the serial it holds"
                        );
                    } else {
                        error!(
                            "{e}; no state file was ever written: at the next start serials begin again from the zone files, and may be below those this run served"
                        );
                    }
                }
                return;
            }
            Some(Some(first)) => {
                last = first.state;
                waiting.extend(first.then);
                while let Ok(more) = rx.try_recv() {
                    last = more.state;
                    waiting.extend(more.then);
                }
            }
        }
        let result = save(&file, &last, true).await;
        match (&result, &*report.borrow()) {
            (Err(e), Ok(())) => error!("{e}; operator changes and serials hold until restart only"),
            (Ok(()), Err(_)) => info!(file = %name, "the state file is written again"),
            _ => {}
        }
        export_persisted(&name, &result);
        let _ = report.send_replace(result.clone());
        for then in waiting {
            then(result.clone());
        }
    }
}

/// Writes `state` to `file` on a blocking thread.
async fn save(file: &StateFile, state: &AdminState, running: bool) -> Persisted {
    let (f, state) = (file.clone(), state.clone());
    tokio::task::spawn_blocking(move || f.save(&state, running))
        .await
        .map_err(|e| format!("the state writer failed: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::load::watch::Watcher;
    use crate::monitor::TargetState;
    use crate::ops::control::Control;

    fn www(store: &Store) -> Vec<u8> {
        let snap = store.load();
        snap.zones[0].answers[0].a.rrset.rdatas().next().unwrap().to_vec()
    }

    /// Lets the driver run until `f` holds (virtual time: no real waiting).
    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if f() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the driver never got to: {what}");
    }

    /// The driver task on tokio's paused clock: a recovered primary waits out its
    /// `failback_delay` on the driver's own timer, and a drain is answered only once the state
    /// file holds it.
    #[tokio::test(start_paused = true)]
    async fn the_driver_wakes_for_the_failback_delay_and_answers_after_the_write() {
        let zones = tempfile::tempdir().unwrap();
        let pool = super::super::tests::POOL.replace("[pools.www]", "[pools.www]\nfailback_delay = \"30s\"");
        std::fs::write(zones.path().join("example.com.toml"), pool).unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let store: Store = Default::default();
        let (changes, _notify) = mpsc::unbounded_channel();
        let state_file = StateFile::in_dir(state_dir.path());
        let (writer, writing) = StateWriter::start(state_file.clone(), Default::default(), Ok(()));
        let mut driver =
            Driver::new(Publisher::new(Default::default()), store.clone(), Journal::default(), Some(writer), changes);
        let reload = Watcher::new(zones.path()).reconcile(true).unwrap().unwrap();
        driver.core_mut().set_zones(reload, Now::read());
        driver.carry_out();
        let keys = driver.core_mut().probe_keys();
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let mut states: HashMap<std::net::SocketAddr, TargetState> = HashMap::new();
        let send = |addr: &str, ok: bool, states: &mut HashMap<_, TargetState>| {
            let key = keys.iter().find(|k| k.addr == addr.parse().unwrap()).unwrap().clone();
            let state = states.entry(key.addr).or_default();
            let transition = state.observe(ok, 1, 1);
            let u = Update {
                key,
                state: state.clone(),
                transition,
                cause: None,
                latency: Duration::ZERO,
                probed: true,
                decided_by: None,
            };
            updates_tx.send(u).unwrap();
        };
        let (control, commands) = Control::new();
        let (_reloads_tx, reloads) = mpsc::unbounded_channel();
        let (probes_tx, _probes) = mpsc::unbounded_channel();
        let task = tokio::spawn(driver.run(Monitor::new(probes_tx), updates, commands, reloads));

        send("127.0.0.1:80", true, &mut states);
        send("127.0.0.2:80", true, &mut states);
        until("the primary answers", || www(&store) == [127, 0, 0, 1]).await;
        send("127.0.0.1:80", false, &mut states);
        until("the failover", || www(&store) == [127, 0, 0, 2]).await;
        send("127.0.0.1:80", true, &mut states);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(www(&store), [127, 0, 0, 2], "29 s of a 30 s failback delay");
        tokio::time::sleep(Duration::from_secs(1)).await;
        until("the failback after the delay", || www(&store) == [127, 0, 0, 1]).await;

        let answer = control.drain("127.0.0.1".parse().unwrap(), None, true).await.unwrap();
        assert_eq!(answer, Ok(()));
        let (on_disk, problem) = state_file.load();
        assert!(problem.is_none());
        assert_eq!(on_disk.drained.len(), 1, "answered only once the drain is on disk");
        assert_eq!(www(&store), [127, 0, 0, 2]);
        let status = control.status(10).await.unwrap();
        assert!(status.events.iter().any(|e| e.kind == Some(crate::ops::events::EventKind::Drain)));
        assert_eq!(status.state.persisted, Some(true));
        assert!(state_file.load().0.running, "in use");
        // Stopped: the writer writes the state once more, as a clean stop.
        task.abort();
        writing.await.unwrap();
        let (on_disk, _) = state_file.load();
        assert!(!on_disk.running && on_disk.drained.len() == 1, "{on_disk:?}");
    }
}

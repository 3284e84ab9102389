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
use crate::load::watch::{Reload, drop_off_path};
use crate::model::snapshot::Store;
use crate::monitor::{Monitor, ProbeKey, Update};
use crate::ops::control::{ActionError, Command, Commands, Outcome};
use crate::ops::doc::StateStatus;
use crate::ops::events::{Event, Journal};
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
}

impl Driver {
    pub fn new(
        core: Publisher,
        store: Store,
        journal: Journal,
        state: Option<StateWriter>,
        changes: mpsc::UnboundedSender<Change>,
    ) -> Driver {
        Driver { core, store, journal, state, changes, notes: None }
    }

    /// Takes events raised elsewhere from `notes` too.
    pub fn with_notes(mut self, notes: mpsc::UnboundedReceiver<Event>) -> Driver {
        self.notes = Some(notes);
        self
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
        while !keys.iter().all(|k| self.core.has_verdict(k)) {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Some(u)) => {
                    let batch = batch(u, updates);
                    self.core.apply_all(batch, Now::read());
                    self.carry_out();
                }
                _ => break,
            }
        }
        let known = keys.iter().filter(|k| self.core.has_verdict(k)).count();
        info!(targets = keys.len(), with_verdict = known, "first probe round done");
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
        loop {
            let wake_at = self.core.wake_at();
            tokio::select! {
                Some(u) = updates.recv() => {
                    // Everything that arrived together is published once.
                    let batch = batch(u, &mut updates);
                    self.core.apply_all(batch, Now::read());
                }
                Some(cmd) = commands.recv() => {
                    self.execute(cmd);
                    continue;
                }
                Some(reload) = reloads.recv() => {
                    self.core.set_zones(reload, Now::read());
                    monitor.set_targets(self.core.probe_keys());
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
                Ok(()) => self.answer_once_written(done, format!("the failback of {pool} is released")),
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            },
            Command::Drain { address, pool, drain, done } => {
                match self.core.set_drain(address, pool.as_ref(), drain, now) {
                    Ok(()) => {
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
                status.journal = self.journal.disk_status();
                let _ = done.send(status);
            }
            Command::Events { since, limit, done } => {
                let _ = done.send(self.journal.since(since, limit));
            }
            Command::Probes { done } => {
                let _ = done.send(self.core.probes());
            }
        }
    }

    /// Carries out what an operator's change asked for, writes the state, and answers `done`
    /// with what the write came to (`what` says what was done).
    fn answer_once_written(&mut self, done: oneshot::Sender<Outcome>, what: String) {
        self.core.save_state();
        self.carry_out_then(Some(Box::new(move |written: Persisted| {
            let _ = done.send(written.map_err(|e| {
                ActionError::NotPersisted(format!("{what} and served, but {e}: it holds until weiche restarts only"))
            }));
        })));
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
                    error!("{e}; the next start skips the serials this run may have served");
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
            let u = Update { key, state: state.clone(), transition, cause: None, latency: Duration::ZERO };
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

//! Operator commands into a running server. The HTTP API (and tests, and embedders) send them;
//! the publisher, the one owner of what is served, carries them out in order.

use std::net::IpAddr;

use tokio::sync::{mpsc, oneshot};

use crate::model::name::Name;
use crate::ops::doc::{Probes, Status};
use crate::ops::events::Event;

/// Why an operator action did not take full effect. Each one is answered with a status other
/// than 2xx and makes the CLI exit non-zero: an answer never claims more than was done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// It names no served pool, or no target where it looked: nothing changed (404).
    #[error("{0}")]
    NotFound(String),
    /// It cannot take effect as things are (an undrain in one pool of a target drained in
    /// every pool, a failback release with nothing to release): nothing changed (409).
    #[error("{0}")]
    Conflict(String),
    /// It is served, but the state file could not be written: it holds until weiche restarts
    /// only (500).
    #[error("{0}")]
    NotPersisted(String),
    /// It is recorded on this cluster member, which is out of the majority: the members that
    /// serve do not have it yet, and get it when they hear from this one again (503).
    #[error("{0}")]
    NotAgreed(String),
}

/// What an operator action answers: done in full, or why not.
pub type Outcome = Result<(), ActionError>;

#[derive(Debug)]
pub enum Command {
    /// Release a manual failback hold on a pool.
    ReleaseFailback { pool: Name, done: oneshot::Sender<Outcome> },
    /// Drain (or undrain) an answered address, everywhere or in one pool.
    Drain { address: IpAddr, pool: Option<Name>, drain: bool, done: oneshot::Sender<Outcome> },
    /// The status document, with the last `events` events.
    Status { events: usize, done: oneshot::Sender<Status> },
    /// Events after sequence number `since`, at most `limit`.
    Events { since: u64, limit: usize, done: oneshot::Sender<Vec<Event>> },
    /// Read weiche.toml again (and look at the zones), answered with what it did.
    Reload { done: oneshot::Sender<crate::ops::doc::ReloadReply> },
    /// The configuration was (re)loaded, or failed to: for `/status`, with its event.
    Configured { status: Box<crate::ops::doc::ConfigStatus>, event: Option<Box<Event>> },
    /// The latest probes of every pool target.
    Probes { done: oneshot::Sender<Probes> },
    /// This instance stops: a cluster member tells the others it leaves (a clean leave takes its
    /// weight out of the total), answered once that is sent.
    Leave { done: oneshot::Sender<()> },
}

/// Sends commands to a running server (see `weiche::serve`).
#[derive(Debug, Clone)]
pub struct Control(mpsc::UnboundedSender<Command>);

pub type Commands = mpsc::UnboundedReceiver<Command>;

/// The server has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the server is not running")]
pub struct Gone;

impl Control {
    pub fn new() -> (Control, Commands) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Control(tx), rx)
    }

    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> oneshot::Receiver<T> {
        let (done, rx) = oneshot::channel();
        let _ = self.0.send(make(done));
        rx
    }

    /// Releases a manual failback hold.
    pub fn release_failback(&self, pool: Name) -> oneshot::Receiver<Outcome> {
        self.ask(|done| Command::ReleaseFailback { pool, done })
    }

    pub fn drain(&self, address: IpAddr, pool: Option<Name>, drain: bool) -> oneshot::Receiver<Outcome> {
        self.ask(|done| Command::Drain { address, pool, drain, done })
    }

    pub async fn status(&self, events: usize) -> Result<Status, Gone> {
        self.ask(|done| Command::Status { events, done }).await.map_err(|_| Gone)
    }

    /// Reads weiche.toml again and looks at the zones; says what changed.
    pub async fn reload(&self) -> Result<crate::ops::doc::ReloadReply, Gone> {
        self.ask(|done| Command::Reload { done }).await.map_err(|_| Gone)
    }

    /// Reports a (re)load of the configuration.
    pub fn configured(&self, status: crate::ops::doc::ConfigStatus, event: Option<Event>) {
        let _ = self.0.send(Command::Configured { status: Box::new(status), event: event.map(Box::new) });
    }

    /// Tells the cluster this member leaves cleanly (nothing without a cluster).
    pub async fn leave(&self) -> Result<(), Gone> {
        self.ask(|done| Command::Leave { done }).await.map_err(|_| Gone)
    }

    pub async fn events(&self, since: u64, limit: usize) -> Result<Vec<Event>, Gone> {
        self.ask(|done| Command::Events { since, limit, done }).await.map_err(|_| Gone)
    }

    pub async fn probes(&self) -> Result<Probes, Gone> {
        self.ask(|done| Command::Probes { done }).await.map_err(|_| Gone)
    }
}

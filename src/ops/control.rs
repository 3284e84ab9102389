//! Operator commands into a running server. The HTTP API (and tests, and embedders) send them;
//! the publisher, the one owner of what is served, carries them out in order.

use std::net::IpAddr;

use tokio::sync::{mpsc, oneshot};

use crate::model::name::Name;
use crate::ops::doc::Status;
use crate::ops::events::Event;

#[derive(Debug)]
pub enum Command {
    /// Release a manual failback hold on a pool; answers whether the pool exists.
    ReleaseFailback { pool: Name, done: oneshot::Sender<bool> },
    /// Drain (or undrain) an answered address, everywhere or in one pool.
    Drain { address: IpAddr, pool: Option<Name>, drain: bool, done: oneshot::Sender<Result<(), String>> },
    /// The status document, with the last `events` events.
    Status { events: usize, done: oneshot::Sender<Status> },
    /// Events after sequence number `since`, at most `limit`.
    Events { since: u64, limit: usize, done: oneshot::Sender<Vec<Event>> },
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

    /// Releases a manual failback hold; the answer says whether the pool exists.
    pub fn release_failback(&self, pool: Name) -> oneshot::Receiver<bool> {
        self.ask(|done| Command::ReleaseFailback { pool, done })
    }

    pub fn drain(&self, address: IpAddr, pool: Option<Name>, drain: bool) -> oneshot::Receiver<Result<(), String>> {
        self.ask(|done| Command::Drain { address, pool, drain, done })
    }

    pub async fn status(&self, events: usize) -> Result<Status, Gone> {
        self.ask(|done| Command::Status { events, done }).await.map_err(|_| Gone)
    }

    pub async fn events(&self, since: u64, limit: usize) -> Result<Vec<Event>, Gone> {
        self.ask(|done| Command::Events { since, limit, done }).await.map_err(|_| Gone)
    }
}

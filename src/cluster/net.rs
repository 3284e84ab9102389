//! The cluster's socket: one UDP socket on `[cluster] listen`, one task. It seals and sends
//! what the driver gives it to configured members only, and opens what arrives
//! ([`wire::Opener`]); what does not open changes nothing, is counted
//! (`weiche_cluster_rejected_total{reason}`) and logged at WARN, at most once per reason every
//! [`LOG_EVERY`], with how many were refused meanwhile.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cluster::wire::{self, Message, Opener};
use crate::config::cluster::Cluster;
use crate::throttle::Throttle;

/// How often a kind of refused message is logged.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Messages waiting for the driver; more are dropped (and counted) rather than queued.
const INBOX: usize = 4096;

/// The way to the socket task and back.
pub struct Link {
    /// Opened messages, with the sender's member index.
    pub inbox: mpsc::Receiver<(usize, Message)>,
    outbox: mpsc::UnboundedSender<(SocketAddr, Message)>,
    cluster: Arc<Cluster>,
}

impl Link {
    /// Sends `m` to member `to`.
    pub fn send(&self, to: usize, m: Message) {
        let _ = self.outbox.send((self.cluster.members[to].address, m));
    }
}

pub fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Starts the socket task on `socket` (bound to `cluster.listen`). The task ends when the
/// returned link is dropped.
pub fn start(socket: UdpSocket, cluster: Arc<Cluster>) -> (Link, tokio::task::JoinHandle<()>) {
    let (in_tx, inbox) = mpsc::channel(INBOX);
    let (outbox, out_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(socket, cluster.clone(), in_tx, out_rx));
    (Link { inbox, outbox, cluster }, task)
}

async fn run(
    socket: UdpSocket,
    cluster: Arc<Cluster>,
    inbox: mpsc::Sender<(usize, Message)>,
    mut outbox: mpsc::UnboundedReceiver<(SocketAddr, Message)>,
) {
    let key = wire::hmac_key(&cluster.key);
    let mut opener = Opener::new(cluster.clone());
    let mut buf = vec![0u8; 65_536];
    // Per reason: when it was last logged, and how many were refused since.
    let mut logged: HashMap<&'static str, Throttle> = HashMap::new();
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let (n, from) = match got {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP errors of earlier sends (a peer's port closed) surface here.
                        debug!(error = %e, "cluster socket");
                        continue;
                    }
                };
                metrics::counter!("weiche_cluster_messages_total", "direction" => "in").increment(1);
                metrics::counter!("weiche_cluster_bytes_total", "direction" => "in").increment(n as u64);
                match opener.open(&buf[..n], from, wall_ms(SystemTime::now())) {
                    Ok(m) => {
                        if inbox.try_send(m).is_err() {
                            metrics::counter!("weiche_cluster_rejected_total", "reason" => "backlog").increment(1);
                        }
                    }
                    Err(r) => {
                        let reason = r.reason();
                        metrics::counter!("weiche_cluster_rejected_total", "reason" => reason).increment(1);
                        let entry = logged.entry(reason).or_insert(Throttle::new(LOG_EVERY));
                        if let Some(suppressed) = entry.due(std::time::Instant::now()) {
                            warn!(reason, suppressed, "cluster message refused: {r}");
                        }
                    }
                }
            }
            out = outbox.recv() => {
                let Some((to, m)) = out else { return };
                let bytes = wire::seal(&key, &m);
                metrics::counter!("weiche_cluster_messages_total", "direction" => "out").increment(1);
                metrics::counter!("weiche_cluster_bytes_total", "direction" => "out").increment(bytes.len() as u64);
                if let Err(e) = socket.send_to(&bytes, to).await {
                    debug!(to = %to, error = %e, "cluster message not sent");
                }
            }
        }
    }
}

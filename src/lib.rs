//! weiche: an authoritative DNS nameserver with built-in health monitoring and failover.
//!
//! ```text
//!  zones/*.zone, *.toml ──> loader ──> zone::Zone (validated, immutable)
//!   (zonefile, config)                      │
//!                                           v
//!  weiche.toml ──> config         publisher ──> Snapshot (zones + pool answers)
//!                                 (reloads,          │  one ArcSwap, read once per query
//!                                  chart)            v
//!                                         server (UDP threads, TCP tasks, XDP threads)
//!                                           └─> service::handle: wire::Query::parse, once
//!                                                 ├─> answer::respond ─> wire (write)
//!                                                 └─> xfr (AXFR, IXFR, NOTIFY, TSIG)
//! ```
//!
//! | module      | owns                                                              |
//! |-------------|-------------------------------------------------------------------|
//! | `name`      | domain names in wire form                                         |
//! | `rtype`     | record type numbers and mnemonics                                 |
//! | `zonefile`  | RFC 1035 master files → records with file:line:col               |
//! | `config`    | `weiche.toml`, checks and pools in zone TOML, validation          |
//! | `zone`      | one validated zone: name index, RRsets, cuts, wildcards, pools    |
//! | `loader`    | the zones directory → zones or positioned errors                  |
//! | `chart`     | the failover chart: which targets answer (pure)                   |
//! | `monitor`   | probes targets, rise/fall hysteresis, verdict updates             |
//! | `snapshot`  | what a query reads: zones and current pool answers                |
//! | `publisher` | the one writer: reloads files, builds and publishes snapshots     |
//! | `wire`      | query parsing and response writing, allocation-free               |
//! | `service`   | the one entry point per message: parse once, query or transfer    |
//! | `answer`    | the authoritative answer algorithm                                |
//! | `server`    | UDP and TCP listeners                                             |
//! | `udp`       | batched UDP receive and send (recvmmsg/sendmmsg)                  |
//! | `xdp`       | opt-in AF_XDP path for IPv4 UDP: XDP program, rings, frames       |

pub mod config;
pub mod dns;
pub mod load;
pub mod model;
pub mod monitor;
pub mod ops;
pub mod publish;
pub mod transfer;

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

pub use config::Config;
pub use ops::control::{Commands, Control};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs rustls's ring provider for every HTTPS client (probes, the CLI). Once per process;
/// later calls change nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A task that is stopped when this handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
pub use dns::server::Sockets;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Zones(#[from] load::loader::DirError),
    #[error("cannot start the listeners: {0}")]
    Listen(#[from] std::io::Error),
}

/// Serves `config` on `sockets` until `shutdown` completes.
pub async fn run(config: Config, sockets: Sockets, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    serve(config, sockets, shutdown, Control::new()).await
}

/// Like [`run`], taking operator commands from the given channel (whose [`Control`] the caller
/// may keep; the HTTP API uses a clone).
pub async fn serve(
    config: Config,
    mut sockets: Sockets,
    shutdown: impl Future<Output = ()>,
    (control, commands): (Control, Commands),
) -> Result<(), ServeError> {
    ops::api::metrics_handle();
    let (changes, changed) = tokio::sync::mpsc::unbounded_channel();
    let _secondaries =
        AbortOnDrop(tokio::spawn(transfer::secondaries::run(changed, Arc::new(config.transfer.clone()))));
    let mut publisher = publish::Publisher::new(&config.zones_dir).with_changes(changes);
    if let Some(dir) = &config.state_dir {
        publisher = publisher.with_state(publish::admin::StateFile::in_dir(dir));
    }
    let _notifier = AbortOnDrop(tokio::spawn(ops::notify::run(
        publisher.journal().subscribe(),
        config.webhooks.clone(),
        config.commands.clone(),
    )));
    let ready = Arc::new(AtomicBool::new(false));
    let _api = match sockets.api.take() {
        Some(l) => {
            let addr = l.local_addr()?;
            let state = ops::api::ApiState {
                control,
                events: publisher.journal().sender(),
                ready: ready.clone(),
                token: config.api_token.as_deref().map(Arc::from),
            };
            info!(api = %addr, "HTTP API listening");
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = ops::api::serve(l, state).await {
                    warn!(error = %e, "HTTP API stopped");
                }
            })))
        }
        None => None,
    };
    publisher = tokio::task::spawn_blocking(move || publisher.reconcile(true).map(|_| publisher))
        .await
        .expect("zone loading panicked")?;
    let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let mut monitor = monitor::Monitor::new(tx);
    let keys = publisher.probe_keys();
    monitor.set_targets(keys.clone());
    startup_round(&mut publisher, &mut updates, &keys).await;
    publisher.settle();
    ready.store(true, Ordering::Relaxed);
    let store = publisher.store();
    let zones = store.load().zones.len();
    let limits = dns::server::Limits {
        udp_payload: config.udp_payload,
        tcp_idle_timeout: config.tcp_idle_timeout,
        tcp_max_connections: config.tcp_max_connections,
        udp_workers: config.udp_workers,
        xdp: config.xdp.clone(),
        transfer: Arc::new(config.transfer.clone()),
    };
    let addrs: Vec<String> = sockets.udp.iter().filter_map(|s| s.local_addr().ok()).map(|a| a.to_string()).collect();
    let listeners = dns::server::Listeners::start(sockets, store, &limits)?;
    info!(listen = %addrs.join(" "), zones, targets = keys.len(), zones_dir = %config.zones_dir.display(), "weiche serving");
    let reloader = tokio::spawn(reload_loop(publisher, monitor, updates, commands, config.reload_interval));
    shutdown.await;
    info!("shutting down");
    reloader.abort();
    listeners.stop().await;
    Ok(())
}

/// Waits until every target has a first verdict, or the longest check timeout (plus a little)
/// has passed, so pools answer from verdicts rather than from "unknown" once serving starts.
async fn startup_round(
    publisher: &mut publish::Publisher,
    updates: &mut tokio::sync::mpsc::UnboundedReceiver<monitor::Update>,
    keys: &[monitor::ProbeKey],
) {
    let Some(longest) = keys.iter().map(|k| k.check.0.timeout).max() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + longest + Duration::from_millis(200);
    while !keys.iter().all(|k| publisher.has_verdict(k)) {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(u)) => {
                let mut batch = vec![u];
                while let Ok(more) = updates.try_recv() {
                    batch.push(more);
                }
                publisher.apply_all(batch);
            }
            _ => break,
        }
    }
    let known = keys.iter().filter(|k| publisher.has_verdict(k)).count();
    info!(targets = keys.len(), with_verdict = known, "first probe round done");
}

/// Re-reads the zones directory every `interval`, and at once on SIGHUP; applies the monitor's
/// updates as they come.
async fn reload_loop(
    mut publisher: publish::Publisher,
    mut monitor: monitor::Monitor,
    mut updates: tokio::sync::mpsc::UnboundedReceiver<monitor::Update>,
    mut commands: Commands,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let now = tokio::select! {
            Some(u) = updates.recv() => {
                // Everything that arrived together is published once.
                let mut batch = vec![u];
                while let Ok(more) = updates.try_recv() {
                    batch.push(more);
                }
                publisher.apply_all(batch);
                continue;
            }
            Some(cmd) = commands.recv() => {
                publish::execute(&mut publisher, cmd);
                continue;
            }
            _ = async { match publisher.wake_at() { Some(at) => tokio::time::sleep_until(at.into()).await, None => std::future::pending().await } } => {
                publisher.wake();
                continue;
            }
            _ = tick.tick() => false,
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                info!("SIGHUP: reloading zones");
                true
            }
        };
        let (p, result) = tokio::task::spawn_blocking(move || {
            let r = publisher.reconcile(now);
            (publisher, r)
        })
        .await
        .expect("zone loading panicked");
        publisher = p;
        if let Err(e) = result {
            warn!(error = %e, "zones not reloaded; serving what was loaded");
        }
        // New targets start unknown; unchanged ones keep their verdicts; removed ones stop.
        let keys = publisher.probe_keys();
        monitor.set_targets(keys.iter().cloned());
        publisher.retain_verdicts(&keys);
    }
}

//! weiche: an authoritative DNS nameserver with built-in health monitoring and failover.
//!
//! ```text
//!  zones/*.zone, *.toml ──> loader ──> zone::Zone (validated, immutable)
//!   (zonefile, config)                      │
//!                                           v
//!  weiche.toml ──> config         publisher ──> Snapshot (zones + pool answers)
//!                                 (reloads,          │  one ArcSwap, read once per query
//!                                  chart)            v
//!                                         server (UDP threads, TCP tasks)
//!                                           └─> answer::respond ─> wire (parse, write)
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
//! | `snapshot`  | what a query reads: zones and current pool answers                |
//! | `publisher` | the one writer: reloads files, builds and publishes snapshots     |
//! | `wire`      | query parsing and response writing, allocation-free               |
//! | `answer`    | the authoritative answer algorithm                                |
//! | `server`    | UDP and TCP listeners                                             |

pub mod answer;
pub mod chart;
pub mod config;
pub mod loader;
pub mod monitor;
pub mod name;
pub mod publisher;
pub mod rtype;
pub mod server;
pub mod snapshot;
pub mod wire;
pub mod zone;
pub mod zonefile;

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

pub use config::Config;
pub use server::Sockets;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Zones(#[from] loader::DirError),
    #[error("cannot start the listeners: {0}")]
    Listen(#[from] std::io::Error),
}

/// Serves `config` on `sockets` until `shutdown` completes.
pub async fn run(
    config: Config,
    sockets: Sockets,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut publisher = publisher::Publisher::new(&config.zones_dir);
    publisher = tokio::task::spawn_blocking(move || publisher.reconcile(true).map(|_| publisher))
        .await
        .expect("zone loading panicked")?;
    let store = publisher.store();
    let zones = store.load().zones.len();
    let limits = server::Limits {
        udp_payload: config.udp_payload,
        tcp_idle_timeout: config.tcp_idle_timeout,
        tcp_max_connections: config.tcp_max_connections,
        udp_workers: config.udp_workers,
    };
    let addrs: Vec<String> = sockets
        .udp
        .iter()
        .filter_map(|s| s.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    let listeners = server::Listeners::start(sockets, store, &limits)?;
    info!(listen = %addrs.join(" "), zones, zones_dir = %config.zones_dir.display(), "weiche serving");
    let reloader = tokio::spawn(reload_loop(publisher, config.reload_interval));
    shutdown.await;
    info!("shutting down");
    reloader.abort();
    listeners.stop().await;
    Ok(())
}

/// Re-reads the zones directory every `interval`, and at once on SIGHUP.
async fn reload_loop(mut publisher: publisher::Publisher, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let now = tokio::select! {
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
    }
}

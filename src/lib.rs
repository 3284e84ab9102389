//! weiche: an authoritative DNS nameserver with built-in health monitoring and failover.
//!
//! ```text
//!  zones/*.zone, *.toml ─> load (own task: watch, read, parse, index, diff) ──┐ Reload
//!  weiche.toml ─> config (spec types, validated once) ────────────────────────┤
//!  HTTP API, page, CLI ─> ops::control (drain, failback, status) ─────────────┤ Command
//!  monitor (probes -> rise/fall -> verdicts) ─> cluster (members' vote) ──────┤ Update
//!                                                                             v
//!         publish: pure core (zones, verdicts, admin, now) -> (Snapshot, events, effects)
//!                  + driver (the one task that feeds it and carries effects out)
//!            │ one ArcSwap (model::snapshot::Store)   │                     │
//!            v                                        v                     v
//!   dns: UDP, TCP, XDP -> service::handle         transfer::secondaries  ops::events:
//!        (one parse per message) -> answer, or    (NOTIFY out)           log, metrics,
//!        xfr (AXFR, IXFR, NOTIFY in, TSIG)                               journal, notify
//! ```
//!
//! Types flow down, parsing flows up: `model` imports no other room; `config` and `load`
//! build model values; `cluster` reads `config`, `model` and the monitor's updates, never the
//! reverse; `dns` reads snapshots and never imports `publish`; `publish` imports `load`,
//! `monitor`, `cluster`, `ops::events` and `transfer::secondaries` for the messages it takes and
//! the effects it hands on.
//!
//! | room | owns |
//! |---|---|
//! | `model/` | `name`, `rtype`, `zone` (one validated zone: name index, RRsets, cuts, wildcards), `pool` (pools, targets, checks), `position` (file:line:col errors), `chart` (which targets answer: pure), `snapshot` (what a query reads), `history` (serials, IXFR differences) |
//! | `config/` | `weiche.toml`: server, transfer, notify, API, log; `keys` (TSIG keys); `cluster` (`[cluster]`) |
//! | `cluster/` | several members, one answer: `quorum` (Galera's weighted quorum), `vote` (primary component, cluster verdict), `operator` (last-writer-wins operator state), `wire` (signed reports, opened with replay and clock checks), `peers` (one member's view: pure), `net` (the peer socket), `report` (what `check` prints) |
//! | `load/` | `zonefile` (RFC 1035 master files), `zone_toml` (checks and pools), `loader` (one file → a zone or positioned errors), `watch` (the zones directory, on its own task) |
//! | `monitor/` | probes, rise/fall hysteresis, verdict updates |
//! | `publish/` | the pure core, `driver`, `admin` (operator state file), `status` (the `/status` view) |
//! | `dns/` | `wire` (parse, write; allocation-free), `service` (the one entry point per message: parse once, then query, transfer, NOTIFY or signed request), `answer` (the authoritative algorithm), `xfr` (AXFR, IXFR, NOTIFY in), `server` (listeners), `udp` (recvmmsg/sendmmsg), `rrl` (response rate limiting for UDP and XDP), `tcp` (connections, their limits, eviction of idle ones), `xdp/` (opt-in AF_XDP path: `bpf`, `rings`, `frames`, `workers`), `stats` (query counters) |
//! | `dnssec/` | `keys` (BIND key files: read, check, timing metadata, which keys publish and sign when: pure), `keygen` (new keys in BIND's format), `records` (DNSKEY RDATA, key tag, DS, CDS, CDNSKEY); signing is not here yet |
//! | `transfer/` | `tsig` (RFC 8945 signing and verifying), `secondaries` (NOTIFY out) |
//! | `ops/` | `api` (HTTP), `control` (the command channel), `client` (the CLI's side), `events` (numbering, the recent ones, subscribers), `journal` (events on disk: append, rotate, read back), `notify` (webhooks, commands), `page` (the status page: HTML, script, style, embedded) |

pub mod cluster;
pub mod config;
pub mod dns;
pub mod dnssec;
pub mod fatal;
pub mod load;
pub mod model;
pub mod monitor;
pub mod ops;
pub mod publish;
pub mod throttle;
pub mod transfer;

use std::future::Future;

use tracing::{error, info, warn};

pub use config::Config;
pub use ops::control::{Commands, Control};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    #[error("stopped after a failure: {0}")]
    Failed(String),
    #[error("{0}")]
    Api(String),
    #[error("cannot listen for cluster peers on {0}: {1}")]
    ClusterListen(std::net::SocketAddr, std::io::Error),
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
    let leave = control.clone();
    load::read::set_max_file_size(config.zone_file_limit);
    // However the API's address was chosen (file, flag, a program embedding weiche), it is
    // opened beyond loopback only with a token.
    if let Some(l) = &sockets.api {
        config::check_api_access(l.local_addr()?, config.api_token.as_deref(), "the API address")
            .map_err(ServeError::Api)?;
    }
    // What a reload of weiche.toml changes while serving.
    let mut live = ops::reload::Live::new(&config);
    let zone_asks = live.zone_asks.take().expect("a new Live has them");
    let (changes, changed) = tokio::sync::mpsc::unbounded_channel();
    let _secondaries = AbortOnDrop(tokio::spawn(transfer::secondaries::run(changed, live.transfer.clone())));
    let (admin, state_writer, mut writing) = match config.state_dir.as_deref() {
        Some(dir) => {
            let (admin, writer, task) = restore_state(publish::admin::StateFile::in_dir(dir));
            (admin, Some(writer), Some(AbortOnDrop(task)))
        }
        None => Default::default(),
    };
    let mut journal = ops::events::Journal::default();
    let (notes_tx, notes) = tokio::sync::mpsc::unbounded_channel();
    let journal_layout =
        config.state_dir.as_deref().map(|dir| ops::journal::Layout::in_state_dir(dir, config.events_keep));
    let mut journaling = match &journal_layout {
        Some(layout) => {
            let l = layout.clone();
            let restored = tokio::task::spawn_blocking(move || ops::journal::restore(&l))
                .await
                .expect("reading the journal panicked");
            journal.restore(restored.events);
            let (writer, task) = ops::journal::Writer::start(layout.clone(), notes_tx);
            journal.keep_on_disk(writer);
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    journal.push(ops::events::Event::new(
        ops::events::EventKind::Started,
        format!("version {}", env!("CARGO_PKG_VERSION")),
    ));
    let _notifier = AbortOnDrop(tokio::spawn(ops::notify::run(journal.subscribe(), live.notifiers.subscribe())));
    let ready = Arc::new(AtomicBool::new(false));
    let _api = match sockets.api.take() {
        Some(l) => {
            let addr = l.local_addr()?;
            let state = ops::api::ApiState {
                control,
                events: journal.sender(),
                journal: journal_layout.clone(),
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
    // The first load is awaited: nothing is served before the zones are.
    let mut watcher = load::watch::Watcher::new(&config.zones_dir).signing(config.dnssec.clone());
    let (watcher, first) = tokio::task::spawn_blocking(move || {
        let r = watcher.reconcile(true);
        (watcher, r)
    })
    .await
    .expect("zone loading panicked");
    let store: model::snapshot::Store = Default::default();
    let mut driver =
        publish::driver::Driver::new(publish::Publisher::new(admin), store.clone(), journal, state_writer, changes)
            .with_notes(notes);
    // Zone files with errors are left out and the rest served (what `weiche check` exits 0 on).
    let mut left_out = Vec::new();
    if let Some(reload) = first? {
        left_out = reload.zones.iter().filter(|z| z.served.is_none()).map(|z| z.file.apex.to_string()).collect();
        driver.core_mut().set_zones(reload, publish::Now::read());
        driver.carry_out();
    }
    let _cluster = match &config.cluster {
        Some(c) => {
            let c = Arc::new(c.clone());
            let socket =
                tokio::net::UdpSocket::bind(c.listen).await.map_err(|e| ServeError::ClusterListen(c.listen, e))?;
            let (link, task) = cluster::net::start(socket, c.clone());
            let boot = cluster::net::wall_ms(std::time::SystemTime::now());
            let peers = cluster::peers::Peers::new(c.clone(), boot, tokio::time::Instant::now());
            let me = &c.members[c.me];
            info!(member = %me.name, site = %me.site, weight = me.weight, peers = %c.listen, members = c.members.len(), minority = c.minority.name(), "cluster member: pool answers wait for a majority");
            driver.join(publish::driver::Member { peers, link });
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let mut monitor = monitor::Monitor::new(tx).with_source(config.probe_source);
    let keys = driver.core_mut().probe_keys();
    monitor.set_targets(keys.clone());
    driver.startup_round(&mut updates, &keys).await;
    driver.core_mut().settle();
    driver.carry_out();
    let zones = store.load().zones.len();
    let limits = dns::server::Limits {
        udp_payload: config.udp_payload,
        tcp_idle_timeout: config.tcp_idle_timeout,
        tcp_max_connections: config.tcp_max_connections,
        tcp_max_connections_per_client: config.tcp_max_connections_per_client,
        udp_workers: config.udp_workers,
        xdp: config.xdp.clone(),
        transfer: live.transfer.clone(),
        rrl: config.rrl,
    };
    let witness = config.cluster.as_ref().is_some_and(|c| c.members[c.me].witness);
    if witness {
        // A witness votes and probes but serves no public DNS (like Galera's garbd).
        info!("cluster witness: no DNS listeners");
        sockets.udp.clear();
        sockets.tcp.clear();
    }
    let addrs: Vec<String> = sockets.udp.iter().filter_map(|s| s.local_addr().ok()).map(|a| a.to_string()).collect();
    let listeners = dns::server::Listeners::start(sockets, store, &limits)?;
    // Ready once every listener (and the XDP program) is up, not before.
    ready.store(true, Ordering::Relaxed);
    info!(listen = %addrs.join(" "), zones, targets = keys.len(), zones_dir = %config.zones_dir.display(), "weiche serving");
    if !left_out.is_empty() {
        error!(
            zones = %left_out.join(" "),
            "zone files with errors are not served (each problem is logged above; weiche check lists them); the other zones are"
        );
    }
    if zones == 0 {
        warn!(zones_dir = %config.zones_dir.display(), "no zone is served: every query is answered REFUSED until a zone file loads");
    }
    let (reloads_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
    let _watch = AbortOnDrop(tokio::spawn(load::watch::watch(watcher, config.reload_interval, reloads_tx, zone_asks)));
    let (asks, asked) = tokio::sync::mpsc::unbounded_channel();
    driver.set_reloader(asks);
    let _reloader = AbortOnDrop(tokio::spawn(ops::reload::run(config.clone(), live, leave.clone(), asked)));
    let publisher = AbortOnDrop(tokio::spawn(driver.run(monitor, updates, commands, reloads)));
    tokio::select! {
        _ = shutdown => info!("shutting down"),
        _ = fatal::stopped() => {
            ready.store(false, Ordering::Relaxed);
            error!("shutting down after a failure");
        }
    }
    // A cluster member says it leaves, so the others count its weight out of the total.
    if config.cluster.is_some() && tokio::time::timeout(std::time::Duration::from_secs(1), leave.leave()).await.is_err()
    {
        warn!("the cluster was not told of this member's leave within 1 s");
    }
    // Answers in flight finish from the last snapshot; nothing new is published.
    drop(publisher);
    listeners.stop().await;
    // With the publisher gone, the state writer's last write marks a clean stop.
    if let Some(w) = &mut writing
        && tokio::time::timeout(std::time::Duration::from_secs(5), &mut w.0).await.is_err()
    {
        warn!("the state file's last write did not finish within 5 s");
    }
    // With the publisher gone, the journal's writer writes what is pending and ends.
    if let Some(w) = &mut journaling
        && tokio::time::timeout(std::time::Duration::from_secs(5), &mut w.0).await.is_err()
    {
        warn!("the event journal's last write did not finish within 5 s");
    }
    match fatal::failed() {
        Some(why) => Err(ServeError::Failed(why.to_string())),
        None => Ok(()),
    }
}

/// Reads the operator state at start (moving serials past any the last run may have lost) and
/// starts its writer.
fn restore_state(
    file: publish::admin::StateFile,
) -> (publish::admin::AdminState, publish::driver::StateWriter, tokio::task::JoinHandle<()>) {
    let (state, written) = file.open(std::time::SystemTime::now());
    if !state.drained.is_empty() || !state.held.is_empty() {
        info!(drained = state.drained.len(), held = state.held.len(), file = %file.path.display(), "operator state restored");
    }
    let (writer, task) = publish::driver::StateWriter::start(file, state.clone(), written);
    (state, writer, task)
}

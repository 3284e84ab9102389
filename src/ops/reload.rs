//! weiche.toml while weiche runs: read again on SIGHUP and on `weiche reload` (POST /reload).
//!
//! What can change live is applied at once: webhooks and commands, the log level, transfer
//! ACLs, NOTIFY targets and keys (`[transfer]`, `[keys]`), and `zone_file_limit`. What needs a
//! restart (listen addresses, the API, the zones directory, limits the listeners were built
//! with, the cluster) keeps its running value and is named, in the log and in the event, when
//! the file changes it. A file that does not load changes nothing: the previous configuration
//! stays, and the error is a `config_error` event, a WARN line and `/status` `config.last_error`,
//! as a zone's error is.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::config::{Config, NotifyCommand, Transfer, Webhook};
use crate::ops::control::Control;
use crate::ops::doc::{ConfigStatus, ReloadReply};
use crate::ops::events::{Event, EventKind};

/// The webhooks and commands notifications go to.
#[derive(Debug, Clone, Default)]
pub struct Notifiers {
    pub webhooks: Vec<Webhook>,
    pub commands: Vec<NotifyCommand>,
}

/// A request to reload, answered with what it did.
pub type Ask = oneshot::Sender<ReloadReply>;

/// How a new log level takes effect (set by the program that owns the log subscriber).
type LogLevelHook = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
static LOG_LEVEL: OnceLock<LogLevelHook> = OnceLock::new();

/// Lets a reload change the log level: `hook` gets the new `log.level` directive. Without it (a
/// program embedding weiche with its own logging), a changed level needs a restart.
pub fn on_log_level(hook: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let _ = LOG_LEVEL.set(Box::new(hook));
}

/// Asks the zone watcher to look at the zones now; answered with the zone files that are not
/// loaded, each with its first error.
pub type ZonesAsk = oneshot::Sender<Vec<String>>;

/// How long a reload waits for the zones to be read before it answers that they still are.
const ZONES_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the running server reads its live settings from.
pub struct Live {
    pub transfer: crate::config::SharedTransfer,
    pub notifiers: watch::Sender<Notifiers>,
    /// Asks the zone watcher to look at the zones now (as SIGHUP does).
    pub zones: mpsc::UnboundedSender<ZonesAsk>,
    /// The other end of `zones`, for the watcher (taken when it starts).
    pub zone_asks: Option<mpsc::UnboundedReceiver<ZonesAsk>>,
}

impl Live {
    pub fn new(config: &Config) -> Live {
        let (zones, zone_asks) = mpsc::unbounded_channel();
        Live {
            transfer: config.transfer.clone().shared(),
            notifiers: watch::channel(Notifiers {
                webhooks: config.webhooks.clone(),
                commands: config.commands.clone(),
            })
            .0,
            zones,
            zone_asks: Some(zone_asks),
        }
    }
}

fn debug_eq<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The settings `new` changes from `old`: those applied live, and those that need a restart.
pub fn differences(old: &Config, new: &Config) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut live = Vec::new();
    let mut restart = Vec::new();
    macro_rules! compare {
        ($list:ident: $($field:ident => $name:literal),* $(,)?) => {
            $(if !debug_eq(&old.$field, &new.$field) { $list.push($name); })*
        };
    }
    compare!(live: webhooks => "notify.webhook", commands => "notify.command", zone_file_limit => "zone_file_limit");
    // Keys print their names only: compare what signs.
    let keys = |t: &Transfer| t.keys.iter().map(|k| (k.name.to_string(), k.mac(b"weiche"))).collect::<Vec<_>>();
    if !debug_eq(&old.transfer, &new.transfer) || keys(&old.transfer) != keys(&new.transfer) {
        live.push("transfer");
    }
    if old.log_level != new.log_level {
        if LOG_LEVEL.get().is_some() { live.push("log.level") } else { restart.push("log.level") }
    }
    compare!(restart:
        listen => "listen", zones_dir => "zones", udp_payload => "udp_payload",
        tcp_idle_timeout => "tcp_idle_timeout", tcp_max_connections => "tcp_max_connections",
        tcp_max_connections_per_client => "tcp_max_connections_per_client", udp_workers => "udp_workers",
        xdp => "xdp", reload_interval => "reload_interval", state_dir => "state_dir",
        api_listen => "api.listen", api_token => "api.token_file", log_format => "log.format",
        rrl => "rrl", probe_source => "probe_source", events_keep => "events_keep",
        dnssec => "dnssec",
    );
    if !cluster_eq(old.cluster.as_ref(), new.cluster.as_ref()) {
        restart.push("cluster");
    }
    // What the command line set stays so at the next restart too, whatever the file says.
    restart.retain(|name| !old.from_command_line.contains(name));
    (live, restart)
}

/// Whether two `[cluster]` settings are the same, key secret included, wherever in the file
/// they are written (a line added above `[cluster]` moves nothing).
fn cluster_eq(a: Option<&crate::config::cluster::Cluster>, b: Option<&crate::config::cluster::Cluster>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            debug_eq(
                &(a.me, &a.members, a.listen, &a.minority, a.heartbeat),
                &(b.me, &b.members, b.listen, &b.minority, b.heartbeat),
            ) && a.key.name == b.key.name
                && a.key.mac(b"weiche") == b.key.mac(b"weiche")
        }
        _ => false,
    }
}

/// Reloads on SIGHUP and on each `Ask`, until the asks' channel closes. `current` is what the
/// server started with; `control` takes the events and the `/status` entry.
pub async fn run(mut current: Config, live: Live, control: Control, mut asks: mpsc::UnboundedReceiver<Ask>) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let file = current.file.as_ref().map(|p| p.display().to_string());
    control.configured(ConfigStatus { file: file.clone(), loaded_at: Some(now()), last_error: None }, None);
    loop {
        let ask = tokio::select! {
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => None,
            ask = asks.recv() => match ask {
                Some(a) => Some(a),
                None => return,
            },
        };
        let mut reply = reload(&mut current, &live, &control).await;
        // Then the zones are looked at, under what was just applied (zone_file_limit); a reload
        // that was asked for answers with what they came to.
        let (tx, rx) = oneshot::channel();
        let _ = live.zones.send(tx);
        if let Some(ask) = ask {
            match tokio::time::timeout(ZONES_WAIT, rx).await {
                Ok(Ok(failed)) => zones_came_to(&mut reply, failed),
                Ok(Err(_)) => zones_came_to(&mut reply, vec!["the zone watcher is gone".into()]),
                Err(_) => zones_came_to(
                    &mut reply,
                    vec![format!(
                        "the zones were still being read after {}s; weiche status shows how they end",
                        ZONES_WAIT.as_secs()
                    )],
                ),
            }
            let _ = ask.send(reply);
        }
    }
}

/// Adds to a reload's answer the zone files that are not loaded: the reload did not fully
/// happen while any is (their previous versions keep serving, where there were any).
fn zones_came_to(reply: &mut ReloadReply, failed: Vec<String>) {
    if failed.is_empty() {
        return;
    }
    let zones = format!(
        "{} zone file(s) not loaded (the previous version of each keeps serving, if there was one): {}",
        failed.len(),
        failed.join("; ")
    );
    reply.ok = false;
    reply.error = Some(match reply.error.take() {
        Some(e) => format!("{e}; {zones}"),
        None => zones,
    });
    reply.zone_errors = failed;
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Reads the file again and applies what it can; says what it did.
async fn reload(current: &mut Config, live: &Live, control: &Control) -> ReloadReply {
    let file = current.file.clone();
    let name = file.as_ref().map_or("<built-in configuration>".to_string(), |p| p.display().to_string());
    let path = file.clone();
    let loaded = tokio::task::spawn_blocking(move || Config::load(path.as_deref()))
        .await
        .map_err(|e| format!("reading the configuration failed: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
    let new = match loaded {
        Ok(c) => c,
        Err(e) => {
            warn!(file = %name, "configuration not reloaded; the previous one stays: {e}");
            let event = Event::new(EventKind::ConfigError, format!("{e}; the previous configuration stays"));
            control.configured(
                ConfigStatus { file: Some(name), loaded_at: None, last_error: Some(e.clone()) },
                Some(event),
            );
            return ReloadReply { ok: false, error: Some(e), ..Default::default() };
        }
    };
    let (changed, restart) = differences(current, &new);
    let mut problems = Vec::new();
    // Settings that wait for a restart, which would refuse them on this host: said now.
    let mut asked = new.clone();
    if current.from_command_line.contains(&"xdp") {
        asked.xdp.clone_from(&current.xdp);
    }
    if let Err(e) = asked.host_problems() {
        problems.push(format!("{e} (the next start would refuse it)"));
    }
    if changed.contains(&"log.level")
        && let Some(hook) = LOG_LEVEL.get()
        && let Err(e) = hook(&new.log_level)
    {
        problems.push(format!("log.level {:?}: {e}", new.log_level));
    }
    live.transfer.store(Arc::new(new.transfer.clone()));
    live.notifiers.send_replace(Notifiers { webhooks: new.webhooks.clone(), commands: new.commands.clone() });
    crate::config::bounded::set_max_zone_file_size(new.zone_file_limit);
    if !restart.is_empty() {
        warn!(file = %name, settings = %restart.join(", "), "configuration changes that take effect at the next restart");
    }
    let what = match (changed.is_empty(), restart.is_empty()) {
        (true, true) => "nothing changed".to_string(),
        (false, true) => format!("applied: {}", changed.join(", ")),
        (true, false) => format!("nothing to apply now; at the next restart: {}", restart.join(", ")),
        (false, false) => format!("applied: {}; at the next restart: {}", changed.join(", "), restart.join(", ")),
    };
    info!(file = %name, "configuration reloaded: {what}");
    // What needs a restart keeps its running value, so that the next reload still names it.
    apply_live(current, new, changed.contains(&"log.level"));
    let error = (!problems.is_empty()).then(|| problems.join("; "));
    control.configured(
        ConfigStatus { file: Some(name), loaded_at: Some(now()), last_error: error.clone() },
        Some(Event::new(EventKind::ConfigReloaded, what)),
    );
    ReloadReply {
        ok: error.is_none(),
        changed: changed.iter().map(|s| s.to_string()).collect(),
        restart: restart.iter().map(|s| s.to_string()).collect(),
        error,
        zone_errors: Vec::new(),
    }
}

/// Takes into `running` what a reload applies at once from `new` (the log level only when
/// it could be applied); everything else keeps its running value until a restart.
fn apply_live(running: &mut Config, new: Config, log_level: bool) {
    running.webhooks = new.webhooks;
    running.commands = new.commands;
    running.transfer = new.transfer;
    running.zone_file_limit = new.zone_file_limit;
    if log_level {
        running.log_level = new.log_level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_text(Some(std::path::Path::new("/etc/weiche/weiche.toml")), text).unwrap()
    }

    #[test]
    fn live_and_restart_settings_are_told_apart() {
        let old = config("[server]\nlisten = [\"127.0.0.1:1053\"]\n");
        let same = config("[server]\nlisten = [\"127.0.0.1:1053\"]\n");
        assert_eq!(differences(&old, &same), (vec![], vec![]));
        let new = config(
            "[server]\nlisten = [\"127.0.0.1:2053\"]\nzone_file_limit = \"1MiB\"\n\
             [[notify.webhook]]\nurl = \"http://127.0.0.1:9/hook\"\n\
             [transfer]\nallow = [{ from = \"127.0.0.0/8\" }]\n",
        );
        let (live, restart) = differences(&old, &new);
        assert_eq!(live, ["notify.webhook", "zone_file_limit", "transfer"]);
        assert_eq!(restart, ["listen"]);
        // A key whose secret alone changed is a change.
        let k1 = config("[keys.x]\nsecret = \"c2VjcmV0LWE=\"\n");
        let k2 = config("[keys.x]\nsecret = \"c2VjcmV0LWI=\"\n");
        assert_eq!(differences(&k1, &k2).0, ["transfer"]);
        // What needs a restart keeps its running value, so a second reload names it again.
        let mut kept = old.clone();
        apply_live(&mut kept, new.clone(), false);
        assert_eq!(kept.listen, old.listen);
        assert_eq!(differences(&kept, &new).1, ["listen"]);
    }

    /// The cluster is named when its key's secret changes (the key's name is all its Debug
    /// shows), and not when a line added above `[cluster]` moves it; settings the command line
    /// gave are not named, whatever the file says of them.
    #[test]
    fn the_cluster_and_command_line_settings_are_named_truly() {
        let cluster = |secret: &str, above: &str| {
            config(&format!(
                "{above}[keys.c]\nsecret = \"{secret}\"\n[cluster]\nmember = \"a\"\nkey = \"c\"\n\
                 members = [{{ name = \"a\", address = \"192.0.2.1\" }}, {{ name = \"b\", address = \"192.0.2.2\" }}]\n"
            ))
        };
        let old = cluster("c2VjcmV0LWE=", "");
        assert_eq!(differences(&old, &cluster("c2VjcmV0LWE=", "# a comment\n\n")), (vec![], vec![]));
        let (live, restart) = differences(&old, &cluster("c2VjcmV0LWI=", ""));
        assert_eq!((live, restart), (vec!["transfer"], vec!["cluster"]));
        let mut running = config("[server]\nlisten = [\"127.0.0.1:1053\"]\n");
        running.listen = vec!["127.0.0.1:2053".parse().unwrap()];
        running.from_command_line.push("listen");
        assert_eq!(differences(&running, &config("[server]\nlisten = [\"127.0.0.1:1053\"]\n")), (vec![], vec![]));
    }
}

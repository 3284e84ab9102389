//! `weiche.toml`: what the file says (serde "spec" types) and the validated values the server
//! runs on. Validation happens here, once; every
//! problem is reported as `file:line:col: message`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod bounded;
pub mod cluster;
pub mod keys;

use serde::Deserialize;
use toml::Spanned;

use crate::model::name::Name;
use crate::model::position::{FileError, span_error, toml_error};

/// Installs rustls's ring provider for every HTTPS client (probes, the CLI). Once per process;
/// later calls change nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The configuration used when no `--config` is given.
pub const BUILTIN: &str = r#"
[server]
listen = ["127.0.0.1:1053"]
zones = "zones"
"#;

pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// The longest duration any setting takes. Every key has its own range too; this one keeps
/// a duration nobody means (`400000000000years`) from ever reaching a clock's arithmetic.
pub const LONGEST_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// Parses `500ms`, `2s`, `1m`, `1h`, and whatever else humantime reads (`1m30s`, `1min`,
/// `2 hours`), up to [`LONGEST_DURATION`]. A bare number is refused even where humantime takes
/// it (`0`): a unit left out is more likely a mistake than a meaning.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_any_duration(s)?;
    if d > LONGEST_DURATION {
        return Err(format!("{:?} is longer than any setting takes (at most 366d)", s.trim()));
    }
    Ok(d)
}

/// [`parse_duration`] without the ceiling, for spans of history (`--since 2y`).
pub fn parse_any_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write it like 500ms, 2s, 1m or 1h");
    let text = s.trim();
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    humantime::parse_duration(text).map_err(|_| bad())
}

/// The `[keys]` entries, by their table names.
fn keys_of(
    keys: BTreeMap<String, Spanned<KeySpec>>,
    base: &Path,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<BTreeMap<String, crate::config::keys::Key>, FileError> {
    let mut named: BTreeMap<String, crate::config::keys::Key> = BTreeMap::new();
    for (name, k) in keys {
        let span = k.span();
        // A key's name is a DNS name on the wire (TSIG): two that differ in case or a final dot
        // are one key to a peer, and which secret would be used would be a guess.
        let wire = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
        if let Some(other) = named.keys().find(|o| wire(o) == wire(&name)) {
            return Err(err(span, format!("key {name:?} and key {other:?} are one name on the wire; rename one")));
        }
        let k = k.into_inner();
        let key = match (&k.file, &k.secret) {
            (Some(f), None) => {
                let path = base.join(f);
                let text = bounded::read_text(&path, bounded::SECRET_LIMIT, "a key file")
                    .map_err(|e| err(span.clone(), format!("key {name:?}: cannot read {}: {e}", path.display())))?;
                crate::config::keys::Key::from_bind_file(&text)
                    .map_err(|m| err(span.clone(), format!("key {name:?}: {}: {m}", path.display())))?
            }
            (None, Some(secret)) => {
                let alg = k.algorithm.as_deref().unwrap_or("hmac-sha256");
                crate::config::keys::Key::new(&name, alg, secret)
                    .map_err(|m| err(span.clone(), format!("key {name:?}: {m}")))?
            }
            _ => return Err(err(span, format!("key {name:?}: give either secret (and algorithm) or file"))),
        };
        named.insert(name, key);
    }
    Ok(named)
}

/// The `[keys]` entry a key field names, or a positioned error listing those defined.
pub(crate) fn key_named(
    named: &BTreeMap<String, crate::config::keys::Key>,
    k: &Spanned<String>,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<crate::config::keys::Key, FileError> {
    named.get(k.get_ref()).cloned().ok_or_else(|| {
        let known = named.keys().cloned().collect::<Vec<_>>().join(", ");
        let known =
            if known.is_empty() { "no keys are defined; add [keys.NAME]".into() } else { format!("defined: {known}") };
        err(k.span(), format!("no key named {:?} ({known})", k.get_ref()))
    })
}

fn transfer_of(
    named: &BTreeMap<String, crate::config::keys::Key>,
    t: TransferSpec,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Transfer, FileError> {
    let key_ref = |k: &Option<Spanned<String>>| -> Result<Option<crate::config::keys::Key>, FileError> {
        k.as_ref().map(|k| key_named(named, k, err)).transpose()
    };
    let allows = |list: Vec<Spanned<AllowSpec>>| -> Result<Vec<Allow>, FileError> {
        list.into_iter()
            .map(|a| {
                let span = a.span();
                let a = a.into_inner();
                let from = match &a.from {
                    None => None,
                    Some(f) => Some(
                        f.get_ref()
                            .parse::<ipnet::IpNet>()
                            .or_else(|_| f.get_ref().parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| {
                                err(f.span(), format!("transfer allow: {:?} is not an address or prefix", f.get_ref()))
                            })?,
                    ),
                };
                let key = key_ref(&a.key)?;
                if from.is_none() && key.is_none() {
                    return Err(err(span, "transfer allow: give from (an address prefix), key, or both".into()));
                }
                Ok(Allow { from, key })
            })
            .collect()
    };
    let notifies = |list: Vec<Spanned<NotifyTargetSpec>>| -> Result<Vec<NotifyTarget>, FileError> {
        list.into_iter()
            .map(|n| {
                let n = n.into_inner();
                let to =
                    n.to.get_ref()
                        .parse::<SocketAddr>()
                        .or_else(|_| n.to.get_ref().parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)));
                let to = to.map_err(|_| {
                    err(n.to.span(), format!("transfer notify: {:?} is not ADDRESS or ADDRESS:PORT", n.to.get_ref()))
                })?;
                if to.ip().is_unspecified() || to.ip().is_multicast() || to.port() == 0 {
                    return Err(err(
                        n.to.span(),
                        format!(
                            "transfer notify: {to} is no secondary's address (an address of one host, port 1..=65535)"
                        ),
                    ));
                }
                Ok(NotifyTarget { to, key: key_ref(&n.key)? })
            })
            .collect()
    };
    let default = ZoneTransfer { allow: allows(t.allow)?, notify: notifies(t.notify)? };
    let mut zones = std::collections::HashMap::new();
    for (zone, z) in t.zone {
        let span = z.span();
        let z = z.into_inner();
        let apex = Name::parse(&format!("{}.", zone.trim_end_matches('.')), None)
            .map_err(|e| err(span.clone(), format!("transfer zone {zone:?}: {e}")))?;
        let zt = ZoneTransfer {
            allow: match z.allow {
                Some(a) => allows(a)?,
                None => default.allow.clone(),
            },
            notify: match z.notify {
                Some(n) => notifies(n)?,
                None => default.notify.clone(),
            },
        };
        if zones.insert(apex.key(), zt).is_some() {
            return Err(err(
                span,
                format!("transfer zone {zone:?} is given twice (zone names ignore case and the final dot)"),
            ));
        }
    }
    let notify_source = match &t.notify_source {
        None => None,
        Some(s) => Some(
            s.get_ref()
                .parse::<SocketAddr>()
                .or_else(|_| s.get_ref().parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
                .map_err(|_| {
                    err(s.span(), format!("transfer notify_source: {:?} is not ADDRESS or ADDRESS:PORT", s.get_ref()))
                })?,
        ),
    };
    // NOTIFYs to targets of notify_source's family leave from it (others from what the system
    // picks): one that no target shares would be ignored, silently.
    if let (Some(src), Some(spec)) = (notify_source, &t.notify_source) {
        let targets: Vec<&NotifyTarget> =
            default.notify.iter().chain(zones.values().flat_map(|z| z.notify.iter())).collect();
        if !targets.is_empty() && !targets.iter().any(|n| n.to.is_ipv4() == src.is_ipv4()) {
            return Err(err(
                spec.span(),
                format!(
                    "transfer notify_source {src}: no notify target is of its address family ({} is not), \
                     so it would never be used",
                    targets[0].to
                ),
            ));
        }
    }
    Ok(Transfer {
        keys: named.values().cloned().collect(),
        default,
        zones,
        notify_source,
        also_notify_ns: t.also_notify_ns.unwrap_or(false),
    })
}

/// A duration field: its default when absent, or a positioned error when it does not parse.
pub(crate) fn duration_field(
    v: Option<&Spanned<String>>,
    default: Duration,
    what: &str,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Duration, FileError> {
    match v {
        None => Ok(default),
        Some(v) => parse_duration(v.get_ref()).map_err(|m| err(v.span(), format!("{what}: {m}"))),
    }
}

/// A duration key that must lie in `range`: zero and absurd values are errors naming the range.
pub(crate) fn ranged_duration(
    v: Option<&Spanned<String>>,
    default: Duration,
    range: std::ops::RangeInclusive<Duration>,
    what: &str,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Duration, FileError> {
    let d = duration_field(v, default, what, err)?;
    if !range.contains(&d) {
        let span = v.map_or(0..0, Spanned::span);
        let (lo, hi) = (humantime::format_duration(*range.start()), humantime::format_duration(*range.end()));
        return Err(err(span, format!("{what} must be {lo} to {hi}, got {}", humantime::format_duration(d))));
    }
    Ok(d)
}

/// A count key that must lie in `range`.
fn ranged_count<T: Copy + PartialOrd + std::fmt::Display>(
    v: Option<&Spanned<T>>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    what: &str,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<T, FileError> {
    match v {
        Some(v) if !range.contains(v.get_ref()) => {
            Err(err(v.span(), format!("{what} must be {}..={}, got {}", range.start(), range.end(), v.get_ref())))
        }
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    }
}

/// Checks a log filter (`log.level`, `WEICHE_LOG`): a level, or `target=level` directives
/// separated by commas. Levels and targets are ASCII letters, digits, `_`, `:`, `-` and `.`.
/// Span and field filters (`[...]`, `{...}`) are refused: their values are regular
/// expressions, and one a few hundred bytes long made tracing-subscriber take 2 GiB and
/// minutes to build (found by fuzzing). tracing-subscriber's parser also panicked on text of
/// several-byte characters (found by fuzzing): such text never reaches it.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    let level = |l: &str| ["off", "error", "warn", "info", "debug", "trace"].iter().any(|n| n.eq_ignore_ascii_case(l));
    let target = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "_:-.".contains(c));
    // A word alone is a level: tracing-subscriber would take `warning` for a target name and
    // log nothing at all.
    let directive = |d: &str| match d.trim().split_once('=') {
        Some((t, l)) => target(t.trim()) && level(l.trim()),
        None => level(d.trim()),
    };
    if filter.trim().is_empty()
        || filter.len() > 1024
        || !filter.split(',').all(directive)
        || tracing_subscriber::EnvFilter::try_new(filter).is_err()
    {
        return Err("is not a level or filter: off, error, warn, info, debug or trace, or target=level \
             directives separated by commas (e.g. \"info,weiche::monitor=debug\"; span and field filters \
             are not taken)"
            .into());
    }
    Ok(())
}

/// A size like `512MiB`, `1GiB`, `64KiB` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" | "k" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => return Err(format!("{s:?} is not a size; write it like 512MiB, 2GiB or 65536")),
    };
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a size; write it like 512MiB, 2GiB or 65536"))?;
    n.checked_mul(scale).ok_or_else(|| format!("{s:?} is too large"))
}

// ---------------------------------------------------------------------------------------------
// weiche.toml

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    #[serde(default)]
    server: ServerSpec,
    #[serde(default)]
    log: LogSpec,
    #[serde(default)]
    api: ApiSpec,
    #[serde(default)]
    notify: NotifySpec,
    #[serde(default)]
    keys: BTreeMap<String, Spanned<KeySpec>>,
    #[serde(default)]
    transfer: TransferSpec,
    cluster: Option<Spanned<cluster::ClusterSpec>>,
    #[serde(default)]
    rrl: RrlSpec,
    #[serde(default)]
    dnssec: DnssecSpec,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DnssecSpec {
    keys: Option<Spanned<String>>,
    zones: Option<Spanned<Vec<String>>>,
    validity: Option<Spanned<String>>,
}

/// `[dnssec]`: which zones weiche signs, with keys from which directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnssec {
    /// Where the zones' keys are, in BIND's files (`weiche keygen` writes them).
    pub key_dir: PathBuf,
    pub zones: Vec<Name>,
    /// How long a signature is valid; it is made again halfway through.
    pub validity: Duration,
}

impl Dnssec {
    pub fn signs(&self, apex: &Name) -> bool {
        self.zones.iter().any(|z| z.key() == apex.key())
    }
}

fn dnssec_of(
    d: DnssecSpec,
    base: &Path,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Option<Dnssec>, FileError> {
    let Some(zones_spec) = d.zones else {
        if let Some(k) = d.keys.as_ref().or(d.validity.as_ref()) {
            return Err(err(k.span(), "dnssec: name the zones to sign: zones = [\"example.com\"]".into()));
        }
        return Ok(None);
    };
    let mut zones = Vec::new();
    for z in zones_spec.get_ref() {
        let name = Name::parse(z, Some(&Name::root()))
            .map_err(|e| err(zones_spec.span(), format!("dnssec zones: {z:?} is not a zone name: {e}")))?;
        zones.push(name);
    }
    let Some(keys) = d.keys else {
        return Err(err(
            zones_spec.span(),
            "dnssec: give the key directory: keys = \"/var/lib/weiche/keys\" (weiche keygen ZONE --dir DIR makes keys)"
                .into(),
        ));
    };
    let validity = ranged_duration(
        d.validity.as_ref(),
        Duration::from_secs(14 * 86400),
        Duration::from_secs(86400)..=Duration::from_secs(366 * 86400),
        "dnssec validity",
        err,
    )?;
    Ok(Some(Dnssec { key_dir: base.join(keys.get_ref()), zones, validity }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    algorithm: Option<String>,
    secret: Option<String>,
    /// A BIND-style key file (`key "name" { algorithm …; secret "…"; };`).
    file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TransferSpec {
    #[serde(default)]
    allow: Vec<Spanned<AllowSpec>>,
    #[serde(default)]
    notify: Vec<Spanned<NotifyTargetSpec>>,
    notify_source: Option<Spanned<String>>,
    also_notify_ns: Option<bool>,
    #[serde(default)]
    zone: BTreeMap<String, Spanned<ZoneTransferSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSpec {
    from: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyTargetSpec {
    to: Spanned<String>,
    key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneTransferSpec {
    allow: Option<Vec<Spanned<AllowSpec>>>,
    notify: Option<Vec<Spanned<NotifyTargetSpec>>>,
}

/// Who may transfer a zone: a request matches a rule when it comes from the prefix (if given)
/// and is signed with the key (if given).
#[derive(Debug, Clone)]
pub struct Allow {
    pub from: Option<ipnet::IpNet>,
    pub key: Option<crate::config::keys::Key>,
}

impl Allow {
    pub fn matches(&self, from: std::net::IpAddr, key: Option<&crate::config::keys::Key>) -> bool {
        self.from.is_none_or(|n| n.contains(&from))
            && self.key.as_ref().is_none_or(|k| key.is_some_and(|s| s.name.key() == k.name.key()))
    }
}

#[derive(Debug, Clone)]
pub struct NotifyTarget {
    pub to: SocketAddr,
    pub key: Option<crate::config::keys::Key>,
}

/// Transfer and NOTIFY settings of one zone.
#[derive(Debug, Clone, Default)]
pub struct ZoneTransfer {
    pub allow: Vec<Allow>,
    pub notify: Vec<NotifyTarget>,
}

#[derive(Debug, Clone, Default)]
pub struct Transfer {
    pub keys: Vec<crate::config::keys::Key>,
    /// For zones without their own settings.
    pub default: ZoneTransfer,
    /// Per zone, by the apex's lookup key.
    pub zones: std::collections::HashMap<Box<[u8]>, ZoneTransfer>,
    /// Where NOTIFY is sent from (address, port 0 = any).
    pub notify_source: Option<SocketAddr>,
    /// Also NOTIFY the addresses of each zone's NS targets found in the zone.
    pub also_notify_ns: bool,
}

/// Transfer settings as the server reads them: swapped whole when weiche.toml is reloaded.
pub type SharedTransfer = Arc<arc_swap::ArcSwap<Transfer>>;

impl Transfer {
    /// These settings, ready to be swapped by a reload.
    pub fn shared(self) -> SharedTransfer {
        Arc::new(arc_swap::ArcSwap::from_pointee(self))
    }

    pub fn for_zone(&self, apex: &Name) -> &ZoneTransfer {
        self.zones.get(&apex.key()).unwrap_or(&self.default)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NotifySpec {
    #[serde(default)]
    webhook: Vec<Spanned<WebhookSpec>>,
    #[serde(default)]
    command: Vec<Spanned<CommandSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpec {
    url: Spanned<String>,
    format: Option<WebhookFormat>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandSpec {
    run: Spanned<Vec<String>>,
    timeout: Option<Spanned<String>>,
}

/// What a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON (documented in the README).
    #[default]
    Json,
    /// `{"text": "..."}`, for Slack and Mattermost incoming webhooks.
    Slack,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
    pub timeout: Duration,
    /// Further tries after the first fails.
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub struct NotifyCommand {
    /// Program and arguments; the event is written to its standard input as JSON.
    pub argv: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiSpec {
    /// ADDRESS:PORT, or "off".
    listen: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSpec {
    listen: Option<Vec<Spanned<String>>>,
    zones: Option<Spanned<String>>,
    udp_payload: Option<Spanned<u16>>,
    tcp_idle_timeout: Option<Spanned<String>>,
    tcp_max_connections: Option<Spanned<usize>>,
    tcp_max_connections_per_client: Option<Spanned<usize>>,
    udp_workers: Option<Spanned<usize>>,
    xdp: Option<Spanned<String>>,
    reload_interval: Option<Spanned<String>>,
    state_dir: Option<String>,
    zone_file_limit: Option<Spanned<String>>,
    events_keep: Option<Spanned<SizeSpec>>,
    probe_source: Option<Spanned<String>>,
}

/// A size: a number of MiB (`64`) or a size with its unit (`"512KiB"`, `"2GiB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    MiB(i64),
    Text(String),
}

/// How much of the event journal `state_dir` keeps unless configured.
pub const DEFAULT_EVENTS_KEEP: u64 = 64 << 20;

/// `events_keep`: in range, in bytes.
/// The largest `events_keep`.
pub const MAX_EVENTS_KEEP: u64 = 64 << 30;

fn events_keep_of(
    v: Option<&Spanned<SizeSpec>>,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<u64, FileError> {
    let Some(v) = v else { return Ok(DEFAULT_EVENTS_KEEP) };
    let range = 64u64 << 10..=MAX_EVENTS_KEEP;
    let bytes = match v.get_ref() {
        SizeSpec::MiB(n) => u64::try_from(*n).ok().and_then(|n| n.checked_mul(1 << 20)),
        SizeSpec::Text(t) => Some(parse_size(t).map_err(|m| err(v.span(), format!("events_keep: {m}")))?),
    };
    match bytes {
        Some(b) if range.contains(&b) => Ok(b),
        _ => {
            let got = match v.get_ref() {
                SizeSpec::MiB(n) => format!("{n} (MiB)"),
                SizeSpec::Text(t) => format!("{t:?}"),
            };
            Err(err(v.span(), format!("events_keep must be 64KiB to 64GiB (a plain number is MiB), got {got}")))
        }
    }
}

/// `[rrl]`: numbers are read as i64 so that a value out of range gets our message, with its
/// position, rather than serde's.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RrlSpec {
    responses_per_second: Option<Spanned<i64>>,
    nxdomains_per_second: Option<Spanned<i64>>,
    errors_per_second: Option<Spanned<i64>>,
    slip: Option<Spanned<i64>>,
    window: Option<Spanned<String>>,
    ipv4_prefix: Option<Spanned<i64>>,
    ipv6_prefix: Option<Spanned<i64>>,
    table_size: Option<Spanned<i64>>,
}

/// Response rate limiting for UDP (`dns::rrl`): validated `[rrl]`. Off while every rate is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rrl {
    /// Answers, NODATA and referrals a second, per client prefix and name (0: not limited).
    pub responses_per_second: u32,
    /// NXDOMAIN responses a second, per client prefix and zone (0: not limited).
    pub nxdomains_per_second: u32,
    /// Error responses (REFUSED, FORMERR, ...) a second, per client prefix (0: not limited).
    pub errors_per_second: u32,
    /// Every `slip`th limited response goes out empty with TC set (0: all are dropped).
    pub slip: u8,
    /// Seconds over which a client's excess is remembered (the most debt it can run up).
    pub window: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Accounts in the table (a power of two).
    pub table_size: usize,
}

impl Default for Rrl {
    fn default() -> Rrl {
        Rrl {
            responses_per_second: 0,
            nxdomains_per_second: 0,
            errors_per_second: 0,
            slip: 2,
            window: 15,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            table_size: 1 << 16,
        }
    }
}

impl Rrl {
    /// Whether any kind of response is limited.
    pub fn is_on(&self) -> bool {
        self.responses_per_second > 0 || self.nxdomains_per_second > 0 || self.errors_per_second > 0
    }
}

/// The largest rate `[rrl]` takes: far above any one client's fair share, and small enough that
/// a window's debt stays countable.
pub const RRL_MAX_RATE: i64 = 1_000_000;

fn rrl_of(r: RrlSpec, err: &impl Fn(std::ops::Range<usize>, String) -> FileError) -> Result<Rrl, FileError> {
    let d = Rrl::default();
    let responses =
        ranged_count(r.responses_per_second.as_ref(), 0, 0..=RRL_MAX_RATE, "rrl.responses_per_second", err)?;
    // As in BIND, the other kinds follow the responses' rate unless given.
    let nxdomains =
        ranged_count(r.nxdomains_per_second.as_ref(), responses, 0..=RRL_MAX_RATE, "rrl.nxdomains_per_second", err)?;
    let errors = ranged_count(r.errors_per_second.as_ref(), responses, 0..=RRL_MAX_RATE, "rrl.errors_per_second", err)?;
    let window = match &r.window {
        None => d.window,
        Some(w) => {
            let bad = |m: String| err(w.span(), format!("rrl.window: {m}"));
            let t = parse_duration(w.get_ref()).map_err(bad)?;
            if t.subsec_nanos() != 0 || !(1..=3600).contains(&t.as_secs()) {
                return Err(bad(format!("must be whole seconds from 1s to 1h, got {:?}", w.get_ref())));
            }
            t.as_secs() as u32
        }
    };
    let table_size = ranged_count(r.table_size.as_ref(), d.table_size as i64, 1024..=1 << 24, "rrl.table_size", err)?;
    Ok(Rrl {
        responses_per_second: responses as u32,
        nxdomains_per_second: nxdomains as u32,
        errors_per_second: errors as u32,
        slip: ranged_count(r.slip.as_ref(), d.slip.into(), 0..=10, "rrl.slip", err)? as u8,
        window,
        ipv4_prefix: ranged_count(r.ipv4_prefix.as_ref(), d.ipv4_prefix.into(), 0..=32, "rrl.ipv4_prefix", err)? as u8,
        ipv6_prefix: ranged_count(r.ipv6_prefix.as_ref(), d.ipv6_prefix.into(), 0..=128, "rrl.ipv6_prefix", err)? as u8,
        table_size: (table_size as usize).next_power_of_two(),
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogSpec {
    format: Option<LogFormat>,
    level: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (None: the built-in defaults).
    pub file: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub zones_dir: PathBuf,
    /// Largest UDP response we send to an EDNS client (RFC 9715 / DNS flag day 2020: 1232).
    pub udp_payload: u16,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    /// TCP connections one client address may hold (at most `tcp_max_connections`).
    pub tcp_max_connections_per_client: usize,
    /// UDP receive threads per listen address (0: one per CPU).
    pub udp_workers: usize,
    /// Network interface whose IPv4 UDP queries are answered through AF_XDP (None: sockets only).
    pub xdp: Option<String>,
    /// How often the zones directory is looked at for changes.
    pub reload_interval: Duration,
    /// The most bytes one zone file (or include) may have.
    pub zone_file_limit: u64,
    /// The address health probes are sent from (None: the system picks). Probes of the other
    /// address family, and of `galera` and `mysql` checks, are sent as the system picks.
    pub probe_source: Option<std::net::IpAddr>,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Settings the command line gave (`serve --listen`, `--api`, `--xdp`, `--log-format`),
    /// by their names in weiche.toml: a reload of the file does not name them as changed.
    pub from_command_line: Vec<&'static str>,
    /// The HTTP API's address (None: no API).
    pub api_listen: Option<SocketAddr>,
    /// Bearer token the API requires (read from `api.token_file`).
    pub api_token: Option<String>,
    /// Where operator decisions (drains, failback holds) and the event journal are kept
    /// (None: not kept).
    pub state_dir: Option<PathBuf>,
    /// The most bytes the event journal in `state_dir` keeps (the oldest events go first).
    pub events_keep: u64,
    pub webhooks: Vec<Webhook>,
    pub commands: Vec<NotifyCommand>,
    pub transfer: Transfer,
    /// `[cluster]`, if configured.
    pub cluster: Option<cluster::Cluster>,
    pub rrl: Rrl,
    /// `[dnssec]`, if any zone is signed.
    pub dnssec: Option<Dnssec>,
}

/// TCP connections one client may hold unless configured (or the total, if that is smaller).
pub const DEFAULT_TCP_PER_CLIENT: usize = 64;

pub const DEFAULT_API: &str = "127.0.0.1:8053";

/// The default of `zone_file_limit`: far above a 10-million-record zone, far below memory.
pub const DEFAULT_ZONE_FILE_LIMIT: u64 = 1 << 30;

/// Parses an API address: ADDRESS:PORT, or "off" for none.
pub fn parse_api_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| format!("{s:?} is not ADDRESS:PORT or \"off\""))
}

impl Config {
    /// What only this host can say of the settings: `probe_source` is one of its addresses,
    /// the `xdp` interface is there, `state_dir` is not a file. `check` and `serve` both ask,
    /// so that `check` passes what `serve` starts with.
    pub fn host_problems(&self) -> Result<(), String> {
        let file = self.file.as_ref().map_or("<built-in configuration>".into(), |f| f.display().to_string());
        if let Some(ip) = self.probe_source
            && let Err(e) = std::net::UdpSocket::bind((ip, 0))
        {
            return Err(format!(
                "{file}: probe_source {ip} is not an address of this host ({e}); every probe would fail"
            ));
        }
        if let Some(i) = &self.xdp {
            let c = std::ffi::CString::new(i.as_str()).map_err(|_| format!("{file}: xdp: {i:?} holds a NUL"))?;
            // SAFETY: a valid NUL-terminated name.
            if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
                return Err(format!("{file}: xdp: this host has no network interface {i:?}"));
            }
        }
        if let Some(d) = &self.state_dir
            && d.exists()
            && !d.is_dir()
        {
            return Err(format!("{file}: state_dir {} is not a directory", d.display()));
        }
        Ok(())
    }
}

/// The API listens beyond loopback only with a token, however its address was given (`source`:
/// `api.listen`, `--api`, ...): whoever reaches it could read the status and drain every server.
pub fn check_api_access(listen: SocketAddr, token: Option<&str>, source: &str) -> Result<(), String> {
    if listen.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    Err(format!("{source} {listen} is beyond loopback: set api.token_file too (a file holding a bearer token)"))
}

impl Config {
    /// Reads `path`, or the built-in defaults when None.
    pub fn load(path: Option<&Path>) -> Result<Config, FileError> {
        let text = match path {
            Some(p) => bounded::read_text(p, bounded::CONFIG_LIMIT, "a configuration file")
                .map_err(|e| FileError::new(&Arc::from(p), 0, 0, format!("cannot read the configuration: {e}")))?,
            None => BUILTIN.to_string(),
        };
        Config::from_text(path, &text)
    }

    /// [`Config::load`] of `text`, read from `path` (None: the built-in configuration). Files
    /// it names (keys, the API token) are read relative to `path`.
    pub fn from_text(path: Option<&Path>, text: &str) -> Result<Config, FileError> {
        let file: Arc<Path> = path.map_or_else(|| Path::new("<built-in configuration>").into(), Arc::from);
        let spec: ConfigSpec = toml::from_str(text).map_err(|e| toml_error(&file, text, &e))?;
        let base = path.and_then(Path::parent).unwrap_or(Path::new(""));
        let err = |span: std::ops::Range<usize>, msg: String| span_error(&file, text, span, msg);
        let s = spec.server;
        let mut listen = Vec::new();
        for l in s.listen.unwrap_or_default() {
            let addr = l.get_ref().parse::<SocketAddr>().map_err(|_| {
                err(
                    l.span(),
                    format!("listen: {:?} is not ADDRESS:PORT (e.g. 127.0.0.1:1053 or [::1]:53)", l.get_ref()),
                )
            })?;
            if listen.contains(&addr) {
                return Err(err(l.span(), format!("listen: {addr} is listed twice")));
            }
            listen.push(addr);
        }
        if listen.is_empty() {
            listen.push("127.0.0.1:1053".parse().unwrap());
        }
        let xdp = match s.xdp {
            // What Linux takes as an interface name (IFNAMSIZ - 1 bytes, no '/' or white space).
            Some(i)
                if i.get_ref().is_empty()
                    || i.get_ref().len() > 15
                    || i.get_ref().contains(|c: char| c == '/' || c.is_whitespace()) =>
            {
                return Err(err(
                    i.span(),
                    format!("xdp: {:?} is not a network interface name (e.g. \"eth0\")", i.get_ref()),
                ));
            }
            i => i.map(Spanned::into_inner),
        };
        let udp_payload = match s.udp_payload {
            Some(v) if !(512..=4096).contains(v.get_ref()) => {
                return Err(err(v.span(), format!("udp_payload must be 512..=4096, got {}", v.get_ref())));
            }
            Some(v) => v.into_inner(),
            None => DEFAULT_UDP_PAYLOAD,
        };
        let tcp_max_connections =
            ranged_count(s.tcp_max_connections.as_ref(), 512, 1..=1_000_000, "tcp_max_connections", &err)?;
        let udp_workers = ranged_count(s.udp_workers.as_ref(), 0, 0..=256, "udp_workers (0: one per CPU)", &err)?;
        let secs = Duration::from_secs;
        let tcp_idle_timeout = ranged_duration(
            s.tcp_idle_timeout.as_ref(),
            secs(10),
            Duration::from_millis(100)..=secs(3600),
            "tcp_idle_timeout",
            &err,
        )?;
        let reload_interval = ranged_duration(
            s.reload_interval.as_ref(),
            Duration::from_millis(500),
            Duration::from_millis(100)..=secs(3600),
            "reload_interval",
            &err,
        )?;
        let probe_source = match &s.probe_source {
            Some(v) => Some(
                v.get_ref()
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| err(v.span(), format!("probe_source: {:?} is not an IP address", v.get_ref())))?,
            ),
            None => None,
        };
        let zone_file_limit = match &s.zone_file_limit {
            None => DEFAULT_ZONE_FILE_LIMIT,
            Some(v) => match parse_size(v.get_ref()) {
                Ok(n) if (1 << 10..=1 << 40).contains(&n) => n,
                Ok(n) => return Err(err(v.span(), format!("zone_file_limit must be 1KiB to 1024GiB, got {n} bytes"))),
                Err(m) => return Err(err(v.span(), format!("zone_file_limit: {m}"))),
            },
        };
        let tcp_max_connections_per_client = match s.tcp_max_connections_per_client {
            Some(v) if !(1..=tcp_max_connections).contains(v.get_ref()) => {
                return Err(err(
                    v.span(),
                    format!(
                        "tcp_max_connections_per_client must be 1..={tcp_max_connections} (tcp_max_connections), got {}",
                        v.get_ref()
                    ),
                ));
            }
            Some(v) => v.into_inner(),
            None => DEFAULT_TCP_PER_CLIENT.min(tcp_max_connections),
        };
        let events_keep = events_keep_of(s.events_keep.as_ref(), &err)?;
        let log_level = match &spec.log.level {
            None => "info".to_string(),
            Some(l) => {
                let level = l.get_ref().trim().to_string();
                check_log_filter(&level).map_err(|e| err(l.span(), format!("log.level {level:?} {e}")))?;
                level
            }
        };
        let api_listen = match &spec.api.listen {
            None => parse_api_listen(DEFAULT_API).expect("valid default"),
            Some(l) => parse_api_listen(l.get_ref()).map_err(|m| err(l.span(), format!("api.listen: {m}")))?,
        };
        if let Some(a) = api_listen.filter(|a| listen.contains(a)) {
            let span = spec.api.listen.as_ref().map_or(0..0, Spanned::span);
            return Err(err(span, format!("api.listen: {a} is a DNS listen address too; give the API its own port")));
        }
        let api_token = match &spec.api.token_file {
            None => None,
            Some(f) => {
                let path = base.join(f.get_ref());
                let token = bounded::read_text(&path, bounded::SECRET_LIMIT, "a token file")
                    .map_err(|e| err(f.span(), format!("api.token_file: cannot read {}: {e}", path.display())))?
                    .trim()
                    .to_string();
                if token.len() < 16 {
                    return Err(err(
                        f.span(),
                        format!("api.token_file: the token in {} is shorter than 16 characters", path.display()),
                    ));
                }
                Some(token)
            }
        };
        if let Some(a) = api_listen
            && let Err(m) = check_api_access(a, api_token.as_deref(), "api.listen")
        {
            return Err(err(spec.api.listen.as_ref().map_or(0..0, Spanned::span), m));
        }
        let mut webhooks = Vec::new();
        for w in spec.notify.webhook {
            let w = w.into_inner();
            let url = w.url.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(url).is_err() {
                return Err(err(w.url.span(), format!("notify.webhook url {url:?} is not an http:// or https:// URL")));
            }
            webhooks.push(Webhook {
                url: url.clone(),
                format: w.format.unwrap_or_default(),
                timeout: ranged_duration(
                    w.timeout.as_ref(),
                    Duration::from_secs(5),
                    Duration::from_millis(100)..=Duration::from_secs(300),
                    "notify.webhook timeout",
                    &err,
                )?,
                retries: ranged_count(w.retries.as_ref(), 3, 0..=10, "notify.webhook retries", &err)?,
            });
        }
        let mut commands = Vec::new();
        for c in spec.notify.command {
            let c = c.into_inner();
            if c.run.get_ref().is_empty() {
                return Err(err(
                    c.run.span(),
                    "notify.command run needs a program: run = [\"/path/to/program\", \"arg\"]".into(),
                ));
            }
            commands.push(NotifyCommand {
                argv: c.run.into_inner(),
                timeout: ranged_duration(
                    c.timeout.as_ref(),
                    Duration::from_secs(10),
                    Duration::from_millis(100)..=Duration::from_secs(3600),
                    "notify.command timeout",
                    &err,
                )?,
            });
        }
        let keys = keys_of(spec.keys, base, &err)?;
        let transfer = transfer_of(&keys, spec.transfer, &err)?;
        let zones_dir = match &s.zones {
            None => base.join("zones"),
            Some(z) if z.get_ref().trim().is_empty() => {
                return Err(err(z.span(), "zones: give the directory of zone files (e.g. \"zones\")".into()));
            }
            Some(z) => base.join(z.get_ref()),
        };
        let cluster_span = spec.cluster.as_ref().map_or(0..0, Spanned::span);
        let cluster = spec.cluster.map(|c| cluster::cluster_of(c, &keys, &err)).transpose()?;
        if let Some(c) = cluster.as_ref().filter(|c| listen.contains(&c.listen)) {
            return Err(err(
                cluster_span,
                format!(
                    "cluster: this member receives peers at {}, a DNS listen address too; give it its own port",
                    c.listen
                ),
            ));
        }
        let rrl = rrl_of(spec.rrl, &err)?;
        let dnssec = dnssec_of(spec.dnssec, base, &err)?;
        Ok(Config {
            dnssec,
            cluster,
            transfer,
            rrl,
            webhooks,
            commands,
            api_listen,
            api_token,
            state_dir: s.state_dir.as_ref().map(|d| base.join(d)),
            events_keep,
            file: path.map(Path::to_path_buf),
            listen,
            zones_dir,
            udp_payload,
            tcp_idle_timeout,
            tcp_max_connections,
            tcp_max_connections_per_client,
            udp_workers,
            xdp,
            reload_interval,
            zone_file_limit,
            probe_source,
            log_format: spec.log.format.unwrap_or_default(),
            log_level,
            from_command_line: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::position::locate;

    /// Found by fuzzing: a level with leading space and a character of several bytes made
    /// tracing-subscriber's filter parser panic; it is an error with the allowed values.
    #[test]
    fn a_log_level_that_is_no_filter_is_an_error_not_a_panic() {
        for level in [" \u{386a}=,+0o", "inf\u{f6}", "\u{3000}d\u{e9}bug"] {
            let e = Config::from_text(None, &format!("[log]\nlevel = \"{level}\"\n")).unwrap_err().to_string();
            assert!(e.contains("is not a level or filter"), "{level:?}: {e}");
        }
        // A word that is no level would be taken for a target name, and nothing would be logged.
        for level in ["warning", "", " ", "info,5", "weiche=loud", "=debug", "info,,debug"] {
            let e = Config::from_text(None, &format!("[log]\nlevel = \"{level}\"\n")).unwrap_err().to_string();
            assert!(e.contains(":2:9: log.level") && e.contains("is not a level or filter"), "{level:?}: {e}");
        }
        let c = Config::from_text(None, "[log]\nlevel = \" debug \"\n").unwrap();
        assert_eq!(c.log_level, "debug");
        let c = Config::from_text(None, "[log]\nlevel = \"WARN,hyper=off\"\n").unwrap();
        assert_eq!(c.log_level, "WARN,hyper=off");
        let c = Config::from_text(None, "[log]\nlevel = \"warn,weiche::monitor=debug\"\n").unwrap();
        assert_eq!(c.log_level, "warn,weiche::monitor=debug");
    }

    /// Found by fuzzing: a log.level with a field filter, whose value tracing-subscriber builds
    /// into an automaton, took 2 GiB (and another minutes) for a few hundred bytes of config.
    /// Span and field filters are refused before they reach it, at once.
    #[test]
    fn a_log_level_with_a_field_filter_is_an_error_not_gigabytes() {
        for input in [
            &include_bytes!("../../fuzz/regressions/config/oom-log-level-regex")[..],
            &include_bytes!("../../fuzz/regressions/config/slow-log-level-regex")[..],
        ] {
            let text = String::from_utf8_lossy(input);
            let started = std::time::Instant::now();
            let e = Config::from_text(None, &text).unwrap_err().to_string();
            assert!(e.contains("span and field filters are not taken"), "{e}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
        for level in ["info,weiche[probe]=debug", "weiche[{addr=192.0.2.1}]=trace", "info,weiche=debug{"] {
            let e = Config::from_text(None, &format!("[log]\nlevel = \"{level}\"\n")).unwrap_err().to_string();
            assert!(e.contains("is not a level or filter"), "{level}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("0").is_err(), "a bare number, even zero");
        assert_eq!(parse_duration(" 1min ").map_err(|_| ()), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2x"), Err("\"2x\" is not a duration; write it like 500ms, 2s, 1m or 1h".into()));
        assert_eq!(parse_duration("366d"), Ok(LONGEST_DURATION));
        assert_eq!(
            parse_duration("400000000000years"),
            Err("\"400000000000years\" is longer than any setting takes (at most 366d)".into())
        );
        assert!(parse_any_duration("2years").is_ok(), "history may reach further back");
    }

    #[test]
    fn locate_lines_and_columns() {
        assert_eq!(locate("ab\ncd", 0), (1, 1));
        assert_eq!(locate("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn builtin_config() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:1053".parse().unwrap()]);
        assert_eq!(c.zones_dir, PathBuf::from("zones"));
        assert_eq!(c.udp_payload, 1232);
        assert_eq!(c.tcp_idle_timeout, Duration::from_secs(10));
    }

    #[test]
    fn config_errors_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("weiche.toml");
        std::fs::write(&p, "[server]\nlisten = [\"127.0.0.1:1053\"]\nlistne = 1\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("weiche.toml:3:1: unknown field `listne`"), "{e}");
        std::fs::write(&p, "[server]\nlisten = [\"127.0.0.1\"]\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("weiche.toml:2:11: listen:"), "{e}");
        std::fs::write(&p, "[server]\nzones = \"z\"\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().zones_dir, dir.path().join("z"));
        std::fs::write(&p, "[server]\nxdp = \"eth 0\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("weiche.toml:2:7: xdp: \"eth 0\" is not a network interface name"), "{e}");
        std::fs::write(&p, "[server]\nxdp = \"eth0\"\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().xdp.as_deref(), Some("eth0"));
    }

    /// Zero, absurd and malformed values are errors that name the allowed range.
    #[test]
    fn absurd_values_are_errors_with_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("weiche.toml");
        for (text, want) in [
            ("[server]\nreload_interval = \"0s\"\n", "2:19: reload_interval must be 100ms to 1h, got 0s"),
            ("[server]\ntcp_idle_timeout = \"0s\"\n", "2:20: tcp_idle_timeout must be 100ms to 1h, got 0s"),
            ("[server]\ntcp_idle_timeout = \"2h\"\n", "2:20: tcp_idle_timeout must be 100ms to 1h, got 2h"),
            ("[server]\nudp_workers = 100000\n", "2:15: udp_workers (0: one per CPU) must be 0..=256, got 100000"),
            ("[server]\ntcp_max_connections = 0\n", "2:23: tcp_max_connections must be 1..=1000000, got 0"),
            ("[server]\nzone_file_limit = \"12\"\n", "2:19: zone_file_limit must be 1KiB to 1024GiB, got 12 bytes"),
            ("[server]\nzone_file_limit = \"lots\"\n", "2:19: zone_file_limit: \"lots\" is not a size"),
            (
                "[server]\nevents_keep = 0\n",
                "2:15: events_keep must be 64KiB to 64GiB (a plain number is MiB), got 0 (MiB)",
            ),
            (
                "[server]\nevents_keep = 70000\n",
                "2:15: events_keep must be 64KiB to 64GiB (a plain number is MiB), got 70000",
            ),
            (
                "[server]\nevents_keep = \"4KiB\"\n",
                "2:15: events_keep must be 64KiB to 64GiB (a plain number is MiB), got \"4KiB\"",
            ),
            ("[server]\nevents_keep = \"much\"\n", "2:15: events_keep: \"much\" is not a size"),
            ("[server]\nevents_keep = -1\n", "2:15: events_keep must be 64KiB to 64GiB"),
            (
                "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\nretries = 1000\n",
                "3:11: notify.webhook retries must be 0..=10, got 1000",
            ),
            (
                "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"0s\"\n",
                "3:11: notify.webhook timeout must be 100ms to 5m, got 0s",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains(&format!("weiche.toml:{want}")), "{text}\n{e}");
        }
        std::fs::write(&p, "[server]\nzone_file_limit = \"64MiB\"\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().zone_file_limit, 64 << 20);
        assert_eq!(Config::load(None).unwrap().events_keep, 64 << 20, "64 MiB unless configured");
        std::fs::write(&p, "[server]\nevents_keep = 8\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().events_keep, 8 << 20, "a number is MiB");
        std::fs::write(&p, "[server]\nevents_keep = \"256KiB\"\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().events_keep, 256 << 10);
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("65536"), Ok(65536));
    }

    /// Settings that each parse but cannot work together or at all: two sockets on one
    /// address, a NOTIFY to nobody, one name twice, an empty zones directory. Before, `check`
    /// said OK and `serve` failed at a bind or dropped one silently.
    #[test]
    fn clashing_and_empty_settings_are_errors() {
        let key = |n: &str| format!("[keys.{n}]\nsecret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\"\n");
        for (text, want) in [
            (
                "[server]\nlisten = [\"127.0.0.71:15353\", \"127.0.0.71:15353\"]\n".to_string(),
                "weiche.toml:2:31: listen: 127.0.0.71:15353 is listed twice",
            ),
            (
                "[server]\nlisten = [\"127.0.0.71:15353\"]\n[api]\nlisten = \"127.0.0.71:15353\"\n".to_string(),
                "weiche.toml:4:10: api.listen: 127.0.0.71:15353 is a DNS listen address too",
            ),
            (
                format!(
                    "[server]\nlisten = [\"127.0.0.71:8553\"]\n{}[cluster]\nmember = \"a\"\nkey = \"c\"\nmembers = [{{ name = \"a\", address = \"127.0.0.71:8553\" }}, {{ name = \"b\", address = \"127.0.0.72\" }}]\n",
                    key("c")
                ),
                "weiche.toml:5:1: cluster: this member receives peers at 127.0.0.71:8553, a DNS listen address too",
            ),
            (
                "[transfer]\nnotify = [{ to = \"127.0.0.1:0\" }]\n".to_string(),
                "weiche.toml:2:18: transfer notify: 127.0.0.1:0 is no secondary's address",
            ),
            ("[transfer]\nnotify = [{ to = \"0.0.0.0\" }]\n".to_string(), "weiche.toml:2:18: transfer notify: 0.0.0.0:53 is no"),
            (
                "[transfer.zone.\"example.com\"]\nallow = [{ from = \"127.0.0.1\" }]\n[transfer.zone.\"EXAMPLE.COM.\"]\nallow = [{ from = \"127.0.0.2\" }]\n".to_string(),
                "transfer zone \"example.com\" is given twice",
            ),
            (format!("{}{}", key("XFR"), key("xfr")), "weiche.toml:3:1: key \"xfr\" and key \"XFR\" are one name on the wire"),
            ("[server]\nzones = \"\"\n".to_string(), "weiche.toml:2:9: zones: give the directory of zone files"),
            (
                "[transfer]\nnotify = [{ to = \"192.0.2.1\" }]\nnotify_source = \"2001:db8::1\"\n".to_string(),
                "weiche.toml:3:17: transfer notify_source [2001:db8::1]:0: no notify target is of its address family",
            ),
            (
                format!(
                    "{}[cluster]\nmember = \"a\"\nkey = \"c\"\nmembers = [{{ name = \"a\", site = \"DC1\", address = \"127.0.0.71\" }}, {{ name = \"b\", site = \"dc1\", address = \"127.0.0.72\" }}, {{ name = \"c\", address = \"127.0.0.73\" }}]\n",
                    key("c")
                ),
                "cluster member \"b\": site \"dc1\" differs from member \"a\"'s site \"DC1\" only in case",
            ),
        ] {
            let e = load(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}\n{e}");
        }
    }

    /// What only the host can tell, asked by `check` and `serve` alike.
    #[test]
    fn host_problems_are_found_before_serving() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load("[server]\nprobe_source = \"127.0.0.1\"\n").unwrap().host_problems().is_ok());
        // Unless the host lets any address be bound (net.ipv4.ip_nonlocal_bind).
        if std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind").is_ok_and(|v| v.trim() == "0") {
            let e = load("[server]\nprobe_source = \"192.0.2.77\"\n").unwrap().host_problems().unwrap_err();
            assert!(e.contains("probe_source 192.0.2.77 is not an address of this host"), "{e}");
        }
        let e = load("[server]\nxdp = \"nosuch0\"\n").unwrap().host_problems().unwrap_err();
        assert!(e.contains("xdp: this host has no network interface \"nosuch0\""), "{e}");
        let file = dir.path().join("state");
        std::fs::write(&file, "").unwrap();
        let e = load(&format!("[server]\nstate_dir = \"{}\"\n", file.display())).unwrap().host_problems().unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
    }

    /// `text` loaded as a `weiche.toml` of its own.
    fn load(text: &str) -> Result<Config, FileError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("weiche.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p))
    }

    #[test]
    fn rrl_settings_and_their_ranges() {
        // Off by default.
        let off = Config::load(None).unwrap().rrl;
        assert!(!off.is_on());
        assert_eq!(off, Rrl::default());
        let r = load("[rrl]\nresponses_per_second = 5\n").unwrap().rrl;
        assert!(r.is_on());
        // The other kinds follow the responses' rate unless given.
        assert_eq!((r.responses_per_second, r.nxdomains_per_second, r.errors_per_second), (5, 5, 5));
        assert_eq!((r.slip, r.window, r.ipv4_prefix, r.ipv6_prefix, r.table_size), (2, 15, 24, 56, 65536));
        let r = load(
            "[rrl]\nresponses_per_second = 10\nnxdomains_per_second = 0\nerrors_per_second = 3\nslip = 0\n\
             window = \"1m\"\nipv4_prefix = 32\nipv6_prefix = 64\ntable_size = 5000\n",
        )
        .unwrap()
        .rrl;
        assert_eq!((r.nxdomains_per_second, r.errors_per_second, r.slip, r.window), (0, 3, 0, 60));
        assert_eq!((r.ipv4_prefix, r.ipv6_prefix, r.table_size), (32, 64, 8192), "rounded up to a power of two");
        assert!(load("[rrl]\nnxdomains_per_second = 5\n").unwrap().rrl.is_on());
        for (text, want) in [
            (
                "[rrl]\nresponses_per_second = -1\n",
                "weiche.toml:2:24: rrl.responses_per_second must be 0..=1000000, got -1",
            ),
            ("[rrl]\nerrors_per_second = 1000001\n", "weiche.toml:2:21: rrl.errors_per_second must be 0..=1000000"),
            ("[rrl]\nslip = 11\n", "weiche.toml:2:8: rrl.slip must be 0..=10, got 11"),
            ("[rrl]\nipv4_prefix = 33\n", "rrl.ipv4_prefix must be 0..=32, got 33"),
            ("[rrl]\nipv6_prefix = 129\n", "rrl.ipv6_prefix must be 0..=128, got 129"),
            ("[rrl]\ntable_size = 10\n", "rrl.table_size must be 1024..=16777216, got 10"),
            (
                "[rrl]\nwindow = \"0s\"\n",
                "weiche.toml:2:10: rrl.window: must be whole seconds from 1s to 1h, got \"0s\"",
            ),
            ("[rrl]\nwindow = \"1500ms\"\n", "rrl.window: must be whole seconds from 1s to 1h"),
            ("[rrl]\nwindow = \"2h\"\n", "rrl.window: must be whole seconds from 1s to 1h"),
            ("[rrl]\nwindow = \"15\"\n", "rrl.window: \"15\" is not a duration"),
            ("[rrl]\nrate = 5\n", "weiche.toml:2:1: unknown field `rate`"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn tcp_connections_per_client() {
        assert_eq!(Config::load(None).unwrap().tcp_max_connections_per_client, DEFAULT_TCP_PER_CLIENT);
        // Never more than the total.
        assert_eq!(load("[server]\ntcp_max_connections = 10\n").unwrap().tcp_max_connections_per_client, 10);
        let c = load("[server]\ntcp_max_connections_per_client = 4\n").unwrap();
        assert_eq!((c.tcp_max_connections, c.tcp_max_connections_per_client), (512, 4));
        for (text, want) in [
            (
                "[server]\ntcp_max_connections_per_client = 0\n",
                "weiche.toml:2:34: tcp_max_connections_per_client must be 1..=512 (tcp_max_connections), got 0",
            ),
            (
                "[server]\ntcp_max_connections = 8\ntcp_max_connections_per_client = 9\n",
                "tcp_max_connections_per_client must be 1..=8 (tcp_max_connections), got 9",
            ),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn transfer_settings() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
        std::fs::write(
            dir.path().join("k.key"),
            format!("key \"filekey\" {{ algorithm hmac-sha512; secret \"{secret}\"; }};\n"),
        )
        .unwrap();
        let p = dir.path().join("weiche.toml");
        std::fs::write(
            &p,
            format!(
                "[keys.xfr]\nsecret = \"{secret}\"\n[keys.other]\nfile = \"k.key\"\n\
                 [transfer]\nallow = [{{ from = \"127.0.0.0/8\", key = \"xfr\" }}, {{ from = \"192.0.2.7\" }}]\n\
                 notify = [{{ to = \"127.0.0.2:5300\", key = \"xfr\" }}]\nnotify_source = \"127.0.0.1\"\n\
                 [transfer.zone.\"example.com\"]\nallow = [{{ key = \"other\" }}]\n"
            ),
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        let t = &c.transfer;
        assert_eq!(t.keys.len(), 2);
        let xfr = t.keys.iter().find(|k| k.name.to_string() == "xfr.").unwrap();
        let net = t.for_zone(&Name::parse("example.net.", None).unwrap());
        assert!(net.allow[0].matches("127.1.2.3".parse().unwrap(), Some(xfr)));
        assert!(!net.allow[0].matches("127.1.2.3".parse().unwrap(), None), "the key is required");
        assert!(net.allow[1].matches("192.0.2.7".parse().unwrap(), None));
        assert!(!net.allow[1].matches("192.0.2.8".parse().unwrap(), None));
        assert_eq!(net.notify[0].to, "127.0.0.2:5300".parse().unwrap());
        let com = t.for_zone(&Name::parse("EXAMPLE.com.", None).unwrap());
        assert_eq!(com.allow.len(), 1);
        assert_eq!(com.allow[0].key.as_ref().unwrap().name.to_string(), "filekey.");
        assert_eq!(com.notify.len(), 1, "notify inherited");
        assert_eq!(t.notify_source, Some("127.0.0.1:0".parse().unwrap()));
        // Defaults: nobody may transfer.
        assert!(Config::load(None).unwrap().transfer.default.allow.is_empty());
        std::fs::write(&p, "[transfer]\nallow = [{ key = \"nope\" }]\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("weiche.toml:2:18: no key named \"nope\""), "{e}");
        std::fs::write(&p, "[transfer]\nallow = [{}]\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("give from"));
    }
}

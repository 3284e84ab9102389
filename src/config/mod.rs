//! `weiche.toml` and the pool/check part of zone TOML files: what the files say (serde "spec"
//! types) and the validated values the server runs on. Validation happens here, once; every
//! problem is reported as `file:line:col: message`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::load::zonefile::FileError;
use crate::model::chart::{AllDown, Failback};
use crate::model::name::Name;

/// The configuration used when no `--config` is given.
pub const BUILTIN: &str = r#"
[server]
listen = ["127.0.0.1:1053"]
zones = "zones"
"#;

pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// 1-based line and column of a byte offset.
pub fn locate(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

/// Turns a span in `text` (the contents of `file`) into a positioned error.
pub fn span_error(file: &Arc<Path>, text: &str, span: std::ops::Range<usize>, msg: impl Into<String>) -> FileError {
    let (line, col) = locate(text, span.start);
    FileError::new(file, line, col, msg)
}

pub fn toml_error(file: &Arc<Path>, text: &str, e: &toml::de::Error) -> FileError {
    let span = e.span().unwrap_or(0..0);
    span_error(file, text, span, e.message().trim_end().replace('\n', " "))
}

/// Parses `500ms`, `2s`, `1m`, `1h` (a number and a unit; `1m30s` works too).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write it like 500ms, 2s, 1m or 1h");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn transfer_of(
    keys: BTreeMap<String, Spanned<KeySpec>>,
    t: TransferSpec,
    base: &Path,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Transfer, FileError> {
    let mut named: BTreeMap<String, crate::transfer::tsig::Key> = BTreeMap::new();
    for (name, k) in keys {
        let span = k.span();
        let k = k.into_inner();
        let key = match (&k.file, &k.secret) {
            (Some(f), None) => {
                let path = base.join(f);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err(span.clone(), format!("key {name:?}: cannot read {}: {e}", path.display())))?;
                crate::transfer::tsig::Key::from_bind_file(&text)
                    .map_err(|m| err(span.clone(), format!("key {name:?}: {}: {m}", path.display())))?
            }
            (None, Some(secret)) => {
                let alg = k.algorithm.as_deref().unwrap_or("hmac-sha256");
                crate::transfer::tsig::Key::new(&name, alg, secret)
                    .map_err(|m| err(span.clone(), format!("key {name:?}: {m}")))?
            }
            _ => return Err(err(span, format!("key {name:?}: give either secret (and algorithm) or file"))),
        };
        named.insert(name, key);
    }
    let key_ref = |k: &Option<Spanned<String>>| -> Result<Option<crate::transfer::tsig::Key>, FileError> {
        match k {
            None => Ok(None),
            Some(k) => named.get(k.get_ref()).cloned().map(Some).ok_or_else(|| {
                let known = named.keys().cloned().collect::<Vec<_>>().join(", ");
                let known = if known.is_empty() {
                    "no keys are defined; add [keys.NAME]".into()
                } else {
                    format!("defined: {known}")
                };
                err(k.span(), format!("no key named {:?} ({known})", k.get_ref()))
            }),
        }
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
            .map_err(|e| err(span, format!("transfer zone {zone:?}: {e}")))?;
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
        zones.insert(apex.key(), zt);
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
    Ok(Transfer {
        keys: named.into_values().collect(),
        default,
        zones,
        notify_source,
        also_notify_ns: t.also_notify_ns.unwrap_or(false),
    })
}

/// A duration field: its default when absent, or a positioned error when it does not parse.
fn duration_field(
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
    pub key: Option<crate::transfer::tsig::Key>,
}

impl Allow {
    pub fn matches(&self, from: std::net::IpAddr, key: Option<&crate::transfer::tsig::Key>) -> bool {
        self.from.is_none_or(|n| n.contains(&from))
            && self.key.as_ref().is_none_or(|k| key.is_some_and(|s| s.name.key() == k.name.key()))
    }
}

#[derive(Debug, Clone)]
pub struct NotifyTarget {
    pub to: SocketAddr,
    pub key: Option<crate::transfer::tsig::Key>,
}

/// Transfer and NOTIFY settings of one zone.
#[derive(Debug, Clone, Default)]
pub struct ZoneTransfer {
    pub allow: Vec<Allow>,
    pub notify: Vec<NotifyTarget>,
}

#[derive(Debug, Clone, Default)]
pub struct Transfer {
    pub keys: Vec<crate::transfer::tsig::Key>,
    /// For zones without their own settings.
    pub default: ZoneTransfer,
    /// Per zone, by the apex's lookup key.
    pub zones: std::collections::HashMap<Box<[u8]>, ZoneTransfer>,
    /// Where NOTIFY is sent from (address, port 0 = any).
    pub notify_source: Option<SocketAddr>,
    /// Also NOTIFY the addresses of each zone's NS targets found in the zone.
    pub also_notify_ns: bool,
}

impl Transfer {
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
    retries: Option<u32>,
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
    zones: Option<String>,
    udp_payload: Option<Spanned<u16>>,
    tcp_idle_timeout: Option<Spanned<String>>,
    tcp_max_connections: Option<Spanned<usize>>,
    udp_workers: Option<usize>,
    xdp: Option<Spanned<String>>,
    reload_interval: Option<Spanned<String>>,
    state_dir: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogSpec {
    format: Option<LogFormat>,
    level: Option<String>,
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
    /// UDP receive threads per listen address (0: one per CPU).
    pub udp_workers: usize,
    /// Network interface whose IPv4 UDP queries are answered through AF_XDP (None: sockets only).
    pub xdp: Option<String>,
    /// How often the zones directory is looked at for changes.
    pub reload_interval: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// The HTTP API's address (None: no API).
    pub api_listen: Option<SocketAddr>,
    /// Bearer token the API requires (read from `api.token_file`).
    pub api_token: Option<String>,
    /// Where operator decisions (drains, failback holds) are kept (None: not kept).
    pub state_dir: Option<PathBuf>,
    pub webhooks: Vec<Webhook>,
    pub commands: Vec<NotifyCommand>,
    pub transfer: Transfer,
}

pub const DEFAULT_API: &str = "127.0.0.1:8053";

/// Parses an API address: ADDRESS:PORT, or "off" for none.
pub fn parse_api_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| format!("{s:?} is not ADDRESS:PORT or \"off\""))
}

impl Config {
    /// Reads `path`, or the built-in defaults when None.
    pub fn load(path: Option<&Path>) -> Result<Config, FileError> {
        let (file, text): (Arc<Path>, String) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| FileError::new(&Arc::from(p), 0, 0, format!("cannot read the configuration: {e}")))?;
                (p.into(), text)
            }
            None => (Path::new("<built-in configuration>").into(), BUILTIN.to_string()),
        };
        let spec: ConfigSpec = toml::from_str(&text).map_err(|e| toml_error(&file, &text, &e))?;
        let base = path.and_then(Path::parent).unwrap_or(Path::new(""));
        let err = |span: std::ops::Range<usize>, msg: String| span_error(&file, &text, span, msg);
        let s = spec.server;
        let mut listen = Vec::new();
        for l in s.listen.unwrap_or_default() {
            let addr = l.get_ref().parse::<SocketAddr>().map_err(|_| {
                err(
                    l.span(),
                    format!("listen: {:?} is not ADDRESS:PORT (e.g. 127.0.0.1:1053 or [::1]:53)", l.get_ref()),
                )
            })?;
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
        let tcp_max_connections = match s.tcp_max_connections {
            Some(v) if *v.get_ref() == 0 => {
                return Err(err(v.span(), "tcp_max_connections must be at least 1".into()));
            }
            Some(v) => v.into_inner(),
            None => 512,
        };
        let log_level = spec.log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(FileError::new(
                &file,
                0,
                0,
                format!("log.level {log_level:?} is not a level or filter (error, warn, info, debug, trace)"),
            ));
        }
        let api_listen = match &spec.api.listen {
            None => parse_api_listen(DEFAULT_API).expect("valid default"),
            Some(l) => parse_api_listen(l.get_ref()).map_err(|m| err(l.span(), format!("api.listen: {m}")))?,
        };
        let api_token = match &spec.api.token_file {
            None => None,
            Some(f) => {
                let path = base.join(f.get_ref());
                let token = std::fs::read_to_string(&path)
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
            && !a.ip().is_loopback()
            && api_token.is_none()
        {
            let span = spec.api.listen.as_ref().map_or(0..0, Spanned::span);
            return Err(err(
                span,
                format!("api.listen {a} is beyond loopback: set api.token_file too (a file holding a bearer token)"),
            ));
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
                timeout: duration_field(w.timeout.as_ref(), Duration::from_secs(5), "notify.webhook timeout", &err)?,
                retries: w.retries.unwrap_or(3).min(10),
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
                timeout: duration_field(c.timeout.as_ref(), Duration::from_secs(10), "notify.command timeout", &err)?,
            });
        }
        let transfer = transfer_of(spec.keys, spec.transfer, base, &err)?;
        Ok(Config {
            transfer,
            webhooks,
            commands,
            api_listen,
            api_token,
            state_dir: s.state_dir.as_ref().map(|d| base.join(d)),
            file: path.map(Path::to_path_buf),
            listen,
            zones_dir: base.join(s.zones.unwrap_or_else(|| "zones".into())),
            udp_payload,
            tcp_idle_timeout: duration_field(
                s.tcp_idle_timeout.as_ref(),
                Duration::from_secs(10),
                "tcp_idle_timeout",
                &err,
            )?,
            tcp_max_connections,
            udp_workers: s.udp_workers.unwrap_or(0),
            xdp,
            reload_interval: duration_field(
                s.reload_interval.as_ref(),
                Duration::from_millis(500),
                "reload_interval",
                &err,
            )?,
            log_format: spec.log.format.unwrap_or_default(),
            log_level,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Zone TOML: records, checks, pools

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    pub records: Option<Spanned<String>>,
    pub include: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    checks: BTreeMap<Spanned<String>, Spanned<CheckSpec>>,
    #[serde(default)]
    pools: BTreeMap<Spanned<String>, Spanned<PoolSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Tcp,
    Http,
    Https,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSpec {
    #[serde(rename = "type")]
    kind: CheckKind,
    port: Option<u16>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    retry_interval: Option<Spanned<String>>,
    fall: Option<Spanned<u32>>,
    rise: Option<Spanned<u32>>,
    send: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    expect_status: Option<Vec<Spanned<StatusSpec>>>,
    body_contains: Option<Spanned<String>>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    tls_verify: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StatusSpec {
    Code(u16),
    Range(String),
}

#[derive(Debug)]
enum CheckRef {
    Named(String),
    Inline(Box<CheckSpec>),
}

// Not `#[serde(untagged)]`: that buffers the value and loses the positions of the inline
// check's fields, which its errors need.
impl<'de> Deserialize<'de> for CheckRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_untagged::UntaggedEnumVisitor::new()
            .expecting("the name of a check, or a check table like { type = \"tcp\", port = 80 }")
            .string(|s| Ok(CheckRef::Named(s.to_owned())))
            .map(|m| m.deserialize().map(|c| CheckRef::Inline(Box::new(c))))
            .deserialize(d)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSpec {
    ttl: Option<Spanned<u32>>,
    ttl_min: Option<Spanned<u32>>,
    check: Spanned<CheckRef>,
    all_down: Option<AllDown>,
    failback: Option<Failback>,
    failback_delay: Option<Spanned<String>>,
    max_answers: Option<Spanned<u16>>,
    targets: Spanned<Vec<Spanned<TargetSpec>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    address: Spanned<String>,
    priority: Spanned<i64>,
    probe: Option<Spanned<String>>,
}

/// What a check sends and expects, beyond connecting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Probe {
    Tcp {
        send: Option<String>,
        expect: Option<String>,
    },
    Http {
        tls: bool,
        host: Option<String>,
        path: String,
        method: String,
        /// Inclusive ranges of acceptable status codes.
        statuses: Vec<(u16, u16)>,
        body_contains: Option<String>,
        headers: Vec<(String, String)>,
        tls_verify: bool,
    },
}

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub retry_interval: Duration,
    pub fall: u32,
    pub rise: u32,
    pub probe: Probe,
}

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub address: IpAddr,
    pub priority: u8,
    /// Where it is probed (the answered address and the check's port unless configured).
    pub probe: SocketAddr,
}

/// A validated pool: the A/AAAA answer of one owner name.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: Name,
    pub ttl: u32,
    pub ttl_min: u32,
    pub check: Arc<Check>,
    pub all_down: AllDown,
    pub failback: Failback,
    pub failback_delay: Duration,
    pub max_answers: Option<u16>,
    pub targets: Vec<Target>,
    /// Where `[pools.NAME]` is written, for messages.
    pub at: crate::load::zonefile::Location,
}

pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Checks and pools of one zone TOML file, validated. `text` is the file's contents.
pub fn pools_of(
    spec_checks_pools: ZonePools,
    file: &Arc<Path>,
    text: &str,
    origin: &Name,
    errors: &mut Vec<FileError>,
) -> Vec<Pool> {
    let ZonePools { checks, pools } = spec_checks_pools;
    let err = |span: std::ops::Range<usize>, msg: String| span_error(file, text, span, msg);
    let mut named: BTreeMap<String, Arc<Check>> = BTreeMap::new();
    for (name, spec) in checks {
        let span = spec.span();
        match check_of(name.get_ref(), spec.into_inner(), &err) {
            Ok(c) => {
                named.insert(name.into_inner(), Arc::new(c));
            }
            Err(mut e) => {
                if e.at.line == 0 {
                    e = err(span, e.msg);
                }
                errors.push(e);
            }
        }
    }
    let mut out = Vec::new();
    for (key, spec) in pools {
        let key_span = key.span();
        let label = key.get_ref().clone();
        match pool_of(&label, key_span.clone(), spec.into_inner(), origin, &named, file, text) {
            Ok(p) => out.push(p),
            Err(e) => errors.extend(e),
        }
    }
    out
}

/// The checks and pools of a zone spec, split off so the records can be parsed first.
pub struct ZonePools {
    checks: BTreeMap<Spanned<String>, Spanned<CheckSpec>>,
    pools: BTreeMap<Spanned<String>, Spanned<PoolSpec>>,
}

impl ZoneSpec {
    pub fn split(self) -> (Option<Spanned<String>>, Option<Spanned<OneOrMany>>, ZonePools) {
        (self.records, self.include, ZonePools { checks: self.checks, pools: self.pools })
    }
}

fn check_of(
    name: &str,
    s: CheckSpec,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Check, FileError> {
    let ctx = |m: String| format!("check {name:?}: {m}");
    let cerr = |span: std::ops::Range<usize>, m: String| err(span, ctx(m));
    let dur =
        |v: &Option<Spanned<String>>, default: Duration, what: &str| duration_field(v.as_ref(), default, what, &cerr);
    let interval = dur(&s.interval, Duration::from_secs(10), "interval")?;
    if interval < MIN_INTERVAL {
        let span = s.interval.as_ref().map(Spanned::span).unwrap_or(0..0);
        return Err(err(span, ctx(format!("interval must be at least {}ms", MIN_INTERVAL.as_millis()))));
    }
    let timeout = dur(&s.timeout, Duration::from_secs(2).min(interval / 2), "timeout")?;
    if timeout >= interval || timeout.is_zero() {
        let span = s.timeout.as_ref().map(Spanned::span).unwrap_or(0..0);
        return Err(err(
            span,
            ctx(format!("timeout ({timeout:?}) must be above zero and less than the interval ({interval:?})")),
        ));
    }
    // A failure on an up target (or a success on a down one) is confirmed quickly (HAProxy's
    // fastinter): by default a fifth of the interval, at least 100ms.
    let retry_default = (interval / 5).max(MIN_RETRY_INTERVAL).min(interval);
    let retry_interval = dur(&s.retry_interval, retry_default, "retry_interval")?;
    if retry_interval < MIN_RETRY_INTERVAL || retry_interval > interval {
        let span = s.retry_interval.as_ref().map(Spanned::span).unwrap_or(0..0);
        return Err(err(span, ctx(format!("retry_interval must be 100ms..=interval, got {retry_interval:?}"))));
    }
    let count = |v: &Option<Spanned<u32>>, default: u32, what: &str| -> Result<u32, FileError> {
        match v {
            Some(v) if !(1..=100).contains(v.get_ref()) => {
                Err(err(v.span(), ctx(format!("{what} must be 1..=100, got {}", v.get_ref()))))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    };
    let fall = count(&s.fall, 3, "fall")?;
    let rise = count(&s.rise, 2, "rise")?;
    let only_for = |v: Option<std::ops::Range<usize>>, field: &str, kinds: &str| match v {
        Some(span) => Err(err(span, ctx(format!("{field} is only for {kinds} checks")))),
        None => Ok(()),
    };
    let probe = match s.kind {
        CheckKind::Tcp => {
            only_for(s.host.as_ref().map(Spanned::span), "host", "http/https")?;
            only_for(s.path.as_ref().map(Spanned::span), "path", "http/https")?;
            only_for(s.method.as_ref().map(Spanned::span), "method", "http/https")?;
            only_for(
                s.expect_status.as_ref().and_then(|v| v.first()).map(Spanned::span),
                "expect_status",
                "http/https",
            )?;
            only_for(s.body_contains.as_ref().map(Spanned::span), "body_contains", "http/https")?;
            only_for(s.headers.as_ref().map(Spanned::span), "headers", "http/https")?;
            only_for(s.tls_verify.as_ref().map(Spanned::span), "tls_verify", "https")?;
            Probe::Tcp { send: s.send.map(Spanned::into_inner), expect: s.expect.map(Spanned::into_inner) }
        }
        CheckKind::Http | CheckKind::Https => {
            only_for(s.send.as_ref().map(Spanned::span), "send", "tcp")?;
            only_for(s.expect.as_ref().map(Spanned::span), "expect", "tcp")?;
            if s.kind == CheckKind::Http {
                only_for(s.tls_verify.as_ref().map(Spanned::span), "tls_verify", "https")?;
            }
            let method = s.method.map(Spanned::into_inner).unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            if method != "GET" && method != "HEAD" {
                return Err(err(0..0, ctx(format!("method must be GET or HEAD, got {method}"))));
            }
            let path = s.path.map(Spanned::into_inner).unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(err(0..0, ctx(format!("path must start with '/', got {path:?}"))));
            }
            let mut statuses = Vec::new();
            for st in s.expect_status.unwrap_or_default() {
                let span = st.span();
                let range = match st.into_inner() {
                    StatusSpec::Code(c) => Some((c, c)),
                    StatusSpec::Range(r) => {
                        r.split_once('-').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                    }
                };
                match range {
                    Some((a, b)) if (100..=599).contains(&a) && (a..=599).contains(&b) => statuses.push((a, b)),
                    _ => {
                        return Err(err(
                            span,
                            ctx("expect_status: give codes like 200 or ranges like \"200-399\"".into()),
                        ));
                    }
                }
            }
            if statuses.is_empty() {
                statuses.push((200, 399));
            }
            Probe::Http {
                tls: s.kind == CheckKind::Https,
                host: s.host.map(Spanned::into_inner),
                path,
                method,
                statuses,
                body_contains: s.body_contains.map(Spanned::into_inner),
                headers: s.headers.map(|h| h.into_inner().into_iter().collect()).unwrap_or_default(),
                tls_verify: s.tls_verify.map(Spanned::into_inner).unwrap_or(true),
            }
        }
    };
    let port = match (s.port, s.kind) {
        (Some(0), _) => return Err(err(0..0, ctx("port must be 1..=65535".into()))),
        (Some(p), _) => p,
        (None, CheckKind::Http) => 80,
        (None, CheckKind::Https) => 443,
        (None, CheckKind::Tcp) => return Err(err(0..0, ctx("a tcp check needs a port".into()))),
    };
    Ok(Check { name: name.to_string(), kind: s.kind, port, interval, timeout, retry_interval, fall, rise, probe })
}

fn pool_of(
    label: &str,
    key_span: std::ops::Range<usize>,
    s: PoolSpec,
    origin: &Name,
    named: &BTreeMap<String, Arc<Check>>,
    file: &Arc<Path>,
    text: &str,
) -> Result<Pool, Vec<FileError>> {
    let err =
        |span: std::ops::Range<usize>, msg: String| span_error(file, text, span, format!("pool {label:?}: {msg}"));
    let mut errors = Vec::new();
    let name = match crate::load::zonefile::rdata::parse_name(label, origin) {
        Ok(n) if n.is_subdomain_of(origin) => n,
        Ok(n) => {
            return Err(vec![err(key_span, format!("{n} is not inside zone {origin}"))]);
        }
        Err(m) => return Err(vec![err(key_span, m)]),
    };
    let check_span = s.check.span();
    let check = match s.check.into_inner() {
        CheckRef::Named(n) => match named.get(&n) {
            Some(c) => Some(c.clone()),
            None => {
                let known = named.keys().cloned().collect::<Vec<_>>().join(", ");
                errors.push(err(check_span, format!("no check named {n:?} in this file (defined: {known})")));
                None
            }
        },
        CheckRef::Inline(spec) => match check_of(&format!("{label} (inline)"), *spec, &err) {
            Ok(c) => Some(Arc::new(c)),
            Err(mut e) => {
                if e.at.line == 0 {
                    e = err(check_span.clone(), e.msg);
                }
                errors.push(e);
                None
            }
        },
    };
    let ttl = s.ttl.as_ref().map_or(30, |t| *t.get_ref());
    if ttl > crate::load::zonefile::MAX_TTL {
        errors.push(err(s.ttl.as_ref().unwrap().span(), "ttl is over 2147483647".into()));
    }
    let ttl_min = s.ttl_min.as_ref().map_or(5.min(ttl), |t| *t.get_ref());
    if ttl_min > ttl {
        errors.push(err(s.ttl_min.as_ref().unwrap().span(), format!("ttl_min ({ttl_min}) is above ttl ({ttl})")));
    }
    let failback_delay = match &s.failback_delay {
        None => Duration::ZERO,
        Some(d) => parse_duration(d.get_ref()).unwrap_or_else(|m| {
            errors.push(err(d.span(), format!("failback_delay: {m}")));
            Duration::ZERO
        }),
    };
    let max_answers = match s.max_answers {
        Some(m) if *m.get_ref() == 0 => {
            errors.push(err(m.span(), "max_answers must be at least 1 (leave it out for no limit)".into()));
            None
        }
        m => m.map(Spanned::into_inner),
    };
    let targets_span = s.targets.span();
    let mut targets: Vec<Target> = Vec::new();
    for t in s.targets.into_inner() {
        let t = t.into_inner();
        let address = match t.address.get_ref().parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                errors.push(err(
                    t.address.span(),
                    format!("target address {:?} is not an IPv4 or IPv6 address", t.address.get_ref()),
                ));
                continue;
            }
        };
        let priority = *t.priority.get_ref();
        if !(1..=255).contains(&priority) {
            errors.push(err(t.priority.span(), format!("target priority must be 1..=255, got {priority}")));
            continue;
        }
        if targets.iter().any(|o| o.address == address) {
            errors.push(err(t.address.span(), format!("target {address} is listed twice")));
            continue;
        }
        let port = check.as_ref().map_or(0, |c| c.port);
        let probe = match &t.probe {
            None => SocketAddr::new(address, port),
            Some(p) => match parse_probe(p.get_ref(), port) {
                Some(a) => a,
                None => {
                    errors.push(err(p.span(), format!("probe {:?} is not ADDRESS or ADDRESS:PORT", p.get_ref())));
                    continue;
                }
            },
        };
        targets.push(Target { address, priority: priority as u8, probe });
    }
    if targets.is_empty() && errors.is_empty() {
        errors.push(err(targets_span, "a pool needs at least one target".into()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (line, col) = locate(text, key_span.start);
    Ok(Pool {
        name,
        ttl,
        ttl_min,
        check: check.expect("checked above"),
        all_down: s.all_down.unwrap_or_default(),
        failback: s.failback.unwrap_or_default(),
        failback_delay,
        max_answers,
        targets,
        at: crate::load::zonefile::Location { file: file.clone(), line, col },
    })
}

fn parse_probe(s: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, default_port))
}

/// Ready-made values for other modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn tcp_check() -> Check {
        Check {
            name: "t".into(),
            kind: CheckKind::Tcp,
            port: 80,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            retry_interval: Duration::from_millis(200),
            fall: 3,
            rise: 2,
            probe: Probe::Tcp { send: None, expect: None },
        }
    }

    /// A pool at `name` with (address, priority) targets, probed on port 80.
    pub fn pool(name: &str, targets: &[(&str, u8)], all_down: AllDown) -> Pool {
        Pool {
            name: Name::parse(name, None).unwrap(),
            ttl: 30,
            ttl_min: 5,
            check: Arc::new(tcp_check()),
            all_down,
            failback: Failback::Auto,
            failback_delay: Duration::ZERO,
            max_answers: None,
            targets: targets
                .iter()
                .map(|(a, p)| {
                    let address: IpAddr = a.parse().unwrap();
                    Target { address, priority: *p, probe: SocketAddr::new(address, 80) }
                })
                .collect(),
            at: crate::load::zonefile::Location { file: Path::new("t.toml").into(), line: 9, col: 8 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("").is_err());
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

    fn pools(text: &str) -> (Vec<Pool>, Vec<String>) {
        let file: Arc<Path> = Path::new("example.com.toml").into();
        let spec: ZoneSpec = toml::from_str(text).map_err(|e| toml_error(&file, text, &e).to_string()).unwrap();
        let (_, _, zp) = spec.split();
        let mut errors = Vec::new();
        let origin = Name::parse("example.com.", None).unwrap();
        let p = pools_of(zp, &file, text, &origin, &mut errors);
        (p, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_pool_with_a_named_check() {
        let (p, e) = pools(
            r#"
[checks.web]
type = "https"
host = "www.example.com"
path = "/health"
interval = "2s"
timeout = "1s"
expect_status = [200, "300-302"]

[pools.www]
check = "web"
all_down = "last"
failback = "manual"
targets = [
  { address = "192.0.2.10", priority = 1 },
  { address = "2001:db8::10", priority = 1 },
  { address = "203.0.113.10", priority = 2, probe = "10.0.0.10:8443" },
]
"#,
        );
        assert!(e.is_empty(), "{e:?}");
        let p = &p[0];
        assert_eq!(p.name.to_string(), "www.example.com.");
        assert_eq!((p.ttl, p.ttl_min, p.all_down, p.failback), (30, 5, AllDown::Last, Failback::Manual));
        assert_eq!(p.check.port, 443);
        assert_eq!(p.check.interval, Duration::from_secs(2));
        assert_eq!(p.targets[0].probe, "192.0.2.10:443".parse().unwrap());
        assert_eq!(p.targets[2].probe, "10.0.0.10:8443".parse().unwrap());
        match &p.check.probe {
            Probe::Http { statuses, tls, .. } => {
                assert_eq!((statuses.as_slice(), *tls), (&[(200, 200), (300, 302)][..], true))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((p.at.line, p.at.col), (10, 8));
    }

    #[test]
    fn pool_errors() {
        let (_, e) = pools(
            r#"[pools.www]
check = { type = "tcp", port = 80 }
targets = [
  { address = "192.0.2.10", priority = 0 },
  { address = "192.0.2.11", priority = 1 },
  { address = "192.0.2.11", priority = 2 },
  { address = "banana", priority = 2 },
]
[pools."www.example.net."]
check = "nope"
targets = [{ address = "192.0.2.1", priority = 1 }]
"#,
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("example.com.toml:4:40: pool \"www\": target priority must be 1..=255, got 0"),
            "{}",
            e[0]
        );
        assert!(e[1].starts_with("example.com.toml:6:15: pool \"www\": target 192.0.2.11 is listed twice"), "{}", e[1]);
        assert!(e[2].contains("\"banana\" is not an IPv4 or IPv6"), "{}", e[2]);
        assert!(e[3].contains("www.example.net. is not inside zone example.com."), "{}", e[3]);
    }

    #[test]
    fn check_errors() {
        let (_, e) = pools("[checks.a]\ntype = \"tcp\"\nport = 1\ninterval = \"1s\"\ntimeout = \"1s\"\n");
        assert!(e[0].contains("check \"a\": timeout"), "{e:?}");
        assert!(e[0].starts_with("example.com.toml:5:11:"), "{e:?}");
        let (_, e) = pools("[checks.a]\ntype = \"tcp\"\nport = 1\npath = \"/\"\n");
        assert!(e[0].contains("path is only for http/https checks"), "{e:?}");
        let (_, e) = pools("[checks.a]\ntype = \"tcp\"\n");
        assert!(e[0].contains("needs a port"), "{e:?}");
        let (_, e) = pools("[checks.a]\ntype = \"tcp\"\nport = 1\ninterval = \"100ms\"\n");
        assert!(e[0].contains("at least 250ms"), "{e:?}");
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

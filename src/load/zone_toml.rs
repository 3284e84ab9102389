//! The checks and pools of a zone TOML file: what the file says (serde spec types), validated
//! into [`crate::model::pool`] values with every problem at `file:line:col`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{duration_field, parse_duration};
use crate::model::chart::{AllDown, Failback, MinUp};
use crate::model::name::Name;
use crate::model::pool::*;
use crate::model::position::{FileError, locate, span_error};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSpec {
    #[serde(rename = "type")]
    kind: CheckKind,
    port: Option<Spanned<u16>>,
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
    name: Option<Spanned<String>>,
    qtype: Option<Spanned<String>>,
    expect_rcode: Option<Spanned<String>>,
    expect_answer: Option<Spanned<String>>,
    helo: Option<Spanned<String>>,
    starttls: Option<Spanned<bool>>,
    credentials_file: Option<Spanned<String>>,
    tls: Option<Spanned<bool>>,
    tls_ca: Option<Spanned<String>>,
    donor_ok: Option<Spanned<bool>>,
    read_only_ok: Option<Spanned<bool>>,
    query: Option<Spanned<String>>,
    max_replication_lag: Option<Spanned<String>>,
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

/// `check = "web"`, `check = { type = "tcp", port = 80 }`, or a list of either: every check
/// in it must pass.
#[derive(Debug)]
enum CheckList {
    One(CheckRef),
    Many(Vec<Spanned<CheckRef>>),
}

impl<'de> Deserialize<'de> for CheckList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_untagged::UntaggedEnumVisitor::new()
            .expecting("the name of a check, a check table like { type = \"tcp\", port = 80 }, or a list of them")
            .string(|s| Ok(CheckList::One(CheckRef::Named(s.to_owned()))))
            .map(|m| m.deserialize().map(|c| CheckList::One(CheckRef::Inline(Box::new(c)))))
            .seq(|s| s.deserialize().map(CheckList::Many))
            .deserialize(d)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSpec {
    ttl: Option<Spanned<u32>>,
    ttl_min: Option<Spanned<u32>>,
    check: Spanned<CheckList>,
    all_down: Option<AllDown>,
    failback: Option<Failback>,
    failback_delay: Option<Spanned<String>>,
    max_answers: Option<Spanned<u16>>,
    min_up: Option<Spanned<MinUpSpec>>,
    targets: Spanned<Vec<Spanned<TargetSpec>>>,
}

/// `min_up = 2` or `min_up = "50%"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MinUpSpec {
    Count(i64),
    Text(String),
}

/// The threshold `min_up` says, or why it says none.
fn min_up_of(spec: &MinUpSpec) -> Result<MinUp, String> {
    match spec {
        MinUpSpec::Count(n) if (1..=i64::from(u16::MAX)).contains(n) => Ok(MinUp::Count(*n as u16)),
        MinUpSpec::Count(n) if *n < 1 => Err(format!("min_up must be at least 1, got {n}")),
        MinUpSpec::Count(n) => Err(format!("min_up = {n} is more than any level can have targets")),
        MinUpSpec::Text(t) => match t.strip_suffix('%').map(|n| n.parse::<u8>()) {
            Some(Ok(p)) if (1..=100).contains(&p) => Ok(MinUp::Percent(p)),
            Some(_) => Err(format!("min_up {t:?}: a percentage must be 1% to 100%")),
            None => Err(format!("min_up {t:?} is neither a count (2) nor a percentage (\"50%\")")),
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    address: Spanned<String>,
    priority: Spanned<i64>,
    probe: Option<Spanned<String>>,
    /// Replaces the pool's checks for this target.
    check: Option<Spanned<CheckList>>,
}

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
        match check_of(name.get_ref(), spec.into_inner(), span, file, &err) {
            Ok(c) => {
                named.insert(name.into_inner(), Arc::new(c));
            }
            Err(e) => errors.push(e),
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

impl ZonePools {
    /// The files the checks name (`credentials_file`, `tls_ca`), relative to `zone_file`'s
    /// folder, whether they can be read or not: a change to one, or its appearing, loads the
    /// zone again.
    pub fn side_files(&self, zone_file: &Path) -> Vec<std::path::PathBuf> {
        let dir = zone_file.parent().unwrap_or(Path::new("."));
        fn inline(r: &CheckRef) -> Option<&CheckSpec> {
            match r {
                CheckRef::Inline(c) => Some(c),
                CheckRef::Named(_) => None,
            }
        }
        fn of_list(l: &CheckList) -> Vec<&CheckSpec> {
            match l {
                CheckList::One(r) => inline(r).into_iter().collect(),
                CheckList::Many(v) => v.iter().filter_map(|r| inline(r.get_ref())).collect(),
            }
        }
        let mut specs: Vec<&CheckSpec> = self.checks.values().map(Spanned::get_ref).collect();
        for p in self.pools.values().map(Spanned::get_ref) {
            specs.extend(of_list(p.check.get_ref()));
            for t in p.targets.get_ref() {
                specs.extend(t.get_ref().check.as_ref().map(|c| of_list(c.get_ref())).unwrap_or_default());
            }
        }
        specs
            .into_iter()
            .flat_map(|c| [&c.credentials_file, &c.tls_ca])
            .flatten()
            .map(|f| dir.join(f.get_ref()))
            .collect()
    }
}

impl ZoneSpec {
    pub fn split(self) -> (Option<Spanned<String>>, Option<Spanned<OneOrMany>>, ZonePools) {
        (self.records, self.include, ZonePools { checks: self.checks, pools: self.pools })
    }
}

/// A type-specific key of a check: where it is written (None: it is not), its name, and the
/// check types it belongs to.
type KeyRule<'a> = (Option<std::ops::Range<usize>>, &'a str, &'a [CheckKind]);

/// `at` is where the check is written, for errors about keys it lacks.
fn check_of(
    name: &str,
    s: CheckSpec,
    at: std::ops::Range<usize>,
    file: &Path,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Check, FileError> {
    let ctx = |m: String| format!("check {name:?}: {m}");
    let cerr = |span: std::ops::Range<usize>, m: String| err(span, ctx(m));
    let dur =
        |v: &Option<Spanned<String>>, default: Duration, what: &str| duration_field(v.as_ref(), default, what, &cerr);
    let interval = dur(&s.interval, Duration::from_secs(10), "interval")?;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        let span = s.interval.as_ref().map(Spanned::span).unwrap_or(at.clone());
        return Err(err(span, ctx(format!("interval must be {}ms to 1h, got {interval:?}", MIN_INTERVAL.as_millis()))));
    }
    let timeout = dur(&s.timeout, Duration::from_secs(2).min(interval / 2), "timeout")?;
    if timeout >= interval || timeout.is_zero() {
        let span = s.timeout.as_ref().map(Spanned::span).unwrap_or(at.clone());
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
        let span = s.retry_interval.as_ref().map(Spanned::span).unwrap_or(at.clone());
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
    // Keys that belong to other check types are errors: a misplaced key would otherwise
    // silently check less than the operator thinks.
    use CheckKind::{Dns, Galera, Http, Https, Mysql, Smtp, Tcp};
    let keys: [KeyRule; 22] = [
        (s.send.as_ref().map(Spanned::span), "send", &[Tcp]),
        (s.expect.as_ref().map(Spanned::span), "expect", &[Tcp]),
        (s.host.as_ref().map(Spanned::span), "host", &[Http, Https, Smtp, Galera, Mysql]),
        (s.path.as_ref().map(Spanned::span), "path", &[Http, Https]),
        (s.method.as_ref().map(Spanned::span), "method", &[Http, Https]),
        (s.expect_status.as_ref().and_then(|v| v.first()).map(Spanned::span), "expect_status", &[Http, Https]),
        (s.body_contains.as_ref().map(Spanned::span), "body_contains", &[Http, Https]),
        (s.headers.as_ref().map(Spanned::span), "headers", &[Http, Https]),
        (s.tls_verify.as_ref().map(Spanned::span), "tls_verify", &[Https, Smtp, Galera, Mysql]),
        (s.name.as_ref().map(Spanned::span), "name", &[Dns]),
        (s.qtype.as_ref().map(Spanned::span), "qtype", &[Dns]),
        (s.expect_rcode.as_ref().map(Spanned::span), "expect_rcode", &[Dns]),
        (s.expect_answer.as_ref().map(Spanned::span), "expect_answer", &[Dns]),
        (s.helo.as_ref().map(Spanned::span), "helo", &[Smtp]),
        (s.starttls.as_ref().map(Spanned::span), "starttls", &[Smtp]),
        (s.credentials_file.as_ref().map(Spanned::span), "credentials_file", &[Galera, Mysql]),
        (s.tls.as_ref().map(Spanned::span), "tls", &[Galera, Mysql]),
        (s.tls_ca.as_ref().map(Spanned::span), "tls_ca", &[Galera, Mysql]),
        (s.donor_ok.as_ref().map(Spanned::span), "donor_ok", &[Galera]),
        (s.read_only_ok.as_ref().map(Spanned::span), "read_only_ok", &[Galera]),
        (s.query.as_ref().map(Spanned::span), "query", &[Mysql]),
        (s.max_replication_lag.as_ref().map(Spanned::span), "max_replication_lag", &[Mysql]),
    ];
    let first_misplaced = keys
        .into_iter()
        .filter_map(|(span, field, kinds)| Some((span?, field, kinds)))
        .filter(|(_, _, kinds)| !kinds.contains(&s.kind))
        .min_by_key(|(span, _, _)| span.start);
    if let Some((span, field, kinds)) = first_misplaced {
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        return Err(err(span, ctx(format!("{field} is only for {} checks", names.join("/")))));
    }
    let probe = match s.kind {
        CheckKind::Tcp => {
            Probe::Tcp { send: s.send.map(Spanned::into_inner), expect: s.expect.map(Spanned::into_inner) }
        }
        CheckKind::Dns => dns_probe(&s, at.clone(), &cerr)?,
        CheckKind::Galera => Probe::Galera {
            login: sql_login(&s, at.clone(), file, &cerr)?,
            donor_ok: s.donor_ok.as_ref().is_some_and(|v| *v.get_ref()),
            read_only_ok: s.read_only_ok.as_ref().is_none_or(|v| *v.get_ref()),
        },
        CheckKind::Mysql => {
            let query = match &s.query {
                None => "SELECT 1".to_string(),
                Some(q) if q.get_ref().trim().is_empty() => return Err(cerr(q.span(), "query is empty".into())),
                Some(q) => q.get_ref().clone(),
            };
            let max_replication_lag = match &s.max_replication_lag {
                None => None,
                Some(v) => {
                    let lag =
                        parse_duration(v.get_ref()).map_err(|m| cerr(v.span(), format!("max_replication_lag: {m}")))?;
                    if !(Duration::from_secs(1)..=MAX_REPLICATION_LAG).contains(&lag) {
                        return Err(cerr(
                            v.span(),
                            format!(
                                "max_replication_lag must be 1s to 1d (the server counts whole seconds), got {lag:?}"
                            ),
                        ));
                    }
                    Some(lag)
                }
            };
            Probe::Mysql { login: sql_login(&s, at.clone(), file, &cerr)?, query, max_replication_lag }
        }
        CheckKind::Smtp => {
            let starttls = s.starttls.as_ref().is_some_and(|v| *v.get_ref());
            for (span, field) in
                [(s.host.as_ref().map(Spanned::span), "host"), (s.tls_verify.as_ref().map(Spanned::span), "tls_verify")]
            {
                if let Some(span) = span.filter(|_| !starttls) {
                    return Err(cerr(span, format!("{field} is only for smtp checks with starttls = true")));
                }
            }
            if let Some(h) = &s.host {
                service_host(h, &cerr)?;
            }
            if let Some(h) = &s.helo
                && !is_helo_name(h.get_ref())
            {
                return Err(cerr(
                    h.span(),
                    format!("helo {:?} is not a domain name or an address literal like [192.0.2.1]", h.get_ref()),
                ));
            }
            Probe::Smtp {
                helo: s.helo.map(Spanned::into_inner),
                starttls,
                host: s.host.map(Spanned::into_inner),
                tls_verify: s.tls_verify.map(Spanned::into_inner).unwrap_or(true),
            }
        }
        CheckKind::Http | CheckKind::Https => {
            let method_at = s.method.as_ref().map_or(at.clone(), Spanned::span);
            let method = s.method.map(Spanned::into_inner).unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            if method != "GET" && method != "HEAD" {
                return Err(err(method_at, ctx(format!("method must be GET or HEAD, got {method}"))));
            }
            let path_at = s.path.as_ref().map_or(at.clone(), Spanned::span);
            let path = s.path.map(Spanned::into_inner).unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(err(path_at, ctx(format!("path must start with '/', got {path:?}"))));
            }
            if path.chars().any(|c| c.is_control() || c.is_whitespace())
                || reqwest::Url::parse(&format!("http://h{path}")).is_err()
            {
                return Err(err(
                    path_at,
                    ctx(format!("path {path:?} is not a URL path (no spaces or control characters)")),
                ));
            }
            // The name the service is asked for (Host header and SNI), not where to connect: a
            // DNS name or an address, never a port, a path or a header's worth of text.
            if let Some(h) = &s.host {
                service_host(h, &cerr)?;
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
                headers: match s.headers {
                    None => Vec::new(),
                    Some(h) => {
                        let span = h.span();
                        let headers: Vec<(String, String)> = h.into_inner().into_iter().collect();
                        // What reqwest would refuse at every probe (a CR or LF in a value, a space
                        // in a name) is refused here, once, where it is written.
                        for (name, value) in &headers {
                            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                                return Err(err(span, ctx(format!("headers: {name:?} is not a header name"))));
                            }
                            if reqwest::header::HeaderValue::from_str(value).is_err() {
                                return Err(err(
                                    span,
                                    ctx(format!(
                                        "headers: the value of {name} has a control character (CR, LF, ...) or is not text"
                                    )),
                                ));
                            }
                        }
                        headers
                    }
                },
                tls_verify: s.tls_verify.map(Spanned::into_inner).unwrap_or(true),
            }
        }
    };
    let port = match (s.port.as_ref().map(|p| (*p.get_ref(), p.span())), s.kind) {
        (Some((0, span)), _) => return Err(err(span, ctx("port must be 1..=65535".into()))),
        (Some((p, _)), _) => p,
        (None, CheckKind::Http) => 80,
        (None, CheckKind::Https) => 443,
        (None, CheckKind::Dns) => 53,
        (None, CheckKind::Smtp) => 25,
        (None, CheckKind::Galera | CheckKind::Mysql) => 3306,
        (None, CheckKind::Tcp) => return Err(err(at, ctx("a tcp check needs a port".into()))),
    };
    Ok(Check { name: name.to_string(), kind: s.kind, port, interval, timeout, retry_interval, fall, rise, probe })
}

/// Most bytes of a credentials or CA file: they are a few lines, anything bigger is a mistake.
const MAX_SIDE_FILE: u64 = 1 << 20;

/// Reads a file a check names, relative to the zone file's folder: a regular file, bounded.
fn read_side_file(zone_file: &Path, name: &str) -> Result<(std::path::PathBuf, Vec<u8>), String> {
    let path = zone_file.parent().unwrap_or(Path::new(".")).join(name);
    let bytes = crate::load::read::read_bytes(&path).map_err(|e| format!("{} {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SIDE_FILE {
        return Err(format!("{} is over {} bytes", path.display(), MAX_SIDE_FILE));
    }
    Ok((path, bytes))
}

/// The login of a `galera` or `mysql` check: its credentials file, read now (a reload picks up
/// a changed password), and TLS.
fn sql_login(
    s: &CheckSpec,
    at: std::ops::Range<usize>,
    file: &Path,
    cerr: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<SqlLogin, FileError> {
    let Some(cf) = &s.credentials_file else {
        return Err(cerr(
            at,
            format!(
                "a {} check needs credentials_file, a MySQL option file with [client] user= and password=",
                s.kind.name()
            ),
        ));
    };
    let (path, bytes) =
        read_side_file(file, cf.get_ref()).map_err(|m| cerr(cf.span(), format!("credentials_file {m}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| cerr(cf.span(), format!("credentials_file {}: not UTF-8 text", path.display())))?;
    let login = crate::load::my_cnf::client_login(&text)
        .map_err(|m| cerr(cf.span(), format!("credentials_file {}: {m}", path.display())))?;
    let tls_on = s.tls.as_ref().is_some_and(|v| *v.get_ref());
    for (span, field) in [
        (s.host.as_ref().map(Spanned::span), "host"),
        (s.tls_verify.as_ref().map(Spanned::span), "tls_verify"),
        (s.tls_ca.as_ref().map(Spanned::span), "tls_ca"),
    ] {
        if let Some(span) = span.filter(|_| !tls_on) {
            return Err(cerr(span, format!("{field} is only for {} checks with tls = true", s.kind.name())));
        }
    }
    if let Some(h) = &s.host {
        service_host(h, cerr)?;
    }
    let ca = match &s.tls_ca {
        None => None,
        Some(c) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let (path, pem) = read_side_file(file, c.get_ref()).map_err(|m| cerr(c.span(), format!("tls_ca {m}")))?;
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
            match certs {
                Ok(c) if !c.is_empty() => {}
                _ => {
                    return Err(cerr(c.span(), format!("tls_ca {}: no PEM certificate in it", path.display())));
                }
            }
            Some(pem)
        }
    };
    Ok(SqlLogin {
        user: login.user,
        password: Secret(login.password),
        credentials_file: path,
        tls: tls_on.then(|| SqlTls {
            verify: s.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
            host: s.host.as_ref().map(|h| h.get_ref().clone()),
            ca,
        }),
    })
}

fn dns_probe(
    s: &CheckSpec,
    at: std::ops::Range<usize>,
    cerr: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<Probe, FileError> {
    use crate::model::rtype;
    let Some(name_spec) = &s.name else {
        return Err(cerr(at, "a dns check needs a name to query".into()));
    };
    // Always absolute: a check may well query a zone other than the one it is written in.
    let name = Name::parse(name_spec.get_ref(), Some(&Name::root()))
        .map_err(|e| cerr(name_spec.span(), format!("name: {e}")))?;
    let qtype = match &s.qtype {
        None => rtype::A,
        Some(q) => match rtype::from_str(q.get_ref()) {
            Some(t) if rtype::is_meta(t) => {
                return Err(cerr(q.span(), format!("qtype {} is not a type a check can query", q.get_ref())));
            }
            Some(t) => t,
            None => return Err(cerr(q.span(), format!("qtype {:?} is not a record type", q.get_ref()))),
        },
    };
    let rcode = match &s.expect_rcode {
        None => 0,
        Some(r) => rcode_from_str(r.get_ref()).ok_or_else(|| {
            cerr(r.span(), format!("expect_rcode {:?} is not an rcode (NOERROR, NXDOMAIN, REFUSED, …)", r.get_ref()))
        })?,
    };
    let answer = match &s.expect_answer {
        None => None,
        Some(a) if a.get_ref().is_empty() => return Err(cerr(a.span(), "expect_answer is empty".into())),
        Some(a) => match a.get_ref().parse::<IpAddr>() {
            // An address is compared whole: 192.0.2.1 must not pass on 192.0.2.10.
            Ok(ip) if qtype == rtype::A || qtype == rtype::AAAA => {
                if ip.is_ipv4() != (qtype == rtype::A) {
                    return Err(cerr(
                        a.span(),
                        format!("expect_answer {ip} can never be in an answer to qtype {}", rtype::name(qtype)),
                    ));
                }
                Some(ExpectAnswer::Address(ip))
            }
            _ => Some(ExpectAnswer::Contains(a.get_ref().clone())),
        },
    };
    Ok(Probe::Dns { name, qtype, rcode, answer })
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
    let pool_checks = checks_of(s.check, label, named, file, &err, &mut errors);
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
        Some(d) => match parse_duration(d.get_ref()) {
            Ok(t) if t <= MAX_FAILBACK_DELAY => t,
            Ok(t) => {
                errors.push(err(d.span(), format!("failback_delay must be 0s to 7d, got {t:?}")));
                Duration::ZERO
            }
            Err(m) => {
                errors.push(err(d.span(), format!("failback_delay: {m}")));
                Duration::ZERO
            }
        },
    };
    let max_answers = match s.max_answers {
        Some(m) if *m.get_ref() == 0 => {
            errors.push(err(m.span(), "max_answers must be at least 1 (leave it out for no limit)".into()));
            None
        }
        m => m.map(Spanned::into_inner),
    };
    let min_up = match &s.min_up {
        None => MinUp::default(),
        Some(m) => min_up_of(m.get_ref()).unwrap_or_else(|msg| {
            errors.push(err(m.span(), msg));
            MinUp::default()
        }),
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
        if let Some(why) = no_host(address) {
            errors.push(err(t.address.span(), format!("target address {address}: {why}")));
            continue;
        }
        let priority = *t.priority.get_ref();
        if !(1..=255).contains(&priority) {
            errors.push(err(t.priority.span(), format!("target priority must be 1..=255, got {priority}")));
            continue;
        }
        // The same server may be listed again at another priority with other checks (a
        // weaker fallback of itself); at the same priority it would only be answered twice.
        if targets.iter().any(|o| o.address == address && o.priority == priority as u8) {
            errors.push(err(t.address.span(), format!("target {address} is listed twice at priority {priority}")));
            continue;
        }
        let checks = match t.check {
            Some(list) => checks_of(list, &format!("{label} {address}"), named, file, &err, &mut errors),
            None => pool_checks.clone(),
        };
        let probe = match &t.probe {
            None => (address, None),
            Some(p) => match parse_probe(p.get_ref()) {
                Some((a, _)) if no_host(a).is_some() => {
                    errors.push(err(p.span(), format!("probe {:?}: {}", p.get_ref(), no_host(a).unwrap_or_default())));
                    continue;
                }
                Some((_, Some(0))) => {
                    errors.push(err(p.span(), format!("probe {:?}: the port must be 1..=65535", p.get_ref())));
                    continue;
                }
                Some(a) => a,
                None => {
                    errors.push(err(p.span(), format!("probe {:?} is not ADDRESS or ADDRESS:PORT", p.get_ref())));
                    continue;
                }
            },
        };
        let Some(checks) = checks else { continue };
        if let (Some(p), Some(_)) = (&t.probe, probe.1)
            && checks.len() > 1
        {
            errors.push(err(
                p.span(),
                format!(
                    "probe {:?} gives a port, but target {address} has {} checks, each probed at its own port: \
                     give the address alone",
                    p.get_ref(),
                    checks.len()
                ),
            ));
            continue;
        }
        let checks: Vec<TargetCheck> = checks
            .into_iter()
            .map(|check| TargetCheck { probe: SocketAddr::new(probe.0, probe.1.unwrap_or(check.port)), check })
            .collect();
        if let Some(o) = targets.iter().find(|o| o.address == address && o.checks == checks) {
            errors.push(err(
                t.address.span(),
                format!(
                    "target {address} is listed at priority {} too, with the same checks: list it again only with \
                     other checks (a `check` of its own), as a weaker fallback",
                    o.priority
                ),
            ));
            continue;
        }
        targets.push(Target { address, priority: priority as u8, checks });
    }
    if targets.is_empty() && errors.is_empty() {
        errors.push(err(targets_span, "a pool needs at least one target".into()));
    }
    // A count no level could reach would skip that level for ever: a mistake, not a policy. A
    // level with no targets of a family is not a level of that family, so it is not counted.
    if let (Some(m), MinUp::Count(n)) = (&s.min_up, min_up) {
        let mut levels: Vec<(bool, u8)> = targets.iter().map(|t| (t.address.is_ipv6(), t.priority)).collect();
        levels.sort();
        levels.dedup();
        for (v6, level) in levels {
            let size = targets.iter().filter(|t| t.address.is_ipv6() == v6 && t.priority == level).count();
            if usize::from(n) > size {
                let family = if v6 { "IPv6" } else { "IPv4" };
                errors.push(err(
                    m.span(),
                    format!("min_up = {n} is more than the {size} {family} target(s) at priority {level}"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (line, col) = locate(text, key_span.start);
    Ok(Pool {
        name,
        ttl,
        ttl_min,
        checks: pool_checks.expect("checked above"),
        all_down: s.all_down.unwrap_or_default(),
        failback: s.failback.unwrap_or_default(),
        failback_delay,
        max_answers,
        min_up,
        targets,
        at: crate::model::position::Location { file: file.clone(), line, col },
    })
}

/// `ADDRESS` or `ADDRESS:PORT` (`[V6]:PORT`): the address, and the port if one is given.
/// A check's `host`, the name the service is asked for (Host header, SNI, the certificate's
/// name): a DNS name or an address, never a port, a path or a header's worth of text.
fn service_host(
    h: &Spanned<String>,
    cerr: &impl Fn(std::ops::Range<usize>, String) -> FileError,
) -> Result<(), FileError> {
    let t = h.get_ref().as_str();
    let name = !t.is_empty() && t.len() <= 253 && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if t.parse::<IpAddr>().is_ok() || (name && rustls::pki_types::ServerName::try_from(t).is_ok()) {
        return Ok(());
    }
    Err(cerr(h.span(), format!("host {t:?} is not a DNS name or an address (no port, path or spaces)")))
}

/// Why `a` can be no target or probe: it names no one host (`0.0.0.0`, `::`, a multicast or
/// the broadcast address), or None.
fn no_host(a: IpAddr) -> Option<&'static str> {
    match a {
        _ if a.is_unspecified() => Some("the unspecified address names no host"),
        _ if a.is_multicast() => Some("a multicast address names no one host"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address names no one host"),
        _ => None,
    }
}

fn parse_probe(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some((a.ip(), Some(a.port())));
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
    Some((ip, None))
}

/// The checks a `check = ...` names, resolved against the file's `[checks]`; None after an
/// error (pushed to `errors`). `owner` names inline checks: the pool's label, with the
/// target's address for a target's own.
fn checks_of(
    list: Spanned<CheckList>,
    owner: &str,
    named: &BTreeMap<String, Arc<Check>>,
    file: &Path,
    err: &impl Fn(std::ops::Range<usize>, String) -> FileError,
    errors: &mut Vec<FileError>,
) -> Option<Vec<Arc<Check>>> {
    let span = list.span();
    let refs = match list.into_inner() {
        CheckList::One(r) => vec![Spanned::new(span, r)],
        CheckList::Many(v) if v.is_empty() => {
            errors.push(err(span, "check = [] names no check: give at least one".into()));
            return None;
        }
        CheckList::Many(v) => v,
    };
    let several = refs.len() > 1;
    let before = errors.len();
    let mut out: Vec<Arc<Check>> = Vec::with_capacity(refs.len());
    for (i, r) in refs.into_iter().enumerate() {
        let span = r.span();
        let check = match r.into_inner() {
            CheckRef::Named(n) => match named.get(&n) {
                Some(c) => c.clone(),
                None => {
                    let known = named.keys().cloned().collect::<Vec<_>>().join(", ");
                    errors.push(err(span, format!("no check named {n:?} in this file (defined: {known})")));
                    continue;
                }
            },
            CheckRef::Inline(spec) => {
                let name = if several { format!("{owner} (inline {})", i + 1) } else { format!("{owner} (inline)") };
                match check_of(&name, *spec, span.clone(), file, err) {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
        };
        if out.iter().any(|c| c.name == check.name) {
            errors.push(err(span, format!("check {:?} is listed twice", check.name)));
            continue;
        }
        out.push(check);
    }
    (errors.len() == before).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::position::toml_error;

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
        assert_eq!(p.checks.len(), 1);
        let check = &p.checks[0];
        assert_eq!(check.port, 443);
        assert_eq!(check.interval, Duration::from_secs(2));
        assert_eq!(p.targets[0].probe(), "192.0.2.10:443".parse().unwrap());
        assert_eq!(p.targets[2].probe(), "10.0.0.10:8443".parse().unwrap());
        assert!(p.targets.iter().all(|t| t.checks.len() == 1 && Arc::ptr_eq(&t.checks[0].check, check)));
        match &check.probe {
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
        assert!(
            e[1].starts_with("example.com.toml:6:15: pool \"www\": target 192.0.2.11 is listed at priority 1 too, with the same checks"),
            "{}",
            e[1]
        );
        assert!(e[2].contains("\"banana\" is not an IPv4 or IPv6"), "{}", e[2]);
        assert!(e[3].contains("www.example.net. is not inside zone example.com."), "{}", e[3]);
    }

    #[test]
    fn min_up() {
        let pool = |min_up: &str| {
            pools(&format!(
                "[pools.www]\ncheck = {{ type = \"tcp\", port = 80 }}\nmin_up = {min_up}\ntargets = [\n  \
                 {{ address = \"192.0.2.1\", priority = 1 }},\n  {{ address = \"192.0.2.2\", priority = 1 }},\n  \
                 {{ address = \"2001:db8::1\", priority = 1 }},\n  {{ address = \"192.0.2.3\", priority = 2 }},\n]\n"
            ))
        };
        let (p, e) = pool("1");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p[0].min_up, MinUp::Count(1));
        let (p, e) = pool("\"50%\"");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p[0].min_up, MinUp::Percent(50));
        let (p, e) = pool("\"100%\"");
        assert_eq!((p[0].min_up, e.len()), (MinUp::Percent(100), 0));
        // Two is more than the one IPv6 target at priority 1 and the one IPv4 target at 2.
        let (_, e) = pool("2");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with(
                "example.com.toml:3:10: pool \"www\": min_up = 2 is more than the 1 IPv4 target(s) at priority 2"
            ),
            "{e:?}"
        );
        assert!(e[1].contains("the 1 IPv6 target(s) at priority 1"), "{e:?}");
        for (bad, msg) in [
            ("0", "min_up must be at least 1, got 0"),
            ("-3", "min_up must be at least 1"),
            ("70000", "more than any level can have"),
            ("\"0%\"", "a percentage must be 1% to 100%"),
            ("\"101%\"", "a percentage must be 1% to 100%"),
            ("\"half\"", "is neither a count (2) nor a percentage"),
            ("\"50\"", "is neither a count"),
            ("\"x%\"", "a percentage must be"),
        ] {
            let (_, e) = pool(bad);
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(e[0].starts_with("example.com.toml:3:10: pool \"www\": ") && e[0].contains(msg), "{bad}: {e:?}");
        }
    }

    /// `check` as a list, and a target's own `check`: every target ends up with its checks,
    /// each probed at its own port.
    #[test]
    fn several_checks_per_pool_and_per_target() {
        let (p, e) = pools(
            r#"
[checks.web]
type = "http"
[checks.db]
type = "tcp"
port = 5432
[checks.weak]
type = "tcp"
port = 22

[pools.www]
check = ["web", "db", { type = "tcp", port = 8080 }]
targets = [
  { address = "192.0.2.10", priority = 1 },
  { address = "192.0.2.11", priority = 1, probe = "10.0.0.11" },
  { address = "198.51.100.10", priority = 3, check = "weak" },
  { address = "198.51.100.11", priority = 3, check = ["weak", "web"] },
  { address = "198.51.100.12", priority = 3, check = { type = "tcp", port = 25 }, probe = "10.0.0.12:2525" },
]
[pools.one]
check = ["web"]
targets = [{ address = "192.0.2.20", priority = 1, probe = "10.0.0.20:8080" }]
"#,
        );
        assert!(e.is_empty(), "{e:?}");
        let www = p.iter().find(|p| p.name.to_string() == "www.example.com.").unwrap();
        let names = |c: &[Arc<Check>]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&www.checks), ["web", "db", "www (inline 3)"]);
        let probes =
            |t: &Target| t.checks.iter().map(|c| (c.check.name.clone(), c.probe.to_string())).collect::<Vec<_>>();
        let want = |ip: &str, checks: &[(&str, u16)]| {
            checks.iter().map(|(n, port)| (n.to_string(), format!("{ip}:{port}"))).collect::<Vec<_>>()
        };
        let pool_checks = [("web", 80), ("db", 5432), ("www (inline 3)", 8080)];
        assert_eq!(probes(&www.targets[0]), want("192.0.2.10", &pool_checks));
        assert_eq!(probes(&www.targets[1]), want("10.0.0.11", &pool_checks), "probe without a port: each check's own");
        assert_eq!(probes(&www.targets[2]), want("198.51.100.10", &[("weak", 22)]));
        assert_eq!(probes(&www.targets[3]), want("198.51.100.11", &[("weak", 22), ("web", 80)]));
        assert_eq!(probes(&www.targets[4]), want("10.0.0.12", &[("www 198.51.100.12 (inline)", 2525)]));
        // The pool's checks are shared, not copied, by the targets that use them.
        assert!(Arc::ptr_eq(&www.targets[0].checks[1].check, &www.checks[1]));
        assert!(Arc::ptr_eq(&www.targets[3].checks[1].check, &www.checks[0]));
        let one = p.iter().find(|p| p.name.to_string() == "one.example.com.").unwrap();
        assert_eq!(names(&one.checks), ["web"]);
        assert_eq!(one.targets[0].probe(), "10.0.0.20:8080".parse().unwrap(), "one check in a list: a port is fine");
    }

    #[test]
    fn several_checks_errors() {
        let head = "[checks.web]\ntype = \"http\"\n[checks.db]\ntype = \"tcp\"\nport = 5432\n[pools.www]\n";
        let cases = [
            (
                "check = [\"web\", \"nope\"]\ntargets = [{ address = \"192.0.2.1\", priority = 1 }]\n",
                "example.com.toml:7:17: pool \"www\": no check named \"nope\" in this file (defined: db, web)",
            ),
            (
                "check = []\ntargets = [{ address = \"192.0.2.1\", priority = 1 }]\n",
                "example.com.toml:7:9: pool \"www\": check = [] names no check: give at least one",
            ),
            (
                "check = [\"web\", \"db\", \"web\"]\ntargets = [{ address = \"192.0.2.1\", priority = 1 }]\n",
                "example.com.toml:7:23: pool \"www\": check \"web\" is listed twice",
            ),
            (
                "check = [\"web\", { type = \"tcp\" }]\ntargets = [{ address = \"192.0.2.1\", priority = 1 }]\n",
                "example.com.toml:7:17: pool \"www\": check \"www (inline 2)\": a tcp check needs a port",
            ),
            (
                "check = [\"web\", \"db\"]\ntargets = [{ address = \"192.0.2.1\", priority = 1, probe = \"10.0.0.1:8080\" }]\n",
                "example.com.toml:8:59: pool \"www\": probe \"10.0.0.1:8080\" gives a port, but target 192.0.2.1 has 2 checks, \
                 each probed at its own port: give the address alone",
            ),
            (
                "check = \"web\"\ntargets = [{ address = \"192.0.2.1\", priority = 1, check = [\"db\", \"web\"], probe = \"10.0.0.1:1\" }]\n",
                "example.com.toml:8:82: pool \"www\": probe \"10.0.0.1:1\" gives a port, but target 192.0.2.1 has 2 checks",
            ),
            (
                "check = \"web\"\ntargets = [{ address = \"192.0.2.1\", priority = 1, check = \"weak\" }]\n",
                "example.com.toml:8:59: pool \"www\": no check named \"weak\" in this file (defined: db, web)",
            ),
            (
                "check = \"web\"\ntargets = [{ address = \"192.0.2.1\", priority = 1, check = [] }]\n",
                "example.com.toml:8:59: pool \"www\": check = [] names no check",
            ),
            (
                "check = [\"web\", 7]\ntargets = [{ address = \"192.0.2.1\", priority = 1 }]\n",
                "example.com.toml:7:9: invalid type: integer `7`, expected the name of a check, or a check table",
            ),
        ];
        for (pool, want) in cases {
            let text = format!("{head}{pool}");
            let file: Arc<Path> = Path::new("example.com.toml").into();
            let e = match toml::from_str::<ZoneSpec>(&text) {
                Err(e) => vec![toml_error(&file, &text, &e).to_string()],
                Ok(_) => pools(&text).1,
            };
            assert!(e.len() == 1 && e[0].starts_with(want), "{text}\n{e:?}");
        }
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
        assert!(e[0].contains("interval must be 250ms to 1h, got 100ms"), "{e:?}");
    }

    fn one_check(text: &str) -> Check {
        let (p, e) = pools(&format!(
            "{text}\n[pools.www]\ncheck = \"c\"\ntargets = [{{ address = \"192.0.2.1\", priority = 1 }}]\n"
        ));
        assert!(e.is_empty(), "{e:?}");
        (*p[0].checks[0]).clone()
    }

    #[test]
    fn dns_checks() {
        let c = one_check("[checks.c]\ntype = \"dns\"\nname = \"www.example.net\"\n");
        assert_eq!((c.kind, c.port), (CheckKind::Dns, 53));
        let www = Name::parse("www.example.net.", None).unwrap();
        assert_eq!(c.probe, Probe::Dns { name: www.clone(), qtype: crate::model::rtype::A, rcode: 0, answer: None });
        let c = one_check(
            "[checks.c]\ntype = \"dns\"\nport = 5353\nname = \"www.example.net.\"\nqtype = \"aaaa\"\nexpect_rcode = \"NXDOMAIN\"\nexpect_answer = \"2001:db8::1\"\n",
        );
        let answer = Some(ExpectAnswer::Address("2001:db8::1".parse().unwrap()));
        assert_eq!(c.probe, Probe::Dns { name: www.clone(), qtype: crate::model::rtype::AAAA, rcode: 3, answer });
        assert_eq!(c.port, 5353);
        // Not an address query: the address is text to look for.
        let c = one_check(
            "[checks.c]\ntype = \"dns\"\nname = \"example.net\"\nqtype = \"TXT\"\nexpect_answer = \"192.0.2.1\"\n",
        );
        assert!(matches!(&c.probe, Probe::Dns { answer: Some(ExpectAnswer::Contains(t)), .. } if t == "192.0.2.1"));
    }

    /// Durations nobody means, hosts that are no host name, and addresses that name no one
    /// host: errors with the allowed values, where before `serve` panicked on the first (an
    /// Instant plus 4*10^11 years) or probed forever in vain.
    #[test]
    fn absurd_values_in_checks_and_pools() {
        let pool = |extra: &str, target: &str| {
            format!(
                "[checks.c]\ntype = \"tcp\"\nport = 1\n[pools.www]\ncheck = \"c\"\n{extra}targets = [{{ {target} }}]\n"
            )
        };
        let t = "address = \"192.0.2.1\", priority = 1";
        let cases = [
            (
                "[checks.a]\ntype = \"tcp\"\nport = 1\ninterval = \"400000000000years\"\n".to_string(),
                "example.com.toml:4:12: check \"a\": interval: \"400000000000years\" is longer than any setting takes",
            ),
            (
                "[checks.a]\ntype = \"tcp\"\nport = 1\ninterval = \"2h\"\n".to_string(),
                "example.com.toml:4:12: check \"a\": interval must be 250ms to 1h, got 7200s",
            ),
            (
                pool("failback_delay = \"8d\"\n", t),
                "example.com.toml:6:18: pool \"www\": failback_delay must be 0s to 7d, got 691200s",
            ),
            (
                pool("failback_delay = \"400000000000years\"\n", t),
                "example.com.toml:6:18: pool \"www\": failback_delay: \"400000000000years\" is longer than any setting takes",
            ),
            (
                "[checks.a]\ntype = \"mysql\"\ncredentials_file = \"x\"\nmax_replication_lag = \"2d\"\n".to_string(),
                "example.com.toml:4:23: check \"a\": max_replication_lag must be 1s to 1d",
            ),
            (
                "[checks.a]\ntype = \"http\"\nhost = \"www.example.com\\r\\nX-Evil: 1\"\n".to_string(),
                "example.com.toml:3:8: check \"a\": host \"www.example.com\\r\\nX-Evil: 1\" is not a DNS name",
            ),
            (
                "[checks.a]\ntype = \"http\"\nhost = \"localhost:8080\"\n".to_string(),
                "example.com.toml:3:8: check \"a\": host",
            ),
            (
                "[checks.a]\ntype = \"https\"\nhost = \"exa mple.com\"\n".to_string(),
                "example.com.toml:3:8: check \"a\": host",
            ),
            (
                "[checks.a]\ntype = \"http\"\nhost = \"example.net/x\"\n".to_string(),
                "example.com.toml:3:8: check \"a\": host",
            ),
            (
                "[checks.a]\ntype = \"http\"\npath = \"/a b\"\n".to_string(),
                "example.com.toml:3:8: check \"a\": path \"/a b\" is not a URL path",
            ),
            (
                pool("", "address = \"0.0.0.0\", priority = 1"),
                "example.com.toml:6:24: pool \"www\": target address 0.0.0.0: the unspecified address names no host",
            ),
            (
                pool("", "address = \"::\", priority = 1"),
                "example.com.toml:6:24: pool \"www\": target address ::: the unspecified",
            ),
            (
                pool("", "address = \"224.0.0.1\", priority = 1"),
                "example.com.toml:6:24: pool \"www\": target address 224.0.0.1: a multicast",
            ),
            (
                pool("", "address = \"255.255.255.255\", priority = 1"),
                "example.com.toml:6:24: pool \"www\": target address 255.255.255.255: the broadcast",
            ),
            (
                pool("", &format!("{t}, probe = \"127.0.0.1:0\"")),
                "example.com.toml:6:59: pool \"www\": probe \"127.0.0.1:0\": the port must be 1..=65535",
            ),
            (
                pool("", &format!("{t}, probe = \"0.0.0.0\"")),
                "example.com.toml:6:59: pool \"www\": probe \"0.0.0.0\": the unspecified address",
            ),
        ];
        for (text, want) in cases {
            let (_, e) = pools(&text);
            assert!(e.len() == 1 && e[0].starts_with(want), "{text}\n{e:?}");
        }
        let c = one_check("[checks.c]\ntype = \"https\"\nhost = \"2001:db8::1\"\npath = \"/health?x=1\"\n");
        assert!(matches!(c.probe, Probe::Http { host: Some(ref h), .. } if h == "2001:db8::1"));
    }

    #[test]
    fn dns_check_errors() {
        let cases = [
            ("[checks.a]\ntype = \"dns\"\n", "example.com.toml:1:1: check \"a\": a dns check needs a name to query"),
            (
                "[checks.a]\ntype = \"dns\"\nname = \"x.\"\nqtype = \"BOGUS\"\n",
                "example.com.toml:4:9: check \"a\": qtype \"BOGUS\" is not a record type",
            ),
            (
                "[checks.a]\ntype = \"dns\"\nname = \"x.\"\nqtype = \"AXFR\"\n",
                "example.com.toml:4:9: check \"a\": qtype AXFR is not a type a check can query",
            ),
            ("[checks.a]\ntype = \"dns\"\nname = \"x..y\"\n", "example.com.toml:3:8: check \"a\": name: empty label"),
            (
                "[checks.a]\ntype = \"dns\"\nname = \"x.\"\nexpect_rcode = \"BANANA\"\n",
                "example.com.toml:4:16: check \"a\": expect_rcode \"BANANA\" is not an rcode",
            ),
            (
                "[checks.a]\ntype = \"dns\"\nname = \"x.\"\nexpect_answer = \"2001:db8::1\"\n",
                "example.com.toml:4:17: check \"a\": expect_answer 2001:db8::1 can never be in an answer to qtype A",
            ),
            (
                "[checks.a]\ntype = \"dns\"\nname = \"x.\"\nexpect_answer = \"\"\n",
                "example.com.toml:4:17: check \"a\": expect_answer is empty",
            ),
            (
                "[checks.a]\ntype = \"dns\"\nname = \"x.\"\nsend = \"hi\"\n",
                "example.com.toml:4:8: check \"a\": send is only for tcp checks",
            ),
            (
                "[checks.a]\ntype = \"tcp\"\nport = 1\nname = \"x.\"\n",
                "example.com.toml:4:8: check \"a\": name is only for dns checks",
            ),
            (
                "[checks.a]\ntype = \"http\"\nexpect_rcode = \"NOERROR\"\n",
                "example.com.toml:3:16: check \"a\": expect_rcode is only for dns checks",
            ),
        ];
        for (text, want) in cases {
            let (_, e) = pools(text);
            assert!(e.len() == 1 && e[0].starts_with(want), "{text}\n{e:?}");
        }
    }

    #[test]
    fn smtp_checks() {
        let c = one_check("[checks.c]\ntype = \"smtp\"\n");
        assert_eq!((c.kind, c.port), (CheckKind::Smtp, 25));
        assert_eq!(c.probe, Probe::Smtp { helo: None, starttls: false, host: None, tls_verify: true });
        assert!(!c.probe.skips_tls_verification());
        let c = one_check(
            "[checks.c]\ntype = \"smtp\"\nport = 587\nhelo = \"probe.example.com\"\nstarttls = true\nhost = \"mx.example.com\"\ntls_verify = false\n",
        );
        assert_eq!(c.port, 587);
        assert_eq!(
            c.probe,
            Probe::Smtp {
                helo: Some("probe.example.com".into()),
                starttls: true,
                host: Some("mx.example.com".into()),
                tls_verify: false
            }
        );
        assert!(c.probe.skips_tls_verification());
    }

    #[test]
    fn smtp_check_errors() {
        let cases = [
            (
                "[checks.a]\ntype = \"smtp\"\ntls_verify = false\n",
                "example.com.toml:3:14: check \"a\": tls_verify is only for smtp checks with starttls = true",
            ),
            (
                "[checks.a]\ntype = \"smtp\"\nhost = \"mx.example.com\"\n",
                "example.com.toml:3:8: check \"a\": host is only for smtp checks with starttls = true",
            ),
            (
                "[checks.a]\ntype = \"smtp\"\nstarttls = true\nhost = \"not a name\"\n",
                "example.com.toml:4:8: check \"a\": host \"not a name\" is not a DNS name",
            ),
            (
                "[checks.a]\ntype = \"smtp\"\nhelo = \"a b\"\n",
                "example.com.toml:3:8: check \"a\": helo \"a b\" is not a domain name",
            ),
            (
                "[checks.a]\ntype = \"smtp\"\npath = \"/\"\n",
                "example.com.toml:3:8: check \"a\": path is only for http/https checks",
            ),
            (
                "[checks.a]\ntype = \"https\"\nstarttls = true\n",
                "example.com.toml:3:12: check \"a\": starttls is only for smtp checks",
            ),
            (
                "[checks.a]\ntype = \"http\"\ntls_verify = true\n",
                "example.com.toml:3:14: check \"a\": tls_verify is only for https/smtp/galera/mysql checks",
            ),
            ("[checks.a]\ntype = \"smtp\"\nstarttls = \"yes\"\n", "example.com.toml:3:12: invalid type"),
        ];
        for (text, want) in cases {
            let file: Arc<Path> = Path::new("example.com.toml").into();
            let e = match toml::from_str::<ZoneSpec>(text) {
                Err(e) => vec![toml_error(&file, text, &e).to_string()],
                Ok(_) => pools(text).1,
            };
            assert!(e.len() == 1 && e[0].starts_with(want), "{text}\n{e:?}");
        }
    }

    #[test]
    fn a_server_listed_again_needs_other_checks_and_another_priority() {
        let pool = |targets: &str| {
            format!(
                "[checks.strict]\ntype = \"tcp\"\nport = 3306\n[checks.weak]\ntype = \"tcp\"\nport = 22\n[pools.db]\ncheck = \"strict\"\ntargets = [{targets}]\n"
            )
        };
        let (p, e) = pools(&pool(
            "{ address = \"192.0.2.1\", priority = 1 }, { address = \"192.0.2.2\", priority = 2 }, { address = \"192.0.2.1\", priority = 3, check = \"weak\" }",
        ));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p[0].targets.len(), 3);
        let (_, e) =
            pools(&pool("{ address = \"192.0.2.1\", priority = 1 }, { address = \"192.0.2.1\", priority = 3 }"));
        assert!(e[0].contains("target 192.0.2.1 is listed at priority 1 too, with the same checks"), "{e:?}");
        let (_, e) = pools(&pool(
            "{ address = \"192.0.2.1\", priority = 1 }, { address = \"192.0.2.1\", priority = 1, check = \"weak\" }",
        ));
        assert!(e[0].contains("target 192.0.2.1 is listed twice at priority 1"), "{e:?}");
    }

    #[test]
    fn http_headers_that_no_request_could_carry_are_errors() {
        for (headers, want) in [
            ("{ \"X-A\" = \"ok\\r\\nX-Injected: 1\" }", "headers: the value of X-A has a control character"),
            ("{ \"X A\" = \"ok\" }", "headers: \"X A\" is not a header name"),
        ] {
            let text = format!("[checks.a]\ntype = \"http\"\nheaders = {headers}\n");
            let e = pools(&text).1;
            assert!(
                e.len() == 1 && e[0].starts_with("example.com.toml:3:11: check \"a\": ") && e[0].contains(want),
                "{e:?}"
            );
        }
        let c = one_check("[checks.c]\ntype = \"http\"\nheaders = { \"X-Probe\" = \"weiche\" }\n");
        assert!(matches!(c.probe, Probe::Http { ref headers, .. } if headers.len() == 1));
    }

    /// A credentials file in a fresh folder, and its path as a TOML string.
    fn creds(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("galera.cnf");
        std::fs::write(&path, text).unwrap();
        (dir, path.display().to_string())
    }

    #[test]
    fn galera_and_mysql_checks() {
        let (_d, cf) = creds("[client]\nuser = monitor\npassword = \"p#1\"\n");
        let c = one_check(&format!("[checks.c]\ntype = \"galera\"\ncredentials_file = \"{cf}\"\n"));
        assert_eq!((c.kind, c.port), (CheckKind::Galera, 3306));
        let Probe::Galera { login, donor_ok, read_only_ok } = &c.probe else { panic!("{:?}", c.probe) };
        assert_eq!((login.user.as_str(), login.password.0.as_str()), ("monitor", "p#1"));
        assert_eq!((*donor_ok, *read_only_ok, &login.tls), (false, true, &None));
        assert!(!format!("{c:?}").contains("p#1"), "the password is never printed");
        let c = one_check(&format!(
            "[checks.c]\ntype = \"galera\"\ncredentials_file = \"{cf}\"\ndonor_ok = true\nread_only_ok = false\ntls = true\ntls_verify = false\nhost = \"db.example.com\"\n"
        ));
        let Probe::Galera { login, donor_ok, read_only_ok } = &c.probe else { panic!() };
        assert_eq!((*donor_ok, *read_only_ok), (true, false));
        assert_eq!(login.tls, Some(SqlTls { verify: false, host: Some("db.example.com".into()), ca: None }));
        assert!(c.probe.skips_tls_verification());
        let c = one_check(&format!("[checks.c]\ntype = \"mysql\"\ncredentials_file = \"{cf}\"\n"));
        let Probe::Mysql { query, max_replication_lag, .. } = &c.probe else { panic!() };
        assert_eq!((query.as_str(), *max_replication_lag), ("SELECT 1", None));
        let c = one_check(&format!(
            "[checks.c]\ntype = \"mysql\"\nport = 3307\ncredentials_file = \"{cf}\"\nquery = \"SELECT @@read_only = 0\"\nmax_replication_lag = \"30s\"\n"
        ));
        let Probe::Mysql { query, max_replication_lag, .. } = &c.probe else { panic!() };
        assert_eq!(c.port, 3307);
        assert_eq!((query.as_str(), *max_replication_lag), ("SELECT @@read_only = 0", Some(Duration::from_secs(30))));
    }

    #[test]
    fn galera_and_mysql_check_errors() {
        let (_d, cf) = creds("[client]\nuser = monitor\npassword = pw\n");
        let (_e, no_user) = creds("[client]\npassword = pw\n");
        let cases = [
            ("type = \"galera\"\n".to_string(), "2:1: check \"a\": a galera check needs credentials_file".to_string()),
            (
                "type = \"galera\"\ncredentials_file = \"/nonexistent/weiche.cnf\"\n".into(),
                "4:20: check \"a\": credentials_file /nonexistent/weiche.cnf No such file".into(),
            ),
            (
                "type = \"galera\"\ncredentials_file = \"/\"\n".into(),
                "4:20: check \"a\": credentials_file / is a directory; only regular files are read".into(),
            ),
            (
                format!("type = \"mysql\"\ncredentials_file = \"{no_user}\"\n"),
                format!("4:20: check \"a\": credentials_file {no_user}: [client] has no user="),
            ),
            (
                format!("type = \"galera\"\ncredentials_file = \"{cf}\"\ntls_verify = false\n"),
                "5:14: check \"a\": tls_verify is only for galera checks with tls = true".into(),
            ),
            (
                format!("type = \"galera\"\ncredentials_file = \"{cf}\"\nquery = \"SELECT 1\"\n"),
                "5:9: check \"a\": query is only for mysql checks".into(),
            ),
            (
                format!("type = \"mysql\"\ncredentials_file = \"{cf}\"\ndonor_ok = true\n"),
                "5:12: check \"a\": donor_ok is only for galera checks".into(),
            ),
            (
                format!("type = \"mysql\"\ncredentials_file = \"{cf}\"\nmax_replication_lag = \"500ms\"\n"),
                "5:23: check \"a\": max_replication_lag must be 1s to 1d".into(),
            ),
            (
                format!("type = \"mysql\"\ncredentials_file = \"{cf}\"\ntls = true\ntls_ca = \"{cf}\"\n"),
                format!("6:10: check \"a\": tls_ca {cf}: no PEM certificate in it"),
            ),
            (
                "type = \"tcp\"\nport = 1\ncredentials_file = \"x\"\n".into(),
                "5:20: check \"a\": credentials_file is only for galera/mysql checks".into(),
            ),
        ];
        for (body, want) in cases {
            let text = format!("\n[checks.a]\n{body}");
            let e = pools(&text).1;
            let want = format!("example.com.toml:{want}");
            assert!(e.len() == 1 && e[0].starts_with(&want), "{text}\n{e:?}\nwant {want}");
        }
    }
}

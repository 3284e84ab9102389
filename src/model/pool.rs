//! Pools, their targets and the checks that judge them: the validated values a zone TOML file
//! becomes (`load::zone_toml` parses them).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::model::chart::{AllDown, Failback, MinUp};
use crate::model::name::Name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Tcp,
    Http,
    Https,
    Dns,
    Smtp,
    Galera,
    Mysql,
}

impl CheckKind {
    /// As written in `type = "…"`.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
            CheckKind::Https => "https",
            CheckKind::Dns => "dns",
            CheckKind::Smtp => "smtp",
            CheckKind::Galera => "galera",
            CheckKind::Mysql => "mysql",
        }
    }
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
    /// A query to the target; the reply's rcode and optionally an answer decide.
    Dns {
        name: Name,
        qtype: u16,
        rcode: u16,
        answer: Option<ExpectAnswer>,
    },
    /// An SMTP session: banner, EHLO, optionally STARTTLS, QUIT.
    Smtp {
        /// The EHLO name (None: this machine's host name).
        helo: Option<String>,
        starttls: bool,
        /// TLS server name (None: the target's address).
        host: Option<String>,
        tls_verify: bool,
    },
    /// A MariaDB/MySQL login, then the node's wsrep (Galera) status decides.
    Galera {
        login: SqlLogin,
        /// A donor (wsrep_local_state 2) counts as up.
        donor_ok: bool,
        /// A node with `read_only = ON` counts as up.
        read_only_ok: bool,
    },
    /// A MariaDB/MySQL login, then a query whose first column must be truthy, and optionally
    /// the replica's lag.
    Mysql {
        login: SqlLogin,
        query: String,
        max_replication_lag: Option<Duration>,
    },
}

/// How the `galera` and `mysql` checks log in: the monitoring user of a MySQL option file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqlLogin {
    pub user: String,
    pub password: Secret,
    /// Where the credentials came from, for messages.
    pub credentials_file: std::path::PathBuf,
    /// None: no TLS.
    pub tls: Option<SqlTls>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqlTls {
    pub verify: bool,
    /// The name the certificate must carry (None: the target's address).
    pub host: Option<String>,
    /// PEM certificates of the CAs to trust besides the public roots (`tls_ca`, read at load).
    pub ca: Option<Vec<u8>>,
}

/// A password: compared and hashed like a string, never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What one record of a DNS check's answer section must show.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExpectAnswer {
    /// An A or AAAA record with exactly this address.
    Address(IpAddr),
    /// Text within a record's data in presentation form, compared ignoring ASCII case.
    Contains(String),
}

impl Probe {
    /// Whether the check talks TLS without verifying the certificate, which the operator
    /// should be reminded of.
    pub fn skips_tls_verification(&self) -> bool {
        matches!(
            self,
            Probe::Http { tls: true, tls_verify: false, .. } | Probe::Smtp { starttls: true, tls_verify: false, .. }
        ) || match self {
            Probe::Galera { login, .. } | Probe::Mysql { login, .. } => login.tls.as_ref().is_some_and(|t| !t.verify),
            _ => false,
        }
    }
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
    /// Every check that judges it, each with where it probes; all must pass for the target to
    /// be up (the worst verdict wins). The pool's checks unless the target names its own;
    /// never empty.
    pub checks: Vec<TargetCheck>,
}

/// One check of a target and where it probes: the answered address (or the target's `probe`
/// address) at the check's port, unless a target with a single check gives a port of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCheck {
    pub check: Arc<Check>,
    pub probe: SocketAddr,
}

impl Target {
    /// Where its first check probes: the one address the status shows for the target.
    pub fn probe(&self) -> SocketAddr {
        self.checks[0].probe
    }
}

/// A validated pool: the A/AAAA answer of one owner name.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: Name,
    pub ttl: u32,
    pub ttl_min: u32,
    /// The checks of every target that does not name its own (`check = ...`); never empty.
    pub checks: Vec<Arc<Check>>,
    pub all_down: AllDown,
    pub failback: Failback,
    pub failback_delay: Duration,
    pub max_answers: Option<u16>,
    /// How many targets of a level (per family) must be up for it to count as healthy.
    pub min_up: MinUp,
    pub targets: Vec<Target>,
    /// Where `[pools.NAME]` is written, for messages.
    pub at: crate::model::position::Location,
}

/// RCODE mnemonics (RFC 1035, RFC 2136, RFC 6891) a DNS check can expect.
const RCODES: &[(u16, &str)] = &[
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (6, "YXDOMAIN"),
    (7, "YXRRSET"),
    (8, "NXRRSET"),
    (9, "NOTAUTH"),
    (10, "NOTZONE"),
    (16, "BADVERS"),
];

/// Parses an RCODE mnemonic (case-insensitively) or its number (0..=4095).
pub fn rcode_from_str(s: &str) -> Option<u16> {
    if let Some((n, _)) = RCODES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
        return Some(*n);
    }
    s.parse().ok().filter(|n| *n <= 4095)
}

pub fn rcode_name(rcode: u16) -> String {
    match RCODES.iter().find(|(n, _)| *n == rcode) {
        Some((_, m)) => (*m).to_string(),
        None => format!("RCODE{rcode}"),
    }
}

/// Whether `s` can follow EHLO: a domain or an address literal (RFC 5321 §4.1.3), and above
/// all nothing that could smuggle a second command into the session.
pub fn is_helo_name(s: &str) -> bool {
    if let Some(lit) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return !lit.is_empty() && lit.bytes().all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b));
    }
    !s.is_empty()
        && s.len() <= 255
        && s.split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// A check less often than hourly is no health check.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The longest `failback_delay`: a week.
pub const MAX_FAILBACK_DELAY: Duration = Duration::from_secs(7 * 86_400);
/// The longest `max_replication_lag`: a day.
pub const MAX_REPLICATION_LAG: Duration = Duration::from_secs(86_400);

/// Ready-made values for other modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::path::Path;

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
        let check = Arc::new(tcp_check());
        Pool {
            name: Name::parse(name, None).unwrap(),
            ttl: 30,
            ttl_min: 5,
            checks: vec![check.clone()],
            all_down,
            failback: Failback::Auto,
            failback_delay: Duration::ZERO,
            max_answers: None,
            min_up: MinUp::default(),
            targets: targets
                .iter()
                .map(|(a, p)| {
                    let address: IpAddr = a.parse().unwrap();
                    let probe = SocketAddr::new(address, 80);
                    Target { address, priority: *p, checks: vec![TargetCheck { check: check.clone(), probe }] }
                })
                .collect(),
            at: crate::model::position::Location { file: Path::new("t.toml").into(), line: 9, col: 8 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_names() {
        for ok in ["mx1.example.com", "weiche.invalid", "host", "[192.0.2.1]", "[IPv6:2001:db8::1]"] {
            assert!(is_helo_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a\r\nMAIL FROM:<x>", "-x.example", "a..b", "[]", "é.example"] {
            assert!(!is_helo_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn rcodes() {
        assert_eq!(rcode_from_str("nxdomain"), Some(3));
        assert_eq!(rcode_from_str("REFUSED"), Some(5));
        assert_eq!(rcode_from_str("23"), Some(23));
        assert_eq!(rcode_from_str("4096"), None);
        assert_eq!(rcode_from_str("NOPE"), None);
        assert_eq!((rcode_name(0), rcode_name(23)), ("NOERROR".to_string(), "RCODE23".to_string()));
    }
}

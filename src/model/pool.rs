//! Pools, their targets and the checks that judge them: the validated values a zone TOML file
//! becomes (`load::zone_toml` parses them).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::model::chart::{AllDown, Failback};
use crate::model::name::Name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Tcp,
    Http,
    Https,
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
    pub at: crate::model::position::Location,
}

pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(100);

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
            at: crate::model::position::Location { file: Path::new("t.toml").into(), line: 9, col: 8 },
        }
    }
}

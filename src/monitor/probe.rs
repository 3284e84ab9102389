//! One probe of one target, whatever the check type: the [`Prober`] picks the type for a check
//! (each one a file under `checks/`, implementing [`Probe`]) and holds every probe to the
//! check's timeout.
//!
//! A probe opens a fresh connection every time: a reused one would hide firewall and
//! load-balancer failures. It ends the conversation the way the protocol expects (QUIT, a TCP
//! shutdown), so that the service logs a normal client rather than an aborted one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::model::pool::{Check, Probe as Spec};
use crate::monitor::checks::{self, Probe};

type BoxedProbe<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// [`Probe`] with its future boxed, so that probers of different types can sit behind one
/// pointer (`async fn` in a trait cannot be called through `dyn`).
trait DynProbe: Send + Sync {
    fn probe_boxed(&self) -> BoxedProbe<'_>;
}

impl<P: Probe> DynProbe for P {
    fn probe_boxed(&self) -> BoxedProbe<'_> {
        Box::pin(self.probe())
    }
}

/// What is needed to probe one (address, check) repeatedly.
pub struct Prober {
    timeout: Duration,
    inner: Box<dyn DynProbe>,
}

impl Prober {
    /// A prober of `check` at `addr`, sending from `source` (None: the system picks).
    pub fn new(addr: SocketAddr, check: Arc<Check>, source: Option<std::net::IpAddr>) -> Result<Prober, String> {
        let inner: Box<dyn DynProbe> = match &check.probe {
            Spec::Tcp { .. } => Box::new(checks::tcp::TcpProbe::new(addr, &check, source)),
            Spec::Http { .. } => Box::new(checks::http::HttpProbe::new(addr, &check, source)?),
            Spec::Dns { .. } => Box::new(checks::dns::DnsProbe::new(addr, &check, source)?),
            Spec::Smtp { .. } => Box::new(checks::smtp::SmtpProbe::new(addr, &check, source)?),
            Spec::Galera { .. } => Box::new(checks::galera::GaleraProbe::new(addr, &check)),
            Spec::Mysql { .. } => Box::new(checks::mysql::MysqlProbe::new(addr, &check)),
        };
        Ok(Prober { timeout: check.timeout, inner })
    }

    /// Runs one probe: Ok(()) if the target passed, or why it failed.
    pub async fn probe(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.inner.probe_boxed()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", fmt_duration(self.timeout))),
        }
    }
}

pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

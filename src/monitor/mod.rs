//! The health monitor: probes every pool target and reports verdict changes to the publisher.
//!
//! Each distinct (probe address, check) is probed by one task, however many pools use it. Tasks
//! are independent: a target that hangs costs only its own timeout. A semaphore bounds how many
//! probes run at once. The monitor owns the rise/fall counters; the publisher only ever sees
//! [`Update`]s. It never touches the snapshot or the query path.

pub mod checks;
pub mod hysteresis;
pub mod probe;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use crate::model::chart::Health;
use crate::model::pool::Check;
pub use hysteresis::{TargetState, Transition};

/// Most probes in flight at once.
pub const MAX_CONCURRENT_PROBES: usize = 1024;

/// What is probed: an address and a check. Pools that share both share the probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub addr: SocketAddr,
    pub check: Arc<CheckKey>,
}

/// A check compared by what it does (its name and where it is defined do not matter).
#[derive(Debug, Clone)]
pub struct CheckKey(pub Check);

impl PartialEq for CheckKey {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.0, &o.0);
        (a.kind, a.port, a.interval, a.timeout, a.retry_interval, a.fall, a.rise, &a.probe)
            == (b.kind, b.port, b.interval, b.timeout, b.retry_interval, b.fall, b.rise, &b.probe)
    }
}
impl Eq for CheckKey {}
impl Hash for CheckKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let c = &self.0;
        (c.kind, c.port, c.interval, c.timeout, c.retry_interval, c.fall, c.rise, &c.probe).hash(h)
    }
}
impl ProbeKey {
    pub fn new(addr: SocketAddr, check: &Check) -> ProbeKey {
        ProbeKey { addr, check: Arc::new(CheckKey(check.clone())) }
    }
}

/// One probe's result, with the verdict it leaves.
#[derive(Debug, Clone)]
pub struct Update {
    pub key: ProbeKey,
    pub state: TargetState,
    pub transition: Option<Transition>,
    /// Why the last probe failed (None: it passed).
    pub cause: Option<String>,
    pub latency: Duration,
    /// Carries a probe's result (`cause`, `latency` are fresh). False for a verdict the
    /// cluster's vote moved, which repeats the last probe's.
    pub probed: bool,
    /// Who decided a `transition` when it is not this member's probes alone (the cluster's
    /// vote: which members, what weight).
    pub decided_by: Option<String>,
}

/// Runs one task per probe key and sends updates on `tx`.
pub struct Monitor {
    tx: mpsc::UnboundedSender<Update>,
    limit: Arc<Semaphore>,
    tasks: HashMap<ProbeKey, AbortHandle>,
    /// Where probes are sent from (None: the system picks).
    source: Option<std::net::IpAddr>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

impl Monitor {
    pub fn new(tx: mpsc::UnboundedSender<Update>) -> Monitor {
        Monitor { tx, limit: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)), tasks: HashMap::new(), source: None }
    }

    /// Probes are sent from `source` (`probe_source`; None: the system picks).
    pub fn with_source(mut self, source: Option<std::net::IpAddr>) -> Monitor {
        self.source = source;
        self
    }

    /// Probes exactly `keys` from now on: new ones start (unknown), removed ones stop, the rest
    /// keep their counters.
    pub fn set_targets(&mut self, keys: impl IntoIterator<Item = ProbeKey>) {
        let wanted: HashMap<ProbeKey, ()> = keys.into_iter().map(|k| (k, ())).collect();
        self.tasks.retain(|k, t| {
            let keep = wanted.contains_key(k);
            if !keep {
                t.abort();
            }
            keep
        });
        for key in wanted.into_keys() {
            if self.tasks.contains_key(&key) {
                continue;
            }
            let handle =
                tokio::spawn(probe_loop(key.clone(), self.tx.clone(), self.limit.clone(), self.source)).abort_handle();
            self.tasks.insert(key, handle);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// A stable fraction in [0, 1) for a key, to spread probes of different targets over the interval.
fn phase(key: &ProbeKey) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % 10_000) as f64 / 10_000.0
}

async fn probe_loop(
    key: ProbeKey,
    tx: mpsc::UnboundedSender<Update>,
    limit: Arc<Semaphore>,
    source: Option<std::net::IpAddr>,
) {
    let check = &key.check.0;
    let prober = match probe::Prober::new(key.addr, Arc::new(check.clone()), source) {
        Ok(p) => p,
        Err(e) => {
            warn!(target = %key.addr, check = %check.name, error = %e, "cannot probe this target");
            return;
        }
    };
    if check.probe.skips_tls_verification() {
        warn!(target = %key.addr, check = %check.name, "certificate verification is off for this check (tls_verify = false)");
    }
    let mut state = TargetState::default();
    let mut first = true;
    loop {
        let started = tokio::time::Instant::now();
        let result = {
            let Ok(_permit) = limit.acquire().await else {
                return;
            };
            prober.probe().await
        };
        let latency = started.elapsed();
        let ok = result.is_ok();
        let transition = state.observe(ok, check.rise, check.fall);
        debug!(target = %key.addr, check = %check.name, ok, latency_ms = latency.as_millis() as u64, cause = result.as_ref().err().map(String::as_str), "probe");
        let outcome = if ok { "ok" } else { "fail" };
        metrics::counter!("weiche_probes_total", "check" => check.name.clone(), "result" => outcome).increment(1);
        metrics::histogram!("weiche_probe_latency_seconds", "check" => check.name.clone())
            .record(latency.as_secs_f64());
        // Every result goes to the publisher (the status API shows the last one); it decides
        // whether answers change.
        let update = Update {
            key: key.clone(),
            state: state.clone(),
            transition,
            cause: result.err(),
            latency,
            probed: true,
            decided_by: None,
        };
        if tx.send(update).is_err() {
            return;
        }
        let mut wait =
            if state.in_doubt() || state.verdict == Health::Unknown { check.retry_interval } else { check.interval };
        if first {
            // The start-up round runs at once for every target; afterwards targets keep
            // distinct phases, so probes are spread over the interval, not fired in bursts.
            wait = wait.mul_f64(0.5 + phase(&key));
            first = false;
        }
        tokio::time::sleep_until(started + wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn check() -> Check {
        crate::model::pool::testing::tcp_check()
    }

    /// With the clock paused, the schedule is exact: a failure on an up target is probed again
    /// after `retry_interval`, and `fall` failures take it down within interval + (fall-1) × retry.
    #[tokio::test(start_paused = true)]
    async fn failures_are_confirmed_at_the_retry_interval() {
        let listener = std::net::TcpListener::bind("127.0.0.81:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut m = Monitor::new(tx);
        m.set_targets([ProbeKey::new(addr, &check())]);
        let first = rx.recv().await.unwrap();
        assert_eq!(first.transition.map(|t| t.to), Some(Health::Up));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        drop(listener);
        let killed = Instant::now();
        // Every probe reports; wait for the first that disagrees, then for the verdict.
        let doubt = loop {
            let u = rx.recv().await.unwrap();
            if u.state.in_doubt() || u.transition.is_some() {
                break u;
            }
        };
        let t_doubt = Instant::now();
        assert!(doubt.transition.is_none() && doubt.state.in_doubt());
        assert!(t_doubt - killed <= Duration::from_secs(1), "first failure within one interval");
        let down = loop {
            let u = rx.recv().await.unwrap();
            if u.transition.is_some() {
                break u;
            }
        };
        let t_down = Instant::now();
        assert_eq!(down.transition.map(|t| (t.to, t.after)), Some((Health::Down, 3)));
        assert_eq!(down.cause.as_deref(), Some("connection refused"));
        let confirm = t_down - t_doubt;
        assert!(
            confirm >= Duration::from_millis(400) && confirm < Duration::from_millis(450),
            "two retries: {confirm:?}"
        );
        // Removing the target stops its probes.
        m.set_targets([]);
        assert!(m.is_empty());
    }
}

//! Query counters for the metrics endpoint, kept off the query path's way: every UDP thread owns
//! a block of relaxed atomic counters (no cache line shared between threads); a scrape sums
//! them and hands the totals to the `metrics` facade.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::dns::answer::Outcome;
use crate::dns::rrl::Kind;
use crate::model::rtype;

/// Query types counted by name; the rest count as "other".
const QTYPES: [u16; 16] = [
    rtype::A,
    rtype::AAAA,
    rtype::CNAME,
    rtype::MX,
    rtype::NS,
    rtype::SOA,
    rtype::TXT,
    rtype::SRV,
    rtype::PTR,
    rtype::CAA,
    rtype::HTTPS,
    rtype::SVCB,
    rtype::DS,
    rtype::ANY,
    rtype::AXFR,
    rtype::IXFR,
];
const N_QTYPE: usize = QTYPES.len() + 1;
/// RCODEs 0..=15, and 16 (BADVERS) in the last slot.
const N_RCODE: usize = 17;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
    /// UDP answered through AF_XDP (`xdp`).
    Xdp = 2,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Xdp => "xdp",
        }
    }
}

/// One UDP thread's counters (written by that thread only), or the TCP tasks' (shared).
#[repr(align(128))]
pub struct Counters {
    rcode: [AtomicU64; N_RCODE],
    qtype: [AtomicU64; N_QTYPE],
    truncated: AtomicU64,
    dropped: AtomicU64,
    /// Responses rate limiting dropped, and slipped, by `rrl::Kind`.
    rrl_dropped: [AtomicU64; N_RRL_KIND],
    rrl_slipped: [AtomicU64; N_RRL_KIND],
    transport: Transport,
}

const N_RRL_KIND: usize = Kind::ALL.len();

impl Counters {
    fn new(transport: Transport) -> Counters {
        Counters {
            rcode: std::array::from_fn(|_| AtomicU64::new(0)),
            qtype: std::array::from_fn(|_| AtomicU64::new(0)),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rrl_dropped: std::array::from_fn(|_| AtomicU64::new(0)),
            rrl_slipped: std::array::from_fn(|_| AtomicU64::new(0)),
            transport,
        }
    }

    /// Counts one message: answered with `outcome`, or dropped (None).
    #[inline]
    pub fn count(&self, outcome: Option<Outcome>) {
        let Some(o) = outcome else {
            self.bump(&self.dropped);
            return;
        };
        self.bump(&self.rcode[(o.rcode as usize).min(N_RCODE - 1)]);
        self.count_query(o.qtype);
        if o.truncated {
            self.bump(&self.truncated);
        }
    }

    /// Counts a query of type `qtype` (answered or not).
    #[inline]
    pub fn count_query(&self, qtype: u16) {
        let q = QTYPES.iter().position(|&t| t == qtype).unwrap_or(N_QTYPE - 1);
        self.bump(&self.qtype[q]);
    }

    /// Counts a response of `kind` that rate limiting dropped, or slipped.
    pub fn count_rrl(&self, kind: Kind, dropped: bool) {
        self.bump(if dropped { &self.rrl_dropped[kind as usize] } else { &self.rrl_slipped[kind as usize] });
    }

    /// Adds one. A UDP or XDP thread's block has one writer, so a plain load and store will do (no
    /// locked read-modify-write on the query path); the TCP block is shared by its tasks.
    #[inline]
    fn bump(&self, c: &AtomicU64) {
        if self.transport != Transport::Tcp {
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn registry() -> &'static Mutex<Vec<Arc<Counters>>> {
    static ALL: OnceLock<Mutex<Vec<Arc<Counters>>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
}

/// A new block of counters, included in every later scrape.
pub fn counters(transport: Transport) -> Arc<Counters> {
    let c = Arc::new(Counters::new(transport));
    registry().lock().expect("stats registry").push(c.clone());
    c
}

fn rcode_name(i: usize) -> &'static str {
    [
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
        "RCODE12",
        "RCODE13",
        "RCODE14",
        "RCODE15",
        "BADVERS",
    ][i]
}

/// Hands the summed counters to the metrics facade (called before rendering `/metrics`).
pub fn export() {
    let all = registry().lock().expect("stats registry");
    for transport in [Transport::Udp, Transport::Tcp, Transport::Xdp] {
        let t = transport.label();
        let blocks: Vec<&Arc<Counters>> = all.iter().filter(|c| c.transport == transport).collect();
        if blocks.is_empty() {
            continue; // e.g. no XDP path
        }
        let sum = |f: &dyn Fn(&Counters) -> u64| blocks.iter().map(|c| f(c)).sum::<u64>();
        for i in 0..N_RCODE {
            let v = sum(&|c| c.rcode[i].load(Ordering::Relaxed));
            if v > 0 {
                metrics::counter!("weiche_responses_total", "transport" => t, "rcode" => rcode_name(i)).absolute(v);
            }
        }
        for (i, name) in QTYPES.iter().map(|&q| rtype::name(q)).chain(std::iter::once("other".into())).enumerate() {
            let v = sum(&|c| c.qtype[i].load(Ordering::Relaxed));
            if v > 0 {
                metrics::counter!("weiche_queries_total", "transport" => t, "qtype" => name.into_owned()).absolute(v);
            }
        }
        metrics::counter!("weiche_truncated_total", "transport" => t)
            .absolute(sum(&|c| c.truncated.load(Ordering::Relaxed)));
        metrics::counter!("weiche_dropped_total", "transport" => t)
            .absolute(sum(&|c| c.dropped.load(Ordering::Relaxed)));
        if transport == Transport::Tcp {
            continue; // never rate limited
        }
        for kind in Kind::ALL {
            let k = kind.label();
            let i = kind as usize;
            metrics::counter!("weiche_rrl_dropped_total", "transport" => t, "kind" => k)
                .absolute(sum(&|c| c.rrl_dropped[i].load(Ordering::Relaxed)));
            metrics::counter!("weiche_rrl_slipped_total", "transport" => t, "kind" => k)
                .absolute(sum(&|c| c.rrl_slipped[i].load(Ordering::Relaxed)));
        }
    }
}

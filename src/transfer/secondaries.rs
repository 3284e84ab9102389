//! NOTIFY (RFC 1996) to a zone's secondaries whenever its serial changes, so they transfer the
//! new answers within moments instead of at their next refresh.
//!
//! One task per (zone, secondary): it sends the newest serial, retries with backoff until the
//! secondary answers (a few tries), and coalesces: a change while a NOTIFY is pending only
//! replaces the serial to announce.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::NotifyTarget;
use crate::model::name::Name;
use crate::model::rtype;
use crate::model::zone::RRset;

/// Tries per announcement (the first and the retries).
const TRIES: u32 = 5;
/// Wait for an answer to the first try; doubled for each retry.
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// A zone whose serial changed.
#[derive(Debug, Clone)]
pub struct Change {
    pub apex: Name,
    pub serial: u32,
    pub soa: RRset,
    /// Addresses of the zone's NS names found in the zone itself (for `also_notify_ns`).
    pub ns_addrs: Vec<std::net::IpAddr>,
}

type Pending = watch::Sender<Option<Change>>;

/// Receives changes and keeps the secondaries told, until the channel closes.
pub async fn run(mut changes: mpsc::UnboundedReceiver<Change>, cfg: crate::config::SharedTransfer) {
    // Per (zone, secondary): the newest change for its worker to announce.
    let mut workers: HashMap<(Box<[u8]>, SocketAddr), Pending> = HashMap::new();
    let mut tasks = JoinSet::new();
    while let Some(change) = changes.recv().await {
        // The targets as configured now (weiche.toml may have been reloaded).
        let cfg = cfg.load();
        let mut targets = cfg.for_zone(&change.apex).notify.clone();
        if cfg.also_notify_ns {
            for ip in &change.ns_addrs {
                let to = SocketAddr::new(*ip, 53);
                if !targets.iter().any(|t| t.to == to) {
                    targets.push(NotifyTarget { to, key: None });
                }
            }
        }
        for target in &targets {
            let id = (change.apex.key(), target.to);
            match workers.get(&id) {
                // Coalesce: the worker sends the newest serial when it is free.
                Some(tx) if !tx.is_closed() => {
                    let _ = tx.send(Some(change.clone()));
                }
                _ => {
                    let (tx, rx) = watch::channel(Some(change.clone()));
                    tasks.spawn(worker(rx, target.clone(), cfg.notify_source));
                    workers.insert(id, tx);
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
}

async fn worker(mut rx: watch::Receiver<Option<Change>>, target: NotifyTarget, source: Option<SocketAddr>) {
    loop {
        let change = rx.borrow_and_update().clone();
        if let Some(change) = change {
            announce(&change, &target, source).await;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The NOTIFY message: opcode NOTIFY, AA, the zone's SOA as question and answer.
pub fn message(id: u16, change: &Change, target: &NotifyTarget) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&(0x2000u16 | 0x0400).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(change.apex.wire());
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&[0xc0, 12]);
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&change.soa.ttl.to_be_bytes());
    let rd = change.soa.rdatas().next().expect("one SOA");
    m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    m.extend_from_slice(rd);
    if let Some(key) = &target.key {
        crate::transfer::tsig::sign_request(&mut m, key);
    }
    m
}

async fn announce(change: &Change, target: &NotifyTarget, source: Option<SocketAddr>) {
    let bind: SocketAddr = match source {
        Some(s) if s.is_ipv4() == target.to.is_ipv4() => s,
        _ if target.to.is_ipv4() => "0.0.0.0:0".parse().expect("valid"),
        _ => "[::]:0".parse().expect("valid"),
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            warn!(zone = %change.apex, to = %target.to, from = %bind, error = %e, "cannot send NOTIFY: no socket");
            return;
        }
    };
    let id: u16 = rand_id();
    let msg = message(id, change, target);
    let mut wait = FIRST_WAIT;
    for attempt in 1..=TRIES {
        if let Err(e) = sock.send_to(&msg, target.to).await {
            debug!(to = %target.to, error = %e, "NOTIFY send failed");
        }
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            // The answer: from the secondary, our ID, a response to NOTIFY.
            if from == target.to
                && n >= 12
                && buf[..2] == id.to_be_bytes()
                && buf[2] & 0x80 != 0
                && (buf[2] >> 3) & 0xf == 4
            {
                let rcode = buf[3] & 0xf;
                if rcode == 0 {
                    info!(zone = %change.apex, to = %target.to, serial = change.serial, tries = attempt, "NOTIFY acknowledged");
                } else {
                    warn!(zone = %change.apex, to = %target.to, serial = change.serial, rcode, "NOTIFY answered with an error");
                }
                return;
            }
        }
        wait *= 2;
    }
    warn!(zone = %change.apex, to = %target.to, serial = change.serial, tries = TRIES, "NOTIFY not answered; the secondary will catch up at its next refresh");
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::transfer::tsig::now());
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notify_message_parses() {
        let apex = Name::parse("example.com.", None).unwrap();
        let soa = [&b"\x03ns1\x07example\x03com\x00\x02hm\x07example\x03com\x00"[..], &42u32.to_be_bytes(), &[0; 16]]
            .concat();
        let change = Change { apex, serial: 42, soa: RRset::new(rtype::SOA, 300, [soa]), ns_addrs: vec![] };
        let target = NotifyTarget { to: "127.0.0.1:53".parse().unwrap(), key: None };
        let m = hickory_proto::op::Message::from_vec(&message(7, &change, &target)).unwrap();
        assert_eq!(m.metadata.op_code, hickory_proto::op::OpCode::Notify);
        assert!(m.metadata.authoritative);
        assert_eq!(m.queries[0].name.to_string(), "example.com.");
        match &m.answers[0].data {
            hickory_proto::rr::RData::SOA(s) => assert_eq!(s.serial, 42),
            other => panic!("{other:?}"),
        }
    }
}

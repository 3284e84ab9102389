//! A zone reload never delays failover: a big zone is parsed by the loader's own task while the
//! publisher goes on applying verdicts. In a test binary of its own, because it sends SIGHUP to
//! the process (every server in a process would reload).

mod common;

use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::{RData, RecordType};

/// A plain zone of `records` records with SOA serial `serial`.
fn big_zone(records: usize, serial: u32) -> String {
    let mut z = format!("$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.53\n");
    for i in 0..records - 3 {
        z.push_str(&format!("h{i} A 127.2.{}.{}\n", (i >> 8) & 255, i & 255));
    }
    z
}

fn serial(s: &Server, zone: &str) -> u32 {
    match &udp(s.addr, &query(zone, RecordType::SOA, None)).answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    }
}

#[test]
fn failover_during_a_big_reload_is_as_fast_as_without() {
    const RECORDS: usize = 250_000;
    let (p, sec) = ("127.0.0.81", "127.0.0.82");
    let (port, mut primary, _secondary) = backend_pair(p, sec);
    let pool = two_site_pool(port, p, sec, "auto");
    let s = Server::start("127.0.0.80", &[("fo.test.toml", &pool), ("big.test.zone", &big_zone(RECORDS, 1))]);
    let www = || answer(&s, "www.fo.test.");
    assert_eq!(www(), vec![ip(p)]);

    // Plain failovers, for comparison (the slower of two: probes run on their own phase).
    let mut plain = Duration::ZERO;
    for _ in 0..2 {
        primary.down();
        let took = wait_until(Duration::from_secs(10), || www() == vec![ip(sec)]).expect("plain failover");
        plain = plain.max(took);
        primary.up();
        wait_until(Duration::from_secs(10), || www() == vec![ip(p)]).expect("failback");
    }

    // The big zone changes and SIGHUP starts its reload; the primary dies 0.2 s into it.
    write_atomically(&s.zone_path("big.test.zone"), &big_zone(RECORDS, 2));
    let hup = Instant::now();
    // SAFETY: kill(2) on our own process with a signal the server handles.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(200));
    primary.down();
    let during = wait_until(Duration::from_secs(10), || www() == vec![ip(sec)]).expect("failover during the reload");
    let serial_at_failover = serial(&s, "big.test.");
    let reload = wait_until(Duration::from_secs(120), || serial(&s, "big.test.") == 2).map(|_| hup.elapsed());
    eprintln!("plain failover {plain:?}, failover during the reload {during:?}, reload took {reload:?}");
    let reload = reload.expect("the big zone reloads");
    assert_eq!(
        serial_at_failover, 1,
        "the failover must be answered while the reload still runs (it took {reload:?}); it waited for it"
    );
    assert!(
        during <= plain + Duration::from_millis(300),
        "failover during the reload took {during:?}, without one {plain:?}"
    );
}

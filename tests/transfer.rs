//! Serials, IXFR over UDP, and NOTIFY, against a running weiche and a fake secondary.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

fn serial(s: &Server, zone: &str) -> u32 {
    let r = udp(s.addr, &query(zone, RecordType::SOA, None));
    match &r.answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    }
}

fn transfer_config(dir: &std::path::Path, extra: &str) -> weiche::config::Transfer {
    let p = dir.join("weiche.toml");
    std::fs::write(
        &p,
        format!("[keys.xfr]\nsecret = \"{SECRET}\"\n[transfer]\nallow = [{{ from = \"127.0.0.0/8\" }}]\n{extra}"),
    )
    .unwrap();
    weiche::Config::load(Some(&p)).unwrap().transfer
}

fn ixfr(zone: &str, have: u32) -> Message {
    let mut m = query(zone, RecordType::IXFR, None);
    let name = name(zone);
    let soa = SOA::new(name.clone(), name.clone(), have, 0, 0, 0, 0);
    m.add_authority(Record::from_rdata(name, 0, RData::SOA(soa)));
    m
}

#[test]
fn serials_move_with_answers_and_survive_restarts_and_ixfr_over_udp() {
    let (p, sec) = ("127.0.0.231", "127.0.0.232");
    let (port, mut primary, _b) = backend_pair(p, sec);
    let cfg = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let transfer = transfer_config(cfg.path(), "");
    let z = two_site_pool(port, p, sec, "auto");
    let tweak = |c: &mut weiche::Config| {
        c.transfer = transfer.clone();
        c.state_dir = Some(state.path().to_path_buf());
    };
    let s = Server::start_with("127.0.0.230", &[("sr.test.toml", &z)], tweak);
    assert_eq!(serial(&s, "sr.test."), 1, "the file's serial at start");
    primary.down();
    wait_for_answer(&s, "www.sr.test.", &[sec], Duration::from_secs(3));
    // The TTL falls while the primary is in doubt, then the answer moves: each is a change a
    // secondary must see, so each takes a serial.
    let now = serial(&s, "sr.test.");
    assert!(now > 1, "the serial moved: {now}");
    // IXFR over UDP from 1: the changes, each as SOA old, removed, SOA new, added; framed by
    // the current SOA.
    let r = udp(s.addr, &ixfr("sr.test.", 1));
    let shown: Vec<String> = r.answers.iter().map(|a| format!("{} {}", a.record_type(), a.data)).collect();
    let soa_serial = |i: usize| match &r.answers[i].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    };
    assert_eq!((soa_serial(0), soa_serial(r.answers.len() - 1)), (now, now), "{shown:?}");
    assert_eq!(soa_serial(1), 1, "{shown:?}");
    assert!(shown.iter().any(|l| l.starts_with(&format!("A {sec}"))), "the new answer is added: {shown:?}");
    assert!(shown.iter().any(|l| l.starts_with(&format!("A {p}"))), "the old one removed: {shown:?}");
    // Up to date, or unknown to the history over UDP: the current SOA alone.
    assert_eq!(udp(s.addr, &ixfr("sr.test.", now)).answers.len(), 1);
    assert_eq!(udp(s.addr, &ixfr("sr.test.", 77)).answers.len(), 1);
    // AXFR over UDP is not a thing (RFC 5936).
    assert_eq!(
        udp(s.addr, &query("sr.test.", RecordType::AXFR, None)).metadata.response_code,
        hickory_proto::op::ResponseCode::FormErr
    );
    drop(s);
    // Restart with the same answers: the same serial. With other answers: a newer one.
    let s = Server::start_with("127.0.0.230", &[("sr.test.toml", &z)], tweak);
    assert_eq!(serial(&s, "sr.test."), now, "unchanged content keeps its serial");
    drop(s);
    primary.up();
    let s = Server::start_with("127.0.0.230", &[("sr.test.toml", &z)], tweak);
    let later = serial(&s, "sr.test.");
    assert!(weiche::model::history::serial_gt(later, now), "changed content never goes back: {later} after {now}");
}

#[test]
fn notify_is_sent_signed_and_retried() {
    let (p, sec) = ("127.0.0.241", "127.0.0.242");
    let (port, mut primary, _b) = backend_pair(p, sec);
    // A fake secondary that records NOTIFYs and answers only from the second one on.
    let sock = std::net::UdpSocket::bind("127.0.0.243:0").unwrap();
    let secondary = sock.local_addr().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let transfer = transfer_config(
        cfg.path(),
        &format!("notify = [{{ to = \"{secondary}\", key = \"xfr\" }}]\nnotify_source = \"127.0.0.240\"\n"),
    );
    let s = Server::start_with("127.0.0.240", &[("nf.test.toml", &two_site_pool(port, p, sec, "auto"))], |c| {
        c.transfer = transfer
    });
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1500];
    let mut recv = || {
        let (n, from) = sock.recv_from(&mut buf).expect("a NOTIFY");
        (Message::from_vec(&buf[..n]).unwrap(), buf[..n].to_vec(), from)
    };
    // At start every zone is announced once; the first try goes unanswered, so it comes again.
    let (first, raw, from) = recv();
    assert_eq!(from.ip().to_string(), "127.0.0.240", "sent from notify_source");
    assert_eq!(first.metadata.op_code, OpCode::Notify);
    assert_eq!(first.queries[0], Query::query(name("nf.test."), RecordType::SOA));
    assert!(first.signature().is_some(), "signed with the key");
    let (again, _, _) = recv();
    assert_eq!(again.metadata.id, first.metadata.id, "a retry of the same NOTIFY");
    let mut reply = raw.clone();
    reply[2] |= 0x80;
    sock.send_to(&reply[..reply.len()], from).unwrap();
    // A change: a NOTIFY with the new serial.
    primary.down();
    let serial_of = |m: &Message| match &m.answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    };
    let t = std::time::Instant::now();
    let (m, raw, from) = loop {
        let got = recv();
        if serial_of(&got.0) > 1 {
            break got;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no NOTIFY with a new serial within 5 s; last {:?}", got.0);
    };
    assert_eq!(m.answers[0].dns_class, DNSClass::IN);
    let mut reply = raw;
    reply[2] |= 0x80;
    sock.send_to(&reply, from).unwrap();
    drop(s);
}

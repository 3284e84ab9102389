//! Abuse (issue 13 item 6): response rate limiting over UDP (`[rrl]`), seen by a flooded prefix,
//! by a client on another prefix and over TCP; and TCP under pressure from idle connections,
//! which must never lock a new client out.
//!
//! Clients bind addresses of their own in 127.0.0.0/8 (loopback answers all of them), so that
//! "another client" and "another /24" are real source addresses.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const ZONE: &str = "$ORIGIN abuse.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\n\
ns1 A 192.0.2.53\nwww A 192.0.2.1\n";

fn server(ip: &str, tweak: impl FnOnce(&mut weiche::Config)) -> Server {
    Server::start_with(ip, &[("abuse.test.zone", ZONE)], tweak)
}

fn udp_from(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// A TCP connection to `to` from the address `ip`.
fn tcp_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{ip}:0").parse().unwrap();
    s.bind(&from.into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

fn ask_tcp(s: &mut TcpStream, m: &Message) -> Option<Message> {
    let m = m.to_vec().unwrap();
    s.write_all(&[&(m.len() as u16).to_be_bytes()[..], &m].concat()).ok()?;
    read_tcp_msg(s).map(|r| Message::from_vec(&r).unwrap())
}

/// Whether the server has closed `s` (a read finds the end, or a reset), without waiting.
fn closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let closed = !matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    closed
}

/// Raises this process's soft limit of open files to the hard one (as `weiche serve` does for
/// itself): these tests hold hundreds of connections, and the server in this process as many.
fn enough_descriptors(needed: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain calls on a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    assert!(lim.rlim_cur >= needed, "need {needed} open files, the hard limit is {}", lim.rlim_max);
}

/// Replies to a burst, sorted: full answers, empty truncated ones (slips).
#[derive(Debug, Default, PartialEq)]
struct Replies {
    full: usize,
    slipped: usize,
}

/// Sends `names` (type A) from `socks` in turn, as fast as they go, then reads replies until
/// `expect(sent)` of them have come, or 5 s have passed.
fn burst(to: SocketAddr, socks: &[UdpSocket], names: &[String], expect: impl Fn() -> usize) -> Replies {
    for (i, name) in names.iter().enumerate() {
        let m = query(name, RecordType::A, None).to_vec().unwrap();
        socks[i % socks.len()].send_to(&m, to).unwrap();
    }
    let mut got = Replies::default();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while got.full + got.slipped < expect() {
        assert!(start.elapsed() < Duration::from_secs(5), "waited 5 s for {} replies, got {got:?}", expect());
        for s in socks {
            while let Ok(n) = s.recv(&mut buf) {
                let r = Message::from_vec(&buf[..n]).unwrap();
                if r.metadata.truncation {
                    assert!(r.answers.is_empty() && r.authorities.is_empty(), "a slip is empty");
                    got.slipped += 1;
                } else {
                    got.full += 1;
                }
            }
        }
    }
    got
}

/// The sum of a counter over all its label sets for `transport`.
fn metric(api: SocketAddr, name: &str, transport: &str) -> u64 {
    let (_, text) = http(api, "GET", "/metrics", None);
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("transport=\"{transport}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_flood_from_one_prefix_is_cut_to_the_limit_while_others_keep_their_answers() {
    const RATE: usize = 5;
    let s = server("127.0.0.70", |c| {
        c.rrl = weiche::config::Rrl { responses_per_second: RATE as u32, ..Default::default() };
        c.rrl.nxdomains_per_second = RATE as u32;
        c.rrl.errors_per_second = RATE as u32;
    });
    // 200 queries for one name from four hosts of 127.0.5.0/24, spread over both UDP threads:
    // the limit holds for the prefix, whichever thread answers.
    let flood: Vec<UdpSocket> = (1..=4).map(|h| udp_from(&format!("127.0.5.{h}"))).collect();
    let names = vec!["www.abuse.test.".to_string(); 200];
    let dropped = || metric(s.api, "weiche_rrl_dropped_total", "udp") as usize;
    let got = burst(s.addr, &flood, &names, || 200 - dropped());
    // One second's worth, and another only if the burst straddled a second before the debt.
    assert!((RATE..=2 * RATE).contains(&got.full), "{got:?}");
    // Every second limited response slips; the others are dropped, and counted.
    let limited = 200 - got.full;
    assert!(got.slipped.abs_diff(limited / 2) <= 1, "{got:?}");
    assert_eq!(metric(s.api, "weiche_rrl_slipped_total", "udp") as usize, got.slipped);
    assert_eq!(dropped(), limited - got.slipped);

    // A client of another /24 asking for the same name meanwhile: every answer, in full.
    let other = [udp_from("127.0.6.1")];
    let names = vec!["www.abuse.test.".to_string(); RATE];
    assert_eq!(burst(s.addr, &other, &names, || RATE), Replies { full: RATE, slipped: 0 });
    // The flooded prefix, told to retry over TCP, gets its answer there.
    let mut t = tcp_from("127.0.5.9", s.addr);
    t.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let r = ask_tcp(&mut t, &query("www.abuse.test.", RecordType::A, None)).expect("an answer over TCP");
    assert_eq!(r.answers.len(), 1);

    // Random names that do not exist share the zone's account: NXDOMAIN is cut to the limit too.
    let nx: Vec<String> = (0..60).map(|i| format!("nx{i}.abuse.test.")).collect();
    let before = dropped();
    let got = burst(s.addr, &flood, &nx, || 60 - (dropped() - before));
    assert!((RATE..=2 * RATE).contains(&got.full), "{got:?}");
    assert!(got.slipped.abs_diff((60 - got.full) / 2) <= 1, "{got:?}");
}

#[test]
fn rate_limiting_is_off_by_default() {
    let s = server("127.0.0.71", |_| {});
    let flood = [udp_from("127.0.5.20")];
    let names = vec!["www.abuse.test.".to_string(); 200];
    assert_eq!(burst(s.addr, &flood, &names, || 200), Replies { full: 200, slipped: 0 });
}

/// A query and its answer on a connection of its own from `ip`, within 2 s.
fn answered_within_2s(ip: &str, to: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut c = tcp_from(ip, to);
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let r = ask_tcp(&mut c, &query("www.abuse.test.", RecordType::A, None));
    let took = start.elapsed();
    assert!(r.is_some_and(|r| r.answers.len() == 1), "no TCP answer for {ip} within 2 s ({took:?})");
    took
}

#[test]
fn idle_connections_of_one_client_do_not_lock_out_another() {
    enough_descriptors(2000);
    // Idle connections would stay for 30 s: the old bound (512) left everybody else out so long.
    let s = server("127.0.0.72", |c| c.tcp_idle_timeout = Duration::from_secs(30));
    let idle: Vec<TcpStream> = (0..600).map(|_| tcp_from("127.0.7.1", s.addr)).collect();
    answered_within_2s("127.0.8.1", s.addr);
    // The idle client holds no more than its cap (64 by default): the server closed the rest,
    // those it had waited on longest.
    let open = wait_for(
        "the idle client's connections beyond its cap to be closed",
        Duration::from_secs(5),
        || idle.iter().filter(|c| !closed(c)).count(),
        |&open| open <= 64,
    );
    assert!(open >= 60, "only {open} of the idle client's connections left open");
    let still: Vec<usize> = (0..600).filter(|&i| !closed(&idle[i])).collect();
    assert!(idle[..500].iter().all(closed), "the oldest went; open: {still:?}");
    // It can still ask, on a new connection: its own connection waiting longest makes room.
    answered_within_2s("127.0.7.1", s.addr);
}

#[test]
fn at_the_bound_the_connection_waiting_longest_makes_room() {
    enough_descriptors(1000);
    // 120 idle connections from twelve clients (ten each, under the cap) against a bound of 100.
    let s = server("127.0.0.73", |c| {
        c.tcp_idle_timeout = Duration::from_secs(30);
        c.tcp_max_connections = 100;
    });
    let idle: Vec<TcpStream> = (0..120).map(|i| tcp_from(&format!("127.0.9.{}", 1 + i % 12), s.addr)).collect();
    answered_within_2s("127.0.8.2", s.addr);
    let open = wait_for(
        "the server to be back at its bound",
        Duration::from_secs(5),
        || idle.iter().filter(|c| !closed(c)).count(),
        |&open| open < 100,
    );
    assert_eq!(open, 99, "the new client's connection took the last place");
    assert!(idle[..15].iter().all(closed), "the oldest gave way");
    assert!(!idle[105..].iter().any(closed), "the newest stayed");
}

#[test]
fn under_pressure_a_connection_waits_a_second_not_the_idle_timeout() {
    let s = server("127.0.0.74", |c| {
        c.tcp_idle_timeout = Duration::from_secs(30);
        c.tcp_max_connections = 8;
    });
    // Six of eight open: no pressure yet. Each answers once, so it is waiting before the next.
    let held: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut h = tcp_from("127.0.10.1", s.addr);
            h.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            assert!(ask_tcp(&mut h, &query("www.abuse.test.", RecordType::A, None)).is_some());
            h
        })
        .collect();
    // A seventh is more than three quarters: once answered, it waits at most a second.
    let mut c = tcp_from("127.0.10.2", s.addr);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(ask_tcp(&mut c, &query("www.abuse.test.", RecordType::A, None)).is_some());
    let start = Instant::now();
    assert!(c.read(&mut [0u8; 1]).is_ok_and(|n| n == 0), "closed by the server");
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
    // Those that started waiting before the pressure keep their time.
    assert!(!held.iter().any(closed));
}

#[test]
fn connections_that_send_a_query_byte_by_byte_give_way_as_idle_ones_do() {
    let s = server("127.0.0.75", |c| {
        c.tcp_idle_timeout = Duration::from_secs(30);
        c.tcp_max_connections = 4;
    });
    // Four connections fill the bound: each sent a query and, in the same write, the first byte
    // of the next, and no more.
    let m = query("www.abuse.test.", RecordType::A, None).to_vec().unwrap();
    let framed = [&(m.len() as u16).to_be_bytes()[..], &m].concat();
    let slow: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut c = tcp_from(&format!("127.0.11.{}", 1 + i), s.addr);
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.write_all(&[&framed[..], &framed[..1]].concat()).unwrap();
            assert!(read_tcp_msg(&mut c).is_some(), "the first query is answered");
            c
        })
        .collect();
    answered_within_2s("127.0.8.3", s.addr);
    wait_for(
        "one slow connection closed",
        Duration::from_secs(5),
        || slow.iter().filter(|c| closed(c)).count(),
        |&n| n == 1,
    );
}

/// The HTTP API under the same pressure: 300 connections from one client that send half a
/// request or nothing hold at most 32 places (the rest are closed at once), none of them past
/// the header timeout, and another client's request is answered meanwhile. Before, every one
/// stayed open as long as the client liked, and enough of them used up the file descriptors
/// that DNS over TCP and probes need.
#[test]
fn api_connections_that_send_nothing_give_way() {
    enough_descriptors(2000);
    let s = server("127.0.0.76", |_| {});
    let idle: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut c = tcp_from("127.0.11.1", s.api);
            if i % 2 == 0 {
                c.write_all(b"GET /status HTTP/1.1\r\nHost: weiche\r\n").unwrap();
            }
            c
        })
        .collect();
    let open = || idle.iter().filter(|c| !closed(c)).count();
    let held = wait_for("the connections over the client's cap to be closed", Duration::from_secs(5), open, |&n| {
        n <= weiche::ops::api::MAX_CONNECTIONS_PER_CLIENT
    });
    assert!(held > 0, "the first ones are admitted");
    let mut other = tcp_from("127.0.11.2", s.api);
    other.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: weiche\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = other.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    let limit = weiche::ops::api::HEADER_TIMEOUT + Duration::from_secs(5);
    wait_for("the header timeout to close the rest", limit, open, |&n| n == 0);
}

/// With `[rrl]` on, replies to NOTIFY, to AXFR over UDP and to signed requests are limited as
/// any other response (before, all 200 of a flood were answered, and each refusal logged a
/// WARN line: the log too is limited, to one line per kind every 10 s).
#[test]
fn transfer_and_notify_datagrams_are_rate_limited_too() {
    const RATE: usize = 5;
    let s = server("127.0.0.77", |c| {
        c.rrl = weiche::config::Rrl { responses_per_second: RATE as u32, slip: 0, ..Default::default() };
        c.rrl.nxdomains_per_second = RATE as u32;
        c.rrl.errors_per_second = RATE as u32;
    });
    let flood = udp_from("127.0.12.1");
    // A NOTIFY (opcode 4) and an AXFR, each for abuse.test., in turn.
    let question = b"\x05abuse\x04test\x00";
    for i in 0..200u16 {
        let (flags, qtype): (u16, u16) = if i % 2 == 0 { (0x2000, 6) } else { (0, 252) };
        let mut m = [&i.to_be_bytes()[..], &flags.to_be_bytes(), &[0, 1, 0, 0, 0, 0, 0, 0]].concat();
        m.extend_from_slice(question);
        m.extend_from_slice(&[(qtype >> 8) as u8, qtype as u8, 0, 1]);
        flood.send_to(&m, s.addr).unwrap();
    }
    let mut replies = 0;
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        if flood.recv(&mut buf).is_ok() {
            replies += 1;
        }
    }
    // However long the server took (the limit is per second), most were not answered, and
    // every one that was not is counted.
    assert!((1..100).contains(&replies), "{replies} replies to 200 datagrams at {RATE}/s");
    let dropped = || metric(s.api, "weiche_rrl_dropped_total", "udp") as usize;
    wait_for("every datagram to be answered or dropped", Duration::from_secs(5), dropped, |&d| d + replies >= 200);
}

/// Clients that send queries and never read the answers: once a connection's write has been
/// blocked for a second it counts as waiting on its client, so at the bound it gives way to a
/// new client as an idle one does (before, all eight held their places for the idle timeout).
#[test]
fn connections_whose_client_never_reads_give_way_at_the_bound() {
    let s = server("127.0.0.78", |c| {
        c.tcp_idle_timeout = Duration::from_secs(30);
        c.tcp_max_connections = 8;
        c.tcp_max_connections_per_client = 8;
    });
    let q = query("www.abuse.test.", RecordType::A, None).to_vec().unwrap();
    let framed = [&(q.len() as u16).to_be_bytes()[..], &q].concat();
    let batch: Vec<u8> = framed.iter().copied().cycle().take(framed.len() * 1000).collect();
    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            // A small receive buffer: the server's answers fill it soon, and its writes block.
            let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            c.set_recv_buffer_size(4096).unwrap();
            c.bind(&"127.0.13.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
            c.connect(&s.addr.into()).unwrap();
            let c: TcpStream = c.into();
            // Queries until the server's answers fill both buffers and its writes block (at
            // most 20 MB or 10 s per connection), never reading one.
            c.set_nonblocking(true).unwrap();
            let (start, mut sent) = (Instant::now(), 0usize);
            let mut w = &c;
            while sent < 20 << 20 && start.elapsed() < Duration::from_secs(10) {
                match w.write(&batch) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            c
        })
        .collect();
    // Once they have been blocked a second, a new client gets a place and its answer.
    let asked = || {
        let mut c = tcp_from("127.0.13.2", s.addr);
        c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        ask_tcp(&mut c, &query("www.abuse.test.", RecordType::A, None)).is_some()
    };
    wait_for("a new client to be answered", Duration::from_secs(5), asked, |&ok| ok);
    // The place was made by shutting a stalled connection down: read what it was sent, and it
    // ends. The others go on being answered as they are read.
    let ended = |c: &TcpStream| {
        c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let (start, mut buf) = (Instant::now(), vec![0u8; 1 << 16]);
        while start.elapsed() < Duration::from_secs(1) {
            match (&*c).read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    };
    assert!(stalled.iter().any(ended), "a stalled connection gave way");
}

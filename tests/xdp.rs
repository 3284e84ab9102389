//! The AF_XDP fast path (`server.xdp`), in a network namespace of the test's own: its loopback
//! gets weiche's XDP program, nothing outside the namespace sees it.
//!
//! Needs root (unshare, bpf). Without it these tests say they skipped (see `common::skip`);
//! with WEICHE_REQUIRE_INTEROP=1 (set by .ci/run) they fail instead.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;

/// Moves the calling thread (and what it starts later: threads, processes, sockets) into a new
/// network namespace with loopback up. False (skipped) where that is not allowed.
fn own_netns(route_localnet: bool) -> bool {
    // SAFETY: unshare affects only the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = std::io::Error::last_os_error();
        skip(&format!("cannot make a network namespace ({e}); run as root"));
        return false;
    }
    sh("ip link set lo up");
    if route_localnet {
        sh("echo 1 >/proc/sys/net/ipv4/conf/lo/route_localnet");
    }
    true
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "{cmd} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ZONE: &str = "$ORIGIN xdp.test.\n$TTL 300\n\
@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n\
www A 192.0.2.1\nwww AAAA 2001:db8::1\nalias CNAME www\n";

/// Ten TXT strings of 200 bytes: about 2 kB, more than 512 and more than a 1280-byte link.
fn big_zone() -> String {
    let mut z = ZONE.to_string();
    for i in 0..10 {
        z.push_str(&format!("big TXT \"{}\"\n", char::from(b'a' + i).to_string().repeat(200)));
    }
    z
}

/// Waits until weiche's XDP program is on lo. Ready (`/readyz`) comes before the listeners
/// start, the XDP one among them, so the program may still be on its way when a server is ready.
fn xdp_attached() {
    wait_for(
        "weiche_xdp attached to lo",
        Duration::from_secs(5),
        || sh("ip link show lo"),
        |l| l.contains("weiche_xdp"),
    );
}

fn raw(m: &hickory_proto::op::Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

#[test]
fn xdp_answers_byte_for_byte_what_the_sockets_answer() {
    if !own_netns(true) {
        return;
    }
    // A link smaller than the largest answer: that one goes out through the kernel's socket.
    sh("ip link set lo mtu 1280");
    let zones = [("xdp.test.zone", big_zone())];
    let zones: Vec<(&str, &str)> = zones.iter().map(|(n, z)| (*n, z.as_str())).collect();
    let payload = |c: &mut weiche::Config| c.udp_payload = 4096;
    let plain = Server::start_with("127.0.0.1", &zones, payload);
    let fast = Server::start_with("127.0.0.2", &zones, |c| {
        payload(c);
        c.xdp = Some("lo".into());
    });
    xdp_attached();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("A", raw(&query("www.xdp.test", RecordType::A, Some(1232)))),
        ("A, no EDNS", raw(&query("www.xdp.test", RecordType::A, None))),
        ("mixed case", raw(&query("WwW.XdP.tEsT", RecordType::AAAA, Some(1232)))),
        ("CNAME chain", raw(&query("alias.xdp.test", RecordType::A, Some(1232)))),
        ("NODATA", raw(&query("www.xdp.test", RecordType::MX, Some(1232)))),
        ("NXDOMAIN", raw(&query("nope.xdp.test", RecordType::A, Some(1232)))),
        ("SOA", raw(&query("xdp.test", RecordType::SOA, Some(1232)))),
        ("not ours", raw(&query("example.org", RecordType::A, Some(1232)))),
        ("truncated at 512", raw(&query("big.xdp.test", RecordType::TXT, None))),
        ("larger than the link", raw(&query("big.xdp.test", RecordType::TXT, Some(4096)))),
        ("AXFR over UDP", raw(&query("xdp.test", RecordType::AXFR, None))),
    ];
    let mut formerr = raw(&query("www.xdp.test", RecordType::A, None));
    formerr.truncate(20);
    cases.push(("cut short", formerr));
    let mut response = raw(&query("www.xdp.test", RecordType::A, None));
    response[2] |= 0x80;
    cases.push(("a response", response));

    for (what, msg) in &cases {
        let want = udp_raw(plain.addr, msg, Duration::from_millis(500));
        let got = udp_raw(fast.addr, msg, Duration::from_millis(500));
        assert_eq!(got, want, "{what}");
        if !matches!(*what, "a response") {
            assert!(got.is_some(), "{what}: answered");
        }
    }
    let large = udp_raw(fast.addr, &cases[9].1, Duration::from_millis(500)).unwrap();
    assert!(large.len() > 1280, "the answer needed fragments: {} bytes", large.len());

    // Many queries in flight from several sockets: more than the 2048 frames a queue has, so
    // frames must come back from the TX side to be received into again.
    let sockets: Vec<std::net::UdpSocket> = (0..4).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let q = query("www.xdp.test", RecordType::A, Some(1232));
    let want = udp_raw(plain.addr, &raw(&q), Duration::from_millis(500)).unwrap();
    let (total, window) = (6000, 64);
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 2048];
    for s in &sockets {
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    while answered < total && Instant::now() < deadline {
        for s in &sockets {
            for _ in 0..window {
                s.send_to(&raw(&q), fast.addr).unwrap();
            }
        }
        for s in &sockets {
            for _ in 0..window {
                let Ok((n, from)) = s.recv_from(&mut buf) else { break };
                assert_eq!(from, fast.addr);
                assert_eq!(&buf[..n], &want[..]);
                answered += 1;
            }
        }
    }
    assert!(answered >= total, "{answered} of {total} answered within 20 s");

    let (_, metrics) = http(fast.api, "GET", "/metrics", None);
    let xdp_a: u64 = metrics
        .lines()
        .find(|l| l.starts_with("weiche_queries_total{transport=\"xdp\",qtype=\"A\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(xdp_a >= total as u64, "metrics count the XDP path: {xdp_a}");

    // TCP is not touched.
    let r = tcp(fast.addr, &query("www.xdp.test", RecordType::A, None));
    assert_eq!(records(&r.answers), vec!["www.xdp.test. 300 IN A 192.0.2.1"]);

    drop(fast);
    wait_for(
        "the program detached at shutdown",
        Duration::from_secs(5),
        || sh("ip link show lo"),
        |l| !l.contains("xdp"),
    );
    drop(plain);
}

#[test]
fn xdp_on_loopback_without_route_localnet_is_refused_at_start() {
    if !own_netns(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("xdp.test.zone"), ZONE).unwrap();
    let port = external_port("127.0.0.1");
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weiche"))
        .args(["serve", "--listen", &listen.to_string(), "--api", "off", "--xdp", "lo", "--zones"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("XDP on lo") && err.contains("route_localnet=1"), "{err}");
    assert!(!sh("ip link show lo").contains("xdp"), "nothing left attached");
}

/// Without its capabilities the XDP path refuses to start and says which it lacks and how to grant
/// them. weiche runs as nobody through setpriv (util-linux), which keeps the capabilities named
/// (as a unit's AmbientCapabilities= does) and no others.
#[test]
fn xdp_without_its_capabilities_says_which_are_missing_and_how_to_grant_them() {
    if !own_netns(true) || !have_tool("setpriv", "util-linux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("xdp.test.zone"), ZONE).unwrap();
    // Readable by nobody.
    sh(&format!("chmod 755 {0} && chmod 644 {0}/xdp.test.zone", dir.path().display()));
    let port = external_port("127.0.0.1");
    let all = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"];
    // (kept, lacking): without CAP_BPF the map is refused; with it but without CAP_NET_RAW the
    // map and program load and the AF_XDP socket is refused.
    for (kept, lacking) in
        [("", &all[..]), ("+net_admin,+net_raw", &["CAP_BPF"][..]), ("+net_admin,+bpf", &["CAP_NET_RAW"][..])]
    {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        if !kept.is_empty() {
            cmd.args([format!("--inh-caps={kept}"), format!("--ambient-caps={kept}")]);
        }
        let out = cmd
            .arg(env!("CARGO_BIN_EXE_weiche"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--api", "off", "--xdp", "lo", "--zones"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kept {kept:?}: {err}");
        assert!(err.contains("XDP on lo: ") && err.contains("Operation not permitted"), "kept {kept:?}: {err}");
        assert!(err.contains(&format!("this process lacks {}.", lacking.join(", "))), "kept {kept:?}: {err}");
        assert!(
            err.contains("systemctl edit weiche")
                && err.contains("AmbientCapabilities=")
                && err.contains("setcap cap_net_bind_service,cap_net_admin,cap_net_raw,cap_bpf=+ep"),
            "kept {kept:?}: {err}"
        );
        assert!(!sh("ip link show lo").contains("xdp"), "nothing left attached");
    }
}

#[test]
fn xdp_answers_follow_a_failover() {
    if !own_netns(true) {
        return;
    }
    let (p, sec) = ("127.0.0.31", "127.0.0.32");
    let (port, mut primary, _secondary) = backend_pair(p, sec);
    let s = Server::start_with("127.0.0.30", &[("fo.test.toml", &two_site_pool(port, p, sec, "auto"))], |c| {
        c.xdp = Some("lo".into());
    });
    // With the program attached, every UDP query to the server's address goes to the XDP path.
    xdp_attached();
    assert_eq!(answer(&s, "www.fo.test."), vec![ip(p)]);
    primary.down();
    // The XDP path answers the secondary after the primary fails,
    wait_for_answer(&s, "www.fo.test.", &[sec], Duration::from_secs(5));
    primary.up();
    // and the primary again once it is back.
    wait_for_answer(&s, "www.fo.test.", &[p], Duration::from_secs(5));
}

#[test]
fn xdp_answers_are_rate_limited_as_the_sockets_are() {
    if !own_netns(true) {
        return;
    }
    let s = Server::start_with("127.0.0.40", &[("xdp.test.zone", ZONE)], |c| {
        c.xdp = Some("lo".into());
        c.rrl.responses_per_second = 5;
    });
    xdp_attached();
    let dropped = || {
        let (_, metrics) = http(s.api, "GET", "/metrics", None);
        metrics
            .lines()
            .filter(|l| l.starts_with("weiche_rrl_dropped_total{") && l.contains("transport=\"xdp\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .sum::<usize>()
    };
    let sock = std::net::UdpSocket::bind("127.0.0.41:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let q = raw(&query("www.xdp.test", RecordType::A, None));
    for _ in 0..100 {
        sock.send_to(&q, s.addr).unwrap();
    }
    let (mut full, mut slipped) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while full + slipped < 100 - dropped() {
        assert!(Instant::now() < deadline, "replies: {full} full, {slipped} slipped; {} dropped", dropped());
        while let Ok(n) = sock.recv(&mut buf) {
            let r = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
            if r.metadata.truncation {
                assert!(r.answers.is_empty());
                slipped += 1;
            } else {
                full += 1;
            }
        }
    }
    // The same limit as over the sockets (tests/abuse.rs): a second's worth, then every second
    // limited answer slips, counted under transport="xdp".
    assert!((5..=10).contains(&full), "{full} full answers");
    assert!(slipped.abs_diff((100 - full) / 2) <= 1, "{slipped} slips of {} limited", 100 - full);
    assert_eq!(dropped(), 100 - full - slipped);
}

//! The service-aware checks against real peers started by the test: `dns` against other weiche
//! servers, `smtp` against a small SMTP responder (plain, and upgrading with rustls); and
//! several checks on one target, against an HTTP and a TCP backend on each server.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;

/// A peer zone `peer.test` (and the extra `records`) in a weiche zone file.
fn peer_zone(origin_records: &str) -> String {
    format!(
        "records = \"\"\"\n$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 600\n@ NS ns1\nns1 A 127.0.0.53\n{origin_records}\"\"\"\n"
    )
}

/// TXT records that cannot fit in a 1232-byte UDP answer, the last one carrying `marker`.
fn big_txt(marker: &str) -> String {
    let filler = "x".repeat(200);
    let mut s: String = (0..8).map(|i| format!("big TXT \"{i}{filler}\"\n")).collect();
    s.push_str(&format!("big TXT \"{marker}\"\n"));
    s
}

/// The `last_probe.error` of a target once it is down.
fn down_cause(s: &Server, pool: &str, address: &str) -> String {
    let t = wait_for_target(s.api, pool, address, "down", |t| t["verdict"] == "down");
    t["last_probe"]["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn dns_checks_follow_what_peer_nameservers_answer() {
    let (a, b, silent) = ("127.0.0.171", "127.0.0.172", "127.0.0.173");
    // a: the right data; b: a wrong address for www and svc, no only-a, and a zone a lacks.
    let zone_a =
        |svc: &str| peer_zone(&format!("www A 192.0.2.7\nonly-a A 192.0.2.7\nsvc A {svc}\n{}", big_txt("marker-tcp")));
    let peer_a = Server::start(a, &[("peer.test.toml", &zone_a("192.0.2.7"))]);
    let peer_b = Server::start(
        b,
        &[
            ("peer.test.toml", &peer_zone("www A 192.0.2.99\nsvc A 192.0.2.7\n")),
            ("elsewhere.test.toml", &peer_zone("www A 192.0.2.7\n")),
        ],
    );
    // Bound, so queries are delivered, and never read: a server that says nothing.
    let hole = UdpSocket::bind((silent, 0)).unwrap();
    let (pa, pb, ps) = (peer_a.addr.port(), peer_b.addr.port(), hole.local_addr().unwrap().port());
    // The UDP answer really is truncated, so the check can pass only over TCP.
    let r = udp(peer_a.addr, &query("big.peer.test.", RecordType::TXT, Some(1232)));
    assert!(r.metadata.truncation, "the big TXT set must not fit in UDP");

    let timing = "interval = \"250ms\"\ntimeout = \"200ms\"\nfall = 2\nrise = 2\n";
    // all_down = "none": a pool whose targets are all down answers nothing, so no assertion
    // below can pass on keep-primary's answer.
    let pool = |name: &str, check: &str, first: (&str, u16), second: (&str, u16)| {
        format!(
            "[pools.{name}]\ncheck = \"{check}\"\nall_down = \"none\"\ntargets = [{{ address = \"{}\", priority = 1, probe = \"{}:{}\" }}, \
             {{ address = \"{}\", priority = 2, probe = \"{}:{}\" }}]\n",
            first.0, first.0, first.1, second.0, second.0, second.1
        )
    };
    let pools = [
        format!("[checks.www]\ntype = \"dns\"\nname = \"www.peer.test\"\nexpect_answer = \"192.0.2.7\"\n{timing}"),
        format!("[checks.svc]\ntype = \"dns\"\nname = \"svc.peer.test.\"\nexpect_answer = \"192.0.2.7\"\n{timing}"),
        format!("[checks.only]\ntype = \"dns\"\nname = \"only-a.peer.test\"\n{timing}"),
        format!("[checks.other]\ntype = \"dns\"\nname = \"www.elsewhere.test\"\nexpect_rcode = \"NOERROR\"\n{timing}"),
        format!("[checks.big]\ntype = \"dns\"\nname = \"big.peer.test\"\nqtype = \"TXT\"\nexpect_answer = \"MARKER-tcp\"\n{timing}"),
        pool("up", "www", (a, pa), (b, pb)),
        pool("wrong", "www", (b, pb), (a, pa)),
        pool("nx", "only", (b, pb), (a, pa)),
        pool("refused", "other", (a, pa), (b, pb)),
        pool("silent", "www", (silent, ps), (a, pa)),
        pool("big", "big", (a, pa), (silent, ps)),
        pool("svc", "svc", (a, pa), (b, pb)),
    ]
    .concat();
    let s = Server::start("127.0.0.170", &[("dc.test.toml", &zone(&pools))]);

    assert_eq!(answer(&s, "up.dc.test."), vec![ip(a)], "NOERROR with the expected address is up");
    assert_eq!(answer(&s, "big.dc.test."), vec![ip(a)], "the answer is found over TCP after truncation");
    assert_eq!(answer(&s, "svc.dc.test."), vec![ip(a)]);
    assert_eq!(answer(&s, "wrong.dc.test."), vec![ip(a)], "the wrong address is down");
    assert_eq!(answer(&s, "nx.dc.test."), vec![ip(a)], "NXDOMAIN is down");
    assert_eq!(answer(&s, "refused.dc.test."), vec![ip(b)], "REFUSED is down");
    assert_eq!(answer(&s, "silent.dc.test."), vec![ip(a)], "no reply is down");
    assert_eq!(down_cause(&s, "wrong.dc.test.", b), "no answer has 192.0.2.7 (got: 192.0.2.99)");
    assert_eq!(down_cause(&s, "nx.dc.test.", b), "NXDOMAIN (expected NOERROR)");
    assert_eq!(down_cause(&s, "refused.dc.test.", a), "REFUSED (expected NOERROR)");
    assert_eq!(down_cause(&s, "silent.dc.test.", silent), "no answer within 200ms");

    // The peer starts answering a wrong address: the pool fails over within fall × interval
    // + timeout (+ the peer's reload), and comes back when the peer is right again.
    write_atomically(&peer_a.zone_path("peer.test.toml"), &zone_a("192.0.2.8"));
    wait_for_answer(&s, "svc.dc.test.", &[b], Duration::from_secs(5));
    assert_eq!(down_cause(&s, "svc.dc.test.", a), "no answer has 192.0.2.7 (got: 192.0.2.8)");
    write_atomically(&peer_a.zone_path("peer.test.toml"), &zone_a("192.0.2.7"));
    wait_for_answer(&s, "svc.dc.test.", &[a], Duration::from_secs(5));
    drop(hole);
}

/// What one SMTP session looked like from the server's side.
#[derive(Debug, Clone, Default)]
struct Session {
    commands: Vec<String>,
    /// Commands after the TLS upgrade.
    over_tls: Vec<String>,
    said_bye: bool,
}

/// A tiny SMTP server: a banner (changeable while it runs), EHLO, optionally STARTTLS with
/// rustls, QUIT. It records every session. Stops when dropped.
struct Smtp {
    banner: Arc<Mutex<String>>,
    sessions: Arc<Mutex<Vec<Session>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Smtp {
    fn start(listener: TcpListener, banner: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Smtp {
        let banner = Arc::new(Mutex::new(banner.to_string()));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, log, st) = (banner.clone(), sessions.clone(), stop.clone());
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let banner = b.lock().unwrap().clone();
                        let session = serve(c, &banner, tls.clone());
                        log.lock().unwrap().push(session);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Smtp { banner, sessions, stop, thread: Some(thread) }
    }

    fn set_banner(&self, banner: &str) {
        *self.banner.lock().unwrap() = banner.to_string();
    }

    fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One session on `c`; a read error or timeout just ends it (the log shows how far it got).
fn serve(c: TcpStream, banner: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Session {
    let mut session = Session::default();
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = c.try_clone().unwrap();
    let mut lines = BufReader::new(c.try_clone().unwrap());
    if out.write_all(format!("{banner}\r\n").as_bytes()).is_err() {
        return session;
    }
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            return session;
        }
        let cmd = line.trim_end().to_string();
        session.commands.push(cmd.clone());
        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" if tls.is_some() => "250-mx.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "EHLO" => "250-mx.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "STARTTLS" if tls.is_some() => "220 go ahead\r\n",
            "QUIT" => "221 bye\r\n",
            _ => "502 not here\r\n",
        };
        let _ = out.write_all(reply.as_bytes());
        if verb == "QUIT" {
            session.said_bye = true;
            return session;
        }
        if verb == "STARTTLS"
            && let Some(config) = &tls
        {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut stream = rustls::StreamOwned::new(conn, c);
            let mut tls_lines = Vec::new();
            loop {
                let mut buf = [0u8; 1024];
                let n = match std::io::Read::read(&mut stream, &mut buf) {
                    Ok(0) | Err(_) => return session,
                    Ok(n) => n,
                };
                tls_lines.extend_from_slice(&buf[..n]);
                while let Some(end) = tls_lines.iter().position(|&b| b == b'\n') {
                    let l: Vec<u8> = tls_lines.drain(..=end).collect();
                    let cmd = String::from_utf8_lossy(&l).trim_end().to_string();
                    session.over_tls.push(cmd.clone());
                    if cmd.eq_ignore_ascii_case("QUIT") {
                        let _ = stream.write_all(b"221 bye\r\n");
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                        session.said_bye = true;
                        return session;
                    }
                    let _ = stream.write_all(b"250-mx.example.test\r\n250 PIPELINING\r\n");
                    let _ = stream.flush();
                }
            }
        }
    }
}

#[test]
fn smtp_checks_read_the_banner_and_say_goodbye() {
    let (r1, r2, rejecting) = ("127.0.0.181", "127.0.0.182", "127.0.0.183");
    let mut ports = Ports::reserve(&[r1, r2, rejecting]);
    let port = ports.port;
    let first = Smtp::start(ports.listener(r1), "220 mx1.example.test ESMTP", None);
    let second = Smtp::start(ports.listener(r2), "220 mx2.example.test ESMTP", None);
    let no = Smtp::start(ports.listener(rejecting), "554 mx3.example.test no service here", None);
    let pools = format!(
        "[checks.mail]\ntype = \"smtp\"\nport = {port}\nhelo = \"probe.weiche.test\"\ninterval = \"250ms\"\ntimeout = \"200ms\"\nfall = 2\nrise = 2\n\
         [pools.mx]\ncheck = \"mail\"\nall_down = \"none\"\ntargets = [{{ address = \"{r1}\", priority = 1 }}, {{ address = \"{r2}\", priority = 2 }}]\n\
         [pools.rej]\ncheck = \"mail\"\nall_down = \"none\"\ntargets = [{{ address = \"{rejecting}\", priority = 1 }}, {{ address = \"{r2}\", priority = 2 }}]\n"
    );
    let s = Server::start("127.0.0.180", &[("sm.test.toml", &zone(&pools))]);
    assert_eq!(answer(&s, "mx.sm.test."), vec![ip(r1)]);
    assert_eq!(answer(&s, "rej.sm.test."), vec![ip(r2)], "a 554 banner is down");
    assert_eq!(down_cause(&s, "rej.sm.test.", rejecting), "banner: 554 mx3.example.test no service here");

    // The first server starts refusing service: failover, then back once it is ready again.
    first.set_banner("421 mx1.example.test shutting down");
    wait_for_answer(&s, "mx.sm.test.", &[r2], Duration::from_secs(5));
    first.set_banner("220 mx1.example.test ESMTP");
    wait_for_answer(&s, "mx.sm.test.", &[r1], Duration::from_secs(5));

    // Every session ended with QUIT; the probe named itself in EHLO, and never sent EHLO to a
    // server that had refused service in its banner.
    for (who, server) in [("first", &first), ("second", &second), ("rejecting", &no)] {
        let sessions = server.sessions();
        assert!(!sessions.is_empty(), "{who} was probed");
        for x in &sessions {
            assert!(x.said_bye, "{who}: a session without QUIT: {x:?}");
            let refused = x.commands == ["QUIT"];
            assert!(refused || x.commands == ["EHLO probe.weiche.test", "QUIT"], "{who}: {x:?}");
        }
    }
    assert!(no.sessions().iter().all(|x| x.commands == ["QUIT"]));
    assert!(first.sessions().iter().any(|x| x.commands == ["QUIT"]), "the 421 sessions");
}

/// A self-signed certificate and key for mx.example.test, made with openssl.
fn self_signed(dir: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=mx.example.test", "-addext", "subjectAltName=DNS:mx.example.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(ok.success());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap())
}

#[test]
fn smtp_starttls_upgrades_and_verifies_the_certificate() {
    let (tls, plain, fallback) = ("127.0.0.186", "127.0.0.187", "127.0.0.188");
    if !have_tool("openssl", "apt-get install openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = self_signed(dir.path());
    let mut ports = Ports::reserve(&[tls, plain, fallback]);
    let port = ports.port;
    let upgrading = Smtp::start(ports.listener(tls), "220 mx.example.test ESMTP", Some(config));
    // Offers no STARTTLS: down for a check that asks for it.
    let _plain = Smtp::start(ports.listener(plain), "220 old.example.test ESMTP", None);
    let _fallback = Smtp::start(ports.listener(fallback), "220 fb.example.test ESMTP", None);
    let timing = "interval = \"250ms\"\ntimeout = \"200ms\"\nfall = 2\nrise = 2\n";
    let pools = format!(
        "[checks.lax]\ntype = \"smtp\"\nport = {port}\nhelo = \"probe.weiche.test\"\nstarttls = true\nhost = \"mx.example.test\"\ntls_verify = false\n{timing}\
         [checks.strict]\ntype = \"smtp\"\nport = {port}\nhelo = \"probe.weiche.test\"\nstarttls = true\nhost = \"mx.example.test\"\n{timing}\
         [pools.lax]\ncheck = \"lax\"\nall_down = \"none\"\ntargets = [{{ address = \"{tls}\", priority = 1 }}, {{ address = \"{fallback}\", priority = 2 }}]\n\
         [pools.strict]\ncheck = \"strict\"\nall_down = \"none\"\ntargets = [{{ address = \"{tls}\", priority = 1 }}]\n\
         [pools.old]\ncheck = \"lax\"\nall_down = \"none\"\ntargets = [{{ address = \"{plain}\", priority = 1 }}]\n"
    );
    let s = Server::start("127.0.0.185", &[("st.test.toml", &zone(&pools))]);
    assert_eq!(answer(&s, "lax.st.test."), vec![ip(tls)], "upgraded without verification: up");
    assert!(answer(&s, "strict.st.test.").is_empty(), "a self-signed certificate fails verification");
    let cause = down_cause(&s, "strict.st.test.", tls);
    assert!(cause.starts_with("TLS: invalid peer certificate"), "{cause}");
    assert_eq!(down_cause(&s, "old.st.test.", plain), "STARTTLS is not offered");
    // The upgraded sessions said EHLO again over TLS and QUIT there.
    wait_for(
        "a session through TLS",
        Duration::from_secs(5),
        || upgrading.sessions(),
        |all| all.iter().any(|x| x.over_tls == ["EHLO probe.weiche.test", "QUIT"] && x.said_bye),
    );
}

/// Runs openssl with `args` in `dir`; panics when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Verification that passes needs a CA the probe trusts. The CA bundle is read once per
/// process, so this runs the weiche binary with SSL_CERT_FILE naming the test's CA rather than
/// changing the environment of this process, whose other tests run alongside.
#[test]
fn smtp_starttls_passes_with_a_trusted_certificate_for_the_host() {
    let (mx, dns_ip) = ("127.0.0.191", "127.0.0.190");
    if !have_tool("openssl", "apt-get install openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=weiche test CA", "-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        d,
        &[&["req"][..], &ec, &["-subj", "/CN=mx.example.test", "-keyout", "key.pem", "-out", "mx.csr"]].concat(),
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=DNS:mx.example.test\n").unwrap();
    openssl(
        d,
        &["x509", "-req", "-in", "mx.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1"]
            .into_iter()
            .chain(["-extfile", "san.ext", "-out", "cert.pem"])
            .collect::<Vec<_>>(),
    );
    let config = {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(d.join("cert.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(d.join("key.pem")).unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        Arc::new(rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap())
    };
    let mut ports = Ports::reserve(&[mx]);
    let port = ports.port;
    let server = Smtp::start(ports.listener(mx), "220 mx.example.test ESMTP", Some(config));
    let zones = d.join("zones");
    std::fs::create_dir(&zones).unwrap();
    let check = |host: &str| {
        format!(
            "{{ type = \"smtp\", port = {port}, helo = \"probe.weiche.test\", starttls = true, host = \"{host}\", interval = \"250ms\", timeout = \"200ms\" }}"
        )
    };
    let pools = format!(
        "[pools.right]\ncheck = {}\nall_down = \"none\"\ntargets = [{{ address = \"{mx}\", priority = 1 }}]\n\
         [pools.wrong]\ncheck = {}\nall_down = \"none\"\ntargets = [{{ address = \"{mx}\", priority = 1 }}]\n",
        check("mx.example.test"),
        check("other.example.test")
    );
    std::fs::write(zones.join("ca.test.toml"), zone(&pools)).unwrap();
    let (dns_port, api_port) = two_external_ports(dns_ip);
    let (dns, api) = (format!("{dns_ip}:{dns_port}"), format!("{dns_ip}:{api_port}"));
    let _weiche = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_weiche"))
            .args(["serve", "--listen", &dns, "--api", &api, "--zones"])
            .arg(&zones)
            .env("SSL_CERT_FILE", d.join("ca.pem"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api: std::net::SocketAddr = api.parse().unwrap();
    wait_for("weiche to be ready", Duration::from_secs(10), || std::net::TcpStream::connect(api).is_ok(), |up| *up);
    let right = wait_for_target(api, "right.ca.test.", mx, "up", |t| t["verdict"] == "up");
    assert_eq!(right["last_probe"]["ok"], true, "{right}");
    let wrong = wait_for_target(api, "wrong.ca.test.", mx, "down", |t| t["verdict"] == "down");
    let cause = wrong["last_probe"]["error"].as_str().unwrap_or_default();
    assert!(
        cause.starts_with("TLS: invalid peer certificate")
            && cause.contains("not valid for name \"other.example.test\""),
        "{cause}"
    );
    let answers = udp(dns.parse().unwrap(), &query("right.ca.test.", RecordType::A, None)).answers;
    assert_eq!(answers.len(), 1, "the verified server is answered");
    assert!(server.sessions().iter().any(|x| x.over_tls == ["EHLO probe.weiche.test", "QUIT"] && x.said_bye));
}

/// `check = ["web", "port2"]`: a target is answered only while both pass. Killing one of its
/// two services fails the pool over, and `/status` shows which check failed.
#[test]
fn every_check_of_a_target_must_pass() {
    let (p, sec) = ("127.0.2.11", "127.0.2.12");
    let mut web_ports = Ports::reserve(&[p, sec]);
    let mut tcp_ports = Ports::reserve(&[p, sec]);
    let (web, port2) = (web_ports.port, tcp_ports.port);
    let ok = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let _p_web = Backend::start(web_ports.listener(p), Some(ok));
    let _sec_web = Backend::start(web_ports.listener(sec), Some(ok));
    let mut p_port2 = Backend::start(tcp_ports.listener(p), None);
    let _sec_port2 = Backend::start(tcp_ports.listener(sec), None);
    let timing = "interval = \"250ms\"\ntimeout = \"200ms\"\nfall = 2\nrise = 2\n";
    let pools = format!(
        "[checks.web]\ntype = \"http\"\nport = {web}\n{timing}[checks.port2]\ntype = \"tcp\"\nport = {port2}\n{timing}\
         [pools.www]\ncheck = [\"web\", \"port2\"]\ntargets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    );
    let s = Server::start("127.0.2.10", &[("mc.test.toml", &zone(&pools))]);
    assert_eq!(answer(&s, "www.mc.test."), vec![ip(p)]);
    let (_, st) = json(s.api, "GET", "/status");
    assert_eq!(
        (&st["pools"][0]["check"], &st["pools"][0]["checks"]),
        (&"web".into(), &serde_json::json!(["web", "port2"]))
    );
    // A check of the target by name.
    let check = |t: &serde_json::Value, name: &str| {
        t["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name).cloned()).unwrap_or_default()
    };

    // The primary's web server is fine, its second service dies: failover.
    let since = last_event_seq(s.api);
    p_port2.down();
    wait_for_answer(&s, "www.mc.test.", &[sec], Duration::from_secs(5));
    let t = wait_for_target(s.api, "www.mc.test.", p, "down", |t| t["verdict"] == "down");
    let (w, t2) = (check(&t, "web"), check(&t, "port2"));
    assert_eq!(
        (&w["verdict"], &w["last_probe"]["ok"], &w["probe"]),
        (&"up".into(), &true.into(), &format!("{p}:{web}").into()),
        "{t}"
    );
    assert_eq!((&t2["verdict"], &t2["probe"]), (&"down".into(), &format!("{p}:{port2}").into()), "{t}");
    assert_eq!(t["last_probe"]["ok"], false, "the failing check's probe is the target's: {t}");
    let e = wait_for_event(s.api, since, "port2 down", |e| e["kind"] == "target_down");
    assert_eq!((&e["check"], &e["target"]), (&"port2".into(), &format!("{p}:{port2}").into()), "{e}");

    // Back: the primary again, both checks up.
    p_port2.up();
    wait_for_answer(&s, "www.mc.test.", &[p], Duration::from_secs(5));
    let t = wait_for_target(s.api, "www.mc.test.", p, "up", |t| t["verdict"] == "up");
    assert_eq!((&check(&t, "web")["verdict"], &check(&t, "port2")["verdict"]), (&"up".into(), &"up".into()), "{t}");
}

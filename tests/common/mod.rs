//! Test harness: a real weiche on real sockets (127.0.0.x, port 0), and small DNS clients.

#![allow(dead_code)]

pub mod galera;
pub mod knot;
pub mod nft;
pub mod nsd;
pub mod unbound;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    /// The HTTP API.
    pub api: SocketAddr,
    pub control: weiche::Control,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts weiche serving `zones` (file name, contents) on `ip`, port chosen by the kernel.
    pub fn start(ip: &str, zones: &[(&str, &str)]) -> Server {
        Self::start_with(ip, zones, |_| {})
    }

    pub fn start_with(ip: &str, zones: &[(&str, &str)], tweak: impl FnOnce(&mut weiche::Config)) -> Server {
        Self::start_at(&format!("{ip}:0"), zones, tweak)
    }

    /// Like [`Self::start_with`], serving DNS on `addr` (`IP:PORT`; port 0: the kernel's choice).
    pub fn start_at(addr: &str, zones: &[(&str, &str)], tweak: impl FnOnce(&mut weiche::Config)) -> Server {
        let ip = addr.rsplit_once(':').expect("IP:PORT").0;
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in zones {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut config = weiche::Config::load(None).unwrap();
        config.zones_dir = dir.path().to_path_buf();
        config.reload_interval = Duration::from_millis(200);
        config.udp_workers = 2;
        tweak(&mut config);
        let sockets = weiche::Sockets::bind(&[addr.parse().unwrap()])
            .unwrap()
            .with_api(format!("{ip}:0").parse().unwrap())
            .unwrap();
        let api = sockets.api.as_ref().unwrap().local_addr().unwrap();
        let addr = sockets.udp[0].local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (control, commands) = weiche::Control::new();
        let control_for_server = control.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let stop = async {
                let _ = rx.await;
            };
            rt.block_on(weiche::serve(config, sockets, stop, (control_for_server, commands))).unwrap();
        });
        // Ready: zones loaded and the first probe round done.
        let start = Instant::now();
        while http(api, "GET", "/readyz", None).0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(10), "server not ready within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { addr, api, control, dir, stop: Some(tx), thread: Some(thread) }
    }

    pub fn zone_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A query message for `qname`/`qtype`, with EDNS when `edns` is Some(payload).
pub fn query(qname: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand_id();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    if let Some(p) = edns {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    m
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x1000);
    NEXT.fetch_add(7, Ordering::Relaxed)
}

/// Sends raw bytes over UDP; returns the raw reply, or None after a timeout.
pub fn udp_raw(addr: SocketAddr, msg: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((addr.ip(), 0)).unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(msg, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

pub fn udp(addr: SocketAddr, m: &Message) -> Message {
    let raw = udp_raw(addr, &m.to_vec().unwrap(), Duration::from_secs(2)).expect("no UDP reply within 2 s");
    let resp = Message::from_vec(&raw).unwrap();
    assert_eq!(resp.metadata.id, m.metadata.id);
    resp
}

/// Sends messages on one TCP connection back to back, then reads as many replies.
pub fn tcp_pipelined(addr: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(m);
    }
    s.write_all(&out).unwrap();
    (0..msgs.len()).map(|_| read_tcp_msg(&mut s).expect("TCP reply")).collect()
}

pub fn read_tcp_msg(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

pub fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let raw = tcp_pipelined(addr, &[m.to_vec().unwrap()]).remove(0);
    Message::from_vec(&raw).unwrap()
}

/// Records as "name ttl IN TYPE rdata", sorted.
pub fn records(rs: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut v: Vec<String> = rs.iter().map(ToString::to_string).collect();
    v.sort();
    v
}

/// Polls `f` until it returns true or `limit` passes; returns the time it took. For waits whose
/// duration is itself asserted; [`wait_for`] is for waits that must simply end.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Looks with `look` until `done` holds for what it saw, and returns that; after `limit`, fails
/// naming `what` was awaited and the last thing seen.
pub fn wait_for<T: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut look: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    let start = Instant::now();
    loop {
        let seen = look();
        if done(&seen) {
            return seen;
        }
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}; last seen: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `name` answers exactly the addresses `want`; returns how long that took.
pub fn wait_for_answer(s: &Server, name: &str, want: &[&str], limit: Duration) -> Duration {
    let want: Vec<Ipv4Addr> = want.iter().map(|a| ip(a)).collect();
    let start = Instant::now();
    wait_for(&format!("{name} to answer {want:?}"), limit, || answer(s, name), |got| *got == want);
    start.elapsed()
}

/// The `/status` entry of the target at `address` in the pool named `pool` (with the final
/// dot); Null while there is none.
pub fn target_status(api: SocketAddr, pool: &str, address: &str) -> serde_json::Value {
    let (_, st) = json(api, "GET", "/status");
    st["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["pool"] == pool))
        .and_then(|p| p["targets"].as_array()?.iter().find(|t| t["address"] == address).cloned())
        .unwrap_or_default()
}

/// Waits (at most 5 s) until the target's `/status` entry satisfies `done`; returns it.
pub fn wait_for_target(
    api: SocketAddr,
    pool: &str,
    address: &str,
    what: &str,
    done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(
        &format!("{address} in {pool}: {what}"),
        Duration::from_secs(5),
        || target_status(api, pool, address),
        done,
    )
}

/// Waits (at most `limit_s` seconds) until the target is down with a last probe error that
/// contains `cause`; returns its `/status` entry.
pub fn down_with(api: SocketAddr, limit_s: u64, pool: &str, address: &str, cause: &str) -> serde_json::Value {
    wait_for(
        &format!("{address} in {pool} down with {cause:?}"),
        Duration::from_secs(limit_s),
        || target_status(api, pool, address),
        |t| t["verdict"] == "down" && t["last_probe"]["error"].as_str().is_some_and(|e| e.contains(cause)),
    )
}

/// Whether a target's `/status` entry has the verdict `verdict` and its latest `count` probe
/// results in a row were all `ok`. The streak counts every probe, so this proves that probes
/// ran (and were applied) after the verdict changed, which no wall-clock sleep can.
pub fn settled(t: &serde_json::Value, verdict: &str, ok: bool, count: u64) -> bool {
    t["verdict"] == verdict && t["streak"]["ok"] == ok && t["streak"]["count"].as_u64().is_some_and(|c| c >= count)
}

/// The sequence number of the newest event (0 when there is none).
pub fn last_event_seq(api: SocketAddr) -> u64 {
    let (_, events) = json(api, "GET", "/events?since=0&limit=1000");
    events.as_array().and_then(|e| e.last()).and_then(|e| e["seq"].as_u64()).unwrap_or(0)
}

/// Waits (at most 5 s) for an event after `since` that satisfies `matches`; returns it.
pub fn wait_for_event(
    api: SocketAddr,
    since: u64,
    what: &str,
    mut matches: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let events = wait_for(
        &format!("an event: {what}"),
        Duration::from_secs(5),
        || json(api, "GET", &format!("/events?since={since}&limit=1000")).1,
        |events| events.as_array().is_some_and(|e| e.iter().any(&mut matches)),
    );
    events.as_array().unwrap().iter().find(|e| matches(e)).cloned().unwrap()
}

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A plain HTTP/1.1 request to the API; returns (status, body).
pub fn http(api: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    http_read(http_send(api, method, path, token))
}

/// Sends a request and returns the connection, for [`http_read`]: a test can tell when the
/// request is on its way (a long poll, before the event it waits for).
pub fn http_send(api: SocketAddr, method: &str, path: &str, token: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: weiche\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    s
}

/// Reads the response to [`http_send`]'s request: (status, body).
pub fn http_read(mut s: TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    // Bodies of unknown length come chunked; tests only need the text.
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

pub fn json(api: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http(api, method, path, None);
    (code, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

/// A TCP backend that can be stopped (port closed: connections refused) and started again.
pub struct Backend {
    pub addr: std::net::SocketAddr,
    /// The HTTP response it sends (None: accept and close, for TCP checks).
    reply: Arc<Mutex<Option<String>>>,
    /// The listener it was handed, until the first `up` serves on it.
    first: Option<TcpListener>,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Backend {
    /// Serves on `listener` (from [`Ports::listener`]), so no one else can take the port first.
    pub fn start(listener: TcpListener, reply: Option<&str>) -> Backend {
        let mut b = Backend {
            addr: listener.local_addr().unwrap(),
            reply: Arc::new(Mutex::new(reply.map(String::from))),
            first: Some(listener),
            running: None,
        };
        b.up();
        b
    }

    /// Serves again after `down`. The port had to be closed for connections to be refused, so
    /// it is bound afresh here: another socket could have taken it meanwhile, which on our own
    /// 127.0.0.x addresses nothing does.
    pub fn up(&mut self) {
        let l = self.first.take().unwrap_or_else(|| TcpListener::bind(self.addr).unwrap());
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, reply) = (stop.clone(), self.reply.clone());
        let t = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let r = reply.lock().unwrap().clone();
                        if let Some(r) = r {
                            // HTTP waits for the request; banner protocols (SMTP, MySQL) speak first.
                            if r.starts_with("HTTP/") {
                                c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                                let mut buf = [0u8; 2048];
                                let _ = c.read(&mut buf);
                            }
                            let _ = c.write_all(r.as_bytes());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        self.running = Some((stop, t));
    }

    pub fn down(&mut self) {
        if let Some((stop, t)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.down();
    }
}

/// One TCP port held on several addresses: bound, so nothing else can take it, but not
/// listening, so connections are refused as by a closed port, until a test hands the socket to
/// what serves there ([`Ports::listener`]). Picking a free port, closing it and binding it again
/// later leaves a window in which another test's or program's socket can get it.
pub struct Ports {
    pub port: u16,
    held: Vec<(String, socket2::Socket)>,
}

impl Ports {
    pub fn reserve(ips: &[&str]) -> Ports {
        for _ in 0..50 {
            let first = bound(ips[0], 0).expect("a port on the first address");
            let port = first.local_addr().unwrap().as_socket().unwrap().port();
            let rest: Option<Vec<_>> = ips[1..].iter().map(|ip| bound(ip, port).map(|s| (ip.to_string(), s))).collect();
            if let Some(rest) = rest {
                let mut held = vec![(ips[0].to_string(), first)];
                held.extend(rest);
                return Ports { port, held };
            }
        }
        panic!("no port free on all of {ips:?}");
    }

    /// The port on `ip`, listening from now on.
    pub fn listener(&mut self, ip: &str) -> TcpListener {
        let s = self.take(ip);
        s.listen(128).unwrap();
        s.into()
    }

    /// Lets the port on `ip` go, for a program that must bind it itself (see [`external_port`]).
    pub fn release(&mut self, ip: &str) -> u16 {
        drop(self.take(ip));
        self.port
    }

    fn take(&mut self, ip: &str) -> socket2::Socket {
        let i = self.held.iter().position(|(a, _)| a == ip).unwrap_or_else(|| panic!("{ip} not reserved"));
        self.held.remove(i).1
    }
}

/// A TCP socket bound to `ip`:`port`, not listening. SO_REUSEADDR as std's listeners set it, so
/// a backend can bind the port again after `down` while old connections linger in TIME_WAIT.
fn bound(ip: &str, port: u16) -> Option<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    s.bind(&addr.into()).ok()?;
    Some(s)
}

/// A port free for UDP and TCP on `ip`, for a program started by the test that must bind it
/// itself (knotd, openssl s_server, the weiche binary): a socket cannot be handed to another
/// process here, so the port is found free and let go, and the program may lose it to another
/// socket in between. In-process servers get bound sockets instead ([`Ports`],
/// `weiche::Sockets`).
pub fn external_port(ip: &str) -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind(format!("{ip}:0")).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(format!("{ip}:{port}")).is_ok() {
            return port;
        }
    }
    panic!("no port free for UDP and TCP on {ip}");
}

/// Two different ports free for UDP and TCP on `ip` (see [`external_port`]): the DNS and API
/// ports of a program the test starts.
pub fn two_external_ports(ip: &str) -> (u16, u16) {
    let first = external_port(ip);
    loop {
        let second = external_port(ip);
        if second != first {
            return (first, second);
        }
    }
}

/// Two listening backends on the same port: a primary at `p` and a secondary at `sec`.
pub fn backend_pair(p: &str, sec: &str) -> (u16, Backend, Backend) {
    let mut ports = Ports::reserve(&[p, sec]);
    (ports.port, Backend::start(ports.listener(p), None), Backend::start(ports.listener(sec), None))
}

/// Whether CI asked (WEICHE_REQUIRE_INTEROP=1, set by .ci/run) that tests needing a peer
/// program or root fail rather than skip when they cannot run.
pub fn interop_required() -> bool {
    std::env::var("WEICHE_REQUIRE_INTEROP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The one way a test skips for lack of a peer or a privilege (`why`): it fails when interop is
/// required, and otherwise says so on the terminal before the caller returns. The test still
/// shows `ok`, which is why the line goes to the process's stderr itself: the harness hides
/// `eprintln!` of passing tests.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    if interop_required() {
        panic!("{test} cannot run: {why}, and WEICHE_REQUIRE_INTEROP is set");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED {test}: {why} (passes without testing anything; WEICHE_REQUIRE_INTEROP=1 makes it fail)"
    );
}

/// Whether the program `tool` can be started; if not, [`skip`]s with `install` as the hint.
pub fn have_tool(tool: &str, install: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(&format!("{tool} is not installed ({install})"));
    }
    found
}

pub fn zone(pool: &str) -> String {
    format!("records = \"\"\"\n$TTL 3600\n@ SOA ns1 hm 1 1h 10m 14d 600\n@ NS ns1\nns1 A 127.0.0.53\n\"\"\"\n{pool}")
}

pub fn answer(s: &Server, name: &str) -> Vec<Ipv4Addr> {
    let r = udp(s.addr, &query(name, RecordType::A, None));
    let mut v: Vec<Ipv4Addr> =
        r.answers.iter().filter_map(|a| if let RData::A(a) = &a.data { Some(a.0) } else { None }).collect();
    v.sort();
    v
}

pub fn ttl(s: &Server, name: &str) -> u32 {
    udp(s.addr, &query(name, RecordType::A, None)).answers[0].ttl
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A zone with pool `www`: `p` at priority 1, `sec` at 2, a fast TCP check on `port`.
pub fn two_site_pool(port: u16, p: &str, sec: &str, failback: &str) -> String {
    zone(&format!(
        "[pools.www]\nfailback = \"{failback}\"\ncheck = {{ type = \"tcp\", port = {port}, interval = \"250ms\", timeout = \"200ms\", fall = 2, rise = 2 }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    ))
}

/// A child process killed when the test ends, passed or not.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

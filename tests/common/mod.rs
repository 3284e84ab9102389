//! Test harness: a real weiche on real sockets (127.0.0.x, port 0), and small DNS clients.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

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
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in zones {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut config = weiche::Config::load(None).unwrap();
        config.zones_dir = dir.path().to_path_buf();
        config.reload_interval = Duration::from_millis(200);
        config.udp_workers = 2;
        tweak(&mut config);
        let sockets = weiche::Sockets::bind(&[format!("{ip}:0").parse().unwrap()])
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

/// Polls `f` until it returns true or `limit` passes; returns the time it took.
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

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

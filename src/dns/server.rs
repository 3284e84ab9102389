//! The listeners: UDP worker threads and TCP connections, all answering from the published
//! snapshot through `service::Service::handle` (as the XDP threads do); here is only transport.
//!
//! UDP runs on plain threads, each with its own SO_REUSEPORT socket, blocking in `recvmmsg` and
//! answering in batches (no task per packet, buffers reused per thread); TCP runs on tokio with
//! a bound on connections, an idle timeout, and pipelining.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::dns::service::{self, Reply, Service};
use crate::dns::stats::{self, Transport};
use crate::dns::udp::Batch;
use crate::model::snapshot::Store;

/// Sockets to serve on, bound before `run` (tests bind port 0 and read the port back).
#[derive(Debug)]
pub struct Sockets {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
    /// The HTTP API's listener, if any.
    pub api: Option<TcpListener>,
}

impl Sockets {
    /// Binds UDP and TCP on each address.
    pub fn bind(addrs: &[SocketAddr]) -> std::io::Result<Sockets> {
        let mut s = Sockets { udp: Vec::new(), tcp: Vec::new(), api: None };
        for &addr in addrs {
            let ctx = |e: std::io::Error, proto: &str| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} ({proto}): {e}{}", privilege_hint(&e, addr)),
                )
            };
            let udp = udp_socket(addr).map_err(|e| ctx(e, "UDP"))?;
            let bound = udp.local_addr()?;
            s.udp.push(udp);
            // With port 0, TCP takes the port UDP got.
            let tcp = TcpListener::bind(bound).map_err(|e| ctx(e, "TCP"))?;
            s.tcp.push(tcp);
        }
        Ok(s)
    }

    /// Binds the HTTP API's listener too.
    pub fn with_api(mut self, addr: SocketAddr) -> std::io::Result<Sockets> {
        let l = TcpListener::bind(addr).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {addr} (HTTP API; see --api): {e}"))
        })?;
        self.api = Some(l);
        Ok(self)
    }
}

/// How to get the right to bind a port below 1024, when that is what was refused.
pub fn privilege_hint(e: &std::io::Error, addr: SocketAddr) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() != 0 && addr.port() < 1024 {
        ". Ports below 1024 need CAP_NET_BIND_SERVICE: under systemd, AmbientCapabilities=CAP_NET_BIND_SERVICE \
         in the unit (deploy/weiche.service has it); otherwise `setcap cap_net_bind_service=+ep $(command -v weiche)`, \
         or listen on a port above 1023 and forward 53 to it"
    } else {
        ""
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub udp_payload: u16,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    pub udp_workers: usize,
    /// Who may transfer which zone, and the TSIG keys.
    pub transfer: Arc<crate::config::Transfer>,
    /// Interface to answer IPv4 UDP queries on through AF_XDP (see `xdp`).
    pub xdp: Option<String>,
}

/// A UDP socket bound to `addr` with SO_REUSEPORT, so that every worker thread can have its own
/// socket on the same address (the kernel spreads the queries; no receive queue is shared).
fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let udp = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        udp.set_only_v6(true)?;
    }
    udp.set_reuse_port(true)?;
    // A burst of queries must not overflow a small default receive buffer.
    let _ = udp.set_recv_buffer_size(4 << 20);
    udp.bind(&addr.into())?;
    Ok(udp.into())
}

/// How long TCP connections get to finish what they were asked at shutdown.
const TCP_GRACE: Duration = Duration::from_secs(3);

/// The running listeners; [`Listeners::stop`] ends them gracefully.
pub struct Listeners {
    stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    tcp: JoinSet<()>,
    tcp_stop: tokio::sync::watch::Sender<bool>,
    /// Keeps the XDP program attached.
    _xdp: Option<crate::dns::xdp::Attached>,
}

impl Listeners {
    pub fn start(sockets: Sockets, store: Store, limits: &Limits) -> std::io::Result<Listeners> {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = if limits.udp_workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            limits.udp_workers
        };
        let mut udp_threads = Vec::new();
        let mut xdp_listen = Vec::new();
        for sock in sockets.udp {
            let addr = sock.local_addr()?;
            if let SocketAddr::V4(a) = addr {
                xdp_listen.push((a, sock.try_clone()?));
            }
            for i in 0..workers {
                let sock = if i == 0 { sock.try_clone()? } else { udp_socket(addr)? };
                sock.set_read_timeout(Some(Duration::from_millis(200)))?;
                let name = format!("udp-{}-{i}", sock.local_addr()?);
                let worker = Worker {
                    store: store.clone(),
                    service: Service::new(limits.udp_payload, limits.transfer.clone(), stats::counters(Transport::Udp)),
                };
                let stop = stop.clone();
                udp_threads.push(std::thread::Builder::new().name(name).spawn(move || udp_worker(sock, worker, stop))?);
            }
        }
        let xdp = match &limits.xdp {
            Some(ifname) => {
                let plan = crate::dns::xdp::Plan { ifname: ifname.clone(), listen: xdp_listen };
                let (payload, transfer) = (limits.udp_payload, limits.transfer.clone());
                Some(crate::dns::xdp::start(plan, store.clone(), payload, transfer, stop.clone(), &mut udp_threads)?)
            }
            None => None,
        };
        let mut tcp = JoinSet::new();
        let permits = Arc::new(Semaphore::new(limits.tcp_max_connections));
        let tcp_service = Service::new(limits.udp_payload, limits.transfer.clone(), stats::counters(Transport::Tcp));
        let (tcp_stop, stopping) = tokio::sync::watch::channel(false);
        for l in sockets.tcp {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            let conn = Conn {
                store: store.clone(),
                idle: limits.tcp_idle_timeout,
                service: tcp_service.clone(),
                stopping: stopping.clone(),
            };
            tcp.spawn(tcp_accept(l, conn, permits.clone()));
        }
        Ok(Listeners { stop, udp_threads, tcp, tcp_stop, _xdp: xdp })
    }

    /// Stops every listener: UDP threads notice within 200 ms; TCP stops accepting and open
    /// connections finish their answers (at most a few seconds).
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tcp_stop.send(true);
        while self.tcp.join_next().await.is_some() {}
        let threads = self.udp_threads;
        let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| _ = t.join())).await;
    }
}

/// What a UDP thread answers with.
struct Worker {
    store: Store,
    service: Service,
}

/// One UDP thread: a batch in, a batch of answers out, until told to stop.
fn udp_worker(sock: UdpSocket, w: Worker, stop: Arc<AtomicBool>) {
    let mut batch = Batch::new();
    let mut special = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        udp_round(&sock, &w, &mut batch, &mut special);
    }
}

/// Receives one batch (waiting at most the socket's read timeout), answers it from one snapshot
/// load, and sends the answers. Everything a UDP query costs in user space happens in here:
/// `bench/callgrind.sh` counts the instructions of this function.
#[inline(never)]
fn udp_round(sock: &UdpSocket, w: &Worker, batch: &mut Batch, special: &mut Vec<Vec<u8>>) {
    if let Err(e) = batch.recv(sock) {
        use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
        if !matches!(e.kind(), WouldBlock | TimedOut | Interrupted) {
            debug!(error = %e, "UDP receive failed");
        }
        return;
    }
    let snap = w.store.load();
    batch.each(|d, out| {
        let reply = if d.truncated {
            service::oversized(d.msg, out)
        } else {
            w.service.handle(&snap, d.msg, false, || d.peer().map(|p| p.ip()), out, special)
        };
        match reply {
            Reply::Answer => {}
            Reply::Drop => out.clear(),
            Reply::Messages => {
                let Some(peer) = d.peer() else { return };
                // The first goes with the batch; the rest (a multi-message IXFR) right away.
                let mut msgs = special.drain(..);
                if let Some(first) = msgs.next() {
                    *out = first;
                }
                for m in msgs {
                    let _ = sock.send_to(&m, peer);
                }
            }
        }
    });
    drop(snap);
    let refused = batch.send(sock);
    if refused > 0 {
        debug!(refused, "UDP send failed");
    }
}

/// What every TCP connection needs.
#[derive(Clone)]
struct Conn {
    store: Store,
    idle: Duration,
    service: Service,
    /// Becomes true at shutdown: answer what was read, then close.
    stopping: tokio::sync::watch::Receiver<bool>,
}

async fn tcp_accept(listener: tokio::net::TcpListener, conn: Conn, permits: Arc<Semaphore>) {
    let mut conns = JoinSet::new();
    let mut stopping = conn.stopping.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "TCP connection refused: too many open");
            continue;
        };
        let conn = conn.clone();
        conns.spawn(async move {
            if let Err(e) = tcp_conn(stream, peer.ip(), conn).await {
                debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(permit);
        });
    }
    // Shutting down: no new connections; open ones finish their answers, within the grace time.
    drop(listener);
    let _ = tokio::time::timeout(TCP_GRACE, async { while conns.join_next().await.is_some() {} }).await;
}

async fn tcp_conn(mut stream: tokio::net::TcpStream, peer: std::net::IpAddr, c: Conn) -> std::io::Result<()> {
    let mut special = Vec::new();
    let (store, idle) = (&c.store, c.idle);
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut msg = Vec::new();
    let mut out = Vec::with_capacity(4096);
    let mut stopping = c.stopping.clone();
    loop {
        // At shutdown, queries already received are answered; no new one is waited for.
        let len = tokio::select! {
            l = tokio::time::timeout(idle, r.read_u16()) => match l {
                Ok(Ok(len)) => len as usize,
                // Idle too long, or the client closed: either way, done.
                _ => break,
            },
            _ = stopping.wait_for(|s| *s), if r.buffer().is_empty() => break,
        };
        msg.resize(len, 0);
        match tokio::time::timeout(idle, r.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        // A statement of its own, so the snapshot is let go before the first await.
        let reply = c.service.handle_tcp(&store.load(), &msg, peer, &mut out, &mut special);
        match reply {
            Reply::Drop => break,
            Reply::Answer => {}
            Reply::Messages => {
                for m in &special {
                    w.write_u16(m.len() as u16).await?;
                    w.write_all(m).await?;
                }
                w.flush().await?;
                continue;
            }
        }
        w.write_u16(out.len() as u16).await?;
        w.write_all(&out).await?;
        // Pipelined queries already read are answered before the flush.
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
    w.flush().await
}

//! The listeners: UDP worker threads and TCP connections, all answering from the published
//! snapshot through `service::Service::handle` (as the XDP threads do); here is only transport.
//!
//! UDP runs on plain threads, each with its own SO_REUSEPORT socket, blocking in `recvmmsg` and
//! answering in batches (no task per packet, buffers reused per thread), rate limited when
//! `[rrl]` says so (`rrl`); TCP runs on tokio (`tcp`: bounded connections, per client too, idle
//! timeouts, pipelining).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::debug;

use crate::dns::rrl;
use crate::dns::service::{self, Reply, Service};
use crate::dns::stats::{self, Transport};
use crate::dns::tcp;
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
            // With port 0, TCP takes the port UDP got; if a TCP socket holds that one already
            // (an outgoing connection's), another port is tried.
            let mut tries = if addr.port() == 0 { 20 } else { 1 };
            let (udp, tcp) = loop {
                tries -= 1;
                let udp = udp_socket(addr).map_err(|e| ctx(e, "UDP"))?;
                match TcpListener::bind(udp.local_addr()?) {
                    Ok(tcp) => break (udp, tcp),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries > 0 => continue,
                    Err(e) => return Err(ctx(e, "TCP")),
                }
            };
            s.udp.push(udp);
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
    pub tcp_max_connections_per_client: usize,
    pub udp_workers: usize,
    /// Who may transfer which zone, and the TSIG keys.
    pub transfer: crate::config::SharedTransfer,
    /// Interface to answer IPv4 UDP queries on through AF_XDP (see `xdp`).
    pub xdp: Option<String>,
    /// Response rate limiting for UDP (sockets and XDP).
    pub rrl: crate::config::Rrl,
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
        // One table of accounts for every UDP and XDP thread: a client's limit is the limit,
        // whichever thread its datagrams reach.
        let rrl = limits.rrl.is_on().then(|| Arc::new(rrl::Table::new(limits.rrl)));
        let udp_service = |transport| {
            Service::new(limits.udp_payload, limits.transfer.clone(), stats::counters(transport), rrl.clone())
        };
        for sock in sockets.udp {
            let addr = sock.local_addr()?;
            if let SocketAddr::V4(a) = addr {
                xdp_listen.push((a, sock.try_clone()?));
            }
            for i in 0..workers {
                let sock = if i == 0 { sock.try_clone()? } else { udp_socket(addr)? };
                sock.set_read_timeout(Some(Duration::from_millis(200)))?;
                let name = format!("udp-{}-{i}", sock.local_addr()?);
                let worker = Worker { store: store.clone(), service: udp_service(Transport::Udp) };
                let stop = stop.clone();
                udp_threads.push(std::thread::Builder::new().name(name).spawn(move || udp_worker(sock, worker, stop))?);
            }
        }
        let xdp = match &limits.xdp {
            Some(ifname) => {
                let plan = crate::dns::xdp::Plan { ifname: ifname.clone(), listen: xdp_listen };
                let service = || udp_service(Transport::Xdp);
                Some(crate::dns::xdp::start(plan, store.clone(), service, stop.clone(), &mut udp_threads)?)
            }
            None => None,
        };
        let mut tcp = JoinSet::new();
        let table = tcp::Table::new(limits.tcp_max_connections, limits.tcp_max_connections_per_client);
        // TCP is never rate limited: a real client told to retry over TCP gets its answer.
        let tcp_service =
            Service::new(limits.udp_payload, limits.transfer.clone(), stats::counters(Transport::Tcp), None);
        let (tcp_stop, stopping) = tokio::sync::watch::channel(false);
        for l in sockets.tcp {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            let conn = tcp::Conn {
                store: store.clone(),
                idle: limits.tcp_idle_timeout,
                service: tcp_service.clone(),
                stopping: stopping.clone(),
            };
            tcp.spawn(tcp::accept(l, conn, table.clone()));
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
    let via = w.service.datagrams();
    batch.each(|d, out| {
        let reply = if d.truncated {
            service::oversized(d.msg, out)
        } else {
            w.service.handle(&snap, d.msg, via, || d.peer().map(|p| p.ip()), out, special)
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

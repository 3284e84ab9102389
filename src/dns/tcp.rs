//! DNS over TCP (RFC 7766): the accept loop, one task per connection with pipelining, and the
//! table of open connections that decides who may hold one.
//!
//! Connections cost a descriptor and memory each, so there is a bound (`tcp_max_connections`),
//! and idle ones must not keep everybody else out. The table:
//! - caps what one client address may hold (`tcp_max_connections_per_client`). A client at its
//!   cap that opens another gives up its own connection that has waited longest for a query,
//!   and is refused only when none of its connections is waiting;
//! - at the bound, closes the connection, of any client, that has waited longest for a query,
//!   to make room for the new one. Only when every connection is busy answering is the new one
//!   refused;
//! - under pressure (more than three quarters of the bound open) gives a connection that starts
//!   waiting at most [`PRESSED_IDLE`] instead of the idle timeout, as Knot DNS does.
//!
//! A connection is *waiting* from when it is accepted, or has answered everything it was sent,
//! until a whole message has come in: an idle client, and one that sends its query byte by
//! byte, are both waiting. One made to give way has its socket shut down: its client sees the
//! end at once, and its task stops at its read. Writes that can block are bounded by the idle
//! timeout too, so a client that never reads its answers cannot hold a connection forever.
//!
//! The table is a mutex taken at accept and at close, never per query; a connection marks when
//! it starts waiting with a number from one shared counter (once per batch of queries read).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::dns::service::{Reply, Service};
use crate::model::snapshot::Store;
use crate::throttle::Throttle;

/// The longest a connection that starts waiting under pressure may wait for its next query.
pub const PRESSED_IDLE: Duration = Duration::from_secs(1);

/// A connection's write buffer (tokio's default): answers that fit go out with the flush.
const WRITE_BUFFER: usize = 8 * 1024;

/// How long connections get to finish what they were asked at shutdown.
pub const GRACE: Duration = Duration::from_secs(3);

/// One open connection, as the table sees it.
struct Slot {
    peer: IpAddr,
    /// When it started waiting for a query, in the table's order of such starts (from 1); 0
    /// while busy.
    waiting_since: AtomicU64,
    /// Its socket. Open while the slot is in the table: a connection leaves the table before it
    /// closes its socket (see [`accept`]).
    fd: RawFd,
    /// Made to give way (set under the table's lock: it no longer counts).
    evicted: AtomicBool,
}

/// Why a connection was closed or refused, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// Its client was at `tcp_max_connections_per_client`.
    Client,
    /// All `tcp_max_connections` were open.
    Full,
}

impl Pressure {
    fn label(self) -> &'static str {
        match self {
            Pressure::Client => "client_limit",
            Pressure::Full => "connection_limit",
        }
    }
}

#[derive(Default)]
struct Open {
    /// Open connections by slot number; None: free.
    slots: Vec<Option<Arc<Slot>>>,
    free: Vec<usize>,
    per_client: HashMap<IpAddr, usize>,
}

impl Open {
    /// The connection (of `peer`, if given) that has waited longest.
    fn longest_waiting(&self, peer: Option<IpAddr>) -> Option<usize> {
        let waiting = |s: &Slot| match s.waiting_since.load(Relaxed) {
            0 => None,
            t if peer.is_none_or(|p| p == s.peer) => Some(t),
            _ => None,
        };
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(t) = s.as_deref().and_then(waiting)
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Takes `i` out of the table; its task closes it.
    fn remove(&mut self, i: usize) -> Arc<Slot> {
        let slot = self.slots[i].take().expect("an open slot");
        self.free.push(i);
        if let Some(n) = self.per_client.get_mut(&slot.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&slot.peer);
            }
        }
        slot
    }
}

/// Every TCP connection of the server, on all its listen addresses.
pub struct Table {
    max: usize,
    per_client: usize,
    open: Mutex<Open>,
    /// How many are open (also under the lock; read without it for the idle timeout).
    count: AtomicUsize,
    /// Numbers the starts of waiting: exact order, where a clock would tie.
    waits: AtomicU64,
}

/// What the table says to a new connection.
pub enum Admit {
    /// Come in; the ticket gives the place back when dropped. `evicted` gave way to it.
    Open {
        ticket: Ticket,
        evicted: Option<Pressure>,
    },
    Refused(Pressure),
}

impl Table {
    pub fn new(max: usize, per_client: usize) -> Arc<Table> {
        Arc::new(Table {
            max,
            per_client: per_client.clamp(1, max),
            open: Default::default(),
            count: 0.into(),
            waits: 0.into(),
        })
    }

    /// Admits a connection from `peer` on socket `fd`, making room as the module says, or
    /// refuses it.
    pub fn admit(self: &Arc<Table>, peer: IpAddr, fd: RawFd) -> Admit {
        let peer = client_of(peer);
        let mut open = self.open.lock().expect("TCP table");
        let mut evicted = None;
        if open.per_client.get(&peer).copied().unwrap_or(0) >= self.per_client {
            let Some(i) = open.longest_waiting(Some(peer)) else { return Admit::Refused(Pressure::Client) };
            self.evict(&mut open, i);
            evicted = Some(Pressure::Client);
        }
        if self.count.load(Relaxed) >= self.max {
            let Some(i) = open.longest_waiting(None) else { return Admit::Refused(Pressure::Full) };
            self.evict(&mut open, i);
            evicted = Some(Pressure::Full);
        }
        // A new connection waits for its first query from now on, in the order of admission.
        let slot = Arc::new(Slot {
            peer,
            waiting_since: AtomicU64::new(self.waits.fetch_add(1, Relaxed) + 1),
            fd,
            evicted: AtomicBool::new(false),
        });
        let i = match open.free.pop() {
            Some(i) => i,
            None => {
                open.slots.push(None);
                open.slots.len() - 1
            }
        };
        open.slots[i] = Some(slot.clone());
        *open.per_client.entry(peer).or_default() += 1;
        self.count.fetch_add(1, Relaxed);
        Admit::Open { ticket: Ticket { table: self.clone(), slot, index: i }, evicted }
    }

    /// Shuts the connection's socket down: its client sees the end at once, and its task's read
    /// ends, which closes it (no signal to poll for on every query).
    fn evict(&self, open: &mut Open, i: usize) {
        let slot = open.remove(i);
        slot.evicted.store(true, Relaxed);
        // SAFETY: shutdown(2) on a descriptor; it is the connection's, which is still open (it
        // was in the table), and shutting it down leaves it valid for its owner to close.
        unsafe { libc::shutdown(slot.fd, libc::SHUT_RDWR) };
        self.count.fetch_sub(1, Relaxed);
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The idle timeout for a connection that starts waiting now: `configured`, or at most
    /// [`PRESSED_IDLE`] while more than three quarters of the bound are open.
    pub fn idle_timeout(&self, configured: Duration) -> Duration {
        if self.count.load(Relaxed) * 4 > self.max * 3 { configured.min(PRESSED_IDLE) } else { configured }
    }
}

/// A connection's place in the table; dropping it gives the place back.
pub struct Ticket {
    table: Arc<Table>,
    slot: Arc<Slot>,
    index: usize,
}

impl Ticket {
    /// The connection waits for a query from now on: it may be made to give way.
    fn waiting(&self) {
        self.slot.waiting_since.store(self.table.waits.fetch_add(1, Relaxed) + 1, Relaxed);
    }

    /// A whole query has come: it answers before anything else.
    fn busy(&self) {
        self.slot.waiting_since.store(0, Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("TCP table");
        // An evicted connection was taken out already, and its place may be another's now.
        if !self.slot.evicted.load(Relaxed) {
            open.remove(self.index);
            self.table.count.fetch_sub(1, Relaxed);
        }
        drop(open);
        metrics::gauge!("weiche_tcp_connections").set(self.table.len() as f64);
    }
}

/// What every TCP connection needs.
#[derive(Clone)]
pub struct Conn {
    pub store: Store,
    pub idle: Duration,
    pub service: Service,
    /// Becomes true at shutdown: answer what was read, then close.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Accepts connections on `listener` until shutdown, each admitted by `table`, then gives the
/// open ones [`GRACE`] to finish.
pub async fn accept(listener: tokio::net::TcpListener, conn: Conn, table: Arc<Table>) {
    let mut conns = JoinSet::new();
    let mut stopping = conn.stopping.clone();
    // Failed accepts (out of descriptors, most likely) are logged once per 10 s, with a count:
    // they come twenty a second while it lasts.
    let mut logged = Throttle::new(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                if let Some(failed_since_last) = logged.due(std::time::Instant::now()) {
                    warn!(error = %e, failed_since_last, "TCP accept failed");
                }
                metrics::counter!("weiche_tcp_accept_failed_total").increment(1);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let ticket = match table.admit(peer.ip(), stream.as_raw_fd()) {
            Admit::Open { ticket, evicted } => {
                if let Some(why) = evicted {
                    debug!(%peer, reason = why.label(), "TCP connection waiting longest closed to make room");
                    metrics::counter!("weiche_tcp_evicted_total", "reason" => why.label()).increment(1);
                }
                ticket
            }
            Admit::Refused(why) => {
                debug!(%peer, reason = why.label(), "TCP connection refused: every one open is busy");
                metrics::counter!("weiche_tcp_refused_total", "reason" => why.label()).increment(1);
                continue;
            }
        };
        metrics::gauge!("weiche_tcp_connections").set(table.len() as f64);
        let conn = conn.clone();
        conns.spawn(async move {
            let mut stream = stream;
            if let Err(e) = connection(&mut stream, peer.ip(), conn, &ticket).await {
                debug!(%peer, error = %e, "TCP connection ended");
            }
            // Out of the table while the socket is still ours: an eviction must never shut down
            // a descriptor that has been closed, and perhaps reused.
            drop(ticket);
            drop(stream);
        });
    }
    // Shutting down: no new connections; open ones finish their answers, within the grace time.
    drop(listener);
    let _ = tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
}

/// Who a connection counts against for `tcp_max_connections_per_client`: its IPv4 address, or
/// its IPv6 /64 (one host has a whole /64 to pick addresses from).
pub(crate) fn client_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => {
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1)))
        }
        IpAddr::V6(a) => IpAddr::V4(a.to_ipv4_mapped().expect("mapped")),
        v4 => v4,
    }
}

/// Whether `buf` starts with a whole length-prefixed message.
fn whole_message(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf.len() >= 2 + u16::from_be_bytes([buf[0], buf[1]]) as usize
}

/// Writing `f`, which fails when the client has not read for `idle`. A write still blocked
/// after [`PRESSED_IDLE`] makes the connection one that waits on its client, as an idle one
/// does: at the bound it may be made to give way, so clients that never read their answers
/// cannot hold every place for the idle timeout.
async fn bounded(idle: Duration, ticket: &Ticket, f: impl Future<Output = std::io::Result<()>>) -> std::io::Result<()> {
    let timed_out = || {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not read its answers within the idle timeout",
        ))
    };
    let mut f = std::pin::pin!(f);
    if let Ok(done) = tokio::time::timeout(PRESSED_IDLE.min(idle), &mut f).await {
        return done;
    }
    ticket.waiting();
    let done = tokio::time::timeout(idle.saturating_sub(PRESSED_IDLE), f).await.unwrap_or_else(|_| timed_out());
    ticket.busy();
    done
}

async fn connection(stream: &mut tokio::net::TcpStream, peer: IpAddr, c: Conn, ticket: &Ticket) -> std::io::Result<()> {
    let mut special = Vec::new();
    let (store, idle) = (&c.store, c.idle);
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, w);
    let mut msg = Vec::new();
    let mut out = Vec::with_capacity(4096);
    let mut stopping = c.stopping.clone();
    // Admitted, it is waiting already.
    let mut answered = false;
    loop {
        if whole_message(r.buffer()) {
            // Read ahead (pipelined): taken from the buffer, nothing to wait for.
            let len = r.read_u16().await? as usize;
            msg.resize(len, 0);
            r.read_exact(&mut msg).await?;
        } else {
            // Without a whole message read ahead the connection waits for its client (a part of
            // one counts for nothing: sent byte by byte, it would hold its place).
            if answered {
                ticket.waiting();
            }
            // One whole message, within the idle timeout. At shutdown, queries already received
            // whole are answered; no other is waited for.
            let limit = ticket.table.idle_timeout(idle);
            let read = async {
                let len = r.read_u16().await? as usize;
                msg.resize(len, 0);
                r.read_exact(&mut msg).await
            };
            tokio::select! {
                biased;
                m = tokio::time::timeout(limit, read) => match m {
                    Ok(Ok(_)) => {}
                    // Idle too long, or the client closed: either way, done.
                    _ => break,
                },
                _ = stopping.wait_for(|s| *s) => break,
            }
            ticket.busy();
        }
        answered = true;
        // A statement of its own, so the snapshot is let go before the first await.
        let reply = c.service.handle_tcp(&store.load(), &msg, peer, &mut out, &mut special);
        // Pipelined queries already read are answered before the flush.
        let flush = !whole_message(r.buffer());
        match reply {
            Reply::Drop => break,
            // Into the buffer, if it fits, cannot block; a flush or a larger answer can, for as
            // long as the client does not read: bounded by the idle timeout.
            Reply::Answer if 2 + out.len() <= WRITE_BUFFER - w.buffer().len() => {
                w.write_u16(out.len() as u16).await?;
                w.write_all(&out).await?;
                if flush {
                    bounded(idle, ticket, w.flush()).await?;
                }
            }
            Reply::Answer => {
                bounded(idle, ticket, async {
                    w.write_u16(out.len() as u16).await?;
                    w.write_all(&out).await?;
                    if flush { w.flush().await } else { Ok(()) }
                })
                .await?
            }
            // A transfer, message by message: each is bounded on its own, so one that streams
            // for long, making progress, is never taken for a client that does not read.
            Reply::Messages => {
                for m in &special {
                    bounded(idle, ticket, async {
                        w.write_u16(m.len() as u16).await?;
                        w.write_all(m).await
                    })
                    .await?;
                }
                bounded(idle, ticket, w.flush()).await?
            }
        }
    }
    bounded(idle, ticket, w.flush()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For tables whose connections have no socket: shutdown(2) fails on it, and does nothing.
    const NO_SOCKET: RawFd = -1;

    /// One IPv6 host may use any address of its /64: they count as one client; IPv4 and
    /// IPv4-mapped addresses count each on its own.
    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_of(ip("2001:db8:1:2:bbbb::7")), ip("2001:db8:1:2::"));
        assert_ne!(client_of(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let t = Table::new(100, 2);
        let _a = open(&t, "2001:db8::1");
        let _b = open(&t, "2001:db8::2");
        // A third address of the same /64 is the same client at its cap: its own connection
        // waiting longest gives way.
        assert!(matches!(t.admit(ip("2001:db8::3"), NO_SOCKET), Admit::Open { evicted: Some(Pressure::Client), .. }));
        let _c = open(&t, "2001:db8:0:1::3");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn open(t: &Arc<Table>, peer: &str) -> Ticket {
        match t.admit(ip(peer), NO_SOCKET) {
            Admit::Open { ticket, evicted: None } => ticket,
            Admit::Open { evicted: Some(why), .. } => panic!("{peer}: admitted, but {why:?} evicted another"),
            Admit::Refused(why) => panic!("{peer}: refused ({why:?})"),
        }
    }

    fn evicted(t: &Ticket) -> bool {
        t.slot.evicted.load(Relaxed)
    }

    /// Marks `t` waiting since `ms` (instead of the clock, to order them).
    fn waiting_since(t: &Ticket, ms: u64) {
        t.slot.waiting_since.store(ms, Relaxed);
    }

    #[test]
    fn a_client_at_its_cap_gives_up_its_own_longest_waiting_connection() {
        let t = Table::new(10, 3);
        let a: Vec<Ticket> = (0..3).map(|_| open(&t, "192.0.2.1")).collect();
        let b = open(&t, "192.0.2.2");
        a.iter().chain([&b]).for_each(Ticket::busy);
        // All three of a's busy: the fourth is refused, and nobody else is touched.
        assert!(matches!(t.admit(ip("192.0.2.1"), NO_SOCKET), Admit::Refused(Pressure::Client)));
        waiting_since(&b, 1);
        waiting_since(&a[2], 5);
        waiting_since(&a[1], 7);
        match t.admit(ip("192.0.2.1"), NO_SOCKET) {
            Admit::Open { evicted: Some(Pressure::Client), ticket } => drop(ticket),
            _ => panic!("a's longest waiting should give way"),
        }
        assert_eq!(a.iter().map(evicted).collect::<Vec<_>>(), [false, false, true]);
        assert!(!evicted(&b), "another client's connection, though waiting longer");
        // The evicted one's drop changes nothing more; the new one's drop gave its place back.
        drop(a);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn at_the_bound_the_longest_waiting_connection_of_anyone_gives_way() {
        let t = Table::new(4, 4);
        let held: Vec<Ticket> =
            ["192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().map(|p| open(&t, p)).collect();
        held.iter().for_each(Ticket::busy);
        assert_eq!(t.len(), 4);
        // Everyone busy: refused.
        assert!(matches!(t.admit(ip("198.51.100.1"), NO_SOCKET), Admit::Refused(Pressure::Full)));
        waiting_since(&held[1], 20);
        waiting_since(&held[3], 10);
        let new = match t.admit(ip("198.51.100.1"), NO_SOCKET) {
            Admit::Open { evicted: Some(Pressure::Full), ticket } => ticket,
            _ => panic!("the longest waiting should give way"),
        };
        assert_eq!(held.iter().map(evicted).collect::<Vec<_>>(), [false, false, false, true]);
        assert_eq!(t.len(), 4);
        // The evicted connection's task ends later: its ticket must not free the new one's place.
        let idx = held[3].index;
        drop(held);
        assert_eq!(t.len(), 1);
        assert_eq!(new.index, idx, "the place was reused");
        assert!(t.open.lock().unwrap().slots[idx].is_some());
        drop(new);
        assert!(t.is_empty());
        assert!(t.open.lock().unwrap().per_client.is_empty());
    }

    #[test]
    fn a_new_connection_waits_from_its_admission_in_that_order() {
        let t = Table::new(3, 3);
        let a = open(&t, "192.0.2.1");
        let b = open(&t, "192.0.2.1");
        let c = open(&t, "192.0.2.2");
        // b answered a query and waits again: now after c.
        b.busy();
        b.waiting();
        let mut kept = Vec::new();
        for want in [&a, &c, &b] {
            let Admit::Open { ticket, evicted: Some(_) } = t.admit(ip("192.0.2.9"), NO_SOCKET) else { panic!() };
            assert!(evicted(want));
            // Busy, it keeps its place.
            ticket.busy();
            kept.push(ticket);
        }
    }

    #[test]
    fn an_evicted_connections_socket_is_shut_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let t = Table::new(1, 1);
        let Admit::Open { ticket: first, .. } = t.admit(ip("192.0.2.1"), server.as_raw_fd()) else { panic!() };
        let Admit::Open { ticket: _second, evicted: Some(_) } = t.admit(ip("192.0.2.1"), NO_SOCKET) else { panic!() };
        assert!(evicted(&first));
        // The client sees the end, and so would the connection's own read.
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(std::io::Read::read(&mut client, &mut [0u8; 1]).unwrap(), 0);
        assert_eq!(std::io::Read::read(&mut &server, &mut [0u8; 1]).unwrap(), 0);
    }

    #[test]
    fn only_a_whole_message_read_ahead_keeps_a_connection_busy() {
        assert!(!whole_message(b""));
        assert!(!whole_message(b"\x00"));
        assert!(!whole_message(b"\x00\x03ab"));
        assert!(whole_message(b"\x00\x03abc"));
        assert!(whole_message(b"\x00\x00"));
        assert!(whole_message(b"\x00\x01a\x00"));
    }

    #[test]
    fn the_idle_timeout_shortens_above_three_quarters_of_the_bound() {
        let t = Table::new(8, 8);
        let long = Duration::from_secs(30);
        let mut held = Vec::new();
        for n in 1..=8 {
            held.push(open(&t, "192.0.2.1"));
            let want = if n > 6 { PRESSED_IDLE } else { long };
            assert_eq!(t.idle_timeout(long), want, "{n} open");
        }
        assert_eq!(t.idle_timeout(Duration::from_millis(300)), Duration::from_millis(300), "never longer");
    }
}

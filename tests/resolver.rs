//! What a client sees through a real resolver: unbound (started by the test, a stub zone
//! pointing at weiche) between a polling client and weiche, over failovers and failbacks with
//! the backend killed and restored at random moments.
//!
//! How fast a failover really is depends on when the resolver's cached answer runs out. The
//! measure is the client's switch time minus the moment the TTL its cache held ran out: an
//! answer fetched while a verdict is pending must not keep the client on the old answer for
//! long past it (issue 18).
//!
//! Without unbound installed this test says it skipped (see `common::skip`); with
//! WEICHE_REQUIRE_INTEROP=1 (set by .ci/run) it fails instead.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::unbound::Unbound;
use common::*;

const ZONE: &str = "rs.test";

/// xorshift64*: reproducible random moments without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The sum of weiche's `weiche_queries_total` counters (every query it was sent).
fn queries_seen(api: SocketAddr) -> u64 {
    let (_, text) = http(api, "GET", "/metrics", None);
    text.lines()
        .filter(|l| l.starts_with("weiche_queries_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

const POLL: Duration = Duration::from_millis(50);
const TTL: u32 = 5;

/// One switch, as the client saw it.
#[derive(Debug, Clone)]
struct Switch {
    /// Seconds from the end of the TTL its cache held when the backend changed to the client's
    /// switch (negative: before it ran out). The measure.
    late: f64,
    /// The TTL the cache held when the backend changed.
    held: u32,
    /// Seconds from the end of the TTL of the last answer the cache held, refreshed after the
    /// change or not, to the switch.
    late_last: f64,
    /// Each time unbound fetched the old answer again after the change: the TTL it got, and
    /// whether weiche had already seen the change (a verdict pending).
    refreshed: Vec<(u32, bool)>,
}

/// Polls `name` through unbound until `until`, every POLL; returns the last answer seen.
fn poll_until(u: &Unbound, name: &str, until: Instant) -> (Vec<Ipv4Addr>, u32, Instant) {
    let mut last = (vec![], 0, Instant::now());
    loop {
        let at = Instant::now();
        if let Some((a, ttl)) = u.a(name) {
            last = (a, ttl, at);
        }
        if Instant::now() >= until {
            return last;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

fn seconds_after(a: Instant, b: Instant) -> f64 {
    a.saturating_duration_since(b).as_secs_f64() - b.saturating_duration_since(a).as_secs_f64()
}

/// What one client thread watches: unbound, and weiche's /status for when it saw the change.
struct Watch<'a> {
    u: &'a Unbound,
    api: SocketAddr,
    name: String,
    primary: &'a str,
}

/// Changes the backend (`change`) at a random moment of the cache's life, then polls until the
/// client sees `want`; `verdict` is the primary's verdict once weiche has decided.
fn switch(w: &Watch, rng: &mut Rng, want: Ipv4Addr, verdict: &str, change: impl FnOnce()) -> Switch {
    let name = &w.name;
    // The client polls all along, so the cache is refetched as soon as it runs out: a random
    // wait over one TTL puts the change at a random point of the cached answer's life.
    let at = Instant::now() + Duration::from_millis(rng.below(TTL as u64 * 1000));
    let (before, held, seen_at) = poll_until(w.u, name, at);
    assert!(!before.is_empty() && !before.contains(&want), "{name} already answered {before:?}");
    change();
    let changed = Instant::now();
    let expires = seen_at + Duration::from_secs(held as u64);
    let (mut deadline, mut last_ttl, mut last_at) = (expires, held, changed);
    let mut noticed: Option<Instant> = None;
    let mut refreshed = Vec::new();
    loop {
        if noticed.is_none() {
            let t = target_status(w.api, name, w.primary);
            if t["in_doubt"] == true || t["verdict"] == verdict {
                noticed = Some(Instant::now());
            }
        }
        let at = Instant::now();
        if let Some((a, ttl)) = w.u.a(name) {
            if a == vec![want] {
                let late_last = seconds_after(at, deadline);
                return Switch { late: seconds_after(at, expires), held, late_last, refreshed };
            }
            // unbound counts a cached TTL down to 0: one that goes up is a fresh copy. It was
            // fetched after the previous poll, so after weiche saw the change if that was earlier.
            if ttl > last_ttl {
                deadline = at + Duration::from_secs(ttl as u64);
                refreshed.push((ttl, noticed.is_some_and(|n| n < last_at)));
            }
            (last_ttl, last_at) = (ttl, at);
        }
        assert!(changed.elapsed() < Duration::from_secs(TTL as u64 * 3 + 5), "{name} never answered {want}");
        std::thread::sleep(POLL);
    }
}

fn pool(name: &str, port: u16, p: &str, sec: &str) -> String {
    // fall = rise = 3 with a 300 ms retry keep each verdict in doubt for 0.6 s, long enough for
    // the cache to run out inside that window now and then.
    format!(
        "[pools.{name}]\nttl = {TTL}\nttl_min = {TTL}\n\
         check = {{ type = \"tcp\", port = {port}, interval = \"500ms\", timeout = \"300ms\", retry_interval = \"300ms\", fall = 3, rise = 3 }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    )
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    ((v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0, v[v.len() - 1])
}

fn summary(what: &str, s: &[Switch]) {
    let (median, max) = median_max(s.iter().map(|s| s.late).collect());
    let (median_last, max_last) = median_max(s.iter().map(|s| s.late_last).collect());
    let each: Vec<String> = s
        .iter()
        .map(|s| {
            let refreshed: String = s
                .refreshed
                .iter()
                .map(|(ttl, pending)| {
                    format!(", refreshed with TTL {ttl}{}", if *pending { " while pending" } else { "" })
                })
                .collect();
            format!("{:.2} s (held {}{refreshed})", s.late, s.held)
        })
        .collect();
    eprintln!(
        "{what}: {} switches; past the TTL held at the change: median {median:.2} s, max {max:.2} s; \
         past the TTL last held: median {median_last:.2} s, max {max_last:.2} s\n  {}",
        s.len(),
        each.join("\n  ")
    );
}

/// 10 failovers and 10 failbacks, over two pools run side by side (to keep the run short).
///
/// unbound keeps an answer of TTL n for up to n + 1 s (it counts whole seconds and serves TTL 0
/// for a second), so what weiche controls is the TTL a refresh gets: one made while a verdict
/// that changes the answer is pending must get no more than the time to that verdict (1 s here,
/// rounded up). Then no client waits more than 1.5 s past the TTL its cache last held. (A
/// refresh between the change and the first probe that sees it gets the old answer with its
/// full TTL: no server can know sooner.)
#[test]
fn clients_behind_unbound_switch_soon_after_their_cached_ttl() {
    if !have_tool("unbound", "apt-get install unbound") {
        return;
    }
    let pairs = [("a", "127.0.0.171", "127.0.0.172"), ("b", "127.0.0.173", "127.0.0.174")];
    let backends: Vec<(u16, Backend, Backend)> = pairs.iter().map(|(_, p, sec)| backend_pair(p, sec)).collect();
    let pools: String = pairs.iter().zip(&backends).map(|((n, p, sec), (port, _, _))| pool(n, *port, p, sec)).collect();
    let s = Server::start("127.0.0.170", &[(&format!("{ZONE}.toml"), &zone(&pools))]);
    let u = Unbound::start("127.0.0.175", ZONE, &[s.addr]);
    for (n, p, _) in pairs {
        let name = format!("{n}.{ZONE}.");
        wait_for(
            &format!("unbound to answer {name}"),
            Duration::from_secs(10),
            || (u.a(&name), u.log()),
            |(a, _)| a.as_ref().is_some_and(|(a, _)| *a == vec![ip(p)]),
        );
    }
    let seed: u64 = std::env::var("WEICHE_RESOLVER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(18);
    let queries_before = queries_seen(s.api);
    let started = Instant::now();
    let results: Vec<(Vec<Switch>, Vec<Switch>)> = std::thread::scope(|scope| {
        let runs: Vec<_> = pairs
            .iter()
            .zip(backends)
            .enumerate()
            .map(|(i, ((n, p, sec), (_, mut primary, secondary)))| {
                let w = Watch { u: &u, api: s.api, name: format!("{n}.{ZONE}."), primary: p };
                scope.spawn(move || {
                    let _secondary = secondary;
                    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 + 1));
                    let (mut over, mut back) = (vec![], vec![]);
                    for _ in 0..5 {
                        over.push(switch(&w, &mut rng, ip(sec), "down", || primary.down()));
                        back.push(switch(&w, &mut rng, ip(p), "up", || primary.up()));
                    }
                    (over, back)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let queries = queries_seen(s.api) - queries_before;
    let over: Vec<Switch> = results.iter().flat_map(|r| r.0.clone()).collect();
    let back: Vec<Switch> = results.iter().flat_map(|r| r.1.clone()).collect();
    summary("failover", &over);
    summary("failback", &back);
    eprintln!("queries unbound sent to weiche: {queries} in {:.1} s (seed {seed})", started.elapsed().as_secs_f64());
    for s in over.iter().chain(&back) {
        for &(ttl, pending) in &s.refreshed {
            assert!(!pending || ttl <= 1, "a refresh while the verdict was pending got TTL {ttl}: {s:?}");
        }
        assert!(s.late_last <= 1.5, "the client waited {:.2} s past the TTL its cache last held: {s:?}", s.late_last);
    }
}

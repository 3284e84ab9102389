//! Three weiche members on their own loopback addresses, one cluster: real processes' sockets,
//! real backends, partitions as real dropped packets (nftables). Each test has its own
//! addresses (127.0.4N.x) and nftables table, so the tests run side by side.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::nft::Rules;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use weiche::config::cluster::{Cluster, Member, Minority};

const SECRET: &str = "Y2x1c3Rlci10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25nIQ==";
const HEARTBEAT: Duration = Duration::from_millis(200);
/// How long primary members may answer differently after a change: the member that decides
/// first tells the others with its next report, at most a heartbeat later, plus a watcher round.
const CONVERGENCE: Duration = Duration::from_millis(200 + 50 + 100);

/// A UDP port free on every one of `ips`, for the members' peer sockets.
fn cluster_port(ips: &[&str]) -> u16 {
    for _ in 0..50 {
        let first = std::net::UdpSocket::bind(format!("{}:0", ips[0])).unwrap();
        let port = first.local_addr().unwrap().port();
        if ips[1..].iter().all(|ip| std::net::UdpSocket::bind(format!("{ip}:{port}")).is_ok()) {
            return port;
        }
    }
    panic!("no UDP port free on all of {ips:?}");
}

/// `[cluster]` for member `me` of `members` (address, weight, witness).
fn cluster(me: usize, members: &[(&str, u8, bool)], port: u16, minority: Minority) -> Cluster {
    let names = ["a", "b", "c", "d"];
    let members: Vec<Member> = members
        .iter()
        .enumerate()
        .map(|(i, &(ip, weight, witness))| Member {
            name: names[i].into(),
            site: format!("site-{}", names[i]),
            address: format!("{ip}:{port}").parse().unwrap(),
            weight,
            witness,
        })
        .collect();
    Cluster {
        me,
        listen: members[me].address,
        members,
        key: weiche::config::keys::Key::new("cluster", "hmac-sha256", SECRET).unwrap(),
        minority,
        heartbeat: HEARTBEAT,
        at: weiche::model::position::Location { file: std::path::Path::new("test").into(), line: 1, col: 1 },
    }
}

/// Members on `layout` (address, weight, witness), each probing from its own address and
/// serving the same zone.
fn members(layout: &[(&str, u8, bool)], zone: &str, minority: Minority) -> Vec<Server> {
    let ips: Vec<&str> = layout.iter().map(|m| m.0).collect();
    let port = cluster_port(&ips);
    (0..layout.len())
        .map(|me| {
            Server::start_with(layout[me].0, &[("ex.test.toml", zone)], |c| {
                c.cluster = Some(cluster(me, layout, port, minority));
                c.probe_source = Some(layout[me].0.parse().unwrap());
                let state = c.zones_dir.join("state");
                std::fs::create_dir_all(&state).unwrap();
                c.state_dir = Some(state);
            })
        })
        .collect()
}

fn status(s: &Server) -> serde_json::Value {
    json(s.api, "GET", "/status").1
}

fn primary(s: &Server) -> bool {
    status(s)["cluster"]["primary"] == true
}

/// What a member answers for `name`: its addresses, or the rcode when it is not NOERROR.
fn look(s: &Server, name: &str) -> Answer {
    let r = udp(s.addr, &query(name, RecordType::A, None));
    if r.metadata.response_code != ResponseCode::NoError {
        return Err(r.metadata.response_code);
    }
    Ok(answer(s, name))
}

/// The SOA serial a member serves.
fn serial(s: &Server) -> u32 {
    let r = udp(s.addr, &query("ex.test.", RecordType::SOA, None));
    match &r.answers[0].data {
        hickory_proto::rr::RData::SOA(soa) => soa.serial,
        other => panic!("not a SOA: {other:?}"),
    }
}

/// Waits until every member serves the same SOA serial; returns it.
fn same_serial(ms: &[&Server]) -> u32 {
    let serials = wait_for(
        "one serial on every member",
        Duration::from_secs(3),
        || ms.iter().map(|s| serial(s)).collect::<Vec<_>>(),
        |v| v.windows(2).all(|w| w[0] == w[1]),
    );
    serials[0]
}

fn wait_all(ms: &[&Server], name: &str, want: &[&str], limit: Duration) -> Vec<Duration> {
    ms.iter().map(|s| wait_for_answer(s, name, want, limit)).collect()
}

/// What a member answered: its addresses, or the rcode when not NOERROR.
type Answer = Result<Vec<Ipv4Addr>, ResponseCode>;
/// When the watcher asked, and what each member answered.
type Round = (Instant, Vec<Answer>);

/// Queries every member every 50 ms in the background, and counts the moments two members
/// that answer (not withdrawn) give different answers for a single-writer pool.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Round>>>,
}

impl Watcher {
    fn start(addrs: Vec<SocketAddr>, name: &'static str) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            // Bounded: at most 10 minutes of 50 ms rounds.
            for _ in 0..12_000 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let round = addrs
                    .iter()
                    .map(|a| {
                        let r = udp(*a, &query(name, RecordType::A, None));
                        if r.metadata.response_code != ResponseCode::NoError {
                            return Err(r.metadata.response_code);
                        }
                        let mut v: Vec<Ipv4Addr> = r
                            .answers
                            .iter()
                            .filter_map(|a| if let hickory_proto::rr::RData::A(a) = &a.data { Some(a.0) } else { None })
                            .collect();
                        v.sort();
                        Ok(v)
                    })
                    .collect();
                seen.push((Instant::now(), round));
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        });
        Watcher { stop, thread: Some(thread) }
    }

    /// Stops; returns (rounds, rounds in which two answering members disagreed, the longest run
    /// of such rounds).
    fn finish(mut self) -> (usize, usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.take().unwrap().join().unwrap();
        let (mut bad, mut longest, mut run_start): (usize, Duration, Option<Instant>) = (0, Duration::ZERO, None);
        for (at, round) in &seen {
            let answers: Vec<&Vec<Ipv4Addr>> = round.iter().filter_map(|r| r.as_ref().ok()).collect();
            let disagree = answers.windows(2).any(|w| w[0] != w[1]);
            if disagree {
                bad += 1;
                let start = *run_start.get_or_insert(*at);
                longest = longest.max(*at - start + Duration::from_millis(50));
            } else {
                run_start = None;
            }
        }
        (seen.len(), bad, longest)
    }
}

/// The shape of every test: a pool `www` with a primary and a secondary backend (TCP check,
/// 250 ms interval, fall 2) and one answer at a time.
fn pool_zone(port: u16, p: &str, sec: &str) -> String {
    zone(&format!(
        "[pools.www]\nmax_answers = 1\ncheck = {{ type = \"tcp\", port = {port}, interval = \"250ms\", timeout = \"200ms\", fall = 2, rise = 2 }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    ))
}

/// Three members a (5), b (6), c (8) on 127.0.`net`.1-3, serving `pool_zone` (as `edit` changes
/// it) with a primary backend at 127.0.`net`.11 and a secondary at .12.
struct Trio {
    port: u16,
    primary: Backend,
    secondary: Backend,
    ms: Vec<Server>,
}

/// [`Trio`], once every member answers the primary.
fn trio(net: u8, minority: Minority, edit: impl Fn(String) -> String) -> Trio {
    let ip = |host: u8| format!("127.0.{net}.{host}");
    let (p, sec) = (ip(11), ip(12));
    let (port, primary, secondary) = backend_pair(&p, &sec);
    let zone = edit(pool_zone(port, &p, &sec));
    let (a, b, c) = (ip(1), ip(2), ip(3));
    let ms = members(&[(&a, 5, false), (&b, 6, false), (&c, 8, false)], &zone, minority);
    wait_all(&ms.iter().collect::<Vec<_>>(), "www.ex.test.", &[&p], Duration::from_secs(10));
    Trio { port, primary, secondary, ms }
}

/// A backend dies: every member fails over, at about the same moment, with the event naming
/// the members that saw it down.
#[test]
fn a_dead_backend_fails_over_on_every_member() {
    let Trio { port: _, primary: mut primary_backend, secondary: _sec, ms } = trio(42, Minority::Withdraw, |z| z);
    let all: Vec<&Server> = ms.iter().collect();
    for s in &ms {
        let st = wait_for(
            "every member heard",
            Duration::from_secs(2),
            || status(s),
            |st| st["cluster"]["heard_weight"] == 19,
        );
        assert_eq!(st["cluster"]["primary"], true, "{st}");
        assert_eq!(st["cluster"]["serving"], "normal");
    }
    let before = same_serial(&all);
    let since = last_event_seq(ms[1].api);
    let watcher = Watcher::start(ms.iter().map(|s| s.addr).collect(), "www.ex.test.");
    primary_backend.down();
    let took = wait_all(&all, "www.ex.test.", &["127.0.42.12"], Duration::from_secs(10));
    let (rounds, bad, longest) = watcher.finish();
    eprintln!("cluster failover (a, b, c): {took:?}; watcher: {bad} of {rounds} rounds disagreed, longest {longest:?}");
    let spread = took.iter().max().unwrap().saturating_sub(*took.iter().min().unwrap());
    assert!(spread < Duration::from_millis(700), "members switched {spread:?} apart: {took:?}");
    assert!(longest <= CONVERGENCE, "members disagreed for {longest:?}");
    // The same content has the same serial everywhere, a later one than before.
    let after = same_serial(&all);
    assert!(after > before, "serial {before} before the failover, {after} after");
    let e = wait_for_event(ms[1].api, since, "target down", |e| e["kind"] == "target_down");
    let reason = e["reason"].as_str().unwrap();
    assert!(reason.starts_with("members ") && reason.contains("of 19) report it down"), "{e}");
    // Each member's own view is in its vote.
    let t = target_status(ms[2].api, "www.ex.test.", "127.0.42.11");
    assert_eq!(t["checks"][0]["votes"]["c"], "down", "{t}");
}

/// A backend unreachable from member a only (its probes' packets dropped): a's own verdict is
/// down, the cluster's stays up, and no member fails over.
#[test]
fn a_backend_unreachable_from_one_member_is_no_failover() {
    let Trio { port, primary: _p, secondary: _sec, ms } = trio(43, Minority::Withdraw, |z| z);
    let Some(_cut) = Rules::add(
        "weiche_cluster_probe",
        &["ip saddr 127.0.43.1 ip daddr 127.0.43.11 tcp dport ".to_string() + &port.to_string() + " drop"],
    ) else {
        return;
    };
    // a's own probes fail (timeouts), and it says so in its vote; the others outweigh it.
    let t = wait_for_target(ms[0].api, "www.ex.test.", "127.0.43.11", "a votes down", |t| {
        t["checks"][0]["votes"]["a"] == "down"
    });
    assert_eq!(t["verdict"], "up", "{t}");
    wait_for(
        "b to see a's dissent",
        Duration::from_secs(5),
        || status(&ms[1])["cluster"]["dissent"].clone(),
        |d| *d == 1,
    );
    for s in &ms {
        assert_eq!(look(s, "www.ex.test."), Ok(vec![ip("127.0.43.11")]));
    }
}

/// a (5) is cut off from b (6) and c (8): it withdraws its pool answers within three
/// heartbeats, b and c fail over a backend killed meanwhile, a drain made on b meanwhile
/// reaches a once the link heals, and a then serves the majority's answer.
#[test]
fn a_partitioned_member_withdraws_and_heals_to_the_majority() {
    let Trio { port: _, primary: mut p, secondary: _sec, ms } = trio(44, Minority::Withdraw, |z| z);
    let all: Vec<&Server> = ms.iter().collect();
    let watcher = Watcher::start(ms.iter().map(|s| s.addr).collect(), "www.ex.test.");
    let Some(cut) = Rules::cut("weiche_cluster_split", "127.0.44.1", &["127.0.44.2", "127.0.44.3"]) else {
        return;
    };
    let cut_at = Instant::now();
    let _ = wait_for(
        "a to withdraw",
        Duration::from_secs(5),
        || look(&ms[0], "www.ex.test."),
        |r| *r == Err(ResponseCode::ServFail),
    );
    let withdrawn = cut_at.elapsed();
    eprintln!("a withdrew {withdrawn:?} after the cut (heartbeat {HEARTBEAT:?})");
    // Three heartbeats, and a query round of the wait.
    assert!(withdrawn < HEARTBEAT * 3 + Duration::from_millis(100), "{withdrawn:?}");
    let st = status(&ms[0]);
    assert_eq!(
        (st["cluster"]["primary"].clone(), st["cluster"]["serving"].clone()),
        (false.into(), "withdrawn".into())
    );
    // Static records are still answered.
    let soa = udp(ms[0].addr, &query("ex.test.", RecordType::SOA, None));
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert!(primary(&ms[1]) && primary(&ms[2]));
    // The backend dies during the partition: b and c fail over, a stays withdrawn.
    p.down();
    wait_all(&[&ms[1], &ms[2]], "www.ex.test.", &["127.0.44.12"], Duration::from_secs(10));
    assert_eq!(look(&ms[0], "www.ex.test."), Err(ResponseCode::ServFail));
    // A drain on b during the partition.
    let (code, body) = json(ms[1].api, "POST", "/targets/127.0.44.11/drain");
    assert_eq!(code, 200, "{body}");
    wait_for(
        "the drain on c",
        Duration::from_secs(1),
        || status(&ms[2])["drained"].clone(),
        |d| d.as_array().is_some_and(|a| a.len() == 1),
    );
    assert_eq!(status(&ms[0])["drained"], serde_json::json!([]), "a hears nothing while cut off");
    // The same drain asked of a, cut off: recorded there and passed on later, but not in force
    // where it matters yet, and the answer says so (before: 200, "drained").
    let (code, body) = json(ms[0].api, "POST", "/targets/127.0.44.11/drain");
    assert_eq!(code, 503, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("on member a only: it is out of the majority")),
        "{body}"
    );
    // Heal: a serves the majority's answer within a second, and has the drain.
    drop(cut);
    let healed = Instant::now();
    wait_for_answer(&ms[0], "www.ex.test.", &["127.0.44.12"], Duration::from_secs(5));
    let back = healed.elapsed();
    eprintln!("a served the majority's answer {back:?} after the heal");
    assert!(back < Duration::from_secs(1), "{back:?}");
    wait_for(
        "the drain on a",
        Duration::from_secs(1),
        || status(&ms[0])["drained"].clone(),
        |d| d.as_array().is_some_and(|a| a.len() == 1),
    );
    same_serial(&all);
    let (rounds, bad, longest) = watcher.finish();
    eprintln!("watcher: {bad} of {rounds} rounds had two answering members disagree, longest {longest:?}");
    assert!(longest <= CONVERGENCE, "members disagreed for {longest:?}");
    let events = json(ms[0].api, "GET", "/events?since=0").1;
    let kinds: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"quorum_lost") && kinds.contains(&"quorum_regained"), "{kinds:?}");
}

/// A drain on any member reaches the others within a second, and so does the undrain.
#[test]
fn a_drain_on_one_member_reaches_every_member() {
    let Trio { port: _, primary: _p, secondary: _sec, ms } = trio(45, Minority::Withdraw, |z| z);
    let all: Vec<&Server> = ms.iter().collect();
    let (code, body) = json(ms[1].api, "POST", "/targets/127.0.45.11/drain");
    assert_eq!(code, 200, "{body}");
    let took = wait_all(&all, "www.ex.test.", &["127.0.45.12"], Duration::from_secs(1));
    eprintln!("drain on b reached (a, b, c) in {took:?}");
    let e = wait_for_event(ms[0].api, 0, "drain", |e| e["kind"] == "drain");
    assert_eq!(e["reason"], "operator, on member b", "{e}");
    // a keeps the write, with b's stamp, for its next start.
    let file = ms[0].dir.path().join("state").join(weiche::publish::admin::STATE_FILE);
    let kept = wait_for(
        "the write in a's state file",
        Duration::from_secs(2),
        || std::fs::read_to_string(&file).unwrap_or_default(),
        |t| t.contains("cluster_ops"),
    );
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    let op = &kept["cluster_ops"][0];
    assert_eq!((op["member"].as_str(), op["value"].as_str()), (Some("b"), Some("on")), "{kept}");
    assert_eq!(op["key"]["drain"]["address"], "127.0.45.11", "{kept}");
    let (code, body) = json(ms[2].api, "POST", "/targets/127.0.45.11/undrain");
    assert_eq!(code, 200, "{body}");
    wait_all(&all, "www.ex.test.", &["127.0.45.11"], Duration::from_secs(1));
}

/// Two sites, weights 2 and 1, no witness: cut apart, the weight-1 member is alone and not
/// primary, the weight-2 one goes on. With a witness (weight 2) at a third site, the weight-1
/// member that keeps the witness stays primary, and the weight-2 one alone stands down.
#[test]
fn two_sites_need_a_witness() {
    let (port, _p, _sec) = backend_pair("127.0.46.11", "127.0.46.12");
    let zone = pool_zone(port, "127.0.46.11", "127.0.46.12");
    let ms = members(&[("127.0.46.1", 2, false), ("127.0.46.2", 1, false)], &zone, Minority::Withdraw);
    wait_all(&ms.iter().collect::<Vec<_>>(), "www.ex.test.", &["127.0.46.11"], Duration::from_secs(10));
    let Some(cut) = Rules::cut("weiche_cluster_two", "127.0.46.1", &["127.0.46.2"]) else {
        return;
    };
    let _ = wait_for(
        "b to withdraw",
        Duration::from_secs(5),
        || look(&ms[1], "www.ex.test."),
        |r| *r == Err(ResponseCode::ServFail),
    );
    assert!(primary(&ms[0]) && !primary(&ms[1]));
    drop(cut);
    drop(ms);
    // The same 2-1 plus a witness (2) at a third site: b keeps the witness, 3 of 5, and stays
    // primary when cut from a.
    let layout = [("127.0.46.1", 2, false), ("127.0.46.2", 1, false), ("127.0.46.3", 2, true)];
    let ms = members(&layout, &zone, Minority::Withdraw);
    wait_all(&[&ms[0], &ms[1]], "www.ex.test.", &["127.0.46.11"], Duration::from_secs(10));
    assert_eq!(
        udp_raw(ms[2].addr, &query("www.ex.test.", RecordType::A, None).to_vec().unwrap(), Duration::from_millis(300)),
        None,
        "a witness serves no DNS"
    );
    let Some(_cut) = Rules::cut("weiche_cluster_two", "127.0.46.1", &["127.0.46.2", "127.0.46.3"]) else {
        return;
    };
    let _ = wait_for(
        "a to withdraw",
        Duration::from_secs(5),
        || look(&ms[0], "www.ex.test."),
        |r| *r == Err(ResponseCode::ServFail),
    );
    assert!(primary(&ms[1]), "b hears the witness: 3 of 5");
    assert_eq!(look(&ms[1], "www.ex.test."), Ok(vec![ip("127.0.46.11")]));
}

/// A client behind a real resolver (unbound, a stub zone listing all three members) while a
/// is cut off and the backend dies: a withdraws, unbound asks b or c, and once b and c fail
/// over, the client gets the new answer as soon as its cache runs out, never a's.
#[test]
fn a_client_behind_a_resolver_never_gets_the_minoritys_answer() {
    if !have_tool("unbound", "apt-get install unbound") {
        return;
    }
    let Trio { port: _, primary: mut p, secondary: _sec, ms } =
        trio(48, Minority::Withdraw, |z| z.replace("max_answers = 1\n", "max_answers = 1\nttl = 1\nttl_min = 1\n"));
    let u = common::unbound::Unbound::start("127.0.48.20", "ex.test", &ms.iter().map(|s| s.addr).collect::<Vec<_>>());
    wait_for(
        "unbound to answer",
        Duration::from_secs(10),
        || u.a("www.ex.test.").map(|a| a.0),
        |a| *a == Some(vec![ip("127.0.48.11")]),
    );
    let Some(_cut) = Rules::cut("weiche_cluster_resolver", "127.0.48.1", &["127.0.48.2", "127.0.48.3"]) else {
        return;
    };
    let _ = wait_for(
        "a to withdraw",
        Duration::from_secs(5),
        || look(&ms[0], "www.ex.test."),
        |r| *r == Err(ResponseCode::ServFail),
    );
    p.down();
    wait_all(&[&ms[1], &ms[2]], "www.ex.test.", &["127.0.48.12"], Duration::from_secs(10));
    let switched = Instant::now();
    // The client polls for 4 s (80 rounds at most): after the 1 s TTL its cache may hold (plus
    // a second: unbound's clock counts whole seconds), only the majority's answer.
    let (mut old, mut new, mut failed) = (0, 0, 0);
    for _ in 0..80 {
        let at = switched.elapsed();
        match u.a("www.ex.test.") {
            Some((a, _)) if a == [ip("127.0.48.12")] => new += 1,
            Some((a, _)) if a == [ip("127.0.48.11")] && at <= Duration::from_millis(2000) => old += 1,
            other => {
                failed += 1;
                eprintln!("at {at:?}: {other:?}");
            }
        }
        if at > Duration::from_secs(4) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("through unbound after the failover: {new} new answers, {old} old ones within the TTL, {failed} other");
    assert_eq!(failed, 0, "no stale answer past the TTL, no SERVFAIL: unbound asks b or c\n{}", u.log());
    assert!(new > 0);
}

/// "The data centre loses power": site A (member a and the primary backend) goes dark at once,
/// so a's goodbye never arrives. b and c fail over. Power returns: the backend is back and a
/// can reach it, but b and c still cannot. a restarts with an empty state directory, its own
/// probes calling the primary up; from its first pool answer on it serves the majority's
/// answer, never its own cold view.
#[test]
fn a_member_restarted_after_a_power_loss_serves_the_majoritys_answer() {
    let (port, mut p, _sec) = backend_pair("127.0.49.11", "127.0.49.12");
    let zone = pool_zone(port, "127.0.49.11", "127.0.49.12");
    let layout = [("127.0.49.1", 5, false), ("127.0.49.2", 6, false), ("127.0.49.3", 8, false)];
    let cport = cluster_port(&["127.0.49.1", "127.0.49.2", "127.0.49.3"]);
    let start = |me: usize, addr: &str| {
        Server::start_at(addr, &[("ex.test.toml", &zone)], |c| {
            c.cluster = Some(cluster(me, &layout, cport, Minority::Withdraw));
            c.probe_source = Some(layout[me].0.parse().unwrap());
        })
    };
    let a_addr = format!("127.0.49.1:{}", external_port("127.0.49.1"));
    let a = start(0, &a_addr);
    let (b, c) = (start(1, "127.0.49.2:0"), start(2, "127.0.49.3:0"));
    wait_all(&[&a, &b, &c], "www.ex.test.", &["127.0.49.11"], Duration::from_secs(10));
    // Site A goes dark: every packet to or from a and the primary backend is lost, and the
    // backend dies; a stops (its leave message is lost with the rest).
    let Some(dark) = Rules::cut("weiche_cluster_power", "127.0.49.1", &["127.0.49.2", "127.0.49.3", "127.0.49.11"])
    else {
        return;
    };
    let Some(dark_backend) = Rules::cut("weiche_cluster_power_b", "127.0.49.11", &["127.0.49.2", "127.0.49.3"]) else {
        return;
    };
    p.down();
    drop(a);
    wait_all(&[&b, &c], "www.ex.test.", &["127.0.49.12"], Duration::from_secs(10));
    let st = status(&b);
    assert_eq!(st["cluster"]["primary"], true, "14 of 19 without a: {st}");
    assert_eq!(st["cluster"]["members"][0]["away"], false, "a vanished, it did not leave: {st}");
    // Power returns at site A: the backend serves again and a reaches it; b and c still do not.
    p.up();
    drop(dark);
    // Watch a's address from before it starts, every 20 ms (at most 10 s).
    let watch_addr: SocketAddr = a_addr.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let watched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = watched.clone();
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..500 {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            let q = query("www.ex.test.", RecordType::A, None).to_vec().unwrap();
            if let Some(raw) = udp_raw(watch_addr, &q, Duration::from_millis(20)) {
                let m = hickory_proto::op::Message::from_vec(&raw).unwrap();
                let a: Vec<Ipv4Addr> = m
                    .answers
                    .iter()
                    .filter_map(|r| if let hickory_proto::rr::RData::A(a) = &r.data { Some(a.0) } else { None })
                    .collect();
                if m.metadata.response_code == ResponseCode::NoError {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                seen.push((m.metadata.response_code, a));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    let a = start(0, &a_addr);
    // a's own probes see the primary up ...
    wait_for_target(a.api, "www.ex.test.", "127.0.49.11", "a's own vote up", |t| t["checks"][0]["votes"]["a"] == "up");
    // ... and it serves the majority's answer.
    wait_for_answer(&a, "www.ex.test.", &["127.0.49.12"], Duration::from_secs(5));
    // The watcher sees a's first answer too (it asks every 20 ms).
    let first = Instant::now();
    while watched.load(Ordering::Relaxed) == 0 && first.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    drop(dark_backend);
    let answers: Vec<&Vec<Ipv4Addr>> =
        seen.iter().filter(|(rc, _)| *rc == ResponseCode::NoError).map(|(_, a)| a).collect();
    let withdrawn = seen.iter().filter(|(rc, _)| *rc == ResponseCode::ServFail).count();
    eprintln!("a after its restart: {withdrawn} SERVFAIL while joining, then {} answers", answers.len());
    assert!(!answers.is_empty(), "{seen:?}");
    assert!(answers.iter().all(|a| **a == [ip("127.0.49.12")]), "a served its own cold view: {seen:?}");
}

/// Failover time, a cluster of three beside a single weiche on the same backends, in the same
/// run: the primary is killed at a random moment of the probe interval, `WEICHE_FAILOVER_REPS`
/// times (default 3), and restored in between. Every member answers the secondary within the
/// single weiche's median plus 0.5 s (the medians go to BENCHMARKS.md:
/// `WEICHE_FAILOVER_REPS=15 cargo test --release --test cluster failover_time -- --nocapture`).
#[test]
fn failover_time_beside_a_single_weiche() {
    let reps: usize = std::env::var("WEICHE_FAILOVER_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).clamp(1, 50);
    let (port, mut p, _sec) = backend_pair("127.0.50.11", "127.0.50.12");
    let zone = pool_zone(port, "127.0.50.11", "127.0.50.12");
    let ms = members(
        &[("127.0.50.1", 5, false), ("127.0.50.2", 6, false), ("127.0.50.3", 8, false)],
        &zone,
        Minority::Withdraw,
    );
    let single = Server::start("127.0.50.4", &[("ex.test.toml", &zone)]);
    let everyone: Vec<&Server> = ms.iter().chain([&single]).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let (mut single_times, mut cluster_times) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        wait_all(&everyone, "www.ex.test.", &["127.0.50.11"], Duration::from_secs(10));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 250));
        p.down();
        let killed = Instant::now();
        let mut pending: Vec<usize> = (0..4).collect();
        let mut took = [Duration::ZERO; 4];
        // Every 10 ms, at most 10 s.
        while !pending.is_empty() && killed.elapsed() < Duration::from_secs(10) {
            pending.retain(|&i| {
                let moved = answer(everyone[i], "www.ex.test.") == [ip("127.0.50.12")];
                if moved {
                    took[i] = killed.elapsed();
                }
                !moved
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(pending.is_empty(), "no failover on {pending:?} within 10 s");
        single_times.push(took[3]);
        cluster_times.push(*took[..3].iter().max().unwrap());
        p.up();
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (single_median, cluster_median) = (median(&mut single_times), median(&mut cluster_times));
    eprintln!(
        "failover over {reps} kills: single weiche median {single_median:?}; cluster of three (slowest member) median \
         {cluster_median:?}, max {:?}",
        cluster_times.last().unwrap()
    );
    assert!(
        cluster_median <= single_median + Duration::from_millis(500),
        "cluster {cluster_median:?} against single {single_median:?}"
    );
}

/// What the cluster costs on the wire: three members with 1,000 targets probed every second
/// (heartbeat 500 ms) report for 5 s; the bytes a member sends, per second, from
/// `weiche_cluster_bytes_total{direction="out"}`. Printed for BENCHMARKS.md, and bounded so a
/// change that bloats the reports fails.
#[test]
fn cluster_traffic_at_a_thousand_targets() {
    let mut pools = String::new();
    for i in 0..500 {
        let (x, y) = (i % 250 + 1, i / 250);
        pools.push_str(&format!(
            "[pools.p{i}]\ncheck = {{ type = \"tcp\", port = 9, interval = \"1s\", timeout = \"500ms\" }}\n\
             targets = [{{ address = \"127.0.5{}.{x}\", priority = 1 }}, {{ address = \"127.0.5{}.{x}\", priority = 2 }}]\n",
            2 + 2 * y,
            3 + 2 * y
        ));
    }
    let zone = zone(&pools);
    let layout = [("127.0.51.1", 5, false), ("127.0.51.2", 6, false), ("127.0.51.3", 8, false)];
    let port = cluster_port(&["127.0.51.1", "127.0.51.2", "127.0.51.3"]);
    let ms: Vec<Server> = (0..3)
        .map(|me| {
            Server::start_with(layout[me].0, &[("ex.test.toml", &zone)], |c| {
                c.cluster = Some(Cluster {
                    heartbeat: Duration::from_millis(500),
                    ..cluster(me, &layout, port, Minority::Withdraw)
                });
            })
        })
        .collect();
    let sent = |s: &Server| {
        let (_, text) = http(s.api, "GET", "/metrics", None);
        text.lines()
            .find(|l| l.starts_with("weiche_cluster_bytes_total{direction=\"out\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    for s in &ms {
        wait_for("a primary member", Duration::from_secs(10), || primary(s), |p| *p);
    }
    let targets = status(&ms[0])["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targets"].as_array().unwrap().len())
        .sum::<usize>();
    assert_eq!(targets, 1000);
    // The three members run in this one process, so the counter holds what all three sent.
    let before = sent(&ms[0]);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let per_member = (sent(&ms[0]) - before) / t.elapsed().as_secs_f64() / 3.0;
    eprintln!(
        "cluster traffic at 1,000 targets, heartbeat 500 ms, 3 members: {per_member:.0} bytes sent per member per second"
    );
    // Two peers, two reports a second each, about 30 bytes a vote with the parts' headers:
    // some 120 kB/s.
    assert!(per_member > 50_000.0 && per_member < 200_000.0, "{per_member:.0} bytes/s");
}

/// A manual-failback pool holds on the secondary on every member once the primary is back;
/// `failback` on one member releases the hold on all of them.
#[test]
fn a_failback_on_one_member_releases_the_hold_everywhere() {
    let Trio { port: _, primary: mut p, secondary: _sec, ms } =
        trio(55, Minority::Withdraw, |z| z.replace("max_answers = 1\n", "max_answers = 1\nfailback = \"manual\"\n"));
    let all: Vec<&Server> = ms.iter().collect();
    p.down();
    wait_all(&all, "www.ex.test.", &["127.0.55.12"], Duration::from_secs(10));
    p.up();
    // Back up for the cluster, yet held on every member.
    for s in &ms {
        let t = wait_for_target(s.api, "www.ex.test.", "127.0.55.11", "up again", |t| t["verdict"] == "up");
        assert_eq!(t["verdict"], "up");
        wait_for("the hold", Duration::from_secs(2), || status(s)["pools"][0]["held"].clone(), |h| !h.is_null());
        assert_eq!(look(s, "www.ex.test."), Ok(vec![ip("127.0.55.12")]));
    }
    let (code, body) = json(ms[2].api, "POST", "/pools/www.ex.test./failback");
    assert_eq!(code, 200, "{body}");
    let took = wait_all(&all, "www.ex.test.", &["127.0.55.11"], Duration::from_secs(1));
    eprintln!("failback on c released (a, b, c) in {took:?}");
    let e = wait_for_event(ms[0].api, 0, "failback released", |e| e["kind"] == "failback_released");
    assert_eq!(e["reason"], "operator, on member c", "{e}");
}

/// Datagrams that are not a member's signed report change nothing: from an address no member
/// has, and from a member's address signed with another key. Each is counted by reason.
#[test]
fn forged_peer_messages_change_nothing() {
    use weiche::cluster::wire;
    let Trio { port: _, primary: _p, secondary: _sec, ms } = trio(56, Minority::Withdraw, |z| z);
    let rejected = |reason: &str| {
        let (_, text) = http(ms[0].api, "GET", "/metrics", None);
        let line = format!("weiche_cluster_rejected_total{{reason=\"{reason}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    let (strangers, bad_signatures) = (rejected("stranger"), rejected("signature"));
    let target: SocketAddr = status(&ms[0])["cluster"]["members"][0]["address"].as_str().unwrap().parse().unwrap();
    // A report as b would send it, from b's address, but signed with another key.
    let forged = |from: &str| {
        let head = wire::Header { from: from.into(), boot: u64::MAX / 2, leaving: false, primary: true };
        let mut seq = 0;
        let now = weiche::cluster::net::wall_ms(std::time::SystemTime::now());
        let votes = vec![];
        wire::split(&head, "a", &mut seq, now, votes, vec![], vec![]).remove(0)
    };
    let other = weiche::config::keys::Key::new("cluster", "hmac-sha256", "b3RoZXIta2V5LW90aGVyLWtleQ==").unwrap();
    let from_b = std::net::UdpSocket::bind("127.0.56.2:0").unwrap();
    from_b.send_to(&wire::seal(&wire::hmac_key(&other), &forged("b")), target).unwrap();
    let stranger = std::net::UdpSocket::bind("127.0.56.9:0").unwrap();
    stranger.send_to(b"not a cluster message at all", target).unwrap();
    wait_for(
        "both counted",
        Duration::from_secs(2),
        || (rejected("stranger"), rejected("signature")),
        |&(s, b)| s > strangers && b > bad_signatures,
    );
    let st = status(&ms[0]);
    assert_eq!(
        (st["cluster"]["primary"].clone(), st["cluster"]["heard_weight"].clone()),
        (true.into(), 19.into()),
        "{st}"
    );
    assert_eq!(look(&ms[0], "www.ex.test."), Ok(vec![ip("127.0.56.11")]));
}

/// The other minorities: cut off, a `freeze` member keeps the last agreed answer at the pool's
/// short TTL even when its own probes see the backend die; a `local` one decides alone and
/// fails over.
#[test]
fn freeze_keeps_the_agreed_answer_and_local_decides_alone() {
    for (minority, net, want) in [(Minority::Freeze, 57, "11"), (Minority::Local, 58, "12")] {
        let ip_of = |host: u8| format!("127.0.{net}.{host}");
        let (p_ip, sec_ip) = (ip_of(11), ip_of(12));
        let Trio { port: _, primary: mut p, secondary: _sec, ms } =
            trio(net, minority, |z| z.replace("max_answers = 1\n", "max_answers = 1\nttl = 60\nttl_min = 3\n"));
        let (a, b, c) = (ip_of(1), ip_of(2), ip_of(3));
        assert_eq!(ttl(&ms[0], "www.ex.test."), 60);
        let Some(_cut) = Rules::cut(&format!("weiche_cluster_minority_{net}"), &a, &[&b, &c]) else {
            return;
        };
        let serving = if minority == Minority::Freeze { "frozen" } else { "normal" };
        wait_for(
            "a out of the majority",
            Duration::from_secs(5),
            || status(&ms[0])["cluster"].clone(),
            |c| c["primary"] == false && c["serving"] == serving,
        );
        p.down();
        // b and c fail over; a's own probes see the primary die too.
        wait_all(&[&ms[1], &ms[2]], "www.ex.test.", &[&sec_ip], Duration::from_secs(10));
        wait_for_target(ms[0].api, "www.ex.test.", &p_ip, "a's own vote down", |t| {
            t["checks"][0]["votes"]["a"] == "down"
        });
        let want = ip_of(want.parse().unwrap());
        wait_for_answer(&ms[0], "www.ex.test.", &[&want], Duration::from_secs(5));
        if minority == Minority::Freeze {
            assert_eq!(ttl(&ms[0], "www.ex.test."), 3, "frozen answers at ttl_min");
        }
    }
}

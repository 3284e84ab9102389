//! The `galera` check against a real three-node MariaDB Galera cluster (Debian's mariadb-server
//! and galera-4, started by the test on 127.0.34.1-3), with the `db` and `db-ro` pools of
//! `deploy/zones/shop.example.toml` pointed at it. A node leaves the answers when it is desynced,
//! cut off into a non-Primary component (packets dropped by nftables), or stopped, and comes back
//! when it is Synced again. The check's logins end with COM_QUIT: 1,000 of them leave
//! `Aborted_connects` where it was, while 1,000 TCP-only probes of the same port do not.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::galera::Galera;
use common::*;
use weiche::model::pool::{Check, CheckKind, Probe, Secret, SqlLogin};
use weiche::monitor::probe::Prober;

const NODES: [&str; 3] = ["127.0.34.1", "127.0.34.2", "127.0.34.3"];
const PASSWORD: &str = "weiche-test-pw";

/// The deploy example's Galera pools, with its node addresses replaced by the test cluster's
/// and its credentials file by `credentials`. The web pools are left out: they would probe
/// addresses outside this machine.
fn deploy_zone(credentials: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/zones/shop.example.toml");
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in ["192.0.2.20", "198.51.100.20", "203.0.113.20"].into_iter().zip(NODES) {
        text = text.replace(&format!("\"{from}\""), &format!("\"{to}\""));
    }
    let mut spec: toml::Table = text.parse().unwrap();
    let checks = spec["checks"].as_table_mut().unwrap();
    checks.retain(|name, _| name == "galera");
    let galera = checks["galera"].as_table_mut().unwrap();
    assert_eq!(galera["type"].as_str(), Some("galera"), "the deploy example's db pools use a galera check");
    galera.insert("credentials_file".into(), credentials.into());
    spec["pools"].as_table_mut().unwrap().retain(|name, _| name == "db" || name == "db-ro");
    toml::to_string(&spec).unwrap()
}

fn probe_check(kind: CheckKind, probe: Probe) -> Arc<Check> {
    Arc::new(Check {
        name: kind.name().into(),
        kind,
        port: 3306,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(200),
        fall: 2,
        rise: 2,
        probe,
    })
}

/// Aborted_connects, and the connect and handshake errors of the host cache (all hosts), of node 0.
fn connect_errors(g: &Galera) -> (u64, u64, u64) {
    let aborted = g.status(0, "Aborted_connects").parse().unwrap();
    let row = g
        .sql(0, "SELECT COALESCE(SUM(SUM_CONNECT_ERRORS), 0), COALESCE(SUM(COUNT_HANDSHAKE_ERRORS), 0) FROM performance_schema.host_cache")
        .unwrap();
    let mut it = row.split('\t').map(|v| v.parse::<u64>().unwrap());
    (aborted, it.next().unwrap(), it.next().unwrap())
}

/// Runs `n` probes of `check` on node 0, one after another; returns how many passed.
fn run_probes(check: Arc<Check>, n: usize) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let addr: SocketAddr = format!("{}:3306", NODES[0]).parse().unwrap();
        let prober = Prober::new(addr, check, None).unwrap();
        let mut passed = 0;
        for _ in 0..n {
            passed += usize::from(prober.probe().await.is_ok());
        }
        passed
    })
}

fn wait_answer(s: &Server, name: &str, want: &[&str], limit: Duration) -> Duration {
    wait_for_answer(s, name, want, limit)
}

#[test]
fn galera_checks_follow_the_cluster() {
    if !common::galera::available() {
        return;
    }
    let mut g = Galera::start(NODES);
    g.sql(0, &format!("CREATE USER 'weiche'@'%' IDENTIFIED BY '{PASSWORD}'")).unwrap();
    let creds = tempfile::tempdir().unwrap();
    let cnf = creds.path().join("galera.cnf");
    std::fs::write(&cnf, format!("# the monitoring user\n[client]\nuser = weiche\npassword = \"{PASSWORD}\"\n"))
        .unwrap();
    let zone = deploy_zone(&cnf.display().to_string());
    let s = Server::start("127.0.34.53", &[("shop.example.toml", &zone)]);
    let (db, ro) = ("db.shop.example.", "db-ro.shop.example.");
    let [n1, n2, n3] = NODES;

    // All Synced: the writer is the first node, reads go to the first two (max_answers = 2).
    wait_answer(&s, db, &[n1], Duration::from_secs(10));
    wait_answer(&s, ro, &[n1, n2], Duration::from_secs(10));
    for n in NODES {
        wait_for_target(s.api, "db-ro.shop.example.", n, "up", |t| t["verdict"] == "up");
    }

    // 1,000 logins that end with COM_QUIT leave the server's connect counters alone; 1,000
    // connect-and-close probes do not.
    let login =
        SqlLogin { user: "weiche".into(), password: Secret(PASSWORD.into()), credentials_file: cnf.clone(), tls: None };
    let galera = probe_check(CheckKind::Galera, Probe::Galera { login, donor_ok: false, read_only_ok: true });
    let tcp = probe_check(CheckKind::Tcp, Probe::Tcp { send: None, expect: None });
    let before = connect_errors(&g);
    let started = Instant::now();
    assert_eq!(run_probes(galera, 1000), 1000, "every galera probe of a Synced node passes");
    let galera_took = started.elapsed();
    let after_galera = connect_errors(&g);
    assert_eq!(run_probes(tcp, 1000), 1000);
    let after_tcp = connect_errors(&g);
    eprintln!(
        "1000 galera probes: Aborted_connects {} -> {}, host connect errors {} -> {}, handshake errors {} -> {} ({:.2} ms per probe)\n\
         1000 tcp probes:    Aborted_connects {} -> {}, host connect errors {} -> {}, handshake errors {} -> {}",
        before.0,
        after_galera.0,
        before.1,
        after_galera.1,
        before.2,
        after_galera.2,
        galera_took.as_secs_f64() * 1000.0 / 1000.0,
        after_galera.0,
        after_tcp.0,
        after_galera.1,
        after_tcp.1,
        after_galera.2,
        after_tcp.2
    );
    assert_eq!(after_galera, before, "galera probes must not count as aborted or failed connects");
    assert!(after_tcp.0 >= after_galera.0 + 1000, "each TCP-only probe is an aborted connect: {after_tcp:?}");

    // A desynced node leaves the answers within fall × interval + timeout (the deploy check:
    // 2 × 1s + 500ms), in Galera's words, and comes back once Synced.
    let desynced = Instant::now();
    g.sql(1, "SET GLOBAL wsrep_desync = ON").unwrap();
    wait_answer(&s, ro, &[n1, n3], Duration::from_secs(10));
    let left = desynced.elapsed();
    let t = down_with(s.api, 30, "db-ro.shop.example.", n2, "Donor/Desynced");
    eprintln!("desynced n2 left db-ro after {:.2} s: {}", left.as_secs_f64(), t["last_probe"]["error"]);
    assert!(left < Duration::from_millis(3000), "desync to answer took {left:?}, more than 2 × 1s + 500ms and a poll");
    assert_eq!(answer(&s, db), [ip(n1)], "the writer stays");
    g.sql(1, "SET GLOBAL wsrep_desync = OFF").unwrap();
    wait_answer(&s, ro, &[n1, n2], Duration::from_secs(10));

    // The writer's node is cut off from the other two: it goes non-Primary and leaves both
    // pools; the writer moves to the next node, and stays there when it is back (manual
    // failback) until an operator releases it.
    let seq = last_event_seq(s.api);
    if let Some(cut) = common::nft::Rules::cut("weiche_galera_test", n1, &[n2, n3]) {
        let t = down_with(s.api, 30, "db.shop.example.", n1, "non-Primary component");
        eprintln!("cut-off n1: {}", t["last_probe"]["error"]);
        wait_answer(&s, db, &[n2], Duration::from_secs(5));
        wait_answer(&s, ro, &[n2, n3], Duration::from_secs(5));
        wait_for_event(s.api, seq, "db fails over", |e| e["kind"] == "failover" && e["pool"] == db);
        drop(cut);
        g.wait_synced(0);
        wait_answer(&s, ro, &[n1, n2], Duration::from_secs(15));
        wait_for_target(s.api, db, n1, "up again", |t| t["verdict"] == "up");
        assert_eq!(answer(&s, db), [ip(n2)], "manual failback: the writer stays where it went");
        let (code, body) = http(s.api, "POST", "/pools/db.shop.example./failback", None);
        assert_eq!(code, 200, "{body}");
        wait_answer(&s, db, &[n1], Duration::from_secs(5));
    }

    // The writer's node loses power: it leaves both pools, and the other two stay a Primary
    // component that takes the writes.
    g.kill_node(0);
    down_with(s.api, 30, "db.shop.example.", n1, "connection refused");
    wait_answer(&s, db, &[n2], Duration::from_secs(5));
    wait_answer(&s, ro, &[n2, n3], Duration::from_secs(5));
    g.wait_size(1, 2);
    g.wait_synced(1);
}

//! weiche as a primary followed by a real secondary: Knot DNS transfers from it (TSIG), is
//! told of changes by NOTIFY and fetches them by IXFR; `dig` transfers a large zone.
//!
//! Without knotd/dig installed these tests say they skipped (see `common::skip`); with
//! WEICHE_REQUIRE_INTEROP=1 (set by .ci/run) they fail instead.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::knot::{Knot, SECRET};
use common::*;

/// The weiche config text for a primary that lets `secondary` transfer with the key and
/// notifies it.
fn primary_config(dir: &Path, weiche_ip: &str, secondary: Option<&str>) -> weiche::Config {
    let notify = secondary.map(|s| format!("notify = [{{ to = \"{s}\", key = \"xfr\" }}]\n")).unwrap_or_default();
    let text = format!(
        "[keys.xfr]\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
         [transfer]\nallow = [{{ from = \"127.0.0.0/8\", key = \"xfr\" }}]\n{notify}notify_source = \"{weiche_ip}\"\n"
    );
    let p = dir.join("weiche.toml");
    std::fs::write(&p, text).unwrap();
    weiche::Config::load(Some(&p)).unwrap()
}

#[test]
fn knot_follows_failover_by_notify_and_ixfr() {
    if !have_tool("knotd", "apt-get install knot") {
        return;
    }
    let (p, sec) = ("127.0.0.211", "127.0.0.212");
    let (port, mut primary, _secondary) = backend_pair(p, sec);
    let (interval, timeout, fall) = (250u64, 200u64, 2u64);
    let pool = zone(&format!(
        "[pools.www]\ncheck = {{ type = \"tcp\", port = {port}, interval = \"{interval}ms\", timeout = \"{timeout}ms\", fall = {fall}, rise = 2 }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    ));
    let cfgdir = tempfile::tempdir().unwrap();
    // Knot's port is chosen before weiche starts, so weiche can notify it.
    let knot_ip = "127.0.0.213";
    let knot_port = external_port(knot_ip);
    let transfer = primary_config(cfgdir.path(), "127.0.0.210", Some(&format!("{knot_ip}:{knot_port}"))).transfer;
    let s = Server::start_with("127.0.0.210", &[("kx.test.toml", &pool)], |c| c.transfer = transfer);
    let knot = Knot::start(knot_ip, knot_port, s.addr, &["kx.test"]);
    assert!(
        wait_until(Duration::from_secs(15), || knot.a("www.kx.test.") == vec![ip(p)]).is_some(),
        "Knot never served the zone:\n{}",
        knot.log()
    );
    // Kill the primary: Knot answers the secondary within interval × fall + timeout + 2 s.
    primary.down();
    let limit = Duration::from_millis(interval * fall + timeout) + Duration::from_secs(2);
    let took = wait_until(Duration::from_secs(10), || knot.a("www.kx.test.") == vec![ip(sec)]);
    assert!(took.is_some_and(|t| t <= limit), "Knot switched after {took:?} (limit {limit:?})\n{}", knot.log());
    let log = knot.log();
    assert!(log.contains("[kx.test.] IXFR, incoming"), "the change came by IXFR:\n{log}");
    assert!(log.contains("[kx.test.] notify, incoming"), "after a NOTIFY:\n{log}");
    // The backend comes back: Knot follows again.
    primary.up();
    assert!(wait_until(Duration::from_secs(10), || knot.a("www.kx.test.") == vec![ip(p)]).is_some(), "{}", knot.log());
}

fn big_zone(n: usize) -> String {
    let mut z = String::from("$TTL 300\n@ SOA ns1 hm 7 1h 10m 14d 300\n@ NS ns1\nns1 A 127.0.0.53\n");
    for i in 0..n - 3 {
        z.push_str(&format!("h{i:06} A 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255));
    }
    z
}

#[test]
fn large_zone_transfers_to_knot_and_dig_and_refusals() {
    if !have_tool("knotd", "apt-get install knot") || !have_tool("dig", "apt-get install dnsutils") {
        return;
    }
    let cfgdir = tempfile::tempdir().unwrap();
    let transfer = primary_config(cfgdir.path(), "127.0.0.220", None).transfer;
    let mut allow_only_221 = transfer.clone();
    allow_only_221.default.allow = vec![weiche::config::Allow {
        from: Some("127.0.0.221/32".parse().unwrap()),
        key: transfer.keys.first().cloned(),
    }];
    let s =
        Server::start_with("127.0.0.220", &[("big.test.zone", &big_zone(100_000))], |c| c.transfer = allow_only_221);
    let knot = Knot::start("127.0.0.221", external_port("127.0.0.221"), s.addr, &["big.test"]);
    let last = format!("h{:06}.big.test.", 100_000 - 4);
    let took = wait_until(Duration::from_secs(60), || !knot.a(&last).is_empty());
    assert!(took.is_some(), "Knot did not get the 100,000-record zone:\n{}", knot.log());
    assert!(knot.log().contains("[big.test.] AXFR, incoming"), "{}", knot.log());
    // dig with the key, from an allowed address: every record, SOA first and last.
    let dig = |src: &str, key: Option<&str>| {
        let mut c = Command::new("dig");
        c.args([
            "+noall",
            "+answer",
            "+comments",
            "-b",
            src,
            "-p",
            &s.addr.port().to_string(),
            &format!("@{}", s.addr.ip()),
            "big.test",
            "AXFR",
        ]);
        if let Some(k) = key {
            c.args(["-y", &format!("hmac-sha256:xfr:{k}")]);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
    };
    let out = dig("127.0.0.221", Some(SECRET));
    let records = out.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty()).count();
    assert_eq!(records, 100_000 + 1, "all records plus the closing SOA");
    // Unsigned, wrongly signed, and from outside the ACL: refused.
    assert!(dig("127.0.0.221", None).contains("status: REFUSED"));
    let wrong = dig("127.0.0.221", Some("b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMTI="));
    assert!(wrong.contains("status: NOTAUTH"), "{wrong}");
    assert!(dig("127.0.0.222", Some(SECRET)).contains("status: REFUSED"));
}

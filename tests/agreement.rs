//! `weiche check` and `weiche serve` agree on what is valid: over a corpus of broken zone files
//! and configurations, `check` reports each problem at file:line:col, and `serve` refuses the
//! same thing with the same words (a broken zone is not served and `/status` shows the error; a
//! broken configuration stops the start). The good zone beside them is accepted by both.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_weiche");
const SOA: &str = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

/// (file name, contents) of zones that must not load. Pools point at loopback only.
fn bad_zones(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let s255 = format!("\"{}\"", "x".repeat(255));
    let toml = |body: &str| format!("records = \"\"\"\n{SOA}\"\"\"\n{body}").into_bytes();
    let pool = |check: &str, targets: &str| toml(&format!("[pools.www]\ncheck = {check}\ntargets = [{targets}]\n"));
    let t1 = "{ address = \"127.0.0.1\", priority = 1 }";
    std::fs::write(dir.join("loop.zone.part"), "$INCLUDE loop.zone.part\n").unwrap();
    vec![
        ("rdata.test.zone".into(), format!("{SOA}www A 192.0.2.999\n").into_bytes()),
        ("bigtxt.test.zone".into(), format!("{SOA}t TXT {}\n", vec![s255.as_str(); 257].join(" ")).into_bytes()),
        (
            "bigset.test.zone".into(),
            format!("{SOA}{}", (0..300).map(|i| format!("s TXT \"{i}{}\"\n", "y".repeat(240))).collect::<String>())
                .into_bytes(),
        ),
        ("devzero.test.zone".into(), format!("{SOA}$INCLUDE /dev/zero\n").into_bytes()),
        ("missing.test.zone".into(), format!("{SOA}$INCLUDE nowhere.part\n").into_bytes()),
        ("loop.test.zone".into(), format!("{SOA}$INCLUDE loop.zone.part\n").into_bytes()),
        ("self.test.zone".into(), format!("{SOA}$INCLUDE self.test.zone\n").into_bytes()),
        ("cname.test.zone".into(), format!("{SOA}www CNAME ns1\nwww TXT \"x\"\n").into_bytes()),
        ("nosoa.test.zone".into(), b"$TTL 60\n@ NS ns1\nns1 A 192.0.2.53\n".to_vec()),
        ("utf8.test.toml".into(), [&toml("")[..], b"# \xff\n"].concat()),
        (
            "minup.test.toml".into(),
            toml(&format!("[pools.www]\ncheck = {{ type = \"tcp\", port = 80 }}\nmin_up = 2\ntargets = [{t1}]\n")),
        ),
        ("key.test.toml".into(), pool("{ type = \"tcp\", port = 80, path = \"/\" }", t1)),
        ("header.test.toml".into(), pool("{ type = \"http\", headers = { \"X\" = \"a\\r\\nB: c\" } }", t1)),
        ("creds.test.toml".into(), pool("{ type = \"galera\", credentials_file = \"nope.cnf\" }", t1)),
        ("twice.test.toml".into(), pool("{ type = \"tcp\", port = 80 }", &format!("{t1}, {t1}"))),
        ("interval.test.toml".into(), pool("{ type = \"tcp\", port = 80, interval = \"0s\" }", t1)),
    ]
}

/// (file name, contents, what the error says) of configurations that must not start.
const BAD_CONFIGS: &[(&str, &str, &str)] = &[
    ("reload.toml", "[server]\nreload_interval = \"0s\"\n", "2:19: reload_interval must be 100ms to 1h"),
    ("idle.toml", "[server]\ntcp_idle_timeout = \"0s\"\n", "2:20: tcp_idle_timeout must be 100ms to 1h"),
    ("workers.toml", "[server]\nudp_workers = 100000\n", "2:15: udp_workers (0: one per CPU) must be 0..=256"),
    ("limit.toml", "[server]\nzone_file_limit = \"1\"\n", "2:19: zone_file_limit must be 1KiB to 1024GiB"),
    ("typo.toml", "[server]\nlistne = []\n", "2:1: unknown field `listne`"),
    ("api.toml", "[api]\nlisten = \"0.0.0.0:8053\"\n", "2:10: api.listen 0.0.0.0:8053 is beyond loopback"),
    (
        "retries.toml",
        "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\nretries = 99\n",
        "3:11: notify.webhook retries must be 0..=10",
    ),
    // Files the configuration names are read bounded, and only when regular: a device never
    // ends, a FIFO never starts.
    ("keydev.toml", "[keys.k]\nfile = \"/dev/zero\"\n", "1:1: key \"k\": cannot read /dev/zero: is a device"),
    (
        "tokendev.toml",
        "[api]\ntoken_file = \"/dev/zero\"\n",
        "2:14: api.token_file: cannot read /dev/zero: is a device",
    ),
];

#[test]
fn check_and_serve_refuse_the_same_zones_with_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let bad = bad_zones(&zones);
    for (name, text) in &bad {
        std::fs::write(zones.join(name), text).unwrap();
    }
    std::fs::write(zones.join("good.test.zone"), format!("{SOA}www A 192.0.2.1\n")).unwrap();

    let out = Command::new(BIN).args(["check", "--zones"]).arg(&zones).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("zone good.test. OK"), "{said}");

    let ip = "127.0.0.196";
    let (dns, api) = (external_port(ip), external_port(ip));
    let (dns, api) = (format!("{ip}:{dns}"), format!("{ip}:{api}"));
    let _server = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", &dns, "--api", &api, "--zones"])
            .arg(&zones)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api: std::net::SocketAddr = api.parse().unwrap();
    let status = wait_for(
        "serve to answer /status",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(api).is_ok().then(|| json(api, "GET", "/status").1),
        |s| s.is_some(),
    )
    .unwrap();
    let zone_status = |apex: &str| status["zones"].as_array().unwrap().iter().find(|z| z["zone"] == apex).cloned();
    assert_eq!(zone_status("good.test.").unwrap()["served"], true);
    for (name, _) in &bad {
        let apex = format!("{}.", name.rsplit_once('.').unwrap().0);
        let z = zone_status(&apex).unwrap_or_else(|| panic!("serve does not list {apex}: {status}"));
        assert_eq!(z["served"], false, "serve must refuse {name}: {z}");
        let error = z["last_error"].as_str().unwrap();
        // file:line:col of the zone file, or of the file it includes where that one is wrong.
        let place: Vec<&str> = error.splitn(4, ':').collect();
        assert!(
            place.len() == 4
                && place[0].starts_with(&zones.display().to_string())
                && place[1].parse::<u32>().is_ok_and(|l| l > 0)
                && place[2].parse::<u32>().is_ok_and(|c| c > 0),
            "{name}: serve's error names no position: {error}"
        );
        assert!(said.contains(error), "{name}: check does not say what serve says:\n  serve: {error}\n  check: {said}");
    }
}

#[test]
fn check_and_serve_refuse_the_same_configurations_with_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    for (name, text, want) in BAD_CONFIGS {
        let cfg = dir.path().join(name);
        std::fs::write(&cfg, text).unwrap();
        let want = format!("{}:{want}", cfg.display());
        let check = Command::new(BIN).args(["check", "--config"]).arg(&cfg).output().unwrap();
        let check_said = String::from_utf8_lossy(&check.stderr).to_string() + &String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(1), "{name}: {check_said}");
        assert!(check_said.contains(&want), "{name}: check says {check_said}, not {want}");
        // serve stops before binding anything: the listen address is never used.
        let serve = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.197:1", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let serve_said = String::from_utf8_lossy(&serve.stderr);
        assert_eq!(serve.status.code(), Some(1), "{name}: serve must not start: {serve_said}");
        assert!(serve_said.contains(&want), "{name}: serve says {serve_said}, not {want}");
    }
}

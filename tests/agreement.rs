//! `weiche check` and `weiche serve` agree on what is valid and on what stops a start:
//! - over a corpus of broken zone files, `check` reports each problem at file:line:col with the
//!   words `serve` uses (`serve` leaves the zone out and `/status` shows the error) and exits 0,
//!   because `serve` starts and serves the good zone beside them; `check --strict` exits 1;
//! - over a corpus of broken configurations, both refuse with the same words;
//! - `check` exits 0 exactly where `serve` starts (no zones, only broken zones, a missing zones
//!   directory), so the unit's `ExecStartPre=weiche check` never keeps a start from happening
//!   that `serve` would make; and the unit's own two command lines, run as systemd runs them,
//!   serve the good zones beside a broken one.

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

    // Both ways of checking report the same; only --strict fails on the broken zones.
    let (code, said) = check(&["--zones", zones.to_str().unwrap()]);
    assert_eq!(code, 0, "serve starts with these zones, so check must pass:\n{said}");
    assert!(said.contains("zone good.test. OK"), "{said}");
    let mut left_out: Vec<String> =
        bad.iter().map(|(name, _)| format!("{}.", name.rsplit_once('.').unwrap().0)).collect();
    left_out.sort();
    assert!(
        said.contains(&format!(
            "of {} zone(s): serve leaves out {} and serves the other 1",
            bad.len() + 1,
            left_out.join(" ")
        )) && said.contains("(weiche check --strict fails on this)"),
        "{said}"
    );
    let (strict_code, strict_said) = check(&["--strict", "--zones", zones.to_str().unwrap()]);
    assert_eq!(strict_code, 1, "{strict_said}");
    assert_eq!(
        strict_said.replace(" (weiche check --strict fails on this)", ""),
        said.replace(" (weiche check --strict fails on this)", "")
    );

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
        for strict in [&[][..], &["--strict"][..]] {
            let (code, check_said) = check(&[strict, &["--config", cfg.to_str().unwrap()]].concat());
            assert_eq!(code, 1, "{name} {strict:?}: {check_said}");
            assert!(check_said.contains(&want), "{name}: check says {check_said}, not {want}");
        }
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

/// `weiche check ARGS`: its exit code, and stdout then stderr.
fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).arg("check").args(args).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), said)
}

/// Starts `argv` (a `weiche serve` command line) with `--listen` and `--api` on `ip` added.
/// Ok(the running server, its DNS address) once it is ready; Err(its exit code, what it said on
/// stderr) when it stops instead.
fn start_serving(argv: &[String], ip: &str) -> Result<(Killed, std::net::SocketAddr), (i32, String)> {
    let (dns, api) = (external_port(ip), external_port(ip));
    let (dns, api): (std::net::SocketAddr, std::net::SocketAddr) =
        (format!("{ip}:{dns}").parse().unwrap(), format!("{ip}:{api}").parse().unwrap());
    // Its log goes to a file: a pipe nobody reads could fill and stall it.
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Killed(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(["--listen", &dns.to_string(), "--api", &api.to_string()])
            .stdin(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Err((status.code().unwrap_or(-1), std::fs::read_to_string(log.path()).unwrap()));
        }
        if std::net::TcpStream::connect(api).is_ok() && http(api, "GET", "/readyz", None).0 == 200 {
            return Ok((child, dns));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{argv:?} neither started nor stopped within 15 s");
}

/// Over the cases where zones are missing or broken, check passes exactly where serve starts,
/// and --strict fails on each of them.
#[test]
fn check_passes_exactly_where_serve_starts() {
    let dir = tempfile::tempdir().unwrap();
    let broken = format!("{SOA}www A 192.0.2.999\n");
    // (what, zone files (name, text), whether the zones directory exists, what both say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool, &'a str);
    let cases: [Case; 3] = [
        ("no zones", &[], true, "WARNING: no zones in "),
        ("only broken zones", &[("a.test.zone", broken.as_str()), ("b.test.zone", "$TTL 60\n")], true, "no zone loads"),
        ("no zones directory", &[], false, "cannot read the zones directory"),
    ];
    for (i, (what, files, dir_exists, says)) in cases.into_iter().enumerate() {
        let zones = dir.path().join(format!("zones{i}"));
        if dir_exists {
            std::fs::create_dir(&zones).unwrap();
        }
        for (name, text) in files {
            std::fs::write(zones.join(name), text).unwrap();
        }
        let (code, said) = check(&["--zones", zones.to_str().unwrap()]);
        assert!(said.contains(says), "{what}: check says {said}");
        let (strict, strict_said) = check(&["--strict", "--zones", zones.to_str().unwrap()]);
        assert_eq!(strict, 1, "{what}: --strict must fail: {strict_said}");
        let argv = [BIN.to_string(), "serve".into(), "--zones".into(), zones.display().to_string()];
        match start_serving(&argv, "127.0.0.196") {
            Ok((_server, dns)) => {
                assert_eq!(code, 0, "{what}: serve starts, so check must pass: {said}");
                // It answers, REFUSED for a zone it does not serve.
                let reply = udp(dns, &query("www.a.test", hickory_proto::rr::RecordType::A, None));
                assert_eq!(reply.metadata.response_code, hickory_proto::op::ResponseCode::Refused, "{what}");
            }
            Err((serve_code, err)) => {
                assert_eq!(
                    (code, serve_code),
                    (1, 1),
                    "{what}: serve does not start, so check must fail: {said}\n{err}"
                );
                assert!(err.contains(says), "{what}: serve says {err}");
            }
        }
    }
}

/// The unit's ExecStartPre= and ExecStart= lines, as systemd runs them one after the other, with
/// a broken zone beside good ones: the start goes ahead and the good zones are answered.
#[test]
fn the_units_check_then_serve_serves_the_good_zones_beside_a_broken_one() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/weiche.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::write(zones.join("good.test.zone"), format!("{SOA}www A 192.0.2.1\n")).unwrap();
    std::fs::write(zones.join("other.test.zone"), format!("{SOA}www A 192.0.2.2\n")).unwrap();
    std::fs::write(zones.join("broken.test.zone"), format!("{SOA}www A 192.0.2.999\n")).unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, "[server]\nzones = \"zones\"\n").unwrap();
    // The unit's command lines, with this build and this configuration for the installed ones.
    let line = |key: &str| -> Vec<String> {
        let l = unit.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("the unit has no {key}"));
        l.split_whitespace()
            .map(|w| match w {
                "/usr/bin/weiche" => BIN.to_string(),
                "/etc/weiche/weiche.toml" => cfg.display().to_string(),
                w => w.to_string(),
            })
            .collect()
    };
    let (pre, start) = (line("ExecStartPre="), line("ExecStart="));
    assert_eq!(pre[0], BIN, "ExecStartPre= runs the installed binary: {pre:?}");
    let out = Command::new(&pre[0]).args(&pre[1..]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ExecStartPre= {pre:?} fails, so systemd would not start weiche:\n{said}");
    assert!(said.contains("broken.test.zone:5:") && said.contains("serve leaves out broken.test."), "{said}");

    let (_server, dns) = start_serving(&start, "127.0.0.195").unwrap_or_else(|e| panic!("ExecStart= {start:?}: {e:?}"));
    for (name, want) in [("www.good.test", "192.0.2.1"), ("www.other.test", "192.0.2.2")] {
        let reply = udp(dns, &query(name, hickory_proto::rr::RecordType::A, None));
        assert_eq!(records(&reply.answers), [format!("{name}. 60 IN A {want}")], "{name}");
    }
    let reply = udp(dns, &query("www.broken.test", hickory_proto::rr::RecordType::A, None));
    assert_eq!(reply.metadata.response_code, hickory_proto::op::ResponseCode::Refused);
}

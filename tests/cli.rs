//! The `weiche` binary itself: `check`, `--help`, serving on `--listen`, and stopping on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Killed, external_port};

const BIN: &str = env!("CARGO_BIN_EXE_weiche");

fn repo_zones() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")
}

#[test]
fn the_shipped_example_zones_pass_check() {
    let out = Command::new(BIN).args(["check", "--zones"]).arg(repo_zones()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("zone example.com. OK") && stdout.contains("2 pools"), "{stdout}");
    assert!(stdout.contains("zone example.net. OK"), "{stdout}");
}

#[test]
fn check_reports_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.test.zone"), "$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n")
        .unwrap();
    std::fs::write(
        dir.path().join("bad.test.zone"),
        "$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.256\nmx MX ten mail\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pool.test.toml"),
        "records = '''\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n'''\n[pools.www]\nchek = \"x\"\n",
    )
    .unwrap();
    // serve would start and serve good.test., so only --strict fails.
    let out = Command::new(BIN).args(["check", "--zones"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN).args(["check", "--strict", "--zones"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let bad = dir.path().join("bad.test.zone");
    let pool = dir.path().join("pool.test.toml");
    assert!(
        stderr.contains(&format!("{}:5:7: A record: not an IPv4 address: \"192.0.2.256\"", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:6:7: MX record: preference: expected a number in range, got \"ten\"",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{}:8:1: unknown field `chek`", pool.display())), "{stderr}");
    assert!(
        stderr.contains(
            "WARNING: 3 problem(s) in 2 of 3 zone(s): serve leaves out bad.test. pool.test. and serves the other 1\n"
        ),
        "{stderr}"
    );
}

#[test]
fn check_rejects_a_config_typo() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, "[server]\nlisten = [\"127.0.0.1:1053\"]\nzone = \"zones\"\n").unwrap();
    let out = Command::new(BIN).arg("check").arg("--config").arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&format!("{}:3:1: unknown field `zone`", cfg.display())), "{stderr}");
}

#[test]
fn check_and_serve_reject_an_rrl_value_out_of_range_alike() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, "[server]\nlisten = [\"127.0.0.1:0\"]\n[rrl]\nresponses_per_second = 5\nslip = 20\n").unwrap();
    let want = format!("{}:5:8: rrl.slip must be 0..=10, got 20", cfg.display());
    for cmd in ["check", "serve"] {
        let out = Command::new(BIN).arg(cmd).arg("--config").arg(&cfg).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stderr}");
        assert!(stderr.contains(&want), "{cmd}: {stderr}");
    }
}

#[test]
fn help_names_the_commands_and_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "check", "keygen", "ds", "--listen", "--zones", "--config", "--log-format"] {
        assert!(s.contains(word), "--help lacks {word}:\n{s}");
    }
}

#[test]
fn serves_on_listen_and_stops_on_sigterm() {
    let port = external_port("127.0.0.21");
    let addr = format!("127.0.0.21:{port}");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--api", "off", "--log-format", "json", "--zones"])
        .arg(repo_zones())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.21:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let q = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06static\x07example\x03com\x00\x00\x01\x00\x01";
    let start = Instant::now();
    let mut answer = None;
    while answer.is_none() && start.elapsed() < Duration::from_secs(10) {
        sock.send_to(q, &addr).unwrap();
        let mut buf = [0u8; 512];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            answer = Some(buf[..n].to_vec());
        }
    }
    let answer = answer.expect("an answer within 10 s");
    assert_eq!(&answer[answer.len() - 4..], &[127, 0, 0, 20], "static.example.com A 127.0.0.20");
    // An idle TCP client must not hold up the shutdown (the idle timeout is 10 s). It is
    // answered once first, so the server is surely holding the connection when told to stop.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    std::io::Write::write_all(&mut idle, &[&(q.len() as u16).to_be_bytes()[..], &q[..]].concat()).unwrap();
    let mut head = [0u8; 4];
    std::io::Read::read_exact(&mut idle, &mut head).expect("an answer on the TCP connection");
    assert_eq!(&head[2..], &[0x12, 0x34], "the answer to our query");
    let mut rest = vec![0u8; u16::from_be_bytes([head[0], head[1]]) as usize - 2];
    std::io::Read::read_exact(&mut idle, &mut rest).unwrap();
    send_signal(child.id(), 15);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "did not exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    idle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(matches!(std::io::Read::read(&mut idle, &mut [0u8; 2]), Ok(0) | Err(_)), "the idle connection was closed");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    let first = log.lines().next().unwrap();
    assert!(first.starts_with('{') && first.contains("\"message\":\"zone loaded\""), "JSON log lines: {log}");
}

fn send_signal(pid: u32, sig: i32) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(ok.success());
}

#[test]
fn sighup_reloads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let zone = |serial: u32| format!("$TTL 60\n@ SOA ns hm {serial} 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n");
    std::fs::write(zones.join("hup.test.zone"), zone(1)).unwrap();
    let port = external_port("127.0.0.22");
    // An hour between looks at the directory: only SIGHUP can explain a quick reload.
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, format!("[server]\nlisten = [\"127.0.0.22:{port}\"]\nzones = \"zones\"\nreload_interval = \"1h\"\n[api]\nlisten = \"off\"\n")).unwrap();
    let mut child = Command::new(BIN).arg("--config").arg(&cfg).stderr(Stdio::null()).spawn().unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.22:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let soa_serial = || -> Option<u32> {
        let q = b"\x00\x07\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03hup\x04test\x00\x00\x06\x00\x01";
        sock.send_to(q, ("127.0.0.22", port)).ok()?;
        let mut buf = [0u8; 512];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        // The serial is the first of the SOA's five 32-bit fields at the end.
        (u16::from_be_bytes([buf[6], buf[7]]) == 1).then(|| u32::from_be_bytes(buf[n - 20..n - 16].try_into().unwrap()))
    };
    let start = Instant::now();
    while soa_serial() != Some(1) {
        assert!(start.elapsed() < Duration::from_secs(10), "server did not answer");
    }
    // Nothing but the signal can load the edit within the hour, so there is no moment to wait
    // for before looking: it is not served after the write alone.
    std::fs::write(zones.join("hup.test.zone"), zone(2)).unwrap();
    assert_eq!(soa_serial(), Some(1), "not reloaded without a signal");
    send_signal(child.id(), 1);
    let t = Instant::now();
    while soa_serial() != Some(2) {
        assert!(t.elapsed() < Duration::from_secs(3), "SIGHUP did not reload within 3 s");
    }
    send_signal(child.id(), 15);
    assert!(child.wait().unwrap().success());
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn operator_commands_talk_to_the_api() {
    let (port, api_port) = common::two_external_ports("127.0.0.24");
    let (dns, api) = (format!("127.0.0.24:{port}"), format!("127.0.0.24:{api_port}"));
    let mut child = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", &dns, "--api", &api, "--zones"])
            .arg(repo_zones())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        let (code, out, _) = run(&["status", "--api", &api]);
        if code == 0 {
            assert!(out.contains("pool www.example.com."), "{out}");
            assert!(out.contains("127.0.0.10"), "{out}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "status never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, _) = run(&["status", "--api", &api, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["pools"].as_array().unwrap().len() >= 2);
    // A follower started now prints the drain as it happens.
    let mut follower =
        Killed(Command::new(BIN).args(["events", "--follow", "--api", &api]).stdout(Stdio::piped()).spawn().unwrap());
    let stdout = follower.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Its first line (the events kept so far) shows it has read up to now; the drain comes after.
    let first = rx.recv_timeout(Duration::from_secs(5)).expect("the follower prints the kept events");
    assert!(!first.contains(" drain "), "{first}");
    assert_eq!(run(&["drain", "127.0.0.10", "--api", &api]), (0, "127.0.0.10 drained\n".into(), String::new()));
    let t = Instant::now();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(3)).expect("the follower prints the drain");
        if line.contains(" drain ") && line.contains("target 127.0.0.10 drained") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3));
    }
    drop(follower);
    let (_, out, _) = run(&["status", "--api", &api]);
    assert!(out.contains("DRAINED"), "{out}");
    let (code, _, err) = run(&["drain", "192.0.2.99", "--api", &api]);
    assert_eq!(code, 1);
    assert!(err.contains("192.0.2.99 is not a target"), "{err}");
    assert_eq!(
        run(&["undrain", "127.0.0.10", "--pool", "www.example.com", "--api", &api]).0,
        1,
        "drained everywhere, not per pool"
    );
    assert_eq!(run(&["undrain", "127.0.0.10", "--api", &api]).0, 0);
    // Drained in one pool, undrained without --pool: back in every pool, as it says.
    assert_eq!(run(&["drain", "127.0.0.10", "--pool", "www.example.com", "--api", &api]).0, 0);
    assert_eq!(run(&["undrain", "127.0.0.10", "--api", &api]), (0, "127.0.0.10 undrained\n".into(), String::new()));
    let (_, out, _) = run(&["status", "--api", &api]);
    assert!(!out.contains("DRAINED"), "{out}");
    // The pool fails back by itself: there is nothing to release, and the command says so.
    let (code, _, err) = run(&["failback", "www.example.com", "--api", &api]);
    assert!(code == 1 && err.contains("fails back by itself") && err.contains("(HTTP 409)"), "{err}");
    let (code, _, err) = run(&["failback", "nope.example.com", "--api", &api]);
    assert!(code == 1 && err.contains("no pool named nope.example.com."), "{err}");
    let (code, out, _) = run(&["events", "--api", &api]);
    assert_eq!(code, 0);
    assert!(out.contains("drain") && out.contains("undrain"), "{out}");
    send_signal(child.0.id(), 15);
    assert!(child.0.wait().unwrap().success());
    // Nothing listening: a message that says what to do.
    let (code, _, err) = run(&["status", "--api", &api]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("cannot reach the API at {api}: is weiche running? see --api")), "{err}");
}

#[test]
fn the_deploy_example_config_and_zones_pass_check() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/weiche.toml");
    let out = Command::new(BIN).arg("check").arg("--config").arg(&cfg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("zone shop.example. OK") && stdout.contains("4 pools"), "{stdout}");
    let container = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/container.toml");
    assert!(weiche::Config::load(Some(&container)).is_ok());
}

#[test]
fn check_validates_dns_and_smtp_checks_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let records = "records = '''\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n'''\n";
    std::fs::write(
        dir.path().join("good.test.toml"),
        format!(
            "{records}[checks.ns]\ntype = \"dns\"\nname = \"example.net\"\nqtype = \"SOA\"\n\
             [checks.mx]\ntype = \"smtp\"\nstarttls = true\nhost = \"mx.good.test\"\n\
             [pools.ns1]\ncheck = \"ns\"\ntargets = [{{ address = \"192.0.2.53\", priority = 1 }}]\n\
             [pools.mail]\ncheck = \"mx\"\ntargets = [{{ address = \"192.0.2.25\", priority = 1 }}]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.test.toml"),
        format!(
            "{records}[pools.a]\ncheck = {{ type = \"dns\", name = \"x.\", expect_rcode = \"NOPE\" }}\n\
             targets = [{{ address = \"192.0.2.1\", priority = 1 }}]\n\
             [pools.b]\ncheck = {{ type = \"smtp\", tls_verify = false }}\n\
             targets = [{{ address = \"192.0.2.1\", priority = 1 }}]\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN).args(["check", "--strict", "--zones"]).arg(dir.path()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("zone good.test. OK"), "{stdout}");
    let bad = dir.path().join("bad.test.toml").display().to_string();
    assert!(
        stderr
            .contains(&format!("{bad}:8:53: pool \"a\": check \"a (inline)\": expect_rcode \"NOPE\" is not an rcode")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{bad}:11:39: pool \"b\": check \"b (inline)\": tls_verify is only for smtp checks with starttls = true"
        )),
        "{stderr}"
    );
}

/// `--api` beyond loopback needs a token, as `api.listen` does: without one weiche refuses to
/// start and says why; with `api.token_file` it serves, and the token gets in.
#[test]
fn the_api_flag_beyond_loopback_needs_a_token() {
    let dns = format!("127.0.0.207:{}", external_port("127.0.0.207"));
    let api_port = external_port("0.0.0.0");
    let api = format!("0.0.0.0:{api_port}");
    let serve = |config: Option<&std::path::Path>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", &dns, "--api", &api, "--zones"]).arg(repo_zones());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        Killed(cmd.stderr(Stdio::piped()).spawn().unwrap())
    };
    let mut child = serve(None);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "still running 5 s after --api {api} without a token");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--api {api} is beyond loopback")) && err.contains("api.token_file"), "{err}");
    // With a token from the configuration it serves, and only the token gets in.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-of-24-characters\n").unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, format!("[api]\ntoken_file = \"{}\"\n", token.display())).unwrap();
    let _child = serve(Some(&cfg));
    let local = format!("127.0.0.1:{api_port}");
    let start = Instant::now();
    while run(&["status", "--api", &local, "--token-file", token.to_str().unwrap()]).0 != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "status never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, err) = run(&["status", "--api", &local]);
    assert!(code == 1 && err.contains("HTTP 401"), "{err}");
}

/// A `[cluster]` with members a1, a2 (site fra), b (ams), c (zrh, a witness), all weight 1.
const CLUSTER: &str = "[keys.peers]\nsecret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\"\n\
    [cluster]\nmember = \"b\"\nkey = \"peers\"\nmembers = [\n\
    { name = \"a1\", site = \"fra\", address = \"192.0.2.1:8553\" },\n\
    { name = \"a2\", site = \"fra\", address = \"192.0.2.2:8553\" },\n\
    { name = \"b\", site = \"ams\", address = \"198.51.100.1:8553\" },\n\
    { name = \"c\", site = \"zrh\", address = \"203.0.113.1:8553\", witness = true },\n]\n";

#[test]
fn a_weiche_log_that_is_no_filter_is_an_error_not_a_panic() {
    // A leading space and a character of several bytes made tracing-subscriber's parser panic.
    for bad in [" é", "info,weiche=nonsense", "ä"] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--api", "off", "--zones"])
            .arg(repo_zones())
            .env("WEICHE_LOG", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {err}");
        assert!(err.contains("WEICHE_LOG=") && err.contains("is not a level or filter"), "{bad:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Runs `serve` with `cfg` and waits (at most 10 s) for it to give up; a server that starts
/// instead fails the test.
fn serve_refuses(cfg: &std::path::Path) -> String {
    let child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--api", "off", "--config"])
        .arg(cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "serve started instead of refusing {}", cfg.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    err
}

#[test]
fn check_prints_the_cluster_arithmetic_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    // example.test's NS are a1 and a2, both at fra, and one outside the cluster; its sibling
    // reaches fra and ams through names example.test holds.
    std::fs::write(
        zones.join("example.test.zone"),
        "$TTL 60\n@ SOA ns1 hm 1 1 1 1 1\n@ NS ns1\n@ NS ns2\n@ NS ns.elsewhere.net.\n\
         ns1 A 192.0.2.1\nns2 A 192.0.2.2\nns3 A 198.51.100.1\n",
    )
    .unwrap();
    std::fs::write(
        zones.join("sibling.test.zone"),
        "$TTL 60\n@ SOA ns1.example.test. hm 1 1 1 1 1\n@ NS ns1.example.test.\n@ NS ns3.example.test.\n",
    )
    .unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, CLUSTER).unwrap();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "cluster: 4 members at 3 sites; this instance is b (peers on 198.51.100.1:8553, minority = withdraw, heartbeat 500ms)",
        "  c       zrh        1  203.0.113.1:8553  witness: votes, serves no public DNS",
        "cluster: total weight 4; quorum is more than half: 3 or more",
        "  a1 (1): 3 of 4 left: keeps quorum",
        "  fra (a1+a2; 2): 2 of 4 left: NO QUORUM",
        "  ams (b; 1): 3 of 4 left: keeps quorum",
        "cluster: losing two members: 0 of 6 pairs keep quorum; these do not:",
        "  b away (total 3, quorum 2): losing site fra (1 of 3 left) stops it",
        "  a1 away (total 3, quorum 2): any one more member or site may fail",
        "zone sibling.test.: NS reach 2 sites: fra (ns1.example.test. → a1), ams (ns3.example.test. → b)",
        "zone example.test.: note: NS ns.elsewhere.net. has no address in the zones here",
        "2 zone(s) OK",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    for want in [
        "WARNING: cluster: losing site fra (a1+a2, weight 2 of 4) leaves 2 of 4, not more than half: no quorum",
        &format!(
            "{}: WARNING: zone example.test.: NS records reach only site fra (ns1.example.test. → a1, ns2.example.test. → a2)",
            zones.join("example.test.zone").display()
        ),
    ] {
        assert!(err.contains(want), "{want:?} not in\n{err}");
    }
    assert_eq!(err.matches("WARNING").count(), 2, "{err}");
}

/// A directory with `zones/x.test.zone`, and where its `weiche.toml` goes.
fn one_zone_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/x.test.zone"), "$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n")
        .unwrap();
    let cfg = dir.path().join("weiche.toml");
    (dir, cfg)
}

#[test]
fn a_bad_cluster_is_refused_by_check_and_serve_alike() {
    let (_dir, cfg) = one_zone_dir();
    for (text, want) in [
        (
            CLUSTER.replace("address = \"192.0.2.2:8553\"", "address = \"192.0.2.2:8553\", weight = 300"),
            "10:67: cluster member \"a2\": weight must be 0..=255, got 300",
        ),
        (
            CLUSTER.replace("member = \"b\"", "member = \"d\""),
            "6:10: cluster member \"d\" (this instance) is not in members (a1, a2, b, c)",
        ),
        (CLUSTER.replace("key = \"peers\"", "key = \"cluster\""), "7:7: no key named \"cluster\" (defined: peers)"),
        (
            CLUSTER.replace("\"198.51.100.1:8553\"", "\"192.0.2.1:8553\""),
            "11:39: cluster member \"b\": address 192.0.2.1:8553 is member \"a1\"'s too",
        ),
    ] {
        std::fs::write(&cfg, format!("[server]\nzones = \"zones\"\n{text}")).unwrap();
        let want = format!("{}:{want}", cfg.display());
        let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains(&want), "check: {want:?} not in\n{err}");
        let err = serve_refuses(&cfg);
        assert!(err.contains(&want), "serve: {want:?} not in\n{err}");
    }
}

/// A cluster member that cannot open its peer socket does not serve alone: it says which
/// address failed. The same file passes check, which prints the arithmetic.
#[test]
fn serve_refuses_a_cluster_it_cannot_listen_for() {
    let (_dir, cfg) = one_zone_dir();
    std::fs::write(&cfg, format!("[server]\nzones = \"zones\"\n{CLUSTER}")).unwrap();
    let err = serve_refuses(&cfg);
    assert!(err.contains("cannot listen for cluster peers on 198.51.100.1:8553"), "{err}");
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cluster: total weight 4"), "{out}");
}

/// Port 53 refused for want of privilege: the error says how to get it. Run as nobody through
/// setpriv (util-linux), which needs root.
#[test]
fn a_refused_low_port_says_how_to_get_the_privilege() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("dropping privileges to test a refused bind needs root");
        return;
    }
    if !common::have_tool("setpriv", "util-linux") {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["serve", "--listen", "127.0.0.198:53", "--api", "off", "--zones"])
        .arg(repo_zones())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot listen on 127.0.0.198:53 (UDP): Permission denied"), "{err}");
    assert!(
        err.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE") && err.contains("setcap cap_net_bind_service=+ep"),
        "{err}"
    );
}

/// The man page the package ships (deploy/debian/weiche.8) is the binary's own help, every
/// command's: it cannot fall behind a flag. After a change to the command line,
/// `WEICHE_BLESS=1 cargo test --test cli man_page` writes it anew.
#[test]
fn the_man_page_is_the_binarys_help() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/debian/weiche.8");
    let page = man_page();
    if std::env::var_os("WEICHE_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == page,
        "{} is not the help of this build; write it anew with WEICHE_BLESS=1 cargo test --test cli man_page",
        path.display()
    );
}

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// weiche(8) in roff: the top-level help, then each command's, in no-fill blocks whose lines are
/// wrapped at 72 columns (clap does not wrap; man indents by 7) under their own indentation.
fn man_page() -> String {
    let roff_block = |text: &str| -> String {
        let mut out = String::from(".nf\n");
        for line in text.trim_end().lines() {
            for l in wrap(line, 72) {
                let l = l.replace('\\', "\\e");
                if l.starts_with('.') || l.starts_with('\'') {
                    out.push_str("\\&");
                }
                out.push_str(&l);
                out.push('\n');
            }
        }
        out.push_str(".fi\n");
        out
    };
    let top = help(&[]);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"serve") && commands.contains(&"check"), "{top}");
    let about = top.lines().next().unwrap().trim_end_matches('.');
    let about = about[..1].to_lowercase() + &about[1..];
    let mut page = format!(
        ".\\\" weiche(8): the help of weiche {version}, written by tests/cli.rs (the_man_page_is_the_binarys_help).\n\
         .TH WEICHE 8 \"\" \"weiche {version}\" \"System Administration\"\n\
         .SH NAME\nweiche \\- {about}\n.SH DESCRIPTION\n{top_block}.SH COMMANDS\n",
        version = env!("CARGO_PKG_VERSION"),
        about = about.replace('-', "\\-"),
        top_block = roff_block(&top),
    );
    for c in commands {
        page.push_str(&format!(".SS weiche {c}\n{}", roff_block(&help(&[c]))));
    }
    page.push_str(
        ".SH FILES\n\
         .TP\n/etc/weiche/weiche.toml\nThe configuration; \\fBweiche check \\-\\-config /etc/weiche/weiche.toml\\fR validates it.\n\
         .TP\n/etc/weiche/zones/\nThe zones, one file each: NAME.zone master files, NAME.toml zones with pools.\n\
         .TP\n/var/lib/weiche/\nThe state directory: drains, manual-failback holds and serials.\n\
         .TP\n/usr/lib/systemd/system/weiche.service\nThe unit: \\fBsystemctl enable \\-\\-now weiche\\fR.\n\
         .SH SEE ALSO\n/usr/share/doc/weiche/README.md: zones, pools, checks, configuration and operation.\n",
    );
    page
}

/// `line` cut at spaces into pieces of at most `width` columns; the pieces after the first are
/// indented like the text of the line's first column of text after two spaces (an option's
/// description) or, failing that, like the line.
fn wrap(line: &str, width: usize) -> Vec<String> {
    if line.chars().count() <= width {
        return vec![line.to_string()];
    }
    let lead = line.len() - line.trim_start().len();
    let indent = line[lead..].find("  ").map_or(lead, |i| {
        let rest = &line[lead + i..];
        lead + i + (rest.len() - rest.trim_start().len())
    });
    let indent = if indent > width / 2 { lead + 4 } else { indent };
    let mut out = Vec::new();
    let mut cur = line[..lead].to_string();
    for word in line[lead..].split(' ') {
        let fresh = cur.trim().is_empty();
        if !fresh && cur.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::replace(&mut cur, " ".repeat(indent)));
        } else if !fresh || (cur.len() > lead && word.is_empty()) {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    out.push(cur);
    out
}

/// Runs a program; its exit code and stdout, or a panic with its stderr.
fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into()
}

/// Sorted lines: DS lines compared as sets.
fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    v.sort();
    v
}

/// What `dnssec-dsfromkey` prints for the KSKs among `stems` in `dir`, with digest `digest`.
fn dsfromkey(dir: &std::path::Path, stems: &[String], digest: &str) -> Vec<String> {
    let mut out = String::new();
    for stem in stems {
        let key = dir.join(format!("{stem}.key"));
        if std::fs::read_to_string(&key).unwrap().contains("DNSKEY 257 ") {
            out += &run_ok("dnssec-dsfromkey", &["-a", digest, key.to_str().unwrap()]);
        }
    }
    lines(&out)
}

#[test]
fn keygen_then_ds_agrees_with_dnssec_dsfromkey() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let csk = run_ok(BIN, &["keygen", "example.test", "--dir", d]);
    let pair = run_ok(BIN, &["keygen", "example.test", "--dir", d, "--algorithm", "15", "--ksk-zsk"]);
    let stems: Vec<String> = csk.lines().chain(pair.lines()).map(str::to_string).collect();
    assert_eq!(stems.len(), 3, "{csk}{pair}");
    assert!(stems[0].starts_with("Kexample.test.+013+") && stems[1].starts_with("Kexample.test.+015+"), "{stems:?}");
    for stem in &stems {
        let private = dir.path().join(format!("{stem}.private"));
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600, "{stem}");
        assert!(dir.path().join(format!("{stem}.key")).exists());
    }
    let ds = lines(&run_ok(BIN, &["ds", "example.test", "--dir", d]));
    let ds384 = lines(&run_ok(BIN, &["ds", "example.test.", "--dir", d, "--digest", "4"]));
    // The CSK and the KSK, not the ZSK.
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert!(ds.iter().all(|l| l.starts_with("example.test. IN DS ") && l.contains(" 2 ")), "{ds:?}");
    assert_eq!(ds384.len(), 2, "{ds384:?}");
    // A zone with no keys is an error, and says how to make one.
    let (code, _, stderr) = run(&["ds", "example.org", "--dir", d]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no KSK or CSK (flags 257) for example.org. in"), "{stderr}");
    if !common::have_tool("dnssec-dsfromkey", "apt-get install bind9-utils") {
        return;
    }
    assert_eq!(ds, dsfromkey(dir.path(), &stems, "SHA-256"));
    assert_eq!(ds384, dsfromkey(dir.path(), &stems, "SHA-384"));
}

#[test]
fn keys_made_by_dnssec_keygen_load_and_give_dnssec_dsfromkeys_ds() {
    if !common::have_tool("dnssec-keygen", "apt-get install bind9-utils")
        || !common::have_tool("dnssec-dsfromkey", "apt-get install bind9-utils")
    {
        return;
    }
    use weiche::dnssec::keys;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let bind = |args: &[&str]| -> String {
        let mut all = vec!["-q", "-K", d];
        all.extend_from_slice(args);
        all.push("example.test");
        run_ok("dnssec-keygen", &all).trim().to_string()
    };
    let ksk13 = bind(&["-a", "13", "-f", "KSK"]);
    let zsk13 = bind(&["-a", "13"]);
    let ksk15 =
        bind(&["-a", "15", "-f", "KSK", "-P", "20250101000000", "-A", "20250102000000", "-I", "20300101000000"]);
    let zsk15 = bind(&["-a", "ED25519", "-P", "20250101000000", "-A", "20250102000000", "-D", "20300201000000"]);
    // Deleted already: weiche ds leaves it out.
    let gone = bind(&["-a", "15", "-f", "KSK", "-P", "20190101000000", "-A", "20190101000000", "-D", "20200101000000"]);
    // Not published yet: weiche ds prints it and says so.
    let later = bind(&["-a", "13", "-f", "KSK", "-P", "20370101000000", "-A", "20370102000000"]);
    let zone = weiche::model::name::Name::parse("example.test.", None).unwrap();
    let loaded = keys::load_zone_keys(dir.path(), &zone).unwrap();
    assert_eq!(loaded.len(), 6);
    let by_stem = |stem: &str| loaded.iter().find(|k| k.path.file_stem().unwrap().to_str() == Some(stem)).unwrap();
    let t = |s: &str| keys::parse_timestamp(s);
    let k = by_stem(&ksk15);
    assert_eq!(
        (k.timing.publish, k.timing.activate, k.timing.inactive, k.timing.delete),
        (t("20250101000000"), t("20250102000000"), t("20300101000000"), None)
    );
    assert_eq!(by_stem(&zsk15).timing.delete, t("20300201000000"));
    assert!(by_stem(&ksk13).is_ksk() && !by_stem(&zsk13).is_ksk());
    // BIND's keys sign what hickory-proto verifies.
    for k in &loaded {
        let algorithm = match k.algorithm.number() {
            13 => hickory_proto::dnssec::Algorithm::ECDSAP256SHA256,
            _ => hickory_proto::dnssec::Algorithm::ED25519,
        };
        let public = hickory_proto::dnssec::PublicKeyBuf::new(k.public_key.clone(), algorithm);
        let signature = k.sign(b"signed by a BIND key").unwrap();
        hickory_proto::dnssec::PublicKey::verify(&public, b"signed by a BIND key", &signature).unwrap();
    }
    let ds = lines(&run_ok(BIN, &["ds", "example.test", "--dir", d]));
    let stems = [ksk13.clone(), zsk13, ksk15.clone(), zsk15, later.clone()];
    assert_eq!(ds, dsfromkey(dir.path(), &stems, "SHA-256"));
    assert_eq!(ds.len(), 3);
    let ds384 = lines(&run_ok(BIN, &["ds", "example.test", "--dir", d, "--digest", "4"]));
    assert_eq!(ds384, dsfromkey(dir.path(), &stems, "SHA-384"));
    let (_, _, stderr) = run(&["ds", "example.test", "--dir", d]);
    assert!(stderr.contains(&format!("{gone}.key: left out: deleted since 20200101000000")), "{stderr}");
    assert!(stderr.contains(&format!("{later}.key: not published yet (20370101000000)")), "{stderr}");
    // CDS, as `dnssec-dsfromkey -C` makes it; CDNSKEY, the .key file's DNSKEY under another type.
    use weiche::dnssec::records::DigestType;
    for stem in [&ksk13, &ksk15] {
        let k = by_stem(stem);
        let file = dir.path().join(format!("{stem}.key"));
        let file = file.to_str().unwrap();
        for (digest, name) in [(DigestType::Sha256, "SHA-256"), (DigestType::Sha384, "SHA-384")] {
            assert_eq!(k.cds_text(digest), run_ok("dnssec-dsfromkey", &["-C", "-a", name, file]).trim());
        }
        let dnskey = std::fs::read_to_string(file).unwrap();
        let dnskey = dnskey.lines().find(|l| !l.starts_with(';')).unwrap().replace(' ', "");
        assert_eq!(k.dnskey_text().replace(' ', ""), dnskey);
        assert_eq!(k.cdnskey_text().replace(' ', ""), dnskey.replace("INDNSKEY", "INCDNSKEY"));
    }
}

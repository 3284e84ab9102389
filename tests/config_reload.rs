//! weiche.toml read again while serving (SIGHUP, `weiche reload`): webhooks, the log level,
//! transfer ACLs and keys take effect at once; settings that need a restart are named; a file
//! with an error changes nothing and says why. The real binary, on real sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const BIN: &str = env!("CARGO_BIN_EXE_weiche");

/// A webhook receiver: answers 200 to every request and keeps the bodies.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    fn start(ip: &str) -> Hook {
        let l = TcpListener::bind(format!("{ip}:0")).unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length says.
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            kept.lock().unwrap().push(body.to_string());
                            break;
                        }
                    }
                }
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Hook { url, bodies }
    }

    fn got(&self, what: &str) -> bool {
        self.bodies.lock().unwrap().iter().any(|b| b.contains(what))
    }
}

/// weiche serving `dir/zones` with `dir/weiche.toml`, its log in `dir/weiche.log`.
struct Weiche {
    child: Killed,
    dns: std::net::SocketAddr,
    api: std::net::SocketAddr,
    cfg: PathBuf,
    log: PathBuf,
}

impl Weiche {
    fn start(dir: &Path, ip: &str, config: impl Fn(&str, &str) -> String) -> Weiche {
        let (dns_port, api_port) = two_external_ports(ip);
        let dns: std::net::SocketAddr = format!("{ip}:{dns_port}").parse().unwrap();
        let api: std::net::SocketAddr = format!("{ip}:{api_port}").parse().unwrap();
        let cfg = dir.join("weiche.toml");
        std::fs::write(&cfg, config(&dns.to_string(), &api.to_string())).unwrap();
        let log = dir.join("weiche.log");
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let w = Weiche { child: Killed(child), dns, api, cfg, log };
        let ready = || std::net::TcpStream::connect(w.api).is_ok() && http(w.api, "GET", "/readyz", None).0 == 200;
        wait_for("weiche ready", Duration::from_secs(10), ready, |r| *r);
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn reload(&self) -> (i32, String, String) {
        let out = Command::new(BIN).args(["reload", "--api", &self.api.to_string()]).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

fn zones(dir: &Path, target: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/rl.test.toml"),
        format!(
            "records = \"\"\"\n$TTL 60\n@ SOA ns hm 1 1h 10m 14d 60\n@ NS ns\nns A 192.0.2.53\n\"\"\"\n\
             [pools.www]\ncheck = {{ type = \"tcp\", port = 9, interval = \"1s\" }}\n\
             targets = [{{ address = \"{target}\", priority = 1 }}]\n"
        ),
    )
    .unwrap();
}

fn axfr(addr: std::net::SocketAddr) -> ResponseCode {
    tcp(addr, &query("rl.test.", RecordType::AXFR, None)).metadata.response_code
}

fn send_hup(w: &Weiche) {
    let ok = Command::new("kill").args(["-HUP", &w.child.0.id().to_string()]).status().unwrap();
    assert!(ok.success(), "SIGHUP sent");
}

/// SIGHUP: a webhook added, transfers opened, the log level raised, all at once; the listen
/// address changed too, which is named as waiting for a restart.
#[test]
fn sighup_applies_webhooks_transfer_acls_and_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    zones(dir.path(), "127.0.61.9");
    let hook = Hook::start("127.0.61.2");
    let config = |dns: &str, api: &str, extra: &str, level: &str| {
        format!(
            "[server]\nlisten = [\"{dns}\"]\nzones = \"zones\"\n[api]\nlisten = \"{api}\"\n[log]\nlevel = \"{level}\"\n{extra}"
        )
    };
    let w = Weiche::start(dir.path(), "127.0.61.1", |dns, api| config(dns, api, "", "info"));
    assert_eq!(axfr(w.dns), ResponseCode::Refused, "no [transfer] yet");
    assert!(!w.log().contains("DEBUG"), "info level at start");
    // The file changes: a webhook, transfers for 127.0.0.0/8, debug logs, another port.
    let extra =
        format!("[[notify.webhook]]\nurl = \"{}\"\n[transfer]\nallow = [{{ from = \"127.0.0.0/8\" }}]\n", hook.url);
    let moved = format!("127.0.61.1:{}", external_port("127.0.61.1"));
    std::fs::write(&w.cfg, config(&moved, &w.api.to_string(), &extra, "debug")).unwrap();
    let since = last_event_seq(w.api);
    send_hup(&w);
    let e = wait_for_event(w.api, since, "config reloaded", |e| e["kind"] == "config_reloaded");
    assert_eq!(e["reason"], "applied: notify.webhook, transfer, log.level; at the next restart: listen", "{e}");
    assert!(w.log().contains("configuration changes that take effect at the next restart"), "{}", w.log());
    // Transfers are open now; the old address still serves.
    assert_eq!(axfr(w.dns), ResponseCode::NoError);
    // Debug lines (each probe) appear.
    wait_for("debug lines", Duration::from_secs(5), || w.log().contains("DEBUG"), |d| *d);
    // The new webhook gets the next event.
    let (code, body) = json(w.api, "POST", "/targets/127.0.61.9/drain");
    assert_eq!(code, 200, "{body}");
    wait_for("the drain at the new webhook", Duration::from_secs(5), || hook.got("\"drain\""), |g| *g);
    let st = json(w.api, "GET", "/status").1;
    assert_eq!(st["config"]["last_error"], serde_json::Value::Null, "{st}");
    assert_eq!(st["config"]["file"], w.cfg.display().to_string());
}

/// `weiche reload` with a broken file: exit 1 with the file:line:col, the previous configuration
/// in force (its webhook still called), `/status` and an event say why; fixed, it loads.
#[test]
fn a_broken_config_changes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    zones(dir.path(), "127.0.62.9");
    let (old_hook, new_hook) = (Hook::start("127.0.62.2"), Hook::start("127.0.62.3"));
    let config = |dns: &str, api: &str, hook: &str| {
        format!(
            "[server]\nlisten = [\"{dns}\"]\nzones = \"zones\"\n[api]\nlisten = \"{api}\"\n[[notify.webhook]]\nurl = \"{hook}\"\n"
        )
    };
    let w = Weiche::start(dir.path(), "127.0.62.1", |dns, api| config(dns, api, &old_hook.url));
    let good = std::fs::read_to_string(&w.cfg).unwrap();
    // A typo, and a webhook that would replace the old one.
    let broken =
        good.replace(&old_hook.url, &new_hook.url).replace("zones = \"zones\"", "zones = \"zones\"\nudp_workerz = 2");
    std::fs::write(&w.cfg, &broken).unwrap();
    let (code, out, err) = w.reload();
    assert_eq!(code, 1, "{out}{err}");
    let want = format!("{}:4:1: unknown field `udp_workerz`", w.cfg.display());
    assert!(err.contains(&want), "{err}");
    let st = json(w.api, "GET", "/status").1;
    assert!(st["config"]["last_error"].as_str().is_some_and(|e| e.contains(&want)), "{st}");
    let e = wait_for_event(w.api, 0, "config error", |e| e["kind"] == "config_error");
    assert!(e["message"].as_str().unwrap().contains("the previous configuration stays"), "{e}");
    // The old webhook is still the one called.
    let (code, body) = json(w.api, "POST", "/targets/127.0.62.9/drain");
    assert_eq!(code, 200, "{body}");
    wait_for("the drain at the old webhook", Duration::from_secs(5), || old_hook.got("\"drain\""), |g| *g);
    assert!(!new_hook.got("\"drain\""));
    // Fixed: it loads, and the new webhook takes over.
    std::fs::write(&w.cfg, broken.replace("\nudp_workerz = 2", "")).unwrap();
    let (code, out, err) = w.reload();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied: notify.webhook"), "{out}");
    assert_eq!(json(w.api, "GET", "/status").1["config"]["last_error"], serde_json::Value::Null);
    let (code, body) = json(w.api, "POST", "/targets/127.0.62.9/undrain");
    assert_eq!(code, 200, "{body}");
    wait_for("the undrain at the new webhook", Duration::from_secs(5), || new_hook.got("\"undrain\""), |g| *g);
}

/// `weiche reload` answers for the zones too: a zone file that does not load makes it exit 1
/// naming the file, line and column (the previous version keeps serving); a `zone_file_limit`
/// raised in the same reload applies to the zones read then.
#[test]
fn a_reload_that_leaves_a_zone_unloaded_says_so() {
    let dir = tempfile::tempdir().unwrap();
    zones(dir.path(), "127.0.63.9");
    let config = |dns: &str, api: &str, limit: &str| {
        format!(
            // The zones are looked at only when asked (reload_interval 1h): what loads, loads
            // because of the reload.
            "[server]\nlisten = [\"{dns}\"]\nzones = \"zones\"\nzone_file_limit = \"{limit}\"\nreload_interval = \"1h\"\n[api]\nlisten = \"{api}\"\n"
        )
    };
    let w = Weiche::start(dir.path(), "127.0.63.1", |dns, api| config(dns, api, "1MiB"));
    let (code, out, err) = w.reload();
    assert_eq!((code, out.as_str()), (0, "configuration reloaded; zones looked at\n  no setting changed\n"), "{err}");
    // A broken edit: the reload says which file did not load, and the old version serves on.
    let file = dir.path().join("zones/rl.test.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("ns A 192.0.2.53", "ns A 192.0.2.999")).unwrap();
    let (code, out, err) = w.reload();
    assert_eq!(code, 1, "{out}{err}");
    let want = format!("{}:5:", file.display());
    assert!(err.contains("1 zone file(s) not loaded") && err.contains(&want), "{err}");
    let (code, body) = json(w.api, "POST", "/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body["zone_errors"][0].as_str().is_some_and(|e| e.starts_with(&want)), "{body}");
    assert_eq!(udp(w.dns, &query("rl.test.", RecordType::SOA, None)).metadata.response_code, ResponseCode::NoError);
    // A zone over the limit, and the limit raised in the same reload: the zone loads.
    std::fs::write(&file, format!("{good}\n# {}\n", "x".repeat(4000))).unwrap();
    std::fs::write(&w.cfg, config(&w.dns.to_string(), &w.api.to_string(), "2KiB")).unwrap();
    let (code, out, err) = w.reload();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("over the limit of 2048"), "{err}");
    std::fs::write(&w.cfg, config(&w.dns.to_string(), &w.api.to_string(), "8KiB")).unwrap();
    let (code, out, err) = w.reload();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied: zone_file_limit"), "{out}");
}

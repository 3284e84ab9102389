//! Operating weiche over its HTTP API against a running server: status, metrics, drain and
//! undrain (persisted across restarts), manual failback, events, health and readiness, tokens.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn status_health_readiness_and_metrics() {
    let (p, sec) = ("127.0.0.101", "127.0.0.102");
    let (port, _a, _b) = backend_pair(p, sec);
    let s = Server::start("127.0.0.100", &[("ops.test.toml", &two_site_pool(port, p, sec, "auto"))]);
    assert_eq!(http(s.api, "GET", "/healthz", None), (200, "ok\n".into()));
    assert_eq!(http(s.api, "GET", "/readyz", None).0, 200);
    let (code, st) = json(s.api, "GET", "/status");
    assert_eq!(code, 200);
    assert_eq!(st["zones"][0]["zone"], "ops.test.");
    assert_eq!(st["zones"][0]["serial"], 1);
    let pool = &st["pools"][0];
    assert_eq!(pool["pool"], "www.ops.test.");
    assert_eq!(pool["a"]["answer"], serde_json::json!([p]));
    assert_eq!(pool["a"]["priority"], 1);
    assert_eq!(pool["targets"][0]["verdict"], "up");
    assert_eq!(pool["targets"][0]["last_probe"]["ok"], true);
    assert!(pool["targets"][0]["since"].as_str().unwrap().ends_with('Z'));
    assert!(st["events"].as_array().unwrap().iter().any(|e| e["kind"] == "zone_loaded"));
    // Prometheus text: every sample line is NAME{labels} VALUE, and the per-target gauges are there.
    answer(&s, "www.ops.test.");
    let (code, text) = http(s.api, "GET", "/metrics", None);
    assert_eq!(code, 200);
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let metric = name.split('{').next().unwrap();
        assert!(metric.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name in {line:?}");
    }
    let target_up = format!("weiche_target_up{{zone=\"ops.test.\",pool=\"www.ops.test.\",target=\"{p}\"}} 1");
    assert!(text.contains(&target_up), "no {target_up} in\n{text}");
    assert!(text.contains("weiche_pool_priority{zone=\"ops.test.\",pool=\"www.ops.test.\",type=\"A\"} 1"), "{text}");
    assert!(text.contains("weiche_zone_serial{zone=\"ops.test.\"} 1"), "{text}");
    assert!(text.contains("weiche_probes_total{"), "{text}");
    assert!(text.contains("weiche_queries_total{transport=\"udp\",qtype=\"A\"}"), "{text}");
    assert!(text.contains("weiche_responses_total{transport=\"udp\",rcode=\"NOERROR\"}"), "{text}");
}

#[test]
fn drain_flips_the_answer_and_survives_a_restart() {
    let (p, sec) = ("127.0.0.111", "127.0.0.112");
    let (port, _a, _b) = backend_pair(p, sec);
    let state = tempfile::tempdir().unwrap();
    let zones = [("dr.test.toml", two_site_pool(port, p, sec, "auto"))];
    let zones: Vec<(&str, &str)> = zones.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let with_state = |c: &mut weiche::Config| c.state_dir = Some(state.path().to_path_buf());
    let s = Server::start_with("127.0.0.110", &zones, with_state);
    assert_eq!(answer(&s, "www.dr.test."), vec![ip(p)]);
    // Drain the primary while its probes still succeed: the answer moves within 1 s.
    let t = Instant::now();
    let (code, body) = json(s.api, "POST", &format!("/targets/{p}/drain"));
    assert_eq!((code, &body["drained"]), (200, &serde_json::json!(true)), "{body}");
    wait_for_answer(&s, "www.dr.test.", &[sec], Duration::from_secs(1));
    assert!(t.elapsed() < Duration::from_secs(1));
    let (_, st) = json(s.api, "GET", "/status");
    assert_eq!(st["pools"][0]["targets"][0]["verdict"], "up", "probes still succeed");
    assert_eq!(st["pools"][0]["targets"][0]["drained"], true);
    // Errors say what is wrong.
    assert_eq!(json(s.api, "POST", "/targets/192.0.2.77/drain").0, 404);
    assert_eq!(json(s.api, "POST", "/targets/banana/drain").0, 400);
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain?pool=nope.dr.test")).0, 404);
    // The drain survives a restart (state file), then undrain restores the primary.
    drop(s);
    let s = Server::start_with("127.0.0.110", &zones, with_state);
    assert_eq!(answer(&s, "www.dr.test."), vec![ip(sec)], "still drained after restart");
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/undrain")).0, 200);
    assert_eq!(answer(&s, "www.dr.test."), vec![ip(p)]);
    // Events record both.
    let (_, events) = json(s.api, "GET", "/events?since=0");
    assert!(events.as_array().unwrap().iter().any(|e| e["kind"] == "undrain" && e["target"] == p), "{events}");
    // A drain for one pool only.
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain?pool=www.dr.test")).0, 200);
    assert_eq!(answer(&s, "www.dr.test."), vec![ip(sec)]);
}

#[test]
fn a_corrupt_state_file_is_set_aside() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join(weiche::publish::admin::STATE_FILE), "{ broken").unwrap();
    let zone_text = zone("");
    let s = Server::start_with("127.0.0.120", &[("cs.test.toml", &zone_text)], |c| {
        c.state_dir = Some(state.path().to_path_buf())
    });
    assert_eq!(http(s.api, "GET", "/readyz", None).0, 200);
    let names: Vec<String> =
        std::fs::read_dir(state.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(names.iter().any(|n| n.contains("corrupt")), "{names:?}");
}

#[test]
fn failback_endpoint_and_long_poll_events() {
    let (p, sec) = ("127.0.0.131", "127.0.0.132");
    let (port, mut primary, _b) = backend_pair(p, sec);
    let s = Server::start("127.0.0.130", &[("fb.test.toml", &two_site_pool(port, p, sec, "manual"))]);
    let (_, before) = json(s.api, "GET", "/events?since=0");
    let last = before.as_array().unwrap().last().map_or(0, |e| e["seq"].as_u64().unwrap());
    // A long poll returns as soon as the next event happens. The request is sent before the
    // backend goes; its event comes only after `fall` failed probes, which the server waits for.
    let poll = http_send(s.api, "GET", &format!("/events?since={last}&wait=10"), None);
    let waiter = std::thread::spawn(move || http_read(poll));
    primary.down();
    let (code, got) = waiter.join().unwrap();
    assert_eq!(code, 200);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got[0]["kind"], "target_down", "{got}");
    wait_for_answer(&s, "www.fb.test.", &[sec], Duration::from_secs(3));
    // Back and healthy past `rise` (up, then two more good probes): still held.
    primary.up();
    wait_for_target(s.api, "www.fb.test.", p, "up, 4 good probes in a row", |t| settled(t, "up", true, 4));
    assert_eq!(answer(&s, "www.fb.test."), vec![ip(sec)], "held by manual failback");
    assert_eq!(json(s.api, "POST", "/pools/www.fb.test/failback").0, 200);
    assert_eq!(answer(&s, "www.fb.test."), vec![ip(p)]);
    assert_eq!(json(s.api, "POST", "/pools/www.fb.test/failback").0, 409, "released: nothing is held now");
    assert_eq!(json(s.api, "POST", "/pools/nope.fb.test/failback").0, 404);
}

#[test]
fn a_token_guards_everything_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token-0123456789\n").unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, format!("[api]\nlisten = \"127.0.0.140:8053\"\ntoken_file = \"{}\"\n", token_file.display()))
        .unwrap();
    let loaded = weiche::Config::load(Some(&cfg)).unwrap();
    let token = loaded.api_token.clone();
    assert_eq!(token.as_deref(), Some("s3cret-token-0123456789"));
    let zone_text = zone("");
    let s = Server::start_with("127.0.0.140", &[("tk.test.toml", &zone_text)], |c| c.api_token = token);
    assert_eq!(http(s.api, "GET", "/healthz", None).0, 200);
    assert_eq!(http(s.api, "GET", "/status", None).0, 401);
    assert_eq!(http(s.api, "GET", "/status", Some("wrong-token-0123456789")).0, 401);
    assert_eq!(http(s.api, "GET", "/status", Some("s3cret-token-0123456789")).0, 200);
    // Beyond loopback without a token is a configuration error.
    std::fs::write(&cfg, "[api]\nlisten = \"0.0.0.0:8053\"\n").unwrap();
    let e = weiche::Config::load(Some(&cfg)).unwrap_err().to_string();
    assert!(e.contains("beyond loopback: set api.token_file"), "{e}");
}

/// A webhook receiver: records each POST body, answers with `status`.
struct Receiver {
    addr: std::net::SocketAddr,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    fn start(ip: &str, status: u16) -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
        let addr = l.local_addr().unwrap();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = bodies.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                if let Ok(v) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push(v);
                }
                let _ = write!(c, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Receiver { addr, bodies }
    }

    fn got(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn webhooks_and_commands_get_one_notification_per_event() {
    let (p, sec) = ("127.0.0.151", "127.0.0.152");
    let (port, _a, _b) = backend_pair(p, sec);
    let json_hook = Receiver::start("127.0.0.153", 200);
    let slack_hook = Receiver::start("127.0.0.154", 200);
    let failing = Receiver::start("127.0.0.155", 500);
    // Held, not listening, for the test's length: connections to it are refused.
    let dead = Ports::reserve(&["127.0.0.156"]);
    let dead_port = dead.port;
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("events.jsonl");
    let cmd = vec!["sh".to_string(), "-c".to_string(), format!("cat >> {}", log.display())];
    let hook = |url: String, format, retries| weiche::config::Webhook {
        url,
        format,
        timeout: Duration::from_millis(300),
        retries,
    };
    let s = Server::start_with("127.0.0.150", &[("nt.test.toml", &two_site_pool(port, p, sec, "auto"))], |c| {
        use weiche::config::WebhookFormat::*;
        c.webhooks = vec![
            hook(format!("http://{}/hook", json_hook.addr), Json, 0),
            hook(format!("http://{}/hook", slack_hook.addr), Slack, 0),
            hook(format!("http://{}/hook", failing.addr), Json, 2),
            hook(format!("http://127.0.0.156:{dead_port}/hook"), Json, 3),
        ];
        c.commands = vec![weiche::config::NotifyCommand { argv: cmd.clone(), timeout: Duration::from_secs(5) }];
    });
    // A drain: the answer moves at once, however badly the webhooks do.
    let t = Instant::now();
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain")).0, 200);
    assert_eq!(answer(&s, "www.nt.test."), vec![ip(sec)]);
    assert!(t.elapsed() < Duration::from_millis(500), "switch took {:?}", t.elapsed());
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/undrain")).0, 200);
    assert_eq!(answer(&s, "www.nt.test."), vec![ip(p)]);
    // drain, failover, undrain, failback: four events, one POST each. Each receiver's worker
    // sends in order, so once a later event (a drain of the secondary, which answers nothing
    // now) has arrived, any repeat of the four would have too.
    wait_for("four POSTs", Duration::from_secs(5), || json_hook.got().len(), |n| *n >= 4);
    assert_eq!(json(s.api, "POST", &format!("/targets/{sec}/drain")).0, 200);
    let kind_of = |e: &serde_json::Value| e["kind"].as_str().unwrap_or_default().to_string();
    let got = wait_for(
        "the POST of the second drain",
        Duration::from_secs(5),
        || json_hook.got(),
        |got| got.last().is_some_and(|e| e["kind"] == "drain" && e["target"] == sec),
    );
    let kinds: Vec<String> = got.iter().map(kind_of).collect();
    assert_eq!(kinds, ["drain", "failover", "undrain", "failback", "drain"], "{got:?}");
    let mut seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 5, "exactly one POST per event");
    let failover = &got[1];
    assert_eq!(
        (&failover["pool"], &failover["type"], &failover["from"], &failover["to"]),
        (&"www.nt.test.".into(), &"A".into(), &p.into(), &sec.into())
    );
    assert!(failover["message"].as_str().unwrap().contains("failed over"), "{failover}");
    assert!(failover["time"].is_string() && failover["reason"].is_string());
    // Slack format: one text per event.
    wait_for("five Slack POSTs", Duration::from_secs(3), || slack_hook.got().len(), |n| *n == 5);
    assert!(
        slack_hook.got()[1]["text"].as_str().unwrap().starts_with("weiche: www.nt.test. A failed over"),
        "{:?}",
        slack_hook.got()
    );
    // A failing receiver is retried (2 retries: 3 tries per event), then given up: the first
    // event's three tries come before the second event's first.
    let tried = wait_for("six tries of the failing hook", Duration::from_secs(10), || failing.got(), |g| g.len() >= 6);
    let kinds: Vec<String> = tried.iter().take(4).map(kind_of).collect();
    assert_eq!(kinds, ["drain", "drain", "drain", "failover"], "{tried:?}");
    // The command got each event as JSON on stdin.
    wait_for(
        "five lines from the command",
        Duration::from_secs(3),
        || std::fs::read_to_string(&log).unwrap_or_default(),
        |t| t.lines().count() == 5,
    );
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "drain");
}

#[test]
fn the_checkmk_local_check_reports_each_pool() {
    let (p, sec) = ("127.0.0.161", "127.0.0.162");
    let (port, _a, _b) = backend_pair(p, sec);
    let s = Server::start("127.0.0.160", &[("cmk.test.toml", &two_site_pool(port, p, sec, "auto"))]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/checkmk/weiche");
    let run = || {
        let out =
            std::process::Command::new("python3").arg(&script).env("WEICHE_API", s.api.to_string()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = run();
    assert!(
        text.lines().any(|l| l.starts_with("0 \"weiche pool www.cmk.test.\" targets_up=2;;;0;2 A 127.0.0.161")),
        "{text}"
    );
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain")).0, 200);
    let text = run();
    assert!(
        text.lines().any(|l| l.starts_with("1 \"weiche pool www.cmk.test.\"") && l.contains("drained: 127.0.0.161")),
        "{text}"
    );
}

/// Issue 13, "every operator answer is true": an undrain without `--pool` puts the target back
/// in every pool, its per-pool drains included; an undrain in one pool of a target drained
/// everywhere cannot take effect, so it is refused (409) and changes nothing.
#[test]
fn an_undrain_answers_what_it_did() {
    let (p, sec) = ("127.0.0.194", "127.0.0.195");
    let (port, _a, _b) = backend_pair(p, sec);
    let s = Server::start("127.0.0.193", &[("ud.test.toml", &two_site_pool(port, p, sec, "auto"))]);
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain?pool=www.ud.test")).0, 200);
    assert_eq!(answer(&s, "www.ud.test."), vec![ip(sec)]);
    let (code, body) = json(s.api, "POST", &format!("/targets/{p}/undrain"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(answer(&s, "www.ud.test."), vec![ip(p)], "undrained everywhere: the per-pool drain too");
    assert_eq!(json(s.api, "GET", "/status").1["drained"], serde_json::json!([]));
    let since = last_event_seq(s.api);
    // Drained everywhere: undraining one pool is refused, with a message, and changes nothing;
    // so it is with a drain of that pool as well.
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain")).0, 200);
    for _ in 0..2 {
        let (code, body) = json(s.api, "POST", &format!("/targets/{p}/undrain?pool=www.ud.test"));
        assert_eq!(code, 409, "{body}");
        assert!(body["error"].as_str().unwrap().contains("drained in every pool; undrain it without --pool"), "{body}");
        assert_eq!(answer(&s, "www.ud.test."), vec![ip(sec)], "still drained");
        assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain?pool=www.ud.test")).0, 200);
    }
    let (_, events) = json(s.api, "GET", &format!("/events?since={since}"));
    assert!(!events.as_array().unwrap().iter().any(|e| e["kind"] == "undrain"), "a refusal is no event: {events}");
}

/// The metric line `weiche_state_persisted{file="FILE"} VALUE`, if there is one.
fn persisted_metric(api: std::net::SocketAddr, file: &std::path::Path) -> Option<String> {
    let (_, text) = http(api, "GET", "/metrics", None);
    let head = format!("weiche_state_persisted{{file=\"{}\"}} ", file.display());
    text.lines().find_map(|l| l.strip_prefix(&head).map(String::from))
}

/// A drain or a failback release whose state file cannot be written (here: a directory stands
/// where the file goes, which stops root too) is served at once, but answered with a 500 that
/// says it holds until restart only; `/status` and a metric say so until a write succeeds.
#[test]
fn a_change_that_cannot_be_written_says_so() {
    let (p, sec) = ("127.0.0.197", "127.0.0.198");
    let (port, _a, _b) = backend_pair(p, sec);
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join(weiche::publish::admin::STATE_FILE);
    let s = Server::start_with("127.0.0.196", &[("np.test.toml", &two_site_pool(port, p, sec, "auto"))], |c| {
        c.state_dir = Some(state.path().to_path_buf())
    });
    let (_, st) = json(s.api, "GET", "/status");
    assert_eq!(st["state"]["persisted"], true, "{}", st["state"]);
    assert_eq!(st["state"]["file"], file.display().to_string());
    assert_eq!(persisted_metric(s.api, &file).as_deref(), Some("1"));
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("in-the-way"), "").unwrap();
    let (code, body) = json(s.api, "POST", &format!("/targets/{p}/drain"));
    assert_eq!(code, 500, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains(&format!("{p} drained")) && msg.contains("until weiche restarts"), "{msg}");
    assert_eq!(answer(&s, "www.np.test."), vec![ip(sec)], "served all the same");
    let (_, st) = json(s.api, "GET", "/status");
    assert_eq!(st["state"]["persisted"], false, "{}", st["state"]);
    assert!(st["state"]["error"].as_str().unwrap().contains("cannot write the state file"), "{}", st["state"]);
    assert_eq!(persisted_metric(s.api, &file).as_deref(), Some("0"));
    // Asked again, the answer is the same: nothing of it is on disk yet.
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain")).0, 500);
    // Once the file can be written again, the next action writes everything.
    std::fs::remove_dir_all(&file).unwrap();
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain")).0, 200);
    assert_eq!(json(s.api, "GET", "/status").1["state"]["persisted"], true);
    assert_eq!(persisted_metric(s.api, &file).as_deref(), Some("1"));
    let on_disk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_disk["drained"][0]["address"], p, "{on_disk}");
}

/// A failback release with nothing to release is refused (409) and is no event: a pool that
/// fails back by itself, and a manual one that holds nothing.
#[test]
fn a_failback_with_nothing_to_release_is_refused() {
    let (p, sec) = ("127.0.0.204", "127.0.0.205");
    let (port, _a, _b) = backend_pair(p, sec);
    let zones = format!(
        "{}[pools.db]\nfailback = \"manual\"\ncheck = {{ type = \"tcp\", port = {port}, interval = \"250ms\", timeout = \"200ms\" }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n",
        two_site_pool(port, p, sec, "auto")
    );
    let s = Server::start("127.0.0.203", &[("nf.test.toml", &zones)]);
    let since = last_event_seq(s.api);
    let (code, body) = json(s.api, "POST", "/pools/www.nf.test/failback");
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("fails back by itself"), "{body}");
    let (code, body) = json(s.api, "POST", "/pools/db.nf.test/failback");
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("holds nothing"), "{body}");
    let (_, events) = json(s.api, "GET", &format!("/events?since={since}"));
    assert_eq!(events, serde_json::json!([]), "no event for what did not happen");
}

/// Serials never go backwards across a restart, even when the state file could not be written
/// for a while: two zone edits the file never saw, a stop, the disk fixed, a start.
#[test]
fn serials_move_forward_after_writes_were_lost() {
    let state = tempfile::tempdir().unwrap();
    let blocker = state.path().join(format!("{}.tmp", weiche::publish::admin::STATE_FILE));
    let records = |extra: &str| {
        format!(
            "records = \"\"\"\n$TTL 3600\n@ SOA ns1 hm 1 1h 10m 14d 600\n@ NS ns1\nns1 A 127.0.0.53\n{extra}\"\"\"\n"
        )
    };
    let with_state = |c: &mut weiche::Config| c.state_dir = Some(state.path().to_path_buf());
    let serial = |s: &Server| json(s.api, "GET", "/status").1["zones"][0]["serial"].as_u64().unwrap();
    let s = Server::start_with("127.0.0.199", &[("sr.test.toml", &records(""))], with_state);
    assert_eq!(serial(&s), 1);
    // The startup write has landed (serial 1 is on disk) ...
    let saved = state.path().join(weiche::publish::admin::STATE_FILE);
    wait_for("the startup state write", Duration::from_secs(5), || saved.exists(), |e| *e);
    // ... and writes fail from now on: a directory stands where the temporary file is written.
    // A later write may still hold that name for a moment (written, not yet renamed).
    wait_for(
        "the temporary name to be free",
        Duration::from_secs(5),
        || std::fs::create_dir(&blocker).map_err(|e| e.kind()),
        |r| *r != Err(std::io::ErrorKind::AlreadyExists),
    )
    .unwrap();
    let file = s.zone_path("sr.test.toml");
    write_atomically(&file, &records("a A 192.0.2.1\n"));
    wait_for("serial 2", Duration::from_secs(5), || serial(&s), |n| *n == 2);
    write_atomically(&file, &records("a A 192.0.2.1\nb A 192.0.2.2\n"));
    wait_for("serial 3", Duration::from_secs(5), || serial(&s), |n| *n == 3);
    assert_eq!(json(s.api, "GET", "/status").1["state"]["persisted"], false);
    let text = std::fs::read_to_string(&file).unwrap();
    drop(s);
    // The disk is fixed while weiche is down; it starts again with the same zone.
    std::fs::remove_dir(&blocker).unwrap();
    let s = Server::start_with("127.0.0.199", &[("sr.test.toml", &text)], with_state);
    let after = serial(&s) as u32;
    assert!(weiche::model::history::serial_gt(after, 3), "served 3 before the restart, {after} after");
    // A clean stop and start with the same content keeps the serial.
    drop(s);
    let s = Server::start_with("127.0.0.199", &[("sr.test.toml", &text)], with_state);
    assert_eq!(serial(&s) as u32, after);
}

/// The API beyond loopback needs a token however it is asked for (the file, `--api`, or a
/// program embedding weiche): serving refuses to start without one.
#[test]
fn the_api_beyond_loopback_needs_a_token_however_it_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = weiche::Config::load(None).unwrap();
    config.zones_dir = dir.path().to_path_buf();
    let sockets = weiche::Sockets::bind(&["127.0.0.206:0".parse().unwrap()])
        .unwrap()
        .with_api("0.0.0.0:0".parse().unwrap())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let served = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), weiche::run(config, sockets, std::future::pending())).await
    });
    let e = served.expect("refused at once, not served").unwrap_err().to_string();
    assert!(e.contains("beyond loopback") && e.contains("token"), "{e}");
}

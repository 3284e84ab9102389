//! The status page in a real browser: Debian's chromium, driven by chromedriver over the
//! WebDriver protocol (JSON over HTTP, spoken here on a plain socket), against weiche with real
//! backends. The page follows a failover without a reload, its buttons drain, undrain and fail
//! back through the API, it draws the journal's history, it loads nothing from beyond loopback,
//! and it logs no error. Screenshots at 1280×800 and 390×844 go to `target/page-artifacts/`.
//!
//! Without chromium and chromedriver these tests say they skipped (see `common::skip`); with
//! WEICHE_REQUIRE_INTEROP=1 (set by .ci/run) they fail instead.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::{Value, json};
use weiche::ops::events::{Event, EventKind};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, and one chromium session it drives.
struct Browser {
    driver: Killed,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

/// One WebDriver call: (HTTP status, the answer's `value`).
fn webdriver(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("chromedriver is listening");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (code, text) = read_response(&mut s);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    (code, v["value"].clone())
}

/// Reads one HTTP response: chromedriver keeps the connection open, so the body is read by its
/// Content-Length.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    use std::io::{BufRead, Read};
    let mut r = std::io::BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (code, String::from_utf8_lossy(&body).into())
}

impl Browser {
    /// chromium headless in a window of 1280×800, or None (after saying so) when chromium or
    /// chromedriver is missing.
    fn start() -> Option<Browser> {
        let hint = "apt-get install chromium chromium-driver";
        if !have_tool("chromium", hint) || !have_tool("chromedriver", hint) {
            return None;
        }
        let port = external_port("127.0.0.1");
        // In a process group of its own, with the browsers it starts: a test that fails leaves
        // none of them behind (see Drop).
        let driver = Killed(
            std::process::Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for("chromedriver to listen", Duration::from_secs(10), || TcpStream::connect(addr).is_ok(), |up| *up);
        let profile = tempfile::tempdir().unwrap();
        // Nothing may leave loopback: a proxy that goes nowhere for everything else, no name
        // resolution, and none of chromium's own background traffic.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-breakpad",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--metrics-recording-only",
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.0/8",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*",
            "--window-size=1280,800",
            "--lang=en-US",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args, "perfLoggingPrefs": {"enableNetwork": true}},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let (code, v) = webdriver(addr, "POST", "/session", Some(&caps));
        assert_eq!(code, 200, "a chromium session: {v}");
        let session = v["sessionId"].as_str().unwrap().to_string();
        Some(Browser { driver, addr, session, _profile: profile })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = webdriver(self.addr, method, &format!("/session/{}{path}", self.session), body.as_ref());
        assert_eq!(code, 200, "{method} {path}: {v}");
        v
    }

    /// The viewport at `width`×`height` CSS pixels, as a phone or a desktop shows it.
    fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
        let params = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile});
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params})),
        );
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn run(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Clicks what `css` selects as a user would (WebDriver's element click), trying again while
    /// the page redraws it under the pointer.
    fn click(&self, css: &str) {
        for _ in 0..20 {
            let (code, v) = webdriver(
                self.addr,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({"using": "css selector", "value": css})),
            );
            if code == 200 {
                let id = v[ELEMENT].as_str().unwrap().to_string();
                let (code, _) = webdriver(
                    self.addr,
                    "POST",
                    &format!("/session/{}/element/{id}/click", self.session),
                    Some(&json!({})),
                );
                if code == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not click {css}");
    }

    fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", None);
        let bytes = data_encoding::BASE64.decode(png.as_str().unwrap().as_bytes()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The log of `kind` (browser, performance) since it was last read.
    fn log(&self, kind: &str) -> Vec<Value> {
        self.call("POST", "/se/log", Some(json!({ "type": kind }))).as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closed cleanly if chromedriver still answers; then whatever is left of the group goes.
        if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let path = format!("/session/{}", self.session);
            if write!(s, "DELETE {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n", self.addr).is_ok() {
                let mut head = [0u8; 64];
                let _ = std::io::Read::read(&mut s, &mut head);
            }
        }
        // SAFETY: kill(2) on the process group of the chromedriver this test started.
        unsafe { libc::kill(-(self.driver.0.id() as i32), libc::SIGKILL) };
    }
}

/// Where screenshots go: `target/page-artifacts/`, beside the test binaries.
fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("page-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the page shows of `pool`: its state, its A answer, its badges' words, and whether the
/// page is the one first loaded (a reload would have lost the mark).
fn shown(b: &Browser, pool: &str) -> Value {
    b.run(&format!(
        r#"const el = document.querySelector('[data-pool="{pool}"]');
        if (!el) return null;
        const a = el.querySelector('[data-family="A"] .answer-addrs');
        return {{ state: el.dataset.state, answer: a ? a.textContent : null,
          badges: [...el.querySelectorAll('.pool-head .badge')].map((b) => b.textContent),
          outages: [...el.querySelectorAll('.outages li')].map((li) => li.textContent),
          failback: !!el.querySelector('button[data-action="failback"]'),
          same_page: window.weicheTestMark === 1 }};"#
    ))
}

/// A 1-second failover window, in the past: what the journal kept of an outage 40 minutes ago
/// that lasted 6 minutes, before this run started.
fn seed_journal(state: &Path, zone: &str, pool: &str, p: &str, sec: &str, port: u16) {
    let now = SystemTime::now();
    let ago = |min: u64| humantime::format_rfc3339_millis(now - Duration::from_secs(min * 60)).to_string();
    let base = |seq, min, kind, reason: &str, message: &str| Event {
        seq,
        time: ago(min),
        zone: Some(zone.into()),
        pool: Some(pool.into()),
        message: message.into(),
        ..Event::new(kind, reason)
    };
    let target = |seq, min, kind, from: &str, to: &str, target: &str| Event {
        target: Some(format!("{target}:{port}")),
        check: Some("www (inline)".into()),
        from: Some(from.into()),
        to: Some(to.into()),
        count: Some(2),
        ..base(seq, min, kind, "seeded", &format!("{pool}: target {target} is {to}"))
    };
    let answer = |seq, min, kind, from: &str, to: &str, prio| Event {
        rtype: Some("A".into()),
        from: Some(from.into()),
        to: Some(to.into()),
        priority: Some(prio),
        ..base(seq, min, kind, "seeded", &format!("{pool} A moved from {from} to {to}"))
    };
    let events = [
        Event {
            zone: None,
            pool: None,
            ..base(1, 55, EventKind::Started, "version 0.0.9", "weiche started (version 0.0.9)")
        },
        target(2, 40, EventKind::TargetDown, "up", "down", p),
        answer(3, 40, EventKind::Failover, p, sec, 2),
        target(4, 34, EventKind::TargetUp, "down", "up", p),
        answer(5, 34, EventKind::Failback, sec, p, 1),
        Event { zone: None, pool: None, ..base(6, 30, EventKind::Stopped, "shut down", "weiche stopped (shut down)") },
    ];
    let dir = state.join(weiche::ops::journal::DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
    std::fs::write(dir.join("events-00000001.jsonl"), text).unwrap();
}

/// Every request the browser made went to `api`, or stayed inside the browser.
fn assert_only_loopback(b: &Browser, api: SocketAddr) {
    let mut urls = Vec::new();
    for entry in b.log("performance") {
        let m: Value = serde_json::from_str(entry["message"].as_str().unwrap_or("{}")).unwrap_or_default();
        if m["message"]["method"] == "Network.requestWillBeSent" {
            urls.push(m["message"]["params"]["request"]["url"].as_str().unwrap_or("").to_string());
        }
    }
    assert!(!urls.is_empty(), "the performance log shows the page's requests");
    let mine = format!("http://{api}/");
    for u in &urls {
        // The browser's own pages (its first blank tab) never touch the network.
        let internal = ["data:", "about:", "chrome:", "blob:"].iter().any(|s| u.starts_with(s));
        assert!(u.starts_with(&mine) || internal, "a request beyond weiche: {u}");
    }
    assert!(urls.iter().any(|u| u.starts_with(&mine)), "{urls:?}");
}

/// Error-level entries of the browser's console.
fn console_errors(b: &Browser) -> Vec<String> {
    b.log("browser")
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The page against weiche with two real backends: it draws the journal's history, its buttons
/// drain, undrain and fail back through the API (the DNS answer moves), and a killed primary
/// shows as a failover within a second of weiche answering it, without a reload.
#[test]
fn the_page_follows_failover_and_acts_through_the_api() {
    let Some(b) = Browser::start() else { return };
    let (p, sec) = ("127.0.17.11", "127.0.17.12");
    let (port, mut primary, _secondary) = backend_pair(p, sec);
    let state = tempfile::tempdir().unwrap();
    seed_journal(state.path(), "pg.test.", "www.pg.test.", p, sec, port);
    let db = format!(
        "[pools.db]\nfailback = \"manual\"\ncheck = {{ type = \"tcp\", port = {port}, interval = \"250ms\", timeout = \"200ms\", fall = 2, rise = 2 }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    );
    let zone = two_site_pool(port, p, sec, "auto") + &db;
    let s = Server::start_with("127.0.17.10", &[("pg.test.toml", &zone)], |c| {
        c.state_dir = Some(state.path().to_path_buf())
    });
    let (www, dbp) = ("www.pg.test.", "db.pg.test.");
    b.viewport(1280, 800, false);
    b.goto(&format!("http://{}/", s.api));
    let first = wait_for(
        "the page to show www",
        Duration::from_secs(10),
        || shown(&b, www),
        |v| v["state"] == "preferred" && v["answer"] == p,
    );
    b.run("window.weicheTestMark = 1;");
    assert_eq!(b.run("return document.querySelector('#cluster').hidden"), true, "no cluster, no section");
    // The journal's outage of 40 minutes ago, 6 minutes long, is drawn and told.
    let outages = first["outages"].to_string();
    assert!(outages.contains(&format!("A fallback ({sec})")) && outages.contains("for 6 min 0 s"), "{outages}");
    let seeded = b.run("return document.querySelectorAll('[data-pool=\"www.pg.test.\"] .move-failover').length");
    assert_eq!(seeded, 1, "the seeded failover is marked on the timeline");

    // Drain the primary from the page: a dialog asks, and the answer moves.
    b.click(&format!("[data-pool=\"{www}\"] tr[data-target=\"{p}\"] button[data-action=\"drain\"]"));
    assert_eq!(b.run("return document.querySelector('#confirm').open"), true, "a dialog asks first");
    assert_eq!(answer(&s, "www.pg.test."), vec![ip(p)], "nothing happens before the answer");
    b.click("#confirm-yes");
    wait_for_answer(&s, "www.pg.test.", &[sec], Duration::from_secs(5));
    wait_for(
        "the page to show the drain",
        Duration::from_secs(3),
        || shown(&b, www),
        |v| v["answer"] == sec && v["badges"].to_string().contains(&format!("drained: {p}")),
    );
    b.click(&format!("[data-pool=\"{www}\"] tr[data-target=\"{p}\"] button[data-action=\"undrain\"]"));
    b.click("#confirm-yes");
    wait_for_answer(&s, "www.pg.test.", &[p], Duration::from_secs(5));
    wait_for("the page to show the undrain", Duration::from_secs(3), || shown(&b, www), |v| v["answer"] == p);

    // Kill the primary: within a second of weiche answering the secondary, the page shows it.
    primary.down();
    let start = Instant::now();
    let (mut dns_moved, mut page_moved) = (None, None);
    while (dns_moved.is_none() || page_moved.is_none()) && start.elapsed() < Duration::from_secs(8) {
        if dns_moved.is_none() && answer(&s, "www.pg.test.") == vec![ip(sec)] {
            dns_moved = Some(start.elapsed());
        }
        let v = shown(&b, www);
        if page_moved.is_none() && v["state"] == "fallback" && v["answer"] == sec {
            page_moved = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (dns_moved, page_moved) = (dns_moved.expect("DNS moved"), page_moved.expect("the page showed the failover"));
    eprintln!("failover: DNS after {dns_moved:?}, the page after {page_moved:?}");
    assert!(page_moved <= dns_moved + Duration::from_secs(1), "DNS {dns_moved:?}, page {page_moved:?}");
    assert_eq!(shown(&b, www)["same_page"], true, "no reload");
    let feed = b.run("return [...document.querySelectorAll('#feed .feed-item')].map((li) => li.dataset.kind)");
    assert!(feed.to_string().contains("\"failover\""), "{feed}");

    // The manual pool holds on the secondary after the primary is back; the page fails it back.
    wait_for_answer(&s, "db.pg.test.", &[sec], Duration::from_secs(5));
    primary.up();
    wait_for_answer(&s, "www.pg.test.", &[p], Duration::from_secs(5));
    wait_for(
        "the page to offer a failback",
        Duration::from_secs(3),
        || shown(&b, dbp),
        |v| v["failback"] == true && v["badges"].to_string().contains("held"),
    );
    assert_eq!(answer(&s, "db.pg.test."), vec![ip(sec)], "held");
    b.click(&format!("[data-pool=\"{dbp}\"] button[data-action=\"failback\"]"));
    b.click("#confirm-yes");
    wait_for_answer(&s, "db.pg.test.", &[p], Duration::from_secs(5));
    wait_for(
        "the page to show it back",
        Duration::from_secs(3),
        || shown(&b, dbp),
        |v| v["state"] == "preferred" && v["failback"] == false,
    );

    // Screenshots, wide and narrow, with the history of the last minutes on the timelines.
    primary.down();
    wait_for("the failover again", Duration::from_secs(5), || shown(&b, www), |v| v["state"] == "fallback");
    let dir = artifacts();
    b.screenshot(&dir.join("page-1280x800.png"));
    b.viewport(390, 844, true);
    wait_for(
        "the narrow layout",
        Duration::from_secs(3),
        || b.run("return document.documentElement.clientWidth"),
        |w| *w == 390,
    );
    // The page redraws on resize; give it the resize's redraw before the picture.
    wait_for(
        "a redraw at 390",
        Duration::from_secs(8),
        || b.run("return document.querySelector('.timeline').getAttribute('width')"),
        |w| w.as_str().is_some_and(|w| w.parse::<u32>().unwrap_or(9999) < 390),
    );
    b.screenshot(&dir.join("page-390x844.png"));
    assert_eq!(shown(&b, www)["same_page"], true, "no reload");

    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_only_loopback(&b, s.api);
}

/// With a token, the page's files load without it (they hold no data), the data does not,
/// and the page asks for the token once, keeps it for the tab, and then shows the pools.
#[test]
fn with_a_token_the_page_asks_for_it() {
    let Some(b) = Browser::start() else { return };
    let (p, sec) = ("127.0.17.21", "127.0.17.22");
    let (port, _a, _b) = backend_pair(p, sec);
    let token = "page-test-token-0123456789";
    let s = Server::start_with("127.0.17.20", &[("tk.test.toml", &two_site_pool(port, p, sec, "auto"))], |c| {
        c.api_token = Some(token.into())
    });
    for file in ["/", "/page.js", "/page.css"] {
        let raw = http_send(s.api, "GET", file, None);
        let (code, _) = http_read(raw);
        assert_eq!(code, 200, "{file} without the token");
    }
    assert_eq!(http(s.api, "GET", "/status", None).0, 401);
    assert_eq!(http(s.api, "GET", "/probes", None).0, 401);
    assert_eq!(http(s.api, "GET", "/history", None).0, 401);
    b.goto(&format!("http://{}/", s.api));
    wait_for(
        "the token dialog",
        Duration::from_secs(10),
        || b.run("return document.querySelector('#token').open"),
        |o| *o == true,
    );
    b.run(&format!("document.querySelector('#token-input').value = '{token}';"));
    b.click("#token-ok");
    wait_for("the pools", Duration::from_secs(10), || shown(&b, "www.tk.test."), |v| v["answer"] == p);
    assert_eq!(b.run("return sessionStorage.getItem('weiche-token')"), token);
    // Only the refusals before the token was given are errors.
    let errors: Vec<String> = console_errors(&b).into_iter().filter(|e| !e.contains("401")).collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_only_loopback(&b, s.api);
}

/// The page's headers: a strict policy, no sniffing, no framing.
#[test]
fn the_page_is_served_under_a_strict_policy() {
    let (p, sec) = ("127.0.17.31", "127.0.17.32");
    let (port, _a, _b) = backend_pair(p, sec);
    let s = Server::start("127.0.17.30", &[("hd.test.toml", &two_site_pool(port, p, sec, "auto"))]);
    let mut raw = http_send(s.api, "GET", "/", None);
    let mut head = String::new();
    std::io::Read::read_to_string(&mut raw, &mut head).unwrap();
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-security-policy: {}", weiche::ops::page::CSP.to_ascii_lowercase())),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff") && head.contains("x-frame-options: deny"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    let (code, probes) = json(s.api, "GET", "/probes");
    assert_eq!(code, 200);
    let checks = &probes["pools"][0]["targets"][0]["checks"][0];
    assert_eq!(checks["probe"], format!("{p}:{port}"));
    assert!(checks["recent"].as_array().is_some_and(|r| !r.is_empty() && r.len() <= 60), "{checks}");
}

/// In a cluster, the page shows this member's view: every member, its weight, whether it is
/// heard and in the primary component.
#[test]
fn in_a_cluster_the_page_shows_the_members() {
    let Some(b) = Browser::start() else { return };
    use weiche::config::cluster::{Cluster, Member, Minority};
    let (p, sec) = ("127.0.17.41", "127.0.17.42");
    let (port, _a, _b) = backend_pair(p, sec);
    let ips = ["127.0.17.44", "127.0.17.45", "127.0.17.46"];
    let peer_port = (0..50)
        .map(|_| std::net::UdpSocket::bind(format!("{}:0", ips[0])).unwrap().local_addr().unwrap().port())
        .find(|port| ips.iter().all(|ip| std::net::UdpSocket::bind(format!("{ip}:{port}")).is_ok()))
        .expect("a UDP port free on every member's address");
    let members: Vec<Member> = ips
        .iter()
        .zip([("a", 5), ("b", 6), ("c", 8)])
        .map(|(ip, (name, weight))| Member {
            name: name.into(),
            site: format!("site-{name}"),
            address: format!("{ip}:{peer_port}").parse().unwrap(),
            weight,
            witness: false,
        })
        .collect();
    let zone = two_site_pool(port, p, sec, "auto");
    let servers: Vec<Server> = (0..3)
        .map(|me| {
            Server::start_with(ips[me], &[("cl.test.toml", &zone)], |c| {
                c.cluster = Some(Cluster {
                    me,
                    listen: members[me].address,
                    members: members.clone(),
                    key: weiche::config::keys::Key::new(
                        "cluster",
                        "hmac-sha256",
                        "cGFnZS10ZXN0LWNsdXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmc=",
                    )
                    .unwrap(),
                    minority: Minority::Withdraw,
                    heartbeat: Duration::from_millis(200),
                    at: weiche::model::position::Location { file: Path::new("test").into(), line: 1, col: 1 },
                });
            })
        })
        .collect();
    b.goto(&format!("http://{}/", servers[1].api));
    let look = || {
        b.run(
            "const el = document.querySelector('#cluster');
             return { hidden: el.hidden, title: (el.querySelector('h2') || {}).textContent,
               members: [...el.querySelectorAll('tr[data-member]')].map((tr) => tr.textContent) };",
        )
    };
    let seen = wait_for("the cluster section", Duration::from_secs(15), look, |v| {
        v["hidden"] == false && v["members"].to_string().matches("connected").count() == 3
    });
    assert_eq!(seen["title"], "Cluster: member b");
    let rows = seen["members"].as_array().unwrap();
    assert!(rows[1].as_str().unwrap().starts_with("b (this)site-b6"), "{rows:?}");
    assert!(rows[2].as_str().unwrap().contains("site-c8"), "{rows:?}");
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

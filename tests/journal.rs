//! The event journal in `state_dir/journal/`: the history outlives a restart and a kill -9,
//! a full disk stops neither answers nor failover, and rotation keeps the bound. Against real
//! servers: in-process ones, and the `weiche` binary where a process must die or be limited.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_weiche");

fn layout(state: &Path) -> weiche::ops::journal::Layout {
    weiche::ops::journal::Layout::in_state_dir(state, weiche::config::DEFAULT_EVENTS_KEEP)
}

/// What the journal holds now, read as `weiche events` reads it with weiche down.
fn on_disk(state: &Path) -> Vec<weiche::ops::events::Event> {
    weiche::ops::journal::read_since(&layout(state), SystemTime::UNIX_EPOCH).map(|r| r.0).unwrap_or_default()
}

fn seqs(events: &[weiche::ops::events::Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Whether `seqs` run 1, 2, 3, ... without a gap.
fn from_one_without_gap(seqs: &[u64]) -> bool {
    seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1)
}

fn kinds(events: &Value) -> Vec<String> {
    events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

fn count_kind(api: SocketAddr, kind: &str) -> usize {
    kinds(&json(api, "GET", "/events?since=0&limit=1000").1).iter().filter(|k| *k == kind).count()
}

/// A POST that may find no server (it was killed): its status, or None.
fn try_post(api: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "POST {path} HTTP/1.1\r\nHost: weiche\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    raw.split_whitespace().nth(1)?.parse().ok()
}

/// Drains and undrains `target` `times` times: two events at least each time.
fn churn(api: SocketAddr, target: &str, times: usize) {
    for _ in 0..times {
        assert_eq!(try_post(api, &format!("/targets/{target}/drain")), Some(200));
        assert_eq!(try_post(api, &format!("/targets/{target}/undrain")), Some(200));
    }
}

/// The A answer of `name` from the DNS server at `dns`.
fn a(dns: SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    let r = udp(dns, &query(name, RecordType::A, None));
    r.answers.iter().filter_map(|a| if let RData::A(a) = &a.data { Some(a.0) } else { None }).collect()
}

/// The `weiche` binary serving `dir/zones` with `dir/state`; its log is kept in memory.
struct Weiche {
    child: Killed,
    dns: SocketAddr,
    api: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Weiche {
    /// Starts it on `ip`; with `fsize`, every file it writes is limited to that many bytes (a
    /// full disk, as far as it can tell: writes beyond fail with EFBIG).
    fn start(dir: &Path, ip: &str, fsize: Option<u64>) -> Weiche {
        let dns_port = external_port(ip);
        let api_port = (0..50).map(|_| external_port(ip)).find(|p| *p != dns_port).unwrap();
        let cfg = dir.join("weiche.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = [\"{ip}:{dns_port}\"]\nzones = \"zones\"\nstate_dir = \"state\"\nreload_interval = \"200ms\"\n\
                 [api]\nlisten = \"{ip}:{api_port}\"\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&cfg).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(limit) = fsize {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only async-signal-safe calls: setrlimit, signal.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // A write beyond the limit then fails with EFBIG instead of killing.
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = Killed(cmd.spawn().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.0.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let api: SocketAddr = format!("{ip}:{api_port}").parse().unwrap();
        let w = Weiche { child, dns: format!("{ip}:{dns_port}").parse().unwrap(), api, log };
        wait_for(
            "weiche to be ready",
            Duration::from_secs(10),
            || {
                TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok()
                    && http(api, "GET", "/readyz", None).0 == 200
            },
            |ready| *ready,
        );
        w
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.0.id() as i32, sig) }, 0);
    }

    /// SIGTERM, and it must exit cleanly.
    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        assert!(self.child.0.wait().unwrap().success(), "{}", self.log());
    }
}

/// A directory with `zones/NAME` holding `zone`, for [`Weiche::start`].
fn served_dir(name: &str, zone: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones").join(name), zone).unwrap();
    dir
}

/// `weiche events` as a command; returns (exit code, stdout, stderr).
fn events_cli(args: &[&str], state_dir: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("events").args(args);
    if let Some(d) = state_dir {
        cmd.arg("--state-dir").arg(d);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// A drain and undrain before a restart are there after it, in `/events` with their times and
/// numbers, in `/history`, and for `weiche events --since` while weiche is down and after.
#[test]
fn a_restart_reads_the_history_back() {
    let (p, sec) = ("127.0.16.11", "127.0.16.12");
    let (port, _a, _b) = backend_pair(p, sec);
    let state = tempfile::tempdir().unwrap();
    let zone = two_site_pool(port, p, sec, "auto");
    let with_state = |c: &mut weiche::Config| c.state_dir = Some(state.path().to_path_buf());
    let s = Server::start_with("127.0.16.10", &[("jr.test.toml", &zone)], with_state);
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/drain")).0, 200);
    wait_for_answer(&s, "www.jr.test.", &[sec], Duration::from_secs(5));
    assert_eq!(json(s.api, "POST", &format!("/targets/{p}/undrain")).0, 200);
    wait_for_answer(&s, "www.jr.test.", &[p], Duration::from_secs(5));
    let (_, before) = json(s.api, "GET", "/events?since=0&limit=1000");
    let before = before.as_array().unwrap().clone();
    let before_kinds = kinds(&Value::Array(before.clone()));
    for k in ["zone_loaded", "drain", "failover", "undrain", "failback"] {
        assert!(before_kinds.iter().any(|b| b == k), "{k} in {before_kinds:?}");
    }
    let (_, st) = json(s.api, "GET", "/status");
    assert_eq!(st["journal"]["persisted"], true, "{}", st["journal"]);
    assert_eq!(st["journal"]["dir"], state.path().join("journal").display().to_string());
    // The journal is written by a task of its own, soon after.
    wait_for(
        "the journal to hold every event",
        Duration::from_secs(5),
        || on_disk(state.path()).len(),
        |n| *n == before.len(),
    );
    drop(s);

    // weiche is down: the command reads the journal, which a clean stop ended.
    let (code, out, err) = events_cli(&["--since", "1h", "--json"], Some(state.path()));
    assert_eq!(code, 0, "{err}");
    let read = json_lines(&out);
    assert_eq!(read[..before.len()], before, "read back as they were sent");
    assert_eq!(kinds(&Value::Array(read[before.len()..].to_vec())), ["stopped"]);
    assert_eq!(before[0]["kind"], "started");
    let (code, out, _) = events_cli(&["--since", "1h", "--pool", "www.jr.test", "--json"], Some(state.path()));
    assert_eq!(code, 0);
    // The pool's own: its targets' first verdicts at start, then the answer's moves.
    assert_eq!(kinds(&Value::Array(json_lines(&out))), ["target_up", "target_up", "failover", "failback"]);
    let (code, out, _) = events_cli(&["--since", "1h"], Some(state.path()));
    assert_eq!(code, 0);
    assert!(
        out.contains(" failover ") && out.contains(&format!("www.jr.test. A failed over from {p} to {sec}")),
        "{out}"
    );
    let (_, out, _) = events_cli(&["--since", "2099-01-01T00:00:00Z"], Some(state.path()));
    assert_eq!(out, "", "nothing after a time to come");
    let (code, _, err) = events_cli(&["--since", "yesterday"], Some(state.path()));
    assert!(code == 1 && err.contains("neither a duration"), "{err}");

    let s = Server::start_with("127.0.16.10", &[("jr.test.toml", &zone)], with_state);
    let (_, after) = json(s.api, "GET", "/events?since=0&limit=1000");
    let after = after.as_array().unwrap();
    assert_eq!(&after[..before.len()], &before[..], "the old events, with their times and numbers");
    let last = before.last().unwrap()["seq"].as_u64().unwrap();
    let new: Vec<u64> = after[before.len()..].iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(!new.is_empty() && new[0] == last + 1, "numbering goes on after {last}: {new:?}");
    let (code, history) = json(s.api, "GET", "/history?since=1h&pool=www.jr.test.&kind=failover,failback");
    assert_eq!(code, 200, "{history}");
    assert_eq!(kinds(&history), ["failover", "failback"]);
    assert_eq!(history[0], before.iter().find(|e| e["kind"] == "failover").cloned().unwrap());
    let (code, history) = json(s.api, "GET", "/history?since=1h&kind=drain,undrain");
    assert_eq!((code, kinds(&history)), (200, vec!["drain".to_string(), "undrain".to_string()]));
    assert_eq!(json(s.api, "GET", "/history?since=soon").0, 400);
    // A pool that is not served and no event names: a typo, not an empty history.
    let (code, body) = json(s.api, "GET", "/history?since=1h&pool=wwww.jr.test.");
    assert_eq!(code, 404, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("no pool \"wwww.jr.test.\" is served")), "{body}");
    // Running, the command asks the API.
    let api = s.api.to_string();
    let (code, out, err) = events_cli(&["--since", "1h", "--pool", "www.jr.test", "--api", &api], None);
    assert_eq!(code, 0, "{err}");
    // Both runs' first verdicts, and the moves between.
    assert_eq!(out.lines().count(), 6, "{out}");
    assert_eq!(out.lines().filter(|l| l.contains(" failover ") || l.contains(" failback ")).count(), 2, "{out}");
}

/// Killed with SIGKILL while events pour in, weiche leaves a journal that reads back whole.
/// A last line cut short (as a crash of the machine leaves one) costs only itself: it is
/// skipped with a warning, and everything before it is read back, numbered without a gap.
#[test]
fn kill_9_in_the_middle_of_writes_leaves_a_readable_journal() {
    let (p, sec) = ("127.0.16.21", "127.0.16.22");
    let (port, _a, _b) = backend_pair(p, sec);
    let dir = served_dir("kn.test.toml", &two_site_pool(port, p, sec, "auto"));
    let state = dir.path().join("state");
    let w = Weiche::start(dir.path(), "127.0.16.20", None);
    let (stop, api) = (Arc::new(AtomicBool::new(false)), w.api);
    let churner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) && rounds < 5000 {
                // Once it is killed, requests find nobody.
                if try_post(api, &format!("/targets/{p}/drain")).is_none()
                    || try_post(api, &format!("/targets/{p}/undrain")).is_none()
                {
                    break;
                }
                rounds += 1;
            }
        })
    };
    wait_for("300 events on disk", Duration::from_secs(60), || on_disk(&state).len(), |n| *n >= 300);
    let last_seen = last_event_seq(w.api);
    assert!(!churner.is_finished(), "still writing when killed");
    w.signal(libc::SIGKILL);
    let mut w = w;
    let _ = w.child.0.wait();
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    let written = on_disk(&state);
    let n = written.len() as u64;
    assert!(from_one_without_gap(&seqs(&written)), "{:?}", seqs(&written));
    assert!(n >= 300 && n <= last_seen + 20, "{n} on disk, {last_seen} seen");

    // A crash of the machine may cut the last line short.
    let newest = layout(&state).segments().unwrap().last().unwrap().path.clone();
    let torn = br#"{"seq":999999,"time":"2026-11-21T00:00:00.000Z","kind":"dra"#;
    std::fs::OpenOptions::new().append(true).open(&newest).unwrap().write_all(torn).unwrap();
    let (code, out, err) = events_cli(&["--since", "1h", "--json"], Some(&state));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped a torn last line") && err.contains(&newest.display().to_string()), "{err}");
    let read: Vec<u64> = json_lines(&out).iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(from_one_without_gap(&read) && read.len() as u64 == n, "{} of {n}", read.len());

    // A start reads it back, says what it skipped, cuts it off and numbers on.
    let w = Weiche::start(dir.path(), "127.0.16.20", None);
    let (_, events) = json(w.api, "GET", "/events?since=0&limit=1000");
    let got: Vec<u64> = events.as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let at = got.iter().position(|s| *s == n).unwrap_or_else(|| panic!("{n} not in {got:?}"));
    assert_eq!(got[..=at], ((n + 1 - (at as u64 + 1))..=n).collect::<Vec<_>>(), "the newest kept, in order");
    assert!(got.len() > at + 1 && got[at + 1] == n + 1, "numbering goes on after {n}: {:?}", &got[at..]);
    let log = w.log();
    assert!(log.contains("skipped a torn last line"), "{log}");
    w.stop();
    let after = on_disk(&state);
    assert!(from_one_without_gap(&seqs(&after)) && after.len() as u64 > n);
    assert!(std::fs::read(&newest).unwrap().ends_with(b"\n"));
}

/// The journal's files may grow no more (a file-size limit: writes fail with EFBIG, as on a
/// full disk). DNS goes on answering and failing over; the journal says so once, as an event,
/// a metric and in `/status`; and once the limit is lifted, it writes everything that waited.
#[test]
fn a_full_disk_stops_neither_answers_nor_failover() {
    let (p, sec) = ("127.0.16.31", "127.0.16.32");
    let (port, mut primary, _secondary) = backend_pair(p, sec);
    let dir = served_dir("fd.test.toml", &two_site_pool(port, p, sec, "auto"));
    let state = dir.path().join("state");
    let journal_dir = state.join("journal").display().to_string();
    let w = Weiche::start(dir.path(), "127.0.16.30", Some(32 << 10));
    assert_eq!(a(w.dns, "www.fd.test."), [ip(p)]);
    let persisted = |api| json(api, "GET", "/status").1["journal"]["persisted"].clone();
    let mut rounds = 0;
    while persisted(w.api) == true {
        assert!(rounds < 1000, "the journal never filled");
        churn(w.api, sec, 1);
        rounds += 1;
    }
    let (_, st) = json(w.api, "GET", "/status");
    assert!(st["journal"]["error"].as_str().unwrap().contains("cannot write the event journal"), "{}", st["journal"]);
    let metric = |api| {
        let (_, text) = http(api, "GET", "/metrics", None);
        let head = format!("weiche_journal_persisted{{dir=\"{journal_dir}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&head).map(String::from))
    };
    assert_eq!(metric(w.api).as_deref(), Some("0"));
    wait_for("one journal_failed event", Duration::from_secs(5), || count_kind(w.api, "journal_failed"), |n| *n == 1);
    let status = Command::new(BIN).args(["status", "--api", &w.api.to_string()]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("EVENT JOURNAL NOT WRITTEN: cannot write"));

    // Answers and failover go on.
    let since = last_event_seq(w.api);
    primary.down();
    let took = wait_for("the failover", Duration::from_secs(5), || a(w.dns, "www.fd.test."), |got| *got == [ip(sec)]);
    assert_eq!(took, [ip(sec)]);
    wait_for_event(w.api, since, "the failover event", |e| e["kind"] == "failover");
    churn(w.api, p, 10);
    assert_eq!(count_kind(w.api, "journal_failed"), 1, "once per episode, not once per event");
    assert_eq!(persisted(w.api), false);

    // The disk frees: everything that waited is written.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: prlimit(2) on a child this test started; the new limit is read from `unlimited`.
    let r =
        unsafe { libc::prlimit(w.child.0.id() as libc::pid_t, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    wait_for("writing again", Duration::from_secs(5), || persisted(w.api), |v| *v == true);
    wait_for_event(w.api, since, "journal_resumed", |e| e["kind"] == "journal_resumed");
    assert_eq!(metric(w.api).as_deref(), Some("1"));
    let newest = last_event_seq(w.api);
    w.stop();
    let written = on_disk(&state);
    assert!(from_one_without_gap(&seqs(&written)), "nothing was lost: {:?}", seqs(&written));
    let last = written.last().unwrap();
    assert_eq!(
        (last.seq, last.kind),
        (newest + 1, Some(weiche::ops::events::EventKind::Stopped)),
        "a clean stop ends it"
    );
    let kinds: Vec<_> = written.iter().filter_map(|e| e.kind).map(|k| k.name()).collect();
    for k in ["journal_failed", "failover", "journal_resumed"] {
        assert!(kinds.contains(&k), "{k} on disk");
    }
}

fn journal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).map(|e| e.metadata().unwrap().len()).sum())
}

/// With `events_keep` at 64 KiB, many more events than that leave at most 64 KiB on disk: the
/// newest, without a gap, and most of the bound's worth.
#[test]
fn rotation_keeps_the_bound() {
    let (p, sec) = ("127.0.16.41", "127.0.16.42");
    let (port, _a, _b) = backend_pair(p, sec);
    let state = tempfile::tempdir().unwrap();
    let keep: u64 = 64 << 10;
    let s = Server::start_with("127.0.16.40", &[("rt.test.toml", &two_site_pool(port, p, sec, "auto"))], |c| {
        c.state_dir = Some(state.path().to_path_buf());
        c.events_keep = keep;
    });
    let dir: PathBuf = state.path().join("journal");
    let start = Instant::now();
    for _ in 0..20 {
        churn(s.api, sec, 20);
        let bytes = journal_bytes(&dir);
        assert!(bytes <= keep, "{bytes} bytes on disk");
    }
    let newest = last_event_seq(s.api);
    let l = weiche::ops::journal::Layout::in_state_dir(state.path(), keep);
    let read = || weiche::ops::journal::read_since(&l, SystemTime::UNIX_EPOCH).unwrap();
    let (events, skipped) = wait_for("the newest on disk", Duration::from_secs(5), read, |(e, _)| {
        e.last().is_some_and(|e| e.seq == newest)
    });
    assert!(skipped.is_empty(), "{skipped:?}");
    let seqs = seqs(&events);
    assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "no gap");
    assert!(seqs[0] > 1 && newest >= 800, "the oldest went: {} .. {newest}", seqs[0]);
    let segments = l.segments().unwrap();
    assert!((8..=9).contains(&segments.len()), "{segments:?}");
    let bytes = journal_bytes(&dir);
    assert!(bytes <= keep && bytes >= keep * 3 / 4, "{bytes} bytes kept of {keep}");
    eprintln!("rotation: {newest} events in {:?}, {} kept in {bytes} bytes", start.elapsed(), seqs.len());
}

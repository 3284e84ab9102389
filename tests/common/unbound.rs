//! unbound, the resolver between a client and weiche: started by a test on a loopback address,
//! with a stub zone pointing at weiche (one or more nameservers), and nothing else reachable.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use super::{external_port, query, udp_raw};

pub struct Unbound {
    /// Killed when this is dropped, before its directory goes.
    _child: super::Killed,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// unbound on `ip`, a free port, asking nothing but the `stubs` (nameservers of `zone`).
    pub fn start(ip: &str, zone: &str, stubs: &[SocketAddr]) -> Unbound {
        Self::start_with(ip, &[(zone, stubs)], &[])
    }

    /// unbound asking the nameservers of each zone of `stubs`, and nothing else. With trust
    /// `anchors` (DS or DNSKEY records in zone-file form), it validates (and logs why an answer
    /// is bogus); without, it does not.
    pub fn start_with(ip: &str, stubs: &[(&str, &[SocketAddr])], anchors: &[String]) -> Unbound {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = external_port(ip);
        let mut zones = String::new();
        for (zone, _) in stubs {
            zones += &format!("  local-zone: \"{zone}.\" transparent\n");
        }
        let mut stub_zones = String::new();
        for (zone, addrs) in stubs {
            stub_zones += &format!("stub-zone:\n  name: \"{zone}.\"\n");
            for s in addrs.iter() {
                stub_zones += &format!("  stub-addr: {}@{}\n", s.ip(), s.port());
            }
        }
        let validation = if anchors.is_empty() {
            "  module-config: \"iterator\"\n".to_string()
        } else {
            let mut v = "  module-config: \"validator iterator\"\n  val-log-level: 2\n".to_string();
            for a in anchors {
                v += &format!("  trust-anchor: \"{a}\"\n");
            }
            v
        };
        // No prefetch and no serving of expired answers (the defaults, spelled out because the
        // measurements depend on them). Queries leave from a loopback address, so nothing but
        // the stubs on 127.0.0.x can be reached, and every other name is refused before any
        // lookup.
        let conf = format!(
            "server:\n  interface: {ip}@{port}\n  port: {port}\n  outgoing-interface: {ip}\n  do-ip6: no\n\
             \x20 do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n\
             \x20 use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  num-threads: 1\n\
             \x20 access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n{validation}\
             \x20 qname-minimisation: no\n  prefetch: no\n  serve-expired: no\n  cache-min-ttl: 0\n\
             \x20 local-zone: \".\" refuse\n{zones}\
             remote-control:\n  control-enable: no\n{stub_zones}"
        );
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf).unwrap();
        let log = dir.path().join("unbound.log");
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Unbound { _child: super::Killed(child), addr: format!("{ip}:{port}").parse().unwrap(), log, _dir: dir }
    }

    /// The A answer for `name` and its TTL as unbound hands it out (None: no reply in time).
    pub fn a(&self, name: &str) -> Option<(Vec<Ipv4Addr>, u32)> {
        let raw = udp_raw(self.addr, &query(name, RecordType::A, None).to_vec().unwrap(), Duration::from_millis(500))?;
        let m = Message::from_vec(&raw).ok()?;
        let mut v: Vec<Ipv4Addr> =
            m.answers.iter().filter_map(|a| if let RData::A(a) = &a.data { Some(a.0) } else { None }).collect();
        v.sort();
        let ttl = m.answers.first().map_or(0, |a| a.ttl);
        Some((v, ttl))
    }

    /// unbound's whole reply to `name`/`rt`, asked with AD set (so a validated reply says so).
    pub fn ask(&self, name: &str, rt: RecordType) -> Option<Message> {
        let mut q = query(name, rt, Some(1232));
        q.metadata.authentic_data = true;
        let raw = udp_raw(self.addr, &q.to_vec().unwrap(), Duration::from_millis(2000))?;
        Message::from_vec(&raw).ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

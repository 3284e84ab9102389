//! knotd as a secondary of weiche: transfers with TSIG (key `xfr`, [`SECRET`]), is told of
//! changes by NOTIFY, and serves what it transferred.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{query, udp_raw};

/// The TSIG secret (hmac-sha256) Knot and weiche share as key `xfr`.
pub const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

pub struct Knot {
    /// Killed when this is dropped, before its directory goes.
    _child: super::Killed,
    log: std::path::PathBuf,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Knot {
    /// knotd as a secondary of `primary` for `zones`, listening on `ip`:`port`.
    pub fn start(ip: &str, port: u16, primary: std::net::SocketAddr, zones: &[&str]) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let zone_list: String = zones
            .iter()
            .map(|z| format!("  - domain: {z}\n    master: primary\n    acl: [notify_from_primary, transfer_out]\n"))
            .collect();
        let conf = format!(
            "server:\n    listen: {ip}@{port}\n    rundir: {d}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: {d}/db\n\
             key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             remote:\n  - id: primary\n    address: {}@{}\n    via: {ip}\n    key: xfr\n\
             acl:\n  - id: notify_from_primary\n    address: {}\n    key: xfr\n    action: notify\n\
             \x20 - id: transfer_out\n    address: 127.0.0.0/8\n    key: xfr\n    action: transfer\n\
             template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: changes\n\
             zone:\n{zone_list}",
            primary.ip(),
            primary.port(),
            primary.ip()
        );
        std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
        let log = dir.path().join("knot.log");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Knot { _child: super::Killed(child), log, addr: format!("{ip}:{port}"), _dir: dir }
    }

    pub fn a(&self, name: &str) -> Vec<std::net::Ipv4Addr> {
        let addr = self.addr.parse().unwrap();
        let r = udp_raw(
            addr,
            &query(name, hickory_proto::rr::RecordType::A, None).to_vec().unwrap(),
            Duration::from_millis(500),
        );
        let Some(raw) = r else { return vec![] };
        let m = hickory_proto::op::Message::from_vec(&raw).unwrap();
        m.answers
            .iter()
            .filter_map(|a| if let hickory_proto::rr::RData::A(a) = &a.data { Some(a.0) } else { None })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

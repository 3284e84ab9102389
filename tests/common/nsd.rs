//! NSD as a secondary of weiche: transfers with TSIG (key `xfr`, `knot::SECRET`), is told of
//! changes by NOTIFY, and serves what it transferred.

use std::process::{Command, Stdio};

use super::knot::SECRET;

pub struct Nsd {
    /// Killed when this is dropped, before its directory goes.
    _child: super::Killed,
    log: std::path::PathBuf,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nsd {
    /// nsd as a secondary of `primary` for `zones`, listening on `ip`:`port`.
    pub fn start(ip: &str, port: u16, primary: std::net::SocketAddr, zones: &[&str]) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (pip, pport) = (primary.ip(), primary.port());
        let zone_list: String = zones
            .iter()
            .map(|z| {
                format!(
                    "zone:\n    name: \"{z}\"\n    request-xfr: {pip}@{pport} xfr\n    allow-notify: {pip} xfr\n\
                     \x20   provide-xfr: 127.0.0.0/8 xfr\n"
                )
            })
            .collect();
        let conf = format!(
            "server:\n    ip-address: {ip}@{port}\n    port: {port}\n    do-ip6: no\n    server-count: 1\n\
             \x20   username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n\
             \x20   zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n\
             \x20   pidfile: \"{d}/nsd.pid\"\n    verbosity: 2\n    logfile: \"{d}/nsd.log\"\n\
             remote-control:\n    control-enable: no\n\
             key:\n    name: \"xfr\"\n    algorithm: hmac-sha256\n    secret: \"{SECRET}\"\n{zone_list}"
        );
        std::fs::write(dir.path().join("nsd.conf"), conf).unwrap();
        let log = dir.path().join("nsd.log");
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(dir.path().join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Nsd { _child: super::Killed(child), log, addr: format!("{ip}:{port}").parse().unwrap(), _dir: dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

//! The check types, one file each. A new type is a file here implementing
//! [`Probe`], its validated data in [`crate::model::pool::Probe`], and
//! its keys in `load::zone_toml`.

pub mod dns;
pub mod galera;
pub mod http;
pub mod mysql;
pub mod smtp;
pub mod sql;
pub mod tcp;
pub mod tls;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

/// One check type. Implementations are built once per (address, check) and probed repeatedly;
/// `probe` need not enforce the timeout (the [`Prober`] does) but must not leave work behind
/// when its future is dropped.
pub trait Probe: Send + Sync + 'static {
    /// Ok(()) if the target passed, or why it failed, in a few words.
    fn probe(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// A TCP connection to `addr`, from `source` when one is given for `addr`'s family.
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<tokio::net::TcpStream> {
    match source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
        None => tokio::net::TcpStream::connect(addr).await,
        Some(ip) => {
            let s = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            s.bind(SocketAddr::new(ip, 0))?;
            s.connect(addr).await
        }
    }
}

/// The local address a UDP probe of `addr` binds: `source` when one is given for its family.
pub fn udp_local(addr: SocketAddr, source: Option<IpAddr>) -> SocketAddr {
    match source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
        Some(ip) => SocketAddr::new(ip, 0),
        None if addr.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        None => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// An I/O error in the words an operator expects to read in a target's cause.
pub fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

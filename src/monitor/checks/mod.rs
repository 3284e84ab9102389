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

/// One check type. Implementations are built once per (address, check) and probed repeatedly;
/// `probe` need not enforce the timeout (the [`Prober`] does) but must not leave work behind
/// when its future is dropped.
pub trait Probe: Send + Sync + 'static {
    /// Ok(()) if the target passed, or why it failed, in a few words.
    fn probe(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// An I/O error in the words an operator expects to read in a target's cause.
pub fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

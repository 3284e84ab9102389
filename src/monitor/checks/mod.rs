//! The check types, one file each. A new type is a file here implementing
//! [`crate::monitor::probe::Probe`], its validated data in [`crate::model::pool::Probe`], and
//! its keys in `load::zone_toml`.

pub mod dns;
pub mod http;
pub mod smtp;
pub mod tcp;

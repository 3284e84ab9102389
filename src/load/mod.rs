//! Loading: zone files on disk become validated [`crate::model::zone::Zone`]s, or positioned
//! errors. Master files (`zonefile`), the zones directory (`loader`).

pub mod loader;
pub mod my_cnf;
pub mod read;
pub mod watch;
pub mod zone_toml;
pub mod zonefile;

//! What weiche says to other nameservers: TSIG, and NOTIFY to secondaries.

pub mod secondaries;
pub mod tsig;

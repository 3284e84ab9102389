//! The query path: sockets in, answers out. It reads one snapshot per message and never
//! imports the publisher.

pub mod answer;
pub mod rrl;
pub mod server;
pub mod service;
pub mod stats;
pub mod tcp;
pub mod udp;
pub mod wire;
pub mod xdp;
pub mod xfr;

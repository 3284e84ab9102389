pub mod chart;
pub mod config;
pub mod name;
pub mod rtype;
pub mod zone;
pub mod zonefile;

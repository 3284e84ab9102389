//! The zone model: the types every other room is built from. Names and record types, one
//! validated zone, pools, the failover chart, the snapshot a query reads and the IXFR history
//! it carries. Pure data and pure functions: nothing here does I/O or reads a clock.

pub mod chart;
pub mod history;
pub mod name;
pub mod pool;
pub mod position;
pub mod rtype;
pub mod signed;
pub mod snapshot;
pub mod zone;

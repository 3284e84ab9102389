pub mod name;
pub mod rtype;
pub mod zonefile;

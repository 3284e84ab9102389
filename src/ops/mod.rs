//! The operator's side: the HTTP API, the command channel, the CLI client, events and their
//! journal on disk, notifications, and the status page.

pub mod api;
pub mod client;
pub mod control;
pub mod doc;
pub mod events;
pub mod journal;
pub mod notify;
pub mod page;
pub mod reload;

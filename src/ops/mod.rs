//! The operator's side: the HTTP API, the command channel, the CLI client, the event journal,
//! and notifications.

pub mod api;
pub mod client;
pub mod control;
pub mod doc;
pub mod events;
pub mod notify;
pub mod reload;

//! Several weiche members, one answer. Every member probes every target; members tell each
//! other their verdicts in signed reports every heartbeat, and decide with Galera's weighted
//! quorum:
//!
//! ```text
//!  [cluster] (config::cluster) ─> quorum::Layout (weights, sites)
//!                                   │
//!  peers' datagrams ─> wire::Opener (member address, HMAC, replay, clock) ─┐
//!  own probe results (monitor::Update) ────────────────────────────────────┤
//!  heartbeat ticks ────────────────────────────────────────────────────────┤
//!                                                                          v
//!        peers::Peers (pure): who is heard ─> vote::in_primary ─> serving mode
//!                             fresh votes ─> vote::cluster_verdict ─> publisher updates
//!                             operator writes ─> operator::OperatorMap (last writer wins)
//!                                   │
//!  net (the socket task: seal, send, receive, open) <── reports every heartbeat
//!  report: what `weiche check` prints
//! ```
//!
//! No home-made consensus log: the cluster's verdict is a deterministic function of fresh,
//! signed reports. Everything but `net` is pure: time and messages come in as values, so every
//! rule is tested over every ordering.

pub mod net;
pub mod operator;
pub mod peers;
pub mod quorum;
pub mod report;
pub mod vote;
pub mod wire;

use crate::config::cluster::Cluster;

impl Cluster {
    /// The quorum layout: member indices as in `members`, sites numbered in order of first
    /// mention.
    pub fn layout(&self) -> quorum::Layout {
        let sites = self.sites();
        let members: Vec<(u8, usize)> = self
            .members
            .iter()
            .map(|m| (m.weight, sites.iter().position(|(s, _)| *s == m.site).expect("every site is listed")))
            .collect();
        quorum::Layout::new(&members)
    }
}

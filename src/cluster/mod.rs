//! Several weiche members, one answer: the cluster's pure core. The peer protocol (reports,
//! heartbeats, signatures) is not here yet; what it will decide with is:
//!
//! ```text
//!  [cluster] (config::cluster) ─> quorum::Layout (weights, sites)
//!                                   │
//!       members heard ──> vote::in_primary ──> primary or not
//!  fresh peer reports ──> vote::cluster_verdict ──> Up / Down per target
//!  operator writes ────> operator::OperatorMap (last writer wins) ──> drains, holds
//!                                   │
//!                                   └─> report: what `weiche check` prints
//! ```
//!
//! Nothing here does I/O, reads a clock or knows about sockets: time and reports come in as
//! values, so every rule is tested over every ordering.

pub mod operator;
pub mod quorum;
pub mod report;
pub mod vote;

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

//! `[cluster]` in `weiche.toml`: the spec (what the file says) and the validated [`Cluster`].
//! Validation only: the quorum arithmetic is `cluster::quorum`, and nothing here talks to a
//! peer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::keys::Key;
use crate::model::position::FileError;

/// The port a member address without one gets.
pub const DEFAULT_PORT: u16 = 8553;
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);
/// The most members: a member set is one 64-bit word (`cluster::quorum::MAX_MEMBERS`).
pub const MAX_MEMBERS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSpec {
    member: Spanned<String>,
    listen: Option<Spanned<String>>,
    key: Spanned<String>,
    minority: Option<Minority>,
    heartbeat: Option<Spanned<String>>,
    members: Spanned<Vec<Spanned<MemberSpec>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberSpec {
    name: Spanned<String>,
    site: Option<Spanned<String>>,
    address: Spanned<String>,
    weight: Option<Spanned<i64>>,
    witness: Option<bool>,
}

/// What a member cut off from the majority does with pool names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Minority {
    /// SERVFAIL, so resolvers ask another nameserver (static records are still answered).
    #[default]
    Withdraw,
    /// Keep the last agreed answers, at the pool's short TTL.
    Freeze,
    /// Decide alone, as a weiche without a cluster does.
    Local,
}

impl Minority {
    pub fn name(self) -> &'static str {
        match self {
            Minority::Withdraw => "withdraw",
            Minority::Freeze => "freeze",
            Minority::Local => "local",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// The failure domain (a data centre); the member's own name when not given.
    pub site: String,
    /// Where the other members reach it.
    pub address: SocketAddr,
    /// Its vote (Galera's `pc.weight`); 0 follows the cluster but never decides.
    pub weight: u8,
    /// Votes and probes, serves no public DNS (like Galera's arbitrator, garbd).
    pub witness: bool,
}

/// A validated `[cluster]`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// This instance: an index into `members`.
    pub me: usize,
    pub members: Vec<Member>,
    /// Where this instance receives peer messages.
    pub listen: SocketAddr,
    /// Signs and checks every peer message.
    pub key: Key,
    pub minority: Minority,
    pub heartbeat: Duration,
    /// Where `[cluster]` is written, for messages about the whole table.
    pub at: crate::model::position::Location,
}

impl Cluster {
    /// Site names in the order they are first named, with their members' indices.
    pub fn sites(&self) -> Vec<(&str, Vec<usize>)> {
        let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            match out.iter_mut().find(|(s, _)| *s == m.site) {
                Some((_, list)) => list.push(i),
                None => out.push((&m.site, vec![i])),
            }
        }
        out
    }
}

/// Member and site names appear in logs, metrics labels and the API: a conservative alphabet.
fn valid_name(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Validates `[cluster]`; `keys` are the `[keys]` entries by their table names.
pub(crate) fn cluster_of(
    spec: Spanned<ClusterSpec>,
    keys: &BTreeMap<String, Key>,
    err: &impl Fn(Range<usize>, String) -> FileError,
) -> Result<Cluster, FileError> {
    let at = err(spec.span(), String::new()).at;
    let c = spec.into_inner();
    let list_span = c.members.span();
    let list = c.members.into_inner();
    if list.len() < 2 {
        return Err(err(
            list_span,
            format!(
                "cluster members: {} member(s); a cluster needs at least two (a cluster of one has no one to \
                 agree with: remove [cluster] to run a single weiche)",
                list.len()
            ),
        ));
    }
    if list.len() > MAX_MEMBERS {
        return Err(err(list_span, format!("cluster members: at most {MAX_MEMBERS}, got {}", list.len())));
    }
    let mut members: Vec<Member> = Vec::new();
    for m in list {
        let m = m.into_inner();
        let name = m.name.get_ref();
        if !valid_name(name) {
            return Err(err(
                m.name.span(),
                format!("cluster member name {name:?}: use 1 to 63 letters, digits, '-', '_' or '.'"),
            ));
        }
        if members.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            return Err(err(m.name.span(), format!("cluster member {name:?} is named twice")));
        }
        let site = match &m.site {
            Some(s) if !valid_name(s.get_ref()) => {
                return Err(err(
                    s.span(),
                    format!(
                        "cluster member {name:?}: site {:?}: use 1 to 63 letters, digits, '-', '_' or '.'",
                        s.get_ref()
                    ),
                ));
            }
            Some(s) => s.get_ref().clone(),
            None => name.clone(),
        };
        // Sites are counted as written: two spellings would be two sites, and the quorum
        // arithmetic would count on a site that is not there.
        if let Some(o) = members.iter().find(|o| o.site != site && o.site.eq_ignore_ascii_case(&site)) {
            let span = m.site.as_ref().map_or(m.name.span(), Spanned::span);
            return Err(err(
                span,
                format!(
                    "cluster member {name:?}: site {site:?} differs from member {:?}'s site {:?} only in case; \
                     write one site the same way everywhere",
                    o.name, o.site
                ),
            ));
        }
        let text = m.address.get_ref();
        let address = text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, DEFAULT_PORT)))
            .map_err(|_| {
                err(
                    m.address.span(),
                    format!("cluster member {name:?}: address {text:?} is not ADDRESS or ADDRESS:PORT"),
                )
            })?;
        if address.ip().is_unspecified() || address.port() == 0 {
            return Err(err(
                m.address.span(),
                format!("cluster member {name:?}: address {address} is not one peers can send to"),
            ));
        }
        if let Some(o) = members.iter().find(|o| o.address == address) {
            return Err(err(
                m.address.span(),
                format!("cluster member {name:?}: address {address} is member {:?}'s too", o.name),
            ));
        }
        let weight = match &m.weight {
            None => 1,
            Some(w) => u8::try_from(*w.get_ref()).map_err(|_| {
                err(w.span(), format!("cluster member {name:?}: weight must be 0..=255, got {}", w.get_ref()))
            })?,
        };
        let witness = m.witness.unwrap_or(false);
        if witness && weight == 0 {
            let span = m.weight.as_ref().map_or(m.name.span(), Spanned::span);
            return Err(err(
                span,
                format!("cluster member {name:?}: a witness of weight 0 neither votes nor serves; give it a weight"),
            ));
        }
        members.push(Member { name: name.clone(), site, address, weight, witness });
    }
    if members.iter().filter(|m| m.weight > 0).count() < 2 {
        return Err(err(
            list_span,
            "cluster members: at least two need a weight of 1 or more (members of weight 0 never decide)".into(),
        ));
    }
    let me = members.iter().position(|m| m.name == *c.member.get_ref()).ok_or_else(|| {
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        err(
            c.member.span(),
            format!("cluster member {:?} (this instance) is not in members ({})", c.member.get_ref(), names.join(", ")),
        )
    })?;
    let own = members[me].address;
    let listen = match &c.listen {
        None => own,
        Some(l) => {
            let addr = l
                .get_ref()
                .parse::<SocketAddr>()
                .map_err(|_| err(l.span(), format!("cluster listen: {:?} is not ADDRESS:PORT", l.get_ref())))?;
            if addr.port() != own.port() {
                return Err(err(
                    l.span(),
                    format!(
                        "cluster listen {addr}: port {} is not the port of member {:?}'s address {own}, where \
                         peers send; use port {} (the address may differ: 0.0.0.0, [::] or one behind NAT)",
                        addr.port(),
                        members[me].name,
                        own.port()
                    ),
                ));
            }
            addr
        }
    };
    let key = crate::config::key_named(keys, &c.key, err)?;
    let heartbeat = crate::config::ranged_duration(
        c.heartbeat.as_ref(),
        DEFAULT_HEARTBEAT,
        Duration::from_millis(100)..=Duration::from_secs(10),
        "cluster heartbeat",
        err,
    )?;
    Ok(Cluster { me, members, listen, key, minority: c.minority.unwrap_or_default(), heartbeat, at })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const KEY: &str = "[keys.cluster]\nsecret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\"\n";

    /// `[cluster]` after a key: `settings` on line 6, the members list on line 7, members from line 8.
    fn with_members(settings: &str, members: &str) -> String {
        format!("{KEY}[cluster]\nmember = \"a\"\nkey = \"cluster\"\n{settings}\nmembers = [\n{members}]\n")
    }

    const THREE: &str = "{ name = \"a\", site = \"fra\", address = \"198.51.100.1:8553\", weight = 5 },\n\
        { name = \"b\", site = \"ams\", address = \"203.0.113.1\", weight = 6 },\n\
        { name = \"c\", address = \"192.0.2.1:8553\", weight = 8, witness = true },\n";

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("weiche.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_is_read_with_its_defaults() {
        let c = load(&with_members("", THREE)).unwrap().cluster.unwrap();
        assert_eq!(c.me, 0);
        assert_eq!(c.listen, "198.51.100.1:8553".parse().unwrap(), "listen defaults to the own address");
        assert_eq!(c.members[1].address, "203.0.113.1:8553".parse().unwrap(), "the default port");
        assert_eq!(c.members[2].site, "c", "a member without a site is a site of its own");
        assert!(c.members[2].witness && !c.members[0].witness);
        assert_eq!(c.minority, super::Minority::Withdraw);
        assert_eq!(c.heartbeat, super::DEFAULT_HEARTBEAT);
        assert_eq!(c.key.name.to_string(), "cluster.");
        assert_eq!((c.at.line, c.at.col), (3, 1));
        assert_eq!(c.layout().total(), 19);
        let c = load(&with_members(
            "listen = \"0.0.0.0:8553\"\nminority = \"freeze\"\nheartbeat = \"1s\"",
            "{ name = \"a\", address = \"192.0.2.1:8553\" },\n{ name = \"b\", address = \"192.0.2.1:8554\", weight = 0 },\n{ name = \"c\", address = \"192.0.2.3\" },\n",
        ))
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:8553".parse().unwrap());
        assert_eq!((c.minority, c.heartbeat), (super::Minority::Freeze, std::time::Duration::from_secs(1)));
        assert_eq!(c.members.iter().map(|m| m.weight).collect::<Vec<_>>(), [1, 0, 1], "weight defaults to 1");
        assert!(load(KEY).unwrap().cluster.is_none());
    }

    /// Each mistake is an error at its line and column that says what is allowed.
    #[test]
    fn mistakes_are_errors_at_their_position() {
        let a = "{ name = \"a\", address = \"192.0.2.1\" },\n";
        let b = "{ name = \"b\", address = \"192.0.2.2\" },\n";
        for (settings, members, want) in [
            ("", a, "7:11: cluster members: 1 member(s); a cluster needs at least two"),
            ("", "", "7:11: cluster members: 0 member(s)"),
            (
                "",
                &format!("{a}{{ name = \"a\", address = \"192.0.2.2\" }},\n"),
                "9:10: cluster member \"a\" is named twice",
            ),
            (
                "",
                &format!("{a}{{ name = \"A\", address = \"192.0.2.2\" }},\n"),
                "9:10: cluster member \"A\" is named twice",
            ),
            (
                "",
                &format!("{a}{{ name = \"\", address = \"192.0.2.2\" }},\n"),
                "9:10: cluster member name \"\": use 1 to 63",
            ),
            ("", &format!("{a}{{ name = \"b c\", address = \"192.0.2.2\" }},\n"), "9:10: cluster member name \"b c\""),
            (
                "",
                &format!("{a}{{ name = \"b\", site = \"\", address = \"192.0.2.2\" }},\n"),
                "9:22: cluster member \"b\": site \"\"",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"192.0.2.x\" }},\n"),
                "9:25: cluster member \"b\": address \"192.0.2.x\" is not ADDRESS or ADDRESS:PORT",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"0.0.0.0:8553\" }},\n"),
                "9:25: cluster member \"b\": address 0.0.0.0:8553 is not one peers can send to",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"192.0.2.1:8553\" }},\n"),
                "9:25: cluster member \"b\": address 192.0.2.1:8553 is member \"a\"'s too",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"192.0.2.2\", weight = 256 }},\n"),
                "9:47: cluster member \"b\": weight must be 0..=255, got 256",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"192.0.2.2\", weight = -1 }},\n"),
                "9:47: cluster member \"b\": weight must be 0..=255, got -1",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"192.0.2.2\", weight = 0 }},\n"),
                "7:11: cluster members: at least two need a weight of 1 or more",
            ),
            (
                "",
                &format!("{a}{{ name = \"b\", address = \"192.0.2.2\", weight = 0, witness = true }},\n"),
                "9:47: cluster member \"b\": a witness of weight 0 neither votes nor serves",
            ),
            ("", &format!("{a}{{ name = \"b\", adress = \"192.0.2.2\" }},\n"), "9:15: unknown field `adress`"),
            (
                "",
                &format!("{{ name = \"x\", address = \"192.0.2.1\" }},\n{b}"),
                "4:10: cluster member \"a\" (this instance) is not in members (x, b)",
            ),
            (
                "listen = \"192.0.2.1:53\"",
                &format!("{a}{b}"),
                "6:10: cluster listen 192.0.2.1:53: port 53 is not the port of member \"a\"'s address 192.0.2.1:8553",
            ),
            ("listen = \"here\"", &format!("{a}{b}"), "6:10: cluster listen: \"here\" is not ADDRESS:PORT"),
            ("heartbeat = \"0s\"", &format!("{a}{b}"), "6:13: cluster heartbeat must be 100ms to 10s, got 0s"),
            ("heartbeat = \"1m\"", &format!("{a}{b}"), "6:13: cluster heartbeat must be 100ms to 10s, got 1m"),
            (
                "minority = \"panic\"",
                &format!("{a}{b}"),
                "6:12: unknown variant `panic`, expected one of `withdraw`, `freeze`, `local`",
            ),
            ("site = \"fra\"", &format!("{a}{b}"), "6:1: unknown field `site`"),
        ] {
            let text = with_members(settings, members);
            let e = load(&text).unwrap_err();
            assert!(e.contains(&format!("weiche.toml:{want}")), "{text}\n{e}");
        }
        let text = with_members("", &format!("{a}{b}")).replace("key = \"cluster\"", "key = \"peers\"");
        let e = load(&text).unwrap_err();
        assert!(e.contains("weiche.toml:5:7: no key named \"peers\" (defined: cluster)"), "{e}");
        let e = load("[cluster]\nmember = \"a\"\nmembers = []\n").unwrap_err();
        assert!(e.contains("weiche.toml:1:1: missing field `key`"), "{e}");
    }
}

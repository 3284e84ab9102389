//! What `weiche check` says about a `[cluster]`: the quorum arithmetic in words, and whether
//! each zone's NS records reach more than one site. Pure: it returns text; the caller prints.

use std::net::IpAddr;

use crate::cluster::quorum::{Layout, Loss, Losses, Set, quorum};
use crate::config::cluster::Cluster;
use crate::model::name::Name;
use crate::model::zone::Zone;

/// Lines to print, and warnings (check still succeeds).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<String>,
    pub warnings: Vec<String>,
}

fn names(c: &Cluster, set: Set) -> String {
    set.iter().map(|m| c.members[m].name.as_str()).collect::<Vec<_>>().join("+")
}

fn outcome(l: &Loss) -> String {
    let verdict = if l.keeps_quorum { "keeps quorum" } else { "NO QUORUM" };
    format!("{} of {} left: {verdict}", l.remaining, l.total)
}

/// The arithmetic of `c`'s weights: total and quorum, then what losing each member, each site
/// and each pair does, before and during the maintenance of any one member.
pub fn arithmetic(c: &Cluster) -> Report {
    let layout = c.layout();
    let sites = c.sites();
    let mut r = Report::default();
    let me = &c.members[c.me];
    let mut out = |s: String| r.lines.push(s);
    out(format!(
        "cluster: {} members at {} sites; this instance is {} (peers on {}, minority = {}, heartbeat {})",
        c.members.len(),
        sites.len(),
        me.name,
        c.listen,
        c.minority.name(),
        humantime::format_duration(c.heartbeat)
    ));
    let width = c.members.iter().map(|m| m.name.len()).max().unwrap_or(0).max(6);
    let site_width = sites.iter().map(|(s, _)| s.len()).max().unwrap_or(0).max(4);
    out(format!("  {:width$}  {:site_width$}  weight  address", "member", "site"));
    for m in &c.members {
        let witness = if m.witness { "  witness: votes, serves no public DNS" } else { "" };
        out(format!("  {:width$}  {:site_width$}  {:>6}  {}{witness}", m.name, m.site, m.weight, m.address));
    }
    let total = layout.total();
    out(format!("cluster: total weight {total}; quorum is more than half: {} or more", quorum(total)));
    let all = Losses::all_keep;
    let x = layout.losses(Set::EMPTY);
    out("cluster: losing one member:".into());
    for l in &x.members {
        out(format!("  {} ({}): {}", names(c, l.lost), layout.weight(l.lost), outcome(l)));
    }
    out("cluster: losing one site:".into());
    for (l, (site, _)) in x.sites.iter().zip(&sites) {
        out(format!("  {site} ({}; {}): {}", names(c, l.lost), layout.weight(l.lost), outcome(l)));
    }
    let kept = x.pairs.iter().filter(|p| p.keeps_quorum).count();
    if all(&x.pairs) {
        let worst = x.pairs.iter().map(|p| p.remaining).min().unwrap_or(total);
        out(format!("cluster: losing two members: every pair keeps quorum (the worst leaves {worst} of {total})"));
    } else {
        out(format!("cluster: losing two members: {kept} of {} pairs keep quorum; these do not:", x.pairs.len()));
        for l in x.pairs.iter().filter(|p| !p.keeps_quorum) {
            out(format!("  {} ({}): {}", names(c, l.lost), layout.weight(l.lost), outcome(l)));
        }
    }
    out("cluster: during maintenance of one member (a clean leave takes its weight out of the total):".into());
    for (m, member) in c.members.iter().enumerate() {
        out(format!("  {}", maintenance(c, &layout, m, &member.name)));
    }
    for (l, (site, _)) in x.sites.iter().zip(&sites) {
        if !l.keeps_quorum {
            r.warnings.push(format!(
                "cluster: losing site {site} ({}, weight {} of {total}) leaves {} of {total}, not more than \
                 half: no quorum anywhere. No site may hold half the weight or more; a witness at a third site \
                 is the usual remedy",
                names(c, l.lost),
                layout.weight(l.lost),
                l.remaining
            ));
        }
    }
    r
}

/// One line: what further loss stops the cluster while member `m` is away.
fn maintenance(c: &Cluster, layout: &Layout, m: usize, name: &str) -> String {
    let away = Set::one(m);
    let total = layout.total_without(away);
    let head = format!("{name} away (total {total}, quorum {}):", quorum(total));
    if total == 0 {
        return format!("{head} nobody left with a vote");
    }
    let x = layout.losses(away);
    let left = |l: &Loss| format!("{} of {total} left", l.remaining);
    let members = x.members.iter().filter(|l| !l.keeps_quorum).map(|l| format!("{} ({})", names(c, l.lost), left(l)));
    // A site of one member left is already named as that member.
    let sites = x.sites.iter().filter(|l| !l.keeps_quorum && l.lost.len() > 1).map(|l| {
        let site = l.lost.iter().next().map_or("?", |first| c.members[first].site.as_str());
        format!("site {site} ({})", left(l))
    });
    let stops: Vec<String> = members.chain(sites).collect();
    if stops.is_empty() {
        format!("{head} any one more member or site may fail")
    } else {
        format!("{head} losing {} stops it", stops.join(", or "))
    }
}

/// A zone's apex NS names with their addresses: from the zone itself, else from the zone among
/// `zones` that holds the name (NS names often live in a sibling zone served beside it).
pub fn ns_addresses(zone: &Zone, zones: &[&Zone]) -> Vec<(Name, Vec<IpAddr>)> {
    let mut ns = zone.apex_ns();
    for (name, addrs) in &mut ns {
        if addrs.is_empty() {
            let holder = zones.iter().filter(|z| name.is_subdomain_of(&z.apex)).max_by_key(|z| z.apex.label_count());
            *addrs = holder.map(|z| z.addresses(name)).unwrap_or_default();
        }
    }
    ns
}

/// Which sites a zone's NS records reach: each NS name's addresses in the zone, matched
/// against the members' addresses (ignoring ports). Warns when fewer than two sites serve it,
/// and when an NS points at a witness; notes NS that belong to no member.
pub fn ns_reach(c: &Cluster, apex: &Name, ns: &[(Name, Vec<IpAddr>)]) -> Report {
    let mut r = Report::default();
    let mut reached: Vec<(&str, Vec<String>)> = Vec::new();
    let mut notes = Vec::new();
    for (name, addrs) in ns {
        if addrs.is_empty() {
            notes.push(format!("NS {name} has no address in the zones here, so its site is unknown"));
        }
        for ip in addrs {
            let members: Vec<&crate::config::cluster::Member> =
                c.members.iter().filter(|m| m.address.ip() == *ip).collect();
            if members.is_empty() {
                notes.push(format!(
                    "NS {name} ({ip}) is no member's address (a secondary outside the cluster, or a member \
                     whose cluster address differs)"
                ));
            }
            for m in members {
                if m.witness {
                    r.warnings.push(format!(
                        "zone {apex}: NS {name} ({ip}) is member {}, a witness, which serves no public DNS",
                        m.name
                    ));
                    continue;
                }
                let how = format!("{name} → {}", m.name);
                match reached.iter_mut().find(|(s, _)| *s == m.site) {
                    Some((_, list)) => list.push(how),
                    None => reached.push((&m.site, vec![how])),
                }
            }
        }
    }
    let list = reached.iter().map(|(s, how)| format!("{s} ({})", how.join(", "))).collect::<Vec<_>>().join(", ");
    match reached.len() {
        0 => r.warnings.push(format!("zone {apex}: no NS record reaches a member that serves DNS")),
        1 => r.warnings.push(format!(
            "zone {apex}: NS records reach only site {list}; losing that site takes the zone off the air. \
             List a nameserver at another site"
        )),
        _ => r.lines.push(format!("zone {apex}: NS reach {} sites: {list}", reached.len())),
    }
    r.lines.extend(notes.into_iter().map(|n| format!("zone {apex}: note: {n}")));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::{Member, Minority};

    fn cluster(members: &[(&str, &str, &str, u8, bool)]) -> Cluster {
        Cluster {
            me: 0,
            members: members
                .iter()
                .map(|&(name, site, addr, weight, witness)| Member {
                    name: name.into(),
                    site: site.into(),
                    address: addr.parse().unwrap(),
                    weight,
                    witness,
                })
                .collect(),
            listen: members[0].2.parse().unwrap(),
            key: crate::config::keys::Key::new("cluster", "hmac-sha256", "c2VjcmV0").unwrap(),
            minority: Minority::Withdraw,
            heartbeat: std::time::Duration::from_millis(500),
            at: crate::model::position::Location { file: std::path::Path::new("weiche.toml").into(), line: 1, col: 1 },
        }
    }

    fn example() -> Cluster {
        cluster(&[
            ("a", "fra", "198.51.100.1:8553", 5, false),
            ("b", "ams", "203.0.113.1:8553", 6, false),
            ("c", "zrh", "192.0.2.1:8553", 8, true),
        ])
    }

    #[test]
    fn the_arithmetic_in_words() {
        let r = arithmetic(&example());
        let text = r.lines.join("\n");
        for want in [
            "cluster: 3 members at 3 sites; this instance is a (peers on 198.51.100.1:8553, minority = withdraw, heartbeat 500ms)",
            "  c       zrh        8  192.0.2.1:8553  witness: votes, serves no public DNS",
            "cluster: total weight 19; quorum is more than half: 10 or more",
            "  a (5): 14 of 19 left: keeps quorum",
            "  fra (a; 5): 14 of 19 left: keeps quorum",
            "cluster: losing two members: 0 of 3 pairs keep quorum; these do not:",
            "  a+b (11): 8 of 19 left: NO QUORUM",
            "  a away (total 14, quorum 8): losing c (6 of 14 left) stops it",
            "  c away (total 11, quorum 6): losing b (5 of 11 left) stops it",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn a_site_holding_half_the_weight_is_warned_of() {
        let c = cluster(&[
            ("a1", "fra", "192.0.2.1:8553", 1, false),
            ("a2", "fra", "192.0.2.2:8553", 1, false),
            ("b", "ams", "192.0.2.3:8553", 1, false),
            ("c", "zrh", "192.0.2.4:8553", 1, false),
        ]);
        let r = arithmetic(&c);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].starts_with("cluster: losing site fra (a1+a2, weight 2 of 4) leaves 2 of 4"));
        let text = r.lines.join("\n");
        assert!(text.contains("  fra (a1+a2; 2): 2 of 4 left: NO QUORUM"), "{text}");
        assert!(text.contains("  a1 away (total 3, quorum 2): any one more member or site may fail"), "{text}");
        assert!(text.contains("  b away (total 3, quorum 2): losing site fra (1 of 3 left) stops it"), "{text}");
        // Two sites without a witness: each is a warning.
        let two = cluster(&[("a", "fra", "192.0.2.1:8553", 1, false), ("b", "ams", "192.0.2.2:8553", 1, false)]);
        assert_eq!(arithmetic(&two).warnings.len(), 2);
        // 6-4 / 5-4 / 4-4 survives everything, also in maintenance.
        let big = cluster(&[
            ("a1", "A", "192.0.2.1:8553", 6, false),
            ("a2", "A", "192.0.2.2:8553", 4, false),
            ("b1", "B", "192.0.2.3:8553", 5, false),
            ("b2", "B", "192.0.2.4:8553", 4, false),
            ("c1", "C", "192.0.2.5:8553", 4, false),
            ("c2", "C", "192.0.2.6:8553", 4, false),
        ]);
        let r = arithmetic(&big);
        let text = r.lines.join("\n");
        assert!(r.warnings.is_empty());
        assert!(text.contains("every pair keeps quorum (the worst leaves 16 of 27)"), "{text}");
        assert_eq!(text.matches("any one more member or site may fail").count(), 6, "{text}");
    }

    #[test]
    fn ns_records_must_reach_two_sites() {
        let c = example();
        let apex = Name::parse("example.com.", None).unwrap();
        let n = |s: &str| Name::parse(s, None).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ok = ns_reach(
            &c,
            &apex,
            &[(n("ns1.example.com."), vec![ip("198.51.100.1")]), (n("ns2.example.com."), vec![ip("203.0.113.1")])],
        );
        assert!(ok.warnings.is_empty());
        assert_eq!(
            ok.lines,
            ["zone example.com.: NS reach 2 sites: fra (ns1.example.com. → a), ams (ns2.example.com. → b)"]
        );
        let one = ns_reach(
            &c,
            &apex,
            &[
                (n("ns1.example.com."), vec![ip("198.51.100.1")]),
                (n("ns2.example.com."), vec![ip("192.0.2.1")]),
                (n("ns.example.net."), vec![]),
                (n("ns3.example.com."), vec![ip("192.0.2.99")]),
            ],
        );
        assert_eq!(one.warnings.len(), 2, "{:?}", one.warnings);
        assert!(one.warnings[0].contains("NS ns2.example.com. (192.0.2.1) is member c, a witness"));
        assert!(
            one.warnings[1].starts_with("zone example.com.: NS records reach only site fra (ns1.example.com. → a)")
        );
        assert!(one.lines.iter().any(|l| l.contains("NS ns.example.net. has no address in the zones here")));
        assert!(one.lines.iter().any(|l| l.contains("NS ns3.example.com. (192.0.2.99) is no member's address")));
    }
}

//! One validated, immutable zone: its names (our own name index, O(labels) to search), their
//! RRsets in wire form, zone cuts, wildcards, glue and pools.
//!
//! Built once from parsed records and pools (`Zone::build`), which enforces the zone rules
//! (one SOA at the apex, NS at the apex, CNAME alone, pools not beside static A/AAAA, …).
//! Never changed afterwards: a reload builds a new one.

use std::path::PathBuf;

use crate::model::name::Name;
use crate::model::pool::Pool;
use crate::model::position::{FileError, Location};
use crate::model::rtype;

/// One record as a file wrote it, before it joins a zone.
#[derive(Debug, Clone)]
pub struct Record {
    pub owner: Name,
    pub ttl: u32,
    pub rtype: u16,
    pub rdata: Box<[u8]>,
    pub at: Location,
}

/// The most bytes one RRset may take in a message: 65535 less the header (12), the longest
/// question (255 + 4) and an OPT record (11).
pub const MAX_RRSET_WIRE: usize = 65535 - 12 - 259 - 11;

pub type NodeId = u32;
pub const NONE: NodeId = u32::MAX;

/// Name → node, storing nothing but node ids: the names themselves live in the nodes, so the
/// index costs about five bytes per name. Keys are lower-case wire names; node names keep their
/// case and are compared ignoring it (length bytes are below 64, never touched by case folding).
#[derive(Default)]
struct Index {
    table: hashbrown::HashTable<NodeId>,
    state: foldhash::fast::RandomState,
}

impl Index {
    fn find<'n>(&self, key: &[u8], name_of: impl Fn(NodeId) -> &'n [u8]) -> Option<NodeId> {
        let hash = std::hash::BuildHasher::hash_one(&self.state, key);
        self.table
            .find(hash, |&id| {
                let name = name_of(id);
                name == key || name.eq_ignore_ascii_case(key)
            })
            .copied()
    }

    /// Adds `id`, named `key` (lower case), which must not be there yet.
    fn insert<'n>(&mut self, key: &[u8], id: NodeId, name_of: impl Fn(NodeId) -> &'n [u8]) {
        let state = &self.state;
        let hash = std::hash::BuildHasher::hash_one(state, key);
        self.table.insert_unique(hash, id, |&other| {
            let mut buf = [0u8; crate::model::name::MAX_NAME_LEN];
            let name = name_of(other);
            buf[..name.len()].copy_from_slice(name);
            buf[..name.len()].make_ascii_lowercase();
            std::hash::BuildHasher::hash_one(state, &buf[..name.len()])
        });
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({} names)", self.table.len())
    }
}

/// Records of one type at one name. RDATA is stored back to back as `[u16 length][bytes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RRset {
    pub rtype: u16,
    pub ttl: u32,
    pub count: u16,
    pub data: Box<[u8]>,
}

impl RRset {
    pub fn new(rtype: u16, ttl: u32, rdatas: impl IntoIterator<Item = impl AsRef<[u8]>>) -> RRset {
        let mut data = Vec::new();
        let mut count = 0u16;
        for r in rdatas {
            let r = r.as_ref();
            data.extend_from_slice(&(r.len() as u16).to_be_bytes());
            data.extend_from_slice(r);
            count += 1;
        }
        RRset { rtype, ttl, count, data: data.into() }
    }

    pub fn rdatas(&self) -> RdataIter<'_> {
        RdataIter { data: &self.data }
    }
}

#[derive(Clone)]
pub struct RdataIter<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for RdataIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.data.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([self.data[0], self.data[1]]) as usize;
        let (r, rest) = self.data[2..].split_at(len);
        self.data = rest;
        Some(r)
    }
}

#[derive(Debug)]
pub struct Node {
    /// The name as written in the zone (original case).
    pub name: Name,
    /// Sorted by type. Empty for an empty non-terminal.
    pub rrsets: Box<[RRset]>,
    /// The zone cut at or above this name (a delegation), or NONE.
    pub cut: NodeId,
    /// Index into `Zone::pools` of the pool answering A/AAAA here, or NONE.
    pub pool: u32,
    /// `*.name` exists.
    pub wildcard_child: bool,
    /// For a zone cut: nodes holding addresses of its name servers (glue).
    pub glue: Box<[NodeId]>,
}

impl Node {
    pub fn rrset(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }
}

#[derive(Debug)]
pub struct Zone {
    pub apex: Name,
    /// Node 0 is the apex.
    pub nodes: Vec<Node>,
    index: Index,
    pub pools: Vec<Pool>,
    /// TTL of negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    pub neg_ttl: u32,
    pub serial: u32,
    /// Files this zone was read from (the zone file and what it includes).
    pub sources: Vec<PathBuf>,
    pub record_count: usize,
    /// A hash of every record (names, types, TTLs, data), to tell whether content changed.
    pub content_hash: u64,
}

pub const APEX: NodeId = 0;

impl Zone {
    pub fn node_id(&self, key: &[u8]) -> Option<NodeId> {
        self.index.find(key, |id| self.nodes[id as usize].name.wire())
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    pub fn soa(&self) -> &RRset {
        self.nodes[APEX as usize].rrset(rtype::SOA).expect("a zone always has an SOA")
    }

    /// The apex's NS names, each with the addresses (A, AAAA) the zone itself holds for it;
    /// none for a name outside the zone.
    pub fn apex_ns(&self) -> Vec<(Name, Vec<std::net::IpAddr>)> {
        let Some(ns) = self.node(APEX).rrset(rtype::NS) else { return Vec::new() };
        ns.rdatas()
            .map(|rd| {
                let name = Name::from_wire_unchecked(rd);
                let addrs = self.addresses(&name);
                (name, addrs)
            })
            .collect()
    }

    /// The addresses in the A and AAAA records at `name` (a pool's targets are not records).
    pub fn addresses(&self, name: &Name) -> Vec<std::net::IpAddr> {
        let Some(id) = self.node_id(&name.key()) else { return Vec::new() };
        let mut out = Vec::new();
        for rt in [rtype::A, rtype::AAAA] {
            for a in self.node(id).rrset(rt).into_iter().flat_map(|s| s.rdatas()) {
                match a.len() {
                    4 => out.push(<[u8; 4]>::try_from(a).unwrap().into()),
                    16 => out.push(<[u8; 16]>::try_from(a).unwrap().into()),
                    _ => {}
                }
            }
        }
        out
    }

    /// Builds and validates a zone. All problems are returned, each with its location.
    pub fn build(
        apex: Name,
        records: Vec<Record>,
        pools: Vec<Pool>,
        sources: Vec<PathBuf>,
    ) -> Result<Zone, Vec<FileError>> {
        let mut errors = Vec::new();
        let mut b = Builder::with_capacity(records.len() + 1);
        b.node(&apex);
        // (node, index into records) for each record kept, sorted below by node and type.
        let mut recs: Vec<(NodeId, u32)> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if !r.owner.is_subdomain_of(&apex) {
                errors.push(FileError { msg: format!("{} is outside zone {apex}", r.owner), at: r.at.clone() });
                continue;
            }
            match r.rtype {
                rtype::DNAME => {
                    errors.push(FileError { msg: "DNAME records are not supported".into(), at: r.at.clone() });
                    continue;
                }
                // RDLENGTH is 16 bits (RFC 1035 §3.2.1): anything longer cannot be sent at all.
                _ if r.rdata.len() > usize::from(u16::MAX) => {
                    errors.push(FileError {
                        msg: format!(
                            "{} record data of {} bytes is over the 65535 a record can carry (RFC 1035 §3.2.1)",
                            rtype::name(r.rtype),
                            r.rdata.len()
                        ),
                        at: r.at.clone(),
                    });
                    continue;
                }
                rtype::SOA if r.owner.key() != apex.key() => {
                    errors.push(FileError {
                        msg: format!("SOA record at {} must be at the zone apex {apex}", r.owner),
                        at: r.at.clone(),
                    });
                    continue;
                }
                _ => {}
            }
            recs.push((b.node(&r.owner), i as u32));
        }
        let record_count = recs.len();
        // Stable: within an RRset, records keep file order; the first sets the TTL.
        recs.sort_by_key(|&(id, i)| (id, records[i as usize].rtype));
        let rec = |k: usize| &records[recs[k].1 as usize];
        // Where an RRset's first record is, for messages.
        let first_at = |id: NodeId, rt: u16| -> Option<&Location> {
            let k = recs.partition_point(|&(n, i)| (n, records[i as usize].rtype) < (id, rt));
            recs.get(k)
                .map(|&(n, i)| (n, &records[i as usize]))
                .filter(|(n, r)| (*n, r.rtype) == (id, rt))
                .map(|(_, r)| &r.at)
        };
        // Every RRset, in node order, and the node of each.
        let mut sets: Vec<RRset> = Vec::new();
        let mut set_node: Vec<NodeId> = Vec::new();
        let mut k = 0;
        while k < recs.len() {
            let (id, rt) = (recs[k].0, rec(k).rtype);
            let mut j = k;
            let mut rdatas: Vec<&[u8]> = Vec::new();
            while j < recs.len() && recs[j].0 == id && rec(j).rtype == rt {
                let d = &*rec(j).rdata;
                if !rdatas.contains(&d) {
                    rdatas.push(d);
                }
                j += 1;
            }
            // The whole set must fit in one message with its question (a 255-byte name), every
            // record's name compressed to 2 bytes, and an OPT record: else no answer can carry it.
            let wire: usize = rdatas.iter().map(|d| 2 + 10 + d.len()).sum();
            if wire > MAX_RRSET_WIRE {
                errors.push(FileError {
                    msg: format!(
                        "{} set of {} records takes {wire} bytes, over the {MAX_RRSET_WIRE} that fit in one DNS message",
                        rtype::name(rt),
                        rdatas.len()
                    ),
                    at: rec(k).at.clone(),
                });
                k = j;
                continue;
            }
            if (rt == rtype::CNAME || rt == rtype::SOA) && rdatas.len() > 1 {
                let what = if rt == rtype::CNAME {
                    "a name can have only one CNAME record"
                } else {
                    "a zone has only one SOA record"
                };
                errors.push(FileError { msg: what.into(), at: rec(k + 1).at.clone() });
            }
            sets.push(RRset::new(rt, rec(k).ttl, rdatas));
            set_node.push(id);
            k = j;
        }
        let sets_of = |id: NodeId| {
            let from = set_node.partition_point(|&n| n < id);
            &sets[from..from + set_node[from..].partition_point(|&n| n == id)]
        };
        for (k, s) in sets.iter().enumerate() {
            if s.rtype != rtype::CNAME {
                continue;
            }
            let id = set_node[k];
            let other = sets_of(id).iter().find(|s| !matches!(s.rtype, rtype::CNAME | rtype::RRSIG | rtype::NSEC));
            if let Some(o) = other {
                errors.push(FileError {
                    msg: format!(
                        "{} has a CNAME and other data ({} at {}); a CNAME must stand alone (RFC 1034 §3.6.2)",
                        b.names[id as usize],
                        rtype::name(o.rtype),
                        first_at(id, o.rtype).expect("has the set")
                    ),
                    at: first_at(id, rtype::CNAME).expect("has a CNAME").clone(),
                });
            }
        }
        let zone_file_at = || Location {
            file: sources.first().map(|p| p.as_path().into()).unwrap_or_else(|| std::path::Path::new("?").into()),
            line: 1,
            col: 1,
        };
        if !sets_of(APEX).iter().any(|s| s.rtype == rtype::SOA) {
            errors.push(FileError { msg: format!("zone {apex} has no SOA record at its apex"), at: zone_file_at() });
        }
        if !sets_of(APEX).iter().any(|s| s.rtype == rtype::NS) {
            errors.push(FileError { msg: format!("zone {apex} has no NS records at its apex"), at: zone_file_at() });
        }

        // Pools: a node each, checked against the static data there.
        let mut pool_at: Vec<(NodeId, usize)> = Vec::new();
        for (pi, p) in pools.iter().enumerate() {
            let id = b.node(&p.name);
            for t in [rtype::A, rtype::AAAA, rtype::CNAME] {
                if let Some(at) = first_at(id, t) {
                    errors.push(FileError {
                        msg: format!(
                            "pool {}: the name also has static {} records (at {at}); remove them or the pool",
                            p.name,
                            rtype::name(t)
                        ),
                        at: p.at.clone(),
                    });
                }
            }
            if pool_at.iter().any(|(n, _)| *n == id) {
                errors.push(FileError { msg: format!("pool {}: defined twice", p.name), at: p.at.clone() });
            }
            pool_at.push((id, pi));
        }
        let Builder { index, names, parents } = b;
        let mut set_node = set_node.into_iter().peekable();
        let mut sets = sets.into_iter();
        let mut nodes: Vec<Node> = (0..)
            .zip(names)
            .map(|(id, name)| Node {
                name,
                rrsets: {
                    let mut n = 0;
                    while set_node.next_if_eq(&id).is_some() {
                        n += 1;
                    }
                    sets.by_ref().take(n).collect()
                },
                cut: NONE,
                pool: NONE,
                wildcard_child: false,
                glue: Box::new([]),
            })
            .collect();
        // Zone cuts: in id order, which puts parents before children.
        for id in 1..nodes.len() as NodeId {
            let parent = parents[id as usize];
            let parent_cut = nodes[parent as usize].cut;
            let node = &mut nodes[id as usize];
            node.cut = if parent_cut != NONE {
                parent_cut
            } else if node.rrset(rtype::NS).is_some() {
                id
            } else {
                NONE
            };
            if node.name.is_wildcard() {
                nodes[parent as usize].wildcard_child = true;
            }
        }
        for (id, pi) in pool_at {
            let node = &mut nodes[id as usize];
            if node.cut != NONE {
                errors.push(FileError {
                    msg: format!("pool {}: the name is at or below a delegation", pools[pi].name),
                    at: pools[pi].at.clone(),
                });
            }
            node.pool = pi as u32;
        }
        // Glue: addresses of each cut's name servers found in this zone.
        for id in 0..nodes.len() {
            if nodes[id].cut != id as NodeId {
                continue;
            }
            let mut glue = Vec::new();
            for rd in nodes[id].rrset(rtype::NS).expect("a cut has NS").rdatas() {
                let target = Name::from_wire_unchecked(rd);
                if let Some(g) = index.find(&target.key(), |id| nodes[id as usize].name.wire()) {
                    let n = &nodes[g as usize];
                    if (n.rrset(rtype::A).is_some() || n.rrset(rtype::AAAA).is_some()) && !glue.contains(&g) {
                        glue.push(g);
                    }
                }
            }
            nodes[id].glue = glue.into();
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let soa = nodes[APEX as usize].rrset(rtype::SOA).expect("checked");
        let rd = soa.rdatas().next().expect("one SOA");
        let minimum = u32::from_be_bytes(rd[rd.len() - 4..].try_into().unwrap());
        let serial = u32::from_be_bytes(rd[rd.len() - 20..rd.len() - 16].try_into().unwrap());
        let content_hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for n in &nodes {
                n.name.key().hash(&mut h);
                for set in n.rrsets.iter() {
                    (set.rtype, set.ttl, &set.data).hash(&mut h);
                }
            }
            h.finish()
        };
        Ok(Zone {
            apex,
            neg_ttl: soa.ttl.min(minimum),
            serial,
            nodes,
            index,
            pools,
            sources,
            record_count,
            content_hash,
        })
    }
}

struct Builder {
    index: Index,
    names: Vec<Name>,
    /// The parent of each node (NONE for the apex): a node is always made after its parent.
    parents: Vec<NodeId>,
}

impl Builder {
    fn with_capacity(n: usize) -> Builder {
        let index = Index { table: hashbrown::HashTable::with_capacity(n), state: Default::default() };
        Builder { index, names: Vec::with_capacity(n), parents: Vec::with_capacity(n) }
    }

    /// The node of `name`, created with its missing ancestors (empty non-terminals) if new.
    fn node(&mut self, name: &Name) -> NodeId {
        self.node_wire(name.wire())
    }

    fn node_wire(&mut self, wire: &[u8]) -> NodeId {
        let mut key = [0u8; crate::model::name::MAX_NAME_LEN];
        let key = &mut key[..wire.len()];
        key.copy_from_slice(wire);
        key.make_ascii_lowercase();
        let names = &self.names;
        if let Some(id) = self.index.find(key, |id| names[id as usize].wire()) {
            return id;
        }
        // Not the apex: make sure the parent exists first (the caller checked containment).
        let parent = if self.names.is_empty() { NONE } else { self.node_wire(&wire[1 + wire[0] as usize..]) };
        let id = self.names.len() as NodeId;
        self.names.push(Name::from_wire_unchecked(wire));
        self.parents.push(parent);
        let names = &self.names;
        self.index.insert(key, id, |id| names[id as usize].wire());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::zonefile::{self, Source};
    use std::path::Path;

    fn zone(text: &str) -> Result<Zone, Vec<String>> {
        let apex = Name::parse("example.com.", None).unwrap();
        let p = zonefile::parse(Source::file(text, Path::new("t.zone")), &apex);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        Zone::build(apex, p.records, Vec::new(), vec!["t.zone".into()])
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    const HEAD: &str = "$TTL 3600\n@ SOA ns1 hm 7 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    fn key(s: &str) -> Box<[u8]> {
        Name::parse(s, None).unwrap().key()
    }

    #[test]
    fn nodes_ents_cuts_wildcards_glue() {
        let z = zone(&format!("{HEAD}a.b.c A 192.0.2.1\n*.w A 192.0.2.2\nsub NS ns.sub\nsub NS ns1\nns.sub A 192.0.2.3\nx.ns.sub A 192.0.2.4\nwww A 192.0.2.5\nwww A 192.0.2.5\n")).unwrap();
        assert_eq!((z.serial, z.neg_ttl), (7, 300));
        let bc = z.node_id(&key("b.c.example.com.")).unwrap();
        assert!(z.node(bc).rrsets.is_empty(), "empty non-terminal");
        assert!(z.node(z.node_id(&key("w.example.com.")).unwrap()).wildcard_child);
        let sub = z.node_id(&key("sub.example.com.")).unwrap();
        assert_eq!(z.node(sub).cut, sub);
        let glue = z.node_id(&key("ns.sub.example.com.")).unwrap();
        assert_eq!(z.node(glue).cut, sub);
        assert_eq!(z.node(z.node_id(&key("x.ns.sub.example.com.")).unwrap()).cut, sub);
        assert_eq!(z.node(sub).glue.len(), 2);
        assert_eq!(z.node(APEX).cut, NONE);
        let www = z.node_id(&key("WWW.example.com.")).unwrap();
        assert_eq!(z.node(www).rrset(rtype::A).unwrap().count, 1, "duplicates merged");
        assert!(z.node_id(&key("nope.example.com.")).is_none());
    }

    #[test]
    fn zone_rules() {
        let e = zone(&format!("{HEAD}www CNAME x\nwww A 192.0.2.1\n")).unwrap_err();
        assert!(e[0].starts_with("t.zone:5:1: www.example.com. has a CNAME and other data (A at t.zone:6:1)"), "{e:?}");
        let e = zone(&format!("{HEAD}www CNAME x\nwww CNAME y\n")).unwrap_err();
        assert!(e[0].contains("only one CNAME"), "{e:?}");
        let e = zone(&format!("{HEAD}www.example.net. A 192.0.2.1\n")).unwrap_err();
        assert!(e[0].contains("outside zone"), "{e:?}");
        let e = zone("$TTL 1\n@ NS ns1\n").unwrap_err();
        assert!(e[0].contains("no SOA"), "{e:?}");
        let e = zone("$TTL 1\n@ SOA ns1 hm 1 1 1 1 1\n").unwrap_err();
        assert!(e[0].contains("no NS"), "{e:?}");
        let e = zone(&format!("{HEAD}x SOA ns1 hm 1 1 1 1 1\n")).unwrap_err();
        assert!(e[0].contains("must be at the zone apex"), "{e:?}");
        let e = zone(&format!("{HEAD}x DNAME y\n")).unwrap_err();
        assert!(e[0].contains("DNAME"), "{e:?}");
    }

    fn zone_with_pool(text: &str, pool_name: &str) -> Result<Zone, Vec<String>> {
        let apex = Name::parse("example.com.", None).unwrap();
        let p = zonefile::parse(Source::file(text, Path::new("t.zone")), &apex);
        Zone::build(
            apex,
            p.records,
            vec![crate::model::pool::testing::pool(pool_name, &[("127.0.0.10", 1)], Default::default())],
            vec![],
        )
        .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn pool_rules() {
        let z = zone_with_pool(&format!("{HEAD}www TXT hi\n"), "www.example.com.").unwrap();
        let www = z.node(z.node_id(&key("www.example.com.")).unwrap());
        assert_eq!(www.pool, 0);
        // A pool on a new name creates it and its empty parents.
        let z = zone_with_pool(HEAD, "a.b.example.com.").unwrap();
        assert!(z.node_id(&key("b.example.com.")).is_some());
        let e = zone_with_pool(&format!("{HEAD}www CNAME x\n"), "www.example.com.").unwrap_err();
        assert!(
            e[0].starts_with(
                "t.toml:9:8: pool www.example.com.: the name also has static CNAME records (at t.zone:5:1)"
            ),
            "{e:?}"
        );
        let e = zone_with_pool(&format!("{HEAD}www AAAA ::1\n"), "www.example.com.").unwrap_err();
        assert!(e[0].contains("static AAAA records"), "{e:?}");
        let e = zone_with_pool(&format!("{HEAD}sub NS ns9\n"), "x.sub.example.com.").unwrap_err();
        assert!(e[0].contains("at or below a delegation"), "{e:?}");
    }

    #[test]
    fn rrset_iteration() {
        let s = RRset::new(rtype::A, 60, [[1u8, 2, 3, 4], [5, 6, 7, 8]]);
        assert_eq!(s.rdatas().collect::<Vec<_>>(), vec![&[1, 2, 3, 4][..], &[5, 6, 7, 8][..]]);
        assert_eq!(s.count, 2);
    }
}

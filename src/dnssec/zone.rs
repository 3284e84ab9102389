//! Signing a zone: its loaded RRsets, NSEC chain and apex keys once, when it loads or its
//! signatures are due ([`sign_zone`], run by the loader, off the control loop); what its pools
//! answer and its SOA per snapshot ([`SignedZone::entry_sigs`], run by the publisher, each
//! distinct RRset signed once and then taken from a bounded cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::dnssec::keys::{Key, Timestamp, active_at, format_timestamp};
use crate::dnssec::records::{DigestType, ds_digest, key_tag};
use crate::dnssec::sign::{SignError, Window, canonical_cmp, nsec_rdata, rrsig_labels, sign_rrset};
use crate::model::name::Name;
use crate::model::rtype;
use crate::model::signed::{EntrySigs, Link, PoolSigs, ZoneSigs};
use crate::model::snapshot::PoolAnswer;
use crate::model::zone::{NONE, RRset, Zone};

/// Signatures are dated from the start of the hour they are made in, less this: clocks of
/// resolvers run behind. Whole hours make the window the same on every cluster member that
/// signs within the hour.
const INCEPTION_SKEW: u64 = 3600;
const WINDOW_STEP: u64 = 3600;

/// Most signatures of pool answers (and SOAs) kept per zone; beyond it the cache starts over.
const CACHE_LIMIT: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ZoneSignError {
    #[error("no key of {zone} in {dir}: make them with `weiche keygen {zone} --dir {dir}`")]
    NoKeys { zone: String, dir: String },
    #[error("no key of {zone} signs at {at} ({what}); its keys: {keys}")]
    NoActive { zone: String, at: String, what: &'static str, keys: String },
    #[error(
        "{name} has {rtype} records in the zone file, but weiche makes the zone's DNSSEC records itself: remove them"
    )]
    OwnRecords { name: String, rtype: String },
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// A zone's keys and what signing it made, valid for one `Zone`.
#[derive(Debug)]
pub struct SignedZone {
    pub keys: Arc<Vec<Key>>,
    pub window: Window,
    pub signed_at: Timestamp,
    /// When to sign again: halfway through the validity, or a key's next timing event.
    pub refresh_at: Timestamp,
    pub sigs: Arc<ZoneSigs>,
    apex: Name,
    /// The tags of the keys that sign the zone's data.
    zone_signers: Vec<u16>,
    /// Per pool: the NSEC's next name and the types of its loaded records.
    pool_nsec: Vec<(Vec<u8>, Vec<u16>)>,
    cache: Mutex<HashMap<Vec<u8>, RRset>>,
}

fn describe_keys(keys: &[Key]) -> String {
    let t = |v: Option<Timestamp>| v.map_or_else(|| "-".to_string(), format_timestamp);
    keys.iter()
        .map(|k| {
            format!(
                "{} {} ({}: Activate {}, Inactive {}, Delete {})",
                if k.is_ksk() { "KSK" } else { "ZSK" },
                k.tag,
                k.path.display(),
                t(k.timing.activate),
                t(k.timing.inactive),
                t(k.timing.delete)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The next time after `now` at which any key's timing changes what is published or signs.
fn next_key_event(keys: &[Key], now: Timestamp) -> Option<Timestamp> {
    keys.iter()
        .flat_map(|k| [k.timing.publish, k.timing.activate, k.timing.inactive, k.timing.delete])
        .flatten()
        .filter(|&t| t > now)
        .min()
}

/// CDS RDATA (SHA-256) of a DNSKEY RDATA.
fn cds_rdata(apex: &Name, dnskey: &[u8]) -> Vec<u8> {
    let mut rd = key_tag(dnskey).to_be_bytes().to_vec();
    rd.push(dnskey[3]);
    rd.push(DigestType::Sha256.number());
    rd.extend(ds_digest(apex, dnskey, DigestType::Sha256));
    rd
}

/// Signs `zone` with `keys` at `now`, valid for `validity` seconds.
pub fn sign_zone(zone: &Zone, keys: Arc<Vec<Key>>, now: Timestamp, validity: u32) -> Result<SignedZone, ZoneSignError> {
    let apex = &zone.apex;
    let active = active_at(&keys, now);
    let no_active = |what| ZoneSignError::NoActive {
        zone: apex.to_string(),
        at: format_timestamp(now),
        what,
        keys: describe_keys(&keys),
    };
    if keys.is_empty() {
        return Err(no_active("there are no keys"));
    }
    if active.zone_signers.is_empty() {
        return Err(no_active("no key is active"));
    }
    if active.key_signers.is_empty() {
        return Err(no_active("no KSK or CSK is active"));
    }
    let base = now - now % WINDOW_STEP;
    let window = Window {
        inception: base.saturating_sub(INCEPTION_SKEW) as u32,
        expiration: base.saturating_add(u64::from(validity)) as u32,
    };
    let signer = apex.wire();
    let sign = |owner: &Name, set: &RRset, with: &[&Key]| {
        sign_rrset(owner.wire(), rrsig_labels(owner.wire()), set, signer, with, window)
    };
    let own = [rtype::DNSKEY, rtype::RRSIG, rtype::NSEC, rtype::NSEC3, rtype::NSEC3PARAM, rtype::CDS, rtype::CDNSKEY];
    let mut rrsigs = Vec::with_capacity(zone.nodes.len());
    for (id, node) in zone.nodes.iter().enumerate() {
        if let Some(set) = node.rrsets.iter().find(|s| own.contains(&s.rtype)) {
            return Err(ZoneSignError::OwnRecords {
                name: node.name.to_string(),
                rtype: rtype::name(set.rtype).into(),
            });
        }
        let (below_cut, at_cut) = (node.cut != NONE && node.cut as usize != id, node.cut as usize == id);
        let mut sigs = Vec::new();
        if !below_cut {
            for set in node.rrsets.iter().filter(|s| s.rtype != rtype::SOA && (!at_cut || s.rtype == rtype::DS)) {
                sigs.push(sign(&node.name, set, &active.zone_signers)?);
            }
        }
        rrsigs.push(sigs.into_boxed_slice());
    }
    // The apex's keys: every published key, and CDS/CDNSKEY for the KSKs and CSKs the parent
    // should point to (published and not yet retired).
    let ttl = zone.soa().ttl;
    let dnskeys: Vec<Vec<u8>> = active.published.iter().map(|k| k.dnskey_rdata()).collect();
    let ksks: Vec<Vec<u8>> = active
        .published
        .iter()
        .filter(|k| k.is_ksk() && k.timing.inactive.is_none_or(|t| t > now))
        .map(|k| k.dnskey_rdata())
        .collect();
    let mut apex_sets = Vec::new();
    for set in [
        RRset::new(rtype::DNSKEY, ttl, &dnskeys),
        RRset::new(rtype::CDS, ttl, ksks.iter().map(|k| cds_rdata(apex, k))),
        RRset::new(rtype::CDNSKEY, ttl, &ksks),
    ] {
        if set.count > 0 {
            let sig = sign(apex, &set, &active.key_signers)?;
            apex_sets.push((set, sig));
        }
    }
    // The NSEC chain.
    let mut chain: Vec<u32> = (0..zone.nodes.len() as u32)
        .filter(|&id| {
            let n = zone.node(id);
            (n.cut == NONE || n.cut == id) && (!n.rrsets.is_empty() || n.pool != NONE)
        })
        .collect();
    chain.sort_by(|&a, &b| canonical_cmp(zone.node(a).name.wire(), zone.node(b).name.wire()));
    let mut link_of = vec![NONE; zone.nodes.len()];
    let mut pool_nsec = vec![(Vec::new(), Vec::new()); zone.pools.len()];
    let mut links = Vec::with_capacity(chain.len());
    for (at, &id) in chain.iter().enumerate() {
        let node = zone.node(id);
        let next = zone.node(chain[(at + 1) % chain.len()]).name.wire();
        let mut types: Vec<u16> = if node.cut == id {
            node.rrsets.iter().map(|s| s.rtype).filter(|&t| t == rtype::NS || t == rtype::DS).collect()
        } else {
            node.rrsets.iter().map(|s| s.rtype).collect()
        };
        types.extend([rtype::RRSIG, rtype::NSEC]);
        if id == 0 {
            types.extend(apex_sets.iter().map(|(s, _)| s.rtype));
        }
        link_of[id as usize] = at as u32;
        if node.pool != NONE {
            pool_nsec[node.pool as usize] = (next.to_vec(), types);
            links.push(Link { node: id, nsec: RRset::default(), sig: RRset::default() });
        } else {
            let nsec = RRset::new(rtype::NSEC, zone.neg_ttl, [nsec_rdata(next, &types)]);
            let sig = sign(&node.name, &nsec, &active.zone_signers)?;
            links.push(Link { node: id, nsec, sig });
        }
    }
    let generation = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (window.inception, window.expiration).hash(&mut h);
        for k in active.zone_signers.iter().chain(&active.key_signers) {
            k.tag.hash(&mut h);
        }
        apex_sets.iter().for_each(|(set, _)| set.data.hash(&mut h));
        h.finish()
    };
    let sigs = ZoneSigs {
        generation,
        rrsigs: rrsigs.into(),
        apex: apex_sets.into(),
        chain: links.into(),
        link_of: link_of.into(),
    };
    // Halfway through: at least half the validity less an hour from now (validity is a day or
    // more).
    let refresh = base + u64::from(validity / 2);
    let zone_signers = active.zone_signers.iter().map(|k| k.tag).collect();
    Ok(SignedZone {
        refresh_at: next_key_event(&keys, now).map_or(refresh, |t| t.min(refresh)),
        window,
        signed_at: now,
        sigs: Arc::new(sigs),
        zone_signers,
        apex: apex.clone(),
        pool_nsec,
        cache: Mutex::new(HashMap::new()),
        keys,
    })
}

impl SignedZone {
    /// Signs `set` at `owner` with the zone's signing keys, or takes the signature made before.
    fn sign_cached(&self, owner: &Name, set: &RRset) -> Result<RRset, SignError> {
        let mut key = owner.key().into_vec();
        key.extend_from_slice(&set.rtype.to_be_bytes());
        key.extend_from_slice(&set.ttl.to_be_bytes());
        key.extend_from_slice(&set.data);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sig) = cache.get(&key) {
            return Ok(sig.clone());
        }
        let signers: Vec<&Key> = self.keys.iter().filter(|k| self.zone_signers.contains(&k.tag)).collect();
        let sig = sign_rrset(owner.wire(), rrsig_labels(owner.wire()), set, self.apex.wire(), &signers, self.window)?;
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, sig.clone());
        Ok(sig)
    }

    /// The signatures of a snapshot of `zone`: its SOA as served and its pools' answers.
    pub fn entry_sigs(&self, zone: &Zone, soa: &RRset, answers: &[PoolAnswer]) -> Result<EntrySigs, SignError> {
        let soa = self.sign_cached(&zone.apex, soa)?;
        let mut pools = Vec::with_capacity(answers.len());
        for (pi, (pool, answer)) in zone.pools.iter().zip(answers).enumerate() {
            let mut sigs = PoolSigs::default();
            for (fam, sig, windows) in
                [(&answer.a, &mut sigs.a, &mut sigs.a_windows), (&answer.aaaa, &mut sigs.aaaa, &mut sigs.aaaa_windows)]
            {
                let set = &fam.rrset;
                if set.count == 0 {
                    continue;
                }
                *sig = self.sign_cached(&pool.name, set)?;
                if let Some(max) = answer.max_answers.filter(|&m| set.count > m) {
                    let mut w = Vec::with_capacity(set.count as usize);
                    for start in 0..set.count as usize {
                        let part = RRset::new(set.rtype, set.ttl, set.rdatas().cycle().skip(start).take(max as usize));
                        w.push(self.sign_cached(&pool.name, &part)?);
                    }
                    *windows = w.into();
                }
            }
            let (next, types) = &self.pool_nsec[pi];
            let mut types = types.clone();
            for (fam, rt) in [(&answer.a, rtype::A), (&answer.aaaa, rtype::AAAA)] {
                if fam.rrset.count > 0 {
                    types.push(rt);
                }
            }
            sigs.nsec = RRset::new(rtype::NSEC, answer.nodata_ttl.min(zone.neg_ttl), [nsec_rdata(next, &types)]);
            sigs.nsec_sig = self.sign_cached(&pool.name, &sigs.nsec)?;
            pools.push(sigs);
        }
        Ok(EntrySigs { zone: self.sigs.clone(), soa, pools: pools.into() })
    }
}

//! Signing RRsets: the canonical form (RFC 4034 §6), RRSIG RDATA (§3.1) and NSEC RDATA with
//! its type bitmap (§4.1). The cryptography is ring's, through [`Key::sign`]; this file only
//! lays out the bytes that are signed.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::dnssec::keys::Key;
use crate::model::name::{MAX_NAME_LEN, wire_len};
use crate::model::rtype;
use crate::model::zone::RRset;

/// When signatures made now are valid: seconds since the epoch, as RRSIG writes them (RFC 4034
/// §3.1.5, serial-number arithmetic over 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub inception: u32,
    pub expiration: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("the key {tag} ({path}) could not sign")]
pub struct SignError {
    pub tag: u16,
    pub path: String,
}

/// The offsets of a wire name's labels, left to right (the root's empty label left out).
fn label_starts(wire: &[u8], out: &mut [u8; 128]) -> usize {
    let (mut i, mut n) = (0usize, 0usize);
    while wire[i] != 0 {
        out[n] = i as u8;
        n += 1;
        i += 1 + wire[i] as usize;
    }
    n
}

/// RFC 4034 §6.1: names compare label by label from the right, each label as lower-case octets
/// (a label that is a prefix of another sorts first), and a name sorts after its ancestors.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut la, mut lb) = ([0u8; 128], [0u8; 128]);
    let (na, nb) = (label_starts(a, &mut la), label_starts(b, &mut lb));
    for k in 1..=na.min(nb) {
        let (sa, sb) = (la[na - k] as usize, lb[nb - k] as usize);
        let x = &a[sa + 1..sa + 1 + a[sa] as usize];
        let y = &b[sb + 1..sb + 1 + b[sb] as usize];
        let ord = x.iter().map(u8::to_ascii_lowercase).cmp(y.iter().map(u8::to_ascii_lowercase));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    na.cmp(&nb)
}

/// The number of labels RRSIG counts for an owner: the root and a leading `*` are not counted
/// (RFC 4034 §3.1.3).
pub fn rrsig_labels(owner: &[u8]) -> u8 {
    let mut buf = [0u8; 128];
    let n = label_starts(owner, &mut buf);
    let wild = owner.len() > 2 && owner[0] == 1 && owner[1] == b'*';
    (n - usize::from(wild)) as u8
}

/// Where the uncompressed wire name at `at` in `rd` ends, if it is one.
fn name_end(rd: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    loop {
        let len = *rd.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
    }
}

/// `rd` with the `names` names from `at` on in lower case; as stored if it is not laid out so
/// (the loader checks the types it parses; a record it could not check is signed as it is).
fn lower_names(rd: &[u8], at: usize, names: usize) -> Cow<'_, [u8]> {
    let mut out = rd.to_vec();
    let mut i = at;
    for _ in 0..names {
        let Some(end) = name_end(rd, i) else { return Cow::Borrowed(rd) };
        out[i..end].make_ascii_lowercase();
        i = end;
    }
    Cow::Owned(out)
}

/// RDATA in canonical form: names in the types RFC 4034 §6.2 lists (as RFC 6840 §5.1 corrects
/// it; A6 and the obsolete SIG and NXT aside) in lower case. Other RDATA is signed as stored.
pub fn canonical_rdata(rt: u16, rd: &[u8]) -> Cow<'_, [u8]> {
    match rt {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME: one name.
        rtype::NS | 3 | 4 | rtype::CNAME | 7 | 8 | 9 | rtype::PTR | rtype::DNAME => lower_names(rd, 0, 1),
        // SOA, MINFO, RP: two names first.
        rtype::SOA | 14 | 17 => lower_names(rd, 0, 2),
        // MX, AFSDB, RT, KX: a number, then a name.
        rtype::MX | 18 | 21 | 36 => lower_names(rd, 2, 1),
        // PX: a number, then two names.
        26 => lower_names(rd, 2, 2),
        rtype::SRV => lower_names(rd, 6, 1),
        rtype::NAPTR => {
            // Order, preference, then flags, services and regexp as character strings.
            let mut i = 4;
            for _ in 0..3 {
                match rd.get(i) {
                    Some(&len) => i += 1 + len as usize,
                    None => return Cow::Borrowed(rd),
                }
            }
            lower_names(rd, i, 1)
        }
        _ => Cow::Borrowed(rd),
    }
}

/// The owner as signed: lower case, and for a wildcard RRSIG (fewer labels than the owner has)
/// `*.` and the rightmost `labels` labels (RFC 4035 §5.3.2).
fn signed_owner(owner: &[u8], labels: u8, out: &mut Vec<u8>) {
    let mut starts = [0u8; 128];
    let n = label_starts(owner, &mut starts);
    if (labels as usize) < n {
        out.extend_from_slice(b"\x01*");
        let from = starts[n - labels as usize] as usize;
        out.extend(owner[from..wire_len(owner)].iter().map(u8::to_ascii_lowercase));
    } else {
        out.extend(owner[..wire_len(owner)].iter().map(u8::to_ascii_lowercase));
    }
}

/// The RRSIG RDATA before its signature (RFC 4034 §3.1): what is covered, how, for when, and
/// by whom (`signer`, the zone's apex, in lower case).
pub fn rrsig_head(set: &RRset, algorithm: u8, labels: u8, window: Window, tag: u16, signer: &[u8]) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(18 + signer.len() + 64);
    rdata.extend_from_slice(&set.rtype.to_be_bytes());
    rdata.push(algorithm);
    rdata.push(labels);
    rdata.extend_from_slice(&set.ttl.to_be_bytes());
    rdata.extend_from_slice(&window.expiration.to_be_bytes());
    rdata.extend_from_slice(&window.inception.to_be_bytes());
    rdata.extend_from_slice(&tag.to_be_bytes());
    rdata.extend(signer[..wire_len(signer)].iter().map(u8::to_ascii_lowercase));
    rdata
}

/// What a signature signs (RFC 4034 §3.1.8.1): the RRSIG RDATA `head`, then each record of
/// `set` in canonical form (§6.2: owner and names in RDATA in lower case, the owner as the
/// wildcard for fewer `labels`) and canonical order (§6.3: by RDATA, duplicates once).
pub fn signed_data(owner: &[u8], labels: u8, set: &RRset, head: &[u8]) -> Vec<u8> {
    let mut rrs: Vec<Cow<'_, [u8]>> = set.rdatas().map(|rd| canonical_rdata(set.rtype, rd)).collect();
    rrs.sort();
    rrs.dedup();
    let mut name = Vec::with_capacity(MAX_NAME_LEN);
    signed_owner(owner, labels, &mut name);
    let mut message = head.to_vec();
    for rd in &rrs {
        message.extend_from_slice(&name);
        message.extend_from_slice(&set.rtype.to_be_bytes());
        message.extend_from_slice(&1u16.to_be_bytes());
        message.extend_from_slice(&set.ttl.to_be_bytes());
        message.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        message.extend_from_slice(rd);
    }
    message
}

/// Signs `set`, owned by `owner` (wire form) with `labels` as the RRSIG's label count, with each
/// of `keys`: one RRSIG per key, as one RRset with the TTL of `set`. `signer` is the zone's apex.
pub fn sign_rrset(
    owner: &[u8],
    labels: u8,
    set: &RRset,
    signer: &[u8],
    keys: &[&Key],
    window: Window,
) -> Result<RRset, SignError> {
    let mut sigs = Vec::with_capacity(keys.len());
    for key in keys {
        let mut rdata = rrsig_head(set, key.algorithm.number(), labels, window, key.tag, signer);
        let message = signed_data(owner, labels, set, &rdata);
        let signature =
            key.sign(&message).map_err(|_| SignError { tag: key.tag, path: key.path.display().to_string() })?;
        rdata.extend_from_slice(&signature);
        sigs.push(rdata);
    }
    Ok(RRset::new(rtype::RRSIG, set.ttl, sigs))
}

/// The type covered by an RRSIG RRset (the first two bytes of each of its RDATA).
pub fn covered(sig: &RRset) -> Option<u16> {
    sig.rdatas().next().map(|rd| u16::from_be_bytes([rd[0], rd[1]]))
}

/// NSEC RDATA: the next owner (lower case) and the bitmap of `types` (RFC 4034 §4.1.2), which
/// need not be sorted.
pub fn nsec_rdata(next: &[u8], types: &[u16]) -> Vec<u8> {
    let mut out: Vec<u8> = next[..wire_len(next)].iter().map(u8::to_ascii_lowercase).collect();
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// The types an NSEC RDATA's bitmap lists.
pub fn nsec_types(rd: &[u8]) -> Vec<u16> {
    let mut i = wire_len(rd);
    let mut out = Vec::new();
    while i + 2 <= rd.len() {
        let (window, len) = (rd[i] as u16, rd[i + 1] as usize);
        for (b, byte) in rd[i + 2..(i + 2 + len).min(rd.len())].iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    out.push(window << 8 | (b * 8 + bit) as u16);
                }
            }
        }
        i += 2 + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::name::Name;

    fn wire(s: &str) -> Vec<u8> {
        Name::parse(s, None).unwrap().wire().to_vec()
    }

    #[test]
    fn names_sort_in_the_canonical_order_of_rfc_4034() {
        // The example of RFC 4034 §6.1, in its order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let wires: Vec<Vec<u8>> = names.iter().map(|n| wire(n)).collect();
        for i in 0..wires.len() {
            for j in 0..wires.len() {
                assert_eq!(canonical_cmp(&wires[i], &wires[j]), i.cmp(&j), "{} vs {}", names[i], names[j]);
            }
        }
        // Case does not matter.
        assert_eq!(canonical_cmp(&wire("WWW.Example."), &wire("www.example.")), Ordering::Equal);
    }

    #[test]
    fn labels_leave_out_the_root_and_a_leading_star() {
        assert_eq!(rrsig_labels(&wire("www.example.com.")), 3);
        assert_eq!(rrsig_labels(&wire("*.example.com.")), 2);
        assert_eq!(rrsig_labels(&wire(".")), 0);
        // A star that is not the first label counts.
        assert_eq!(rrsig_labels(&wire("a.*.example.com.")), 4);
    }

    #[test]
    fn names_in_rdata_are_lower_case_in_canonical_form() {
        let mx = [&[0u8, 10][..], &wire("Mail.Example.COM.")].concat();
        assert_eq!(&*canonical_rdata(rtype::MX, &mx), &[&[0u8, 10][..], &wire("mail.example.com.")].concat()[..]);
        let srv = [&[0u8, 1, 0, 2, 0, 3][..], &wire("SIP.example.")].concat();
        assert_eq!(&canonical_rdata(rtype::SRV, &srv)[6..], &wire("sip.example.")[..]);
        let naptr = [&[0u8, 1, 0, 2, 1, b'U', 0, 0][..], &wire("X.Example.")].concat();
        assert_eq!(&canonical_rdata(rtype::NAPTR, &naptr)[8..], &wire("x.example.")[..]);
        // TXT is not touched.
        assert!(matches!(canonical_rdata(rtype::TXT, b"\x02AB"), Cow::Borrowed(b"\x02AB")));
        // Types known by number only (RFC 3597 in the zone file): RP, AFSDB, PX.
        let rp = [wire("Admin.Example."), wire("TXT.Example.")].concat();
        assert_eq!(&*canonical_rdata(17, &rp), &[wire("admin.example."), wire("txt.example.")].concat()[..]);
        let afsdb = [&[0u8, 1][..], &wire("AFS.Example.")].concat();
        assert_eq!(&canonical_rdata(18, &afsdb)[2..], &wire("afs.example.")[..]);
        // RDATA that is not laid out as its type says is signed as it is, never a panic (found
        // in review: `SRV \# 2 0000`, a NAPTR cut short, a name running off the end).
        for (rt, rd) in [
            (rtype::SRV, &[0u8, 0][..]),
            (rtype::NAPTR, &[0, 1, 0, 2][..]),
            (rtype::NAPTR, &[0, 1, 0, 2, 9, b'U'][..]),
            (rtype::MX, &[0, 10, 5, b'M', b'a'][..]),
            (rtype::SOA, &[1, b'A', 0][..]),
            (26, &[0][..]),
        ] {
            assert_eq!(&*canonical_rdata(rt, rd), rd, "{rt}");
        }
    }

    /// What we sign is byte for byte what hickory-proto, a second implementation, would:
    /// owners and names in RDATA in lower case, a wildcard's owner, RDATA in canonical order
    /// (RFC 4034 §6.2, §6.3, RFC 4035 §5.3.2). (A duplicate record, which our zones never hold,
    /// hickory signs twice; we sign it once, as RFC 4034 §6.3 and unbound do.)
    #[test]
    fn the_signed_data_is_what_hickory_proto_makes() {
        use hickory_proto::dnssec::rdata::sig::SigInput;
        use hickory_proto::dnssec::{Algorithm as HAlg, TBS};
        use hickory_proto::rr::{DNSClass, Name as HName, RData, Record, RecordType, SerialNumber, rdata};
        let window = Window { inception: 1_796_000_000, expiration: 1_797_209_600 };
        let signer = wire("Example.COM.");
        let cases: Vec<(&str, &str, RRset, Vec<RData>)> = vec![
            (
                "WWW.Example.com.",
                "WWW.Example.com.",
                RRset::new(rtype::A, 300, [[192, 0, 2, 3], [192, 0, 2, 1], [192, 0, 2, 2]]),
                [3, 1, 2].map(|d| RData::A(std::net::Ipv4Addr::new(192, 0, 2, d).into())).to_vec(),
            ),
            (
                "a.B.wild.example.com.",
                "*.wild.example.com.",
                RRset::new(rtype::MX, 60, [[&[0u8, 10][..], &wire("Mail.EXAMPLE.com.")].concat()]),
                vec![RData::MX(rdata::MX::new(10, HName::from_ascii("Mail.EXAMPLE.com.").unwrap()))],
            ),
        ];
        for (owner, signed_as, set, theirs) in cases {
            let labels = rrsig_labels(&wire(signed_as));
            let head = rrsig_head(&set, 13, labels, window, 4242, &signer);
            let ours = signed_data(&wire(owner), labels, &set, &head);
            let name = HName::from_ascii(owner).unwrap();
            let records: Vec<Record> =
                theirs.into_iter().map(|d| Record::from_rdata(name.clone(), set.ttl, d)).collect();
            let input = SigInput {
                type_covered: RecordType::from(set.rtype),
                algorithm: HAlg::ECDSAP256SHA256,
                num_labels: labels,
                original_ttl: set.ttl,
                sig_expiration: SerialNumber::new(window.expiration),
                sig_inception: SerialNumber::new(window.inception),
                key_tag: 4242,
                signer_name: HName::from_ascii("Example.COM.").unwrap(),
            };
            let tbs = TBS::from_input(&name, DNSClass::IN, &input, records.iter()).unwrap();
            assert_eq!(ours, tbs.as_ref(), "{owner} {}", set.rtype);
        }
    }

    #[test]
    fn the_nsec_bitmap_of_rfc_4034() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234 at alfa.example.com, next host.example.com.
        let rd = nsec_rdata(&wire("host.example.com."), &[rtype::MX, rtype::A, 1234, rtype::RRSIG, rtype::NSEC]);
        let mut want = wire("host.example.com.");
        want.extend_from_slice(&[0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03]);
        want.extend_from_slice(&[0x04, 0x1b]);
        want.extend_from_slice(&[0; 26]);
        want.push(0x20);
        assert_eq!(rd, want);
        assert_eq!(nsec_types(&rd), vec![rtype::A, rtype::MX, rtype::RRSIG, rtype::NSEC, 1234]);
    }
}

//! Record type numbers and their mnemonics (`A`, `TYPE65280`, …).

pub const A: u16 = 1;
pub const NS: u16 = 2;
pub const CNAME: u16 = 5;
pub const SOA: u16 = 6;
pub const PTR: u16 = 12;
pub const HINFO: u16 = 13;
pub const MX: u16 = 15;
pub const TXT: u16 = 16;
pub const AAAA: u16 = 28;
pub const SRV: u16 = 33;
pub const NAPTR: u16 = 35;
pub const DNAME: u16 = 39;
pub const OPT: u16 = 41;
pub const DS: u16 = 43;
pub const SSHFP: u16 = 44;
pub const RRSIG: u16 = 46;
pub const NSEC: u16 = 47;
pub const DNSKEY: u16 = 48;
pub const NSEC3: u16 = 50;
pub const NSEC3PARAM: u16 = 51;
pub const TLSA: u16 = 52;
pub const SMIMEA: u16 = 53;
pub const CDS: u16 = 59;
pub const CDNSKEY: u16 = 60;
pub const SVCB: u16 = 64;
pub const HTTPS: u16 = 65;
pub const SPF: u16 = 99;
pub const TKEY: u16 = 249;
pub const TSIG: u16 = 250;
pub const IXFR: u16 = 251;
pub const AXFR: u16 = 252;
pub const MAILB: u16 = 253;
pub const MAILA: u16 = 254;
pub const ANY: u16 = 255;
pub const CAA: u16 = 257;

const NAMES: &[(u16, &str)] = &[
    (A, "A"),
    (NS, "NS"),
    (CNAME, "CNAME"),
    (SOA, "SOA"),
    (PTR, "PTR"),
    (HINFO, "HINFO"),
    (MX, "MX"),
    (TXT, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (AAAA, "AAAA"),
    (29, "LOC"),
    (SRV, "SRV"),
    (NAPTR, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (DNAME, "DNAME"),
    (OPT, "OPT"),
    (DS, "DS"),
    (SSHFP, "SSHFP"),
    (RRSIG, "RRSIG"),
    (NSEC, "NSEC"),
    (DNSKEY, "DNSKEY"),
    (NSEC3, "NSEC3"),
    (NSEC3PARAM, "NSEC3PARAM"),
    (TLSA, "TLSA"),
    (SMIMEA, "SMIMEA"),
    (CDS, "CDS"),
    (CDNSKEY, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (SVCB, "SVCB"),
    (HTTPS, "HTTPS"),
    (SPF, "SPF"),
    (TKEY, "TKEY"),
    (TSIG, "TSIG"),
    (IXFR, "IXFR"),
    (AXFR, "AXFR"),
    (MAILB, "MAILB"),
    (MAILA, "MAILA"),
    (ANY, "ANY"),
    (256, "URI"),
    (CAA, "CAA"),
];

/// Parses a type mnemonic or the generic `TYPEnnn` form (RFC 3597), case-insensitively.
pub fn from_str(s: &str) -> Option<u16> {
    if let Some((num, _)) = NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)) {
        return Some(*num);
    }
    let digits = s.get(..4).filter(|p| p.eq_ignore_ascii_case("TYPE")).map(|_| &s[4..])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn name(rtype: u16) -> std::borrow::Cow<'static, str> {
    match NAMES.iter().find(|(n, _)| *n == rtype) {
        Some((_, s)) => (*s).into(),
        None => format!("TYPE{rtype}").into(),
    }
}

/// Types that exist only in queries or transport (RFC 6895 §3.1): never data in a zone.
pub fn is_meta(rtype: u16) -> bool {
    rtype == OPT || (128..=255).contains(&rtype)
}

/// Types whose RDATA names may be compressed in responses (RFC 3597 §4: the RFC 1035 types).
pub fn has_compressible_names(rtype: u16) -> bool {
    matches!(rtype, NS | CNAME | SOA | PTR | MX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(from_str("aaaa"), Some(AAAA));
        assert_eq!(from_str("TYPE65280"), Some(65280));
        assert_eq!(from_str("type1"), Some(A));
        assert_eq!(from_str("TYPE"), None);
        assert_eq!(from_str("TYPE70000"), None);
        assert_eq!(from_str("BOGUS"), None);
        assert_eq!(name(HTTPS), "HTTPS");
        assert_eq!(name(65280), "TYPE65280");
        assert!(is_meta(OPT) && is_meta(ANY) && !is_meta(CAA));
    }
}

//! The records a key gives: DNSKEY RDATA, the key tag (RFC 4034 Appendix B), DS digests
//! (RFC 4034 §5.1.4, RFC 4509, RFC 6605), and DS, CDS, CDNSKEY and DNSKEY in master-file text as
//! `dnssec-dsfromkey` prints them.
//!
//! Pure functions of bytes; the digests are `ring`'s.

use crate::model::name::Name;

/// DS digest types weiche makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestType {
    /// 2: SHA-256 (RFC 4509), what registries expect.
    Sha256,
    /// 4: SHA-384 (RFC 6605).
    Sha384,
}

impl DigestType {
    pub fn number(self) -> u8 {
        match self {
            DigestType::Sha256 => 2,
            DigestType::Sha384 => 4,
        }
    }

    pub fn from_number(n: u8) -> Option<DigestType> {
        match n {
            2 => Some(DigestType::Sha256),
            4 => Some(DigestType::Sha384),
            _ => None,
        }
    }
}

/// DNSKEY RDATA: flags, protocol 3, algorithm, public key (RFC 4034 §2.1).
pub fn dnskey_rdata(flags: u16, algorithm: u8, public_key: &[u8]) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(4 + public_key.len());
    rdata.extend_from_slice(&flags.to_be_bytes());
    rdata.push(3);
    rdata.push(algorithm);
    rdata.extend_from_slice(public_key);
    rdata
}

/// The key tag of a DNSKEY RDATA, for every algorithm but 1 (RFC 4034 Appendix B).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, &b) in rdata.iter().enumerate() {
        acc += if i & 1 == 1 { u32::from(b) } else { u32::from(b) << 8 };
    }
    acc += (acc >> 16) & 0xffff;
    (acc & 0xffff) as u16
}

/// The DS digest of the DNSKEY RDATA `rdata` owned by `owner`: the hash of the owner in
/// canonical form (lower case) followed by the RDATA (RFC 4034 §5.1.4).
pub fn ds_digest(owner: &Name, rdata: &[u8], digest: DigestType) -> Vec<u8> {
    let alg = match digest {
        DigestType::Sha256 => &ring::digest::SHA256,
        DigestType::Sha384 => &ring::digest::SHA384,
    };
    let mut ctx = ring::digest::Context::new(alg);
    ctx.update(&owner.key());
    ctx.update(rdata);
    ctx.finish().as_ref().to_vec()
}

/// DS RDATA in presentation form: `TAG ALG DIGESTTYPE HEX` (hex in upper case, as BIND).
fn ds_fields(owner: &Name, rdata: &[u8], digest: DigestType) -> String {
    format!(
        "{} {} {} {}",
        key_tag(rdata),
        rdata[3],
        digest.number(),
        data_encoding::HEXUPPER.encode(&ds_digest(owner, rdata, digest))
    )
}

fn dnskey_fields(rdata: &[u8]) -> String {
    format!(
        "{} {} {} {}",
        u16::from_be_bytes([rdata[0], rdata[1]]),
        rdata[2],
        rdata[3],
        data_encoding::BASE64.encode(&rdata[4..])
    )
}

/// `owner. IN DS ...`, the line `dnssec-dsfromkey` prints.
pub fn ds_text(owner: &Name, rdata: &[u8], digest: DigestType) -> String {
    format!("{owner} IN DS {}", ds_fields(owner, rdata, digest))
}

/// `owner. IN CDS ...` (RFC 7344), for publishing at the apex.
pub fn cds_text(owner: &Name, rdata: &[u8], digest: DigestType) -> String {
    format!("{owner} IN CDS {}", ds_fields(owner, rdata, digest))
}

/// `owner. IN DNSKEY ...`, as in a BIND `.key` file.
pub fn dnskey_text(owner: &Name, rdata: &[u8]) -> String {
    format!("{owner} IN DNSKEY {}", dnskey_fields(rdata))
}

/// `owner. IN CDNSKEY ...` (RFC 7344), for publishing at the apex.
pub fn cdnskey_text(owner: &Name, rdata: &[u8]) -> String {
    format!("{owner} IN CDNSKEY {}", dnskey_fields(rdata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        data_encoding::BASE64.decode(s.as_bytes()).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    /// RFC 4034 §5.4: the DS of dskey.example.com.'s RSASHA1 key, key tag 60485.
    #[test]
    fn rfc4034_ds_example_sha1_digest_and_key_tag() {
        let public = b64(
            "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
        );
        let rdata = dnskey_rdata(256, 5, &public);
        assert_eq!(key_tag(&rdata), 60485);
        // SHA-1 is no digest type weiche makes; ring's SHA-1 checks the digest input is right.
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&name("dskey.example.com.").key());
        ctx.update(&rdata);
        assert_eq!(data_encoding::HEXUPPER.encode(ctx.finish().as_ref()), "2BB183AF5F22588179A53B0A98631FAD1A292118");
    }

    /// RFC 6605 §6.1: example.net.'s algorithm 13 KSK and its SHA-256 and SHA-384 DS.
    #[test]
    fn rfc6605_ds_examples() {
        let public = b64("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==");
        let rdata = dnskey_rdata(257, 13, &public);
        let owner = name("example.net.");
        assert_eq!(key_tag(&rdata), 55648);
        assert_eq!(
            ds_text(&owner, &rdata, DigestType::Sha256),
            "example.net. IN DS 55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
        // Upper case in the owner does not change the digest (canonical form).
        assert_eq!(
            ds_digest(&name("EXAMPLE.Net."), &rdata, DigestType::Sha256),
            ds_digest(&owner, &rdata, DigestType::Sha256)
        );
    }

    /// RFC 8080 §6.1: example.com.'s algorithm 15 KSK and its SHA-256 DS.
    #[test]
    fn rfc8080_ds_example() {
        let public = b64("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=");
        let rdata = dnskey_rdata(257, 15, &public);
        assert_eq!(key_tag(&rdata), 3613);
        assert_eq!(
            ds_text(&name("example.com."), &rdata, DigestType::Sha256),
            "example.com. IN DS 3613 15 2 3AA5AB37EFCE57F737FC1627013FEE07BDF241BD10F3B1964AB55C78E79A304B"
        );
    }

    /// The key tag and DS agree with hickory-proto's, a second implementation.
    #[test]
    fn key_tag_and_ds_agree_with_hickory() {
        use hickory_proto::dnssec::rdata::DNSKEY;
        use hickory_proto::dnssec::{Algorithm as HAlg, DigestType as HDigest, PublicKeyBuf};
        let public = b64("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==");
        for flags in [256, 257] {
            let theirs = DNSKEY::with_flags(flags, PublicKeyBuf::new(public.clone(), HAlg::ECDSAP256SHA256));
            let rdata = dnskey_rdata(flags, 13, &public);
            assert_eq!(key_tag(&rdata), theirs.calculate_key_tag().unwrap());
            let owner = hickory_proto::rr::Name::from_ascii("Example.NET.").unwrap();
            for (ours, h) in [(DigestType::Sha256, HDigest::SHA256), (DigestType::Sha384, HDigest::SHA384)] {
                assert_eq!(
                    ds_digest(&name("Example.NET."), &rdata, ours),
                    theirs.to_digest(&owner, h).unwrap().as_ref(),
                    "flags {flags}, digest {ours:?}"
                );
            }
        }
    }

    #[test]
    fn text_forms() {
        let public = b64("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=");
        let rdata = dnskey_rdata(257, 15, &public);
        let owner = name("example.com.");
        assert_eq!(
            dnskey_text(&owner, &rdata),
            "example.com. IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4="
        );
        assert_eq!(
            cdnskey_text(&owner, &rdata),
            "example.com. IN CDNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4="
        );
        assert_eq!(
            cds_text(&owner, &rdata, DigestType::Sha256),
            "example.com. IN CDS 3613 15 2 3AA5AB37EFCE57F737FC1627013FEE07BDF241BD10F3B1964AB55C78E79A304B"
        );
        assert!(ds_text(&owner, &rdata, DigestType::Sha384).starts_with("example.com. IN DS 3613 15 4 "));
        assert_eq!(ds_digest(&owner, &rdata, DigestType::Sha384).len(), 48);
    }
}

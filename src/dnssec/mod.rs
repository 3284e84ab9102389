//! DNSSEC: the key material a signed zone needs.
//!
//! Owns keys in BIND's file format (`keys`: reading, checking, which are published and which
//! sign at a given time), making new ones (`keygen`), and the records derived from a key
//! (`records`: DNSKEY RDATA, key tags, DS, CDS and CDNSKEY), the bytes an RRSIG signs (`sign`:
//! canonical form, RRSIG and NSEC RDATA), and signing a zone (`zone`: its loaded RRsets and NSEC
//! chain when it loads, its pools' answers per snapshot, cached).
//!
//! It never does cryptography of its own: keys are made, checked and used by `ring`; this room
//! only reads and writes the formats around them. It imports `model` (names, positions) and
//! nothing else of weiche.

pub mod keygen;
pub mod keys;
pub mod records;
pub mod sign;
pub mod zone;

/// The DNSSEC algorithms weiche signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// 13: ECDSA on P-256 with SHA-256 (RFC 6605).
    EcdsaP256Sha256,
    /// 15: Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    pub fn from_number(n: u8) -> Option<Algorithm> {
        match n {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// BIND's mnemonic, as in `Algorithm: 13 (ECDSAP256SHA256)`.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    /// Length of the public key in DNSKEY form (ECDSA: x and y without the 0x04 prefix).
    pub fn public_key_len(self) -> usize {
        match self {
            Algorithm::EcdsaP256Sha256 => 64,
            Algorithm::Ed25519 => 32,
        }
    }

    /// Length of the private key in BIND's `PrivateKey:` field (the scalar, or the seed).
    pub fn private_key_len(self) -> usize {
        32
    }
}

/// DNSKEY flags of a zone key that is a secure entry point: a KSK, or a CSK.
pub const FLAGS_KSK: u16 = 257;
/// DNSKEY flags of a zone key that only signs the zone's data: a ZSK.
pub const FLAGS_ZSK: u16 = 256;

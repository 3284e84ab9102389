//! Making new keys: a CSK, or a KSK and a ZSK, in BIND's file format with Created, Publish and
//! Activate set to the time given, so that `keys` (and BIND's tools) read them back.
//!
//! ring makes the key from the system's random source; this module only writes the files. The
//! private file is created 0600 and neither file is ever overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::keys::{Timestamp, file_stem, format_ctime, format_timestamp};
use super::{Algorithm, FLAGS_KSK, records};
use crate::model::name::Name;

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("cannot make a key: the system's random source failed")]
    Random,
    #[error("cannot make a key: ring's PKCS#8 document is not the layout expected for a P-256 key")]
    Pkcs8,
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: no free key file name after {tries} keys (a key tag taken each time)", dir.display())]
    NoFreeName { dir: PathBuf, tries: usize },
}

/// A new key's two files, not yet written.
#[derive(Debug)]
pub struct NewKey {
    /// `Kexample.com.+013+12345`.
    pub stem: String,
    pub tag: u16,
    pub flags: u16,
    pub key_file: String,
    pub private_file: String,
}

/// The head of ring's PKCS#8 v1 document for a P-256 key (RFC 5208 around RFC 5915's
/// ECPrivateKey), up to the private key's 32 bytes; then `[1] { BIT STRING 0x04 x y }`.
const P256_PKCS8_HEAD: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
];
const P256_PKCS8_PUBLIC_HEAD: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

/// The private scalar and the public key (DNSKEY form, x and y) of ring's P-256 PKCS#8 document.
fn p256_from_pkcs8(doc: &[u8]) -> Result<(&[u8], &[u8]), KeygenError> {
    let rest = doc.strip_prefix(&P256_PKCS8_HEAD[..]).ok_or(KeygenError::Pkcs8)?;
    let (private, rest) = rest.split_at_checked(32).ok_or(KeygenError::Pkcs8)?;
    let point = rest.strip_prefix(&P256_PKCS8_PUBLIC_HEAD[..]).ok_or(KeygenError::Pkcs8)?;
    match point {
        [0x04, xy @ ..] if xy.len() == 64 => Ok((private, xy)),
        _ => Err(KeygenError::Pkcs8),
    }
}

/// Makes a key for `zone` and writes nothing: the text of its two files.
pub fn generate(
    zone: &Name,
    algorithm: Algorithm,
    flags: u16,
    now: Timestamp,
    rng: &dyn SecureRandom,
) -> Result<NewKey, KeygenError> {
    let (private, public) = match algorithm {
        Algorithm::EcdsaP256Sha256 => {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng).map_err(|_| KeygenError::Random)?;
            let (private, public) = p256_from_pkcs8(doc.as_ref())?;
            // The bytes taken out of the document must make the same key pair again.
            let mut uncompressed = vec![0x04];
            uncompressed.extend_from_slice(public);
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                private,
                &uncompressed,
                rng,
            )
            .map_err(|_| KeygenError::Pkcs8)?;
            (private.to_vec(), public.to_vec())
        }
        Algorithm::Ed25519 => {
            let mut seed = [0u8; 32];
            rng.fill(&mut seed).map_err(|_| KeygenError::Random)?;
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| KeygenError::Random)?;
            (seed.to_vec(), pair.public_key().as_ref().to_vec())
        }
    };
    let rdata = records::dnskey_rdata(flags, algorithm.number(), &public);
    let tag = records::key_tag(&rdata);
    let kind = if flags == FLAGS_KSK { "key-signing" } else { "zone-signing" };
    let when = format!("{} ({})", format_timestamp(now), format_ctime(now));
    let key_file = format!(
        "; This is a {kind} key, keyid {tag}, for {zone}\n; Created: {when}\n; Publish: {when}\n; Activate: {when}\n{}\n",
        records::dnskey_text(zone, &rdata)
    );
    let stamp = format_timestamp(now);
    let private_file = format!(
        "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\nCreated: {stamp}\nPublish: {stamp}\nActivate: {stamp}\n",
        algorithm.number(),
        algorithm.mnemonic(),
        data_encoding::BASE64.encode(&private)
    );
    Ok(NewKey { stem: file_stem(zone, algorithm, tag), tag, flags, key_file, private_file })
}

/// Writes a key's files into `dir`: the `.private` file 0600, neither over an existing file.
/// Returns the `.key` file's path, or None if a key with this name is already there.
pub fn write(dir: &Path, key: &NewKey) -> Result<Option<PathBuf>, KeygenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let private_path = dir.join(format!("{}.private", key.stem));
    let key_path = dir.join(format!("{}.key", key.stem));
    let create =
        |path: &Path, mode: u32| std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path);
    if key_path.exists() {
        return Ok(None);
    }
    let mut private = match create(&private_path, 0o600) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(source) => return Err(KeygenError::Write { path: private_path, source }),
    };
    let written = private.write_all(key.private_file.as_bytes()).and_then(|()| private.sync_all());
    if let Err(source) = written {
        let _ = std::fs::remove_file(&private_path);
        return Err(KeygenError::Write { path: private_path, source });
    }
    let written =
        create(&key_path, 0o644).and_then(|mut f| f.write_all(key.key_file.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&private_path);
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            return Ok(None);
        }
        return Err(KeygenError::Write { path: key_path, source });
    }
    Ok(Some(key_path))
}

/// Makes a key and writes it into `dir`, making another if its name is taken (a key tag the
/// zone already has for this algorithm). Returns the `.key` file's path.
pub fn generate_into(
    dir: &Path,
    zone: &Name,
    algorithm: Algorithm,
    flags: u16,
    now: Timestamp,
    rng: &dyn SecureRandom,
) -> Result<PathBuf, KeygenError> {
    const TRIES: usize = 16;
    for _ in 0..TRIES {
        let key = generate(zone, algorithm, flags, now, rng)?;
        if let Some(path) = write(dir, &key)? {
            tracing::info!(zone = %zone, tag = key.tag, flags, algorithm = algorithm.number(), file = %path.display(), "key made");
            return Ok(path);
        }
    }
    Err(KeygenError::NoFreeName { dir: dir.to_path_buf(), tries: TRIES })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::{FLAGS_ZSK, keys};

    // The same bytes every time: the same key every time.
    #[allow(deprecated)]
    fn fixed() -> ring::test::rand::FixedByteRandom {
        ring::test::rand::FixedByteRandom { byte: 7 }
    }

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn files_are_what_bind_writes() {
        let now = keys::parse_timestamp("20261202091724").unwrap();
        let k = generate(&name("example.com."), Algorithm::Ed25519, FLAGS_KSK, now, &fixed()).unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let public = data_encoding::BASE64.encode(pair.public_key().as_ref());
        let tag = records::key_tag(&records::dnskey_rdata(257, 15, pair.public_key().as_ref()));
        assert_eq!(k.stem, format!("Kexample.com.+015+{tag:05}"));
        assert_eq!(
            k.key_file,
            format!(
                "; This is a key-signing key, keyid {tag}, for example.com.\n\
                 ; Created: 20261202091724 (Wed Dec  2 09:17:24 2026)\n\
                 ; Publish: 20261202091724 (Wed Dec  2 09:17:24 2026)\n\
                 ; Activate: 20261202091724 (Wed Dec  2 09:17:24 2026)\n\
                 example.com. IN DNSKEY 257 3 15 {public}\n"
            )
        );
        assert_eq!(
            k.private_file,
            format!(
                "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: {}\n\
                 Created: 20261202091724\nPublish: 20261202091724\nActivate: 20261202091724\n",
                data_encoding::BASE64.encode(&[7; 32])
            )
        );
        let k = generate(&name("example.com."), Algorithm::EcdsaP256Sha256, FLAGS_ZSK, now, &fixed()).unwrap();
        assert!(k.key_file.starts_with("; This is a zone-signing key, keyid "), "{}", k.key_file);
        assert!(k.private_file.contains("\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: "), "{}", k.private_file);
    }

    #[test]
    fn a_taken_name_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let zone = name("example.com.");
        let first = generate_into(dir.path(), &zone, Algorithm::Ed25519, FLAGS_KSK, 0, &fixed()).unwrap();
        let before = std::fs::read(first.with_extension("private")).unwrap();
        // The fixed source makes the same key, and so the same name, every time.
        let again = generate_into(dir.path(), &zone, Algorithm::Ed25519, FLAGS_KSK, 1, &fixed()).unwrap_err();
        assert!(matches!(again, KeygenError::NoFreeName { tries: 16, .. }), "{again}");
        assert_eq!(std::fs::read(first.with_extension("private")).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // A directory that is not there.
        let e = generate_into(&dir.path().join("nope"), &zone, Algorithm::Ed25519, FLAGS_KSK, 0, &fixed()).unwrap_err();
        assert!(e.to_string().contains("nope/Kexample.com.+015+") && e.to_string().contains("cannot write"), "{e}");
    }

    #[test]
    fn pkcs8_of_another_layout_is_refused() {
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let (private, public) = p256_from_pkcs8(doc.as_ref()).unwrap();
        assert_eq!((private.len(), public.len()), (32, 64));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        assert_eq!(&pair.public_key().as_ref()[1..], public);
        let mut other = doc.as_ref().to_vec();
        other[10] ^= 1;
        assert!(matches!(p256_from_pkcs8(&other), Err(KeygenError::Pkcs8)));
        assert!(matches!(p256_from_pkcs8(&doc.as_ref()[..100]), Err(KeygenError::Pkcs8)));
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        assert!(matches!(p256_from_pkcs8(ed.as_ref()), Err(KeygenError::Pkcs8)));
    }
}

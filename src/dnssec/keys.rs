//! Keys in BIND's file format: `Kzone.+AAA+TTTTT.key` (the DNSKEY record, with the timing
//! metadata in comments) and `Kzone.+AAA+TTTTT.private` (`Private-key-format: v1.3`, the private
//! key, the timing metadata). Owns reading a pair, checking it (owner, algorithm, flags, that
//! the private key makes the public key, that the key tag is the file name's), loading a zone's
//! key directory, and deciding which keys are published and which sign at a given time
//! ([`active_at`], pure).
//!
//! It never makes keys (`keygen` does) nor signs answers. Every problem names its file, and
//! the line and column where there is one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::records::{self, DigestType};
use super::{Algorithm, FLAGS_KSK, FLAGS_ZSK};
use crate::model::name::Name;
use crate::model::position::{FileError, Location};

/// Seconds since the Unix epoch, UTC: a BIND timing value.
pub type Timestamp = u64;

/// A key's timing metadata (BIND's `Created`, `Publish`, `Activate`, `Inactive`, `Delete`).
/// A field left out is never reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub created: Option<Timestamp>,
    pub publish: Option<Timestamp>,
    pub activate: Option<Timestamp>,
    pub inactive: Option<Timestamp>,
    pub delete: Option<Timestamp>,
    /// A key from before timing metadata (`Private-key-format: v1.2` or older): BIND publishes it
    /// and signs with it always, and so does weiche.
    pub legacy: bool,
}

fn reached(t: Option<Timestamp>, now: Timestamp) -> bool {
    t.is_some_and(|t| t <= now)
}

impl Timing {
    /// Signing with it: from Activate, until Inactive or Delete.
    pub fn signs_at(&self, now: Timestamp) -> bool {
        if self.legacy {
            return true;
        }
        reached(self.activate, now) && !reached(self.inactive, now) && !reached(self.delete, now)
    }

    /// In the DNSKEY RRset: from Publish (or from Activate, if that is earlier: a key that signs
    /// is published, as BIND does), until Delete.
    pub fn published_at(&self, now: Timestamp) -> bool {
        if self.legacy {
            return true;
        }
        (reached(self.publish, now) || reached(self.activate, now)) && !reached(self.delete, now)
    }
}

/// The private half, held by ring.
pub enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        match self {
            Signer::Ecdsa(_) => f.write_str("Signer::Ecdsa"),
            Signer::Ed25519(_) => f.write_str("Signer::Ed25519"),
        }
    }
}

/// One checked key pair of a zone.
#[derive(Debug)]
pub struct Key {
    pub zone: Name,
    pub flags: u16,
    pub algorithm: Algorithm,
    /// In DNSKEY form.
    pub public_key: Vec<u8>,
    pub tag: u16,
    pub timing: Timing,
    /// The `.key` file; the `.private` file is beside it.
    pub path: PathBuf,
    signer: Signer,
}

impl Key {
    pub fn is_ksk(&self) -> bool {
        self.flags == FLAGS_KSK
    }

    pub fn dnskey_rdata(&self) -> Vec<u8> {
        records::dnskey_rdata(self.flags, self.algorithm.number(), &self.public_key)
    }

    pub fn ds_text(&self, digest: DigestType) -> String {
        records::ds_text(&self.zone, &self.dnskey_rdata(), digest)
    }

    pub fn cds_text(&self, digest: DigestType) -> String {
        records::cds_text(&self.zone, &self.dnskey_rdata(), digest)
    }

    pub fn cdnskey_text(&self) -> String {
        records::cdnskey_text(&self.zone, &self.dnskey_rdata())
    }

    pub fn dnskey_text(&self) -> String {
        records::dnskey_text(&self.zone, &self.dnskey_rdata())
    }

    /// Signs `message` (for an RRSIG: RFC 4034 §3.1.8.1's RRSIG RDATA and RRset) in the DNSSEC
    /// form of the key's algorithm (ECDSA: r and s, 32 bytes each, RFC 6605 §4).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        match &self.signer {
            Signer::Ecdsa(k) => Ok(k.sign(&SystemRandom::new(), message)?.as_ref().to_vec()),
            Signer::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: cannot read the key directory: {source}", path.display())]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{}: missing: every .key file needs its .private file beside it", path.display())]
    MissingPrivate { path: PathBuf },
    #[error("{}: {msg}", path.display())]
    FileName { path: PathBuf, msg: String },
    /// A file that is not what BIND writes.
    #[error(transparent)]
    Syntax(FileError),
    /// An algorithm weiche does not sign with.
    #[error("{at}: algorithm {algorithm} is not one weiche signs with (13 ECDSAP256SHA256, 15 ED25519)")]
    Unsupported { at: Location, algorithm: u8 },
    /// The two files, or a file and its name, disagree.
    #[error(transparent)]
    Mismatch(FileError),
}

/// Reads a BIND timing value, `YYYYMMDDHHMMSS` in UTC.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rfc3339 = format!("{}-{}-{}T{}:{}:{}Z", &s[0..4], &s[4..6], &s[6..8], &s[8..10], &s[10..12], &s[12..14]);
    let t = humantime::parse_rfc3339(&rfc3339).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
}

/// Writes a BIND timing value, `YYYYMMDDHHMMSS` in UTC.
pub fn format_timestamp(t: Timestamp) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
    // 2026-12-02T09:17:24Z
    humantime::format_rfc3339_seconds(at).to_string().chars().filter(char::is_ascii_digit).collect()
}

/// The C library's `ctime` form BIND writes after a timing value: `Wed Dec  2 09:17:24 2026`.
pub fn format_ctime(t: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let s = format_timestamp(t);
    let month: usize = s[4..6].parse().expect("two digits");
    let day: u32 = s[6..8].parse().expect("two digits");
    format!(
        "{} {} {day:>2} {}:{}:{} {}",
        DAYS[(t / 86_400 % 7) as usize],
        MONTHS[month - 1],
        &s[8..10],
        &s[10..12],
        &s[12..14],
        &s[0..4]
    )
}

/// The timing fields, by their names in BIND's files.
const TIMING_FIELDS: [&str; 5] = ["Created", "Publish", "Activate", "Inactive", "Delete"];

fn timing_field<'t>(t: &'t mut Timing, field: &str) -> Option<&'t mut Option<Timestamp>> {
    Some(match field {
        "Created" => &mut t.created,
        "Publish" => &mut t.publish,
        "Activate" => &mut t.activate,
        "Inactive" => &mut t.inactive,
        "Delete" => &mut t.delete,
        _ => return None,
    })
}

/// Other fields BIND writes in a `.private` file of algorithm 13 or 15, which weiche does not
/// act on (yet): they are read and left alone.
const OTHER_BIND_FIELDS: [&str; 11] = [
    "Revoke",
    "SyncPublish",
    "SyncDelete",
    "DSPublish",
    "DSDelete",
    "DSRemoved",
    "PublishCDS",
    "DeleteCDS",
    "Predecessor",
    "Successor",
    "Lifetime",
];

/// What the `.key` file says.
#[derive(Debug)]
struct KeyFile {
    owner: Name,
    flags: u16,
    algorithm: u8,
    public_key: Vec<u8>,
    timing: Timing,
    /// Where each timing field was given, for disagreements.
    timing_at: Vec<(&'static str, Location)>,
    /// Where the public key starts.
    key_at: Location,
    algorithm_at: Location,
    owner_at: Location,
}

/// Splits a line into its words and their byte offsets in the line.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// 1-based column of a byte offset in a line.
fn col(line: &str, offset: usize) -> u32 {
    line[..offset].chars().count() as u32 + 1
}

fn at(file: &Arc<Path>, line: usize, col: u32) -> Location {
    Location { file: file.clone(), line: line as u32 + 1, col }
}

fn syntax(file: &Arc<Path>, line: usize, col: u32, msg: impl Into<String>) -> KeyError {
    KeyError::Syntax(FileError::new(file, line as u32 + 1, col, msg))
}

/// Reads a timing value after `Name:` (in either file): `YYYYMMDDHHMMSS`, and in the `.key` file
/// a `(ctime)` after it, which is only for people.
fn timing_value(file: &Arc<Path>, n: usize, line: &str, rest_at: usize) -> Result<Timestamp, KeyError> {
    let ws = words(&line[rest_at..]);
    let Some(&(o, v)) = ws.first() else {
        return Err(syntax(file, n, col(line, line.len()), "expected a time, YYYYMMDDHHMMSS"));
    };
    parse_timestamp(v).ok_or_else(|| {
        syntax(file, n, col(line, rest_at + o), format!("expected a time in UTC, YYYYMMDDHHMMSS, got {v:?}"))
    })
}

fn parse_key_file(file: &Arc<Path>, text: &str) -> Result<KeyFile, KeyError> {
    let mut timing = Timing::default();
    let mut timing_at = Vec::new();
    let mut record: Option<KeyFile> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix(';') {
            // `; Publish: 20261202091724 (Wed Dec  2 09:17:24 2026)`; other comments are prose.
            let comment_at = line.len() - comment.len();
            let c = comment.trim_start();
            if let Some((field, _)) = c.split_once(':')
                && let Some(&name) = TIMING_FIELDS.iter().find(|&&f| f == field)
            {
                let rest_at = comment_at + (comment.len() - c.len()) + field.len() + 1;
                let value = timing_value(file, n, line, rest_at)?;
                *timing_field(&mut timing, name).expect("a timing field") = Some(value);
                timing_at.push((name, at(file, n, col(line, comment_at + (comment.len() - c.len())))));
            }
            continue;
        }
        if record.is_some() {
            return Err(syntax(
                file,
                n,
                col(line, line.len() - trimmed.len()),
                "a second record: a .key file holds one DNSKEY",
            ));
        }
        let line = line.split(';').next().unwrap_or("");
        let ws = words(line);
        let mut i = 0;
        let (owner_o, owner_text) = ws[0];
        let owner = Name::parse(owner_text, None).map_err(|e| syntax(file, n, col(line, owner_o), e.to_string()))?;
        i += 1;
        // [TTL] [IN] DNSKEY, TTL and class in either order.
        while let Some(&(o, w)) = ws.get(i) {
            if w.eq_ignore_ascii_case("DNSKEY") {
                break;
            }
            if !(w.eq_ignore_ascii_case("IN") || w.bytes().all(|b| b.is_ascii_digit())) {
                return Err(syntax(file, n, col(line, o), format!("expected a DNSKEY record, got {w:?}")));
            }
            i += 1;
        }
        if ws.get(i).is_none() {
            return Err(syntax(file, n, col(line, line.len()), "expected DNSKEY"));
        }
        i += 1;
        let mut number = |what: &str, max: u32| -> Result<(u32, Location), KeyError> {
            let Some(&(o, w)) = ws.get(i) else {
                return Err(syntax(file, n, col(line, line.len()), format!("expected the {what}")));
            };
            i += 1;
            match w.parse::<u32>() {
                Ok(v) if v <= max => Ok((v, at(file, n, col(line, o)))),
                _ => Err(syntax(file, n, col(line, o), format!("{what}: expected a number up to {max}, got {w:?}"))),
            }
        };
        let (flags, flags_at) = number("flags", 65535)?;
        let (protocol, protocol_at) = number("protocol", 255)?;
        let (algorithm, algorithm_at) = number("algorithm", 255)?;
        if protocol != 3 {
            return Err(KeyError::Syntax(FileError {
                at: protocol_at,
                msg: format!("protocol must be 3 (RFC 4034 §2.1.2), got {protocol}"),
            }));
        }
        if flags != u32::from(FLAGS_KSK) && flags != u32::from(FLAGS_ZSK) {
            return Err(KeyError::Syntax(FileError {
                at: flags_at,
                msg: format!("flags must be 257 (KSK or CSK) or 256 (ZSK), got {flags}"),
            }));
        }
        let Some(&(key_o, _)) = ws.get(i) else {
            return Err(syntax(file, n, col(line, line.len()), "expected the public key (base64)"));
        };
        let b64: String = ws[i..].iter().map(|(_, w)| *w).collect();
        let public_key = data_encoding::BASE64
            .decode(b64.as_bytes())
            .map_err(|e| syntax(file, n, col(line, key_o), format!("public key: not base64: {e}")))?;
        record = Some(KeyFile {
            owner,
            flags: flags as u16,
            algorithm: algorithm as u8,
            public_key,
            timing: Timing::default(),
            timing_at: Vec::new(),
            key_at: at(file, n, col(line, key_o)),
            algorithm_at,
            owner_at: at(file, n, col(line, owner_o)),
        });
    }
    let mut record = record.ok_or_else(|| {
        let lines = text.lines().count();
        syntax(file, lines.saturating_sub(1), 1, "no DNSKEY record in the file")
    })?;
    record.timing = timing;
    record.timing_at = timing_at;
    Ok(record)
}

/// What the `.private` file says.
struct PrivateFile {
    algorithm: u8,
    algorithm_at: Location,
    private_key: Vec<u8>,
    private_key_at: Location,
    timing: Timing,
    timing_at: Vec<(&'static str, Location)>,
}

fn parse_private_file(file: &Arc<Path>, text: &str) -> Result<PrivateFile, KeyError> {
    let mut format = None;
    let mut algorithm = None;
    let mut private_key = None;
    let mut timing = Timing::default();
    let mut timing_at = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((field, _)) = line.split_once(':') else {
            return Err(syntax(file, n, 1, "expected `Field: value`"));
        };
        let rest_at = field.len() + 1;
        let rest = &line[rest_at..];
        let value_at = rest_at + (rest.len() - rest.trim_start().len());
        let value = rest.trim();
        match field {
            "Private-key-format" => {
                let v = value.strip_prefix("v1.").and_then(|m| m.parse::<u32>().ok()).filter(|&m| m <= 3).ok_or_else(
                    || syntax(file, n, col(line, value_at), format!("expected v1.3 (or v1.2), got {value:?}")),
                )?;
                format = Some(v);
            }
            _ if format.is_none() => {
                return Err(syntax(file, n, 1, "expected `Private-key-format: v1.3` on the first line"));
            }
            "Algorithm" => {
                // `13 (ECDSAP256SHA256)`: the number is what counts.
                let number = value.split_whitespace().next().unwrap_or("");
                let a = number.parse::<u8>().map_err(|_| {
                    syntax(file, n, col(line, value_at), format!("expected an algorithm number, got {value:?}"))
                })?;
                algorithm = Some((a, at(file, n, col(line, value_at))));
            }
            "PrivateKey" => {
                let key = data_encoding::BASE64
                    .decode(value.as_bytes())
                    .map_err(|e| syntax(file, n, col(line, value_at), format!("private key: not base64: {e}")))?;
                private_key = Some((key, at(file, n, col(line, value_at))));
            }
            f if TIMING_FIELDS.contains(&f) => {
                let name = TIMING_FIELDS.iter().find(|&&x| x == f).expect("listed");
                if format.is_some_and(|v| v < 3) {
                    return Err(syntax(file, n, 1, format!("{f}: timing metadata needs Private-key-format: v1.3")));
                }
                *timing_field(&mut timing, name).expect("a timing field") = Some(timing_value(file, n, line, rest_at)?);
                timing_at.push((*name, at(file, n, 1)));
            }
            f if OTHER_BIND_FIELDS.contains(&f) => {
                tracing::debug!(file = %file.display(), field = f, "BIND key field left alone");
            }
            f => {
                let hint = match f {
                    "Modulus" | "PublicExponent" | "Prime1" => " (an RSA key: weiche signs with algorithms 13 and 15)",
                    _ => "",
                };
                return Err(syntax(file, n, 1, format!("unknown field {f:?}{hint}")));
            }
        }
    }
    let last = text.lines().count().saturating_sub(1);
    let format = format.ok_or_else(|| syntax(file, 0, 1, "expected `Private-key-format: v1.3`"))?;
    let (algorithm, algorithm_at) = algorithm.ok_or_else(|| syntax(file, last, 1, "no `Algorithm:` line"))?;
    let (private_key, private_key_at) = private_key.ok_or_else(|| syntax(file, last, 1, "no `PrivateKey:` line"))?;
    timing.legacy = format < 3;
    Ok(PrivateFile { algorithm, algorithm_at, private_key, private_key_at, timing, timing_at })
}

/// What a key file's name says: `Kexample.com.+013+12345.key`.
#[derive(Debug, PartialEq, Eq)]
pub struct FileName {
    /// The zone as written, without the final dot (`.` for the root).
    pub zone: String,
    pub algorithm: u8,
    pub tag: u16,
}

/// Reads a key file's name (`.key` or `.private`); None if it is not one.
pub fn parse_file_name(name: &str) -> Option<FileName> {
    let stem = name.strip_suffix(".key").or_else(|| name.strip_suffix(".private"))?;
    let stem = stem.strip_prefix('K')?;
    let (rest, tag) = stem.rsplit_once('+')?;
    let (zone, algorithm) = rest.rsplit_once(".+")?;
    if algorithm.len() != 3 || tag.len() != 5 {
        return None;
    }
    let zone = if zone.is_empty() { ".".to_string() } else { zone.to_string() };
    Some(FileName { zone, algorithm: algorithm.parse().ok()?, tag: tag.parse().ok()? })
}

/// The base of a key's file names: `Kexample.com.+013+12345` (add `.key` or `.private`).
pub fn file_stem(zone: &Name, algorithm: Algorithm, tag: u16) -> String {
    let zone = zone.to_string();
    let zone = zone.strip_suffix('.').filter(|z| !z.is_empty()).unwrap_or(&zone);
    let zone = if zone == "." { "" } else { zone };
    format!("K{zone}.+{:03}+{tag:05}", algorithm.number())
}

/// Reads and checks one key pair: `path` is the `.key` file, and `zone` the zone it must be for.
pub fn load_key(path: &Path, zone: &Name) -> Result<Key, KeyError> {
    let file: Arc<Path> = Arc::from(path);
    let read = |p: &Path| {
        crate::config::bounded::read_text(p, crate::config::bounded::SECRET_LIMIT, "the most a key file may have")
            .map_err(|e| KeyError::Read { path: p.to_path_buf(), source: std::io::Error::other(e) })
    };
    let private_path = path.with_extension("private");
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let named = parse_file_name(file_name).ok_or_else(|| KeyError::FileName {
        path: path.to_path_buf(),
        msg: "expected a BIND key file name, Kzone.+AAA+TTTTT.key".into(),
    })?;
    let text = read(path)?;
    let public = parse_key_file(&file, &text)?;
    if !private_path.exists() {
        return Err(KeyError::MissingPrivate { path: private_path });
    }
    let private_file: Arc<Path> = Arc::from(private_path.as_path());
    let private = parse_private_file(&private_file, &read(&private_path)?)?;

    let mismatch = |at: &Location, msg: String| KeyError::Mismatch(FileError { at: at.clone(), msg });
    if public.owner.key() != zone.key() {
        return Err(mismatch(&public.owner_at, format!("the key is for {}, not for the zone {zone}", public.owner)));
    }
    let Some(algorithm) = Algorithm::from_number(public.algorithm) else {
        return Err(KeyError::Unsupported { at: public.algorithm_at, algorithm: public.algorithm });
    };
    if private.algorithm != public.algorithm {
        return Err(mismatch(
            &private.algorithm_at,
            format!("algorithm {} here, {} in {}", private.algorithm, public.algorithm, path.display()),
        ));
    }
    if public.public_key.len() != algorithm.public_key_len() {
        return Err(mismatch(
            &public.key_at,
            format!(
                "an algorithm {} public key is {} bytes, this one is {}",
                public.algorithm,
                algorithm.public_key_len(),
                public.public_key.len()
            ),
        ));
    }
    if private.private_key.len() != algorithm.private_key_len() {
        return Err(mismatch(
            &private.private_key_at,
            format!(
                "an algorithm {} private key is {} bytes, this one is {}",
                public.algorithm,
                algorithm.private_key_len(),
                private.private_key.len()
            ),
        ));
    }
    // ring derives the public key from the private one and refuses a pair that disagrees.
    let not_pair = || {
        mismatch(
            &private.private_key_at,
            format!("this private key does not make the public key in {}", path.display()),
        )
    };
    let signer = match algorithm {
        Algorithm::EcdsaP256Sha256 => {
            let mut uncompressed = Vec::with_capacity(65);
            uncompressed.push(0x04);
            uncompressed.extend_from_slice(&public.public_key);
            Signer::Ecdsa(
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &private.private_key,
                    &uncompressed,
                    &SystemRandom::new(),
                )
                .map_err(|_| not_pair())?,
            )
        }
        Algorithm::Ed25519 => Signer::Ed25519(
            Ed25519KeyPair::from_seed_and_public_key(&private.private_key, &public.public_key)
                .map_err(|_| not_pair())?,
        ),
    };
    debug_assert_eq!(
        match &signer {
            Signer::Ecdsa(k) => &k.public_key().as_ref()[1..],
            Signer::Ed25519(k) => k.public_key().as_ref(),
        },
        public.public_key.as_slice()
    );
    let tag = records::key_tag(&records::dnskey_rdata(public.flags, public.algorithm, &public.public_key));
    let file_error = |msg: String| KeyError::FileName { path: path.to_path_buf(), msg };
    if named.tag != tag || named.algorithm != public.algorithm {
        return Err(file_error(format!(
            "the name says algorithm {} and key tag {}; the key is algorithm {} with key tag {tag}",
            named.algorithm, named.tag, public.algorithm
        )));
    }
    // BIND reads the timing from the .private file (v1.3); the .key file's comments repeat it
    // for people. If they disagree, a person edited one: say so rather than guess.
    let mut timing = private.timing;
    let mut written_in_key = public.timing;
    for (field, key_at) in &public.timing_at {
        let ours = *timing_field(&mut written_in_key, field).expect("a timing field");
        let slot = timing_field(&mut timing, field).expect("a timing field");
        match *slot {
            None if !private.timing.legacy => *slot = ours,
            Some(v) if Some(v) != ours => {
                let private_at = private.timing_at.iter().find(|(f, _)| f == field).map(|(_, a)| a.to_string());
                return Err(mismatch(
                    key_at,
                    format!(
                        "{field} here is {}, but {} says {} (dnssec-settime changes both)",
                        format_timestamp(ours.expect("given")),
                        private_at.unwrap_or_else(|| private_path.display().to_string()),
                        format_timestamp(v)
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(Key {
        // As the file writes it, as dnssec-dsfromkey prints it.
        zone: public.owner,
        flags: public.flags,
        algorithm,
        public_key: public.public_key,
        tag,
        timing,
        path: path.to_path_buf(),
        signer,
    })
}

/// Loads every key of `zone` in `dir` (files `K<zone>.+*.key`, the zone's name in any case),
/// ordered by algorithm and key tag. Any bad key fails the whole: a zone is never signed with a
/// set of keys someone did not mean.
pub fn load_zone_keys(dir: &Path, zone: &Name) -> Result<Vec<Key>, KeyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Dir { path: dir.to_path_buf(), source })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| KeyError::Dir { path: dir.to_path_buf(), source })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".key") {
            continue;
        }
        let Some(parsed) = parse_file_name(name) else { continue };
        let of_zone = Name::parse(&parsed.zone, Some(&Name::root())).is_ok_and(|n| n.key() == zone.key());
        if of_zone {
            paths.push(entry.path());
        }
    }
    paths.sort();
    let mut keys = paths.iter().map(|p| load_key(p, zone)).collect::<Result<Vec<_>, _>>()?;
    keys.sort_by_key(|k| (k.algorithm, k.tag, k.flags));
    tracing::debug!(zone = %zone, dir = %dir.display(), keys = keys.len(), "zone keys loaded");
    Ok(keys)
}

/// What the keys do at one time.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Active<'k> {
    /// In the apex DNSKEY RRset.
    pub published: Vec<&'k Key>,
    /// Sign the zone's data: the active ZSKs, and for an algorithm with no active ZSK, its
    /// active KSKs (which are then CSKs). Every algorithm published signs everything
    /// (RFC 6840 §5.11), so this goes by algorithm.
    pub zone_signers: Vec<&'k Key>,
    /// Sign the DNSKEY RRset (and CDS, CDNSKEY): the active KSKs and CSKs.
    pub key_signers: Vec<&'k Key>,
}

/// Which of `keys` are published and which sign at `now` (seconds since the epoch): published
/// from Publish (or Activate) until Delete, signing from Activate until Inactive or Delete.
pub fn active_at(keys: &[Key], now: Timestamp) -> Active<'_> {
    let published = keys.iter().filter(|k| k.timing.published_at(now)).collect();
    let signing: Vec<&Key> = keys.iter().filter(|k| k.timing.signs_at(now)).collect();
    let key_signers: Vec<&Key> = signing.iter().copied().filter(|k| k.is_ksk()).collect();
    let zone_signers = signing
        .iter()
        .copied()
        .filter(|k| !k.is_ksk() || !signing.iter().any(|z| !z.is_ksk() && z.algorithm == k.algorithm))
        .collect();
    Active { published, zone_signers, key_signers }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.dnskey_rdata() == other.dnskey_rdata() && self.timing == other.timing
    }
}

impl Eq for Key {}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    /// Writes a key pair into a new directory; returns it and the `.key` file's path.
    fn files(stem: &str, key: &str, private: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{stem}.key")), key).unwrap();
        std::fs::write(dir.path().join(format!("{stem}.private")), private).unwrap();
        let path = dir.path().join(format!("{stem}.key"));
        (dir, path)
    }

    // RFC 6605 §6.1: example.net.'s algorithm 13 key pair.
    const RFC6605_PUBLIC: &str = "example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==\n";
    const RFC6605_PRIVATE: &str = "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n";
    // RFC 8080 §6.1: example.com.'s algorithm 15 key pair.
    const RFC8080_PUBLIC: &str = "example.com. 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n";
    const RFC8080_PRIVATE: &str =
        "Private-key-format: v1.2\nAlgorithm: 15 (ED25519)\nPrivateKey: ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n";

    #[test]
    fn the_rfc_example_keys_load_and_give_the_rfc_ds() {
        let (_d, path) = files("Kexample.net.+013+55648", RFC6605_PUBLIC, RFC6605_PRIVATE);
        let key = load_key(&path, &name("example.net.")).unwrap();
        assert_eq!((key.tag, key.flags, key.algorithm), (55648, 257, Algorithm::EcdsaP256Sha256));
        assert!(key.timing.legacy, "v1.2: no timing metadata, always published and active");
        assert_eq!(
            key.ds_text(DigestType::Sha256),
            "example.net. IN DS 55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
        let (_d, path) = files("Kexample.com.+015+03613", RFC8080_PUBLIC, RFC8080_PRIVATE);
        let key = load_key(&path, &name("EXAMPLE.com.")).unwrap();
        assert_eq!((key.tag, key.algorithm), (3613, Algorithm::Ed25519));
        assert_eq!(
            key.ds_text(DigestType::Sha256),
            "example.com. IN DS 3613 15 2 3AA5AB37EFCE57F737FC1627013FEE07BDF241BD10F3B1964AB55C78E79A304B"
        );
    }

    #[test]
    fn timestamps_read_and_write_as_bind_does() {
        // As dnssec-keygen wrote them.
        let t = parse_timestamp("20261202091724").unwrap();
        assert_eq!(format_timestamp(t), "20261202091724");
        assert_eq!(format_ctime(t), "Wed Dec  2 09:17:24 2026");
        assert_eq!(parse_timestamp("19700101000000"), Some(0));
        assert_eq!(format_ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(format_ctime(parse_timestamp("20240229235959").unwrap()), "Thu Feb 29 23:59:59 2024");
        for bad in ["2026120209172", "202612020917245", "2026120209172x", "20261302091724", "20260230000000", ""] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("Kexample.com.+013+01234.key"),
            Some(FileName { zone: "example.com".into(), algorithm: 13, tag: 1234 })
        );
        assert_eq!(
            parse_file_name("K.+015+65535.private"),
            Some(FileName { zone: ".".into(), algorithm: 15, tag: 65535 })
        );
        for bad in [
            "example.com.+013+01234.key",
            "Kexample.com.+13+01234.key",
            "Kexample.com.+013+1234.key",
            "Kexample.com.+013+01234.ds",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert_eq!(file_stem(&name("example.com."), Algorithm::EcdsaP256Sha256, 577), "Kexample.com.+013+00577");
        assert_eq!(file_stem(&Name::root(), Algorithm::Ed25519, 20326), "K.+015+20326");
    }

    /// A BIND v1.3 pair of RFC 8080's key with the given timing lines (`.key` comments and
    /// `.private` fields).
    fn timed(key_comments: &str, private_fields: &str) -> (tempfile::TempDir, PathBuf) {
        let private = RFC8080_PRIVATE.replace("v1.2", "v1.3") + private_fields;
        files("Kexample.com.+015+03613", &format!("{key_comments}{RFC8080_PUBLIC}"), &private)
    }

    #[test]
    fn timing_metadata_from_both_files() {
        let (_d, path) = timed(
            "; This is a key-signing key, keyid 3613, for example.com.\n; Created: 20260101000000 (Thu Jan  1 00:00:00 2026)\n; Publish: 20260102000000 (Fri Jan  2 00:00:00 2026)\n; Inactive: 20260301000000 (x)\n",
            "Created: 20260101000000\nPublish: 20260102000000\nActivate: 20260103000000\nDelete: 20260401000000\nSyncPublish: 20260103000000\n",
        );
        let t = load_key(&path, &name("example.com.")).unwrap().timing;
        let at = |s| parse_timestamp(s);
        assert_eq!(
            t,
            Timing {
                created: at("20260101000000"),
                publish: at("20260102000000"),
                activate: at("20260103000000"),
                // Only in the .key file: taken from there.
                inactive: at("20260301000000"),
                delete: at("20260401000000"),
                legacy: false,
            }
        );
        // v1.3 without any timing: neither published nor signing.
        let (_d, path) = timed("", "");
        let t = load_key(&path, &name("example.com.")).unwrap().timing;
        assert_eq!(t, Timing::default());
        assert!(!t.published_at(u64::MAX) && !t.signs_at(u64::MAX));
    }

    fn err(key_comments: &str, private_fields: &str) -> String {
        let (_d, path) = timed(key_comments, private_fields);
        load_key(&path, &name("example.com.")).unwrap_err().to_string().replace(&*_d.path().to_string_lossy(), "D")
    }

    #[test]
    fn bad_timing_is_an_error_at_its_place() {
        assert_eq!(
            err("; Activate: 20260103000000 (x)\n", "Activate: 20260104000000\n"),
            "D/Kexample.com.+015+03613.key:1:3: Activate here is 20260103000000, but D/Kexample.com.+015+03613.private:4:1 says 20260104000000 (dnssec-settime changes both)"
        );
        assert_eq!(
            err("; Publish: 2026010300000 (x)\n", ""),
            "D/Kexample.com.+015+03613.key:1:12: expected a time in UTC, YYYYMMDDHHMMSS, got \"2026010300000\""
        );
        assert_eq!(
            err("", "Delete:  tomorrow\n"),
            "D/Kexample.com.+015+03613.private:4:10: expected a time in UTC, YYYYMMDDHHMMSS, got \"tomorrow\""
        );
        assert_eq!(err("", "Colour: blue\n"), "D/Kexample.com.+015+03613.private:4:1: unknown field \"Colour\"");
    }

    /// Each way a pair can be wrong, with the message and place it gets.
    #[test]
    fn bad_pairs_are_errors_naming_the_file() {
        let ecdsa_public = RFC6605_PUBLIC.replace("example.net.", "example.com.");
        let cases: Vec<(&str, String, String, &str)> = vec![
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.replace("example.com.", "example.org."),
                RFC8080_PRIVATE.into(),
                ".key:1:1: the key is for example.org., not for the zone example.com.",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.into(),
                RFC8080_PRIVATE.replace("15 (ED25519)", "13 (ECDSAP256SHA256)"),
                ".private:2:12: algorithm 13 here, 15 in D/Kexample.com.+015+03613.key",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.into(),
                RFC8080_PRIVATE.replace("ODIyNjAz", "ODIyNjAy"),
                ".private:3:13: this private key does not make the public key in D/Kexample.com.+015+03613.key",
            ),
            (
                "Kexample.com.+013+55648",
                ecdsa_public.clone(),
                RFC6605_PRIVATE.replace("GU6SnQ", "GU6SnR"),
                ".private:3:13: this private key does not make the public key in D/Kexample.com.+013+55648.key",
            ),
            (
                "Kexample.com.+015+03614",
                RFC8080_PUBLIC.into(),
                RFC8080_PRIVATE.into(),
                ".key: the name says algorithm 15 and key tag 3614; the key is algorithm 15 with key tag 3613",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.replace(" 15 ", " 8 "),
                RFC8080_PRIVATE.into(),
                ".key:1:35: algorithm 8 is not one weiche signs with (13 ECDSAP256SHA256, 15 ED25519)",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.replace("257", "385"),
                RFC8080_PRIVATE.into(),
                ".key:1:29: flags must be 257 (KSK or CSK) or 256 (ZSK), got 385",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.replace("l02W", "l02"),
                RFC8080_PRIVATE.into(),
                ".key:1:38: public key: not base64",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.replace("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=", "AAAA"),
                RFC8080_PRIVATE.into(),
                ".key:1:38: an algorithm 15 public key is 32 bytes, this one is 3",
            ),
            (
                "Kexample.com.+015+03613",
                RFC8080_PUBLIC.into(),
                RFC8080_PRIVATE.replace("Private-key-format: v1.2\n", ""),
                ".private:1:1: expected `Private-key-format: v1.3` on the first line",
            ),
            (
                "Kexample.com.+015+03613",
                format!("{RFC8080_PUBLIC}{RFC8080_PUBLIC}"),
                RFC8080_PRIVATE.into(),
                ".key:2:1: a second record: a .key file holds one DNSKEY",
            ),
            (
                "Kexample.com.+015+03613",
                "; nothing\n".into(),
                RFC8080_PRIVATE.into(),
                ".key:1:1: no DNSKEY record in the file",
            ),
        ];
        for (stem, key, private, want) in cases {
            let (d, path) = files(stem, &key, &private);
            let got = load_key(&path, &name("example.com.")).unwrap_err().to_string();
            let got = got.replace(&*d.path().to_string_lossy(), "D");
            assert!(got.starts_with(&format!("D/{stem}{want}")), "got  {got}\nwant D/{stem}{want}");
        }
        // The .private file is missing.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Kexample.com.+015+03613.key");
        std::fs::write(&path, RFC8080_PUBLIC).unwrap();
        let got = load_key(&path, &name("example.com.")).unwrap_err();
        assert!(
            matches!(&got, KeyError::MissingPrivate { path } if path.ends_with("Kexample.com.+015+03613.private")),
            "{got}"
        );
    }

    #[test]
    fn a_zone_directory_holds_only_that_zones_keys() {
        let dir = tempfile::tempdir().unwrap();
        let write = |stem: &str, key: &str, private: &str| {
            std::fs::write(dir.path().join(format!("{stem}.key")), key).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.private")), private).unwrap();
        };
        write("Kexample.com.+015+03613", RFC8080_PUBLIC, RFC8080_PRIVATE);
        write("Kexample.net.+013+55648", RFC6605_PUBLIC, RFC6605_PRIVATE);
        std::fs::write(dir.path().join("README"), "not a key").unwrap();
        let keys = load_zone_keys(dir.path(), &name("Example.COM.")).unwrap();
        assert_eq!(keys.iter().map(|k| k.tag).collect::<Vec<_>>(), [3613]);
        let keys = load_zone_keys(dir.path(), &name("example.net.")).unwrap();
        assert_eq!(keys.iter().map(|k| k.tag).collect::<Vec<_>>(), [55648]);
        assert!(load_zone_keys(dir.path(), &name("example.org.")).unwrap().is_empty());
        // One bad key of the zone fails the zone.
        write("Kexample.net.+013+55649", RFC6605_PUBLIC, RFC6605_PRIVATE);
        let e = load_zone_keys(dir.path(), &name("example.net.")).unwrap_err().to_string();
        assert!(e.contains("Kexample.net.+013+55649.key: the name says"), "{e}");
        let e = load_zone_keys(&dir.path().join("nope"), &name("example.net.")).unwrap_err().to_string();
        assert!(e.contains("nope: cannot read the key directory"), "{e}");
    }

    /// A key for `active_at`, with the given flags and timing (key material from a fixed seed).
    fn key(flags: u16, algorithm: Algorithm, seed: u8, timing: Timing) -> Key {
        let (signer, public_key) = match algorithm {
            Algorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
                let public = pair.public_key().as_ref().to_vec();
                (Signer::Ed25519(pair), public)
            }
            Algorithm::EcdsaP256Sha256 => {
                let rng = ring::rand::SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
                let public = pair.public_key().as_ref()[1..].to_vec();
                (Signer::Ecdsa(pair), public)
            }
        };
        let tag = records::key_tag(&records::dnskey_rdata(flags, algorithm.number(), &public_key));
        Key {
            zone: name("example.com."),
            flags,
            algorithm,
            public_key,
            tag,
            timing,
            path: PathBuf::from(format!("K{seed}.key")),
            signer,
        }
    }

    /// Every combination of Publish, Activate, Inactive and Delete, each left out, past or
    /// future, for a KSK and a ZSK: published and signing as BIND's intervals say.
    #[test]
    fn active_at_every_combination_of_timing() {
        const NOW: Timestamp = 1_000_000;
        let options = [None, Some(NOW - 10), Some(NOW), Some(NOW + 10)];
        let mut combinations = 0;
        for publish in options {
            for activate in options {
                for inactive in options {
                    for delete in options {
                        let timing = Timing { created: Some(0), publish, activate, inactive, delete, legacy: false };
                        // The rule written as intervals: [from, until).
                        let within = |from: Option<Timestamp>, until: [Option<Timestamp>; 2]| {
                            from.is_some_and(|f| f <= NOW) && until.iter().flatten().all(|&u| NOW < u)
                        };
                        let signs = within(activate, [inactive, delete]);
                        let starts = [publish, activate].into_iter().flatten().min();
                        let published = within(starts, [delete, None]);
                        for flags in [FLAGS_KSK, FLAGS_ZSK] {
                            let keys = [key(flags, Algorithm::Ed25519, 1, timing)];
                            let a = active_at(&keys, NOW);
                            let what = format!("flags {flags}, {timing:?}");
                            assert_eq!(a.published.len(), usize::from(published), "published: {what}");
                            assert_eq!(a.zone_signers.len(), usize::from(signs), "zone signer: {what}");
                            assert_eq!(
                                a.key_signers.len(),
                                usize::from(signs && flags == FLAGS_KSK),
                                "key signer: {what}"
                            );
                            combinations += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(combinations, 4 * 4 * 4 * 4 * 2);
        // Legacy keys (no metadata at all) publish and sign always.
        let keys = [key(FLAGS_KSK, Algorithm::Ed25519, 1, Timing { legacy: true, ..Timing::default() })];
        let a = active_at(&keys, NOW);
        assert_eq!((a.published.len(), a.zone_signers.len(), a.key_signers.len()), (1, 1, 1));
    }

    #[test]
    fn ksk_and_zsk_split_the_work_per_algorithm() {
        let on = Timing { publish: Some(0), activate: Some(0), ..Timing::default() };
        let pre_published = Timing { publish: Some(0), activate: Some(500), ..Timing::default() };
        let keys = [
            key(FLAGS_KSK, Algorithm::Ed25519, 1, on),
            key(FLAGS_ZSK, Algorithm::Ed25519, 2, on),
            key(FLAGS_ZSK, Algorithm::Ed25519, 3, pre_published),
            // An algorithm with a CSK only: its KSK signs the zone too.
            key(FLAGS_KSK, Algorithm::EcdsaP256Sha256, 4, on),
        ];
        let tags = |v: &[&Key]| v.iter().map(|k| k.path.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let a = active_at(&keys, 100);
        assert_eq!(tags(&a.published), ["K1.key", "K2.key", "K3.key", "K4.key"]);
        assert_eq!(tags(&a.zone_signers), ["K2.key", "K4.key"]);
        assert_eq!(tags(&a.key_signers), ["K1.key", "K4.key"]);
        // The new ZSK is active: both ZSKs sign (the old one until it is made inactive).
        let a = active_at(&keys, 500);
        assert_eq!(tags(&a.zone_signers), ["K2.key", "K3.key", "K4.key"]);
        // With the ZSK gone, the Ed25519 KSK signs the zone as a CSK.
        let keys = [
            key(FLAGS_KSK, Algorithm::Ed25519, 1, on),
            key(FLAGS_ZSK, Algorithm::Ed25519, 2, Timing { inactive: Some(50), ..on }),
        ];
        let a = active_at(&keys, 100);
        assert_eq!(tags(&a.zone_signers), ["K1.key"]);
        assert_eq!(tags(&a.published), ["K1.key", "K2.key"]);
    }

    /// keygen → files → load → sign with ring → verify with hickory-proto, a second
    /// implementation; a changed message or signature does not verify.
    #[test]
    fn made_keys_load_and_sign_what_hickory_verifies() {
        use hickory_proto::dnssec::{Algorithm as HAlg, PublicKey, PublicKeyBuf};
        let dir = tempfile::tempdir().unwrap();
        let rng = ring::rand::SystemRandom::new();
        let zone = name("example.com.");
        let now = parse_timestamp("20261202091724").unwrap();
        for (algorithm, theirs) in
            [(Algorithm::EcdsaP256Sha256, HAlg::ECDSAP256SHA256), (Algorithm::Ed25519, HAlg::ED25519)]
        {
            for flags in [FLAGS_KSK, FLAGS_ZSK] {
                let path = super::super::keygen::generate_into(dir.path(), &zone, algorithm, flags, now, &rng).unwrap();
                let key = load_key(&path, &zone).unwrap();
                assert_eq!((key.algorithm, key.flags), (algorithm, flags));
                assert_eq!(
                    key.timing,
                    Timing { created: Some(now), publish: Some(now), activate: Some(now), ..Timing::default() }
                );
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path.with_extension("private")).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
                let message = b"RRSIG RDATA and the RRset in canonical form";
                let signature = key.sign(message).unwrap();
                assert_eq!(signature.len(), 64);
                let public = PublicKeyBuf::new(key.public_key.clone(), theirs);
                public.verify(message, &signature).unwrap();
                assert!(public.verify(b"another message", &signature).is_err());
                let mut bad = signature.clone();
                bad[10] ^= 1;
                assert!(public.verify(message, &bad).is_err());
            }
        }
        let keys = load_zone_keys(dir.path(), &zone).unwrap();
        assert_eq!(keys.len(), 4);
        let a = active_at(&keys, now);
        assert_eq!((a.published.len(), a.zone_signers.len(), a.key_signers.len()), (4, 2, 2));
        assert!(active_at(&keys, now - 1).published.is_empty());
    }
}

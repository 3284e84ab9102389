//! Domain names in DNS wire form.
//!
//! A [`Name`] holds the uncompressed wire bytes of an absolute name (length-prefixed labels, ending
//! in the root label), with the letter case it was written in. Lookups use [`Name::key`], the same
//! bytes in ASCII lower case, so comparing two keys is comparing names (RFC 4343).

use std::fmt;

/// Longest name on the wire, root label included (RFC 1035 §3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in name {0:?}")]
    EmptyLabel(String),
    #[error("label longer than 63 bytes in name {0:?}")]
    LabelTooLong(String),
    #[error("name {0:?} is longer than 255 bytes")]
    TooLong(String),
    #[error("bad escape in name {0:?}")]
    BadEscape(String),
    #[error("relative name {0:?} with no origin to complete it")]
    NoOrigin(String),
}

impl Name {
    pub fn root() -> Name {
        Name(Box::new([0]))
    }

    /// Builds a name from wire bytes that are already known to be a valid uncompressed name.
    pub fn from_wire_unchecked(wire: &[u8]) -> Name {
        Name(wire.into())
    }

    /// Reads one uncompressed name from the start of `wire`; returns it and its length.
    pub fn from_wire_prefix(wire: &[u8]) -> Option<(Name, usize)> {
        let mut i = 0;
        loop {
            let len = *wire.get(i)? as usize;
            if len > MAX_LABEL_LEN {
                return None;
            }
            i += 1 + len;
            if i > MAX_NAME_LEN || i > wire.len() {
                return None;
            }
            if len == 0 {
                return Some((Name(wire[..i].into()), i));
            }
        }
    }

    /// Parses presentation format (`www.example.com.`, `www`, `\046`, `@` is the caller's job).
    /// A name without a final dot is relative and gets `origin` appended.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Name, NameError> {
        let bytes = text.as_bytes();
        if text == "." {
            return Ok(Name::root());
        }
        if text.is_empty() {
            return Err(NameError::EmptyLabel(text.into()));
        }
        let mut wire = Vec::with_capacity(bytes.len() + 2);
        let mut label_start = 0;
        wire.push(0);
        let mut i = 0;
        let mut absolute = false;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b'.' => {
                    let len = wire.len() - label_start - 1;
                    if len == 0 {
                        return Err(NameError::EmptyLabel(text.into()));
                    }
                    if len > MAX_LABEL_LEN {
                        return Err(NameError::LabelTooLong(text.into()));
                    }
                    wire[label_start] = len as u8;
                    if i + 1 == bytes.len() {
                        absolute = true;
                    } else {
                        label_start = wire.len();
                        wire.push(0);
                    }
                    i += 1;
                    continue;
                }
                b'\\' => {
                    let (b, used) = unescape_at(bytes, i).ok_or_else(|| NameError::BadEscape(text.into()))?;
                    wire.push(b);
                    i += used;
                    continue;
                }
                _ => wire.push(c),
            }
            i += 1;
        }
        if !absolute {
            let len = wire.len() - label_start - 1;
            if len > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong(text.into()));
            }
            wire[label_start] = len as u8;
            match origin {
                Some(o) => wire.extend_from_slice(&o.0),
                None => return Err(NameError::NoOrigin(text.into())),
            }
        } else {
            wire.push(0);
        }
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(text.into()));
        }
        Ok(Name(wire.into()))
    }

    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// The lookup key: wire bytes in ASCII lower case.
    pub fn key(&self) -> Box<[u8]> {
        self.0.to_ascii_lowercase().into()
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    pub fn label_count(&self) -> usize {
        label_offsets(&self.0).len()
    }

    /// The name without its first label; the root's parent is None.
    pub fn parent(&self) -> Option<Name> {
        if self.is_root() {
            return None;
        }
        let skip = 1 + self.0[0] as usize;
        Some(Name(self.0[skip..].into()))
    }

    pub fn first_label(&self) -> &[u8] {
        &self.0[1..1 + self.0[0] as usize]
    }

    pub fn is_wildcard(&self) -> bool {
        self.first_label() == b"*"
    }

    /// True when `self` equals `other` or lies below it (case-insensitive).
    pub fn is_subdomain_of(&self, other: &Name) -> bool {
        let (a, b) = (&self.0, &other.0);
        if b.len() > a.len() {
            return false;
        }
        if other.is_root() {
            return true;
        }
        let tail = &a[a.len() - b.len()..];
        tail.eq_ignore_ascii_case(b) && label_offsets(a).contains(&((a.len() - b.len()) as u8))
    }

    /// Prepends one label (used to build `*.parent`).
    pub fn child(&self, label: &[u8]) -> Option<Name> {
        if label.len() > MAX_LABEL_LEN || self.0.len() + label.len() + 1 > MAX_NAME_LEN {
            return None;
        }
        let mut wire = Vec::with_capacity(self.0.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
        wire.extend_from_slice(&self.0);
        Some(Name(wire.into()))
    }
}

/// Decodes the escape (`\X` or `\DDD`) whose backslash is at `bytes[i]`: the byte it stands
/// for and how many input bytes it took. None for a lone backslash or `\DDD` over 255.
pub fn unescape_at(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    let rest = &bytes[i + 1..];
    if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
        let v = (rest[0] - b'0') as u32 * 100 + (rest[1] - b'0') as u32 * 10 + (rest[2] - b'0') as u32;
        return u8::try_from(v).ok().map(|b| (b, 4));
    }
    rest.first().map(|&c| (c, 2))
}

/// Offsets of each label start in an uncompressed wire name (the root label excluded).
pub fn label_offsets(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < wire.len() && wire[i] != 0 {
        out.push(i as u8);
        i += 1 + wire[i] as usize;
    }
    out
}

/// Writes a wire name (uncompressed) in presentation format with RFC 1035 escapes.
pub fn write_wire_name(f: &mut impl fmt::Write, wire: &[u8]) -> fmt::Result {
    if wire.first() == Some(&0) {
        return f.write_char('.');
    }
    let mut i = 0;
    while i < wire.len() && wire[i] != 0 {
        let len = wire[i] as usize;
        for &b in &wire[i + 1..i + 1 + len] {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
        i += 1 + len;
    }
    Ok(())
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_wire_name(f, &self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Length of the uncompressed wire name at the start of `wire`.
pub fn wire_len(wire: &[u8]) -> usize {
    let mut i = 0;
    while wire[i] != 0 {
        i += 1 + wire[i] as usize;
    }
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn parses_absolute_and_relative() {
        let origin = n("example.com.");
        assert_eq!(n("www.example.com.").wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(Name::parse("www", Some(&origin)).unwrap(), n("www.example.com."));
        assert_eq!(n(".").wire(), b"\x00");
        assert_eq!(Name::parse("a\\.b.c.", None).unwrap().wire(), b"\x03a.b\x01c\x00");
        assert_eq!(Name::parse("\\065.", None).unwrap().wire(), b"\x01A\x00");
        assert!(Name::parse("www", None).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(Name::parse("a..b.", None), Err(NameError::EmptyLabel(_))));
        let long = "a".repeat(64) + ".";
        assert!(matches!(Name::parse(&long, None), Err(NameError::LabelTooLong(_))));
        let too_long = "abcdefghi.".repeat(26);
        assert!(matches!(Name::parse(&too_long, None), Err(NameError::TooLong(_))));
        assert!(Name::parse("\\256.", None).is_err());
        assert!(Name::parse("a\\", None).is_err());
    }

    #[test]
    fn relations() {
        let www = n("WWW.Example.com.");
        assert!(www.is_subdomain_of(&n("example.COM.")));
        assert!(www.is_subdomain_of(&Name::root()));
        assert!(!n("xexample.com.").is_subdomain_of(&n("example.com.")));
        assert_eq!(www.parent().unwrap().key(), n("example.com.").key());
        assert_eq!(www.label_count(), 3);
        assert!(n("*.a.").is_wildcard());
        assert_eq!(n("a.").child(b"*").unwrap(), n("*.a."));
    }

    #[test]
    fn display_escapes() {
        assert_eq!(Name::parse("a\\.b.c.", None).unwrap().to_string(), "a\\.b.c.");
        assert_eq!(Name::parse("\\000x.", None).unwrap().to_string(), "\\000x.");
        assert_eq!(Name::root().to_string(), ".");
    }

    #[test]
    fn wire_prefix() {
        let (name, len) = Name::from_wire_prefix(b"\x01a\x00rest").unwrap();
        assert_eq!(len, 3);
        assert_eq!(name.to_string(), "a.");
        assert!(Name::from_wire_prefix(b"\x05ab").is_none());
        assert!(Name::from_wire_prefix(b"\xc0\x0c").is_none());
    }
}

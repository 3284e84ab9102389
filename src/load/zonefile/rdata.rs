//! RDATA in presentation format → wire bytes, one parser per type we serve.
//!
//! hickory-proto 0.26 keeps its per-type text parsers crate-private (its public entry point takes
//! no origin, so relative names fail) and has none for DNSKEY or unknown types, so the common
//! types are parsed here. SVCB/HTTPS, whose parameter grammar is long, go through hickory with
//! the target name made absolute first.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::lexer::Tok;
use crate::model::name::Name;
use crate::model::rtype;

/// A problem with the RDATA: which token (index into the RDATA tokens; `None`: after the last)
/// and what is wrong.
#[derive(Debug)]
pub struct RdataError {
    pub token: Option<usize>,
    pub msg: String,
}

type Result<T> = std::result::Result<T, RdataError>;

fn err<T>(token: Option<usize>, msg: impl Into<String>) -> Result<T> {
    Err(RdataError { token, msg: msg.into() })
}

struct Fields<'t, 'a> {
    toks: &'t [Tok<'a>],
    next: usize,
    origin: &'t Name,
}

impl<'a> Fields<'_, 'a> {
    fn take(&mut self, what: &str) -> Result<(usize, Tok<'a>)> {
        match self.toks.get(self.next) {
            Some(t) => {
                self.next += 1;
                Ok((self.next - 1, *t))
            }
            None => err(None, format!("missing {what}")),
        }
    }

    fn int<T: TryFrom<u64>>(&mut self, what: &str) -> Result<T> {
        let (i, t) = self.take(what)?;
        let parsed = if t.quoted { None } else { t.text.parse::<u64>().ok() };
        match parsed.and_then(|v| T::try_from(v).ok()) {
            Some(v) => Ok(v),
            None => err(Some(i), format!("{what}: expected a number in range, got {:?}", t.text)),
        }
    }

    /// A 32-bit time value that may use BIND units (`1h30m`).
    fn ttl(&mut self, what: &str) -> Result<u32> {
        let (i, t) = self.take(what)?;
        match hickory_proto::serialize::txt::parse_ttl(t.text) {
            Ok(v) if !t.quoted => Ok(v),
            _ => err(Some(i), format!("{what}: expected a number or a time like 1h, got {:?}", t.text)),
        }
    }

    fn name(&mut self, what: &str) -> Result<Name> {
        let (i, t) = self.take(what)?;
        parse_name(t.text, self.origin).map_err(|m| RdataError { token: Some(i), msg: format!("{what}: {m}") })
    }

    fn charstr(&mut self, what: &str) -> Result<Vec<u8>> {
        let (i, t) = self.take(what)?;
        let bytes = unescape(t.text).map_err(|m| RdataError { token: Some(i), msg: m })?;
        if bytes.len() > 255 {
            return err(
                Some(i),
                format!(
                    "{what}: a character string holds at most 255 bytes, this has {} (split it into several quoted strings)",
                    bytes.len()
                ),
            );
        }
        Ok(bytes)
    }

    /// All remaining tokens joined (hex and base64 may be split by white space).
    fn rest_joined(&mut self, what: &str) -> Result<(usize, String)> {
        if self.next >= self.toks.len() {
            return err(None, format!("missing {what}"));
        }
        let first = self.next;
        let joined = self.toks[first..].iter().map(|t| t.text).collect::<String>();
        self.next = self.toks.len();
        Ok((first, joined))
    }

    fn hex(&mut self, what: &str) -> Result<Vec<u8>> {
        let (i, s) = self.rest_joined(what)?;
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .or_else(|_| err(Some(i), format!("{what}: not valid hexadecimal")))
    }

    fn done(&self) -> Result<()> {
        if self.next < self.toks.len() {
            return err(Some(self.next), format!("unexpected {:?} after the record data", self.toks[self.next].text));
        }
        Ok(())
    }
}

pub fn parse_name(text: &str, origin: &Name) -> std::result::Result<Name, String> {
    if text == "@" {
        return Ok(origin.clone());
    }
    Name::parse(text, Some(origin)).map_err(|e| e.to_string())
}

/// Resolves `\X` and `\DDD` escapes of a character string.
pub fn unescape(text: &str) -> std::result::Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (c, used) = crate::model::name::unescape_at(b, i).ok_or_else(|| format!("bad escape in {text:?}"))?;
        out.push(c);
        i += used;
    }
    Ok(out)
}

fn push_name(out: &mut Vec<u8>, n: &Name) {
    out.extend_from_slice(n.wire());
}

fn push_charstr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// Parses the RDATA tokens of one record of type `rtype` into wire form.
pub fn parse(rtype: u16, toks: &[Tok<'_>], origin: &Name) -> Result<Vec<u8>> {
    let mut f = Fields { toks, next: 0, origin };
    if toks.first().is_some_and(|t| t.text == "\\#" && !t.quoted) {
        f.next = 1;
        let len: u16 = f.int("RDATA length")?;
        let data = if len == 0 { Vec::new() } else { f.hex("RDATA")? };
        if data.len() != len as usize {
            return err(Some(1), format!("RFC 3597 RDATA says {len} bytes but holds {}", data.len()));
        }
        check_wire(rtype, &data).map_err(|m| RdataError { token: Some(0), msg: m })?;
        return Ok(data);
    }
    let mut out = Vec::new();
    match rtype {
        rtype::A => {
            let (i, t) = f.take("IPv4 address")?;
            let ip: Ipv4Addr =
                t.text.parse().or_else(|_| err(Some(i), format!("not an IPv4 address: {:?}", t.text)))?;
            out.extend_from_slice(&ip.octets());
        }
        rtype::AAAA => {
            let (i, t) = f.take("IPv6 address")?;
            let ip: Ipv6Addr =
                t.text.parse().or_else(|_| err(Some(i), format!("not an IPv6 address: {:?}", t.text)))?;
            out.extend_from_slice(&ip.octets());
        }
        rtype::NS | rtype::CNAME | rtype::PTR | rtype::DNAME => push_name(&mut out, &f.name("target name")?),
        rtype::MX => {
            out.extend_from_slice(&f.int::<u16>("preference")?.to_be_bytes());
            push_name(&mut out, &f.name("exchange")?);
        }
        rtype::SOA => {
            push_name(&mut out, &f.name("primary server (MNAME)")?);
            push_name(&mut out, &f.name("mailbox (RNAME)")?);
            out.extend_from_slice(&f.int::<u32>("serial")?.to_be_bytes());
            for what in ["refresh", "retry", "expire", "minimum"] {
                out.extend_from_slice(&f.ttl(what)?.to_be_bytes());
            }
        }
        rtype::TXT | rtype::SPF => {
            push_charstr(&mut out, &f.charstr("text")?);
            while f.next < toks.len() {
                push_charstr(&mut out, &f.charstr("text")?);
            }
        }
        rtype::HINFO => {
            push_charstr(&mut out, &f.charstr("CPU")?);
            push_charstr(&mut out, &f.charstr("OS")?);
        }
        rtype::SRV => {
            for what in ["priority", "weight", "port"] {
                out.extend_from_slice(&f.int::<u16>(what)?.to_be_bytes());
            }
            push_name(&mut out, &f.name("target")?);
        }
        rtype::NAPTR => {
            out.extend_from_slice(&f.int::<u16>("order")?.to_be_bytes());
            out.extend_from_slice(&f.int::<u16>("preference")?.to_be_bytes());
            for what in ["flags", "services", "regexp"] {
                push_charstr(&mut out, &f.charstr(what)?);
            }
            push_name(&mut out, &f.name("replacement")?);
        }
        rtype::CAA => {
            out.push(f.int::<u8>("flags")?);
            let (i, tag) = f.take("tag")?;
            if tag.text.is_empty() || tag.text.len() > 255 || !tag.text.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return err(Some(i), format!("CAA tag must be letters and digits, got {:?}", tag.text));
            }
            push_charstr(&mut out, tag.text.as_bytes());
            let (i, value) = f.take("value")?;
            out.extend(unescape(value.text).map_err(|m| RdataError { token: Some(i), msg: m })?);
        }
        rtype::DS | rtype::CDS => {
            out.extend_from_slice(&f.int::<u16>("key tag")?.to_be_bytes());
            out.push(f.int::<u8>("algorithm")?);
            out.push(f.int::<u8>("digest type")?);
            out.extend(f.hex("digest")?);
        }
        rtype::DNSKEY | rtype::CDNSKEY => {
            out.extend_from_slice(&f.int::<u16>("flags")?.to_be_bytes());
            out.push(f.int::<u8>("protocol")?);
            out.push(f.int::<u8>("algorithm")?);
            let (i, key) = f.rest_joined("public key")?;
            let key = data_encoding::BASE64
                .decode(key.as_bytes())
                .or_else(|_| err(Some(i), "public key: not valid base64"))?;
            out.extend(key);
        }
        rtype::TLSA | rtype::SMIMEA => {
            for what in ["usage", "selector", "matching type"] {
                out.push(f.int::<u8>(what)?);
            }
            out.extend(f.hex("certificate data")?);
        }
        rtype::SSHFP => {
            out.push(f.int::<u8>("algorithm")?);
            out.push(f.int::<u8>("fingerprint type")?);
            out.extend(f.hex("fingerprint")?);
        }
        rtype::SVCB | rtype::HTTPS => return parse_svcb(rtype, &mut f),
        other => {
            return err(
                Some(0),
                format!(
                    "no text form is known here for type {}; write its data in RFC 3597 form: \\# LENGTH HEX",
                    rtype::name(other)
                ),
            );
        }
    }
    f.done()?;
    Ok(out)
}

fn parse_svcb(rtype: u16, f: &mut Fields<'_, '_>) -> Result<Vec<u8>> {
    let priority: u16 = f.int("priority")?;
    let target = f.name("target")?;
    let mut text = format!("{priority} {target}");
    for t in &f.toks[f.next..] {
        text.push(' ');
        if t.quoted {
            text.push('"');
            text.push_str(t.text);
            text.push('"');
        } else {
            text.push_str(t.text);
        }
    }
    let rt = RecordType::from(rtype);
    let rdata = RData::try_from_str(rt, &text)
        .or_else(|e| err(Some(2.min(f.toks.len() - 1)), format!("service parameters: {e}")))?;
    rdata.to_bytes().or_else(|e| err(Some(0), format!("cannot encode: {e}")))
}

/// Checks generic (RFC 3597) RDATA of types whose layout we rely on when answering.
fn check_wire(rtype: u16, data: &[u8]) -> std::result::Result<(), String> {
    let name_at = |off: usize| Name::from_wire_prefix(data.get(off..).unwrap_or(&[])).map(|(_, l)| off + l);
    let ok = match rtype {
        rtype::A => data.len() == 4,
        rtype::AAAA => data.len() == 16,
        rtype::NS | rtype::CNAME | rtype::PTR | rtype::DNAME => name_at(0) == Some(data.len()),
        rtype::MX => data.len() > 2 && name_at(2) == Some(data.len()),
        rtype::SOA => name_at(0).and_then(name_at).map(|e| e + 20) == Some(data.len()),
        // Signing puts the names of these in lower case: they must be where the type says.
        rtype::SRV => data.len() > 6 && name_at(6) == Some(data.len()),
        rtype::NAPTR => {
            let mut at = Some(4).filter(|_| data.len() > 4);
            for _ in 0..3 {
                at = at.and_then(|i| data.get(i).map(|&l| i + 1 + l as usize));
            }
            at.and_then(name_at) == Some(data.len())
        }
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("RFC 3597 RDATA is not a valid {} record", rtype::name(rtype))) }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::Lexer;
    use super::*;

    fn rd(rtype: u16, text: &str) -> Result<Vec<u8>> {
        let mut lx = Lexer::new(text);
        let e = lx.next_entry().unwrap().unwrap();
        let origin = Name::parse("example.com.", None).unwrap();
        parse(rtype, &e.tokens, &origin)
    }

    #[test]
    fn common_types() {
        assert_eq!(rd(rtype::A, "192.0.2.1").unwrap(), [192, 0, 2, 1]);
        assert_eq!(rd(rtype::AAAA, "::1").unwrap().len(), 16);
        assert_eq!(rd(rtype::NS, "ns1").unwrap(), b"\x03ns1\x07example\x03com\x00");
        assert_eq!(rd(rtype::CNAME, "@").unwrap(), b"\x07example\x03com\x00");
        assert_eq!(rd(rtype::MX, "10 mail.example.net.").unwrap(), b"\x00\x0a\x04mail\x07example\x03net\x00");
        let soa = rd(rtype::SOA, "ns1 hostmaster 2024010101 1h 10m 14d 300").unwrap();
        assert_eq!(&soa[soa.len() - 20..soa.len() - 16], &2024010101u32.to_be_bytes());
        assert_eq!(&soa[soa.len() - 16..soa.len() - 12], &3600u32.to_be_bytes());
        assert_eq!(rd(rtype::TXT, "\"a b\" c \"\\034q\\\"\"").unwrap(), b"\x03a b\x01c\x03\"q\"");
        assert_eq!(rd(rtype::SRV, "0 5 5060 sip").unwrap()[..6], [0, 0, 0, 5, 0x13, 0xc4]);
        assert_eq!(rd(rtype::CAA, "0 issue \"letsencrypt.org\"").unwrap(), b"\x00\x05issueletsencrypt.org");
        assert_eq!(rd(rtype::DS, "60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118").unwrap().len(), 4 + 20);
        assert_eq!(rd(rtype::DNSKEY, "256 3 8 AwEAAQ== ").unwrap(), [1, 0, 3, 8, 3, 1, 0, 1]);
        assert_eq!(rd(rtype::TLSA, "3 1 1 abcd").unwrap(), [3, 1, 1, 0xab, 0xcd]);
        assert_eq!(rd(rtype::SSHFP, "4 2 0102").unwrap(), [4, 2, 1, 2]);
        let naptr = rd(rtype::NAPTR, "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp").unwrap();
        assert!(naptr.ends_with(b"\x04_sip\x04_udp\x07example\x03com\x00"));
        assert_eq!(rd(rtype::HINFO, "\"PC\" Linux").unwrap(), b"\x02PC\x05Linux");
    }

    #[test]
    fn svcb_and_https() {
        let w = rd(rtype::HTTPS, "1 . alpn=h2,h3 port=8443").unwrap();
        assert_eq!(&w[..3], &[0, 1, 0]);
        let w = rd(rtype::SVCB, "1 svc ipv4hint=192.0.2.1").unwrap();
        assert!(w[2..].starts_with(b"\x03svc\x07example\x03com\x00"));
        assert!(rd(rtype::HTTPS, "1 . bogus=1").is_err());
    }

    #[test]
    fn generic_form() {
        assert_eq!(rd(65280, "\\# 4 0A000001").unwrap(), [10, 0, 0, 1]);
        assert_eq!(rd(65280, "\\# 0").unwrap(), [] as [u8; 0]);
        assert_eq!(rd(rtype::A, "\\# 4 c0000201").unwrap(), [192, 0, 2, 1]);
        assert!(rd(rtype::A, "\\# 3 c00002").is_err());
        assert!(rd(65280, "\\# 5 0A000001").unwrap_err().msg.contains("says 5 bytes"));
        assert!(rd(65280, "whatever").unwrap_err().msg.contains("RFC 3597"));
        // SRV and NAPTR in generic form must be laid out as their types say (signing reads the
        // names in them; found in review).
        assert!(rd(rtype::SRV, "\\# 2 0000").unwrap_err().msg.contains("not a valid SRV"));
        assert!(rd(rtype::SRV, "\\# 9 000100020003016100").is_ok());
        assert!(rd(rtype::NAPTR, "\\# 4 00010002").unwrap_err().msg.contains("not a valid NAPTR"));
        assert!(rd(rtype::NAPTR, "\\# 8 0001000200000000").is_ok());
        assert!(rd(rtype::NAPTR, "\\# 8 0001000201550000").is_err(), "no replacement name");
    }

    #[test]
    fn errors_point_at_tokens() {
        let e = rd(rtype::A, "192.0.2.256").unwrap_err();
        assert_eq!(e.token, Some(0));
        let e = rd(rtype::MX, "10").unwrap_err();
        assert_eq!(e.token, None);
        assert!(e.msg.contains("missing exchange"));
        let e = rd(rtype::A, "192.0.2.1 extra").unwrap_err();
        assert_eq!(e.token, Some(1));
        let long = format!("\"{}\"", "x".repeat(256));
        assert!(rd(rtype::TXT, &long).unwrap_err().msg.contains("at most 255"));
    }
}

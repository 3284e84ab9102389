//! RFC 1035 master files (BIND/NSD/Knot syntax) → records with their source positions.
//!
//! Owns `$ORIGIN`, `$TTL`, `$INCLUDE`, owner/TTL/class inheritance and RDATA text. It knows nothing
//! of zones' rules (one SOA, CNAME alone, …): `zone` checks those on the records it returns.

use crate::model::position::{FileError, Location};
use crate::model::zone::Record;

pub mod lexer;
pub mod rdata;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lexer::{Lexer, Tok};

use crate::load::read::IncludeBudget;
use crate::model::name::Name;
use crate::model::rtype;

/// `$INCLUDE` nesting deeper than this is taken for a loop.
const MAX_INCLUDE_DEPTH: usize = 8;
/// After this many errors in one load, the rest of the file is not read.
pub const MAX_ERRORS: usize = 50;
/// RFC 2181 §8: TTLs are 31-bit.
pub const MAX_TTL: u32 = i32::MAX as u32;

/// A problem at a line and column of one text (positions are 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub col: u32,
    pub msg: String,
}

/// Master-file text and where it sits, so positions can be given in the file that holds it
/// (a zone's records may be a string inside a TOML file).
pub struct Source<'a> {
    pub text: &'a str,
    pub file: Arc<Path>,
    /// Line and column in `file` where `text` begins.
    pub line: u32,
    pub col: u32,
}

impl<'a> Source<'a> {
    pub fn file(text: &'a str, file: &Path) -> Self {
        Source { text, file: file.into(), line: 1, col: 1 }
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<Record>,
    /// Files read through `$INCLUDE`, so changes to them can be noticed.
    pub includes: Vec<PathBuf>,
    pub errors: Vec<FileError>,
}

/// Parses master-file text for a zone whose origin is `origin`.
pub fn parse(src: Source<'_>, origin: &Name) -> Parsed {
    let mut budget = IncludeBudget::new(src.text.len());
    parse_within(src, origin, &mut budget)
}

/// [`parse`], for a text that is one of several of a zone (a TOML zone's includes and
/// records), whose `$INCLUDE`s share the zone's `budget`.
pub fn parse_within(src: Source<'_>, origin: &Name, budget: &mut IncludeBudget) -> Parsed {
    let mut p = Parser { out: Parsed::default(), depth: 0, budget };
    let mut state = State { origin: origin.clone(), default_ttl: None, last_ttl: None, last_owner: None };
    p.parse_text(&src, &mut state);
    p.out
}

struct State {
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

struct Parser<'b> {
    out: Parsed,
    depth: usize,
    budget: &'b mut IncludeBudget,
}

impl Parser<'_> {
    fn parse_text(&mut self, src: &Source<'_>, st: &mut State) {
        let mut lx = Lexer::new(src.text);
        let place = |line: u32, col: u32| {
            let file_line = src.line + line - 1;
            let file_col = if line == 1 { src.col + col - 1 } else { col };
            (file_line, file_col)
        };
        loop {
            if self.out.errors.len() >= MAX_ERRORS {
                return;
            }
            let entry = match lx.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => return,
                Err(e) => {
                    let (l, c) = place(e.line, e.col);
                    self.out.errors.push(FileError::new(&src.file, l, c, e.msg));
                    return;
                }
            };
            if let Err(e) = self.entry(src, st, &entry.tokens, entry.blank_owner) {
                let (l, c) = place(e.line, e.col);
                self.out.errors.push(FileError::new(&src.file, l, c, e.msg));
            }
        }
    }

    fn entry(
        &mut self,
        src: &Source<'_>,
        st: &mut State,
        toks: &[Tok<'_>],
        blank_owner: bool,
    ) -> Result<(), ParseError> {
        let at = |t: &Tok<'_>, msg: String| ParseError { line: t.line, col: t.col, msg };
        let first = toks[0];
        if !blank_owner && first.text.starts_with('$') && !first.quoted {
            return self.directive(src, st, toks);
        }
        let mut i = 0;
        let owner = if blank_owner {
            st.last_owner
                .clone()
                .ok_or_else(|| at(&first, "record has no owner name and there is no previous one".into()))?
        } else {
            i = 1;
            let name = rdata::parse_name(first.text, &st.origin).map_err(|m| at(&first, format!("owner: {m}")))?;
            st.last_owner = Some(name.clone());
            name
        };
        let mut ttl = None;
        let mut class_seen = false;
        let rtype = loop {
            let t = toks.get(i).ok_or_else(|| at(&toks[toks.len() - 1], "missing record type".into()))?;
            i += 1;
            if t.quoted {
                return Err(at(t, format!("expected a TTL, class or type, got the string {:?}", t.text)));
            }
            if ttl.is_none() && t.text.as_bytes()[0].is_ascii_digit() {
                let v = ttl_value(t)?;
                ttl = Some(v);
                continue;
            }
            if !class_seen && is_class(t.text) {
                if !t.text.eq_ignore_ascii_case("IN") {
                    return Err(at(t, format!("class {} is not served; only IN is", t.text)));
                }
                class_seen = true;
                continue;
            }
            match rtype::from_str(t.text) {
                Some(rt) => break (rt, *t),
                None => return Err(at(t, format!("unknown record type {:?}", t.text))),
            }
        };
        let (rt, type_tok) = rtype;
        if rtype::is_meta(rt) {
            return Err(at(&type_tok, format!("{} is not a type that can be stored in a zone", rtype::name(rt))));
        }
        let rdata_toks = &toks[i..];
        let rdata = rdata::parse(rt, rdata_toks, &st.origin).map_err(|e| {
            let t = e.token.and_then(|k| rdata_toks.get(k)).unwrap_or(&toks[toks.len() - 1]);
            at(t, format!("{} record: {}", rtype::name(rt), e.msg))
        })?;
        let ttl = match ttl {
            Some(v) => {
                st.last_ttl = Some(v);
                v
            }
            None => match (st.default_ttl, st.last_ttl) {
                (Some(v), _) | (None, Some(v)) => v,
                // RFC 2308 §4: with neither $TTL nor an earlier TTL, an SOA uses its MINIMUM.
                (None, None) if rt == rtype::SOA => u32::from_be_bytes(rdata[rdata.len() - 4..].try_into().unwrap()),
                (None, None) => {
                    return Err(at(&first, "no TTL given and no $TTL or earlier TTL to take it from".into()));
                }
            },
        };
        let (line, col) = if src.line == 1 && src.col == 1 {
            (first.line, first.col)
        } else {
            (src.line + first.line - 1, if first.line == 1 { src.col + first.col - 1 } else { first.col })
        };
        self.out.records.push(Record {
            owner,
            ttl,
            rtype: rt,
            rdata: rdata.into(),
            at: Location { file: src.file.clone(), line, col },
        });
        Ok(())
    }

    fn directive(&mut self, src: &Source<'_>, st: &mut State, toks: &[Tok<'_>]) -> Result<(), ParseError> {
        let d = toks[0];
        let at = |t: &Tok<'_>, msg: String| ParseError { line: t.line, col: t.col, msg };
        let arg = |k: usize, what: &str| toks.get(k).ok_or_else(|| at(&d, format!("{} needs {what}", d.text)));
        let max_args = if d.text.eq_ignore_ascii_case("$INCLUDE") { 3 } else { 2 };
        if let Some(extra) = toks.get(max_args) {
            return Err(at(extra, format!("unexpected {:?} after {}", extra.text, d.text)));
        }
        match d.text.to_ascii_uppercase().as_str() {
            "$ORIGIN" => {
                let t = arg(1, "a name")?;
                st.origin = rdata::parse_name(t.text, &st.origin).map_err(|m| at(t, m))?;
            }
            "$TTL" => {
                let t = arg(1, "a TTL")?;
                let v = ttl_value(t)?;
                st.default_ttl = Some(v);
            }
            "$INCLUDE" => {
                let t = arg(1, "a file name")?;
                if self.depth >= MAX_INCLUDE_DEPTH {
                    return Err(at(t, format!("$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} files (a loop?)")));
                }
                let path = src.file.parent().unwrap_or(Path::new(".")).join(t.text);
                // Watched even when it cannot be read: its appearing loads the zone again.
                self.out.includes.push(path.clone());
                let text = (self.budget.read(&path))
                    .map_err(|e| at(t, format!("cannot read $INCLUDE file {}: {e}", path.display())))?;
                let origin = match toks.get(2) {
                    Some(o) => rdata::parse_name(o.text, &st.origin).map_err(|m| at(o, m))?,
                    None => st.origin.clone(),
                };
                let inner = Source::file(&text, &path);
                // RFC 1035 §5.1: the included file's $ORIGIN does not leak back.
                let saved_origin = std::mem::replace(&mut st.origin, origin);
                self.depth += 1;
                self.parse_text(&inner, st);
                self.depth -= 1;
                st.origin = saved_origin;
            }
            _ => {
                return Err(at(&d, format!("unknown directive {} ($ORIGIN, $TTL and $INCLUDE are known)", d.text)));
            }
        }
        Ok(())
    }
}

/// A TTL token: seconds or BIND units (`1h30m`), at most 2^31-1 (RFC 2181 §8).
fn ttl_value(t: &Tok<'_>) -> Result<u32, ParseError> {
    let err = |msg: String| ParseError { line: t.line, col: t.col, msg };
    match hickory_proto::serialize::txt::parse_ttl(t.text) {
        Ok(v) if v <= MAX_TTL => Ok(v),
        Ok(v) => Err(err(format!("TTL {v} is over the maximum of {MAX_TTL} (RFC 2181)"))),
        Err(_) => Err(err(format!("TTL {:?} is not a number or a time like 1h30m", t.text))),
    }
}

fn is_class(s: &str) -> bool {
    ["IN", "CH", "CS", "HS", "NONE", "ANY"].iter().any(|c| c.eq_ignore_ascii_case(s))
        || (s.len() > 5
            && s.as_bytes()[..5].eq_ignore_ascii_case(b"CLASS")
            && s.as_bytes()[5..].iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::parse("example.com.", None).unwrap()
    }

    fn parse_str(text: &str) -> Parsed {
        parse(Source::file(text, Path::new("z.zone")), &origin())
    }

    #[test]
    fn inheritance_and_directives() {
        let p = parse_str(
            "$TTL 1h\n@ IN SOA ns1 hm 1 2 3 4 5\n  NS ns1\nns1 300 A 192.0.2.1\n  IN 60 AAAA ::1\n$ORIGIN sub.example.com.\nwww A 192.0.2.2\n",
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let r = &p.records;
        assert_eq!(r.len(), 5);
        assert_eq!((r[1].owner.to_string().as_str(), r[1].ttl, r[1].rtype), ("example.com.", 3600, rtype::NS));
        assert_eq!((r[3].owner.to_string().as_str(), r[3].ttl), ("ns1.example.com.", 60));
        assert_eq!(r[4].owner.to_string(), "www.sub.example.com.");
        assert_eq!(r[4].ttl, 3600);
        assert_eq!((r[3].at.line, r[3].at.col), (5, 3));
    }

    /// Found by fuzzing: a word of more than five bytes whose fifth is inside a character
    /// (where a class, TTL or type may stand) was cut there to compare it with "CLASS", and
    /// the loader panicked.
    #[test]
    fn words_with_characters_of_several_bytes() {
        for word in ["abcdé", "CLASé1", "ééé", "CLASS1é"] {
            let p = parse_str(&format!("$TTL 60\nwww {word} A 192.0.2.1\n{word} A 192.0.2.2\n"));
            assert_eq!(p.errors.len(), 1, "{word}: {:?}", p.errors);
            assert!(p.errors[0].msg.contains(word), "{word}: {:?}", p.errors);
        }
    }

    #[test]
    fn ttl_without_directive() {
        let p = parse_str("@ SOA ns1 hm 1 2 3 4 300\nwww 60 A 192.0.2.1\nx A 192.0.2.2\n");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.records.iter().map(|r| r.ttl).collect::<Vec<_>>(), [300, 60, 60]);
        let p = parse_str("www A 192.0.2.1\n");
        assert!(p.errors[0].msg.contains("no TTL"));
    }

    #[test]
    fn errors_carry_file_line_col_and_continue() {
        let p = parse_str("$TTL 60\nwww A 192.0.2.300\nok A 192.0.2.1\nbad CH A 192.0.2.1\nx FOO 1\n$BOGUS\n");
        let msgs: Vec<String> = p.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].starts_with("z.zone:2:7: A record: not an IPv4"), "{}", msgs[0]);
        assert!(msgs[1].starts_with("z.zone:4:5: class CH"), "{}", msgs[1]);
        assert!(msgs[2].starts_with("z.zone:5:3: unknown record type"), "{}", msgs[2]);
        assert!(msgs[3].starts_with("z.zone:6:1: unknown directive"), "{}", msgs[3]);
        assert_eq!(p.records.len(), 1);
    }

    #[test]
    fn embedded_source_positions() {
        let src = Source { text: "$TTL 60\nwww A 1.2.3\n", file: Path::new("x.toml").into(), line: 10, col: 5 };
        let p = parse(src, &origin());
        assert_eq!(p.errors[0].to_string(), "x.toml:11:7: A record: not an IPv4 address: \"1.2.3\"");
    }

    #[test]
    fn include_with_origin_and_loop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc.zone"), "www A 192.0.2.9\n").unwrap();
        std::fs::write(dir.path().join("loop.zone"), "$INCLUDE loop.zone\n").unwrap();
        let main = dir.path().join("main.zone");
        let text = "$TTL 60\n$INCLUDE inc.zone sub\nafter A 192.0.2.1\n";
        let p = parse(Source::file(text, &main), &origin());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.records[0].owner.to_string(), "www.sub.example.com.");
        assert_eq!(p.records[1].owner.to_string(), "after.example.com.");
        assert_eq!(p.includes.len(), 1);
        assert!(p.records[0].at.file.ends_with("inc.zone"));
        let p = parse(Source::file("$INCLUDE loop.zone\n", &main), &origin());
        assert!(p.errors[0].msg.contains("nested deeper"), "{:?}", p.errors);
        let p = parse(Source::file("$INCLUDE missing.zone\n", &main), &origin());
        assert!(p.errors[0].msg.contains("cannot read"));
        assert_eq!(p.includes, [dir.path().join("missing.zone")], "watched, so its appearing is seen");
    }

    /// Ten lines that each include the next file, five deep, would read 10^5 files (and eight
    /// deep 10^8): a zone reads at most MAX_INCLUDES includes, and all of them together are
    /// held to zone_file_limit.
    #[test]
    fn includes_that_fan_out_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=5 {
            std::fs::write(dir.path().join(format!("f{n}.part")), format!("$INCLUDE f{}.part\n", n + 1).repeat(10))
                .unwrap();
        }
        std::fs::write(dir.path().join("f6.part"), "www 60 A 192.0.2.1\n").unwrap();
        let started = std::time::Instant::now();
        let p = parse(Source::file("$INCLUDE f1.part\n", &dir.path().join("main.zone")), &origin());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(p.includes.len() <= crate::load::read::MAX_INCLUDES + MAX_ERRORS, "{}", p.includes.len());
        let e = p.errors.iter().find(|e| e.msg.contains("the most one zone may")).expect("an error");
        assert!(e.msg.starts_with("cannot read $INCLUDE file"), "{e}");
    }
}

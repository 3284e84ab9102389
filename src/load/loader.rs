//! Reads the zones directory: `NAME.zone` (a plain master file) and `NAME.toml` (records plus
//! checks and pools) each define zone NAME. Returns validated zones, or every problem with its
//! file, line and column. Reads files; never touches what is being served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::read::IncludeBudget;
use crate::load::zone_toml::{self, ZoneSpec};
use crate::load::zonefile::{self, Source};
use crate::model::name::Name;
use crate::model::pool::Pool;
use crate::model::position::{FileError, toml_error};
use crate::model::zone::Record;
use crate::model::zone::Zone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Toml,
}

/// A file in the zones directory that defines a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFile {
    pub apex: Name,
    pub path: PathBuf,
    pub kind: Kind,
}

/// The outcome of loading one zone file.
#[derive(Debug)]
pub struct ZoneLoad {
    pub file: ZoneFile,
    /// Every file read (the zone file first, then what it includes), to watch for changes.
    pub files: Vec<PathBuf>,
    pub result: Result<Zone, Vec<FileError>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the zones directory {}: {source}", dir.display())]
pub struct DirError {
    pub dir: PathBuf,
    pub source: std::io::Error,
}

/// Zone files in `dir`, sorted by path. Editor leftovers (dot files, `~` backups) are skipped.
pub fn scan(dir: &Path) -> Result<Vec<ZoneFile>, DirError> {
    let rd = std::fs::read_dir(dir).map_err(|source| DirError { dir: dir.into(), source })?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| DirError { dir: dir.into(), source })?;
        let path = entry.path();
        let Some((stem, kind)) = named_like_zone(&path) else { continue };
        let apex = match Name::parse(&format!("{stem}."), None) {
            Ok(n) => n,
            Err(_) => continue,
        };
        out.push(ZoneFile { apex, path, kind });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A file's zone name as written (before `.zone` or `.toml`) and kind, if it is named like a
/// zone file. Editor leftovers (dot files, `~` backups) are not. A directory named like a zone
/// is not one; anything else so named (a FIFO, a link to nothing) is, and fails to load with
/// its reason rather than being left out unseen.
fn named_like_zone(path: &Path) -> Option<(&str, Kind)> {
    let fname = path.file_name()?.to_str()?;
    let kind = if fname.ends_with(".zone") { Kind::Plain } else { Kind::Toml };
    let stem = fname.strip_suffix(".zone").or_else(|| fname.strip_suffix(".toml"))?;
    (!fname.starts_with('.') && !path.is_dir()).then_some((stem, kind))
}

/// Files in `dir` named like zone files whose names are no zone names (`ex..ample.zone`, a
/// label over 63 characters), with why: they are not loaded, and `check` and `serve` say so.
pub fn misnamed(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(PathBuf, String)> = rd
        .filter_map(|e| {
            let path = e.ok()?.path();
            let (stem, _) = named_like_zone(&path)?;
            let why = Name::parse(&format!("{stem}."), None).err()?;
            Some((path, why.to_string()))
        })
        .collect();
    out.sort();
    out
}

/// Zone files in `dir` that `loads` (from [`load_dir`]) left out because another zone's file
/// includes them, where that zone has another name: `example.com.toml` with `include =
/// "example.net.zone"` reads example.net's file as part of example.com, and example.net is not
/// served. Each as a warning to print.
pub fn taken_by_other_zones(dir: &Path, loads: &[ZoneLoad]) -> Vec<String> {
    let Ok(found) = scan(dir) else { return Vec::new() };
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    found
        .iter()
        .filter(|f| !loads.iter().any(|l| l.file.path == f.path))
        .filter_map(|f| {
            let me = canon(&f.path);
            let by = loads.iter().find(|l| l.files.iter().skip(1).any(|inc| canon(inc) == me))?;
            (by.file.apex.key() != f.apex.key()).then(|| {
                format!(
                    "{} is included by {} (zone {}), so zone {} is not served from it",
                    f.path.display(),
                    by.file.path.display(),
                    by.file.apex,
                    f.apex
                )
            })
        })
        .collect()
}

/// Loads every zone of `dir`. A `.zone` file included by another zone's file is a fragment, not
/// a zone of its own; two files for the same zone are an error.
pub fn load_dir(dir: &Path) -> Result<Vec<ZoneLoad>, DirError> {
    let files = scan(dir)?;
    let mut loads: Vec<ZoneLoad> = files.into_iter().map(load).collect();
    // (includer, included): a file that includes itself is a loop to report, not a fragment.
    let included: Vec<(PathBuf, PathBuf)> = loads
        .iter()
        .flat_map(|l| l.files.iter().skip(1).map(move |inc| (&l.file.path, inc)))
        .filter_map(|(by, inc)| Some((by.canonicalize().ok()?, inc.canonicalize().ok()?)))
        .collect();
    loads.retain(|l| {
        let Ok(me) = l.file.path.canonicalize() else { return true };
        l.file.kind == Kind::Toml || !included.iter().any(|(by, inc)| *inc == me && *by != me)
    });
    for i in 0..loads.len() {
        // Names are compared ignoring case: CASE.TEST.zone and case.test.zone are one zone.
        let apex = loads[i].file.apex.key();
        let twin = loads[..i].iter().find(|o| o.file.apex.key() == apex).map(|o| o.file.path.clone());
        if let Some(other) = twin {
            let at: Arc<Path> = loads[i].file.path.as_path().into();
            let msg = format!(
                "zone {} is also defined by {}; include one from the other or remove one",
                loads[i].file.apex,
                other.display()
            );
            loads[i].result = Err(vec![FileError::new(&at, 1, 1, msg)]);
        }
    }
    Ok(loads)
}

/// Loads one zone file.
pub fn load(file: ZoneFile) -> ZoneLoad {
    match crate::load::read::read_bytes(&file.path) {
        Ok(bytes) => load_bytes(file, bytes),
        Err(e) => {
            let path: Arc<Path> = file.path.as_path().into();
            let result = Err(vec![FileError::new(&path, 1, 1, format!("cannot read: {e}"))]);
            ZoneLoad { files: vec![file.path.clone()], file, result }
        }
    }
}

/// Loads one zone file whose content, `bytes`, is already read: what [`load`] does after
/// reading (the fuzz targets start here; `$INCLUDE`s are still read from disk).
pub fn load_bytes(file: ZoneFile, bytes: Vec<u8>) -> ZoneLoad {
    let path: Arc<Path> = file.path.as_path().into();
    let mut files = vec![file.path.clone()];
    let text = match file.kind {
        Kind::Plain => crate::load::read::master_text(bytes),
        Kind::Toml => match crate::load::read::utf8_text(bytes) {
            Ok(t) => t,
            Err((line, col, msg)) => {
                let result = Err(vec![FileError::new(&path, line as u32, col as u32, msg)]);
                return ZoneLoad { file, files, result };
            }
        },
    };
    let (records, pools, mut errors) = match file.kind {
        Kind::Plain => {
            let parsed = zonefile::parse(Source::file(&text, &file.path), &file.apex);
            files.extend(parsed.includes);
            (parsed.records, Vec::new(), parsed.errors)
        }
        Kind::Toml => load_toml(&file, &path, &text, &mut files),
    };
    let result = if errors.is_empty() {
        Zone::build(file.apex.clone(), records, pools, files.clone())
    } else {
        errors.truncate(zonefile::MAX_ERRORS);
        Err(errors)
    };
    ZoneLoad { file, files, result }
}

fn load_toml(
    file: &ZoneFile,
    path: &Arc<Path>,
    text: &str,
    files: &mut Vec<PathBuf>,
) -> (Vec<Record>, Vec<Pool>, Vec<FileError>) {
    let spec: ZoneSpec = match toml::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            return (Vec::new(), Vec::new(), vec![toml_error(path, text, &e)]);
        }
    };
    let (inline, include, pools) = spec.split();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let include_span = include.as_ref().map_or(0..0, |i| i.span());
    let mut budget = IncludeBudget::new(text.len());
    for inc in include.map(|i| i.into_inner().into_vec()).unwrap_or_default() {
        let inc_path = file.path.parent().unwrap_or(Path::new(".")).join(&inc);
        // Watched even when it cannot be read: its appearing loads the zone again.
        files.push(inc_path.clone());
        match budget.read(&inc_path) {
            Ok(t) => {
                let parsed = zonefile::parse_within(Source::file(&t, &inc_path), &file.apex, &mut budget);
                files.extend(parsed.includes);
                records.extend(parsed.records);
                errors.extend(parsed.errors);
            }
            Err(e) => errors.push(crate::model::position::span_error(
                path,
                text,
                include_span.clone(),
                format!("cannot read include {}: {e}", inc_path.display()),
            )),
        }
    }
    if let Some(inline) = inline {
        let span = inline.span();
        // The text starts after the opening quote(s); TOML drops a newline right after `"""`.
        let raw = &text[span.clone()];
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
        let mut start = span.start + quote;
        if quote == 3 && text[start..].starts_with('\n') {
            start += 1;
        } else if quote == 3 && text[start..].starts_with("\r\n") {
            start += 2;
        }
        let (line, col) = crate::model::position::locate(text, start);
        let src = Source { text: inline.get_ref(), file: path.clone(), line, col };
        let parsed = zonefile::parse_within(src, &file.apex, &mut budget);
        files.extend(parsed.includes);
        records.extend(parsed.records);
        errors.extend(parsed.errors);
    }
    files.extend(pools.side_files(&file.path));
    let pools = zone_toml::pools_of(pools, path, text, &file.apex, &mut errors);
    (records, pools, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 3600\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    fn errors(l: &ZoneLoad) -> Vec<String> {
        l.result.as_ref().err().map(|e| e.iter().map(ToString::to_string).collect()).unwrap_or_default()
    }

    /// A byte that is not UTF-8 in a master file is kept as that byte (BIND accepts it); in a
    /// TOML file, which must be UTF-8, it is an error at its line and column.
    /// A zone's file included by a zone of another name is read as part of that one: said, as
    /// the zone it names is then not served.
    #[test]
    fn a_zone_file_taken_by_another_zone_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), "include = \"example.net.zone\"\n").unwrap();
        std::fs::write(dir.path().join("example.net.zone"), ZONE).unwrap();
        let loads = load_dir(dir.path()).unwrap();
        let w = taken_by_other_zones(dir.path(), &loads);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("example.net.zone is included by")
                && w[0].ends_with("so zone example.net. is not served from it"),
            "{w:?}"
        );
        // The usual fragment, named as the zone that includes it, is no news.
        std::fs::rename(dir.path().join("example.net.zone"), dir.path().join("example.com.zone")).unwrap();
        std::fs::write(dir.path().join("example.com.toml"), "include = \"example.com.zone\"\n").unwrap();
        assert!(taken_by_other_zones(dir.path(), &load_dir(dir.path()).unwrap()).is_empty());
    }

    /// Files named like zone files are never left out unseen: a FIFO or a link to nothing is
    /// loaded and fails with its reason; a name that is no zone name is listed as such.
    #[test]
    fn files_named_like_zones_are_loaded_or_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.test.zone");
        crate::config::bounded::mkfifo(&fifo);
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling.test.zone")).unwrap();
        std::fs::write(dir.path().join("ex..ample.zone"), ZONE).unwrap();
        std::fs::create_dir(dir.path().join("dir.test.zone")).unwrap();
        let loads = load_dir(dir.path()).unwrap();
        let mut got: Vec<(String, String)> =
            loads.iter().map(|l| (l.file.apex.to_string(), errors(l).join(""))).collect();
        got.sort();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0 == "dangling.test." && got[0].1.contains("No such file"), "{got:?}");
        assert!(got[1].0 == "fifo.test." && got[1].1.contains("is a FIFO"), "{got:?}");
        let m = misnamed(dir.path());
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].0.ends_with("ex..ample.zone"));
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let mut zone = ZONE.as_bytes().to_vec();
        zone.extend_from_slice(b"txt TXT \"caf\xe9\" \\\xff\n");
        std::fs::write(dir.path().join("example.com.zone"), &zone).unwrap();
        let mut toml = b"records = \"\"\"\n".to_vec();
        toml.extend_from_slice(ZONE.as_bytes());
        toml.extend_from_slice(b"x TXT \"\xe9\"\n\"\"\"\n");
        std::fs::write(dir.path().join("example.net.toml"), &toml).unwrap();
        let loads = load_dir(dir.path()).unwrap();
        let z = loads[0].result.as_ref().unwrap();
        let id = z.node_id(&Name::parse("txt.example.com.", None).unwrap().key()).expect("the TXT name");
        let txt = z.node(id).rrset(crate::model::rtype::TXT).unwrap();
        assert_eq!(txt.rdatas().next().unwrap(), b"\x04caf\xe9\x01\xff");
        let e = errors(&loads[1]);
        assert!(
            e.len() == 1 && e[0].ends_with("example.net.toml:6:8: byte 0xe9 is not UTF-8 (a TOML file must be UTF-8)"),
            "{e:?}"
        );
    }

    /// What no message could carry is refused at load, where it is written, rather than
    /// failing (or worse) when it is asked for.
    #[test]
    fn records_and_sets_too_big_for_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let s255 = format!("\"{}\"", "x".repeat(255));
        let big_txt = vec![s255.as_str(); 257].join(" ");
        let many: String = (0..300).map(|i| format!("set TXT \"{i}{}\"\n", "y".repeat(240))).collect();
        std::fs::write(dir.path().join("example.com.zone"), format!("{ZONE}one TXT {big_txt}\nok TXT \"a\"\n{many}"))
            .unwrap();
        let loads = load_dir(dir.path()).unwrap();
        let e = errors(&loads[0]);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("example.com.zone:5:1: TXT record data of 65792 bytes is over the 65535"), "{e:?}");
        assert!(e[1].contains("example.com.zone:7:1: TXT set of 300 records takes"), "{e:?}");
    }

    #[test]
    fn toml_zone_with_pools_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "records = \"\"\"\n{ZONE}www A 192.0.2.1\n\"\"\"\n[pools.www]\ncheck = {{ type = \"tcp\", port = 80 }}\ntargets = [{{ address = \"192.0.2.10\", priority = 1 }}]\n"
        );
        std::fs::write(dir.path().join("example.com.toml"), &toml).unwrap();
        let loads = load_dir(dir.path()).unwrap();
        assert_eq!(loads.len(), 1);
        let e = errors(&loads[0]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("example.com.toml:8:8: pool www.example.com.: the name also has static A records (at "),
            "{e:?}"
        );
        assert!(e[0].contains("example.com.toml:6:1)"), "{e:?}");
        // Fix it: the pool is served.
        std::fs::write(dir.path().join("example.com.toml"), toml.replace("www A 192.0.2.1\n", "")).unwrap();
        let loads = load_dir(dir.path()).unwrap();
        let z = loads[0].result.as_ref().unwrap();
        assert_eq!(z.pools.len(), 1);
    }

    #[test]
    fn inline_record_errors_point_into_the_toml_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("example.com.toml"),
            format!("# comment\nrecords = \"\"\"\n{ZONE}bad A 1.2.3\n\"\"\"\n"),
        )
        .unwrap();
        let loads = load_dir(dir.path()).unwrap();
        assert_eq!(
            errors(&loads[0]),
            vec![format!(
                "{}:7:7: A record: not an IPv4 address: \"1.2.3\"",
                dir.path().join("example.com.toml").display()
            )]
        );
    }

    #[test]
    fn included_zone_files_are_not_zones_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        std::fs::write(dir.path().join("example.com.toml"), "include = \"example.com.zone\"\n").unwrap();
        std::fs::write(dir.path().join("example.net.zone"), ZONE).unwrap();
        std::fs::write(dir.path().join(".example.org.zone.swp"), "junk").unwrap();
        std::fs::write(dir.path().join("README"), "junk").unwrap();
        let loads = load_dir(dir.path()).unwrap();
        let names: Vec<String> = loads.iter().map(|l| l.file.apex.to_string()).collect();
        assert_eq!(names, ["example.com.", "example.net."]);
        assert!(loads.iter().all(|l| l.result.is_ok()));
        assert_eq!(loads[0].files.len(), 2);
    }

    #[test]
    fn two_files_for_one_zone_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        std::fs::write(dir.path().join("example.com.toml"), format!("records = '''\n{ZONE}'''\n")).unwrap();
        let loads = load_dir(dir.path()).unwrap();
        assert!(loads.iter().any(|l| errors(l).iter().any(|e| e.contains("also defined by"))));
    }

    #[test]
    fn missing_directory() {
        let e = load_dir(Path::new("/nonexistent/zones")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read the zones directory /nonexistent/zones"));
    }
}

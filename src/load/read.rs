//! Reading zone files, bounded: only regular files (a FIFO or a device would block the loader or
//! never end), at most [`max_file_size`] bytes, opened without blocking. Every file a zone
//! names goes through here: the zone file itself, `include`s and `$INCLUDE`s.
//!
//! Master files are bytes: a byte that is not UTF-8 (a Latin-1 `é` in a TXT string, which
//! BIND accepts) is kept, as the master-file escape `\DDD` for that octet.

use std::path::Path;

pub use crate::config::bounded::{max_zone_file_size as max_file_size, set_max_zone_file_size as set_max_file_size};

/// The bytes of a regular file of at most [`max_file_size`] bytes; errors say why not, in
/// words that follow the file's name.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    crate::config::bounded::read(path, max_file_size(), "zone_file_limit in weiche.toml")
}

/// Most includes one zone may read, counting every `$INCLUDE` and `include`, however deep,
/// and a file included again each time (BIND's `$INCLUDE common.inc sub.` for each of a few
/// hundred subdomains fits).
pub const MAX_INCLUDES: usize = 4096;

/// What a zone's includes may still read. A zone is its file and everything that file
/// includes: together they are held to `zone_file_limit` and [`MAX_INCLUDES`] files, so a few
/// lines that include each other many times over cannot take minutes or gigabytes.
#[derive(Debug)]
pub struct IncludeBudget {
    files: usize,
    bytes: u64,
    limit: u64,
}

impl IncludeBudget {
    /// The budget of a zone whose own file is `first` bytes.
    pub fn new(first: usize) -> Self {
        IncludeBudget { files: 0, bytes: first as u64, limit: max_file_size() }
    }

    /// The text of one more included master file, if the zone may read it; errors follow the
    /// file's name.
    pub fn read(&mut self, path: &Path) -> Result<String, String> {
        if self.files >= MAX_INCLUDES {
            return Err(format!("the zone has read {MAX_INCLUDES} includes already, the most one zone may"));
        }
        self.files += 1;
        let bytes = read_bytes(path)?;
        self.bytes += bytes.len() as u64;
        if self.bytes > self.limit {
            return Err(format!(
                "brings the zone file and its includes to {} bytes, over the limit of {} for all of them \
                 together (zone_file_limit in weiche.toml)",
                self.bytes, self.limit
            ));
        }
        Ok(master_text(bytes))
    }
}

/// A master file's text: UTF-8 as it is, any other byte as its `\DDD` escape (after an
/// unescaped backslash, as the three digits alone, which is the same octet).
pub fn master_text(bytes: Vec<u8>) -> String {
    let bytes = match String::from_utf8(bytes) {
        Ok(s) => return s,
        Err(e) => e.into_bytes(),
    };
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut rest = &bytes[..];
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).expect("valid up to here"));
                let skip = e.error_len().unwrap_or(bad.len());
                for &b in &bad[..skip] {
                    let escaped = out.bytes().rev().take_while(|&c| c == b'\\').count() % 2 == 1;
                    if !escaped {
                        out.push('\\');
                    }
                    out.push_str(&format!("{b:03}"));
                }
                rest = &bad[skip..];
            }
        }
    }
}

/// A TOML file's text, which must be UTF-8: else where the first bad byte is (line, column).
pub fn utf8_text(bytes: Vec<u8>) -> Result<String, (usize, usize, String)> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        (line, col, format!("byte 0x{:02x} is not UTF-8 (a TOML file must be UTF-8)", e.as_bytes()[at]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("z");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_bytes(&f).unwrap(), b"hello");
        assert_eq!(read_bytes(dir.path()).unwrap_err(), "is a directory; only regular files are read");
        let fifo = dir.path().join("fifo");
        crate::config::bounded::mkfifo(&fifo);
        assert_eq!(read_bytes(&fifo).unwrap_err(), "is a FIFO; only regular files are read", "and it did not block");
        assert_eq!(read_bytes(Path::new("/dev/zero")).unwrap_err(), "is a device; only regular files are read");
        assert!(read_bytes(&dir.path().join("missing")).unwrap_err().contains("No such file"));
    }

    /// One file of 600 bytes included twice, under a limit of 1000: each fits, both don't.
    #[test]
    fn a_zone_and_its_includes_share_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.part");
        std::fs::write(&f, format!("; {}\n", "x".repeat(597))).unwrap();
        let mut budget = IncludeBudget { files: 0, bytes: 0, limit: 1000 };
        assert!(budget.read(&f).is_ok());
        assert_eq!(
            budget.read(&f).unwrap_err(),
            "brings the zone file and its includes to 1200 bytes, over the limit of 1000 for all of them \
             together (zone_file_limit in weiche.toml)"
        );
    }

    #[test]
    fn the_limit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("z");
        std::fs::write(&f, vec![b'x'; 2000]).unwrap();
        // The limit is process-wide: other tests read far smaller files than this one.
        set_max_file_size(1999);
        let e = read_bytes(&f);
        set_max_file_size(crate::config::DEFAULT_ZONE_FILE_LIMIT);
        assert_eq!(e.unwrap_err(), "is 2000 bytes, over the limit of 1999 (zone_file_limit in weiche.toml)");
    }

    #[test]
    fn bytes_that_are_not_utf8_become_escapes() {
        assert_eq!(master_text(b"txt TXT \"caf\xe9\"".to_vec()), "txt TXT \"caf\\233\"");
        assert_eq!(master_text(b"a \\\xe9 \\\\\xff".to_vec()), "a \\233 \\\\\\255");
        assert_eq!(master_text("é ok".as_bytes().to_vec()), "é ok");
        assert_eq!(utf8_text(b"a = 1\nb = \"x\xff\"".to_vec()).unwrap_err().0, 2);
        assert_eq!(utf8_text(b"a = 1\nb = \"x\xff\"".to_vec()).unwrap_err().1, 7);
    }
}

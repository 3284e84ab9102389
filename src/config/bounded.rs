//! Reading a file someone names, bounded: only a regular file (a FIFO or a device would block
//! the reader or never end), at most a given size, opened without blocking. Zone files go
//! through here with `zone_file_limit`; weiche.toml, key files and the API token with limits of
//! their own.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static MAX_ZONE_FILE_SIZE: AtomicU64 = AtomicU64::new(crate::config::DEFAULT_ZONE_FILE_LIMIT);

/// The most bytes one zone file may have (`[server] zone_file_limit`).
pub fn max_zone_file_size() -> u64 {
    MAX_ZONE_FILE_SIZE.load(Ordering::Relaxed)
}

/// Sets the zone file limit for every read from now on (at start, and when weiche.toml is
/// read again).
pub fn set_max_zone_file_size(bytes: u64) {
    MAX_ZONE_FILE_SIZE.store(bytes, Ordering::Relaxed);
}

/// The most bytes weiche.toml may have.
pub const CONFIG_LIMIT: u64 = 16 << 20;
/// The most bytes a key file or the API token file may have.
pub const SECRET_LIMIT: u64 = 64 << 10;

/// The bytes of the regular file `path`, of at most `max` bytes (`limit` names the setting or
/// bound, for the message); errors say why not, in words that follow the file's name.
pub fn read(path: &Path, max: u64, limit: &str) -> Result<Vec<u8>, String> {
    // O_NONBLOCK: opening a FIFO with no writer would wait for one. It changes nothing for a
    // regular file, and anything else is refused below, before a read.
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!("is {what}; only regular files are read"));
    }
    let too_big = |n: u64| format!("is {n} bytes, over the limit of {max} ({limit})");
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the look and the read: read one byte past the limit to tell.
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, max: u64, limit: &str) -> Result<String, String> {
    String::from_utf8(read(path, max, limit)?).map_err(|e| format!("is not UTF-8 text ({e})"))
}

/// Makes a FIFO at `path`, for tests of what must never be read.
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("a UTF-8 path")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path; mkfifo reads it only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "x".repeat(100)).unwrap();
        assert_eq!(read_text(&f, 100, "L").unwrap().len(), 100);
        assert_eq!(read(&f, 99, "L"), Err("is 100 bytes, over the limit of 99 (L)".into()));
        assert_eq!(read(dir.path(), 99, "L"), Err("is a directory; only regular files are read".into()));
        assert_eq!(read(Path::new("/dev/zero"), 99, "L"), Err("is a device; only regular files are read".into()));
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert_eq!(read(&fifo, 99, "L"), Err("is a FIFO; only regular files are read".into()));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text(&f, 99, "L").unwrap_err().starts_with("is not UTF-8 text"));
    }
}

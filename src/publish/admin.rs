//! What operators decided, kept across restarts: drained targets and manual-failback holds.
//!
//! The state file is JSON, written atomically (temporary file, fsync, rename, fsync of the
//! directory). A file that cannot be read is set aside and reported, never fatal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "weiche-state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminState {
    pub version: u32,
    /// Drained targets: an answered address, everywhere (pool None) or in one pool (its name
    /// with the final dot).
    #[serde(default)]
    pub drained: BTreeSet<Drain>,
    /// Levels held by manual failback, per pool name: [A, AAAA].
    #[serde(default)]
    pub held: BTreeMap<String, [Option<u8>; 2]>,
    /// The serial each zone was last served with, and a hash of what it served then: a restart
    /// with the same content keeps the serial, a changed one moves it forward.
    #[serde(default)]
    pub serials: BTreeMap<String, (u32, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    pub address: IpAddr,
    pub pool: Option<String>,
}

impl AdminState {
    pub fn is_drained(&self, address: IpAddr, pool: &str) -> bool {
        self.drained
            .iter()
            .any(|d| d.address == address && d.pool.as_deref().is_none_or(|p| p.eq_ignore_ascii_case(pool)))
    }
}

/// Where the state lives (None: not persisted).
#[derive(Debug, Clone)]
pub struct StateFile {
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write the state file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl StateFile {
    pub fn in_dir(dir: &Path) -> StateFile {
        StateFile { path: dir.join(STATE_FILE) }
    }

    /// Reads the state. A missing file is an empty state; a corrupt one is renamed to
    /// `*.corrupt-<unix time>` and reported in the returned message.
    pub fn load(&self) -> (AdminState, Option<String>) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (AdminState::default(), None);
            }
            Err(e) => {
                return (
                    AdminState::default(),
                    Some(format!("cannot read {}: {e}; starting with no drains", self.path.display())),
                );
            }
        };
        match serde_json::from_str::<AdminState>(&text) {
            Ok(s) => (s, None),
            Err(e) => {
                let secs =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let aside = self.path.with_extension(format!("json.corrupt-{secs}"));
                let moved = std::fs::rename(&self.path, &aside).map_or_else(
                    |e| format!("could not move it aside: {e}"),
                    |_| format!("moved to {}", aside.display()),
                );
                (
                    AdminState::default(),
                    Some(format!(
                        "state file {} is corrupt ({e}); {moved}; starting with no drains",
                        self.path.display()
                    )),
                )
            }
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, state: &AdminState) -> Result<(), StateError> {
        let err = |source| StateError::Write { path: self.path.clone(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        let mut text = serde_json::to_vec_pretty(&AdminState { version: 1, ..state.clone() }).expect("serializable");
        text.push(b'\n');
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_drain_matching() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::in_dir(&dir.path().join("state"));
        assert_eq!(f.load(), (AdminState::default(), None));
        let mut s = AdminState::default();
        s.drained.insert(Drain { address: "192.0.2.1".parse().unwrap(), pool: None });
        s.drained.insert(Drain { address: "192.0.2.2".parse().unwrap(), pool: Some("www.example.com.".into()) });
        s.held.insert("db.example.com.".into(), [Some(2), None]);
        f.save(&s).unwrap();
        let (back, msg) = f.load();
        assert_eq!((back.drained, back.held, msg), (s.drained.clone(), s.held.clone(), None));
        assert!(s.is_drained("192.0.2.1".parse().unwrap(), "any.example.com."));
        assert!(s.is_drained("192.0.2.2".parse().unwrap(), "WWW.example.com."));
        assert!(!s.is_drained("192.0.2.2".parse().unwrap(), "db.example.com."));
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::in_dir(dir.path());
        std::fs::write(&f.path, "{ not json").unwrap();
        let (s, msg) = f.load();
        assert_eq!(s, AdminState::default());
        assert!(msg.unwrap().contains("is corrupt"));
        assert!(!f.path.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
        assert!(aside.iter().any(|e| e.file_name().to_string_lossy().contains("corrupt")));
    }
}

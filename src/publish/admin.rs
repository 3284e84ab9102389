//! What operators decided, kept across restarts: drained targets and manual-failback holds.
//!
//! The state file is JSON, written atomically (temporary file, fsync, rename, fsync of the
//! directory). A file that cannot be read is set aside and reported, never fatal.
//!
//! Serials must never go backwards across a restart, yet the file may miss some that were
//! served: it is written after they are, and a full disk or a wrong permission can keep it
//! from being written at all. So every write while weiche runs says `running`, and only the
//! last one, at a clean stop, says it is not. A start that finds `running` still set (or
//! cannot write the file itself) moves every restored serial past any the last run can have
//! served ([`AdminState::skip_lost_serials`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{error, warn};

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
    /// Written by a running weiche; a clean stop writes false. True at start: the last run
    /// stopped without its final write, so serials it served may be missing here.
    #[serde(default)]
    pub running: bool,
    /// When this was written, in seconds since the Unix epoch (None: by a weiche from before
    /// this field).
    #[serde(default)]
    pub saved_at: Option<u64>,
    /// In a cluster: the operator writes this member holds, with their stamps, so that a
    /// restarted member still knows which of its peers' writes are newer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_ops: Vec<crate::cluster::wire::OpWrite>,
}

/// How many serials a zone is assumed to take at most per second, on average, while its
/// serials cannot be written down: the margin a start after lost writes adds for the time
/// since the last write. A change of content takes one serial; ten a second is far beyond
/// what probes with hysteresis and operators bring about.
pub const SERIALS_PER_SECOND: u64 = 10;

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

    /// How far serials may have gone beyond the ones restored since this state was written
    /// (at `now`): [`SERIALS_PER_SECOND`] for every second since, and as many again for the
    /// second of the write, below 2^30 so that a step by it is always forward (RFC 1982).
    pub fn lost_serials(&self, now: SystemTime) -> u32 {
        let Some(saved) = self.saved_at else { return 0 };
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let margin = now.saturating_sub(saved).saturating_add(1).saturating_mul(SERIALS_PER_SECOND);
        margin.min(1 << 30) as u32
    }

    /// After writes may have been lost (the last run did not stop cleanly, or the file cannot
    /// be written now): moves every restored serial past any the last run can have served
    /// since this state was written, and forgets what it served, so that the first serial of
    /// each zone is the next one after that whatever it serves now.
    pub fn skip_lost_serials(&mut self, now: SystemTime) {
        let lost = self.lost_serials(now);
        for (serial, hash) in self.serials.values_mut() {
            *serial = serial.wrapping_add(lost);
            *hash = 0;
        }
    }
}

/// The most bytes a state file may have: drains, holds and serials of many thousand pools
/// and zones take a few MiB.
const STATE_LIMIT: u64 = 256 << 20;

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
        if std::fs::symlink_metadata(&self.path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            return (AdminState::default(), None);
        }
        // Bounded, and only a regular file: a FIFO in its place would hang the start.
        let text = match crate::config::bounded::read_text(&self.path, STATE_LIMIT, "the most a state file may have") {
            Ok(t) => t,
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
                let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
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

    /// Reads the state to start from at `now`, and writes it back at once as in use by this
    /// run. When the last run did not stop cleanly, or this write fails (so this run may
    /// serve what the file will not hold), serials are moved past any the last run may have
    /// served unwritten. Returns the state and what the write came to; problems are logged.
    pub fn open(&self, now: SystemTime) -> (AdminState, Result<(), String>) {
        let (mut state, problem) = self.load();
        if let Some(p) = problem {
            error!("{p}");
        }
        let (unclean, skip) = (state.running, state.lost_serials(now));
        if unclean {
            state.skip_lost_serials(now);
        }
        let written = self.save(&state, true).map_err(|e| e.to_string());
        if let Err(e) = &written {
            error!("{e}; operator changes and serials hold until restart only");
            if !unclean {
                state.skip_lost_serials(now);
            }
        }
        if (unclean || written.is_err()) && !state.serials.is_empty() {
            let why = if unclean { "the last run did not stop cleanly" } else { "the state file cannot be written" };
            warn!(file = %self.path.display(), skipped = skip, "{why}: serials may have been served that it does not hold; each zone's serial moves past them");
        }
        (state, written)
    }

    /// Writes the state atomically, saying whether weiche goes on running (false only for the
    /// last write of a clean stop) and when it was written.
    pub fn save(&self, state: &AdminState, running: bool) -> Result<(), StateError> {
        let err = |source| StateError::Write { path: self.path.clone(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        let saved_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let state = AdminState { version: 1, running, saved_at: Some(saved_at), ..state.clone() };
        let mut text = serde_json::to_vec_pretty(&state).expect("serializable");
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

    /// A FIFO in the state file's place is refused at once, never read: reading it would hang
    /// the start.
    #[test]
    fn a_fifo_as_the_state_file_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::in_dir(dir.path());
        crate::config::bounded::mkfifo(&f.path);
        let (state, problem) = f.load();
        assert_eq!(state, AdminState::default());
        assert!(problem.as_deref().is_some_and(|p| p.contains("is a FIFO")), "{problem:?}");
    }

    #[test]
    fn round_trip_and_drain_matching() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::in_dir(&dir.path().join("state"));
        assert_eq!(f.load(), (AdminState::default(), None));
        let mut s = AdminState::default();
        s.drained.insert(Drain { address: "192.0.2.1".parse().unwrap(), pool: None });
        s.drained.insert(Drain { address: "192.0.2.2".parse().unwrap(), pool: Some("www.example.com.".into()) });
        s.held.insert("db.example.com.".into(), [Some(2), None]);
        f.save(&s, true).unwrap();
        let (back, msg) = f.load();
        assert_eq!((back.drained, back.held, msg), (s.drained.clone(), s.held.clone(), None));
        assert!(back.running && back.saved_at.is_some());
        f.save(&s, false).unwrap();
        assert!(!f.load().0.running, "a clean stop");
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

    /// A state file from a weiche before `running` and `saved_at` reads as a clean stop.
    #[test]
    fn an_older_state_file_reads_as_a_clean_stop() {
        let s: AdminState = serde_json::from_str(r#"{"version": 1, "serials": {"example.com.": [7, 99]}}"#).unwrap();
        assert!(!s.running);
        assert_eq!(s.lost_serials(SystemTime::now()), 0);
    }

    /// Serials the last run may have served unwritten are skipped: ten a second since the
    /// last write, and ten for the second of the write itself; what was served is forgotten,
    /// so the next serial comes after the skipped ones; and the step stays below 2^30.
    #[test]
    fn lost_serials_are_skipped_by_the_time_since_the_last_write() {
        let at = |secs: u64| UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let mut s = AdminState { saved_at: Some(1_800_000_000), running: true, ..Default::default() };
        s.serials.insert("example.com.".into(), (2026112009, 42));
        s.serials.insert("example.net.".into(), (u32::MAX, 7));
        assert_eq!(s.lost_serials(at(1_800_000_000)), 10);
        assert_eq!(s.lost_serials(at(1_800_000_003)), 40);
        assert_eq!(s.lost_serials(at(1_799_999_000)), 10, "a clock set back skips the least");
        assert_eq!(s.lost_serials(at(1_800_000_000 + 10 * 365 * 86400)), 1 << 30);
        s.skip_lost_serials(at(1_800_000_003));
        assert_eq!(s.serials["example.com."], (2026112049, 0));
        assert_eq!(s.serials["example.net."], (39, 0), "RFC 1982: 39 comes after 2^32 - 1");
        assert!(crate::model::history::serial_gt(39, u32::MAX));
    }

    /// At start the state is written back as in use; serials are skipped when the last run did
    /// not stop cleanly, or when that write fails (this run's serials would not be kept), and
    /// only then.
    #[test]
    fn a_start_skips_serials_only_when_some_may_be_lost() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::in_dir(dir.path());
        let now = SystemTime::now();
        let mut s = AdminState::default();
        s.serials.insert("example.com.".into(), (100, 5));
        // A clean stop, a writable file: kept as it is, and now marked as in use.
        f.save(&s, false).unwrap();
        let (got, written) = f.open(now);
        assert_eq!((got.serials["example.com."], written), ((100, 5), Ok(())));
        assert!(f.load().0.running);
        // In use already: the last run did not stop cleanly.
        let (got, written) = f.open(now);
        assert_eq!((got.serials["example.com."], written), ((110, 0), Ok(())));
        assert_eq!(f.load().0.serials["example.com."], (110, 0), "the skip is written at once");
        // A clean stop, but the file cannot be written now.
        f.save(&s, false).unwrap();
        std::fs::create_dir(f.path.with_extension("json.tmp")).unwrap();
        let (got, written) = f.open(now);
        assert_eq!(got.serials["example.com."], (110, 0));
        assert!(written.unwrap_err().contains("cannot write the state file"));
    }
}

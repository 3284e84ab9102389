//! The zones directory, watched: which files changed, loading them, and what each one serves.
//!
//! Runs on its own blocking thread, driven by [`watch`]: a periodic look and SIGHUP. Everything
//! slow about a zone (reading, parsing, indexing, the IXFR difference to the version before,
//! freeing the version replaced) happens here, never on the publisher's path; the publisher
//! receives finished [`Reload`]s as messages.
//!
//! Rules it keeps: a file that fails to load leaves the previous version of its zone serving;
//! a file is loaded only once it has stopped changing (same size, time and inode on two looks
//! in a row), so a half-written file is never served; a deleted file removes its zone; a plain
//! master file that another zone includes is a fragment, not a zone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::Dnssec;
use crate::dnssec::zone::SignedZone;
use crate::load::loader::{self, DirError, Kind, ZoneFile};
use crate::model::history::{self, Rec};
use crate::model::zone::Zone;
use crate::ops::events::{Event, EventKind};

/// What a file looked like: changes to any of these mean "read it again". The change time
/// moves with the permissions too, so a file made readable again is read again.
type Signature = Option<(SystemTime, (i64, i64), u64, u64)>;

fn signature(path: &Path) -> Signature {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, (m.ctime(), m.ctime_nsec()), m.len(), m.ino()))
}

fn signatures(files: &[PathBuf]) -> Vec<Signature> {
    files.iter().map(|f| signature(f)).collect()
}

/// One zone file as last seen, and what it serves.
#[derive(Debug, Clone)]
pub struct ZoneFileState {
    pub file: ZoneFile,
    /// Files it read (itself first, then its includes).
    pub files: Vec<PathBuf>,
    /// What is being served from it (None: it never loaded).
    pub served: Option<Arc<Zone>>,
    pub loaded_at: Option<SystemTime>,
    /// Why the latest version was not loaded (None: it was).
    pub last_error: Option<String>,
    /// The signatures of `served`, in a zone weiche signs.
    pub signed: Option<Arc<SignedZone>>,
}

/// The records (all but the SOA and pool answers) a reload removed and added, for IXFR.
#[derive(Debug)]
pub struct ZoneDiff {
    /// The version this differs from, and the one it leads to.
    pub from: Arc<Zone>,
    pub to: Arc<Zone>,
    pub removed: Vec<Rec>,
    pub added: Vec<Rec>,
}

/// Every zone file after a look that changed something, with the events of that look and the
/// differences of the zones it replaced.
#[derive(Debug)]
pub struct Reload {
    pub zones: Vec<ZoneFileState>,
    pub events: Vec<Event>,
    pub diffs: Vec<ZoneDiff>,
}

struct Tracked {
    state: ZoneFileState,
    seen: Vec<Signature>,
    /// After a failed signing, when to try again unless the keys change (seconds since the
    /// epoch; 0: whenever due).
    resign_after: u64,
}

/// How long a zone that could not be signed again waits before the next try (a change in the
/// key directory tries at once): one event and one WARN per wait, not per look.
const RESIGN_RETRY: u64 = 600;

/// The zones directory and what was last loaded from it.
pub struct Watcher {
    dir: PathBuf,
    tracked: BTreeMap<PathBuf, Tracked>,
    /// Changed files waiting to be seen unchanged once more before loading.
    pending: BTreeMap<PathBuf, Vec<Signature>>,
    dnssec: Option<Dnssec>,
    /// The key directory as last seen: a change signs every signed zone again.
    keys_seen: Vec<(std::ffi::OsString, Signature)>,
    /// Files named like zone files whose names are no zone names, as last warned of.
    misnamed: Vec<(PathBuf, String)>,
}

impl Watcher {
    pub fn new(dir: &Path) -> Watcher {
        Watcher {
            dir: dir.into(),
            tracked: BTreeMap::new(),
            pending: BTreeMap::new(),
            dnssec: None,
            keys_seen: Vec::new(),
            misnamed: Vec::new(),
        }
    }

    /// Signs the zones `dnssec` names.
    pub fn signing(mut self, dnssec: Option<Dnssec>) -> Watcher {
        self.dnssec = dnssec;
        self
    }

    fn key_files(&self) -> Vec<(std::ffi::OsString, Signature)> {
        let Some(d) = &self.dnssec else { return Vec::new() };
        let mut out: Vec<_> = std::fs::read_dir(&d.key_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name(), signature(&e.path())))
            .collect();
        out.sort();
        out
    }

    /// Signs `zone` if weiche signs it: None if it does not, else the signatures or why not.
    fn sign(&self, zone: &Zone) -> Option<Result<Arc<SignedZone>, String>> {
        let d = self.dnssec.as_ref().filter(|d| d.signs(&zone.apex))?;
        Some(sign_with(d, zone).map(Arc::new))
    }

    /// Signs again the zones whose signatures are due, or all of them when the key directory
    /// changed. A zone that cannot be signed keeps its last signatures (and says so).
    /// `signed_now`: the zones this look loaded (and signed) already.
    fn resign(&mut self, keys_changed: bool, signed_now: &[PathBuf], events: &mut Vec<Event>) -> bool {
        let now = unix_now();
        let due: Vec<PathBuf> = self
            .tracked
            .iter()
            .filter(|(p, _)| !signed_now.contains(p))
            .filter(|(_, t)| {
                t.state.signed.as_ref().is_some_and(|s| keys_changed || (s.refresh_at <= now && t.resign_after <= now))
            })
            .map(|(p, _)| p.clone())
            .collect();
        let mut changed = false;
        for path in due {
            let t = &self.tracked[&path];
            let Some(zone) = t.state.served.clone() else { continue };
            match self.sign(&zone).expect("a signed zone") {
                Ok(signed) => {
                    info!(zone = %zone.apex, valid_until = %crate::dnssec::keys::format_timestamp(u64::from(signed.window.expiration)), "zone signed again");
                    let t = self.tracked.get_mut(&path).expect("tracked");
                    t.state.signed = Some(signed);
                    t.resign_after = 0;
                    changed = true;
                }
                Err(e) => {
                    let until = t.state.signed.as_ref().map_or(0, |s| u64::from(s.window.expiration));
                    warn!(zone = %zone.apex, error = %e, "zone not signed again; its last signatures keep serving");
                    let reason = format!(
                        "cannot sign: {e}; the last signatures keep serving, valid until {}",
                        crate::dnssec::keys::format_timestamp(until)
                    );
                    events
                        .push(Event { zone: Some(zone.apex.to_string()), ..Event::new(EventKind::ZoneError, reason) });
                    self.tracked.get_mut(&path).expect("tracked").resign_after = now + RESIGN_RETRY;
                }
            }
        }
        changed
    }

    /// Looks at the directory and loads what changed. With `now`, changed files are loaded at
    /// once (start-up, SIGHUP) instead of after they have settled. Returns the new picture if
    /// anything that is served changed, or a load failed.
    pub fn reconcile(&mut self, now: bool) -> Result<Option<Reload>, DirError> {
        let found = loader::scan(&self.dir)?;
        let misnamed = loader::misnamed(&self.dir);
        for (path, why) in misnamed.iter().filter(|m| !self.misnamed.contains(m)) {
            warn!(file = %path.display(), "not loaded: its name is no zone name ({why})");
        }
        self.misnamed = misnamed;
        let (mut events, mut diffs) = (Vec::new(), Vec::new());
        let mut changed = false;
        let gone: Vec<PathBuf> =
            self.tracked.keys().filter(|p| !found.iter().any(|f| &f.path == *p)).cloned().collect();
        for path in gone {
            let t = self.tracked.remove(&path).expect("tracked");
            if t.state.served.is_some() {
                events.push(Event {
                    zone: Some(t.state.file.apex.to_string()),
                    ..Event::new(EventKind::ZoneRemoved, format!("{} was deleted", path.display()))
                });
                changed = true;
            }
        }
        self.pending.retain(|p, _| found.iter().any(|f| &f.path == p));
        // A change in the key directory signs every signed zone again, and retries the zones
        // that could not be signed (as SIGHUP retries every failed load).
        let keys = self.key_files();
        let keys_changed = keys != self.keys_seen;
        self.keys_seen = keys;
        let mut loaded = Vec::new();
        for file in found {
            let known_files =
                self.tracked.get(&file.path).map_or_else(|| vec![file.path.clone()], |t| t.state.files.clone());
            let now_sig = signatures(&known_files);
            // Unchanged files are not read again, except on SIGHUP one whose last load failed:
            // what failed may have been outside the file (a permission, a missing include).
            let unchanged = self.tracked.get(&file.path).is_some_and(|t| t.seen == now_sig);
            let retry = unchanged
                && self.tracked.get(&file.path).is_some_and(|t| (now || keys_changed) && t.state.last_error.is_some());
            if unchanged && !retry {
                self.pending.remove(&file.path);
                continue;
            }
            if !now && !retry && self.pending.get(&file.path) != Some(&now_sig) {
                self.pending.insert(file.path.clone(), now_sig);
                continue;
            }
            self.pending.remove(&file.path);
            loaded.push(file.path.clone());
            changed |= self.load(file, &mut events, &mut diffs);
        }
        // A plain zone file that another zone now includes is a fragment, not a zone.
        let fragments: Vec<PathBuf> = self
            .tracked
            .values()
            .filter(|t| t.state.file.kind == Kind::Plain)
            .filter(|t| self.included_elsewhere(&t.state.file.path))
            .map(|t| t.state.file.path.clone())
            .collect();
        for path in fragments {
            if self.tracked.remove(&path).and_then(|t| t.state.served).is_some() {
                info!(file = %path.display(), "file is included by another zone; no longer served as a zone of its own");
                changed = true;
            }
        }
        changed |= self.resign(keys_changed, &loaded, &mut events);
        if !changed && events.is_empty() {
            return Ok(None);
        }
        Ok(Some(Reload { zones: self.tracked.values().map(|t| t.state.clone()).collect(), events, diffs }))
    }

    /// The zone files whose latest version is not loaded, each with its first error.
    pub fn failures(&self) -> Vec<String> {
        self.tracked
            .values()
            .filter_map(|t| {
                let e = t.state.last_error.as_deref()?;
                let path = t.state.file.path.display().to_string();
                Some(if e.starts_with(&path) { e.to_string() } else { format!("{path}: {e}") })
            })
            .collect()
    }

    fn included_elsewhere(&self, path: &Path) -> bool {
        self.tracked
            .values()
            .filter(|t| t.state.file.path != path)
            .any(|t| t.state.files.iter().skip(1).any(|f| same_file(f, path)))
    }

    /// Loads one zone file; returns whether what is served changed.
    fn load(&mut self, file: ZoneFile, events: &mut Vec<Event>, diffs: &mut Vec<ZoneDiff>) -> bool {
        if file.kind == Kind::Plain && self.included_elsewhere(&file.path) {
            // A fragment included by another zone: its changes reload that zone instead.
            if let Some(by) = self.tracked.values().find(|t| {
                t.state.file.apex.key() != file.apex.key()
                    && t.state.files.iter().skip(1).any(|f| same_file(f, &file.path))
            }) {
                warn!(file = %file.path.display(), by = %by.state.file.path.display(), "zone {} is not served from this file: it is included by zone {}'s", file.apex, by.state.file.apex);
            }
            self.tracked.remove(&file.path);
            return false;
        }
        let twin = self.tracked.values().find(|t| {
            t.state.file.apex.key() == file.apex.key() && t.state.file.path != file.path && t.state.served.is_some()
        });
        if let Some(t) = twin {
            warn!(zone = %file.apex, file = %file.path.display(), other = %t.state.file.path.display(), "zone defined by two files; this one is ignored");
            let seen = signatures(std::slice::from_ref(&file.path));
            let last_error = Some(format!("zone also defined by {}", t.state.file.path.display()));
            let state = ZoneFileState {
                files: vec![file.path.clone()],
                file,
                served: None,
                loaded_at: None,
                last_error,
                signed: None,
            };
            self.tracked.insert(state.file.path.clone(), Tracked { state, seen, resign_after: 0 });
            return false;
        }
        let load = loader::load(file.clone());
        let seen = signatures(&load.files);
        let previous = self.tracked.remove(&file.path).map(|t| t.state);
        let signed = load.result.as_ref().ok().and_then(|z| self.sign(z));
        let result = match (load.result, signed) {
            (Ok(_), Some(Err(e))) => Err(vec![e]),
            (Ok(z), s) => Ok((z, s.map(|s| s.expect("checked")))),
            (Err(errors), _) => Err(errors.iter().map(ToString::to_string).collect()),
        };
        let state = match result {
            Ok((zone, signed)) => {
                let reason = format!(
                    "serial {}, {} records, {} pools, from {}",
                    zone.serial,
                    zone.record_count,
                    zone.pools.len(),
                    file.path.display()
                );
                events.push(Event { zone: Some(zone.apex.to_string()), ..Event::new(EventKind::ZoneLoaded, reason) });
                metrics::counter!("weiche_zone_loads_total", "result" => "ok").increment(1);
                let zone = Arc::new(zone);
                if let Some(old) = previous.and_then(|p| p.served).filter(|old| old.apex.key() == zone.apex.key()) {
                    diffs.push(zone_diff(old, zone.clone()));
                }
                ZoneFileState {
                    file,
                    files: load.files,
                    served: Some(zone),
                    loaded_at: Some(SystemTime::now()),
                    last_error: None,
                    signed,
                }
            }
            Err(errors) => {
                let (served, loaded_at, signed) =
                    previous.map_or((None, None, None), |p| (p.served, p.loaded_at, p.signed));
                let keeps = if served.is_some() { "the previous version keeps serving" } else { "zone not served" };
                for e in &errors {
                    warn!(zone = %file.apex, "{e}");
                }
                let reason = format!("{} error(s), first: {}; {keeps}", errors.len(), errors[0]);
                events.push(Event { zone: Some(file.apex.to_string()), ..Event::new(EventKind::ZoneError, reason) });
                metrics::counter!("weiche_zone_loads_total", "result" => "failed").increment(1);
                let last_error = Some(errors[0].clone());
                ZoneFileState { file, files: load.files, served, loaded_at, last_error, signed }
            }
        };
        let changed = state.last_error.is_none();
        self.tracked.insert(state.file.path.clone(), Tracked { state, seen, resign_after: 0 });
        changed
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Loads `zone`'s keys from the key directory and signs it now.
pub fn sign_with(d: &Dnssec, zone: &Zone) -> Result<SignedZone, String> {
    let keys = crate::dnssec::keys::load_zone_keys(&d.key_dir, &zone.apex).map_err(|e| e.to_string())?;
    if keys.is_empty() {
        let e = crate::dnssec::zone::ZoneSignError::NoKeys {
            zone: zone.apex.to_string(),
            dir: d.key_dir.display().to_string(),
        };
        return Err(e.to_string());
    }
    let validity = u32::try_from(d.validity.as_secs()).unwrap_or(u32::MAX);
    crate::dnssec::zone::sign_zone(zone, Arc::new(keys), unix_now(), validity).map_err(|e| e.to_string())
}

/// The difference between two versions of a zone in everything but the SOA and pool answers.
fn zone_diff(from: Arc<Zone>, to: Arc<Zone>) -> ZoneDiff {
    let (removed, added) = history::diff(history::zone_records(&from), history::zone_records(&to));
    ZoneDiff { from, to, removed, added }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Looks at the directory every `interval`, and at once when `asked` is notified (SIGHUP and
/// `weiche reload`, after weiche.toml was read again: a new `zone_file_limit` applies to the
/// zones read then), on a blocking thread; sends each [`Reload`] to the publisher. Memory a
/// reload freed is given back to the system here too. Ends when the publisher is gone.
pub async fn watch(
    mut watcher: Watcher,
    interval: Duration,
    tx: mpsc::UnboundedSender<Reload>,
    mut asked: mpsc::UnboundedReceiver<crate::ops::reload::ZonesAsk>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        let mut reply = None;
        let now = tokio::select! {
            _ = tick.tick() => false,
            Some(ask) = asked.recv() => {
                info!("reload asked (SIGHUP or weiche reload): reloading zones");
                reply = Some(ask);
                true
            }
            _ = tx.closed() => return,
        };
        let (w, result) = tokio::task::spawn_blocking(move || {
            let r = watcher.reconcile(now);
            (watcher, r)
        })
        .await
        .expect("zone loading panicked");
        watcher = w;
        let failed = match result {
            Ok(Some(reload)) => {
                if tx.send(reload).is_err() {
                    return;
                }
                None
            }
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "zones not reloaded; serving what was loaded");
                Some(vec![format!("zones not reloaded: {e}")])
            }
        };
        // Only a reload that was asked for is answered: a poll lists nothing.
        if let Some(reply) = reply {
            let _ = reply.send(failed.unwrap_or_else(|| watcher.failures()));
        }
    }
}

/// Frees `what` (a replaced snapshot, a big zone) on a blocking thread and gives the memory back
/// to the system: glibc keeps freed heap pages resident otherwise, and a big zone's parse leaves
/// hundreds of MiB.
pub fn drop_off_path<T: Send + 'static>(what: T) {
    tokio::task::spawn_blocking(move || {
        drop(what);
        trim_heap();
    });
}

fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    fn served(r: &Reload) -> Vec<(String, u32)> {
        r.zones.iter().filter_map(|z| z.served.as_ref()).map(|z| (z.apex.to_string(), z.serial)).collect()
    }

    #[test]
    fn settles_keeps_previous_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("example.com.zone");
        std::fs::write(&f, ZONE).unwrap();
        let mut w = Watcher::new(dir.path());
        let r = w.reconcile(true).unwrap().unwrap();
        assert_eq!(served(&r), [("example.com.".into(), 1)]);
        assert!(w.reconcile(false).unwrap().is_none(), "nothing changed");
        // A change is loaded only when seen twice the same.
        std::fs::write(&f, ZONE.replace(" 1 1h", " 2 1h") + "x A 192.0.2.1\n").unwrap();
        assert!(w.reconcile(false).unwrap().is_none());
        let r = w.reconcile(false).unwrap().unwrap();
        assert_eq!(served(&r)[0].1, 2);
        // The reload carries the difference to the version it replaced.
        let d = &r.diffs[0];
        assert_eq!((d.from.serial, d.removed.len(), d.added.len()), (1, 0, 1));
        // A broken edit keeps version 2, and says why.
        std::fs::write(&f, ZONE.replace(" 1 1h", " 3 1h") + "x A 192.0.2.999\n").unwrap();
        let r = w.reconcile(true).unwrap().unwrap();
        assert_eq!(served(&r)[0].1, 2);
        assert!(r.zones[0].last_error.as_deref().unwrap().contains("192.0.2.999"), "{:?}", r.zones[0].last_error);
        assert_eq!(r.events[0].kind, Some(EventKind::ZoneError));
        assert!(r.diffs.is_empty());
        // A new zone appears; the deleted one goes.
        std::fs::write(dir.path().join("example.net.zone"), ZONE).unwrap();
        std::fs::remove_file(&f).unwrap();
        let r = w.reconcile(true).unwrap().unwrap();
        assert_eq!(served(&r), [("example.net.".into(), 1)]);
        assert!(r.events.iter().any(|e| e.kind == Some(EventKind::ZoneRemoved)));
    }

    /// A failed load is tried again when anything about the file changes, its permissions
    /// included, and on SIGHUP even when nothing did (what failed may lie outside the file).
    #[test]
    fn a_failed_load_is_retried() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), "include = \"example.com.zone\"\n").unwrap();
        let mut w = Watcher::new(dir.path());
        let r = w.reconcile(true).unwrap().unwrap();
        assert!(r.zones[0].last_error.as_deref().unwrap().contains("cannot read include"), "{:?}", r.zones[0]);
        // SIGHUP with nothing changed: tried again (and fails again, saying so).
        let r = w.reconcile(true).unwrap().expect("retried on SIGHUP");
        assert_eq!(r.events[0].kind, Some(EventKind::ZoneError));
        // A look with nothing changed leaves it alone.
        assert!(w.reconcile(false).unwrap().is_none());
        // The include appears: the next look that sees it settled loads the zone, no SIGHUP.
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        assert!(w.reconcile(false).unwrap().is_none(), "seen once");
        let r = w.reconcile(false).unwrap().expect("loaded once the include is there");
        assert_eq!(served(&r), [("example.com.".into(), 1)]);
        // A change of permissions alone is a change: the file is read again.
        let f = dir.path().join("example.com.toml");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(w.reconcile(false).unwrap().is_none(), "seen once");
        let r = w.reconcile(false).unwrap().expect("read again after chmod");
        assert_eq!(r.events[0].kind, Some(EventKind::ZoneLoaded));
    }

    /// A `$INCLUDE` or a check's credentials file that is missing is watched all the same:
    /// when it appears, the next looks load the zone, without a SIGHUP.
    #[test]
    fn missing_includes_and_side_files_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.zone"), format!("{ZONE}$INCLUDE later.part\n")).unwrap();
        let toml = "records = \"\"\"\n$TTL 3600\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n\"\"\"\n\
                    [checks.db]\ntype = \"galera\"\ncredentials_file = \"db.cnf\"\n\
                    [pools.db]\ncheck = \"db\"\ntargets = [{ address = \"192.0.2.1\", priority = 1 }]\n";
        std::fs::write(dir.path().join("example.net.toml"), toml).unwrap();
        let mut w = Watcher::new(dir.path());
        let r = w.reconcile(true).unwrap().unwrap();
        assert!(r.zones.iter().all(|z| z.served.is_none()), "{:?}", r.zones);
        std::fs::write(dir.path().join("later.part"), "later A 192.0.2.7\n").unwrap();
        std::fs::write(dir.path().join("db.cnf"), "[client]\nuser = weiche\npassword = x\n").unwrap();
        assert!(w.reconcile(false).unwrap().is_none(), "seen once");
        let r = w.reconcile(false).unwrap().expect("loaded once the files are there");
        let mut zones = served(&r);
        zones.sort();
        assert_eq!(zones, [("example.com.".into(), 1), ("example.net.".into(), 1)]);
    }

    /// Zone names ignore case, file names too: two files for one zone serve it once.
    #[test]
    fn file_names_that_differ_in_case_are_one_zone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("CASE.TEST.zone"), ZONE).unwrap();
        std::fs::write(dir.path().join("case.test.zone"), ZONE.replace(" 1 1h", " 2 1h")).unwrap();
        let r = Watcher::new(dir.path()).reconcile(true).unwrap().unwrap();
        assert_eq!(r.zones.iter().filter(|z| z.served.is_some()).count(), 1);
        let other = r.zones.iter().find(|z| z.served.is_none()).unwrap();
        assert!(other.last_error.as_deref().unwrap().contains("zone also defined by"), "{other:?}");
    }

    /// A FIFO or a device named by an include is refused at once, never read (it would block
    /// the loader, or never end).
    #[test]
    fn includes_of_fifos_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.zone.part");
        crate::config::bounded::mkfifo(&fifo);
        for (inc, what) in [("fifo.zone.part", "is a FIFO"), ("/dev/zero", "is a device")] {
            std::fs::write(dir.path().join("example.com.zone"), format!("{ZONE}$INCLUDE {inc}\n")).unwrap();
            let r = Watcher::new(dir.path()).reconcile(true).unwrap().unwrap();
            let e = r.zones[0].last_error.as_deref().unwrap();
            assert!(e.contains(what) && e.contains("only regular files are read"), "{e}");
        }
    }

    #[test]
    fn include_changes_reload_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.toml"), "include = \"example.com.zone\"\n").unwrap();
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        let mut w = Watcher::new(dir.path());
        let r = w.reconcile(true).unwrap().unwrap();
        assert_eq!(served(&r), [("example.com.".into(), 1)]);
        std::fs::write(dir.path().join("example.com.zone"), ZONE.replace(" 1 1h", " 5 1h")).unwrap();
        let r = w.reconcile(true).unwrap().unwrap();
        assert_eq!(served(&r), [("example.com.".into(), 5)]);
    }
}

//! The publisher: the one owner of what is served. It loads zones, notices changed files, and
//! builds and publishes each new snapshot.
//!
//! Rules it keeps: a file that fails to load leaves the previous version of its zone serving;
//! a file is loaded only once it has stopped changing (same size, time and inode on two looks in
//! a row), so a half-written file is never served; a deleted file removes its zone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tracing::{info, warn};

use crate::chart::{Admin, Health};
use crate::loader::{self, Kind, ZoneFile};
use crate::snapshot::{PoolAnswer, Snapshot, ZoneEntry, pool_answer};
use crate::zone::Zone;

/// What a file looked like: changes to any of these mean "read it again".
type Signature = Option<(SystemTime, u64, u64)>;

fn signature(path: &Path) -> Signature {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn signatures(files: &[PathBuf]) -> Vec<Signature> {
    files.iter().map(|f| signature(f)).collect()
}

/// A zone file as last seen.
struct Tracked {
    file: ZoneFile,
    /// Files it read, and how they looked when read.
    files: Vec<PathBuf>,
    seen: Vec<Signature>,
    /// What is being served from it (None: it never loaded).
    served: Option<Arc<Zone>>,
}

pub type Store = Arc<ArcSwap<Snapshot>>;

pub struct Publisher {
    dir: PathBuf,
    store: Store,
    tracked: BTreeMap<PathBuf, Tracked>,
    /// Changed files waiting to be seen unchanged once more before loading.
    pending: BTreeMap<PathBuf, Vec<Signature>>,
}

impl Publisher {
    pub fn new(dir: &Path) -> Publisher {
        Publisher {
            dir: dir.into(),
            store: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            tracked: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Looks at the zones directory and loads what changed. With `now`, changed files are
    /// loaded at once (start-up, SIGHUP) instead of after they have settled.
    pub fn reconcile(&mut self, now: bool) -> Result<(), loader::DirError> {
        let found = loader::scan(&self.dir)?;
        let mut changed = false;
        // Removed files.
        let gone: Vec<PathBuf> = self
            .tracked
            .keys()
            .filter(|p| !found.iter().any(|f| &f.path == *p))
            .cloned()
            .collect();
        for path in gone {
            let t = self.tracked.remove(&path).expect("tracked");
            if t.served.is_some() {
                warn!(zone = %t.file.apex, file = %path.display(), "zone file deleted; zone no longer served");
                changed = true;
            }
        }
        self.pending
            .retain(|p, _| found.iter().any(|f| &f.path == p));
        for file in found {
            let known_files = self
                .tracked
                .get(&file.path)
                .map_or_else(|| vec![file.path.clone()], |t| t.files.clone());
            let now_sig = signatures(&known_files);
            if self
                .tracked
                .get(&file.path)
                .is_some_and(|t| t.seen == now_sig)
            {
                self.pending.remove(&file.path);
                continue;
            }
            if !now && self.pending.get(&file.path) != Some(&now_sig) {
                self.pending.insert(file.path.clone(), now_sig);
                continue;
            }
            self.pending.remove(&file.path);
            changed |= self.load(file);
        }
        // A plain zone file that another zone now includes is a fragment, not a zone.
        let fragments: Vec<PathBuf> = self
            .tracked
            .values()
            .filter(|t| t.file.kind == Kind::Plain)
            .filter(|t| {
                self.tracked.values().any(|o| {
                    o.file.path != t.file.path
                        && o.files.iter().skip(1).any(|f| same_file(f, &t.file.path))
                })
            })
            .map(|t| t.file.path.clone())
            .collect();
        for path in fragments {
            if self.tracked.remove(&path).and_then(|t| t.served).is_some() {
                info!(file = %path.display(), "file is included by another zone; no longer served as a zone of its own");
                changed = true;
            }
        }
        if changed {
            self.publish();
        }
        Ok(())
    }

    /// Loads one zone file; returns whether what is served changed.
    fn load(&mut self, file: ZoneFile) -> bool {
        let included_elsewhere = self
            .tracked
            .values()
            .filter(|t| t.file.path != file.path)
            .any(|t| t.files.iter().skip(1).any(|f| same_file(f, &file.path)));
        if file.kind == Kind::Plain && included_elsewhere {
            // A fragment included by another zone: its changes reload that zone instead.
            self.tracked.remove(&file.path);
            return false;
        }
        let twin = self
            .tracked
            .values()
            .find(|t| t.file.apex == file.apex && t.file.path != file.path && t.served.is_some());
        if let Some(t) = twin {
            warn!(zone = %file.apex, file = %file.path.display(), other = %t.file.path.display(), "zone defined by two files; this one is ignored");
            let seen = signatures(std::slice::from_ref(&file.path));
            self.tracked.insert(
                file.path.clone(),
                Tracked {
                    files: vec![file.path.clone()],
                    seen,
                    file,
                    served: None,
                },
            );
            return false;
        }
        let load = loader::load(file.clone());
        let seen = signatures(&load.files);
        let previous = self.tracked.remove(&file.path).and_then(|t| t.served);
        let served = match load.result {
            Ok(zone) => {
                info!(
                    zone = %zone.apex,
                    serial = zone.serial,
                    records = zone.record_count,
                    pools = zone.pools.len(),
                    file = %file.path.display(),
                    "zone loaded"
                );
                Some(Arc::new(zone))
            }
            Err(errors) => {
                let keeps = if previous.is_some() {
                    "the previous version keeps serving"
                } else {
                    "zone not served"
                };
                warn!(zone = %file.apex, file = %file.path.display(), errors = errors.len(), "zone file has errors; {keeps}");
                for e in &errors {
                    warn!(zone = %file.apex, "{e}");
                }
                self.tracked.insert(
                    file.path.clone(),
                    Tracked {
                        file,
                        files: load.files,
                        seen,
                        served: previous,
                    },
                );
                return false;
            }
        };
        self.tracked.insert(
            file.path.clone(),
            Tracked {
                file,
                files: load.files,
                seen,
                served,
            },
        );
        true
    }

    /// Builds and publishes a snapshot of every served zone.
    fn publish(&self) {
        let zones = self
            .tracked
            .values()
            .filter_map(|t| t.served.clone())
            .map(|zone| {
                // No monitor yet: every target is unknown, which the chart answers as up.
                let answers: Arc<[PoolAnswer]> = zone
                    .pools
                    .iter()
                    .map(|p| {
                        pool_answer(
                            p,
                            zone.neg_ttl,
                            |_| (Health::Unknown, Admin::Auto, false),
                            [None, None],
                        )
                    })
                    .collect();
                ZoneEntry { zone, answers }
            })
            .collect();
        self.store.store(Arc::new(Snapshot::new(zones)));
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    fn served(p: &Publisher) -> Vec<(String, u32)> {
        p.store
            .load()
            .zones
            .iter()
            .map(|z| (z.zone.apex.to_string(), z.zone.serial))
            .collect()
    }

    #[test]
    fn settles_keeps_previous_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("example.com.zone");
        std::fs::write(&f, ZONE).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 1)]);
        // A change is loaded only when seen twice the same.
        std::fs::write(&f, ZONE.replace(" 1 1h", " 2 1h") + "x A 192.0.2.1\n").unwrap();
        p.reconcile(false).unwrap();
        assert_eq!(served(&p)[0].1, 1);
        p.reconcile(false).unwrap();
        assert_eq!(served(&p)[0].1, 2);
        // A broken edit keeps version 2.
        std::fs::write(&f, ZONE.replace(" 1 1h", " 3 1h") + "x A 192.0.2.999\n").unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p)[0].1, 2);
        // A new zone appears; the deleted one goes.
        std::fs::write(dir.path().join("example.net.zone"), ZONE).unwrap();
        std::fs::remove_file(&f).unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.net.".into(), 1)]);
    }

    #[test]
    fn include_changes_reload_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("example.com.toml"),
            "include = \"example.com.zone\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("example.com.zone"), ZONE).unwrap();
        let mut p = Publisher::new(dir.path());
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 1)]);
        std::fs::write(
            dir.path().join("example.com.zone"),
            ZONE.replace(" 1 1h", " 5 1h"),
        )
        .unwrap();
        p.reconcile(true).unwrap();
        assert_eq!(served(&p), [("example.com.".into(), 5)]);
    }
}

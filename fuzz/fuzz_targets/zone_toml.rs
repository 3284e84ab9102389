//! The zone TOML parser (records, includes, checks, pools): any bytes as example.com.toml,
//! loaded as the loader loads a file it has read. A zone that loads must be answerable.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use weiche::load::loader::{self, Kind, ZoneFile};
use weiche::model::name::Name;
use weiche::model::snapshot::Snapshot;
use weiche_fuzz::{ask_about, entry_of, world};

fuzz_target!(|bytes: &[u8]| {
    let file = ZoneFile {
        apex: Name::parse("example.com.", None).unwrap(),
        path: PathBuf::from("/nonexistent/example.com.toml"),
        kind: Kind::Toml,
    };
    if let Ok(zone) = loader::load_bytes(file, bytes.to_vec()).result {
        ask_about(&Snapshot::new(vec![entry_of(zone)]), &world().service);
    }
});

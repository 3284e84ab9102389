//! The weiche.toml parser: any text as /nonexistent/weiche.toml (files it names are read
//! relative to a directory that is not there). It is accepted or refused with a position,
//! never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weiche::config::Config;

fuzz_target!(|bytes: &[u8]| {
    // The server reads weiche.toml with read_to_string: text that is not UTF-8 never gets here.
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Err(e) = Config::from_text(Some(Path::new("/nonexistent/weiche.toml")), text) {
        let _ = e.to_string();
    }
});

//! The packet → answer path: any message, over UDP and TCP, from a peer allowed to transfer,
//! against the realistic world. Whatever the message, the server answers or drops it without
//! panicking, and what it answers is a well-formed reply.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use weiche::dns::service::Reply;
use weiche_fuzz::{check_reply, via, world};

fuzz_target!(|msg: &[u8]| {
    let w = world();
    let (mut out, mut messages) = (Vec::with_capacity(4096), Vec::new());
    for tcp in [false, true] {
        let peer = || Some(IpAddr::from([127, 0, 0, 1]));
        match w.service.handle(&w.snapshot, msg, via(&w.service, tcp), peer, &mut out, &mut messages) {
            Reply::Drop => {}
            Reply::Answer => check_reply(msg, &out, tcp, true),
            Reply::Messages => {
                for m in &messages {
                    assert!(m.len() <= 65535, "a message of {} bytes", m.len());
                }
            }
        }
    }
});

//! The TSIG verifier. Any bytes the server would verify (they parse as a query ending in a
//! TSIG) are verified against the configured keys, and refused as a server refuses them,
//! without panicking. Then the same bytes, taken as an unsigned message,
//! are signed by our signer and verified by our verifier: a message we can read and sign must
//! verify (a mismatch is a request a real client signs that we would refuse, or the reverse),
//! and the response signed over it must verify as a client (hickory) checks it.
#![no_main]

use hickory_proto::op::Message;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use libfuzzer_sys::fuzz_target;
use weiche::dns::wire::Query;
use weiche::transfer::tsig::{self, Failure, ResponseSigner};
use weiche_fuzz::world;

/// Whether the server would hand `msg` to the verifier: it parses, and ends in a TSIG.
fn signed(msg: &[u8]) -> bool {
    Query::parse(msg).is_ok_and(|q| q.tsig)
}

/// Whether `msg` reads as a DNS message (hickory) with nothing after its last record.
fn whole(msg: &[u8]) -> bool {
    let mut d = BinDecoder::new(msg);
    Message::read(&mut d).is_ok() && d.is_empty()
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&choice, msg)) = data.split_first() else { return };
    if signed(msg)
        && let Err(failure) = tsig::verify(msg, &w.keys)
    {
        let _ = failure.describe();
        let mut reply = msg[..12].to_vec();
        tsig::refuse(&mut reply, &failure);
    }
    // A request (a response is not verified) with room in ARCOUNT for the TSIG, whose records
    // end where the message does: a TSIG appended to a cut record or after stray bytes is read
    // as something else, and refused rightly.
    if !whole(msg) || msg[10..12] == [0xff, 0xff] || msg[2] & 0x80 != 0 {
        return;
    }
    let k = choice as usize % w.keys.len();
    let mut request = msg.to_vec();
    tsig::sign_request(&mut request, &w.keys[k]);
    if !signed(&request) {
        return;
    }
    let s = match tsig::verify(&request, &w.keys) {
        Ok(s) => s,
        // hickory could not read the message (our parser takes some it refuses).
        Err(Failure::Malformed) => return,
        Err(f) => panic!("a request we signed does not verify: {}", f.describe()),
    };
    // A response as ours are: QR set, Z clear (hickory, as a client, cannot check a MAC over
    // a Z bit: it writes the header again without it).
    let mut response = msg.to_vec();
    response[2] |= 0x80;
    response[3] &= !0x40;
    let mut rs = ResponseSigner::new(&s);
    rs.sign(&mut response);
    let client = &w.signers[k];
    // A message hickory cannot read at all (an extended label type in a name our parser skips
    // over) says nothing about our signature: the oracle has no opinion on it.
    if Message::from_vec(&response).is_err() {
        return;
    }
    if let Err(e) = client.verify_message_byte(&response, Some(&s.mac), true) {
        panic!("a response we signed does not verify with hickory: {e}");
    }
});

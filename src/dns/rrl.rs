//! Response rate limiting (RRL) for UDP, as BIND, NSD and Knot DNS do it. A datagram's source
//! address can be forged, so a flood of queries "from" a victim turns a nameserver into a cannon
//! aimed at that victim, each answer larger than its query. RRL caps how often the same kind of
//! response goes to the same network:
//!
//! | kind of response | counted per |
//! |---|---|
//! | answer | client prefix, query type, name (a wildcard's answers: the wildcard's parent) |
//! | NODATA | client prefix, zone |
//! | referral | client prefix, delegation point |
//! | NXDOMAIN | client prefix, zone (so random names share one account) |
//! | error (REFUSED, FORMERR, ...) | client prefix |
//!
//! A client prefix is the source address cut to `ipv4_prefix` or `ipv6_prefix` bits.
//!
//! The accounting is BIND's: an account earns its rate in responses a second, holds at most
//! one second's worth, and pays one per response. A response it cannot pay for is limited, and
//! the account runs into debt, at most `window` seconds' worth: a client that keeps asking
//! faster than the limit stays limited until it has slowed down long enough to pay it back. A
//! limited response is dropped, except every `slip`th, which goes out empty with TC set (an
//! error goes out as it is: it is no larger than its query). A real client behind the forged
//! address then retries over TCP, which is never limited, and gets its answer.
//!
//! The accounts sit in one fixed table that every UDP and XDP thread shares: sets of four
//! entries in one cache line, each entry two atomic words (the key's 64-bit hash; the state:
//! last second, balance, slips), updated by compare-and-swap. There is no lock, no allocation
//! and no clock read per query (the listeners read a coarse clock once per batch). A new key
//! takes its set's empty or least recently used entry, so a table too small for the traffic
//! forgets accounts early: it lets responses through rather than hold back the innocent.
//!
//! What it must never do: limit TCP, or allocate, lock or wait on the query path.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::Rrl as Settings;
use crate::dns::answer::Outcome;
use crate::dns::wire::{HEADER_LEN, Query, flags, rcode};

/// What kind of response is counted, and against which account (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Answer = 0,
    Nodata = 1,
    Referral = 2,
    Nxdomain = 3,
    Error = 4,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Answer, Kind::Nodata, Kind::Referral, Kind::Nxdomain, Kind::Error];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Answer => "answer",
            Kind::Nodata => "nodata",
            Kind::Referral => "referral",
            Kind::Nxdomain => "nxdomain",
            Kind::Error => "error",
        }
    }

    /// The kind of the response `response` (its header, at least), whose RCODE is `rc`
    /// (extended RCODEs included).
    pub fn of(rc: u16, response: &[u8]) -> Kind {
        let count = |i: usize| u16::from_be_bytes([response[i], response[i + 1]]);
        match rc {
            0 if count(6) > 0 => Kind::Answer,
            0 if response[2] & (flags::AA >> 8) as u8 == 0 && count(8) > 0 => Kind::Referral,
            0 => Kind::Nodata,
            _ if rc == rcode::NXDOMAIN as u16 => Kind::Nxdomain,
            _ => Kind::Error,
        }
    }
}

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send,
    /// Send it empty with TC set (an error: as it is).
    Slip,
    Drop,
}

/// What rate limiting did to one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    No,
    /// `out` now holds the slipped response.
    Slipped(Kind),
    Dropped(Kind),
}

/// Seconds of a coarse monotonic clock (CLOCK_MONOTONIC_COARSE: a few nanoseconds to read, its
/// tick a few milliseconds; RRL counts whole seconds). Read once per batch of datagrams.
pub fn now() -> u32 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for the kernel (vDSO) to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u32
}

/// The lowest balance a state word holds (24 bits, signed): a debt of 8 million responses.
const BALANCE_MIN: i64 = -(1 << 23);

/// An account's state in one word: the second it was last credited (bits 32..64), its balance
/// in responses (signed, bits 8..32), and the limited responses since the last slip (bits 0..8).
fn pack(last: u32, balance: i64, slips: u8) -> u64 {
    ((last as u64) << 32) | (((balance as u32) & 0xff_ffff) as u64) << 8 | slips as u64
}

fn unpack(s: u64) -> (u32, i64, u8) {
    // Sign-extend the 24-bit balance.
    let balance = (((s >> 8) as u32) << 8) as i32 >> 8;
    ((s >> 32) as u32, balance as i64, s as u8)
}

/// One response's accounting: an account's state before, and after with what to do. `rate`
/// is at most [`crate::config::RRL_MAX_RATE`], below the largest balance.
fn step(state: u64, now: u32, rate: u32, window: u32, slip: u8) -> (u64, Action) {
    let (mut last, mut balance, mut slips) = unpack(state);
    let rate = rate as i64;
    // Another thread's clock may run a batch behind: a second in the past is no time at all.
    let age = now.wrapping_sub(last) as i32;
    if age > 0 {
        if age as u32 > window {
            balance = rate;
        } else {
            balance = (balance + rate * age as i64).min(rate);
        }
        if balance == rate {
            slips = 0;
        }
        last = now;
    }
    balance -= 1;
    if balance >= 0 {
        return (pack(last, balance, slips), Action::Send);
    }
    balance = balance.max((-(window as i64) * rate).max(BALANCE_MIN));
    let action = match slip {
        0 => Action::Drop,
        _ => {
            let a = if slips == 0 { Action::Slip } else { Action::Drop };
            slips = if slips + 1 >= slip { 0 } else { slips + 1 };
            a
        }
    };
    (pack(last, balance, slips), action)
}

/// Entries per set: four of 16 bytes fill one 64-byte cache line.
const WAYS: usize = 4;

struct Entry {
    /// The key's hash with the lowest bit set (0: empty).
    key: AtomicU64,
    state: AtomicU64,
}

#[repr(align(64))]
struct Set([Entry; WAYS]);

/// The accounts of every UDP and XDP thread.
pub struct Table {
    sets: Box<[Set]>,
    mask: usize,
    /// Seeded at random per process, so nobody can aim keys at one set.
    hasher: foldhash::fast::RandomState,
    settings: Settings,
}

impl Table {
    pub fn new(settings: Settings) -> Table {
        let n = (settings.table_size / WAYS).next_power_of_two().max(1);
        let empty = || Entry { key: AtomicU64::new(0), state: AtomicU64::new(0) };
        let sets = (0..n).map(|_| Set(std::array::from_fn(|_| empty()))).collect();
        Table { sets, mask: n - 1, hasher: Default::default(), settings }
    }

    fn rate(&self, kind: Kind) -> u32 {
        let s = &self.settings;
        match kind {
            Kind::Answer | Kind::Nodata | Kind::Referral => s.responses_per_second,
            Kind::Nxdomain => s.nxdomains_per_second,
            Kind::Error => s.errors_per_second,
        }
    }

    /// Accounts for one response of `kind` to `client` at second `now`, about `domain` (a name
    /// in lower-case wire form; empty for errors) and `qtype` (0 unless an answer).
    pub fn account(&self, now: u32, client: IpAddr, kind: Kind, qtype: u16, domain: &[u8]) -> Action {
        let rate = self.rate(kind);
        if rate == 0 {
            return Action::Send;
        }
        let mut h = self.hasher.build_hasher();
        // A mapped IPv4 address (a dual-stack socket) is the IPv4 client it stands for.
        let (family, prefix) = match client.to_canonical() {
            IpAddr::V4(a) => (
                4u32,
                (u32::from(a) & u32::MAX.checked_shl(32 - self.settings.ipv4_prefix as u32).unwrap_or(0)) as u128,
            ),
            IpAddr::V6(a) => {
                (6, u128::from(a) & u128::MAX.checked_shl(128 - self.settings.ipv6_prefix as u32).unwrap_or(0))
            }
        };
        h.write_u128(prefix);
        h.write_u32(family << 24 | (kind as u32) << 16 | qtype as u32);
        h.write(domain);
        let hash = h.finish();
        let set = &self.sets[hash as usize & self.mask].0;
        let tag = hash | 1;
        let entry = match set.iter().find(|e| e.key.load(Relaxed) == tag) {
            Some(e) => e,
            None => {
                // The empty or least recently used entry; two threads may race here, and then
                // one key has two entries for a while: the accounting is approximate, never wrong
                // by more than one second's worth.
                let age = |e: &Entry| match e.key.load(Relaxed) {
                    0 => u32::MAX,
                    _ => now.wrapping_sub(unpack(e.state.load(Relaxed)).0).min(u32::MAX - 1),
                };
                let e = set.iter().max_by_key(|e| age(e)).expect("a set has entries");
                e.state.store(pack(now, rate as i64, 0), Relaxed);
                e.key.store(tag, Relaxed);
                e
            }
        };
        let (window, slip) = (self.settings.window, self.settings.slip);
        let mut s = entry.state.load(Relaxed);
        loop {
            let (next, action) = step(s, now, rate, window, slip);
            // Under a flood at the floor with nothing to count, leave the cache line alone.
            if next == s {
                return action;
            }
            match entry.state.compare_exchange_weak(s, next, Relaxed, Relaxed) {
                Ok(_) => return action,
                Err(seen) => s = seen,
            }
        }
    }

    /// Accounts for the response to `q` in `out` (what [`crate::dns::answer::respond`] wrote,
    /// with outcome `o`), to `client` at second `now`. A slipped response is rewritten in `out`;
    /// a dropped one is left for the caller to drop.
    pub fn limit(&self, now: u32, client: IpAddr, q: &Query<'_>, o: &Outcome, out: &mut Vec<u8>) -> Limited {
        let kind = Kind::of(o.rcode, out);
        let (qtype, domain) = match kind {
            Kind::Answer => (q.qtype, &q.key()[o.domain as usize..]),
            Kind::Nodata | Kind::Referral | Kind::Nxdomain => (0, &q.key()[o.domain as usize..]),
            Kind::Error => (0, &[][..]),
        };
        match self.account(now, client, kind, qtype, domain) {
            Action::Send => Limited::No,
            Action::Drop => Limited::Dropped(kind),
            Action::Slip => {
                if kind != Kind::Error {
                    empty_truncated(out, q.question.len(), q.edns.is_some());
                }
                Limited::Slipped(kind)
            }
        }
    }

    /// Accounts for a header-only error to a message that could not be read: per client, as
    /// every error; a slip sends it as it is.
    pub fn limit_error(&self, now: u32, client: IpAddr) -> Limited {
        match self.account(now, client, Kind::Error, 0, &[]) {
            Action::Send => Limited::No,
            Action::Slip => Limited::Slipped(Kind::Error),
            Action::Drop => Limited::Dropped(Kind::Error),
        }
    }
}

/// Cuts the response in `out` down to its header and question (and its OPT record, the last 11
/// bytes, when the query had EDNS), with TC set: the slip, which tells a real client to ask
/// again over TCP and is no larger than the query.
fn empty_truncated(out: &mut Vec<u8>, question_len: usize, edns: bool) {
    let mut opt = [0u8; 11];
    if edns {
        opt.copy_from_slice(&out[out.len() - 11..]);
    }
    out.truncate(HEADER_LEN + question_len);
    out[2] |= (flags::TC >> 8) as u8;
    out[6..12].copy_from_slice(&[0, 0, 0, 0, 0, edns as u8]);
    if edns {
        out.extend_from_slice(&opt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate: u32) -> Settings {
        Settings {
            responses_per_second: rate,
            nxdomains_per_second: rate,
            errors_per_second: rate,
            table_size: 1024,
            ..Settings::default()
        }
    }

    /// The actions of `n` responses at second `now`, in order, as a string: s(end), t(runcated,
    /// i.e. slipped), d(rop).
    fn run(state: &mut u64, now: u32, n: usize, rate: u32, window: u32, slip: u8) -> String {
        (0..n)
            .map(|_| {
                let (next, a) = step(*state, now, rate, window, slip);
                *state = next;
                match a {
                    Action::Send => 's',
                    Action::Slip => 't',
                    Action::Drop => 'd',
                }
            })
            .collect()
    }

    fn fresh(now: u32, rate: u32) -> u64 {
        pack(now, rate as i64, 0)
    }

    #[test]
    fn state_words_round_trip() {
        for (last, balance, slips) in [(0, 0, 0), (u32::MAX, -1, 255), (7, BALANCE_MIN, 3), (1 << 31, (1 << 23) - 1, 1)]
        {
            assert_eq!(unpack(pack(last, balance, slips)), (last, balance, slips));
        }
    }

    #[test]
    fn a_fresh_account_pays_one_seconds_worth_then_slips_every_second_limited_response() {
        let mut s = fresh(100, 5);
        assert_eq!(run(&mut s, 100, 11, 5, 15, 2), "ssssstdtdtd");
        // slip 1: every limited response slips; slip 3: every third; slip 0: none.
        for (slip, want) in [(1, "ssssstttttt"), (3, "ssssstddtdd"), (0, "sssssdddddd")] {
            let mut s = fresh(100, 5);
            assert_eq!(run(&mut s, 100, 11, 5, 15, slip), want, "slip {slip}");
        }
    }

    #[test]
    fn credit_comes_by_the_second_and_holds_at_most_one_seconds_worth() {
        let mut s = fresh(100, 5);
        assert_eq!(run(&mut s, 100, 3, 5, 15, 2), "sss");
        // Two left, two seconds earn ten, but the account holds five.
        assert_eq!(run(&mut s, 102, 6, 5, 15, 2), "ssssst");
        // One in debt: the next second's five pay it back and four more.
        assert_eq!(run(&mut s, 103, 6, 5, 15, 2), "ssssdt");
    }

    #[test]
    fn a_client_above_the_limit_stays_limited_until_it_has_slowed_down() {
        let (rate, window) = (5, 3);
        let mut s = fresh(100, rate);
        // A flood of 100 a second: five answers, then nothing but slips, second after second.
        assert_eq!(run(&mut s, 100, 100, rate, window, 2).matches('s').count(), 5);
        for now in 101..110 {
            assert_eq!(run(&mut s, now, 100, rate, window, 2).matches('s').count(), 0, "second {now}");
        }
        // The debt is at most window × rate: after a quiet second it is still owed ...
        assert_eq!(unpack(s).1, -15);
        assert_eq!(run(&mut s, 111, 1, rate, window, 2), "d");
        // ... and paid back after `window` quiet seconds, with the full second's worth again.
        assert_eq!(run(&mut s, 114, 6, rate, window, 2), "ssssst");
        // Away for longer than the window, an account starts afresh.
        assert_eq!(run(&mut s, 200, 6, rate, window, 2), "ssssst");
    }

    #[test]
    fn a_clock_running_behind_is_no_time_passing() {
        let mut s = fresh(100, 2);
        assert_eq!(run(&mut s, 100, 2, 2, 15, 2), "ss");
        // Another thread's batch, read a second earlier: no credit, and no jump.
        assert_eq!(run(&mut s, 99, 2, 2, 15, 2), "td");
        assert_eq!(unpack(s).0, 100);
    }

    #[test]
    fn the_debt_stays_within_the_state_word_at_the_largest_rate_and_window() {
        let rate = crate::config::RRL_MAX_RATE as u32;
        let mut s = pack(100, BALANCE_MIN + 2, 1);
        assert_eq!(run(&mut s, 100, 4, rate, 3600, 2), "dtdt");
        assert_eq!(unpack(s), (100, BALANCE_MIN, 1));
        // A second's credit at that rate fits as well.
        let (next, _) = step(pack(100, 0, 0), 101, rate, 3600, 2);
        assert_eq!(unpack(next), (101, rate as i64 - 1, 0));
    }

    const A: u16 = 1;

    #[test]
    fn accounts_are_per_prefix_kind_name_and_type() {
        let t = Table::new(settings(2));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let www = b"\x03www\x04test\x00";
        let n = |t: &Table, client: &str, kind: Kind, qtype: u16, name: &[u8]| {
            (0..4).filter(|_| t.account(50, ip(client), kind, qtype, name) == Action::Send).count()
        };
        assert_eq!(n(&t, "192.0.2.1", Kind::Answer, A, www), 2);
        // The same /24, another host: the same account, nothing left.
        assert_eq!(n(&t, "192.0.2.200", Kind::Answer, A, www), 0);
        // Another /24, another type, another name, another kind: accounts of their own.
        assert_eq!(n(&t, "192.0.3.1", Kind::Answer, A, www), 2);
        assert_eq!(n(&t, "192.0.2.1", Kind::Answer, 28, www), 2);
        assert_eq!(n(&t, "192.0.2.1", Kind::Answer, A, b"\x04mail\x04test\x00"), 2);
        assert_eq!(n(&t, "192.0.2.1", Kind::Nxdomain, 0, b"\x04test\x00"), 2);
        // IPv6: /56 by default; a mapped IPv4 address is that IPv4 client.
        assert_eq!(n(&t, "2001:db8:0:100::1", Kind::Answer, A, www), 2);
        assert_eq!(n(&t, "2001:db8:0:1ff::2", Kind::Answer, A, www), 0);
        assert_eq!(n(&t, "2001:db8:0:200::1", Kind::Answer, A, www), 2);
        assert_eq!(n(&t, "::ffff:192.0.2.9", Kind::Answer, A, www), 0);
        // Prefixes as configured: /32 separates hosts, /0 joins everybody.
        let hosts = Table::new(Settings { ipv4_prefix: 32, ..settings(2) });
        assert_eq!(n(&hosts, "192.0.2.1", Kind::Error, 0, b""), 2);
        assert_eq!(n(&hosts, "192.0.2.2", Kind::Error, 0, b""), 2);
        let all = Table::new(Settings { ipv4_prefix: 0, ..settings(2) });
        assert_eq!(n(&all, "192.0.2.1", Kind::Error, 0, b""), 2);
        assert_eq!(n(&all, "198.51.100.1", Kind::Error, 0, b""), 0);
    }

    #[test]
    fn each_kind_has_its_rate_and_zero_is_unlimited() {
        let t = Table::new(Settings {
            responses_per_second: 0,
            nxdomains_per_second: 3,
            errors_per_second: 1,
            table_size: 1024,
            ..Settings::default()
        });
        let c: IpAddr = "192.0.2.1".parse().unwrap();
        let sent = |kind| (0..10).filter(|_| t.account(7, c, kind, 0, b"\x00") == Action::Send).count();
        assert_eq!(sent(Kind::Answer), 10);
        assert_eq!(sent(Kind::Referral), 10);
        assert_eq!(sent(Kind::Nxdomain), 3);
        assert_eq!(sent(Kind::Error), 1);
    }

    #[test]
    fn a_full_set_gives_up_its_least_recently_used_account() {
        // One set of four: every key shares it.
        let t = Table::new(Settings { table_size: 4, ..settings(1) });
        assert_eq!(t.sets.len(), 1);
        let c: IpAddr = "192.0.2.1".parse().unwrap();
        let names: Vec<Vec<u8>> = (0..5u8).map(|i| vec![1, b'a' + i, 0]).collect();
        let ask = |now: u32, i: usize| match t.account(now, c, Kind::Answer, A, &names[i]) {
            Action::Send => 's',
            Action::Slip => 't',
            Action::Drop => 'd',
        };
        // Four names each run into debt, a second apart.
        for i in 0..4 {
            let now = 10 + i as u32;
            assert_eq!([ask(now, i), ask(now, i), ask(now, i)], ['s', 't', 'd'], "name {i}");
        }
        // A fifth takes the entry of the one used longest ago (names[0]) ...
        assert_eq!(ask(13, 4), 's');
        // ... the others are remembered, still in debt ...
        for i in 1..4 {
            assert_ne!(ask(13, i), 's', "name {i}");
        }
        // ... and names[0] starts afresh.
        assert_eq!(ask(13, 0), 's');
    }

    #[test]
    fn kinds_are_read_from_the_response_header() {
        let header = |flags: u16, an: u16, ns: u16| {
            let mut h = vec![0, 0];
            for v in [flags, 1, an, ns, 0] {
                h.extend_from_slice(&v.to_be_bytes());
            }
            h
        };
        let aa = flags::QR | flags::AA;
        assert_eq!(Kind::of(0, &header(aa, 1, 0)), Kind::Answer);
        assert_eq!(Kind::of(0, &header(aa, 0, 1)), Kind::Nodata);
        assert_eq!(Kind::of(0, &header(flags::QR, 0, 2)), Kind::Referral);
        assert_eq!(Kind::of(3, &header(aa | 3, 0, 1)), Kind::Nxdomain);
        for rc in [1, 2, 4, 5, 16] {
            assert_eq!(Kind::of(rc, &header(flags::QR, 0, 0)), Kind::Error, "rcode {rc}");
        }
    }

    #[test]
    fn a_slip_is_header_and_question_with_tc_and_the_opt_kept() {
        let question = b"\x03www\x04test\x00\x00\x01\x00\x01";
        let opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];
        let mut out = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 2, 0, 1, 0, 1];
        out.extend_from_slice(question);
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        out.extend_from_slice(&opt);
        let mut plain = out[..out.len() - 11].to_vec();
        plain[11] = 0;
        empty_truncated(&mut out, question.len(), true);
        assert_eq!(&out[..12], &[0x12, 0x34, 0x86, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&out[12..12 + question.len()], question);
        assert_eq!(&out[12 + question.len()..], &opt);
        empty_truncated(&mut plain, question.len(), false);
        assert_eq!(plain.len(), 12 + question.len());
        assert_eq!(&plain[2..12], &[0x86, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
}

//! The headers around a query in a frame: Ethernet, IPv4 without options and UDP, checked
//! (lengths, checksums) on the way in, and turned around in place for the answer.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Ethernet (14) + IPv4 without options (20) + UDP (8).
pub(super) const HEADERS: usize = 42;

/// Internet checksum: the ones' complement sum of `data` as 16-bit words, added to `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of the UDP pseudo-header.
fn pseudo(src: &[u8], dst: &[u8], udp_len: usize) -> u32 {
    sum16(sum16(17 + udp_len as u32, src), dst)
}

/// Where a query sits in a frame, once its headers have been checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Parsed {
    /// The DNS message: `HEADERS..HEADERS + len`.
    pub(super) len: usize,
    pub(super) src: SocketAddrV4,
    /// Where it was sent: one of our listen addresses.
    pub(super) dst: SocketAddrV4,
}

/// Checks the Ethernet, IPv4 and UDP headers of a received frame (lengths, checksums); None for
/// anything that must not be answered. `udp_sum`: verify the UDP checksum. Not on loopback,
/// where the kernel leaves it unfinished (the sender's "offload") and nothing can corrupt it.
pub(super) fn parse(f: &[u8], udp_sum: bool) -> Option<Parsed> {
    if f.len() < HEADERS || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
        return None;
    }
    let ip = &f[14..];
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total < 28 || total > ip.len() || fold(sum16(0, &ip[..20])) != 0xffff {
        return None;
    }
    let udp = &ip[20..total];
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    if udp_len < 8 || udp_len > udp.len() || sport == 0 {
        return None;
    }
    if udp_sum
        && udp[6..8] != [0, 0]
        && fold(sum16(pseudo(&ip[12..16], &ip[16..20], udp_len), &udp[..udp_len])) != 0xffff
    {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some(Parsed { len: udp_len - 8, src: SocketAddrV4::new(src, sport), dst: SocketAddrV4::new(dst, dport) })
}

/// Turns the frame holding a query (headers as received) into the answer `dns`: addresses and
/// ports swapped, lengths and checksums new, DF set. Returns the frame's new length.
pub(super) fn answer_in_place(f: &mut [u8], dns: &[u8]) -> usize {
    let mut mac = [0u8; 12];
    mac[..6].copy_from_slice(&f[6..12]);
    mac[6..].copy_from_slice(&f[..6]);
    f[..12].copy_from_slice(&mac);
    let total = 28 + dns.len();
    let (src, dst): ([u8; 4], [u8; 4]) = (f[30..34].try_into().unwrap(), f[26..30].try_into().unwrap());
    let ip = &mut f[14..34];
    ip[1] = 0; // TOS
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = !fold(sum16(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let (sport, dport) = ([f[36], f[37]], [f[34], f[35]]);
    let udp_len = 8 + dns.len();
    f[34..36].copy_from_slice(&sport);
    f[36..38].copy_from_slice(&dport);
    f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
    f[HEADERS..HEADERS + dns.len()].copy_from_slice(dns);
    let c = match !fold(sum16(pseudo(&src, &dst, udp_len), &f[34..HEADERS + dns.len()])) {
        0 => 0xffff,
        c => c,
    };
    f[40..42].copy_from_slice(&c.to_be_bytes());
    HEADERS + dns.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query frame as a client on 10.0.0.2:4242 would send it to 10.0.0.1:53.
    fn frame(dns: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; HEADERS + dns.len()];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[8, 0]);
        let total = (28 + dns.len()) as u16;
        let ip = [0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1];
        f[14..34].copy_from_slice(&ip);
        let c = !fold(sum16(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let ulen = (8 + dns.len()) as u16;
        f[34..42].copy_from_slice(&[0x10, 0x92, 0, 53, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f[42..].copy_from_slice(dns);
        let c = !fold(sum16(pseudo(&[10, 0, 0, 2], &[10, 0, 0, 1], ulen as usize), &f[34..]));
        f[40..42].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn parses_a_query_and_checks_its_checksums() {
        let f = frame(b"hello, dns");
        let want = Parsed { len: 10, src: "10.0.0.2:4242".parse().unwrap(), dst: "10.0.0.1:53".parse().unwrap() };
        assert_eq!(parse(&f, true), Some(want));
        // A flipped payload bit breaks the UDP checksum; a flipped address the IP one.
        for at in [45, 28] {
            let mut g = f.clone();
            g[at] ^= 1;
            assert_eq!(parse(&g, true), None, "byte {at}");
        }
        // No UDP checksum (zero) is allowed over IPv4.
        let mut g = f.clone();
        g[40..42].copy_from_slice(&[0, 0]);
        g[45] ^= 1;
        assert!(parse(&g, true).is_some());
    }

    #[test]
    fn refuses_what_it_must_not_answer() {
        let f = frame(b"hello, dns");
        let short = &f[..41];
        assert_eq!(parse(short, true), None);
        let mut options = f.clone();
        options[14] = 0x46;
        assert_eq!(parse(&options, true), None);
        let mut port0 = f.clone();
        port0[34..36].copy_from_slice(&[0, 0]);
        port0[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&port0, true), None);
        // An IP length beyond the frame, a UDP length beyond the IP packet.
        let mut long = f.clone();
        long[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(parse(&long, true), None);
        let mut ulong = f.clone();
        ulong[38..40].copy_from_slice(&100u16.to_be_bytes());
        ulong[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&ulong, true), None);
    }

    #[test]
    fn answers_in_place_with_swapped_addresses_and_valid_checksums() {
        let mut f = frame(b"query");
        f.resize(200, 0);
        let len = answer_in_place(&mut f, b"a longer answer");
        let a = &f[..len];
        assert_eq!(len, HEADERS + 15);
        assert_eq!(&a[..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&a[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&a[26..34], &[10, 0, 0, 1, 10, 0, 0, 2]);
        assert_eq!(&a[34..38], &[0, 53, 0x10, 0x92]);
        assert_eq!(&a[20..22], &[0x40, 0], "DF");
        // The answer parses as a valid packet from 10.0.0.1:53.
        let p = parse(a, true).expect("valid headers and checksums");
        assert_eq!(p, Parsed { len: 15, src: "10.0.0.1:53".parse().unwrap(), dst: "10.0.0.2:4242".parse().unwrap() });
        assert_eq!(&a[HEADERS..], b"a longer answer");
    }
}

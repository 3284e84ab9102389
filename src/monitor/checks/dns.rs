//! `type = "dns"`: one query to the target over UDP (over TCP when the UDP answer is
//! truncated); the rcode and optionally one answer record decide. For other nameservers and
//! resolvers, so recursion is asked for (authoritative servers ignore the flag).

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name as HName, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::{Probe, io_cause};
use crate::model::pool::{Check, ExpectAnswer, Probe as Spec, rcode_name};

/// The EDNS payload offered: the DNS Flag Day 2020 size, which avoids IP fragmentation.
const UDP_PAYLOAD: u16 = 1232;

pub struct DnsProbe {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    qname: HName,
    qtype: RecordType,
    rcode: u16,
    answer: Option<ExpectAnswer>,
}

impl DnsProbe {
    pub fn new(addr: SocketAddr, check: &Check, source: Option<std::net::IpAddr>) -> Result<DnsProbe, String> {
        let Spec::Dns { name, qtype, rcode, answer } = &check.probe else {
            unreachable!("a dns prober for a {:?} check", check.kind)
        };
        let qname = HName::from_ascii(name.to_string()).map_err(|e| format!("name {name}: {e}"))?;
        Ok(DnsProbe { addr, source, qname, qtype: RecordType::from(*qtype), rcode: *rcode, answer: answer.clone() })
    }

    fn query(&self) -> Result<(u16, Vec<u8>), String> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(self.qname.clone(), self.qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        m.set_edns(edns);
        let wire = m.to_vec().map_err(|e| format!("cannot build the query: {e}"))?;
        Ok((m.metadata.id, wire))
    }

    /// Whether `m` answers our query (`id`), rather than being a stray or forged datagram.
    fn is_reply(&self, m: &Message, id: u16) -> bool {
        let question = match m.queries.as_slice() {
            // hickory compares names ignoring case, as DNS does (a server may echo 0x20 case).
            [q] => q.query_type() == self.qtype && *q.name() == self.qname,
            // Some servers leave the question out of an error reply (FORMERR, REFUSED); that
            // reply is still the verdict, not a reason to wait for the timeout.
            [] => m.metadata.response_code != ResponseCode::NoError,
            _ => false,
        };
        m.metadata.id == id && m.metadata.message_type == MessageType::Response && question
    }

    async fn udp(&self, id: u16, wire: &[u8]) -> Result<Message, String> {
        let sock = UdpSocket::bind(super::udp_local(self.addr, self.source)).await.map_err(|e| io_cause(&e))?;
        // Connected: the kernel drops datagrams from anyone but the target.
        sock.connect(self.addr).await.map_err(|e| io_cause(&e))?;
        sock.send(wire).await.map_err(|e| format!("send failed: {}", io_cause(&e)))?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| format!("read failed: {}", io_cause(&e)))?;
            // A late reply to an earlier probe, or garbage, is not the answer: keep waiting
            // for ours until the timeout.
            if let Ok(m) = Message::from_vec(&buf[..n])
                && self.is_reply(&m, id)
            {
                return Ok(m);
            }
        }
    }

    async fn tcp(&self, id: u16, wire: &[u8]) -> Result<Message, String> {
        let mut s = super::tcp_connect(self.addr, self.source).await.map_err(|e| format!("TCP: {}", io_cause(&e)))?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        s.write_all(&framed).await.map_err(|e| format!("TCP send failed: {}", io_cause(&e)))?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.map_err(|e| format!("TCP read failed: {}", io_cause(&e)))?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.map_err(|e| format!("TCP read failed: {}", io_cause(&e)))?;
        let _ = s.shutdown().await;
        let m = Message::from_vec(&buf).map_err(|e| format!("malformed reply over TCP: {e}"))?;
        if !self.is_reply(&m, id) {
            return Err("the reply over TCP does not match the query".into());
        }
        Ok(m)
    }

    fn judge(&self, m: &Message) -> Result<(), String> {
        let rcode = u16::from(m.metadata.response_code);
        if rcode != self.rcode {
            return Err(format!("{} (expected {})", rcode_name(rcode), rcode_name(self.rcode)));
        }
        let Some(want) = &self.answer else { return Ok(()) };
        let found = m.answers.iter().any(|r| match (want, &r.data) {
            (ExpectAnswer::Address(IpAddr::V4(w)), RData::A(a)) => a.0 == *w,
            (ExpectAnswer::Address(IpAddr::V6(w)), RData::AAAA(a)) => a.0 == *w,
            (ExpectAnswer::Address(_), _) => false,
            (ExpectAnswer::Contains(text), data) => {
                data.to_string().to_ascii_lowercase().contains(&text.to_ascii_lowercase())
            }
        });
        if found {
            return Ok(());
        }
        let want = match want {
            ExpectAnswer::Address(a) => a.to_string(),
            ExpectAnswer::Contains(t) => format!("{t:?}"),
        };
        let got: Vec<String> = m.answers.iter().take(3).map(|r| r.data.to_string()).collect();
        let more = if m.answers.len() > 3 { ", …" } else { "" };
        Err(format!(
            "no answer has {want} (got: {}{more})",
            if got.is_empty() { "none".into() } else { got.join(", ") }
        ))
    }
}

impl Probe for DnsProbe {
    async fn probe(&self) -> Result<(), String> {
        let (id, wire) = self.query()?;
        let mut reply = self.udp(id, &wire).await?;
        if reply.metadata.truncation {
            reply = self.tcp(id, &wire).await?;
        }
        self.judge(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pool::testing::tcp_check;

    fn probe(qtype: u16, answer: Option<ExpectAnswer>) -> DnsProbe {
        let name = crate::model::name::Name::parse("www.example.net.", None).unwrap();
        let check = Check { probe: Spec::Dns { name, qtype, rcode: 0, answer }, ..tcp_check() };
        DnsProbe::new("192.0.2.53:53".parse().unwrap(), &check, None).unwrap()
    }

    fn reply(p: &DnsProbe, id: u16, qname: &str, rcode: ResponseCode, answers: &[RData]) -> Message {
        let mut m = Message::response(id, hickory_proto::op::OpCode::Query);
        m.metadata.response_code = rcode;
        if !qname.is_empty() {
            m.add_query(Query::query(HName::from_ascii(qname).unwrap(), p.qtype));
        }
        for a in answers {
            m.add_answer(hickory_proto::rr::Record::from_rdata(p.qname.clone(), 60, a.clone()));
        }
        m
    }

    #[test]
    fn only_our_reply_counts() {
        let p = probe(crate::model::rtype::A, None);
        assert!(p.is_reply(&reply(&p, 7, "WWW.Example.NET.", ResponseCode::NoError, &[]), 7), "0x20 case");
        assert!(!p.is_reply(&reply(&p, 8, "www.example.net.", ResponseCode::NoError, &[]), 7), "another id");
        assert!(!p.is_reply(&reply(&p, 7, "mail.example.net.", ResponseCode::NoError, &[]), 7), "another name");
        assert!(p.is_reply(&reply(&p, 7, "", ResponseCode::Refused, &[]), 7), "an error without the question");
        assert!(!p.is_reply(&reply(&p, 7, "", ResponseCode::NoError, &[]), 7));
    }

    #[test]
    fn rcode_and_answer_decide() {
        use hickory_proto::rr::rdata::{A, TXT};
        let a = |s: &str| RData::A(A(s.parse().unwrap()));
        let p = probe(crate::model::rtype::A, Some(ExpectAnswer::Address("192.0.2.1".parse().unwrap())));
        let ok = reply(&p, 1, "www.example.net.", ResponseCode::NoError, &[a("192.0.2.10"), a("192.0.2.1")]);
        assert_eq!(p.judge(&ok), Ok(()));
        let near = reply(&p, 1, "www.example.net.", ResponseCode::NoError, &[a("192.0.2.10")]);
        assert_eq!(p.judge(&near), Err("no answer has 192.0.2.1 (got: 192.0.2.10)".into()), "whole addresses");
        let nx = reply(&p, 1, "www.example.net.", ResponseCode::NXDomain, &[]);
        assert_eq!(p.judge(&nx), Err("NXDOMAIN (expected NOERROR)".into()));
        let p = probe(crate::model::rtype::TXT, Some(ExpectAnswer::Contains("V=SPF1".into())));
        let txt = RData::TXT(TXT::new(vec!["v=spf1 -all".into()]));
        assert_eq!(p.judge(&reply(&p, 1, "www.example.net.", ResponseCode::NoError, &[txt])), Ok(()));
        assert_eq!(
            p.judge(&reply(&p, 1, "www.example.net.", ResponseCode::NoError, &[])),
            Err("no answer has \"V=SPF1\" (got: none)".into())
        );
    }
}

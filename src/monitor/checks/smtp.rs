//! `type = "smtp"`: the 220 banner, EHLO, optionally STARTTLS (then EHLO again, as RFC 3207
//! asks), and QUIT with its 221. Every session that got a banner ends with QUIT, whatever went
//! wrong, so the server logs an orderly client rather than a dropped connection.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{TlsStream, client_config};
use super::{Probe, io_cause};
use crate::model::pool::{Check, Probe as Spec, is_helo_name};

/// Most bytes of one reply (RFC 5321 §4.5.3.1.5 allows 512 per line; EHLO has many lines).
const MAX_REPLY: usize = 16 * 1024;

pub struct SmtpProbe {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    helo: String,
    /// The TLS server name and configuration, when STARTTLS is asked for.
    tls: Option<(ServerName<'static>, Arc<ClientConfig>)>,
}

impl SmtpProbe {
    pub fn new(addr: SocketAddr, check: &Check, source: Option<std::net::IpAddr>) -> Result<SmtpProbe, String> {
        let Spec::Smtp { helo, starttls, host, tls_verify } = &check.probe else {
            unreachable!("an smtp prober for a {:?} check", check.kind)
        };
        let helo = helo.clone().unwrap_or_else(default_helo);
        let tls = if *starttls {
            let name = match host {
                Some(h) => ServerName::try_from(h.clone()).map_err(|e| format!("host {h:?}: {e}"))?,
                None => ServerName::IpAddress(addr.ip().into()),
            };
            Some((name, client_config(*tls_verify)))
        } else {
            None
        };
        Ok(SmtpProbe { addr, source, helo, tls })
    }
}

/// The EHLO name when none is configured: this machine's host name, which is how a mail
/// server's operator can tell who is knocking.
fn default_helo() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if is_helo_name(&name) { name } else { "weiche.invalid".into() }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

struct Session {
    conn: Conn,
    /// Received bytes not yet consumed as reply lines.
    buf: Vec<u8>,
}

/// One SMTP reply: its code and its lines' texts.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.first().map(String::as_str).unwrap_or("").trim())
    }
}

impl Session {
    async fn send(&mut self, line: &str) -> Result<(), String> {
        let data = format!("{line}\r\n");
        match &mut self.conn {
            Conn::Plain(s) => s.write_all(data.as_bytes()).await.map_err(|e| format!("send failed: {}", io_cause(&e))),
            Conn::Tls(s) => s.write_all(data.as_bytes()).await,
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut tmp = [0u8; 4096];
        let n = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut tmp).await.map_err(|e| format!("read failed: {}", io_cause(&e)))?,
            Conn::Tls(s) => s.read(&mut tmp).await?,
        };
        if n == 0 {
            return Err("connection closed by the server".into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        if self.buf.len() > MAX_REPLY {
            return Err(format!("reply longer than {} KiB", MAX_REPLY / 1024));
        }
        Ok(())
    }

    /// Reads one reply, multi-line ones (`250-…`) up to their last line (`250 …`).
    async fn reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                self.fill().await?;
                continue;
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
            let code = line.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit())).and_then(|c| c.parse().ok());
            let (Some(code), sep) = (code, line.as_bytes().get(3).copied()) else {
                return Err(format!("not an SMTP reply: {:?}", truncate(&line)));
            };
            lines.push(line.get(4..).unwrap_or("").to_string());
            match sep {
                Some(b'-') => continue,
                None | Some(b' ') => return Ok(Reply { code, lines }),
                Some(_) => return Err(format!("not an SMTP reply: {:?}", truncate(&line))),
            }
        }
    }

    /// Sends `command` and reads the reply; a reply other than `want` is an error, reported
    /// with `what` the command was for.
    async fn command(&mut self, command: &str, want: u16, what: &str) -> Result<Reply, String> {
        self.send(command).await?;
        let r = self.reply().await?;
        if r.code == want { Ok(r) } else { Err(format!("{what}: {r}")) }
    }

    /// QUIT, its reply, and the end of the connection.
    async fn quit(mut self) -> Result<(), String> {
        let r = self.command("QUIT", 221, "QUIT").await.map(drop);
        match self.conn {
            Conn::Plain(mut s) => {
                let _ = s.shutdown().await;
            }
            Conn::Tls(s) => s.close().await,
        }
        r
    }

    /// The session after a failure: say goodbye, but report the failure.
    async fn abandon(self, why: String) -> Result<(), String> {
        let _ = self.quit().await;
        Err(why)
    }
}

/// Enough of an unexpected line to recognise it in a cause, without filling the status with it.
fn truncate(s: &str) -> &str {
    s.char_indices().nth(80).map_or(s, |(i, _)| &s[..i])
}

impl Probe for SmtpProbe {
    async fn probe(&self) -> Result<(), String> {
        let tcp = super::tcp_connect(self.addr, self.source).await.map_err(|e| io_cause(&e))?;
        let mut s = Session { conn: Conn::Plain(tcp), buf: Vec::new() };
        let banner = s.reply().await?;
        if banner.code != 220 {
            return s.abandon(format!("banner: {banner}")).await;
        }
        let ehlo = format!("EHLO {}", self.helo);
        let offers = match s.command(&ehlo, 250, "EHLO").await {
            Ok(r) => r,
            Err(e) => return s.abandon(e).await,
        };
        if let Some((name, config)) = &self.tls {
            let offered = offers
                .lines
                .iter()
                .skip(1)
                .any(|l| l.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS")));
            if !offered {
                return s.abandon("STARTTLS is not offered".into()).await;
            }
            if let Err(e) = s.command("STARTTLS", 220, "STARTTLS").await {
                return s.abandon(e).await;
            }
            if !s.buf.is_empty() {
                // Replies that arrive before the handshake would be taken as if they had come
                // over TLS: that is how a man in the middle injects them (STARTTLS response
                // injection). No honest server sends anything there.
                return Err("the server sent data after its STARTTLS reply".into());
            }
            let Conn::Plain(tcp) = s.conn else { unreachable!("STARTTLS on a TLS session") };
            // A failed handshake leaves no channel to say QUIT on; the TCP close is the goodbye.
            let tls = TlsStream::connect(tcp, name.clone(), config.clone()).await?;
            s = Session { conn: Conn::Tls(Box::new(tls)), buf: Vec::new() };
            if let Err(e) = s.command(&ehlo, 250, "EHLO after STARTTLS").await {
                return s.abandon(e).await;
            }
        }
        s.quit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_helo_is_a_valid_name() {
        assert!(is_helo_name(&default_helo()));
    }
}

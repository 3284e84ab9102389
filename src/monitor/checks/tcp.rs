//! `type = "tcp"`: connect, optionally send bytes and wait for a string in the reply.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Probe, io_cause};
use crate::model::pool::{Check, Probe as Spec};

pub struct TcpProbe {
    addr: SocketAddr,
    source: Option<IpAddr>,
    send: Option<String>,
    expect: Option<String>,
}

impl TcpProbe {
    pub fn new(addr: SocketAddr, check: &Check, source: Option<IpAddr>) -> TcpProbe {
        let Spec::Tcp { send, expect } = &check.probe else {
            unreachable!("a tcp prober for a {:?} check", check.kind)
        };
        TcpProbe { addr, source, send: send.clone(), expect: expect.clone() }
    }
}

impl Probe for TcpProbe {
    async fn probe(&self) -> Result<(), String> {
        let mut s = super::tcp_connect(self.addr, self.source).await.map_err(|e| io_cause(&e))?;
        if let Some(data) = &self.send {
            s.write_all(data.as_bytes()).await.map_err(|e| format!("send failed: {}", io_cause(&e)))?;
        }
        if let Some(want) = &self.expect {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.map_err(|e| format!("read failed: {}", io_cause(&e)))?;
                if n == 0 {
                    return Err(format!("connection closed before {want:?} was seen"));
                }
                got.extend_from_slice(&buf[..n]);
                if got.windows(want.len().max(1)).any(|w| w == want.as_bytes()) {
                    break;
                }
                if got.len() > 16 * 1024 {
                    return Err(format!("{want:?} not in the first 16 KiB"));
                }
            }
        }
        // Close cleanly, so the service sees a normal end rather than a reset.
        let _ = s.shutdown().await;
        Ok(())
    }
}

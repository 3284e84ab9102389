//! TLS for checks that upgrade a connection themselves (SMTP's STARTTLS), where reqwest cannot
//! help: rustls's connection driven over a tokio socket. Verification uses the system's CA
//! bundle, the one the HTTPS check trusts on Linux.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;

use crate::monitor::probe::io_cause;

/// Where distributions keep their CA bundle (the paths openssl-probe knows, in short).
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The client configuration, verifying or not; built once per process (reading the CA bundle
/// is too slow to repeat for every target).
pub fn client_config(verify: bool) -> Arc<ClientConfig> {
    static VERIFYING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static TRUSTING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    crate::config::install_crypto_provider();
    if verify {
        VERIFYING
            .get_or_init(|| {
                Arc::new(ClientConfig::builder().with_root_certificates(system_roots()).with_no_client_auth())
            })
            .clone()
    } else {
        TRUSTING
            .get_or_init(|| {
                let provider = rustls::crypto::CryptoProvider::get_default().cloned().expect("installed above");
                Arc::new(
                    ClientConfig::builder()
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                        .with_no_client_auth(),
                )
            })
            .clone()
    }
}

fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env.into_iter().chain(CA_BUNDLES.iter().map(Into::into));
    for path in candidates {
        let Ok(pem) = std::fs::read(&path) else { continue };
        let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
        let (added, _) = roots.add_parsable_certificates(certs);
        if added > 0 {
            return roots;
        }
    }
    warn!("no CA certificates found (SSL_CERT_FILE or the system bundle): TLS checks with tls_verify will fail");
    roots
}

/// `tls_verify = false`: any certificate, but the handshake's signatures are still checked,
/// so the connection is at least to whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client connection over a TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
}

impl TlsStream {
    /// Runs the handshake on `tcp`, whose plaintext part of the conversation is over.
    pub async fn connect(
        tcp: TcpStream,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<TlsStream, String> {
        let conn = ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
        let mut s = TlsStream { tcp, conn };
        while s.conn.is_handshaking() {
            s.send().await?;
            if s.conn.is_handshaking() && s.conn.wants_read() {
                s.receive().await?;
            }
        }
        s.send().await?;
        Ok(s)
    }

    /// Writes out whatever TLS records are pending.
    async fn send(&mut self) -> Result<(), String> {
        while self.conn.wants_write() {
            let mut out = Vec::new();
            self.conn.write_tls(&mut out).map_err(|e| format!("TLS: {e}"))?;
            self.tcp.write_all(&out).await.map_err(|e| format!("send failed: {}", io_cause(&e)))?;
        }
        Ok(())
    }

    /// Reads one chunk from the socket into the TLS connection.
    async fn receive(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.tcp.read(&mut buf).await.map_err(|e| format!("read failed: {}", io_cause(&e)))?;
        if n == 0 {
            return Err("connection closed during TLS".into());
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            self.conn.read_tls(&mut rest).map_err(|e| format!("TLS: {e}"))?;
            if let Err(e) = self.conn.process_new_packets() {
                // Tell the server why (an alert) before giving up, as a polite client does.
                let _ = self.send().await;
                return Err(format!("TLS: {e}"));
            }
        }
        Ok(())
    }

    /// Reads some plaintext; 0 when the server closed the TLS session.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.receive().await?,
                Err(e) => return Err(format!("TLS: {e}")),
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        self.conn.writer().write_all(data).map_err(|e| format!("TLS: {e}"))?;
        self.send().await
    }

    /// Ends the TLS session (close_notify) and the connection.
    pub async fn close(mut self) {
        self.conn.send_close_notify();
        let _ = self.send().await;
        let _ = self.tcp.shutdown().await;
    }
}

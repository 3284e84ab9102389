//! TLS for checks that upgrade a connection themselves (SMTP's STARTTLS), where reqwest cannot
//! help: rustls's connection driven over a tokio socket. Verification uses the system's CA
//! bundle, the one the HTTPS check trusts on Linux.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;

use super::io_cause;

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

/// A TLS client connection over a TCP stream (tokio-rustls, which reqwest uses too).
pub struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

/// A TLS failure in rustls's words, or the socket's.
fn tls_cause(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(t) => format!("TLS: {t}"),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => "connection closed during TLS".into(),
        None => io_cause(e),
    }
}

impl TlsStream {
    /// Runs the handshake on `tcp`, whose plaintext part of the conversation is over.
    pub async fn connect(
        tcp: TcpStream,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<TlsStream, String> {
        let s = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| tls_cause(&e))?;
        Ok(TlsStream(s))
    }

    /// Reads some plaintext; 0 when the server closed the TLS session.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        self.0.read(buf).await.map_err(|e| tls_cause(&e))
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        self.0.write_all(data).await.map_err(|e| tls_cause(&e))?;
        self.0.flush().await.map_err(|e| tls_cause(&e))
    }

    /// Ends the TLS session (close_notify) and the connection.
    pub async fn close(mut self) {
        let _ = self.0.shutdown().await;
    }
}

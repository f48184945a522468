//! TLS for arakoon-rs, with rustls: the node's client port
//! (`tls_service`), node-to-node messaging, and the client.
//!
//! # What is checked, as Arakoon checks it
//!
//! - A cluster has one CA (`tls_ca_cert`); every node has a certificate and
//!   key signed by it (`tls_cert`, `tls_key`, PEM files).
//! - Node to node: mutual TLS, always: each side's certificate must chain
//!   to the CA ([`node_acceptor`] requires a client certificate,
//!   [`connector`] presents the node's own).
//! - The client port: the node presents its certificate; a client
//!   certificate is required and checked only with
//!   `tls_service_validate_peer` ([`ClientAuth`]).
//! - The certificate's *names* are not checked, only its chain to the CA:
//!   Arakoon's certificates name a node (`CN=arakoon_0`), not the address it
//!   is reached at, and Arakoon checks the chain only. Whoever holds a key
//!   signed by the cluster's CA is trusted: the CA is the cluster's own.
//! - [`MinVersion`]: `tls_version = 1.2` offers TLS 1.2 and 1.3 (the peer
//!   picks, so an Arakoon peer pinned to 1.2 is served); `1.3` offers 1.3
//!   only.
//!
//! # Clear failures
//!
//! A plaintext peer on a TLS port is recognised by its first byte (every
//! TLS connection begins with a handshake record, `0x16`):
//! [`accept`] answers it [`AcceptError::Plaintext`] without a handshake, so
//! the node can tell the client what is wrong. [`looks_like_tls`] lets a
//! plaintext port recognise a TLS client the same way.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "test-util")]
pub mod testing;

mod stream;

pub use stream::Stream;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;

pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The first byte of every TLS connection (a handshake record).
pub const HANDSHAKE_RECORD: u8 = 0x16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {}: no PEM {kind} in it", path.display())]
    Empty {
        what: &'static str,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{what} {}: {reason}", path.display())]
    Invalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// The oldest TLS version offered (`tls_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl MinVersion {
    /// `"1.2"` or `"1.3"` (the config has already turned Arakoon's `1.0`
    /// and `1.1` into `1.2`, with a warning).
    pub fn parse(text: &str) -> Result<MinVersion, Error> {
        match text {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            other => Err(Error::Setup(format!(
                "tls_version {other:?}: expected 1.2 or 1.3"
            ))),
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &BOTH,
            MinVersion::Tls13 => &ONLY_13,
        }
    }
}

/// What to do about a TLS failure whose cause an operator can fix,
/// appended to its text (empty if none is known).
pub fn hint(error: &str) -> &'static str {
    if error.contains("UnsupportedCertVersion") {
        " (an X.509 v1 certificate: TLS here needs v3 certificates; `openssl x509 -req` \
         makes v1 unless given extensions: add `-extfile` with `basicConstraints=CA:FALSE`, \
         see docs/operations.md)"
    } else if error.contains("UnknownIssuer") || error.contains("UnknownCA") {
        " (the certificate is not signed by the CA in tls_ca_cert)"
    } else if error.contains("CertExpired") || error.contains("Expired") {
        " (a certificate has expired)"
    } else if error.contains("CertNotValidYet") || error.contains("NotValidYet") {
        " (a certificate is not valid yet: check the clocks)"
    } else {
        ""
    }
}

/// A failed handshake, with the [`hint`] that fits it.
pub fn describe(error: &std::io::Error) -> String {
    let text = error.to_string();
    let hint = hint(&text);
    format!("{text}{hint}")
}

/// A certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Whether the client port asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `tls_service_validate_peer = true`: a certificate signed by the CA.
    Required,
    /// No certificate asked for (Arakoon ignores one a client offers).
    None,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid {
            what,
            path: path.to_path_buf(),
            reason: format!("not a PEM certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Empty {
            what,
            path: path.to_path_buf(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => Error::Empty {
            what: "tls_key",
            path: path.to_path_buf(),
            kind: "private key",
        },
        e => Error::Invalid {
            what: "tls_key",
            path: path.to_path_buf(),
            reason: format!("not a PEM private key: {e}"),
        },
    })
}

/// The CA's certificates as trust anchors.
fn roots(ca_cert: &Path) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("tls_ca_cert", ca_cert)? {
        roots.add(cert).map_err(|e| Error::Invalid {
            what: "tls_ca_cert",
            path: ca_cert.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}{}", hint(&e.to_string())),
        })?;
    }
    Ok(Arc::new(roots))
}

fn identity(
    identity: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    Ok((
        certificates("tls_cert", &identity.cert)?,
        private_key(&identity.key)?,
    ))
}

/// The acceptor of a node's port: its own certificate, and clients'
/// certificates checked against `ca_cert` when `client_auth` asks for
/// them. Node-to-node messaging uses [`ClientAuth::Required`].
pub fn node_acceptor(
    ca_cert: &Path,
    node: &Identity,
    client_auth: ClientAuth,
    min_version: MinVersion,
) -> Result<TlsAcceptor, Error> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(min_version.versions())
        .map_err(|e| Error::Setup(e.to_string()))?;
    let builder = match client_auth {
        ClientAuth::Required => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_cert)?, provider)
                .build()
                .map_err(|e| Error::Setup(format!("client certificate check: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        ClientAuth::None => builder.with_no_client_auth(),
    };
    let (chain, key) = identity(node)?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::Invalid {
            what: "tls_key",
            path: node.key.clone(),
            reason: format!(
                "does not go with tls_cert {}, or the certificate cannot be used: {e}{}",
                node.cert.display(),
                hint(&e.to_string())
            ),
        })?;
    // No resumption: connections are long-lived, and a ticket sent after
    // the handshake would be the only bytes a client did not ask for.
    config.send_tls13_tickets = 0;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector of a node (to its peers, with its own certificate) or of
/// a client (with a certificate only if the cluster validates clients):
/// the server's certificate must chain to `ca_cert`.
pub fn connector(
    ca_cert: &Path,
    own: Option<&Identity>,
    min_version: MinVersion,
) -> Result<TlsConnector, Error> {
    let provider = provider();
    let verifier = Arc::new(CaSigned {
        roots: roots(ca_cert)?,
        provider: Arc::clone(&provider),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(min_version.versions())
        .map_err(|e| Error::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match own {
        Some(own) => {
            let (chain, key) = identity(own)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Invalid {
                    what: "tls_key",
                    path: own.key.clone(),
                    reason: format!(
                        "does not go with tls_cert {}, or the certificate cannot be used: {e}{}",
                        own.cert.display(),
                        hint(&e.to_string())
                    ),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name a connector sends (SNI) for `host`: the certificate's names
/// are not checked (see the module docs), so any well-formed name does.
pub fn server_name(host: &str) -> ServerName<'static> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::from(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
}

/// Checks a server's certificate chain against the cluster's CA, not its
/// names (as Arakoon does: see the module docs).
#[derive(Debug)]
struct CaSigned {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why [`accept`] refused a connection.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The peer's first byte is not a TLS handshake record: it speaks
    /// plaintext to a TLS port. Nothing was read; the caller may answer.
    #[error("the peer speaks plaintext (first byte 0x{0:02x}) to a TLS port")]
    Plaintext(u8),
    #[error("the peer closed the connection before the TLS handshake")]
    Closed,
    #[error("TLS handshake: {}", describe(.0))]
    Handshake(std::io::Error),
}

/// Whether the peer's first byte (peeked, not read; waits for it) is a TLS
/// handshake record. `None`: the peer closed without sending a byte.
pub async fn looks_like_tls(stream: &TcpStream) -> std::io::Result<Option<bool>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok((n == 1).then_some(first[0] == HANDSHAKE_RECORD))
}

/// The server side of a connection on a TLS port: a plaintext peer is
/// recognised before any handshake ([`AcceptError::Plaintext`], the stream
/// given back untouched for an answer); the caller bounds the time.
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Result<Stream, (AcceptError, Option<TcpStream>)> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err((AcceptError::Closed, None)),
        Ok(_) if first[0] != HANDSHAKE_RECORD => {
            return Err((AcceptError::Plaintext(first[0]), Some(stream)))
        }
        Ok(_) => {}
        Err(e) => return Err((AcceptError::Handshake(e), None)),
    }
    match acceptor.accept(stream).await {
        Ok(tls) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)))),
        Err(e) => Err((AcceptError::Handshake(e), None)),
    }
}

/// The client side: a TLS handshake over `stream` (the caller bounds the
/// time).
pub async fn connect(
    connector: &TlsConnector,
    host: &str,
    stream: TcpStream,
) -> std::io::Result<Stream> {
    let tls = connector.connect(server_name(host), stream).await?;
    Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
}

#[cfg(test)]
mod tests;

//! The TLS listener (`--tls-listen`): the same application as the plain port, over rustls.
//!
//! The real amazon-ssm-agent always speaks `https://` and `wss://` to the session service
//! (spec §9.1), whatever scheme its `Mgs.Endpoint` names, so pointing it at the emulator needs
//! a TLS port and a certificate it trusts. At start the emulator makes a CA and a server
//! certificate signed by it (rcgen, fresh ECDSA P-256 keys each run; SANs `localhost`,
//! `127.0.0.1`, `::1` and every `--tls-san`), and writes the CA certificate as PEM to
//! `--tls-ca-out`. Agents (and Go clients generally) trust it through `SSL_CERT_FILE=<that file>`
//! (spec §9.3); SSM and MDS calls may use either port.
//!
//! Choice of crates: tokio-rustls with the `ring` provider (no aws-lc-sys, whose build needs
//! cmake and an assembler). It is served by `axum::serve` through its [`Listener`] trait, so
//! the TLS port gets exactly what the plain port gets (hyper-util's HTTP/1 with upgrades, hence
//! websockets as `wss://`, and graceful shutdown) without another server stack: axum-server
//! would add its own and pull aws-lc-rs unless told otherwise, and hand-wiring hyper-util would
//! repeat what `axum::serve` already does.
//!
//! Every request served on the TLS port carries the [`Scheme::Https`] request extension; on the
//! plain port there is none and [`Scheme::of`] says [`Scheme::Http`]. Session StreamUrls follow
//! it (`wss://` on TLS, `ws://` on plain).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::http::Extensions;
use axum::serve::Listener;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::model::Emulator;

/// The names every server certificate holds.
pub const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for `axum::serve` to take them.
const ACCEPT_QUEUE: usize = 64;

/// The scheme a request came in on, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The plain port.
    Http,
    /// The TLS port.
    Https,
}

impl Scheme {
    /// The scheme of a request with `extensions` ([`Scheme::Http`] when none was set).
    pub fn of(extensions: &Extensions) -> Scheme {
        extensions.get::<Scheme>().copied().unwrap_or(Scheme::Http)
    }

    /// `ws` or `wss`, for websocket URLs handed to clients (StreamUrl).
    pub fn websocket(self) -> &'static str {
        match self {
            Scheme::Http => "ws",
            Scheme::Https => "wss",
        }
    }
}

/// The TLS flags of the binary.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Also serve everything over TLS (https/wss) on this address, e.g. 127.0.0.1:4584. The
    /// real amazon-ssm-agent needs it: it always uses https/wss for the session service (its
    /// Mgs.Endpoint), while Ssm.Endpoint and Mds.Endpoint may stay on the plain port.
    #[arg(
        long,
        value_name = "ADDR",
        requires = "tls_ca_out",
        env = "SSM_EMULATOR_TLS_LISTEN"
    )]
    pub tls_listen: Option<SocketAddr>,

    /// Where to write the CA certificate (PEM) generated at start; required with
    /// --tls-listen. Agents and other Go clients trust it with SSL_CERT_FILE=<this file> in
    /// their environment (curl: --cacert, Python: REQUESTS_CA_BUNDLE/AWS_CA_BUNDLE).
    #[arg(long, value_name = "PATH", env = "SSM_EMULATOR_TLS_CA_OUT")]
    pub tls_ca_out: Option<PathBuf>,

    /// One more name (DNS name or IP address) for the server certificate, besides localhost,
    /// 127.0.0.1 and ::1. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub tls_san: Vec<String>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused a name or could not sign.
    #[error("cannot generate the TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    /// The CA file could not be written.
    #[error("cannot write the CA certificate to {path}: {source}")]
    WriteCa {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A CA and a server certificate made at start, and the rustls configuration that serves it.
#[derive(Clone)]
pub struct TlsIdentity {
    ca_pem: String,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A new CA and a server certificate for [`DEFAULT_SANS`] and `extra_sans` (IP addresses
    /// become IP SANs, anything else DNS names).
    pub fn generate(extra_sans: &[String]) -> Result<TlsIdentity, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ssm-emulator local CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names: Vec<String> = DEFAULT_SANS.iter().map(|s| (*s).to_owned()).collect();
        for name in extra_sans {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ssm-emulator");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        // HTTP/1.1 only: that is what the server speaks, and websockets need it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            ca_pem: ca_cert.pem(),
            config: Arc::new(config),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA certificate as PEM to `path`.
    pub fn write_ca(&self, path: &Path) -> Result<(), TlsError> {
        std::fs::write(path, &self.ca_pem).map_err(|source| TlsError::WriteCa {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Serves [`app`](crate::app) on `listener` over TLS with `identity` until `shutdown`
/// completes, then finishes the requests in flight and returns.
pub async fn run_tls(
    listener: TcpListener,
    identity: &TlsIdentity,
    state: Emulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TlsListener::new(listener, identity.config.clone())?;
    let app = crate::app(state).layer(Extension(Scheme::Https));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The binary's TLS setup: with `--tls-listen`, makes the certificates, writes the CA file,
/// binds the port and starts serving it in the background until `shutdown`. Returns the bound
/// address, or `None` without `--tls-listen`.
pub async fn start(
    args: &TlsArgs,
    state: &Emulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<SocketAddr>, String> {
    let Some(addr) = args.tls_listen else {
        return Ok(None);
    };
    let ca_out = args
        .tls_ca_out
        .as_deref()
        .ok_or("--tls-listen needs --tls-ca-out PATH (where to write the CA certificate)")?;
    let identity = TlsIdentity::generate(&args.tls_san).map_err(|e| e.to_string())?;
    identity.write_ca(ca_out).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for TLS on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the TLS listening address: {e}"))?;
    tracing::info!(
        ca = %ca_out.display(),
        "TLS on https://{bound} and wss://{bound}; clients trust it with SSL_CERT_FILE={}",
        ca_out.display()
    );
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = run_tls(listener, &identity, state, shutdown).await {
            tracing::error!("TLS server failed: {e}");
        }
    });
    Ok(Some(bound))
}

/// A [`Listener`] that yields connections after their TLS handshake. Handshakes run in their
/// own tasks, so that a slow or broken client holds up nobody else.
struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (ready, accepted) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    // `axum::serve` ended and dropped the listener.
                    () = ready.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // As axum's own listener does: out of descriptors and the like
                            // pass, so wait a little and go on.
                            tracing::warn!("TLS accept failed: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                };
                crate::faults::link::set_nodelay(&stream);
                let acceptor = acceptor.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            accepted,
            local_addr,
        })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept task is gone (it ends only when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_pem_and_extra_names_are_accepted() {
        let identity =
            TlsIdentity::generate(&["emulator.test".to_owned(), "10.1.2.3".to_owned()]).unwrap();
        assert!(identity.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(identity.config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn scheme_defaults_to_http() {
        let mut extensions = Extensions::new();
        assert_eq!(Scheme::of(&extensions), Scheme::Http);
        extensions.insert(Scheme::Https);
        assert_eq!(Scheme::of(&extensions).websocket(), "wss");
    }
}

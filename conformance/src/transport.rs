//! Connections: TCP, or TLS over TCP, for the data-channel websocket (`ws://`, `wss://`, spec
//! §2, §8.4) and for the API calls (`http://`, `https://`, §8.2).
//!
//! # Which certificate authorities are trusted, and why
//!
//! The real plugin makes its two kinds of TLS connection with two trust stores:
//!
//! - its API calls (ResumeSession, TerminateSession) go through aws-sdk-go v1, which honours
//!   `AWS_CA_BUNDLE`: when it is set, that bundle *replaces* the system roots;
//! - its websocket goes through gorilla with Go's default TLS configuration, whose roots come from
//!   Go's crypto/x509: on Linux the system bundle, replaced by `SSL_CERT_FILE` when that is set,
//!   plus the files of the `SSL_CERT_DIR` directories.
//!
//! So with the real plugin a CA named only in `AWS_CA_BUNDLE` (which the AWS CLI honours for its
//! own StartSession call) gets the API calls through but not the `wss://` dial, and one named
//! only in `SSL_CERT_FILE` the reverse. `ssm-session` trusts one union for both kinds of
//! connection: the system roots, `AWS_CA_BUNDLE`, `SSL_CERT_FILE` and `SSL_CERT_DIR`. Adding a
//! CA can then never make a connection fail, and a user who set either variable gets a working
//! session. The store is built once, on the first TLS connection, so plain `ws://` sessions
//! never read a certificate file.
//!
//! Crates: tokio-rustls with the `ring` provider, already the emulator's; PEM parsing comes with
//! rustls (`rustls-pki-types`), and the system bundle is found the way Go finds it, so neither
//! rustls-native-certs nor webpki-roots is needed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;

/// The CA bundle of aws-sdk-go (and the AWS CLI): the API calls' trust store in the plugin.
pub const CA_BUNDLE_ENV: &str = "AWS_CA_BUNDLE";

/// Go's crypto/x509 on Linux reads this file instead of the system bundle: the websocket's
/// trust store in the plugin.
pub const CERT_FILE_ENV: &str = "SSL_CERT_FILE";

/// Go's crypto/x509 on Linux reads every file of these `:`-separated directories.
pub const CERT_DIR_ENV: &str = "SSL_CERT_DIR";

/// Where Linux distributions keep their CA bundle, in the order Go's crypto/x509 tries them
/// (`root_linux.go`); the first that can be read holds the system roots.
const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Go's directories of certificate files. Read only when no [`SYSTEM_BUNDLES`] file exists:
/// where one does, these directories hold the same certificates one per file, and parsing a few
/// hundred files would only slow the first TLS connection down.
const SYSTEM_DIRS: [&str; 2] = ["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// What a TLS stream needs to carry a websocket or an HTTP exchange.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection, plain or TLS: the callers do not care which.
pub type Connection = Box<dyn Io>;

/// The data-channel websocket.
pub type Ws = WebSocketStream<Connection>;

/// What to do when the server's certificate is signed by a CA we do not trust.
const UNTRUSTED_HINT: &str = "set AWS_CA_BUNDLE (or SSL_CERT_FILE) to a PEM file holding the CA \
     that signed it (for ssm-emulator: the file written by --tls-ca-out)";

/// What to do when the certificate does not name the host we dialed.
const WRONG_NAME_HINT: &str = "connect by a name the certificate holds (for ssm-emulator: \
     localhost, 127.0.0.1, ::1 or a --tls-san name)";

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not one we can dial.
    #[error("{url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {host} port {port}: {source}")]
    Tcp {
        /// The host dialed.
        host: String,
        /// The port dialed.
        port: u16,
        /// The socket error.
        source: std::io::Error,
    },
    /// The server's certificate was refused; `hint` says what the user can do.
    #[error("the TLS certificate of {host} is not trusted ({reason}): {hint}")]
    Untrusted {
        /// The host dialed.
        host: String,
        /// rustls's reason.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The TLS handshake failed for another reason.
    #[error("TLS with {host}: {source}")]
    Tls {
        /// The host dialed.
        host: String,
        /// The handshake error.
        source: std::io::Error,
    },
    /// rustls refused our client configuration (it cannot with the ring provider's defaults).
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    /// The websocket upgrade failed.
    #[error("websocket handshake: {0}")]
    Websocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// Dials `url` (`ws://` or `wss://`) and upgrades to a websocket; the URL goes out verbatim in
/// the request line and Host header, as the plugin's gorilla dial sends it.
pub async fn connect_websocket(url: &str) -> Result<Ws, ConnectError> {
    let bad = |why| ConnectError::BadUrl {
        url: url.to_owned(),
        why,
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    // gorilla maps ws to http and wss to https and refuses any other scheme (§8.4).
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad("the scheme must be ws or wss")),
    };
    let host = uri
        .host()
        .map(unbracket)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let stream = connect(host, port, tls).await?;
    let (ws, _response) = tokio_tungstenite::client_async(url, stream).await?;
    Ok(ws)
}

/// A TCP connection to `host:port`, with TLS on top when `tls` is set (the server name is
/// `host`, a DNS name or an IP address).
pub async fn connect(host: &str, port: u16, tls: bool) -> Result<Connection, ConnectError> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|source| ConnectError::Tcp {
            host: host.to_owned(),
            port,
            source,
        })?;
    // Go sets TCP_NODELAY on every connection; keystrokes should not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(host.to_owned()).map_err(|_| ConnectError::BadUrl {
        url: host.to_owned(),
        why: "not a valid TLS server name",
    })?;
    let connector = TlsConnector::from(client_config()?);
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|source| handshake_error(host, source))?;
    Ok(Box::new(stream))
}

/// `::1` for the `[::1]` of a URL.
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Names a refused certificate as such, with what to do about it.
fn handshake_error(host: &str, source: std::io::Error) -> ConnectError {
    let refused = source
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(certificate) => Some(certificate),
            _ => None,
        });
    let Some(certificate) = refused else {
        return ConnectError::Tls {
            host: host.to_owned(),
            source,
        };
    };
    let hint = match certificate {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            WRONG_NAME_HINT
        }
        _ => UNTRUSTED_HINT,
    };
    ConnectError::Untrusted {
        host: host.to_owned(),
        reason: certificate.to_string(),
        hint,
    }
}

/// The TLS client configuration, built on first use from the process's environment; warnings
/// about the files it names go to stderr once.
fn client_config() -> Result<Arc<ClientConfig>, ConnectError> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let (roots, warnings) = trusted_roots(&|name| std::env::var_os(name));
    for warning in warnings {
        eprintln!("ssm-session: {warning}");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Both the API and the websocket upgrade speak HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// The trust store described in the module documentation, read with `env`; the second value
/// lists what was wrong with the files the variables name (a system file that does not exist is
/// not worth a word).
pub fn trusted_roots(env: &dyn Fn(&str) -> Option<OsString>) -> (RootCertStore, Vec<String>) {
    let mut roots = RootCertStore::empty();
    let mut warnings = Vec::new();

    let system = SYSTEM_BUNDLES
        .iter()
        .find_map(|path| std::fs::read(path).ok());
    match system {
        Some(pem) => {
            add_pem(&mut roots, &pem);
        }
        None => {
            for dir in SYSTEM_DIRS {
                add_dir(&mut roots, Path::new(dir));
            }
        }
    }

    for variable in [CA_BUNDLE_ENV, CERT_FILE_ENV] {
        let Some(path) = env(variable).filter(|v| !v.is_empty()) else {
            continue;
        };
        let path = PathBuf::from(path);
        match std::fs::read(&path) {
            Ok(pem) if add_pem(&mut roots, &pem) > 0 => {}
            Ok(_) => warnings.push(format!(
                "ignoring {variable}={}: no certificate in it",
                path.display()
            )),
            Err(e) => warnings.push(format!("ignoring {variable}={}: {e}", path.display())),
        }
    }
    if let Some(dirs) = env(CERT_DIR_ENV) {
        for dir in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
            add_dir(&mut roots, &dir);
        }
    }
    (roots, warnings)
}

/// Adds the certificates of every readable file in `dir`; returns how many were added.
fn add_dir(roots: &mut RootCertStore, dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .map(|pem| add_pem(roots, &pem))
        .sum()
}

/// Adds the certificates of a PEM bundle (other PEM sections and unparsable certificates are
/// skipped, as Go's `AppendCertsFromPEM` skips them); returns how many were added.
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> usize {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn both_variables_add_to_the_system_roots() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
        std::fs::write(&a, ca_pem()).unwrap();
        std::fs::write(&b, format!("{}{}", ca_pem(), ca_pem())).unwrap();
        let (system, _) = trusted_roots(&|_| None);
        let (roots, warnings) = trusted_roots(&|name| match name {
            CA_BUNDLE_ENV => Some(a.clone().into()),
            CERT_FILE_ENV => Some(b.clone().into()),
            _ => None,
        });
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(roots.len(), system.len() + 3);
    }

    #[test]
    fn a_bad_file_is_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let (_, warnings) = trusted_roots(&|name| match name {
            CA_BUNDLE_ENV => Some(empty.clone().into()),
            CERT_FILE_ENV => Some(missing.clone().into()),
            _ => None,
        });
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("ignoring AWS_CA_BUNDLE="),
            "{warnings:?}"
        );
        assert!(
            warnings[0].ends_with("no certificate in it"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("ignoring SSL_CERT_FILE="),
            "{warnings:?}"
        );
    }

    #[test]
    fn cert_dirs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.pem"), ca_pem()).unwrap();
        std::fs::write(dir.path().join("two.crt"), ca_pem()).unwrap();
        let (system, _) = trusted_roots(&|_| None);
        let (roots, _) = trusted_roots(&|name| {
            (name == CERT_DIR_ENV).then(|| dir.path().as_os_str().to_owned())
        });
        assert_eq!(roots.len(), system.len() + 2);
    }

    #[tokio::test]
    async fn websocket_urls_need_a_ws_scheme_and_a_host() {
        for url in ["http://127.0.0.1:1/x", "wss:///x", "not a url"] {
            let error = connect_websocket(url).await.err().expect(url);
            assert!(
                matches!(error, ConnectError::BadUrl { .. }),
                "{url}: {error}"
            );
        }
        assert_eq!(unbracket("[::1]"), "::1");
    }
}

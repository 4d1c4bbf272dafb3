//! `ssm-session` over TLS: the real binary against a fake service on a TLS port, whose
//! certificate is signed by a CA made for the test (rcgen), as ssm-emulator's `--tls-listen`
//! makes one (spec §8.2–§8.4).
//!
//! The child's environment names the CA through `AWS_CA_BUNDLE` or `SSL_CERT_FILE`, or through
//! neither: the variables are always set or removed explicitly, since the machine running the
//! tests may set them globally. Every wait is bounded; nothing sleeps for time to pass.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{any, post};
use axum::serve::Listener;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use ssm_protocol::payload::OpenDataChannelInput;
use ssm_protocol::{Message, MessageType, PayloadType, Validation};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use common::{Client, output, send, ssm_session};

const SESSION: &str = "sess-0123456789abcdef0";
const WAIT: Duration = Duration::from_secs(30);

/// The environment variables that name CA files; each test sets one or none of them.
const CA_VARIABLES: [&str; 3] = ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// A CA written to a PEM file, and a server configuration whose certificate (for `127.0.0.1`
/// and `localhost`) it signed.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    server: Arc<ServerConfig>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        Pki {
            _dir: dir,
            ca_file,
            server: Arc::new(server),
        }
    }
}

/// A listener that hands axum connections after their TLS handshake; failed handshakes are
/// counted and dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    failed: Arc<AtomicU64>,
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, peer),
                Err(_) => {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

#[derive(Clone)]
struct FakeState {
    sockets: mpsc::UnboundedSender<WebSocket>,
    calls: mpsc::UnboundedSender<(String, String)>,
    resume_token: String,
}

/// The fake service: data-channel websockets and the JSON API on one TLS port.
struct Fake {
    addr: SocketAddr,
    sockets: mpsc::UnboundedReceiver<WebSocket>,
    calls: mpsc::UnboundedReceiver<(String, String)>,
    failed_handshakes: Arc<AtomicU64>,
}

impl Fake {
    async fn start(pki: &Pki, resume_token: &str) -> Fake {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let failed_handshakes = Arc::new(AtomicU64::new(0));
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(pki.server.clone()),
            failed: failed_handshakes.clone(),
        };
        let (sockets_tx, sockets) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let state = FakeState {
            sockets: sockets_tx,
            calls: calls_tx,
            resume_token: resume_token.to_owned(),
        };
        let app = Router::new()
            .route("/v1/data-channel/{id}", any(data_channel))
            .route("/", post(api))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            addr,
            sockets,
            calls,
            failed_handshakes,
        }
    }

    async fn accept(&mut self) -> WebSocket {
        tokio::time::timeout(WAIT, self.sockets.recv())
            .await
            .expect("ssm-session dials the wss:// StreamUrl")
            .unwrap()
    }

    /// The next API call: (X-Amz-Target, body).
    async fn api_call(&mut self) -> (String, String) {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("ssm-session calls the https:// API")
            .unwrap()
    }
}

async fn data_channel(ws: WebSocketUpgrade, State(state): State<FakeState>) -> impl IntoResponse {
    ws.on_upgrade(move |socket| async move {
        let _ = state.sockets.send(socket);
    })
}

async fn api(State(state): State<FakeState>, headers: HeaderMap, body: String) -> String {
    let target = headers
        .get("x-amz-target")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let _ = state.calls.send((target, body));
    serde_json::json!({"SessionId": SESSION, "TokenValue": state.resume_token}).to_string()
}

/// Which variable names the test's CA for the child.
#[derive(Clone, Copy, Debug)]
enum Trust {
    AwsCaBundle,
    SslCertFile,
    Nothing,
}

impl Client {
    fn start(addr: SocketAddr, ca_file: &Path, trust: Trust) -> Client {
        let response = serde_json::json!({
            "SessionId": SESSION,
            "TokenValue": "tok-0",
            "StreamUrl": format!("wss://{addr}/v1/data-channel/{SESSION}?role=publish_subscribe"),
        });
        let mut command = ssm_session(
            &response.to_string(),
            "{\"Target\": \"i-0123456789abcdef0\"}",
            &format!("https://{addr}"),
        );
        for variable in CA_VARIABLES {
            command.env_remove(variable);
        }
        match trust {
            Trust::AwsCaBundle => command.env("AWS_CA_BUNDLE", ca_file),
            Trust::SslCertFile => command.env("SSL_CERT_FILE", ca_file),
            Trust::Nothing => &mut command,
        };
        Client::spawn(&mut command, WAIT)
    }
}

/// Reads up to the open frame (skipping the keepalive ping) and returns it.
async fn open(ws: &mut WebSocket) -> OpenDataChannelInput {
    loop {
        let next = tokio::time::timeout(WAIT, ws.recv())
            .await
            .expect("ssm-session sends its open frame");
        match next {
            Some(Ok(WsMessage::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            other => panic!("expected the open frame, got {other:?}"),
        }
    }
}

fn channel_closed() -> Vec<u8> {
    common::channel_closed(SESSION, "")
}

/// The next data-channel message from the client, skipping pings.
async fn frame(ws: &mut WebSocket) -> Message {
    loop {
        let next = tokio::time::timeout(WAIT, ws.recv())
            .await
            .expect("ssm-session sends a frame");
        match next {
            Some(Ok(WsMessage::Binary(bytes))) => {
                return Message::decode(&bytes, Validation::Structure).unwrap();
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// A shell session over wss: the open frame arrives over TLS, the output is printed and acked,
/// and channel_closed ends it with the exit line and status 0.
async fn shell_over_wss(trust: Trust) {
    let pki = Pki::new();
    let mut fake = Fake::start(&pki, "").await;
    let client = Client::start(fake.addr, &pki.ca_file, trust);
    let mut ws = fake.accept().await;
    assert_eq!(open(&mut ws).await.token_value, "tok-0");
    send(&mut ws, output(0, PayloadType::Output, b"tls-42\r\n$ ")).await;
    assert_eq!(frame(&mut ws).await.message_type, MessageType::Acknowledge);
    client.wait_stdout("tls-42\r\n$ ").await;
    send(&mut ws, channel_closed()).await;
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0, "{stdout:?}");
    assert_eq!(
        stdout,
        format!(
            "\nStarting session with SessionId: {SESSION}\ntls-42\r\n$ \
             \n\nExiting session with sessionId: {SESSION}.\n\n"
        )
    );
}

#[tokio::test]
async fn shell_over_wss_trusting_aws_ca_bundle() {
    shell_over_wss(Trust::AwsCaBundle).await;
}

#[tokio::test]
async fn shell_over_wss_trusting_ssl_cert_file() {
    shell_over_wss(Trust::SslCertFile).await;
}

/// A dropped socket: ResumeSession goes to the `https://` endpoint, and the `wss://` StreamUrl
/// is dialed again with the new token (§8.3).
#[tokio::test]
async fn resume_session_over_https() {
    let pki = Pki::new();
    let mut fake = Fake::start(&pki, "tok-resumed").await;
    let client = Client::start(fake.addr, &pki.ca_file, Trust::AwsCaBundle);
    let mut ws = fake.accept().await;
    open(&mut ws).await;
    drop(ws);

    let (target, body) = fake.api_call().await;
    assert_eq!(target, "AmazonSSM.ResumeSession");
    assert_eq!(body, format!("{{\"SessionId\":\"{SESSION}\"}}"));
    let mut ws = fake.accept().await;
    assert_eq!(open(&mut ws).await.token_value, "tok-resumed");

    send(&mut ws, channel_closed()).await;
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0, "{stdout:?}");
}

/// Ctrl-C in a basic-mode port session with an agent of 2.3.722.0 or older: TerminateSession
/// goes to the `https://` endpoint (§6.4, §8.2).
#[tokio::test]
async fn terminate_session_over_https() {
    let pki = Pki::new();
    let mut fake = Fake::start(&pki, "").await;
    let client = Client::start(fake.addr, &pki.ca_file, Trust::SslCertFile);
    let mut ws = fake.accept().await;
    open(&mut ws).await;
    let request = "{\"AgentVersion\": \"2.3.0.0\", \"RequestedClientActions\": [{\"ActionType\": \
                   \"SessionType\", \"ActionParameters\": {\"SessionType\": \"Port\", \"Properties\": \
                   {\"portNumber\": \"80\", \"type\": \"LocalPortForwarding\", \"localPortNumber\": \
                   \"0\"}}}]}";
    send(
        &mut ws,
        output(0, PayloadType::HandshakeRequest, request.as_bytes()),
    )
    .await;
    let complete = b"{\"HandshakeTimeToComplete\": 1000000000, \"CustomerMessage\": \"\"}";
    send(&mut ws, output(1, PayloadType::HandshakeComplete, complete)).await;
    client
        .wait_stdout(&format!("opened for sessionId {SESSION}.\n"))
        .await;

    let pid = rustix::process::Pid::from_child(&client.child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let (target, body) = fake.api_call().await;
    assert_eq!(target, "AmazonSSM.TerminateSession");
    assert_eq!(body, format!("{{\"SessionId\":\"{SESSION}\"}}"));
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0, "{stdout:?}");
    assert!(
        stdout.ends_with(&format!(
            "Terminate signal received, exiting.\n\n\nExiting session with sessionId: {SESSION}.\n\n"
        )),
        "{stdout:?}"
    );
}

/// Without the CA the handshake is refused, and the user is told which variable to set.
#[tokio::test]
async fn an_untrusted_certificate_says_what_to_set() {
    let pki = Pki::new();
    let fake = Fake::start(&pki, "").await;
    let client = Client::start(fake.addr, &pki.ca_file, Trust::Nothing);
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 1, "{stdout:?}");
    let expected = format!(
        "\nStarting session with SessionId: {SESSION}\n\
         Cannot perform start session: dialing wss://{addr}/v1/data-channel/{SESSION}\
         ?role=publish_subscribe: the TLS certificate of 127.0.0.1 is not trusted \
         (UnknownIssuer): set AWS_CA_BUNDLE (or SSL_CERT_FILE) to a \
         PEM file holding the CA that signed it (for ssm-emulator: the file written by \
         --tls-ca-out)\n",
        addr = fake.addr
    );
    assert_eq!(stdout, expected);
    // It tried the TLS handshake (and retried it, as the plugin retries a first dial).
    assert!(fake.failed_handshakes.load(Ordering::SeqCst) >= 1);
}

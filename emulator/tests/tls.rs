//! The TLS listener in process: it serves on 127.0.0.1:0 with a freshly made CA; a rustls client
//! that trusts only that CA (read back from the PEM file the binary would write) makes an SSM
//! API call over https and opens a control channel over wss.
//!
//! Run with `cargo test -p ssm-emulator --test tls`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use ssm_emulator::tls::{TlsIdentity, run_tls};
use support::TestEmu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message as Ws;

const A: &str = "i-0123456789abcdef0";

/// A hang guard, never a timing assertion.
const HANG: Duration = Duration::from_secs(20);

/// Serves `t` over TLS; returns the address and the PEM file of the CA.
async fn serve_tls(t: &TestEmu, dir: &std::path::Path) -> (SocketAddr, std::path::PathBuf) {
    let identity = TlsIdentity::generate(&["emulator.test".to_owned()]).unwrap();
    let ca = dir.join("ca.pem");
    identity.write_ca(&ca).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let emu = t.emu.clone();
    tokio::spawn(async move { run_tls(listener, &identity, emu, std::future::pending()).await });
    (addr, ca)
}

/// A rustls client configuration that trusts only the CA in `ca`.
fn trusting(ca: &std::path::Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to `addr` as `name`, trusting only the CA in `ca`.
async fn connect(addr: SocketAddr, ca: &std::path::Path, name: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(HANG, TlsConnector::from(trusting(ca)).connect(name, tcp))
        .await
        .unwrap()
        .unwrap()
}

/// Writes `request` and reads the whole answer (the request asks the server to close).
async fn exchange(stream: &mut TlsStream<TcpStream>, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A peer that closes without close_notify is an error to rustls; the bytes are all there.
    let _ = tokio::time::timeout(HANG, stream.read_to_end(&mut raw))
        .await
        .unwrap();
    String::from_utf8(raw).unwrap()
}

/// `AmazonSSM.<op>` over an HTTP/1.1 connection on `stream`.
async fn call(
    mut stream: TlsStream<TcpStream>,
    host: &str,
    op: &str,
    body: &Value,
) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AmazonSSM.{op}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let text = exchange(&mut stream, &request).await;
    let (head, body) = text.split_once("\r\n\r\n").expect("no header end");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn the_api_answers_over_https_with_the_generated_ca() {
    let t = TestEmu::new();
    let dir = tempdir();
    let (addr, ca) = serve_tls(&t, &dir).await;
    t.report(A).await;

    for name in ["localhost", "127.0.0.1", "emulator.test"] {
        let stream = connect(addr, &ca, name).await;
        let (status, body) = call(
            stream,
            &addr.to_string(),
            "GetConnectionStatus",
            &json!({"Target": A}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"Target": A, "Status": "connected"}));
    }
}

#[tokio::test]
async fn a_control_channel_opens_over_wss() {
    let t = TestEmu::new();
    let dir = tempdir();
    let (addr, ca) = serve_tls(&t, &dir).await;
    t.report(A).await;

    // CreateControlChannel over https, as the agent calls it.
    let mut stream = connect(addr, &ca, "127.0.0.1").await;
    let body =
        r#"{"MessageSchemaVersion":"1.0","RequestId":"5fe8a01b-21a7-4fe2-9740-a1c415315207"}"#;
    let request = format!(
        "POST /v1/control-channel/{A} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let text = exchange(&mut stream, &request).await;
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let token = text
        .split("<TokenValue>")
        .nth(1)
        .and_then(|rest| rest.split("</TokenValue>").next())
        .unwrap()
        .to_owned();

    // The websocket over a TLS stream (wss).
    let stream = connect(addr, &ca, "127.0.0.1").await;
    let url = format!("wss://{addr}/v1/control-channel/{A}?role=subscribe&stream=input");
    let (mut ws, response) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(response.status().as_u16(), 101);
    let open = json!({"Cookie": null, "MessageSchemaVersion": "1.0",
        "RequestId": "7b0c3e98-a2c3-4b43-850c-406367b226d4", "TokenValue": token,
        "AgentVersion": "3.3.1142.0", "PlatformType": "linux"});
    ws.send(Ws::Text(open.to_string().into())).await.unwrap();
    let scope = t.emu.scope("us-east-1");
    tokio::time::timeout(HANG, async {
        while !t.emu.control_channel_open(&scope, A) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the control channel never opened");

    // A ping crosses the TLS websocket and comes back as a pong.
    ws.send(Ws::Ping(b"keepalive".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(HANG, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Ws::Pong(b"keepalive".to_vec().into()));
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let t = TestEmu::new();
    let dir = tempdir();
    let (addr, _) = serve_tls(&t, &dir).await;
    let other = TlsIdentity::generate(&[]).unwrap();
    let other_ca = dir.join("other.pem");
    other.write_ca(&other_ca).unwrap();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let result = TlsConnector::from(trusting(&other_ca))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("invalid peer certificate"), "{error}");
}

/// A fresh directory for one test's CA files.
fn tempdir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ssm-emulator-tls-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

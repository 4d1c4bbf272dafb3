//! The real `ssm-session` binary against a fake service that plays MGS and the agent the way the
//! recorded plugin traces show (`shared/spec/traces/plugin-shell*.jsonl`, `plugin-resume.jsonl`).
//!
//! Every wait is bounded; nothing sleeps for time to pass.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{any, post};
use ssm_protocol::payload::{Acknowledge, OpenDataChannelInput};
use ssm_protocol::{Message, MessageType, PayloadType, Validation};
use tokio::sync::mpsc;
use uuid::Uuid;

use common::{Client, ack, output, send, ssm_session_at, stream_url};

const SESSION: &str = "sess-76898a33130340f09";
const WAIT: Duration = Duration::from_secs(15);

/// One API call the fake received.
#[derive(Clone, Debug)]
struct ApiCall {
    target: String,
    authorization: String,
    content_type: String,
    body: String,
}

#[derive(Clone)]
struct FakeState {
    sockets: mpsc::UnboundedSender<WebSocket>,
    calls: mpsc::UnboundedSender<ApiCall>,
    /// TokenValues for successive ResumeSession answers.
    resume_tokens: Arc<Mutex<VecDeque<String>>>,
    stream_url: String,
}

/// The fake service: data-channel websockets and the JSON API on one port.
struct Fake {
    addr: SocketAddr,
    sockets: mpsc::UnboundedReceiver<WebSocket>,
    calls: mpsc::UnboundedReceiver<ApiCall>,
    resume_tokens: Arc<Mutex<VecDeque<String>>>,
}

impl Fake {
    async fn start() -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sockets_tx, sockets) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let resume_tokens = Arc::new(Mutex::new(VecDeque::new()));
        let state = FakeState {
            sockets: sockets_tx,
            calls: calls_tx,
            resume_tokens: resume_tokens.clone(),
            stream_url: stream_url(addr, SESSION),
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
            resume_tokens,
        }
    }

    async fn accept(&mut self) -> WebSocket {
        tokio::time::timeout(WAIT, self.sockets.recv())
            .await
            .expect("ssm-session dials the StreamUrl")
            .unwrap()
    }

    async fn api_call(&mut self) -> ApiCall {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("ssm-session calls the API")
            .unwrap()
    }
}

async fn data_channel(ws: WebSocketUpgrade, State(state): State<FakeState>) -> impl IntoResponse {
    ws.on_upgrade(move |socket| async move {
        let _ = state.sockets.send(socket);
    })
}

async fn api(State(state): State<FakeState>, headers: HeaderMap, body: String) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let call = ApiCall {
        target: header("x-amz-target"),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body,
    };
    let target = call.target.clone();
    let _ = state.calls.send(call);
    let token = if target == "AmazonSSM.ResumeSession" {
        state
            .resume_tokens
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_default()
    } else {
        String::new()
    };
    serde_json::json!({"SessionId": SESSION, "TokenValue": token, "StreamUrl": state.stream_url})
        .to_string()
}

impl Client {
    /// Starts the 6-argument form with the response in AWS_SSM_START_SESSION_RESPONSE, as the
    /// AWS CLI does (trace `plugin_argv`).
    fn start(addr: SocketAddr, token: &str) -> Client {
        let target = "{\"Target\": \"i-0123456789abcdef0\"}";
        Client::spawn(&mut ssm_session_at(addr, SESSION, token, target), WAIT)
    }
}

/// What the fake reads from the client: the open frame, pings, or a data-channel message.
#[derive(Debug)]
enum Received {
    Open(String),
    Ping(Vec<u8>),
    Frame(Message),
    Gone,
}

async fn receive(ws: &mut WebSocket) -> Received {
    loop {
        let next = tokio::time::timeout(WAIT, ws.recv())
            .await
            .expect("ssm-session sends something");
        return match next {
            Some(Ok(WsMessage::Text(text))) => {
                let text = text.as_str().to_owned();
                match Message::decode(text.as_bytes(), Validation::Structure) {
                    Ok(message) => Received::Frame(message),
                    Err(_) => Received::Open(text),
                }
            }
            Some(Ok(WsMessage::Binary(bytes))) => {
                Received::Frame(Message::decode(&bytes, Validation::Structure).unwrap())
            }
            Some(Ok(WsMessage::Ping(data))) => Received::Ping(data.to_vec()),
            Some(Ok(WsMessage::Pong(_))) => continue,
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => Received::Gone,
        };
    }
}

/// The next data-channel message, skipping keepalive pings.
async fn frame(ws: &mut WebSocket) -> Message {
    loop {
        match receive(ws).await {
            Received::Frame(message) => return message,
            Received::Ping(_) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Reads the open frame and the keepalive ping (in either order, §2 item 4) and checks the
/// frame's exact shape; returns it.
async fn open(ws: &mut WebSocket, token: &str) -> OpenDataChannelInput {
    let mut open = None;
    let mut pinged = false;
    while open.is_none() || !pinged {
        match receive(ws).await {
            Received::Open(text) => open = Some(text),
            Received::Ping(data) => {
                assert_eq!(data, b"keepalive");
                pinged = true;
            }
            other => panic!("expected the open frame and a ping, got {other:?}"),
        }
    }
    let raw = open.unwrap();
    let parsed: OpenDataChannelInput = serde_json::from_str(&raw).unwrap();
    let expected = format!(
        "{{\"MessageSchemaVersion\":\"1.0\",\"RequestId\":\"{}\",\"TokenValue\":\"{token}\",\
         \"ClientId\":\"{}\",\"ClientVersion\":\"1.2.800.0\"}}",
        parsed.request_id, parsed.client_id
    );
    assert_eq!(raw, expected, "field order and values of the open frame");
    Uuid::parse_str(&parsed.request_id).unwrap();
    Uuid::parse_str(&parsed.client_id).unwrap();
    parsed
}

fn channel_closed(output: &str) -> Vec<u8> {
    common::channel_closed(SESSION, output)
}

fn assert_ack_of(message: &Message, seq: i64, sent: &[u8]) {
    assert_eq!(message.message_type, MessageType::Acknowledge);
    let acked: Acknowledge = serde_json::from_slice(&message.payload).unwrap();
    let original = Message::decode(sent, Validation::Structure).unwrap();
    assert_eq!(acked.sequence_number, seq);
    assert_eq!(acked.message_type, "output_stream_data");
    assert_eq!(acked.message_id, original.message_id.to_string());
    assert!(acked.is_sequential_message);
}

fn assert_input(message: &Message, seq: i64, payload_type: PayloadType, payload: &[u8]) {
    assert_eq!(message.message_type, MessageType::InputStreamData);
    assert_eq!(message.sequence_number, seq, "{message:?}");
    assert_eq!(message.payload_type, payload_type, "{message:?}");
    assert_eq!(
        String::from_utf8_lossy(&message.payload),
        String::from_utf8_lossy(payload)
    );
}

/// Trace steps up to the first Size: open frame, prompt as output seq 0, our ack, then Size
/// `{"cols":300,"rows":100}` as input seq 0 (stdout is a pipe), which the fake acks.
async fn start_shell(ws: &mut WebSocket, token: &str) -> OpenDataChannelInput {
    let opened = open(ws, token).await;
    let prompt = output(0, PayloadType::Output, b"sh-4.2$ ");
    send(ws, prompt.clone()).await;
    assert_ack_of(&frame(ws).await, 0, &prompt);
    let size = frame(ws).await;
    assert_input(&size, 0, PayloadType::Size, b"{\"cols\":300,\"rows\":100}");
    send(ws, ack(&size)).await;
    opened
}

#[tokio::test]
async fn shell_session_like_the_plugin_trace() {
    let mut fake = Fake::start().await;
    let mut client = Client::start(fake.addr, "tok-340f09-0");
    let mut ws = fake.accept().await;
    start_shell(&mut ws, "tok-340f09-0").await;
    client
        .wait_stdout(&format!(
            "\nStarting session with SessionId: {SESSION}\nsh-4.2$ "
        ))
        .await;

    client.type_in(b"echo hi\n");
    let input = frame(&mut ws).await;
    assert_input(&input, 1, PayloadType::Output, b"echo hi\n");
    send(&mut ws, ack(&input)).await;
    let result = output(1, PayloadType::Output, b"echo hi\r\nhi\r\nsh-4.2$ ");
    send(&mut ws, result.clone()).await;
    assert_ack_of(&frame(&mut ws).await, 1, &result);
    client.wait_stdout("echo hi\r\nhi\r\nsh-4.2$ ").await;

    send(&mut ws, channel_closed("")).await;
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert_eq!(
        stdout,
        format!(
            "\nStarting session with SessionId: {SESSION}\nsh-4.2$ echo hi\r\nhi\r\nsh-4.2$ \
             \n\nExiting session with sessionId: {SESSION}.\n\n"
        )
    );
}

#[tokio::test]
async fn exit_code_payload_sets_the_exit_status_and_channel_closed_output_is_printed() {
    let mut fake = Fake::start().await;
    let client = Client::start(fake.addr, "tok-0");
    let mut ws = fake.accept().await;
    start_shell(&mut ws, "tok-0").await;
    let code = output(1, PayloadType::ExitCode, b"EXIT_CODE: 3");
    send(&mut ws, code.clone()).await;
    assert_ack_of(&frame(&mut ws).await, 1, &code);
    send(&mut ws, channel_closed("bye")).await;
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 3);
    assert!(
        stdout.ends_with(&format!("EXIT_CODE: 3\n\nSessionId: {SESSION} : bye\n\n")),
        "{stdout:?}"
    );
}

#[tokio::test]
async fn lone_lf_becomes_cr_and_stdin_eof_ends_the_session() {
    let mut fake = Fake::start().await;
    let mut client = Client::start(fake.addr, "tok-e41ee8-0");
    let mut ws = fake.accept().await;
    start_shell(&mut ws, "tok-e41ee8-0").await;
    client.wait_stdout("sh-4.2$ ").await;
    client.type_in(b"\n");
    let input = frame(&mut ws).await;
    assert_input(&input, 1, PayloadType::Output, b"\r");
    send(&mut ws, ack(&input)).await;
    client.close_stdin();
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert!(
        stdout.ends_with("sh-4.2$ Cannot perform start session: EOF\n"),
        "{stdout:?}"
    );
    // Nothing else was sent: the plugin sends no message at stdin EOF (§6.2).
    assert!(matches!(receive(&mut ws).await, Received::Gone));
}

#[tokio::test]
async fn resumes_after_a_dropped_socket_then_times_out_on_an_empty_token() {
    let mut fake = Fake::start().await;
    let mut client = Client::start(fake.addr, "tok-74c10a-0");
    let mut ws = fake.accept().await;
    let first = start_shell(&mut ws, "tok-74c10a-0").await;

    // Input the service never acks; then the socket drops (trace drop#1).
    client.type_in(b"echo hi\n");
    let input = frame(&mut ws).await;
    assert_input(&input, 1, PayloadType::Output, b"echo hi\n");
    fake.resume_tokens
        .lock()
        .unwrap()
        .extend(["tok-resume-1".to_owned(), String::new()]);
    drop(ws);

    let call = fake.api_call().await;
    assert_eq!(call.target, "AmazonSSM.ResumeSession");
    assert_eq!(call.body, format!("{{\"SessionId\":\"{SESSION}\"}}"));
    assert_eq!(call.content_type, "application/x-amz-json-1.1");
    assert!(
        call.authorization
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && call.authorization.contains("/us-east-1/ssm/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target, Signature="),
        "{}",
        call.authorization
    );

    // Re-dial of the original StreamUrl with the new token and the same ClientId.
    let mut ws = fake.accept().await;
    let second = open(&mut ws, "tok-resume-1").await;
    assert_eq!(second.client_id, first.client_id);
    assert_ne!(second.request_id, first.request_id);

    // The unacked input is resent on the new connection; the agent's seq continues.
    let resent = frame(&mut ws).await;
    assert_input(&resent, 1, PayloadType::Output, b"echo hi\n");
    assert_eq!(resent.message_id, input.message_id, "resent verbatim");
    send(&mut ws, ack(&resent)).await;
    let result = output(1, PayloadType::Output, b"echo hi\r\nhi\r\nsh-4.2$ ");
    send(&mut ws, result.clone()).await;
    assert_ack_of(&frame(&mut ws).await, 1, &result);
    client.wait_stdout("echo hi\r\nhi\r\nsh-4.2$ ").await;

    // Drop#3 of the trace: ResumeSession answers with an empty token.
    drop(ws);
    let call = fake.api_call().await;
    assert_eq!(call.target, "AmazonSSM.ResumeSession");
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert!(
        stdout.ends_with(&format!("sh-4.2$ Session: {SESSION} timed out.\n")),
        "{stdout:?}"
    );
}

/// Runs `ssm-session` with `args` and no stdin; (status, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ssm-session"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn version_satisfies_the_aws_cli() {
    let (status, stdout, _) = run(&["--version"]);
    assert_eq!((status, stdout.as_str()), (0, "1.2.800.0\n"));
    // AWS CLI v1: `^\d+(\.\d+){0,3}$` and newer than 1.2.764.0 (no "outdated" warning).
    let parts: Vec<u32> = stdout
        .trim()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(parts.len(), 4);
    assert!(parts > vec![1, 2, 764, 0]);
}

#[test]
fn other_argv_forms() {
    assert_eq!(
        run(&[]),
        (
            0,
            "\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n\n"
                .to_owned(),
            String::new()
        )
    );
    assert_eq!(
        run(&["foo", "bar"]).1,
        "\nUnknown operation foo. \nUse session-manager-plugin --version to check the version.\n\n"
    );
    assert_eq!(
        run(&["{}", "us-east-1", "Other", "", "{}", "http://x"]).1,
        "Invalid Operation"
    );
    let (status, stdout, stderr) = run(&["--help"]);
    assert_eq!(status, 0);
    assert!(stdout.contains("EXIT STATUS"), "{stdout}");
    assert!(stderr.is_empty());

    // The plugin panics without a Target; we say so and exit 2.
    let response = r#"{"SessionId":"s","TokenValue":"t","StreamUrl":"ws://127.0.0.1:1/"}"#;
    let (status, stdout, stderr) = run(&[
        response,
        "us-east-1",
        "StartSession",
        "",
        "{\"DocumentName\": \"AWS-StartPortForwardingSession\"}",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(status, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("\"Target\""), "{stderr}");

    // A response without StreamUrl: the plugin dereferences nil; we exit 2 with the reason.
    let (status, _, stderr) = run(&[
        r#"{"SessionId":"s","TokenValue":"t"}"#,
        "us-east-1",
        "StartSession",
        "",
        "{\"Target\": \"i-1\"}",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(status, 2);
    assert!(stderr.contains("StreamUrl"), "{stderr}");
}

//! The real `ssm-session` binary in a NonInteractiveCommands session (§4.1–§4.3, §6.3) against a
//! fake data channel that plays the agent as `agent-noninteractive.jsonl` records it: the
//! handshake with `Properties` null, then Output, StdErr and ExitCode payloads. The plugin
//! prints every payload verbatim; ssm-session also exits with the ExitCode's number, where
//! session-manager-plugin would exit 0.
//!
//! Every wait is bounded; nothing sleeps for time to pass.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::Value;
use ssm_protocol::payload::{Acknowledge, ChannelClosed, to_json_bytes};
use ssm_protocol::{Flags, Message, MessageType, PayloadType, Validation};
use tokio::sync::mpsc;
use uuid::Uuid;

const SESSION: &str = "sess-0f1e2d3c4b5a69788";
const WAIT: Duration = Duration::from_secs(15);

/// The HandshakeRequest of agent-noninteractive.jsonl, byte for byte.
const HANDSHAKE_REQUEST: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"NonInteractiveCommands","Properties":null}}]}"#;
/// Its HandshakeComplete.
const HANDSHAKE_COMPLETE: &str = r#"{"HandshakeTimeToComplete":992030,"CustomerMessage":""}"#;

/// A fake data channel on a free port: each accepted websocket goes to the test.
async fn fake() -> (SocketAddr, mpsc::UnboundedReceiver<WebSocket>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, sockets) = mpsc::unbounded_channel::<WebSocket>();
    let app = Router::new()
        .route(
            "/v1/data-channel/{id}",
            any(
                |ws: WebSocketUpgrade, State(tx): State<mpsc::UnboundedSender<WebSocket>>| async move {
                    ws.on_upgrade(move |socket| async move {
                        let _ = tx.send(socket);
                    })
                    .into_response()
                },
            ),
        )
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sockets)
}

/// `ssm-session` in the AWS CLI's 6-argument form, stdout collected by a thread.
struct Client {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
}

impl Client {
    fn start(addr: SocketAddr) -> Client {
        let response = serde_json::json!({
            "SessionId": SESSION,
            "TokenValue": "tok-0",
            "StreamUrl": format!("ws://{addr}/v1/data-channel/{SESSION}?role=publish_subscribe"),
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssm-session"))
            .args([
                "AWS_SSM_START_SESSION_RESPONSE",
                "us-east-1",
                "StartSession",
                "",
                "{\"Target\": \"i-0123456789abcdef0\", \"DocumentName\": \"AWS-StartNonInteractiveCommand\"}",
                &format!("http://{addr}"),
            ])
            .env("AWS_SSM_START_SESSION_RESPONSE", response.to_string())
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secrettest")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Client { child, stdout }
    }

    /// Waits for the exit; returns (status, all of stdout).
    async fn exit(mut self) -> (i32, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread takes the last bytes once the pipe ends.
                let read_deadline = Instant::now() + WAIT;
                while Arc::strong_count(&self.stdout) > 1 && Instant::now() < read_deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let stdout = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
                return (status.code().expect("exited, not killed"), stdout);
            }
            assert!(Instant::now() < deadline, "ssm-session did not exit");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn next_id() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(
        0xc0de_0000_0000_4000_8000_0000_0000_0000
            | u128::from(NEXT.fetch_add(1, Ordering::Relaxed)),
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

/// `output_stream_data` as the agent writes it (SYN on seq 0, §1.6).
fn output(seq: i64, payload_type: PayloadType, payload: &[u8]) -> Message {
    let mut message = Message::new(MessageType::OutputStreamData, now_ms(), next_id());
    message.sequence_number = seq;
    message.flags = if seq == 0 { Flags::SYN } else { Flags::NONE };
    message.payload_type = payload_type;
    message.payload = payload.to_vec();
    message
}

fn ack(of: &Message) -> Vec<u8> {
    let mut message = Message::new(MessageType::Acknowledge, now_ms(), next_id());
    message.flags = Flags::ACK;
    message.payload = to_json_bytes(&Acknowledge {
        message_type: of.message_type.to_string(),
        message_id: of.message_id.to_string(),
        sequence_number: of.sequence_number,
        is_sequential_message: true,
    })
    .unwrap();
    message.encode()
}

fn channel_closed() -> Vec<u8> {
    let mut message = Message::new(MessageType::ChannelClosed, now_ms(), next_id());
    message.payload = to_json_bytes(&ChannelClosed::new(
        next_id().to_string(),
        now_ms().to_string(),
        "i-0123456789abcdef0".to_owned(),
        SESSION.to_owned(),
        String::new(),
    ))
    .unwrap();
    message.encode()
}

/// The agent end: sends output, and acks every `input_stream_data` it reads.
struct Agent {
    ws: WebSocket,
    /// `input_stream_data` received, in order.
    inputs: Vec<Message>,
}

impl Agent {
    async fn send(&mut self, frame: Vec<u8>) {
        self.ws.send(WsMessage::Binary(frame.into())).await.unwrap();
    }

    /// Sends `message` and reads until ssm-session acks it, acking its inputs meanwhile.
    async fn deliver(&mut self, message: Message) {
        self.send(message.encode()).await;
        self.read_until(|m| {
            m.message_type == MessageType::Acknowledge && {
                let acked: Acknowledge = serde_json::from_slice(&m.payload).unwrap();
                acked.message_id == message.message_id.to_string()
            }
        })
        .await;
    }

    /// Reads data-channel frames until `done` holds for one; text frames (the open frame) and
    /// pings are skipped, inputs are recorded and acked.
    async fn read_until(&mut self, done: impl Fn(&Message) -> bool) {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.recv())
                .await
                .expect("ssm-session sends something");
            let bytes = match next {
                Some(Ok(WsMessage::Binary(bytes))) => bytes.to_vec(),
                Some(Ok(WsMessage::Text(text))) => {
                    match Message::decode(text.as_bytes(), Validation::Structure) {
                        Ok(_) => text.as_bytes().to_vec(),
                        Err(_) => continue, // the open frame
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => panic!("ssm-session closed the data channel"),
            };
            let message = Message::decode(&bytes, Validation::Structure).unwrap();
            if message.message_type == MessageType::InputStreamData {
                let ack = ack(&message);
                self.send(ack).await;
                self.inputs.push(message.clone());
            }
            if done(&message) {
                return;
            }
        }
    }
}

/// The session of agent-noninteractive.jsonl up to HandshakeComplete: HandshakeRequest, the
/// client's HandshakeResponse as input seq 0, HandshakeComplete, and the Size that follows.
async fn handshake(sockets: &mut mpsc::UnboundedReceiver<WebSocket>) -> Agent {
    let ws = tokio::time::timeout(WAIT, sockets.recv())
        .await
        .expect("ssm-session dials the StreamUrl")
        .unwrap();
    let mut agent = Agent {
        ws,
        inputs: Vec::new(),
    };
    agent
        .deliver(output(
            0,
            PayloadType::HandshakeRequest,
            HANDSHAKE_REQUEST.as_bytes(),
        ))
        .await;
    agent
        .read_until(|m| m.payload_type == PayloadType::HandshakeResponse)
        .await;
    let response = &agent.inputs[0];
    assert_eq!(
        (response.sequence_number, response.payload_type),
        (0, PayloadType::HandshakeResponse)
    );
    let response: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(
        response["ProcessedClientActions"],
        serde_json::json!([{"ActionType": "SessionType", "ActionStatus": 1,
                            "ActionResult": null, "Error": ""}]),
        "{response}"
    );
    agent
        .deliver(output(
            1,
            PayloadType::HandshakeComplete,
            HANDSHAKE_COMPLETE.as_bytes(),
        ))
        .await;
    // The shell handler starts: Size 300x100 (stdout is a pipe, §6.1).
    agent
        .read_until(|m| m.payload_type == PayloadType::Size)
        .await;
    agent
}

/// Runs a session whose command wrote `out` and `err` and ended with `exit_code`; returns
/// ssm-session's exit status and stdout.
async fn session_with_exit_code(exit_code: &str) -> (i32, String) {
    let (addr, mut sockets) = fake().await;
    let client = Client::start(addr);
    let mut agent = handshake(&mut sockets).await;
    agent
        .deliver(output(2, PayloadType::Output, b"out\n"))
        .await;
    agent
        .deliver(output(3, PayloadType::StdErr, b"err\n"))
        .await;
    agent
        .deliver(output(4, PayloadType::ExitCode, exit_code.as_bytes()))
        .await;
    agent.send(channel_closed()).await;
    client.exit().await
}

/// StdErr (11) and ExitCode (12) are printed verbatim like Output, in order, with no separation
/// (§6.3); ssm-session then exits with the command's exit code (the plugin would exit 0).
#[tokio::test]
async fn stderr_and_exit_code_are_printed_and_the_code_is_the_exit_status() {
    let (status, stdout) = session_with_exit_code("EXIT_CODE: 3").await;
    assert_eq!(
        stdout,
        format!(
            "\nStarting session with SessionId: {SESSION}\nout\nerr\nEXIT_CODE: 3\
             \n\nExiting session with sessionId: {SESSION}.\n\n"
        )
    );
    assert_eq!(status, 3);
}

/// A command killed by a signal is reported as `EXIT_CODE: -1` (Go's `ExitCode()`); as an exit
/// status that is 255, what `exit(-1)` gives.
#[tokio::test]
async fn a_negative_exit_code_becomes_255() {
    let (status, stdout) = session_with_exit_code("EXIT_CODE: -1").await;
    assert!(
        stdout.contains("err\nEXIT_CODE: -1\n\nExiting"),
        "{stdout:?}"
    );
    assert_eq!(status, 255);
}

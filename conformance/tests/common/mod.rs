//! What the conformance tests share: the `ssm-session` child in the AWS CLI's 6-argument form
//! with its stdout collected by a thread, a fake data-channel endpoint, and the agent's frames
//! as the fakes write them. Every wait is bounded.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::any;
use ssm_protocol::payload::{Acknowledge, ChannelClosed, to_json_bytes};
use ssm_protocol::{Flags, Message, MessageType, PayloadType};
use tokio::sync::mpsc;
use uuid::Uuid;

/// The instance every fake session targets.
pub const INSTANCE: &str = "i-0123456789abcdef0";

/// `ssm-session` as the AWS CLI runs it: `response` is the StartSession response or the name
/// of the variable holding it, `parameters` the StartSession parameters, `endpoint` the API's;
/// test credentials, no session token. The caller adds the environment its test is about.
pub fn ssm_session(response: &str, parameters: &str, endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssm-session"));
    command
        .args([
            response,
            "us-east-1",
            "StartSession",
            "",
            parameters,
            endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secrettest")
        .env_remove("AWS_SESSION_TOKEN");
    command
}

/// The plain `ws://` StreamUrl of `session`'s data channel on a fake at `addr`.
pub fn stream_url(addr: SocketAddr, session: &str) -> String {
    format!("ws://{addr}/v1/data-channel/{session}?role=publish_subscribe")
}

/// [`ssm_session`] against a plain fake at `addr`, the StartSession response (`session`,
/// `token`, [`stream_url`]) in AWS_SSM_START_SESSION_RESPONSE as the AWS CLI passes it (trace
/// `plugin_argv`).
pub fn ssm_session_at(addr: SocketAddr, session: &str, token: &str, parameters: &str) -> Command {
    let response = serde_json::json!({
        "SessionId": session,
        "TokenValue": token,
        "StreamUrl": stream_url(addr, session),
    });
    let mut command = ssm_session(
        "AWS_SSM_START_SESSION_RESPONSE",
        parameters,
        &format!("http://{addr}"),
    );
    command.env("AWS_SSM_START_SESSION_RESPONSE", response.to_string());
    command
}

/// The `ssm-session` child, its stdout collected by a thread; killed when dropped.
pub struct Client {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    /// The bound of every wait on this child.
    wait: Duration,
}

impl Client {
    /// Spawns `command` with piped stdin and stdout (stderr inherited); waits are bounded by
    /// `wait`.
    pub fn spawn(command: &mut Command, wait: Duration) -> Client {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
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
        Client {
            child,
            stdin,
            stdout,
            wait,
        }
    }

    pub fn type_in(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub async fn wait_stdout(&self, needle: &str) {
        let deadline = Instant::now() + self.wait;
        while !self.stdout().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "stdout never showed {needle:?}: {:?}",
                self.stdout()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the exit and returns (status, all of stdout).
    pub async fn exit(self) -> (i32, String) {
        let (status, stdout) = self.exit_bytes().await;
        (status, String::from_utf8_lossy(&stdout).into_owned())
    }

    /// Waits for the exit and returns (status, all of stdout as bytes).
    pub async fn exit_bytes(mut self) -> (i32, Vec<u8>) {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread takes the last bytes once the pipe ends.
                let read_deadline = Instant::now() + self.wait;
                while Arc::strong_count(&self.stdout) > 1 && Instant::now() < read_deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let stdout = self.stdout.lock().unwrap().clone();
                return (status.code().expect("exited, not killed"), stdout);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ssm-session did not exit; stdout: {:?}", self.stdout());
            }
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

/// A fake data-channel endpoint on a free port: each accepted websocket goes to the test.
pub async fn fake_data_channel() -> (SocketAddr, mpsc::UnboundedReceiver<WebSocket>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, sockets) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/v1/data-channel/{id}", any(accept))
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sockets)
}

async fn accept(
    ws: WebSocketUpgrade,
    State(sockets): State<mpsc::UnboundedSender<WebSocket>>,
) -> impl IntoResponse {
    ws.on_upgrade(move |socket| async move {
        let _ = sockets.send(socket);
    })
}

/// MessageIds for the fakes' frames: distinct, not random.
pub fn next_id() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(
        0xfa4e_0000_0000_4000_8000_0000_0000_0000
            | u128::from(NEXT.fetch_add(1, Ordering::Relaxed)),
    )
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

/// `output_stream_data` as the agent writes it: SYN (Flags 1) on seq 0 (§1.6).
pub fn output_message(seq: i64, payload_type: PayloadType, payload: &[u8]) -> Message {
    let mut message = Message::new(MessageType::OutputStreamData, now_ms(), next_id());
    message.sequence_number = seq;
    message.flags = if seq == 0 { Flags::SYN } else { Flags::NONE };
    message.payload_type = payload_type;
    message.payload = payload.to_vec();
    message
}

/// [`output_message`], encoded.
pub fn output(seq: i64, payload_type: PayloadType, payload: &[u8]) -> Vec<u8> {
    output_message(seq, payload_type, payload).encode()
}

/// `channel_closed` for `session` with `output` (printed by the client), encoded.
pub fn channel_closed(session: &str, output: &str) -> Vec<u8> {
    let mut message = Message::new(MessageType::ChannelClosed, now_ms(), next_id());
    message.payload = to_json_bytes(&ChannelClosed::new(
        next_id().to_string(),
        now_ms().to_string(),
        INSTANCE.to_owned(),
        session.to_owned(),
        output.to_owned(),
    ))
    .unwrap();
    message.encode()
}

/// The `acknowledge` of `of`, as the agent writes it, encoded.
pub fn ack(of: &Message) -> Vec<u8> {
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

pub async fn send(ws: &mut WebSocket, frame: Vec<u8>) {
    ws.send(WsMessage::Binary(frame.into())).await.unwrap();
}

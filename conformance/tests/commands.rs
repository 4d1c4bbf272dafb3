//! The real `ssm-session` binary in a NonInteractiveCommands session (§4.1–§4.3, §6.3) against a
//! fake data channel that plays the agent as `agent-noninteractive.jsonl` records it: the
//! handshake with `Properties` null, then Output, StdErr and ExitCode payloads. The plugin
//! prints every payload verbatim; ssm-session also exits with the ExitCode's number, where
//! session-manager-plugin would exit 0.
//!
//! Every wait is bounded; nothing sleeps for time to pass.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use serde_json::Value;
use ssm_protocol::payload::Acknowledge;
use ssm_protocol::{Message, MessageType, PayloadType, Validation};
use tokio::sync::mpsc;

use common::{Client, ack, fake_data_channel, output_message, ssm_session_at};

const SESSION: &str = "sess-0f1e2d3c4b5a69788";
const WAIT: Duration = Duration::from_secs(15);

/// The HandshakeRequest of agent-noninteractive.jsonl, byte for byte.
const HANDSHAKE_REQUEST: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"NonInteractiveCommands","Properties":null}}]}"#;
/// Its HandshakeComplete.
const HANDSHAKE_COMPLETE: &str = r#"{"HandshakeTimeToComplete":992030,"CustomerMessage":""}"#;

impl Client {
    fn start(addr: SocketAddr) -> Client {
        let parameters = "{\"Target\": \"i-0123456789abcdef0\", \"DocumentName\": \"AWS-StartNonInteractiveCommand\"}";
        Client::spawn(
            &mut ssm_session_at(addr, SESSION, "tok-0", parameters),
            WAIT,
        )
    }
}

fn channel_closed() -> Vec<u8> {
    common::channel_closed(SESSION, "")
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
        .deliver(output_message(
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
        .deliver(output_message(
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
    let (addr, mut sockets) = fake_data_channel().await;
    let client = Client::start(addr);
    let mut agent = handshake(&mut sockets).await;
    agent
        .deliver(output_message(2, PayloadType::Output, b"out\n"))
        .await;
    agent
        .deliver(output_message(3, PayloadType::StdErr, b"err\n"))
        .await;
    agent
        .deliver(output_message(
            4,
            PayloadType::ExitCode,
            exit_code.as_bytes(),
        ))
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

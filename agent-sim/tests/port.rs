//! Port sessions (§7) against a fake MGS that also plays the client end of the data channel with
//! a client-role `ReliableStream`, checked against the real agent's traffic
//! (`shared/spec/traces/agent-port.jsonl`) and the smux bytes of `plugin-port_mux.jsonl`.
//!
//! Destinations are real TCP servers on 127.0.0.1. Waits are bounded ([`WAIT`]).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Harness, INSTANCE, task_complete, text};
use serde_json::{Value, json};
use ssm_protocol::payload::{
    ActionType, Flag, HandshakeResponse, ProcessedClientAction, to_json_bytes,
};
use ssm_protocol::smux::{Command, Decoder, Frame};
use ssm_protocol::{Flags, Message, MessageType, PayloadType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The second `interactive_shell` payload of agent-port.jsonl, verbatim (string parameters).
const INTERACTIVE_SHELL: &str = r#"{"Content": "{\"DocumentName\": \"AWS-StartPortForwardingSession\", \"SessionId\": \"sess-port-0008\", \"RunAsUser\": \"\", \"SessionOwner\": \"arn:aws:iam::123456789012:user/admin\", \"Parameters\": {\"portNumber\": \"8090\", \"localPortNumber\": \"0\"}, \"DocumentContent\": {\"schemaVersion\": \"1.0\", \"description\": \"Port forwarding\", \"sessionType\": \"Port\", \"inputs\": {\"s3BucketName\": \"\", \"s3KeyPrefix\": \"\", \"s3EncryptionEnabled\": false, \"cloudWatchLogGroupName\": \"\", \"cloudWatchStreamingEnabled\": false, \"cloudWatchEncryptionEnabled\": false, \"kmsKeyId\": \"\", \"runAsEnabled\": false, \"runAsDefaultUser\": \"\", \"shellProfile\": {\"windows\": \"\", \"linux\": \"\"}}, \"parameters\": {\"portNumber\": {\"type\": \"String\", \"description\": \"port\"}, \"localPortNumber\": {\"type\": \"String\", \"default\": \"0\"}}, \"properties\": {\"portNumber\": \"{{ portNumber }}\", \"type\": \"LocalPortForwarding\", \"localPortNumber\": \"{{ localPortNumber }}\"}}}", "TaskId": "sess-port-0008", "Topic": "aws.ssm.startSession", "SchemaVersion": 1}"#;

/// The HandshakeRequest of agent-port.jsonl for the payload above, byte for byte.
const HANDSHAKE_REQUEST: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"0","portNumber":"8090","type":"LocalPortForwarding"}}}]}"#;

/// The HandshakeRequest of agent-port.jsonl for list-valued parameters, byte for byte.
const HANDSHAKE_REQUEST_LISTS: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":["0"],"portNumber":["8090"],"type":"LocalPortForwarding"}}}]}"#;

/// The agent_task_complete Output of agent-port.jsonl for list-valued parameters.
const REMARSHAL_FAILED: &str = "Unable to remarshal session properties. json: cannot unmarshal array into Go struct field PortParameters.portNumber of type string";

/// The recorded payload with another session id, document, parameters and properties.
fn port_task(session: &str, document: &str, parameters: Value, properties: Value) -> String {
    let mut outer: Value = serde_json::from_str(INTERACTIVE_SHELL).unwrap();
    let mut content: Value = serde_json::from_str(outer["Content"].as_str().unwrap()).unwrap();
    content["SessionId"] = json!(session);
    content["DocumentName"] = json!(document);
    content["Parameters"] = parameters;
    content["DocumentContent"]["properties"] = properties;
    content["DocumentContent"]["parameters"]["host"] =
        json!({"type": "String", "default": "localhost"});
    outer["Content"] = json!(content.to_string());
    outer["TaskId"] = json!(session);
    outer.to_string()
}

/// AWS-StartPortForwardingSession's properties.
fn forwarding_properties() -> Value {
    json!({"portNumber": "{{ portNumber }}", "type": "LocalPortForwarding", "localPortNumber": "{{ localPortNumber }}"})
}

/// Starts a session and plays the client until the HandshakeRequest is delivered.
async fn start(h: &mut Harness, payload: &str) -> Message {
    h.to_control(MessageType::InteractiveShell, payload);
    h.pump_until("HandshakeRequest", |h| !h.delivered.is_empty())
        .await;
    let connected = &h.raw[0];
    assert_eq!(connected.message_type, MessageType::AgentSessionState);
    let request = h.delivered[0].clone();
    assert_eq!(request.message_type, MessageType::OutputStreamData);
    assert_eq!(
        (request.sequence_number, request.flags, request.payload_type),
        (0, Flags::SYN, PayloadType::HandshakeRequest)
    );
    request
}

/// Answers the handshake as session-manager-plugin `client_version` does and waits for
/// HandshakeComplete.
async fn handshake(h: &mut Harness, client_version: &str) {
    let response = HandshakeResponse {
        client_version: client_version.to_owned(),
        processed_client_actions: vec![ProcessedClientAction::success(ActionType::SessionType)],
        errors: None,
    };
    h.send(
        PayloadType::HandshakeResponse,
        to_json_bytes(&response).unwrap(),
    );
    h.pump_until("HandshakeComplete", |h| {
        h.delivered
            .iter()
            .any(|m| m.payload_type == PayloadType::HandshakeComplete)
    })
    .await;
}

/// Output payloads delivered to the client, concatenated.
fn output(h: &Harness) -> Vec<u8> {
    h.delivered
        .iter()
        .filter(|m| m.payload_type == PayloadType::Output)
        .flat_map(|m| m.payload.clone())
        .collect()
}

/// The agent's smux frames so far.
fn smux_frames(h: &Harness) -> Vec<Frame> {
    let mut decoder = Decoder::new();
    decoder.push(&output(h));
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame);
    }
    frames
}

fn smux_data(h: &Harness, sid: u32) -> Vec<u8> {
    smux_frames(h)
        .into_iter()
        .filter(|f| f.stream_id() == sid && f.cmd() == Command::Psh)
        .flat_map(Frame::into_data)
        .collect()
}

/// Waits for the end of the session: socket dropped and `count` agent_task_complete.
async fn until_complete(h: &mut Harness, count: usize) {
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && h.controls_of(&MessageType::AgentTaskComplete).len() >= count
    })
    .await;
}

/// Whether the agent sent `agent_session_state` Terminating.
fn terminated(h: &Harness) -> bool {
    h.controls_of(&MessageType::AgentSessionState)
        .iter()
        .any(|m| text(m).contains("Terminating"))
}

/// A TCP echo server on 127.0.0.1; counts its connections.
async fn echo_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = tcp.read(&mut buffer).await {
                    if n == 0 || tcp.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn flag(message: &Message) -> Flag {
    assert_eq!(message.payload_type, PayloadType::Flag);
    Flag::decode(&message.payload).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

/// agent-port.jsonl: HandshakeRequest byte for byte (seq 0, SYN, PayloadType 5, AgentVersion,
/// sorted properties); the ack of the HandshakeResponse goes out before HandshakeComplete
/// (seq 1, PayloadType 7); channel_closed ends the session Success without Terminating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_follows_the_real_agent() {
    let mut h = Harness::start().await;
    let request = start(&mut h, INTERACTIVE_SHELL).await;
    assert_eq!(text(&request), HANDSHAKE_REQUEST);
    handshake(&mut h, "1.2.677.0").await;

    let ack = h
        .raw
        .iter()
        .position(|m| {
            m.message_type == MessageType::Acknowledge
                && serde_json::from_slice::<Value>(&m.payload).unwrap()
                    ["AcknowledgedMessageSequenceNumber"]
                    == 0
                && serde_json::from_slice::<Value>(&m.payload).unwrap()["AcknowledgedMessageType"]
                    == "input_stream_data"
        })
        .expect("HandshakeResponse acked");
    let complete = h
        .raw
        .iter()
        .position(|m| m.payload_type == PayloadType::HandshakeComplete)
        .unwrap();
    assert!(ack < complete, "ack before HandshakeComplete: {:?}", h.raw);
    let complete = h.raw[complete].clone();
    assert_eq!((complete.sequence_number, complete.flags), (1, Flags::NONE));
    let payload: Value = serde_json::from_slice(&complete.payload).unwrap();
    assert!(payload["HandshakeTimeToComplete"].as_i64().unwrap() > 0);
    let expected = format!(
        r#"{{"HandshakeTimeToComplete":{},"CustomerMessage":""}}"#,
        payload["HandshakeTimeToComplete"]
    );
    assert_eq!(text(&complete), expected);

    // agent-port.jsonl: channel_closed on the control channel ends it.
    h.to_control(
        MessageType::ChannelClosed,
        &format!(
            r#"{{"MessageType": "channel_closed", "MessageId": "426cf7ab-d35c-441a-8649-3b60886adb68", "DestinationId": "{INSTANCE}", "SessionId": "sess-port-0008", "SchemaVersion": 1, "CreatedDate": "2026-11-22T22:58:35.026Z", "Output": ""}}"#
        ),
    );
    until_complete(&mut h, 1).await;
    assert!(!terminated(&h), "no Terminating");
    assert_eq!(
        text(h.controls_of(&MessageType::AgentTaskComplete)[0]),
        task_complete("sess-port-0008", "Success", "")
    );
    h.stop().await;
}

/// agent-port.jsonl: list-valued parameters pass the handshake with the lists in the
/// properties, then fail: socket dropped, two agent_task_complete Failed with the real Output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_valued_parameter_fails_like_the_real_agent() {
    let mut h = Harness::start().await;
    let payload = port_task(
        "sess-port-0007",
        "AWS-StartPortForwardingSession",
        json!({"portNumber": ["8090"], "localPortNumber": ["0"]}),
        forwarding_properties(),
    );
    let request = start(&mut h, &payload).await;
    assert_eq!(text(&request), HANDSHAKE_REQUEST_LISTS);
    handshake(&mut h, "1.2.677.0").await;
    until_complete(&mut h, 2).await;
    let completes = h.controls_of(&MessageType::AgentTaskComplete);
    let expected = task_complete("sess-port-0007", "Failed", REMARSHAL_FAILED);
    assert_eq!(text(completes[0]), expected);
    assert_eq!(text(completes[1]), expected);
    assert!(!terminated(&h), "no Terminating");
    h.stop().await;
}

/// Every Output of the agent fits the 1024-byte reads of the real agent.
fn assert_output_chunks(h: &Harness) {
    for m in &h.delivered {
        assert!(m.payload.len() <= 1024, "{} bytes", m.payload.len());
    }
}

/// Basic mode (ClientVersion 1.1.0 < 1.1.70): Output dials the destination and bytes go
/// through and back; DisconnectToPort closes the connection and the next Output opens a second
/// one; Flag TerminateSession ends the session Success without Terminating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_mode_relays_and_reconnects() {
    let (port, accepted) = echo_server().await;
    let mut h = Harness::start().await;
    let payload = port_task(
        "sess-port-basic",
        "AWS-StartPortForwardingSession",
        json!({"portNumber": port.to_string(), "localPortNumber": "0"}),
        forwarding_properties(),
    );
    start(&mut h, &payload).await;
    handshake(&mut h, "1.1.0").await;

    h.send(PayloadType::Output, b"hello through basic mode".to_vec());
    h.pump_until("echo", |h| output(h) == b"hello through basic mode")
        .await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    h.send(PayloadType::Output, big.clone());
    let mut expected = b"hello through basic mode".to_vec();
    expected.extend_from_slice(&big);
    h.pump_until("big echo", |h| output(h) == expected).await;

    h.send(PayloadType::Flag, Flag::DisconnectToPort.encode().to_vec());
    h.send(PayloadType::Output, b"second connection".to_vec());
    expected.extend_from_slice(b"second connection");
    h.pump_until("second echo", |h| output(h) == expected).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
    assert_output_chunks(&h);

    h.send(PayloadType::Flag, Flag::TerminateSession.encode().to_vec());
    until_complete(&mut h, 1).await;
    assert!(!terminated(&h), "no Terminating");
    assert_eq!(
        text(h.controls_of(&MessageType::AgentTaskComplete)[0]),
        task_complete("sess-port-basic", "Success", "")
    );
    h.stop().await;
}

/// AWS-StartSSHSession (no `type`: stdin/stdout mode, basic on the agent even for a mux-capable
/// client): the server's banner comes back, and its close ends the session Success without
/// Terminating (§7.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_session_ends_when_the_server_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 64];
        let n = tcp.read(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..n], b"SSH-2.0-client\r\n");
        tcp.write_all(b"SSH-2.0-server\r\n").await.unwrap();
        // Dropped: the server closes.
    });
    let mut h = Harness::start().await;
    let payload = port_task(
        "sess-port-ssh",
        "AWS-StartSSHSession",
        json!({"portNumber": port.to_string()}),
        json!({"portNumber": "{{ portNumber }}"}),
    );
    let request = start(&mut h, &payload).await;
    assert_eq!(
        text(&request),
        format!(
            r#"{{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{{"ActionType":"SessionType","ActionParameters":{{"SessionType":"Port","Properties":{{"portNumber":"{port}"}}}}}}]}}"#
        )
    );
    handshake(&mut h, "1.2.677.0").await;
    h.send(PayloadType::Output, b"SSH-2.0-client\r\n".to_vec());
    until_complete(&mut h, 1).await;
    assert_eq!(output(&h), b"SSH-2.0-server\r\n");
    assert!(!terminated(&h), "no Terminating");
    assert_eq!(
        text(h.controls_of(&MessageType::AgentTaskComplete)[0]),
        task_complete("sess-port-ssh", "Success", "")
    );
    h.stop().await;
}

/// A `host` of the deny list (IMDS) fails the session after the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_host_fails() {
    let mut h = Harness::start().await;
    let payload = port_task(
        "sess-port-imds",
        "AWS-StartPortForwardingSessionToRemoteHost",
        json!({"portNumber": "80", "localPortNumber": "0", "host": "169.254.169.254"}),
        json!({"portNumber": "{{ portNumber }}", "type": "LocalPortForwarding", "localPortNumber": "{{ localPortNumber }}", "host": "{{ host }}"}),
    );
    start(&mut h, &payload).await;
    handshake(&mut h, "1.2.677.0").await;
    until_complete(&mut h, 2).await;
    let completes = h.controls_of(&MessageType::AgentTaskComplete);
    let expected = task_complete(
        "sess-port-imds",
        "Failed",
        "Forwarding to IP address 169.254.169.254 is forbidden.",
    );
    assert_eq!(text(completes[0]), expected);
    assert_eq!(text(completes[1]), expected);
    h.stop().await;
}

/// The smux bytes session-manager-plugin writes, as plugin-port_mux.jsonl records them.
fn smux(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.encode_into(&mut out);
    }
    out
}

/// Mux mode (ClientVersion 1.2.677.0): agent-sim is the smux server. Two streams (SYN 3, SYN 5)
/// carry independent data to two TCP connections and back as PSH frames; FIN closes one
/// without disturbing the other, and is answered with a FIN; no NOP keepalive (ClientVersion
/// > 1.2.331.0). The frames are the bytes plugin-port_mux.jsonl shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mux_mode_carries_two_streams() {
    let (port, accepted) = echo_server().await;
    let mut h = Harness::start().await;
    let payload = port_task(
        "sess-port-mux",
        "AWS-StartPortForwardingSession",
        json!({"portNumber": port.to_string(), "localPortNumber": "0"}),
        forwarding_properties(),
    );
    start(&mut h, &payload).await;
    handshake(&mut h, "1.2.677.0").await;

    // plugin-port_mux.jsonl: SYN 3, then PSH 3 with the 20 bytes of the local client.
    let syn3 = smux(&[Frame::syn(3)]);
    assert_eq!(syn3, [0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]);
    let psh3 = smux(&[Frame::psh(3, b"ping-from-tcp-client".to_vec()).unwrap()]);
    assert_eq!(psh3[..8], [0x01, 0x02, 0x14, 0x00, 0x03, 0x00, 0x00, 0x00]);
    h.send(PayloadType::Output, syn3);
    h.send(PayloadType::Output, psh3);
    // Stream 5's SYN and PSH in one byte stream cut at an odd place, as the 1024-byte reads
    // of the plugin may cut it.
    let both = smux(&[
        Frame::syn(5),
        Frame::psh(5, b"data-of-the-second-stream".to_vec()).unwrap(),
    ]);
    h.send(PayloadType::Output, both[..11].to_vec());
    h.send(PayloadType::Output, both[11..].to_vec());

    h.pump_until("both echoes", |h| {
        smux_data(h, 3) == b"ping-from-tcp-client"
            && smux_data(h, 5) == b"data-of-the-second-stream"
    })
    .await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one connection per stream"
    );
    let mut reply3 = vec![0x01, 0x02, 0x14, 0x00, 0x03, 0x00, 0x00, 0x00];
    reply3.extend_from_slice(b"ping-from-tcp-client");
    let output = output(&h);
    assert!(
        output.windows(reply3.len()).any(|w| w == reply3),
        "PSH 3 as plugin-port_mux.jsonl frames it"
    );

    // A bulk write on stream 3: PSH frames of ≤32 768 bytes in ≤1024-byte Outputs.
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    h.send(
        PayloadType::Output,
        smux(&ssm_protocol::smux::psh_frames(3, &big)),
    );
    let mut expected3 = b"ping-from-tcp-client".to_vec();
    expected3.extend_from_slice(&big);
    h.pump_until("bulk echo", |h| smux_data(h, 3) == expected3)
        .await;

    // FIN 3: the agent closes that connection and answers FIN 3; stream 5 goes on.
    h.send(PayloadType::Output, smux(&[Frame::fin(3)]));
    h.pump_until("FIN 3", |h| smux_frames(h).contains(&Frame::fin(3)))
        .await;
    h.send(
        PayloadType::Output,
        smux(&[Frame::psh(5, b"+more".to_vec()).unwrap()]),
    );
    h.pump_until("stream 5 still open", |h| {
        smux_data(h, 5) == b"data-of-the-second-stream+more"
    })
    .await;
    h.send(PayloadType::Output, smux(&[Frame::fin(5)]));
    h.pump_until("FIN 5", |h| smux_frames(h).contains(&Frame::fin(5)))
        .await;

    let frames = smux_frames(&h);
    assert!(
        frames.iter().all(|f| f.cmd() != Command::Nop),
        "no keepalive"
    );
    assert_eq!(frames.iter().filter(|f| f.cmd() == Command::Fin).count(), 2);
    assert!(frames.iter().all(|f| f.data().len() <= 32_768));
    assert_output_chunks(&h);
    assert!(
        h.delivered
            .iter()
            .all(|m| m.payload_type != PayloadType::Flag),
        "no Flag in mux mode"
    );

    h.send(PayloadType::Flag, Flag::TerminateSession.encode().to_vec());
    until_complete(&mut h, 1).await;
    assert!(!terminated(&h), "no Terminating");
    assert_eq!(
        text(h.controls_of(&MessageType::AgentTaskComplete)[0]),
        task_complete("sess-port-mux", "Success", "")
    );
    h.stop().await;
}

/// Mux mode: SYN to a closed destination port gives Flag ConnectToPortError (`00 00 00 03`)
/// and a FIN for the stream; the session stays up (plugin-port_mux.jsonl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mux_dial_failure_is_connect_to_port_error() {
    let port = closed_port().await;
    let mut h = Harness::start().await;
    let payload = port_task(
        "sess-port-closed",
        "AWS-StartPortForwardingSession",
        json!({"portNumber": port.to_string(), "localPortNumber": "0"}),
        forwarding_properties(),
    );
    start(&mut h, &payload).await;
    handshake(&mut h, "1.2.677.0").await;
    h.send(PayloadType::Output, smux(&[Frame::syn(3)]));
    h.pump_until("ConnectToPortError and FIN", |h| {
        smux_frames(h).contains(&Frame::fin(3))
            && h.delivered
                .iter()
                .any(|m| m.payload_type == PayloadType::Flag)
    })
    .await;
    let flagged = h
        .delivered
        .iter()
        .find(|m| m.payload_type == PayloadType::Flag)
        .unwrap();
    assert_eq!(flag(flagged), Flag::ConnectToPortError);
    assert_eq!(flagged.payload, [0, 0, 0, 3]);
    let fin = smux(&[Frame::fin(3)]);
    let fin_seq = h
        .delivered
        .iter()
        .find(|m| m.payload_type == PayloadType::Output && m.payload == fin)
        .expect("FIN 3 in its own Output")
        .sequence_number;
    assert!(flagged.sequence_number < fin_seq, "Flag, then FIN (§7.4)");
    assert!(!h.data_closed, "the session goes on");

    h.send(PayloadType::Flag, Flag::TerminateSession.encode().to_vec());
    until_complete(&mut h, 1).await;
    assert_eq!(
        text(h.controls_of(&MessageType::AgentTaskComplete)[0]),
        task_complete("sess-port-closed", "Success", "")
    );
    h.stop().await;
}

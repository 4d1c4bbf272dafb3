//! InteractiveCommands and NonInteractiveCommands sessions against the fake MGS of
//! [`common`], checked against the real agent's traffic (`agent-noninteractive.jsonl`, payloads
//! copied below) and its sources (spec §4.1, §6.1–§6.3, §9.1). The commands are real processes;
//! waits are bounded.

mod common;

use std::time::Instant;

use common::{Harness, session_user, task_complete, text, until_process};
use serde_json::{Value, json};
use ssm_protocol::payload::MgsPayload;
use ssm_protocol::{Flags, Message, MessageType, PayloadType};

/// The HandshakeRequest of agent-noninteractive.jsonl, byte for byte.
const HANDSHAKE_REQUEST: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"NonInteractiveCommands","Properties":null}}]}"#;

/// The recording server's HandshakeResponse in agent-noninteractive.jsonl (a 1.2.677.0 client).
const HANDSHAKE_RESPONSE: &str = r#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":[]}"#;

/// The `interactive_shell` payload of a session of `document` (`sessionType` `session_type`)
/// with `properties`, run as [`session_user`], shaped as agent-noninteractive.jsonl records it.
fn interactive_shell(
    session: &str,
    document: &str,
    session_type: &str,
    properties: &Value,
) -> String {
    let content = json!({
        "DocumentName": document,
        "SessionId": session,
        "RunAsUser": "",
        "SessionOwner": "arn:aws:iam::123456789012:user/admin",
        "Parameters": {},
        "DocumentContent": {
            "schemaVersion": "1.0",
            "description": "Session document",
            "sessionType": session_type,
            "inputs": {
                "s3BucketName": "", "s3KeyPrefix": "", "s3EncryptionEnabled": false,
                "cloudWatchLogGroupName": "", "cloudWatchStreamingEnabled": false,
                "cloudWatchEncryptionEnabled": false, "kmsKeyId": "", "runAsEnabled": true,
                "runAsDefaultUser": session_user(),
                "shellProfile": {"windows": "", "linux": ""}
            },
            "parameters": {},
            "properties": properties
        }
    });
    serde_json::to_string(&MgsPayload {
        content: content.to_string(),
        task_id: session.to_owned(),
        topic: "aws.ssm.startSession".to_owned(),
        schema_version: 1,
    })
    .unwrap()
}

fn non_interactive(session: &str, linux: &Value) -> String {
    interactive_shell(
        session,
        "AWS-StartNonInteractiveCommand",
        "NonInteractiveCommands",
        &json!({ "linux": linux }),
    )
}

/// Stream messages of one PayloadType delivered to the client, as text.
fn payloads(h: &Harness, payload_type: PayloadType) -> Vec<String> {
    h.delivered
        .iter()
        .filter(|m| m.payload_type == payload_type)
        .map(text)
        .collect()
}

fn ended(h: &Harness) -> bool {
    h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
}

/// Exactly one `agent_session_state` Terminating and one Success for `session`.
fn assert_terminating_then_success(h: &Harness, session: &str) {
    let states = h.controls_of(&MessageType::AgentSessionState);
    assert_eq!(states.len(), 1, "{:?}", h.controls);
    assert_eq!(
        text(states[0]),
        format!(r#"{{"SchemaVersion":1,"SessionState":"Terminating","SessionId":"{session}"}}"#)
    );
    let completes = h.controls_of(&MessageType::AgentTaskComplete);
    assert_eq!(text(completes[0]), task_complete(session, "Success", ""));
}

/// The handshake of agent-noninteractive.jsonl: HandshakeRequest (seq 0, SYN, Properties
/// null), the client's HandshakeResponse as input seq 0, HandshakeComplete (seq 1).
async fn handshake(h: &mut Harness) {
    h.pump_until("HandshakeRequest", |h| !h.delivered.is_empty())
        .await;
    let request = &h.delivered[0];
    assert_eq!(
        (request.sequence_number, request.flags, request.payload_type),
        (0, Flags::SYN, PayloadType::HandshakeRequest)
    );
    assert_eq!(text(request), HANDSHAKE_REQUEST);
    h.client.send(
        Instant::now(),
        PayloadType::HandshakeResponse,
        HANDSHAKE_RESPONSE.as_bytes().to_vec(),
    );
    h.flush();
    h.pump_until("HandshakeComplete", |h| h.delivered.len() >= 2)
        .await;
    let complete = &h.delivered[1];
    assert_eq!(
        (complete.sequence_number, complete.payload_type),
        (1, PayloadType::HandshakeComplete)
    );
    let payload: Value = serde_json::from_slice(&complete.payload).unwrap();
    assert_eq!(payload["CustomerMessage"], "", "{payload}");
    assert!(payload["HandshakeTimeToComplete"].is_u64(), "{payload}");
}

/// InteractiveCommands: no handshake (the first message is the command's Output), the command
/// runs under `sh -c` on a PTY that follows Size, typed input reaches it, and its exit ends the
/// session as a shell's does, with no exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_command_runs_on_a_pty_without_handshake() {
    let mut h = Harness::start().await;
    let session = "sess-ic-0001";
    let payload = interactive_shell(
        session,
        "AWS-StartInteractiveCommand",
        "InteractiveCommands",
        &json!({"linux": {"commands": "tty; read line; stty size; echo \"got:$line\"",
                         "runAsElevated": false}}),
    );
    h.start_session(session, &payload).await;

    h.pump_until("tty's output", |h| h.output_text().contains("\r\n"))
        .await;
    let first = &h.delivered[0];
    assert_eq!(
        (first.sequence_number, first.flags, first.payload_type),
        (0, Flags::SYN, PayloadType::Output),
        "no handshake: the first message is Output"
    );
    assert!(
        h.output_text().starts_with("/dev/pts/"),
        "{:?}",
        h.output_text()
    );

    h.resize(132, 43);
    h.type_in("hello\r");
    h.pump_until("the end", ended).await;
    let output = h.output_text();
    assert!(
        output.contains("hello\r\n43 132\r\ngot:hello\r\n"),
        "echo, size, input: {output:?}"
    );
    assert!(
        h.delivered
            .iter()
            .all(|m| m.payload_type == PayloadType::Output),
        "no handshake, no ExitCode: {:?}",
        h.delivered
    );
    assert_terminating_then_success(&h, session);
    assert_eq!(h.client.unacked(), 0, "Size and input acked");
    h.stop().await;
}

/// agent-noninteractive.jsonl: the recorded command without separateOutputStream. stdout and
/// stderr arrive merged in one Output after the exit (seq 2), no exit code is reported, then
/// Terminating and Success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_interactive_command_merges_output_like_the_trace() {
    let mut h = Harness::start().await;
    let session = "sess-nic-0005";
    let payload = non_interactive(
        session,
        &json!({"commands": "sh -c 'echo noninteractive; id -un; echo to-stderr >&2; exit 7'",
               "runAsElevated": false}),
    );
    h.start_session(session, &payload).await;
    handshake(&mut h).await;
    h.pump_until("the end", ended).await;

    let output: Vec<&Message> = h.delivered[2..].iter().collect();
    assert_eq!(output.len(), 1, "{output:?}");
    assert_eq!(
        (
            output[0].sequence_number,
            output[0].flags,
            output[0].payload_type
        ),
        (2, Flags::NONE, PayloadType::Output)
    );
    assert_eq!(
        text(output[0]),
        format!("noninteractive\n{}\nto-stderr\n", session_user())
    );
    assert_terminating_then_success(&h, session);
    h.stop().await;
}

/// separateOutputStream (§6.3): stdout as Output and stderr as StdErr, each with its separator
/// prefix, then ExitCode `EXIT_CODE: 3` last; the command line is split and run without a shell
/// (`sh -c` is the document's own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_interactive_command_separates_stdout_stderr_and_exit_code() {
    let mut h = Harness::start().await;
    let session = "sess-nic-0006";
    let payload = non_interactive(
        session,
        &json!({"commands": "sh -c 'echo out; echo err >&2; exit 3'", "runAsElevated": false,
               "separateOutputStream": "true", "stdOutSeparatorPrefix": "OUT:",
               "stdErrSeparatorPrefix": "ERR:"}),
    );
    h.start_session(session, &payload).await;
    handshake(&mut h).await;
    h.pump_until("the end", ended).await;

    assert_eq!(payloads(&h, PayloadType::Output), ["OUT:out\n"]);
    assert_eq!(payloads(&h, PayloadType::StdErr), ["ERR:err\n"]);
    let last = h.delivered.last().unwrap();
    assert_eq!(
        (last.payload_type, text(last)),
        (PayloadType::ExitCode, "EXIT_CODE: 3".to_owned())
    );
    assert_eq!(h.delivered.len(), 5, "{:?}", h.delivered);
    assert_terminating_then_success(&h, session);
    h.stop().await;
}

/// Input 0x03 (the plugin's Ctrl-C) interrupts the command: SIGINT kills `sleep`, whose exit by
/// a signal is reported as Go does, `EXIT_CODE: -1`. Size is acked and ignored (no PTY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_c_interrupts_a_non_interactive_command() {
    let mut h = Harness::start().await;
    let session = "sess-nic-0007";
    let payload = non_interactive(
        session,
        &json!({"commands": "sleep 4118", "separateOutputStream": true}),
    );
    h.start_session(session, &payload).await;
    handshake(&mut h).await;
    h.resize(80, 24);
    h.pump_until("Size acked", |h| h.client.unacked() == 0)
        .await;
    until_process(&["sleep", "4118"], true, "sleep started").await;
    h.type_in("\u{3}");
    h.pump_until("the end", ended).await;

    assert_eq!(payloads(&h, PayloadType::ExitCode), ["EXIT_CODE: -1"]);
    assert_terminating_then_success(&h, session);
    assert_eq!(h.client.unacked(), 0, "Size and input acked");
    until_process(&["sleep", "4118"], false, "the sleep was interrupted").await;
    h.stop().await;
}

/// A command that does not exist: the client gets Go's error as StdErr (after `EXIT_CODE: 1`
/// with separated output), and MGS two Failed with the real agent's wording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_fails_the_session() {
    let mut h = Harness::start().await;
    let session = "sess-nic-0008";
    let payload = non_interactive(
        session,
        &json!({"commands": "no-such-command-4119 --flag", "separateOutputStream": "true"}),
    );
    h.start_session(session, &payload).await;
    handshake(&mut h).await;
    h.pump_until("two agent_task_complete", |h| {
        h.data_closed && h.controls_of(&MessageType::AgentTaskComplete).len() == 2
    })
    .await;

    let error = r#"exec: "no-such-command-4119": executable file not found in $PATH"#;
    assert_eq!(payloads(&h, PayloadType::ExitCode), ["EXIT_CODE: 1"]);
    assert_eq!(payloads(&h, PayloadType::StdErr), [error]);
    let expected = task_complete(
        session,
        "Failed",
        &format!("\n----------ERROR-------\nError occurred starting the command: {error}\n"),
    );
    for complete in h.controls_of(&MessageType::AgentTaskComplete) {
        assert_eq!(text(complete), expected);
    }
    h.stop().await;
}

/// Blank commands fail right after Connected (InteractiveCommands has no handshake) with the
/// real agent's Output, twice, and nothing reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_commands_fail_the_session() {
    let mut h = Harness::start().await;
    let session = "sess-ic-0002";
    let payload = interactive_shell(
        session,
        "AWS-StartInteractiveCommand",
        "InteractiveCommands",
        &json!({"linux": {"commands": " ", "runAsElevated": false}}),
    );
    h.start_session(session, &payload).await;
    h.pump_until("two agent_task_complete", |h| {
        h.data_closed && h.controls_of(&MessageType::AgentTaskComplete).len() == 2
    })
    .await;
    assert!(h.delivered.is_empty(), "{:?}", h.delivered);
    let expected = task_complete(
        session,
        "Failed",
        "Commands cannot be empty for session type InteractiveCommands",
    );
    for complete in h.controls_of(&MessageType::AgentTaskComplete) {
        assert_eq!(text(complete), expected);
    }
    h.stop().await;
}

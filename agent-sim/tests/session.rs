//! Standard_Stream shell sessions against a fake MGS that also plays the client end of the
//! data channel with a client-role `ReliableStream`, checked against the real agent's traffic
//! (`shared/spec/traces/agent-shell.jsonl`, `agent-shell-terminate.jsonl`,
//! `agent-shell-runas-root.jsonl`; payloads copied below).
//!
//! The shells are real `sh` processes on real PTYs. Waits are bounded ([`WAIT`]).

mod common;

use std::time::Duration;

use common::{Event, Harness, session_user, task_complete, text, until_process};
use ssm_protocol::{Flags, MessageType, PayloadType};

/// The `interactive_shell` payload of agent-shell.jsonl, verbatim (session `sess-shell-0002`,
/// `runAsDefaultUser` `nobody`).
const INTERACTIVE_SHELL: &str = r#"{"Content": "{\"DocumentName\": \"SSM-SessionManagerRunShell\", \"SessionId\": \"sess-shell-0002\", \"RunAsUser\": \"\", \"SessionOwner\": \"arn:aws:iam::123456789012:user/admin\", \"Parameters\": {}, \"DocumentContent\": {\"schemaVersion\": \"1.0\", \"description\": \"Session document\", \"sessionType\": \"Standard_Stream\", \"inputs\": {\"s3BucketName\": \"\", \"s3KeyPrefix\": \"\", \"s3EncryptionEnabled\": false, \"cloudWatchLogGroupName\": \"\", \"cloudWatchStreamingEnabled\": false, \"cloudWatchEncryptionEnabled\": false, \"kmsKeyId\": \"\", \"runAsEnabled\": true, \"runAsDefaultUser\": \"nobody\", \"shellProfile\": {\"windows\": \"\", \"linux\": \"\"}}, \"parameters\": {}, \"properties\": {}}}", "TaskId": "sess-shell-0002", "Topic": "aws.ssm.startSession", "SchemaVersion": 1}"#;

/// The control-channel `channel_closed` of agent-shell-terminate.jsonl.
const CHANNEL_CLOSED: &str = r#"{"MessageType": "channel_closed", "MessageId": "2c77bf54-75ca-45b4-921c-54d2346df916", "DestinationId": "i-0123456789abcdef0", "SessionId": "sess-shell-0003", "SchemaVersion": 1, "CreatedDate": "2026-11-22T22:44:08.114Z", "Output": ""}"#;

/// The recorded payload for `session` as the user `user` (the recorded ones differ only there).
fn interactive_shell(session: &str, user: &str) -> String {
    INTERACTIVE_SHELL
        .replace("sess-shell-0002", session)
        .replace(
            r#"\"runAsDefaultUser\": \"nobody\""#,
            &format!(r#"\"runAsDefaultUser\": \"{user}\""#),
        )
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

/// agent-shell.jsonl: Connected, the prompt as output seq 0 with SYN, Size, `echo hi`, `exit`,
/// Terminating, socket dropped, agent_task_complete Success (acknowledged: not resent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_session_follows_the_real_agent() {
    let mut h = Harness::start().await;
    let session = "sess-shell-0002";
    h.start_session(session, &interactive_shell(session, &session_user()))
        .await;

    h.pump_until("prompt", |h| !h.delivered.is_empty()).await;
    let prompt = &h.delivered[0];
    assert_eq!(prompt.message_type, MessageType::OutputStreamData);
    assert_eq!(
        (prompt.sequence_number, prompt.flags, prompt.payload_type),
        (0, Flags::SYN, PayloadType::Output)
    );

    h.resize(120, 40);
    h.type_in("echo hi\n");
    h.pump_until("hi", |h| h.output_text().contains("\r\nhi\r\n"))
        .await;
    assert!(
        h.delivered[1..].iter().all(|m| m.flags == Flags::NONE),
        "only seq 0 carries SYN"
    );

    h.type_in("exit\n");
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
    })
    .await;
    let terminating = h.controls_of(&MessageType::AgentSessionState);
    assert_eq!(terminating.len(), 1, "{:?}", h.controls);
    assert_eq!(
        (terminating[0].sequence_number, terminating[0].flags),
        (0, Flags::ACK)
    );
    assert_eq!(
        text(terminating[0]),
        format!(r#"{{"SchemaVersion":1,"SessionState":"Terminating","SessionId":"{session}"}}"#)
    );
    let complete = h.controls_of(&MessageType::AgentTaskComplete)[0].clone();
    assert_eq!((complete.flags, complete.sequence_number), (Flags::NONE, 0));
    assert_eq!(text(&complete), task_complete(session, "Success", ""));
    assert_eq!(h.client.unacked(), 0, "every input acked");

    // Acknowledged at once by the fake, so never resent (the agent waits 1 s per try).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    while let Ok(event) = h.events.try_recv() {
        if let Event::Control(message) = event {
            assert_ne!(
                message.message_type,
                MessageType::AgentTaskComplete,
                "resent"
            );
        }
    }
    h.stop().await;
}

/// agent-shell-terminate.jsonl: `channel_closed` on the control channel kills the running
/// `sleep`, drops the data socket without Terminating, and reports Success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_closed_on_the_control_channel_kills_the_shell() {
    let mut h = Harness::start().await;
    let session = "sess-shell-0003";
    h.start_session(session, &interactive_shell(session, &session_user()))
        .await;
    h.pump_until("prompt", |h| !h.delivered.is_empty()).await;

    // A duration no other test uses, to find the process.
    let sleep = ["sleep", "4117"];
    h.type_in("sleep 4117\n");
    h.pump_until("echo", |h| h.output_text().contains("sleep 4117\r\n"))
        .await;
    until_process(&sleep, true, "sleep started").await;

    h.to_control(MessageType::ChannelClosed, CHANNEL_CLOSED);
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
    })
    .await;
    assert!(
        h.controls_of(&MessageType::AgentSessionState).is_empty(),
        "no Terminating after TerminateSession"
    );
    let complete = h.controls_of(&MessageType::AgentTaskComplete)[0];
    assert_eq!(text(complete), task_complete(session, "Success", ""));

    until_process(&sleep, false, "the shell's process group was killed").await;
    h.stop().await;
}

/// The PTY starts at 24×80 and follows Size messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_resizes_the_pty() {
    let mut h = Harness::start().await;
    let session = "sess-resize-0001";
    h.start_session(session, &interactive_shell(session, &session_user()))
        .await;
    h.pump_until("prompt", |h| !h.delivered.is_empty()).await;

    h.type_in("stty size\n");
    h.pump_until("24 80", |h| h.output_text().contains("\r\n24 80\r\n"))
        .await;
    h.resize(132, 43);
    h.type_in("stty size\n");
    h.pump_until("43 132", |h| h.output_text().contains("\r\n43 132\r\n"))
        .await;
    h.type_in("exit\n");
    h.pump_until("agent_task_complete", |h| {
        h.data_closed && !h.controls_of(&MessageType::AgentTaskComplete).is_empty()
    })
    .await;
    h.stop().await;
}

/// agent-shell-runas-root.jsonl: a root run-as user fails after Connected, the data socket
/// drops, and two agent_task_complete Failed carry the real agent's Output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_root_fails_like_the_real_agent() {
    let mut h = Harness::start().await;
    let session = "sess-shell-0001";
    h.start_session(session, &interactive_shell(session, "root"))
        .await;
    h.pump_until("two agent_task_complete", |h| {
        h.data_closed && h.controls_of(&MessageType::AgentTaskComplete).len() == 2
    })
    .await;
    assert!(h.delivered.is_empty(), "no output");
    let completes = h.controls_of(&MessageType::AgentTaskComplete);
    let expected = task_complete(
        session,
        "Failed",
        "\n----------ERROR-------\nUnable to start command: invalid uid and gid\n",
    );
    assert_eq!(text(completes[0]), expected);
    assert_eq!(text(completes[1]), expected);
    assert_ne!(completes[0].message_id, completes[1].message_id);
    h.stop().await;
}

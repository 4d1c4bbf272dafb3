//! Payload tests: golden vectors from recorded real traffic (`shared/spec/traces`), and property
//! tests for round trips and for robustness against arbitrary input.
//!
//! Each golden test decodes the recorded frame bytes with [`Message::decode`], reads the payload
//! into its typed struct, checks key fields, re-serializes the struct and compares it with the
//! recorded payload byte for byte (that is what proves the field order and Go's escaping), and
//! re-encodes the frame and compares it with the recorded one (all recorded frames are canonical:
//! HeaderLength 116, space padding, correct digest).
//!
//! Payloads written by a real peer (plugin or agent) are compared with [`to_json_bytes`]. Payloads
//! written by the recording server (Python `json.dumps`, `", "` and `": "` separators) are compared
//! with [`python_json`], which proves the field order we use for them; where they contain maps
//! whose order a sorted map cannot reproduce, they are compared as JSON values instead.

use std::io;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};
use ssm_protocol::payload::{
    Acknowledge, ActionStatus, ActionType, AdditionalInfo, AgentInfo, AgentJob, AgentJobAck,
    AgentJobReply, AgentJobReplyAck, AgentOpenDataChannelInput, AgentSessionState,
    AgentTaskAcknowledge, AgentTaskComplete, AgentTaskPayload, CancelCommandPayload, ChannelClosed,
    DataChannelOpen, EncryptionChallenge, ExitCode, Flag, HandshakeComplete, HandshakeRequest,
    HandshakeResponse, JobContent, KmsEncryptionRequest, MgsPayload, OpenControlChannelInput,
    OpenDataChannelInput, PayloadError, PluginRuntimeStatus, ProcessedClientAction,
    RequestedClientAction, ResultStatus, SendCommandPayload, SendReplyPayload,
    SessionDocumentContent, SessionInputs, SessionState, SessionTypeRequest, ShellProfile, Size,
    TOPIC_AGENT_TASK_COMPLETE, TOPIC_CANCEL_COMMAND, TOPIC_SEND_COMMAND, TOPIC_START_SESSION,
    from_json_bytes, to_json_bytes, to_json_string,
};
use ssm_protocol::{Flags, Message, MessageType, PayloadType, Validation};

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A recorded frame given as its 120-byte header and its payload text.
fn recorded(header_hex: &str, text: &str) -> Vec<u8> {
    let mut frame = hex(header_hex);
    assert_eq!(frame.len(), 120);
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// Decodes a recorded frame with the checks of the end that received it, and checks that
/// encoding the result gives the recorded bytes back.
fn decode_canonical(frame: &[u8], validation: Validation) -> Message {
    let message = Message::decode(frame, validation).expect("recorded frame decodes");
    assert_eq!(
        message.encode(),
        frame,
        "re-encoded frame differs from the recording"
    );
    message
}

/// Serializes like Python's `json.dumps` with default separators, as the recording server did.
fn python_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PythonFormatter,
        ))
        .unwrap();
    out
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

fn as_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn s(text: &str) -> String {
    text.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Open frames (§2, §9.1).
// ---------------------------------------------------------------------------------------------

#[test]
fn plugin_open_frame_is_read_as_the_client_and_rewritten_exactly() {
    let open = DataChannelOpen::from_json(PLUGIN_OPEN.as_bytes()).unwrap();
    let DataChannelOpen::Client(client) = &open else {
        panic!("not the client form: {open:?}")
    };
    assert_eq!(client.message_schema_version, "1.0");
    assert_eq!(client.token_value, "tok-340f09-0");
    assert_eq!(client.client_id, "615b9157-e8f4-48f4-b85b-020adf469d09");
    assert_eq!(client.client_version.as_deref(), Some("1.2.677.0"));
    assert_eq!(open.token_value(), "tok-340f09-0");
    assert_eq!(open.to_json_bytes().unwrap(), PLUGIN_OPEN.as_bytes());
    assert_eq!(to_json_bytes(client).unwrap(), PLUGIN_OPEN.as_bytes());
}

#[test]
fn older_plugin_open_frame_without_client_version() {
    let old = r#"{"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"t","ClientId":"c"}"#;
    let open: OpenDataChannelInput = from_json_bytes(old.as_bytes()).unwrap();
    assert_eq!(open.client_version, None);
    assert_eq!(to_json_bytes(&open).unwrap(), old.as_bytes());
}

#[test]
fn agent_open_frame_is_read_as_the_agent_and_rewritten_exactly() {
    let open = DataChannelOpen::from_json(AGENT_OPEN.as_bytes()).unwrap();
    let DataChannelOpen::Agent(agent) = &open else {
        panic!("not the agent form: {open:?}")
    };
    assert_eq!(agent.token_value, "dc-token-c498c3c99898");
    assert_eq!(agent.client_instance_id, "i-0123456789abcdef0");
    assert_eq!(agent.client_id, "");
    assert_eq!(open.token_value(), "dc-token-c498c3c99898");
    assert_eq!(open.to_json_bytes().unwrap(), AGENT_OPEN.as_bytes());
}

#[test]
fn open_frame_that_is_not_an_object_is_refused() {
    assert!(matches!(
        DataChannelOpen::from_json(b"[1]"),
        Err(PayloadError::OpenFrameNotObject)
    ));
    assert!(matches!(
        DataChannelOpen::from_json(b"{"),
        Err(PayloadError::Json(_))
    ));
}

#[test]
fn control_channel_open_frame() {
    let open: OpenControlChannelInput = from_json_bytes(CONTROL_OPEN.as_bytes()).unwrap();
    assert_eq!(open.cookie, None);
    assert_eq!(open.token_value, "cc-token-5f85b4cec455");
    assert_eq!(open.agent_version, "3.3.1142.0");
    assert_eq!(open.platform_type, "linux");
    assert_eq!(to_json_bytes(&open).unwrap(), CONTROL_OPEN.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Data-channel payloads (§3.1, §4.2, §6).
// ---------------------------------------------------------------------------------------------

#[test]
fn plugin_acknowledge() {
    let frame = recorded(PLUGIN_ACK_HEADER_HEX, PLUGIN_ACK_TEXT);
    let message = decode_canonical(&frame, Validation::Agent);
    assert_eq!(message.message_type, MessageType::Acknowledge);
    assert_eq!(message.flags, Flags::ACK);
    assert_eq!(message.payload_type, PayloadType::Undefined);
    let ack: Acknowledge = from_json_bytes(&message.payload).unwrap();
    assert_eq!(ack.message_type, "output_stream_data");
    assert_eq!(ack.message_id, "a679575f-02ea-4b17-9254-604d990d741e");
    assert_eq!(ack.sequence_number, 0);
    assert!(ack.is_sequential_message);
    assert_eq!(to_json_bytes(&ack).unwrap(), PLUGIN_ACK_TEXT.as_bytes());
}

#[test]
fn plugin_size() {
    let frame = hex(SIZE_FRAME_HEX);
    let message = decode_canonical(&frame, Validation::Agent);
    assert_eq!(message.message_type, MessageType::InputStreamData);
    assert_eq!(message.payload_type, PayloadType::Size);
    let size: Size = from_json_bytes(&message.payload).unwrap();
    assert_eq!(
        size,
        Size {
            cols: 300,
            rows: 100
        }
    );
    assert_eq!(to_json_bytes(&size).unwrap(), message.payload);
    assert_eq!(message.payload, br#"{"cols":300,"rows":100}"#);
}

#[test]
fn agent_handshake_request_port() {
    let frame = recorded(
        AGENT_HANDSHAKE_REQUEST_HEADER_HEX,
        AGENT_HANDSHAKE_REQUEST_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Client);
    assert_eq!(message.payload_type, PayloadType::HandshakeRequest);
    assert_eq!(message.flags, Flags::SYN);
    let request: HandshakeRequest = from_json_bytes(&message.payload).unwrap();
    assert_eq!(request.agent_version, "3.3.1142.0");
    assert_eq!(
        request.requested_client_actions,
        vec![RequestedClientAction::SessionType(SessionTypeRequest {
            session_type: s("Port"),
            properties: json!({"localPortNumber":"0","portNumber":"8090","type":"LocalPortForwarding"}),
        })]
    );
    // Go writes map keys sorted, and so does serde_json's map: the bytes match.
    assert_eq!(
        to_json_bytes(&request).unwrap(),
        AGENT_HANDSHAKE_REQUEST_TEXT.as_bytes()
    );
}

#[test]
fn agent_handshake_request_with_list_properties_and_null_properties() {
    for (header, text) in [
        (
            AGENT_HANDSHAKE_REQUEST_LISTS_HEADER_HEX,
            AGENT_HANDSHAKE_REQUEST_LISTS_TEXT,
        ),
        (
            NONINTERACTIVE_HANDSHAKE_REQUEST_HEADER_HEX,
            NONINTERACTIVE_HANDSHAKE_REQUEST_TEXT,
        ),
    ] {
        let message = decode_canonical(&recorded(header, text), Validation::Client);
        let request: HandshakeRequest = from_json_bytes(&message.payload).unwrap();
        assert!(matches!(
            request.requested_client_actions.as_slice(),
            [RequestedClientAction::SessionType(_)]
        ));
        assert_eq!(to_json_bytes(&request).unwrap(), text.as_bytes());
    }
    let request: HandshakeRequest =
        from_json_bytes(NONINTERACTIVE_HANDSHAKE_REQUEST_TEXT.as_bytes()).unwrap();
    let RequestedClientAction::SessionType(session) = &request.requested_client_actions[0] else {
        unreachable!()
    };
    assert_eq!(session.session_type, "NonInteractiveCommands");
    assert_eq!(session.properties, Value::Null);
}

#[test]
fn server_written_handshake_request() {
    let frame = recorded(
        SERVER_HANDSHAKE_REQUEST_HEADER_HEX,
        SERVER_HANDSHAKE_REQUEST_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Client);
    let request: HandshakeRequest = from_json_bytes(&message.payload).unwrap();
    let RequestedClientAction::SessionType(session) = &request.requested_client_actions[0] else {
        panic!("{request:?}")
    };
    assert_eq!(session.session_type, "Port");
    assert_eq!(session.properties["localPortNumber"], "40259");
    assert_eq!(
        as_value(&to_json_bytes(&request).unwrap()),
        as_value(&message.payload)
    );
}

#[test]
fn kms_and_unknown_actions() {
    let text = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:key","Challenge":"c2VjcmV0"}},{"ActionType":"Teleport","ActionParameters":{"z":1,"a":[true]}},{"ActionType":"SessionType","ActionParameters":"not an object"}]}"#;
    let request: HandshakeRequest = from_json_bytes(text.as_bytes()).unwrap();
    assert_eq!(
        request.requested_client_actions[1],
        RequestedClientAction::KmsEncryption(KmsEncryptionRequest {
            kms_key_id: s("arn:key"),
            challenge: s("c2VjcmV0"),
        })
    );
    assert_eq!(
        request.requested_client_actions[2],
        RequestedClientAction::Other {
            action_type: ActionType::Other(s("Teleport")),
            action_parameters: json!({"a":[true],"z":1}),
        }
    );
    // A known type with parameters of the wrong shape is kept, not refused.
    assert_eq!(
        request.requested_client_actions[3].action_type(),
        ActionType::SessionType
    );
    assert!(matches!(
        request.requested_client_actions[3],
        RequestedClientAction::Other { .. }
    ));
    assert_eq!(
        to_json_bytes(&request).unwrap(),
        text.replace(r#"{"z":1,"a":[true]}"#, r#"{"a":[true],"z":1}"#)
            .as_bytes()
    );
}

#[test]
fn plugin_handshake_response() {
    let frame = recorded(
        PLUGIN_HANDSHAKE_RESPONSE_HEADER_HEX,
        PLUGIN_HANDSHAKE_RESPONSE_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Agent);
    assert_eq!(message.payload_type, PayloadType::HandshakeResponse);
    assert_eq!(message.flags, Flags::NONE);
    let response: HandshakeResponse = from_json_bytes(&message.payload).unwrap();
    let built = HandshakeResponse {
        client_version: s("1.2.677.0"),
        processed_client_actions: vec![ProcessedClientAction::success(ActionType::SessionType)],
        errors: None,
    };
    assert_eq!(response, built);
    assert_eq!(
        to_json_bytes(&built).unwrap(),
        PLUGIN_HANDSHAKE_RESPONSE_TEXT.as_bytes()
    );
}

#[test]
fn handshake_response_variants() {
    let text = r#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"Teleport","ActionStatus":0,"ActionResult":3,"Error":"Unsupported action Teleport"},{"ActionType":"SessionType","ActionStatus":2,"ActionResult":null,"Error":"x"}],"Errors":[]}"#;
    let response: HandshakeResponse = from_json_bytes(text.as_bytes()).unwrap();
    assert_eq!(
        response.processed_client_actions[0].action_status,
        ActionStatus::Other(0)
    );
    assert_eq!(response.processed_client_actions[0].action_result, json!(3));
    assert_eq!(
        response.processed_client_actions[1].action_status,
        ActionStatus::Failed
    );
    assert_eq!(response.errors, Some(vec![]));
    assert_eq!(to_json_bytes(&response).unwrap(), text.as_bytes());
    // Go's nil slices arrive as null.
    let response: HandshakeResponse =
        from_json_bytes(br#"{"ClientVersion":"1","ProcessedClientActions":null}"#).unwrap();
    assert!(response.processed_client_actions.is_empty());
}

#[test]
fn handshake_complete() {
    let frame = recorded(
        AGENT_HANDSHAKE_COMPLETE_HEADER_HEX,
        AGENT_HANDSHAKE_COMPLETE_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Client);
    assert_eq!(message.payload_type, PayloadType::HandshakeComplete);
    let complete: HandshakeComplete = from_json_bytes(&message.payload).unwrap();
    assert_eq!(
        complete,
        HandshakeComplete::new(std::time::Duration::from_nanos(724_713), s(""))
    );
    assert_eq!(
        to_json_bytes(&complete).unwrap(),
        AGENT_HANDSHAKE_COMPLETE_TEXT.as_bytes()
    );

    let frame = recorded(
        SERVER_HANDSHAKE_COMPLETE_HEADER_HEX,
        SERVER_HANDSHAKE_COMPLETE_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Client);
    let complete: HandshakeComplete = from_json_bytes(&message.payload).unwrap();
    assert_eq!(complete.handshake_time_to_complete, 123_456_789);
    assert_eq!(
        complete.customer_message,
        "[customer message from the agent]"
    );
    assert_eq!(python_json(&complete), message.payload);
}

#[test]
fn encryption_challenge() {
    let challenge: EncryptionChallenge = from_json_bytes(br#"{"Challenge":"YWJj"}"#).unwrap();
    assert_eq!(challenge.challenge, "YWJj");
    assert_eq!(
        to_json_bytes(&challenge).unwrap(),
        br#"{"Challenge":"YWJj"}"#
    );
}

#[test]
fn flags() {
    let message = decode_canonical(&hex(FLAG_CONNECT_ERROR_FRAME_HEX), Validation::Client);
    assert_eq!(message.payload_type, PayloadType::Flag);
    assert_eq!(
        Flag::decode(&message.payload).unwrap(),
        Flag::ConnectToPortError
    );
    assert_eq!(
        Flag::ConnectToPortError.encode().as_slice(),
        message.payload
    );

    let message = decode_canonical(&hex(FLAG_TERMINATE_FRAME_HEX), Validation::Agent);
    assert_eq!(
        Flag::decode(&message.payload).unwrap(),
        Flag::TerminateSession
    );
    assert_eq!(Flag::TerminateSession.encode(), [0, 0, 0, 2]);

    assert_eq!(Flag::decode(&[0, 0, 0, 1]).unwrap(), Flag::DisconnectToPort);
    assert_eq!(Flag::decode(&[0, 0, 1, 0]).unwrap(), Flag::Unknown(256));
    assert_eq!(Flag::Unknown(256).encode(), [0, 0, 1, 0]);
    assert!(matches!(
        Flag::decode(&[0, 0, 2]),
        Err(PayloadError::FlagLength { len: 3 })
    ));
    assert!(matches!(
        Flag::decode(&[0; 5]),
        Err(PayloadError::FlagLength { len: 5 })
    ));
}

#[test]
fn exit_code() {
    let message = decode_canonical(&hex(EXIT_CODE_FRAME_HEX), Validation::Client);
    assert_eq!(message.payload_type, PayloadType::ExitCode);
    assert_eq!(ExitCode::parse(&message.payload).unwrap(), ExitCode(3));
    assert_eq!(ExitCode(3).encode(), message.payload);
    assert_eq!(ExitCode(-1).encode(), b"EXIT_CODE: -1");
    assert_eq!(
        ExitCode::parse(b"EXIT_CODE: 3221225477 ").unwrap(),
        ExitCode(3_221_225_477)
    );
    for bad in [
        &b"EXIT_CODE:3"[..],
        b"EXIT_CODE: x",
        b"exit_code: 1",
        b"EXIT_CODE: ",
        b"\xff",
    ] {
        assert!(
            matches!(ExitCode::parse(bad), Err(PayloadError::ExitCode(_))),
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Service messages (§4.1, §6.5).
// ---------------------------------------------------------------------------------------------

#[test]
fn channel_closed_to_the_plugin() {
    let frame = recorded(CHANNEL_CLOSED_HEADER_HEX, CHANNEL_CLOSED_TEXT);
    let message = decode_canonical(&frame, Validation::Client);
    assert_eq!(message.message_type, MessageType::ChannelClosed);
    let closed: ChannelClosed = from_json_bytes(&message.payload).unwrap();
    let built = ChannelClosed::new(
        s("8f411831-14c1-417e-bbb1-b7ff6f0730ee"),
        s("1795387296461"),
        s("i-0123456789abcdef0"),
        s("sess-76898a33130340f09"),
        s(""),
    );
    assert_eq!(closed, built);
    assert_eq!(
        to_json_bytes(&built).unwrap(),
        CHANNEL_CLOSED_TEXT.as_bytes()
    );
}

#[test]
fn channel_closed_to_the_agent_in_another_key_order() {
    let frame = recorded(
        CONTROL_CHANNEL_CLOSED_HEADER_HEX,
        CONTROL_CHANNEL_CLOSED_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Agent);
    let closed: ChannelClosed = from_json_bytes(&message.payload).unwrap();
    assert_eq!(closed.session_id, "sess-port-0008");
    assert_eq!(closed.created_date, "2026-11-22T22:58:35.026Z");
    assert_eq!(closed.message_type, "channel_closed");
    assert_eq!(closed.schema_version, 1);
    assert_eq!(
        as_value(&to_json_bytes(&closed).unwrap()),
        as_value(&message.payload)
    );
}

#[test]
fn agent_session_state() {
    let frame = recorded(SESSION_STATE_HEADER_HEX, SESSION_STATE_TEXT);
    let message = decode_canonical(&frame, Validation::Structure);
    assert_eq!(message.message_type, MessageType::AgentSessionState);
    assert_eq!(message.flags, Flags::ACK);
    let state: AgentSessionState = from_json_bytes(&message.payload).unwrap();
    assert_eq!(state.schema_version, 1);
    assert_eq!(state.session_state, SessionState::Connected);
    assert_eq!(state.session_id, "sess-port-0007");
    assert_eq!(
        to_json_bytes(&state).unwrap(),
        SESSION_STATE_TEXT.as_bytes()
    );
    let terminating: AgentSessionState =
        from_json_bytes(br#"{"SchemaVersion":1,"SessionState":"Terminating","SessionId":"x"}"#)
            .unwrap();
    assert_eq!(terminating.session_state, SessionState::Terminating);
}

// ---------------------------------------------------------------------------------------------
// Control channel: sessions (§9.1).
// ---------------------------------------------------------------------------------------------

#[test]
fn agent_task_complete() {
    for (header, text, status) in [
        (
            TASK_COMPLETE_FAILED_HEADER_HEX,
            TASK_COMPLETE_FAILED_TEXT,
            ResultStatus::Failed,
        ),
        (
            TASK_COMPLETE_SUCCESS_HEADER_HEX,
            TASK_COMPLETE_SUCCESS_TEXT,
            ResultStatus::Success,
        ),
    ] {
        let message = decode_canonical(&recorded(header, text), Validation::Structure);
        assert_eq!(message.message_type, MessageType::AgentTaskComplete);
        assert_eq!(message.flags, Flags::NONE);
        let complete: AgentTaskComplete = from_json_bytes(&message.payload).unwrap();
        assert_eq!(complete.final_task_status, status);
        assert_eq!(complete.topic, TOPIC_AGENT_TASK_COMPLETE);
        assert_eq!(complete.instance_id, "i-0123456789abcdef0");
        assert_eq!(complete.retry_number, 1);
        assert!(!complete.is_routing_failure);
        assert_eq!(to_json_bytes(&complete).unwrap(), text.as_bytes());
    }
    let failed: AgentTaskComplete = from_json_bytes(TASK_COMPLETE_FAILED_TEXT.as_bytes()).unwrap();
    assert!(
        failed
            .output
            .starts_with("Unable to remarshal session properties.")
    );
}

#[test]
fn agent_task_acknowledge() {
    let message = decode_canonical(
        &recorded(TASK_ACK_HEADER_HEX, TASK_ACK_TEXT),
        Validation::Agent,
    );
    assert_eq!(message.message_type, MessageType::AgentTaskAcknowledge);
    let ack: AgentTaskAcknowledge = from_json_bytes(&message.payload).unwrap();
    assert_eq!(ack.message_id, "441bbdab-bfd7-440c-802f-5a803dc1fa19");
    assert_eq!(ack.task_id, "sess-shell-0002");
    assert_eq!(ack.topic, TOPIC_AGENT_TASK_COMPLETE);
    assert_eq!(python_json(&ack), TASK_ACK_TEXT.as_bytes());
}

#[test]
fn interactive_shell_for_a_shell() {
    let frame = recorded(
        SHELL_INTERACTIVE_SHELL_HEADER_HEX,
        SHELL_INTERACTIVE_SHELL_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Agent);
    assert_eq!(message.message_type, MessageType::InteractiveShell);
    let outer: MgsPayload = from_json_bytes(&message.payload).unwrap();
    assert_eq!(outer.task_id, "sess-shell-0002");
    assert_eq!(outer.topic, TOPIC_START_SESSION);
    assert_eq!(outer.schema_version, 1);
    let task = outer.task().unwrap();
    assert_eq!(task.document_name, "SSM-SessionManagerRunShell");
    assert_eq!(task.session_id, "sess-shell-0002");
    assert_eq!(task.session_owner, "arn:aws:iam::123456789012:user/admin");
    assert!(task.parameters.is_empty());
    let document = &task.document_content;
    assert_eq!(document.schema_version, "1.0");
    assert_eq!(document.session_type, "Standard_Stream");
    assert!(document.inputs.run_as_enabled);
    assert_eq!(document.inputs.run_as_default_user, "nobody");
    assert_eq!(document.inputs.shell_profile, ShellProfile::default());
    assert_eq!(document.properties, json!({}));
    // Field order, inner and outer, is the service's.
    let inner = String::from_utf8(python_json(&task)).unwrap();
    assert_eq!(inner, outer.content);
    let rebuilt = MgsPayload {
        content: inner,
        ..outer.clone()
    };
    assert_eq!(
        python_json(&rebuilt),
        SHELL_INTERACTIVE_SHELL_TEXT.as_bytes()
    );
    // What we write ourselves reads back the same.
    let ours = MgsPayload::from_task(&task, TOPIC_START_SESSION).unwrap();
    assert_eq!(ours.task_id, outer.task_id);
    assert_eq!(ours.task().unwrap(), task);
    assert_eq!(
        as_value(&to_json_bytes(&ours).unwrap())["Content"],
        json!(to_json_string(&task).unwrap())
    );
}

#[test]
fn interactive_shell_for_port_forwarding() {
    let frame = recorded(
        PORT_INTERACTIVE_SHELL_HEADER_HEX,
        PORT_INTERACTIVE_SHELL_TEXT,
    );
    let message = decode_canonical(&frame, Validation::Agent);
    let outer: MgsPayload = from_json_bytes(&message.payload).unwrap();
    let task = outer.task().unwrap();
    assert_eq!(task.document_name, "AWS-StartPortForwardingSession");
    assert_eq!(task.parameters["portNumber"], "8090");
    let document = &task.document_content;
    assert_eq!(document.session_type, "Port");
    assert_eq!(
        document.parameters["localPortNumber"],
        json!({"type":"String","default":"0"})
    );
    assert_eq!(document.properties["type"], "LocalPortForwarding");
    assert_eq!(document.properties["portNumber"], "{{ portNumber }}");
    assert!(!document.inputs.run_as_enabled);
    // The maps are written sorted, so compare as values.
    assert_eq!(
        as_value(&to_json_bytes(&task).unwrap()),
        as_value(outer.content.as_bytes())
    );
}

// ---------------------------------------------------------------------------------------------
// Control channel: Run Command (§9.1, §9.2).
// ---------------------------------------------------------------------------------------------

#[test]
fn agent_job_send_command() {
    let message = decode_canonical(
        &recorded(AGENT_JOB_HEADER_HEX, AGENT_JOB_TEXT),
        Validation::Agent,
    );
    assert_eq!(message.message_type, MessageType::AgentJob);
    let job: AgentJob = from_json_bytes(&message.payload).unwrap();
    assert_eq!(
        job.job_id,
        "aws.ssm.11111111-2222-3333-4444-555555555555.i-0123456789abcdef0"
    );
    assert_eq!(job.topic, "aws.ssm.sendCommand.test");
    let JobContent::SendCommand(command) = job.job_content().unwrap() else {
        panic!("not a send command")
    };
    assert_eq!(command.command_id, "11111111-2222-3333-4444-555555555555");
    assert_eq!(command.document_name, "AWS-RunShellScript");
    assert_eq!(command.cloud_watch_output_enabled, "false");
    assert_eq!(command.parameters["commands"].as_array().unwrap().len(), 4);
    assert_eq!(command.parameters["workingDirectory"], json!([""]));
    assert_eq!(command.document_content["schemaVersion"], "1.2");
    assert_eq!(
        as_value(&to_json_bytes(&command).unwrap()),
        as_value(job.content.as_bytes())
    );
    let ours = AgentJob::send_command(&job.job_id, &job.topic, &command).unwrap();
    assert_eq!(
        ours.job_content().unwrap(),
        JobContent::SendCommand(command)
    );
    assert_eq!(
        as_value(&to_json_bytes(&ours).unwrap())["JobId"],
        json!(job.job_id)
    );
}

#[test]
fn agent_job_cancel_command() {
    let message = decode_canonical(
        &recorded(CANCEL_JOB_HEADER_HEX, CANCEL_JOB_TEXT),
        Validation::Agent,
    );
    let job: AgentJob = from_json_bytes(&message.payload).unwrap();
    assert!(job.topic.starts_with(TOPIC_CANCEL_COMMAND));
    let cancel = CancelCommandPayload {
        cancel_message_id: s("aws.ssm.44444444-5555-6666-7777-888888888888.i-0123456789abcdef0"),
    };
    assert_eq!(
        job.job_content().unwrap(),
        JobContent::CancelCommand(cancel.clone())
    );
    let rebuilt = AgentJob {
        content: String::from_utf8(python_json(&cancel)).unwrap(),
        ..job.clone()
    };
    assert_eq!(python_json(&rebuilt), CANCEL_JOB_TEXT.as_bytes());
    let ours = AgentJob::cancel_command(&job.job_id, &job.topic, &cancel).unwrap();
    assert_eq!(
        ours.job_content().unwrap(),
        JobContent::CancelCommand(cancel)
    );
}

#[test]
fn agent_job_with_an_unknown_topic() {
    let job = AgentJob {
        topic: s("aws.ssm.somethingElse"),
        content: s("{}"),
        ..AgentJob::default()
    };
    assert!(
        matches!(job.job_content(), Err(PayloadError::UnknownJobTopic(t)) if t == "aws.ssm.somethingElse")
    );
}

#[test]
fn agent_job_ack() {
    for (header, text, code) in [
        (JOB_ACK_HEADER_HEX, JOB_ACK_TEXT, "200"),
        (
            JOB_ACK_DUPLICATE_HEADER_HEX,
            JOB_ACK_DUPLICATE_TEXT,
            "51405",
        ),
    ] {
        let message = decode_canonical(&recorded(header, text), Validation::Structure);
        assert_eq!(message.message_type, MessageType::AgentJobAck);
        let ack: AgentJobAck = from_json_bytes(&message.payload).unwrap();
        assert_eq!(ack.status_code, code);
        assert_eq!(to_json_bytes(&ack).unwrap(), text.as_bytes());
    }
    let ack: AgentJobAck = from_json_bytes(JOB_ACK_TEXT.as_bytes()).unwrap();
    assert_eq!(
        ack.acknowledged_message_id,
        "f1ae6d84-9472-4914-b48e-09f84dbef7f8"
    );
    assert_eq!(ack.created_date, "2026-11-22T22:43:07.685Z");
    assert_eq!(ack.error_message, "Successful");
}

#[test]
fn agent_job_reply_in_progress() {
    let frame = recorded(JOB_REPLY_IN_PROGRESS_HEADER_HEX, JOB_REPLY_IN_PROGRESS_TEXT);
    let message = decode_canonical(&frame, Validation::Structure);
    assert_eq!(message.message_type, MessageType::AgentJobReply);
    let reply: AgentJobReply = from_json_bytes(&message.payload).unwrap();
    assert_eq!(reply.topic, TOPIC_SEND_COMMAND);
    let content = reply.reply().unwrap();
    assert_eq!(content.document_status, ResultStatus::InProgress);
    assert_eq!(content.runtime_status, None);
    assert_eq!(content.additional_info.runtime_status_counts, None);
    assert_eq!(content.additional_info.able_to_open_mgs_connection, None);
    assert_eq!(content.additional_info.agent.ver, "3.3.1142.0");
    assert_eq!(to_json_string(&content).unwrap(), reply.content);
    let ours = AgentJobReply::from_reply(&reply.job_id, &reply.topic, &content).unwrap();
    assert_eq!(ours, reply);
    assert_eq!(
        to_json_bytes(&ours).unwrap(),
        JOB_REPLY_IN_PROGRESS_TEXT.as_bytes()
    );
}

#[test]
fn agent_job_reply_final_with_go_escapes() {
    let frame = recorded(JOB_REPLY_FAILED_HEADER_HEX, JOB_REPLY_FAILED_TEXT);
    let message = decode_canonical(&frame, Validation::Structure);
    let reply: AgentJobReply = from_json_bytes(&message.payload).unwrap();
    let content = reply.reply().unwrap();
    assert_eq!(content.document_status, ResultStatus::Failed);
    assert_eq!(
        content
            .additional_info
            .runtime_status_counts
            .as_ref()
            .unwrap()["Failed"],
        1
    );
    let plugin = &content.runtime_status.as_ref().unwrap()["aws:runShellScript"];
    assert_eq!(plugin.status, ResultStatus::Failed);
    assert_eq!(plugin.code, 1);
    assert!(
        plugin.output.contains("echo err >&2"),
        "Go's \\u003e\\u0026 is read back as >&"
    );
    assert!(
        plugin
            .standard_error
            .contains("WorkingDirectory of type string")
    );
    // Go writes `>&` as `\u003e\u0026`; so must we, for the bytes to match.
    assert_eq!(
        to_json_bytes(&reply.reply().unwrap()).unwrap(),
        reply.content.as_bytes()
    );
    let ours = AgentJobReply::from_reply(&reply.job_id, &reply.topic, &content).unwrap();
    assert_eq!(
        to_json_bytes(&ours).unwrap(),
        JOB_REPLY_FAILED_TEXT.as_bytes()
    );

    let frame = recorded(JOB_REPLY_SUCCESS_HEADER_HEX, JOB_REPLY_SUCCESS_TEXT);
    let message = decode_canonical(&frame, Validation::Structure);
    let reply: AgentJobReply = from_json_bytes(&message.payload).unwrap();
    let content = reply.reply().unwrap();
    let plugin = &content.runtime_status.as_ref().unwrap()["aws:runShellScript"];
    assert_eq!(
        (plugin.status.clone(), plugin.code),
        (ResultStatus::Success, 0)
    );
    assert_eq!(plugin.standard_output, "hello\n");
    assert_eq!(
        to_json_bytes(&reply).unwrap(),
        JOB_REPLY_SUCCESS_TEXT.as_bytes()
    );
    assert_eq!(to_json_string(&content).unwrap(), reply.content);
}

#[test]
fn agent_job_reply_ack() {
    let frame = recorded(JOB_REPLY_ACK_HEADER_HEX, JOB_REPLY_ACK_TEXT);
    let message = decode_canonical(&frame, Validation::Agent);
    assert_eq!(message.message_type, MessageType::AgentJobReplyAck);
    let ack: AgentJobReplyAck = from_json_bytes(&message.payload).unwrap();
    assert_eq!(
        ack.acknowledged_message_id,
        "2510f715-a9b2-4258-8d65-aa3a29f11963"
    );
    assert_eq!(python_json(&ack), JOB_REPLY_ACK_TEXT.as_bytes());
}

#[test]
fn mds_reply_carries_able_to_open_mgs_connection() {
    let text = r#"{"additionalInfo":{"agent":{"lang":"en-US","name":"amazon-ssm-agent","os":"linux","osver":"1","ver":"3.3.1142.0"},"dateTime":"2024-01-01T00:00:00.000Z","runId":"","runtimeStatusCounts":{"Success":1},"ableToOpenMGSConnection":false},"documentStatus":"Success","documentTraceOutput":"","runtimeStatus":null}"#;
    let reply: SendReplyPayload = from_json_bytes(text.as_bytes()).unwrap();
    assert_eq!(
        reply.additional_info.able_to_open_mgs_connection,
        Some(false)
    );
    assert_eq!(to_json_bytes(&reply).unwrap(), text.as_bytes());
}

#[test]
fn go_escaping_of_html_characters_and_line_separators() {
    let text = "<a href=\"x\">&\u{2028}\u{2029}\n\u{1}é";
    assert_eq!(
        to_json_bytes(text).unwrap(),
        "\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u2028\\u2029\\n\\u0001é\"".as_bytes()
    );
}

#[test]
fn readers_are_lenient() {
    // Unknown fields are ignored, absent fields defaulted, Go's null maps accepted.
    let task: AgentTaskPayload = from_json_bytes(
        br#"{"SessionId":"s","Extra":1,"Parameters":null,"DocumentContent":{"parameters":null}}"#,
    )
    .unwrap();
    assert_eq!(task.session_id, "s");
    assert!(task.parameters.is_empty());
    assert_eq!(task.document_content, SessionDocumentContent::default());
    let state: AgentSessionState = from_json_bytes(br#"{"SessionState":"Paused"}"#).unwrap();
    assert_eq!(state.session_state, SessionState::Other(s("Paused")));
    assert_eq!(
        to_json_bytes(&state).unwrap(),
        br#"{"SchemaVersion":0,"SessionState":"Paused","SessionId":""}"#
    );
    let size: Size = from_json_bytes(br#"{"rows":5}"#).unwrap();
    assert_eq!(size, Size { cols: 0, rows: 5 });
}

// ---------------------------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------------------------

/// Any text, control characters, HTML characters and line separators included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["(?s).{0,12}", "[<>&\u{2028}\u{2029}\"\\\\\n\u{0}a-z]{0,8}",]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn json_map() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(text(), json_value(), 0..4)
        .prop_map(|map| map.into_iter().collect())
}

fn result_status() -> impl Strategy<Value = ResultStatus> {
    text().prop_map(ResultStatus::from)
}

prop_compose! {
    fn open_client()(a in text(), b in text(), c in text(), d in text(), e in proptest::option::of(text()))
        -> OpenDataChannelInput {
        OpenDataChannelInput { message_schema_version: a, request_id: b, token_value: c, client_id: d, client_version: e }
    }
}

prop_compose! {
    fn open_agent()(a in text(), b in text(), c in text(), d in text(), e in text()) -> AgentOpenDataChannelInput {
        AgentOpenDataChannelInput { message_schema_version: a, request_id: b, token_value: c, client_instance_id: d, client_id: e }
    }
}

prop_compose! {
    fn open_control()(a in proptest::option::of(text()), b in text(), c in text(), d in text(), e in text(), f in text())
        -> OpenControlChannelInput {
        OpenControlChannelInput { cookie: a, message_schema_version: b, request_id: c, token_value: d, agent_version: e, platform_type: f }
    }
}

fn requested_action() -> impl Strategy<Value = RequestedClientAction> {
    prop_oneof![
        (text(), json_value()).prop_map(|(session_type, properties)| {
            RequestedClientAction::SessionType(SessionTypeRequest {
                session_type,
                properties,
            })
        }),
        (text(), text()).prop_map(|(kms_key_id, challenge)| {
            RequestedClientAction::KmsEncryption(KmsEncryptionRequest {
                kms_key_id,
                challenge,
            })
        }),
        (text(), json_value())
            .prop_filter("known action types are typed", |(t, _)| {
                t != "SessionType" && t != "KMSEncryption"
            })
            .prop_map(|(t, action_parameters)| RequestedClientAction::Other {
                action_type: ActionType::from(t),
                action_parameters,
            }),
    ]
}

prop_compose! {
    fn handshake_request()(agent_version in text(), actions in prop::collection::vec(requested_action(), 0..4))
        -> HandshakeRequest {
        HandshakeRequest { agent_version, requested_client_actions: actions }
    }
}

prop_compose! {
    fn processed_action()(t in text(), status in any::<i64>(), result in json_value(), error in text())
        -> ProcessedClientAction {
        ProcessedClientAction { action_type: ActionType::from(t), action_status: ActionStatus::from(status), action_result: result, error }
    }
}

prop_compose! {
    fn handshake_response()(
        client_version in text(),
        actions in prop::collection::vec(processed_action(), 0..3),
        errors in proptest::option::of(prop::collection::vec(text(), 0..3)),
    ) -> HandshakeResponse {
        HandshakeResponse { client_version, processed_client_actions: actions, errors }
    }
}

prop_compose! {
    fn channel_closed()(a in text(), b in text(), c in text(), d in text(), e in text(), f in any::<u32>(), g in text())
        -> ChannelClosed {
        ChannelClosed { message_id: a, created_date: b, destination_id: c, session_id: d, message_type: e, schema_version: f, output: g }
    }
}

prop_compose! {
    fn session_inputs()(
        (a, b, c) in (text(), text(), any::<bool>()),
        (d, e, f) in (text(), any::<bool>(), any::<bool>()),
        (g, h, i) in (text(), any::<bool>(), text()),
        (windows, linux) in (text(), text()),
    ) -> SessionInputs {
        SessionInputs {
            s3_bucket_name: a, s3_key_prefix: b, s3_encryption_enabled: c,
            cloud_watch_log_group_name: d, cloud_watch_streaming_enabled: e, cloud_watch_encryption_enabled: f,
            kms_key_id: g, run_as_enabled: h, run_as_default_user: i,
            shell_profile: ShellProfile { windows, linux },
        }
    }
}

prop_compose! {
    fn agent_task()(
        (a, b, c, d) in (text(), text(), text(), text()),
        parameters in json_map(),
        (e, f, g) in (text(), text(), text()),
        inputs in session_inputs(),
        document_parameters in json_map(),
        properties in json_value(),
    ) -> AgentTaskPayload {
        AgentTaskPayload {
            document_name: a, session_id: b, run_as_user: c, session_owner: d, parameters,
            document_content: SessionDocumentContent {
                schema_version: e, description: f, session_type: g, inputs,
                parameters: document_parameters, properties,
            },
        }
    }
}

prop_compose! {
    fn task_complete()(
        (a, b, c, d) in (any::<u32>(), text(), text(), result_status()),
        (e, f, g, h) in (any::<bool>(), text(), text(), text()),
        (i, j, k, l, m) in (text(), text(), text(), text(), any::<i64>()),
    ) -> AgentTaskComplete {
        AgentTaskComplete {
            schema_version: a, task_id: b, topic: c, final_task_status: d, is_routing_failure: e,
            aws_account_id: f, instance_id: g, output: h, s3_bucket: i, s3_url_suffix: j,
            cwl_group: k, cwl_stream: l, retry_number: m,
        }
    }
}

prop_compose! {
    fn send_command()(
        (a, b, c, d, e, f) in (text(), text(), text(), text(), text(), text()),
        parameters in json_map(),
        document_content in json_value(),
    ) -> SendCommandPayload {
        SendCommandPayload {
            command_id: a, document_name: b, output_s3_bucket_name: c, output_s3_key_prefix: d,
            cloud_watch_log_group_name: e, cloud_watch_output_enabled: f, parameters, document_content,
        }
    }
}

prop_compose! {
    fn plugin_status()(
        (status, code, name, output) in (result_status(), any::<i64>(), text(), text()),
        (a, b, c, d) in (text(), text(), text(), text()),
        (e, f, g) in (text(), text(), text()),
    ) -> PluginRuntimeStatus {
        PluginRuntimeStatus {
            status, code, name, output, start_date_time: a, end_date_time: b,
            output_s3_bucket_name: c, output_s3_key_prefix: d, step_name: e,
            standard_output: f, standard_error: g,
        }
    }
}

prop_compose! {
    fn send_reply()(
        (lang, name, os, osver, ver) in (text(), text(), text(), text(), text()),
        (date_time, run_id) in (text(), text()),
        counts in proptest::option::of(prop::collection::btree_map(text(), any::<i64>(), 0..3)),
        able in proptest::option::of(any::<bool>()),
        (document_status, trace) in (result_status(), text()),
        runtime_status in proptest::option::of(prop::collection::btree_map(text(), plugin_status(), 0..3)),
    ) -> SendReplyPayload {
        SendReplyPayload {
            additional_info: AdditionalInfo {
                agent: AgentInfo { lang, name, os, osver, ver },
                date_time, run_id, runtime_status_counts: counts, able_to_open_mgs_connection: able,
            },
            document_status, document_trace_output: trace, runtime_status,
        }
    }
}

/// Serializes with [`to_json_bytes`], checks that no raw HTML character got through (Go escapes
/// them), and reads the bytes back.
fn round_trip<T>(value: &T) -> T
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let bytes = to_json_bytes(value).unwrap();
    assert!(
        !bytes.iter().any(|b| matches!(b, b'<' | b'>' | b'&')),
        "unescaped HTML character"
    );
    from_json_bytes(&bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn open_frames_round_trip(client in open_client(), agent in open_agent(), control in open_control()) {
        prop_assert_eq!(round_trip(&client), client.clone());
        prop_assert_eq!(round_trip(&agent), agent.clone());
        prop_assert_eq!(round_trip(&control), control);
        let client = DataChannelOpen::Client(client);
        prop_assert_eq!(DataChannelOpen::from_json(&client.to_json_bytes().unwrap()).unwrap(), client);
        let agent = DataChannelOpen::Agent(agent);
        prop_assert_eq!(DataChannelOpen::from_json(&agent.to_json_bytes().unwrap()).unwrap(), agent);
    }

    #[test]
    fn handshake_round_trips(
        request in handshake_request(),
        response in handshake_response(),
        nanos in any::<i64>(),
        message in text(),
        challenge in text(),
    ) {
        prop_assert_eq!(round_trip(&request), request);
        prop_assert_eq!(round_trip(&response), response);
        let complete = HandshakeComplete { handshake_time_to_complete: nanos, customer_message: message };
        prop_assert_eq!(round_trip(&complete), complete);
        let challenge = EncryptionChallenge { challenge };
        prop_assert_eq!(round_trip(&challenge), challenge);
    }

    #[test]
    fn data_payloads_round_trip(cols in any::<u32>(), rows in any::<u32>(), flag in any::<u32>(), code in any::<i64>()) {
        let size = Size { cols, rows };
        prop_assert_eq!(round_trip(&size), size);
        let flag = Flag::from_u32(flag);
        prop_assert_eq!(Flag::decode(&flag.encode()).unwrap(), flag);
        prop_assert_eq!(ExitCode::parse(&ExitCode(code).encode()).unwrap(), ExitCode(code));
    }

    #[test]
    fn service_payloads_round_trip(
        closed in channel_closed(),
        (schema, state, session) in (any::<u32>(), text(), text()),
        (seq, kind, id, sequential) in (any::<i64>(), text(), text(), any::<bool>()),
    ) {
        prop_assert_eq!(round_trip(&closed), closed);
        let state = AgentSessionState { schema_version: schema, session_state: SessionState::from(state), session_id: session };
        prop_assert_eq!(round_trip(&state), state);
        let ack = Acknowledge { message_type: kind, message_id: id, sequence_number: seq, is_sequential_message: sequential };
        prop_assert_eq!(round_trip(&ack), ack);
    }

    #[test]
    fn session_control_payloads_round_trip(
        task in agent_task(),
        topic in text(),
        complete in task_complete(),
        (schema, id, task_id) in (any::<u32>(), text(), text()),
    ) {
        let outer = MgsPayload::from_task(&task, &topic).unwrap();
        let outer = round_trip(&outer);
        prop_assert_eq!(&outer.task_id, &task.session_id);
        prop_assert_eq!(outer.task().unwrap(), task);
        prop_assert_eq!(round_trip(&complete), complete);
        let ack = AgentTaskAcknowledge { schema_version: schema, message_id: id, task_id, topic };
        prop_assert_eq!(round_trip(&ack), ack);
    }

    #[test]
    fn run_command_payloads_round_trip(
        command in send_command(),
        cancel_id in text(),
        (job_id, suffix) in (text(), text()),
        reply in send_reply(),
        (a, b, c, d, e) in (text(), text(), text(), text(), text()),
    ) {
        let job = round_trip(&AgentJob::send_command(&job_id, &format!("{TOPIC_SEND_COMMAND}{suffix}"), &command).unwrap());
        prop_assert_eq!(job.job_content().unwrap(), JobContent::SendCommand(command));
        let cancel = CancelCommandPayload { cancel_message_id: cancel_id };
        let job = round_trip(&AgentJob::cancel_command(&job_id, TOPIC_CANCEL_COMMAND, &cancel).unwrap());
        prop_assert_eq!(job.job_content().unwrap(), JobContent::CancelCommand(cancel));
        let wrapped = round_trip(&AgentJobReply::from_reply(&job_id, TOPIC_SEND_COMMAND, &reply).unwrap());
        prop_assert_eq!(wrapped.reply().unwrap(), reply);
        let ack = AgentJobAck { job_id: a, acknowledged_message_id: b, created_date: c, status_code: d, error_message: e };
        prop_assert_eq!(round_trip(&ack), ack.clone());
        let reply_ack = AgentJobReplyAck { job_id: ack.job_id, acknowledged_message_id: ack.acknowledged_message_id };
        prop_assert_eq!(round_trip(&reply_ack), reply_ack);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_everything(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        parse_everything(&serde_json::to_vec(&value).unwrap());
    }
}

/// Feeds `bytes` to every payload reader; each may refuse it but none may panic.
fn parse_everything(bytes: &[u8]) {
    let _ = DataChannelOpen::from_json(bytes);
    let _ = Flag::decode(bytes);
    let _ = ExitCode::parse(bytes);
    let _ = from_json_bytes::<Acknowledge>(bytes);
    let _ = from_json_bytes::<OpenControlChannelInput>(bytes);
    let _ = from_json_bytes::<HandshakeRequest>(bytes);
    let _ = from_json_bytes::<HandshakeResponse>(bytes);
    let _ = from_json_bytes::<HandshakeComplete>(bytes);
    let _ = from_json_bytes::<EncryptionChallenge>(bytes);
    let _ = from_json_bytes::<Size>(bytes);
    let _ = from_json_bytes::<ChannelClosed>(bytes);
    let _ = from_json_bytes::<AgentSessionState>(bytes);
    let _ = from_json_bytes::<AgentTaskComplete>(bytes);
    let _ = from_json_bytes::<AgentTaskAcknowledge>(bytes);
    let _ = from_json_bytes::<AgentJobAck>(bytes);
    let _ = from_json_bytes::<AgentJobReplyAck>(bytes);
    let _ = from_json_bytes::<SendCommandPayload>(bytes);
    let _ = from_json_bytes::<SendReplyPayload>(bytes);
    if let Ok(outer) = from_json_bytes::<MgsPayload>(bytes) {
        let _ = outer.task();
    }
    if let Ok(job) = from_json_bytes::<AgentJob>(bytes) {
        let _ = job.job_content();
    }
    if let Ok(reply) = from_json_bytes::<AgentJobReply>(bytes) {
        let _ = reply.reply();
    }
}

// ---------------------------------------------------------------------------------------------
// Golden data, copied from shared/spec/traces (text = the exact payload bytes).
// ---------------------------------------------------------------------------------------------

/// plugin-shell.jsonl event 6: the plugin's OpenDataChannelInput
const PLUGIN_OPEN: &str = r#"{"MessageSchemaVersion":"1.0","RequestId":"d7d4e1e2-9add-4066-8782-d0b067851197","TokenValue":"tok-340f09-0","ClientId":"615b9157-e8f4-48f4-b85b-020adf469d09","ClientVersion":"1.2.677.0"}"#;

/// agent-port.jsonl event 4: the agent's data-channel open frame
const AGENT_OPEN: &str = r#"{"MessageSchemaVersion":"1.0","RequestId":"08c611ae-9963-4a06-a370-c20ec5ed6336","TokenValue":"dc-token-c498c3c99898","ClientInstanceId":"i-0123456789abcdef0","ClientId":""}"#;

/// agent-startup.jsonl event 6: the agent's control-channel open frame
const CONTROL_OPEN: &str = r#"{"Cookie":null,"MessageSchemaVersion":"1.0","RequestId":"219af1cf-1949-4c2d-a554-c21031acb7cd","TokenValue":"cc-token-5f85b4cec455","AgentVersion":"3.3.1142.0","PlatformType":"linux"}"#;

/// plugin-shell.jsonl event 10: the plugin acks output seq 0
const PLUGIN_ACK_HEADER_HEX: &str = "0000007461636b6e6f776c6564676520202020202020202020202020202020202020202000000001000001a2056c038300000000000000000000000000000003b9f8decac0d98a6e7e6b403a79724d9f6bb4bbe6c72e29e7bc76103112a926bb6285f23f2e4ea16d7bb17a6aadc0dc8c00000000000000b0";
const PLUGIN_ACK_TEXT: &str = r#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"a679575f-02ea-4b17-9254-604d990d741e","AcknowledgedMessageSequenceNumber":0,"IsSequentialMessage":true}"#;

/// plugin-shell.jsonl event 11: the plugin's Size, input seq 0
const SIZE_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056c038300000000000000000000000000000000a391f5e4b933450e77e2100dd19d4d28e1537ad4749d88db6f6d97ed16e443dee6ba30c43afa2c4875bb1432f07d8b3a00000003000000177b22636f6c73223a3330302c22726f7773223a3130307d";

/// plugin-shell.jsonl event 22: channel_closed from the server to the plugin
const CHANNEL_CLOSED_HEADER_HEX: &str = "000000746368616e6e656c5f636c6f73656420202020202020202020202020202020202000000001000001a2056c0acd000000000000000000000000000000009e51718f28f588bb92d9efdf66cb42b96987829fbc050a3d1b7187748af833cab1fa976552bb08171d6626d85c8ce8b000000000000000da";
const CHANNEL_CLOSED_TEXT: &str = r#"{"MessageId":"8f411831-14c1-417e-bbb1-b7ff6f0730ee","CreatedDate":"1795387296461","DestinationId":"i-0123456789abcdef0","SessionId":"sess-76898a33130340f09","MessageType":"channel_closed","SchemaVersion":1,"Output":""}"#;

/// agent-port.jsonl event 30: channel_closed from the server on the control channel (other key order, Python separators)
const CONTROL_CHANNEL_CLOSED_HEADER_HEX: &str = "000000746368616e6e656c5f636c6f73656420202020202020202020202020202020202000000001000001a2057b959300000000000000000000000000000000ad49096b11b2777c5661d9c2b9ed4aa2b07e833bd895ff74f8a39a8644e4a1289ef63a04e83ccb3801f8b9c17f19217e00000000000000ea";
const CONTROL_CHANNEL_CLOSED_TEXT: &str = r#"{"MessageType": "channel_closed", "MessageId": "426cf7ab-d35c-441a-8649-3b60886adb68", "DestinationId": "i-0123456789abcdef0", "SessionId": "sess-port-0008", "SchemaVersion": 1, "CreatedDate": "2026-11-22T22:58:35.026Z", "Output": ""}"#;

/// agent-port.jsonl event 23: the agent's HandshakeRequest (string properties)
const AGENT_HANDSHAKE_REQUEST_HEADER_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2057b801b00000000000000000000000000000001b4b7b103ff045d7f63e60c8a81544a563427b1502ec929a55fabf4dac7eda23b5ac02bbd3ccdefadbd2c6667aa82a01b00000005000000d5";
const AGENT_HANDSHAKE_REQUEST_TEXT: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"0","portNumber":"8090","type":"LocalPortForwarding"}}}]}"#;

/// agent-port.jsonl event 6: the agent's HandshakeRequest (list-valued properties)
const AGENT_HANDSHAKE_REQUEST_LISTS_HEADER_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2057b746e0000000000000000000000000000000194f0511782d197a7ed1f9bef938a4fb8d0389497f03517b80e9ff7951ea92af69ad012837f7cb5df159f6b41cf3625e100000005000000d9";
const AGENT_HANDSHAKE_REQUEST_LISTS_TEXT: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":["0"],"portNumber":["8090"],"type":"LocalPortForwarding"}}}]}"#;

/// agent-noninteractive.jsonl event 6: the agent's HandshakeRequest with Properties null
const NONINTERACTIVE_HANDSHAKE_REQUEST_HEADER_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056f0dfa00000000000000000000000000000001b8c2529f7094b743aba2fd410a9c48c715a927b36e8b46a7679f64fee30df2190310c9b499b22875eab1fbd9727ffabe00000005000000a3";
const NONINTERACTIVE_HANDSHAKE_REQUEST_TEXT: &str = r#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"NonInteractiveCommands","Properties":null}}]}"#;

/// plugin-port_mux.jsonl event 6: a HandshakeRequest written by the recording server (Python separators)
const SERVER_HANDSHAKE_REQUEST_HEADER_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056f7d4a00000000000000000000000000000001af6941da2780c8ac7c9ffa7e9a9d4def05084e82911706fec13840ef1817357a58627d285df3efd2e4a9f8cd84f8cec300000005000000e5";
const SERVER_HANDSHAKE_REQUEST_TEXT: &str = r#"{"AgentVersion": "3.3.1142.0", "RequestedClientActions": [{"ActionType": "SessionType", "ActionParameters": {"SessionType": "Port", "Properties": {"portNumber": "80", "type": "LocalPortForwarding", "localPortNumber": "40259"}}}]}"#;

/// plugin-port_mux.jsonl event 9: the plugin's HandshakeResponse
const PLUGIN_HANDSHAKE_RESPONSE_HEADER_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056f7d4a00000000000000000000000000000000b28b82b44ace2e5de8fbb7f01ed440f7035056b24ece59f84a6ba856caba412de915a64e738063c9d37bc4a755e559970000000600000093";
const PLUGIN_HANDSHAKE_RESPONSE_TEXT: &str = r#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}"#;

/// agent-port.jsonl event 27: the agent's HandshakeComplete
const AGENT_HANDSHAKE_COMPLETE_HEADER_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2057b801b000000000000000100000000000000009904ef924a08fdc9afd77feca46a45370a93fbb9513e243b15c0935afef756d8aafbc783e9ce566bd0bbe9fda3de23ae0000000700000037";
const AGENT_HANDSHAKE_COMPLETE_TEXT: &str =
    r#"{"HandshakeTimeToComplete":724713,"CustomerMessage":""}"#;

/// plugin-port_mux.jsonl event 14: HandshakeComplete with a CustomerMessage (Python separators)
const SERVER_HANDSHAKE_COMPLETE_HEADER_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056f7d4b00000000000000010000000000000000a7abd8eec52e79508d9b5259b5694c4efb3c29e6acc45e7670473dfe0d350e178dd98b41713d5a3fd14defad322920e2000000070000005e";
const SERVER_HANDSHAKE_COMPLETE_TEXT: &str = r#"{"HandshakeTimeToComplete": 123456789, "CustomerMessage": "[customer message from the agent]"}"#;

/// plugin-port_mux.jsonl event 49: Flag ConnectToPortError to the plugin
const FLAG_CONNECT_ERROR_FRAME_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056faf5b00000000000000040000000000000000a21b52afbe8152edaf61836dd79a44c488185d128d9922e0e6bcd32b07b6c7f20f27968eab447a1d8d1cdf250f79f7d30000000a0000000400000003";

/// plugin-port_mux.jsonl event 54: the plugin's Flag TerminateSession
const FLAG_TERMINATE_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056fb08c000000000000000600000000000000009871c4e3ad8570bf541a632f2c424f3b433ebf5bc03dffa38536673207a21281612cef5faa9bc7a4d5b9be2fdb12cf1a0000000a0000000400000002";

/// plugin-validation.jsonl event 65: ExitCode payload
const EXIT_CODE_FRAME_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056f65bb000000000000000b0000000000000000adf7e58a0cac6701ea68a38ea8e04e5a75b98d703ed4df6516928d0bc88a131bd33a2887c556c2b9299dd3d4329254f60000000c0000000c455849545f434f44453a2033";

/// agent-port.jsonl event 5: agent_session_state Connected
const SESSION_STATE_HEADER_HEX: &str = "000000746167656e745f73657373696f6e5f73746174652020202020202020202020202000000001000001a2057b746e000000000000000000000000000000038317c62ed43a340c7b5c91571bc947651c6f927ef9380529ad807d4ad3c2d9addd9caf8674a23c20f6117283a8974802000000000000004b";
const SESSION_STATE_TEXT: &str =
    r#"{"SchemaVersion":1,"SessionState":"Connected","SessionId":"sess-port-0007"}"#;

/// agent-port.jsonl event 13: agent_task_complete Failed
const TASK_COMPLETE_FAILED_HEADER_HEX: &str = "000000746167656e745f7461736b5f636f6d706c6574652020202020202020202020202000000001000001a2057b7480000000000000000000000000000000008050258f44485e601e54e5329db1409b919693542ef5f24e92a9b3ee716ef1f072d754f40c5ea1853172d2bfbb3bca67000000000000018e";
const TASK_COMPLETE_FAILED_TEXT: &str = r#"{"SchemaVersion":1,"TaskId":"sess-port-0007","Topic":"agent_task_complete","FinalTaskStatus":"Failed","IsRoutingFailure":false,"AwsAccountId":"","InstanceId":"i-0123456789abcdef0","Output":"Unable to remarshal session properties. json: cannot unmarshal array into Go struct field PortParameters.portNumber of type string","S3Bucket":"","S3UrlSuffix":"","CwlGroup":"","CwlStream":"","RetryNumber":1}"#;

/// agent-shell.jsonl event 23: agent_task_complete Success
const TASK_COMPLETE_SUCCESS_HEADER_HEX: &str = "000000746167656e745f7461736b5f636f6d706c6574652020202020202020202020202000000001000001a2056d4d3000000000000000000000000000000000802f5a803dc1fa19441bbdabbfd7440c6c09e031c200e48379ae9f24ad463387d8af6eb11d8e2cd697d0d71a9b97e5b6000000000000010e";
const TASK_COMPLETE_SUCCESS_TEXT: &str = r#"{"SchemaVersion":1,"TaskId":"sess-shell-0002","Topic":"agent_task_complete","FinalTaskStatus":"Success","IsRoutingFailure":false,"AwsAccountId":"","InstanceId":"i-0123456789abcdef0","Output":"","S3Bucket":"","S3UrlSuffix":"","CwlGroup":"","CwlStream":"","RetryNumber":1}"#;

/// agent-shell.jsonl event 24: agent_task_acknowledge (Python separators)
const TASK_ACK_HEADER_HEX: &str = "000000746167656e745f7461736b5f61636b6e6f776c656467652020202020202020202000000001000001a2056d4d3100000000000000000000000000000000b05b723e87e4977433d367e7b9274745115a9fb748fbbd4325a612b325bee5263a63bec3ab37c915de56849e415404210000000000000086";
const TASK_ACK_TEXT: &str = r#"{"SchemaVersion": 1, "MessageId": "441bbdab-bfd7-440c-802f-5a803dc1fa19", "TaskId": "sess-shell-0002", "Topic": "agent_task_complete"}"#;

/// agent-shell.jsonl event 1: interactive_shell for a shell (Python separators)
const SHELL_INTERACTIVE_SHELL_HEADER_HEX: &str = "00000074696e7465726163746976655f7368656c6c20202020202020202020202020202000000001000001a2056d1db000000000000000000000000000000000bfee8aacf67c3400a162135303ca498dba77576e4fb87ef68ee9b0c73eba65ed6e6e9ca9726c42b63a620e46b7c0dc7e0000000000000318";
const SHELL_INTERACTIVE_SHELL_TEXT: &str = r#"{"Content": "{\"DocumentName\": \"SSM-SessionManagerRunShell\", \"SessionId\": \"sess-shell-0002\", \"RunAsUser\": \"\", \"SessionOwner\": \"arn:aws:iam::123456789012:user/admin\", \"Parameters\": {}, \"DocumentContent\": {\"schemaVersion\": \"1.0\", \"description\": \"Session document\", \"sessionType\": \"Standard_Stream\", \"inputs\": {\"s3BucketName\": \"\", \"s3KeyPrefix\": \"\", \"s3EncryptionEnabled\": false, \"cloudWatchLogGroupName\": \"\", \"cloudWatchStreamingEnabled\": false, \"cloudWatchEncryptionEnabled\": false, \"kmsKeyId\": \"\", \"runAsEnabled\": true, \"runAsDefaultUser\": \"nobody\", \"shellProfile\": {\"windows\": \"\", \"linux\": \"\"}}, \"parameters\": {}, \"properties\": {}}}", "TaskId": "sess-shell-0002", "Topic": "aws.ssm.startSession", "SchemaVersion": 1}"#;

/// agent-port.jsonl event 18: interactive_shell for port forwarding (Python separators)
const PORT_INTERACTIVE_SHELL_HEADER_HEX: &str = "00000074696e7465726163746976655f7368656c6c20202020202020202020202020202000000001000001a2057b800100000000000000000000000000000000b6f25f11c974b5baef2f6bc5e4e64c9d14471a2c0825e3c510d354c5b132803c89df8de72d9b979ad9aa0ca10ef12bbd0000000000000436";
const PORT_INTERACTIVE_SHELL_TEXT: &str = r#"{"Content": "{\"DocumentName\": \"AWS-StartPortForwardingSession\", \"SessionId\": \"sess-port-0008\", \"RunAsUser\": \"\", \"SessionOwner\": \"arn:aws:iam::123456789012:user/admin\", \"Parameters\": {\"portNumber\": \"8090\", \"localPortNumber\": \"0\"}, \"DocumentContent\": {\"schemaVersion\": \"1.0\", \"description\": \"Port forwarding\", \"sessionType\": \"Port\", \"inputs\": {\"s3BucketName\": \"\", \"s3KeyPrefix\": \"\", \"s3EncryptionEnabled\": false, \"cloudWatchLogGroupName\": \"\", \"cloudWatchStreamingEnabled\": false, \"cloudWatchEncryptionEnabled\": false, \"kmsKeyId\": \"\", \"runAsEnabled\": false, \"runAsDefaultUser\": \"\", \"shellProfile\": {\"windows\": \"\", \"linux\": \"\"}}, \"parameters\": {\"portNumber\": {\"type\": \"String\", \"description\": \"port\"}, \"localPortNumber\": {\"type\": \"String\", \"default\": \"0\"}}, \"properties\": {\"portNumber\": \"{{ portNumber }}\", \"type\": \"LocalPortForwarding\", \"localPortNumber\": \"{{ localPortNumber }}\"}}}", "TaskId": "sess-port-0008", "Topic": "aws.ssm.startSession", "SchemaVersion": 1}"#;

/// agent-runcommand-mgs.jsonl event 1: agent_job (Python separators)
const AGENT_JOB_HEADER_HEX: &str = "000000746167656e745f6a6f62202020202020202020202020202020202020202020202000000001000001a2056d6f2500000000000000000000000000000000b48e09f84dbef7f8f1ae6d8494724914b7198c07de9d116f7d6dfb3f95a387265939078abc0a511c8026c4d0aad87b240000000000000652";
const AGENT_JOB_TEXT: &str = r#"{"Content": "{\"CommandId\": \"11111111-2222-3333-4444-555555555555\", \"DocumentName\": \"AWS-RunShellScript\", \"OutputS3BucketName\": \"\", \"OutputS3KeyPrefix\": \"\", \"CloudWatchLogGroupName\": \"\", \"CloudWatchOutputEnabled\": \"false\", \"Parameters\": {\"commands\": [\"echo hello from run command\", \"id -un\", \"echo err >&2\", \"exit 3\"], \"workingDirectory\": [\"\"], \"executionTimeout\": [\"3600\"]}, \"DocumentContent\": {\"schemaVersion\": \"1.2\", \"description\": \"Run a shell script or specify the commands to run.\", \"parameters\": {\"commands\": {\"type\": \"StringList\", \"description\": \"(Required) Specify a shell script or a command to run.\", \"minItems\": 1, \"displayType\": \"textarea\"}, \"workingDirectory\": {\"type\": \"String\", \"default\": \"\", \"description\": \"(Optional) The path to the working directory on your instance.\", \"maxChars\": 4096}, \"executionTimeout\": {\"type\": \"String\", \"default\": \"3600\", \"description\": \"(Optional) The time in seconds for a command to complete before it is considered to have failed. Default is 3600 (1 hour). Maximum is 172800 (48 hours).\", \"allowedPattern\": \"([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)\"}}, \"runtimeConfig\": {\"aws:runShellScript\": {\"properties\": [{\"id\": \"0.aws:runShellScript\", \"runCommand\": \"{{ commands }}\", \"workingDirectory\": \"{{ workingDirectory }}\", \"timeoutSeconds\": \"{{ executionTimeout }}\"}]}}}}", "JobId": "aws.ssm.11111111-2222-3333-4444-555555555555.i-0123456789abcdef0", "Topic": "aws.ssm.sendCommand.test", "SchemaVersion": 1}"#;

/// agent-runcommand-mgs.jsonl event 2: agent_job_ack 200
const JOB_ACK_HEADER_HEX: &str = "000000746167656e745f6a6f625f61636b2020202020202020202020202020202020202000000001000001a2056d6f2700000000000000000000000000000000982f2b97946a83ab8e9f01522a52420d3cb0af837c877d7016508bfd37be5c8491c71548ea2d39dcdff3c35e36a22d3500000000000000e3";
const JOB_ACK_TEXT: &str = r#"{"jobId":"aws.ssm.11111111-2222-3333-4444-555555555555.i-0123456789abcdef0","acknowledgedMessageId":"f1ae6d84-9472-4914-b48e-09f84dbef7f8","createdDate":"2026-11-22T22:43:07.685Z","statusCode":"200","errorMessage":"Successful"}"#;

/// agent-runcommand-mgs.jsonl event 26: agent_job_ack 51405 DuplicateCommand
const JOB_ACK_DUPLICATE_HEADER_HEX: &str = "000000746167656e745f6a6f625f61636b2020202020202020202020202020202020202000000001000001a2056dfe6300000000000000000000000000000000967126cc9a961fda5786ff18aebf42361c625e6cc4bed8588f473b7f4b1191dc1a11f1c59cb887581625f3fd6b38c5ef00000000000000eb";
const JOB_ACK_DUPLICATE_TEXT: &str = r#"{"jobId":"aws.ssm.33333333-4444-5555-6666-777777777777.i-0123456789abcdef0","acknowledgedMessageId":"45f95e59-3b5b-42cb-816a-47c307654e5f","createdDate":"2026-11-22T22:43:44.354Z","statusCode":"51405","errorMessage":"DuplicateCommand"}"#;

/// agent-runcommand-mgs.jsonl event 3: agent_job_reply 1 (InProgress, nulls)
const JOB_REPLY_IN_PROGRESS_HEADER_HEX: &str = "000000746167656e745f6a6f625f7265706c79202020202020202020202020202020202000000001000001a2056d6f28000000000000000000000000000000008d65aa3a29f119632510f715a9b242582b436704b7cea0d0c89073ae71026841b90eb1ac5ebf12f57d9d0ebe116ebe3e00000000000001c0";
const JOB_REPLY_IN_PROGRESS_TEXT: &str = r#"{"schemaVersion":1,"jobId":"aws.ssm.11111111-2222-3333-4444-555555555555.i-0123456789abcdef0","content":"{\"additionalInfo\":{\"agent\":{\"lang\":\"en-US\",\"name\":\"amazon-ssm-agent\",\"os\":\"linux\",\"osver\":\"1\",\"ver\":\"3.3.1142.0\"},\"dateTime\":\"2026-11-22T22:43:07.687Z\",\"runId\":\"\",\"runtimeStatusCounts\":null},\"documentStatus\":\"InProgress\",\"documentTraceOutput\":\"\",\"runtimeStatus\":null}","topic":"aws.ssm.sendCommand"}"#;

/// agent-runcommand-mgs.jsonl event 5: agent_job_reply final Failed (Go HTML escapes)
const JOB_REPLY_FAILED_HEADER_HEX: &str = "000000746167656e745f6a6f625f7265706c79202020202020202020202020202020202000000001000001a2056d6f8900000000000000000000000000000000a24a907fca285776e5d5bd29e4cc4580eb761c96f678d2f537430a0089d49951410110554c8265f5911ddd93a2833a830000000000000571";
const JOB_REPLY_FAILED_TEXT: &str = r#"{"schemaVersion":1,"jobId":"aws.ssm.11111111-2222-3333-4444-555555555555.i-0123456789abcdef0","content":"{\"additionalInfo\":{\"agent\":{\"lang\":\"en-US\",\"name\":\"amazon-ssm-agent\",\"os\":\"linux\",\"osver\":\"1\",\"ver\":\"3.3.1142.0\"},\"dateTime\":\"2026-11-22T22:43:07.785Z\",\"runId\":\"\",\"runtimeStatusCounts\":{\"Failed\":1}},\"documentStatus\":\"Failed\",\"documentTraceOutput\":\"\",\"runtimeStatus\":{\"aws:runShellScript\":{\"status\":\"Failed\",\"code\":1,\"name\":\"aws:runShellScript\",\"output\":\"\\n----------ERROR-------\\nInvalid format in plugin properties map[id:0.aws:runShellScript runCommand:[echo hello from run command id -un echo err \\u003e\\u00262 exit 3] timeoutSeconds:[3600] workingDirectory:[]];\\nerror json: cannot unmarshal array into Go struct field RunScriptPluginInput.WorkingDirectory of type string\",\"startDateTime\":\"2026-11-22T22:43:07.737Z\",\"endDateTime\":\"2026-11-22T22:43:07.782Z\",\"outputS3BucketName\":\"\",\"outputS3KeyPrefix\":\"\",\"stepName\":\"\",\"standardOutput\":\"\",\"standardError\":\"Invalid format in plugin properties map[id:0.aws:runShellScript runCommand:[echo hello from run command id -un echo err \\u003e\\u00262 exit 3] timeoutSeconds:[3600] workingDirectory:[]];\\nerror json: cannot unmarshal array into Go struct field RunScriptPluginInput.WorkingDirectory of type string\"}}}","topic":"aws.ssm.sendCommand"}"#;

/// agent-runcommand-mgs.jsonl event 23: agent_job_reply final Success
const JOB_REPLY_SUCCESS_HEADER_HEX: &str = "000000746167656e745f6a6f625f7265706c79202020202020202020202020202020202000000001000001a2056de5af0000000000000000000000000000000090ccd90bbd36c3084d8baaacfb304fbbf48cb926d51e541bfaa27154870e26deae53917ab8f3fccad289602d2004a6e40000000000000314";
const JOB_REPLY_SUCCESS_TEXT: &str = r#"{"schemaVersion":1,"jobId":"aws.ssm.33333333-4444-5555-6666-777777777777.i-0123456789abcdef0","content":"{\"additionalInfo\":{\"agent\":{\"lang\":\"en-US\",\"name\":\"amazon-ssm-agent\",\"os\":\"linux\",\"osver\":\"1\",\"ver\":\"3.3.1142.0\"},\"dateTime\":\"2026-11-22T22:43:38.031Z\",\"runId\":\"\",\"runtimeStatusCounts\":{\"Success\":1}},\"documentStatus\":\"Success\",\"documentTraceOutput\":\"\",\"runtimeStatus\":{\"aws:runShellScript\":{\"status\":\"Success\",\"code\":0,\"name\":\"aws:runShellScript\",\"output\":\"hello\\n\",\"startDateTime\":\"2026-11-22T22:43:38.001Z\",\"endDateTime\":\"2026-11-22T22:43:38.028Z\",\"outputS3BucketName\":\"\",\"outputS3KeyPrefix\":\"\",\"stepName\":\"\",\"standardOutput\":\"hello\\n\",\"standardError\":\"\"}}}","topic":"aws.ssm.sendCommand"}"#;

/// agent-runcommand-mgs.jsonl event 4: agent_job_reply_ack (Python separators)
const JOB_REPLY_ACK_HEADER_HEX: &str = "000000746167656e745f6a6f625f7265706c795f61636b2020202020202020202020202000000001000001a2056d6f2800000000000000000000000000000000afd92650e4513f30ecf438fa319444535613c722a92d04ac10cb6ee8a67acaa49ae39caa8e981b81fc119a726be1a59a000000000000008e";
const JOB_REPLY_ACK_TEXT: &str = r#"{"jobId": "aws.ssm.11111111-2222-3333-4444-555555555555.i-0123456789abcdef0", "acknowledgedMessageId": "2510f715-a9b2-4258-8d65-aa3a29f11963"}"#;

/// agent-cancel.jsonl event 5: cancel agent_job (Python separators)
const CANCEL_JOB_HEADER_HEX: &str = "000000746167656e745f6a6f62202020202020202020202020202020202020202020202000000001000001a2056e1c6300000000000000000000000000000000bc3360543e290bdd37ac48504f0f4e4a9b75ffcd66eaeb66818b349f1d8f85d658ebd67d4fd5169150b4702ca19874e900000000000000f2";
const CANCEL_JOB_TEXT: &str = r#"{"Content": "{\"CancelMessageId\": \"aws.ssm.44444444-5555-6666-7777-888888888888.i-0123456789abcdef0\"}", "JobId": "aws.ssm.3f694d17-8c22-4dc6-9163-3f4668d9d58f.i-0123456789abcdef0", "Topic": "aws.ssm.cancelCommand.test", "SchemaVersion": 1}"#;

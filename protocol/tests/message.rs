//! The frame codec against exact bytes: the worked example of spec §1.2, real frames from the
//! recorded traces, and every malformation the real readers refuse (§1.1, §1.4).

use proptest::prelude::*;
use ssm_protocol::message::{Header, Padding, uuid_from_wire, uuid_to_wire};
use ssm_protocol::{DecodeError, Flags, Message, MessageType, PayloadType, Validation};
use uuid::Uuid;

/// The worked example of §1.2: `output_stream_data`, seq 0, flags 1, payload `hello`.
const SPEC_EXAMPLE: &str = "\
    00000074 6f75747075745f73747265616d5f6461746120202020202020202020 20202020 00000001 \
    0000015e0baa7884 0000000000000000 0000000000000001 a508b5f073f31b16dd01e56bff48483e \
    2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 00000001 00000005 \
    68656c6c6f";

/// The header of a real plugin `acknowledge` of output seq 0 (traces/plugin-shell.jsonl, t=0.6536).
const PLUGIN_ACK_HEADER: &str = "\
    00000074 61636b6e6f776c65646765202020202020202020202020202020202020202020 00000001 \
    000001a2056c0383 0000000000000000 0000000000000003 b9f8decac0d98a6e7e6b403a79724d9f \
    6bb4bbe6c72e29e7bc76103112a926bb6285f23f2e4ea16d7bb17a6aadc0dc8c 00000000 000000b0";

/// The payload of that acknowledge, byte for byte.
const PLUGIN_ACK_PAYLOAD: &str = r#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"a679575f-02ea-4b17-9254-604d990d741e","AcknowledgedMessageSequenceNumber":0,"IsSequentialMessage":true}"#;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn spec_example() -> Message {
    Message {
        message_type: MessageType::OutputStreamData,
        schema_version: 1,
        created_date: 1_503_434_274_948,
        sequence_number: 0,
        flags: Flags::SYN,
        message_id: "dd01e56b-ff48-483e-a508-b5f073f31b16".parse().unwrap(),
        payload_type: PayloadType::Output,
        payload: b"hello".to_vec(),
    }
}

#[test]
fn spec_worked_example_encodes_byte_for_byte() {
    assert_eq!(spec_example().encode(), hex(SPEC_EXAMPLE));
}

#[test]
fn spec_worked_example_decodes_under_every_validation() {
    let frame = hex(SPEC_EXAMPLE);
    for validation in [Validation::Client, Validation::Agent, Validation::Structure] {
        assert_eq!(Message::decode(&frame, validation).unwrap(), spec_example());
    }
    let header = Header::parse(&frame).unwrap();
    assert_eq!(header.header_length, 116);
    assert_eq!(header.payload_length, 5);
    assert_eq!(header.padding, Padding::Space);
    assert!(header.digest_matches(&frame));
    assert_eq!(
        Message::decode(&frame, Validation::Client)
            .unwrap()
            .encode(),
        frame
    );
}

#[test]
fn message_id_halves_are_swapped_on_the_wire() {
    let id: Uuid = "dd01e56b-ff48-483e-a508-b5f073f31b16".parse().unwrap();
    let wire = uuid_to_wire(id);
    assert_eq!(wire.to_vec(), hex("a508b5f073f31b16 dd01e56bff48483e"));
    assert_eq!(uuid_from_wire(&wire), id);
}

#[test]
fn a_real_plugin_ack_decodes_and_re_encodes_byte_for_byte() {
    let mut frame = hex(PLUGIN_ACK_HEADER);
    frame.extend_from_slice(PLUGIN_ACK_PAYLOAD.as_bytes());
    assert_eq!(frame.len(), 296);
    let message = Message::decode(&frame, Validation::Client).unwrap();
    assert_eq!(message.message_type, MessageType::Acknowledge);
    assert_eq!(message.created_date, 1_795_387_294_595);
    assert_eq!(message.sequence_number, 0);
    assert_eq!(message.flags, Flags::ACK);
    assert_eq!(
        message.message_id.to_string(),
        "7e6b403a-7972-4d9f-b9f8-decac0d98a6e"
    );
    assert_eq!(message.payload_type, PayloadType::Undefined);
    assert_eq!(message.encode(), frame);
}

/// The spec example with one header field overwritten.
fn patched(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut frame = hex(SPEC_EXAMPLE);
    frame[at..at + bytes.len()].copy_from_slice(bytes);
    frame
}

#[test]
fn frames_shorter_than_the_header_are_refused() {
    let frame = hex(SPEC_EXAMPLE);
    for len in [0, 1, 115, 116, 117, 119] {
        assert_eq!(
            Message::decode(&frame[..len], Validation::Structure),
            Err(DecodeError::TooShort { len })
        );
    }
}

#[test]
fn header_length_past_the_end_is_refused() {
    let frame = patched(0, &122u32.to_be_bytes());
    assert_eq!(
        Message::decode(&frame, Validation::Structure),
        Err(DecodeError::HeaderLengthOutOfRange {
            header_length: 122,
            len: 125
        })
    );
}

#[test]
fn payload_starts_after_header_length_not_at_120() {
    // HL 120 moves the payload to offset 124, as the plugin reads it (§1.1).
    let frame = patched(0, &120u32.to_be_bytes());
    let decoded = Message::decode(&frame, Validation::Structure).unwrap();
    assert_eq!(decoded.payload, b"o");
    // The digest is then computed over "o", so the plugin's check fails.
    assert_eq!(
        Message::decode(&frame, Validation::Client),
        Err(DecodeError::DigestMismatch)
    );
    assert!(Message::decode(&frame, Validation::Agent).is_ok());
}

#[test]
fn zero_header_length_is_refused_by_both_ends() {
    let frame = patched(0, &0u32.to_be_bytes());
    assert_eq!(
        Message::decode(&frame, Validation::Client),
        Err(DecodeError::ZeroHeaderLength)
    );
    assert_eq!(
        Message::decode(&frame, Validation::Agent),
        Err(DecodeError::ZeroHeaderLength)
    );
}

#[test]
fn zero_created_date_is_refused_by_both_ends() {
    let frame = patched(40, &0u64.to_be_bytes());
    assert_eq!(
        Message::decode(&frame, Validation::Client),
        Err(DecodeError::ZeroCreatedDate)
    );
    assert_eq!(
        Message::decode(&frame, Validation::Agent),
        Err(DecodeError::ZeroCreatedDate)
    );
    assert!(Message::decode(&frame, Validation::Structure).is_ok());
}

#[test]
fn empty_message_type_is_refused() {
    let frame = patched(4, &[b' '; 32]);
    assert_eq!(
        Message::decode(&frame, Validation::Agent),
        Err(DecodeError::EmptyMessageType)
    );
}

#[test]
fn a_bad_digest_is_refused_by_the_client_only() {
    let frame = patched(80, &[0u8; 32]);
    assert_eq!(
        Message::decode(&frame, Validation::Client),
        Err(DecodeError::DigestMismatch)
    );
    assert!(Message::decode(&frame, Validation::Agent).is_ok());
}

#[test]
fn a_zero_payload_length_field_skips_the_digest_but_keeps_the_payload() {
    let mut frame = patched(80, &[0u8; 32]);
    frame[116..120].copy_from_slice(&0u32.to_be_bytes());
    let decoded = Message::decode(&frame, Validation::Client).unwrap();
    assert_eq!(decoded.payload, b"hello");
}

#[test]
fn publication_messages_skip_client_validation() {
    let mut message = spec_example();
    message.message_type = MessageType::PausePublication;
    message.created_date = 0;
    let mut frame = message.encode();
    frame[80..112].copy_from_slice(&[0u8; 32]);
    assert!(Message::decode(&frame, Validation::Client).is_ok());
    assert_eq!(
        Message::decode(&frame, Validation::Agent),
        Err(DecodeError::ZeroCreatedDate)
    );
}

#[test]
fn nul_padding_and_surrounding_blanks_are_accepted() {
    let mut field = [0u8; 32];
    field[..11].copy_from_slice(b"acknowledge");
    let frame = patched(4, &field);
    let header = Header::parse(&frame).unwrap();
    assert_eq!(header.message_type, MessageType::Acknowledge);
    assert_eq!(header.padding, Padding::Nul);

    let mut field = [b' '; 32];
    field[2..13].copy_from_slice(b"acknowledge");
    let header = Header::parse(&patched(4, &field)).unwrap();
    assert_eq!(header.message_type, MessageType::Acknowledge);
    assert_eq!(header.padding, Padding::Other);
}

#[test]
fn a_type_field_that_is_not_ascii_still_re_encodes() {
    // Found by the decode_frame fuzz target: lossy UTF-8 decoding made the type longer than
    // the field, and re-encoding it panicked; control bytes made it read back differently.
    let mut field = [0u8; 32];
    field[8..14].copy_from_slice(&[0xe0, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    field[25] = b'z';
    let frame = patched(4, &field);
    let message = Message::decode(&frame, Validation::Structure).unwrap();
    let expected = format!("??????{}z", "?".repeat(11));
    assert_eq!(message.message_type.as_str(), expected);
    let again = Message::decode(&message.encode(), Validation::Structure).unwrap();
    assert_eq!(again, message);
}

#[test]
fn message_types_longer_than_the_field_cannot_be_built() {
    assert!("x".repeat(33).parse::<MessageType>().is_err());
    assert!("é".parse::<MessageType>().is_err());
    assert!("".parse::<MessageType>().is_err());
    assert!(" padded".parse::<MessageType>().is_err());
    assert!("tab\there".parse::<MessageType>().is_err());
    let exact = "y".repeat(32).parse::<MessageType>().unwrap();
    assert_eq!(exact.as_str().len(), 32);
}

#[test]
fn unknown_types_and_payload_types_survive_a_round_trip() {
    let mut message = spec_example();
    message.message_type = "agent_future_thing".parse().unwrap();
    message.payload_type = PayloadType::from_u32(77);
    let decoded = Message::decode(&message.encode(), Validation::Client).unwrap();
    assert_eq!(decoded, message);
    assert_eq!(decoded.payload_type, PayloadType::Unknown(77));
}

#[test]
fn every_known_message_type_maps_to_its_string() {
    let names = [
        "input_stream_data",
        "output_stream_data",
        "acknowledge",
        "channel_closed",
        "start_publication",
        "pause_publication",
        "agent_session_state",
        "interactive_shell",
        "agent_task_complete",
        "agent_task_acknowledge",
        "agent_task_reply",
        "agent_job",
        "agent_job_ack",
        "agent_job_reply",
        "agent_job_reply_ack",
        "agent_telemetry",
        "agent_update_result",
    ];
    for name in names {
        let parsed: MessageType = name.parse().unwrap();
        assert!(!matches!(parsed, MessageType::Other(_)), "{name} is known");
        assert_eq!(parsed.as_str(), name);
    }
}

fn any_message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::InputStreamData),
        Just(MessageType::OutputStreamData),
        Just(MessageType::Acknowledge),
        Just(MessageType::ChannelClosed),
        Just(MessageType::StartPublication),
        Just(MessageType::PausePublication),
        Just(MessageType::AgentSessionState),
        Just(MessageType::InteractiveShell),
        Just(MessageType::AgentTaskComplete),
        Just(MessageType::AgentTaskAcknowledge),
        Just(MessageType::AgentJob),
        Just(MessageType::AgentJobAck),
        Just(MessageType::AgentJobReply),
        Just(MessageType::AgentJobReplyAck),
        "[a-z_]{1,32}".prop_map(|s| s.parse().unwrap()),
    ]
}

fn any_message() -> impl Strategy<Value = Message> {
    (
        any_message_type(),
        any::<u32>(),
        1..u64::MAX,
        any::<i64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(
            |(message_type, schema, created, seq, flags, id, ptype, payload)| Message {
                message_type,
                schema_version: schema,
                created_date: created,
                sequence_number: seq,
                flags: Flags(flags),
                message_id: Uuid::from_u128(id),
                payload_type: PayloadType::from_u32(ptype),
                payload,
            },
        )
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(message in any_message()) {
        let frame = message.encode();
        prop_assert_eq!(frame.len(), 120 + message.payload.len());
        for validation in [Validation::Client, Validation::Agent, Validation::Structure] {
            prop_assert_eq!(&Message::decode(&frame, validation).unwrap(), &message);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for validation in [Validation::Client, Validation::Agent, Validation::Structure] {
            let _ = Message::decode(&bytes, validation);
        }
    }

    #[test]
    fn decoding_mutated_frames_never_panics(
        message in any_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = message.encode();
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        let keep = cut.index(frame.len() + 1);
        frame.truncate(keep);
        for validation in [Validation::Client, Validation::Agent, Validation::Structure] {
            let _ = Message::decode(&frame, validation);
        }
    }
}

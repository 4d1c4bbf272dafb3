//! The data-channel frame: a 120-byte big-endian header, then the payload (spec §1).
//!
//! One frame is one websocket message. Both real serializers write the same layout; the two real
//! readers differ only in what they refuse, which [`Validation`] names.
//!
//! ```text
//! offset  size  field
//!      0     4  HeaderLength (always 116 when we write)
//!      4    32  MessageType, ASCII, right-padded with spaces
//!     36     4  SchemaVersion
//!     40     8  CreatedDate, milliseconds since the Unix epoch
//!     48     8  SequenceNumber (signed)
//!     56     8  Flags
//!     64    16  MessageId, UUID with its two 8-byte halves swapped
//!     80    32  PayloadDigest, SHA-256 of the payload
//!    112     4  PayloadType
//!    116     4  PayloadLength
//!    120     …  Payload (really: from HeaderLength + 4 to the end of the frame)
//! ```

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::limits::{HEADER_LENGTH, HEADER_SIZE, MESSAGE_TYPE_LEN, SCHEMA_VERSION};

/// Byte offsets of the header fields (§1.1). Readers use these whatever HeaderLength says.
mod offset {
    pub(super) const HEADER_LENGTH: usize = 0;
    pub(super) const MESSAGE_TYPE: usize = 4;
    pub(super) const SCHEMA_VERSION: usize = 36;
    pub(super) const CREATED_DATE: usize = 40;
    pub(super) const SEQUENCE_NUMBER: usize = 48;
    pub(super) const FLAGS: usize = 56;
    pub(super) const MESSAGE_ID: usize = 64;
    pub(super) const PAYLOAD_DIGEST: usize = 80;
    pub(super) const PAYLOAD_TYPE: usize = 112;
    pub(super) const PAYLOAD_LENGTH: usize = 116;
}

/// A decoded data-channel or control-channel message.
///
/// The derived fields of the wire header (HeaderLength, PayloadDigest, PayloadLength) are not
/// stored: [`Message::encode`] computes them, and [`Header`] exposes them as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What the message is; decides how the rest is read.
    pub message_type: MessageType,
    /// Always 1 in practice; receivers do not check it (§1.1).
    pub schema_version: u32,
    /// Milliseconds since the Unix epoch. Zero makes both real readers drop the frame.
    pub created_date: u64,
    /// Position in the sender's stream for `input_stream_data` / `output_stream_data`; 0 otherwise.
    pub sequence_number: i64,
    /// SYN/FIN bits. Receivers ignore them, but senders set them as §1.6 shows.
    pub flags: Flags,
    /// Identifies this message; acks quote it, resends repeat it.
    pub message_id: Uuid,
    /// How to read the payload of a stream message; [`PayloadType::Undefined`] for others.
    pub payload_type: PayloadType,
    /// The payload bytes exactly as carried.
    pub payload: Vec<u8>,
}

impl Message {
    /// Serializes the message the way both real serializers do: HeaderLength 116, the type
    /// padded with spaces, the SHA-256 of the payload, and PayloadLength equal to its length.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_SIZE + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the serialized message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&HEADER_LENGTH.to_be_bytes());
        out.extend_from_slice(&self.message_type.padded());
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&self.created_date.to_be_bytes());
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.flags.0.to_be_bytes());
        out.extend_from_slice(&uuid_to_wire(self.message_id));
        out.extend_from_slice(&payload_digest(&self.payload));
        out.extend_from_slice(&self.payload_type.as_u32().to_be_bytes());
        out.extend_from_slice(&payload_length(&self.payload).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Parses a frame and applies the receive checks of `validation`.
    ///
    /// The payload is everything from HeaderLength + 4 to the end of the frame, as the real
    /// readers take it; the PayloadLength field does not slice it (§1.1).
    pub fn decode(frame: &[u8], validation: Validation) -> Result<Message, DecodeError> {
        let header = Header::parse(frame)?;
        header.validate(frame, validation)?;
        let payload = header.payload(frame).to_vec();
        Ok(Message {
            message_type: header.message_type,
            schema_version: header.schema_version,
            created_date: header.created_date,
            sequence_number: header.sequence_number,
            flags: header.flags,
            message_id: header.message_id,
            payload_type: header.payload_type,
            payload,
        })
    }

    /// A message with SchemaVersion 1 and no payload type, ready to have its payload filled in.
    pub fn new(message_type: MessageType, created_date: u64, message_id: Uuid) -> Message {
        Message {
            message_type,
            schema_version: SCHEMA_VERSION,
            created_date,
            sequence_number: 0,
            flags: Flags::NONE,
            message_id,
            payload_type: PayloadType::Undefined,
            payload: Vec::new(),
        }
    }
}

/// Which real reader's receive checks to apply (§1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// session-manager-plugin: HeaderLength, MessageType and CreatedDate must be set, and the
    /// digest must match when PayloadLength is not 0. `start_publication` and
    /// `pause_publication` skip every check.
    Client,
    /// amazon-ssm-agent: HeaderLength, MessageType and CreatedDate must be set. The agent never
    /// checks the digest.
    Agent,
    /// Structure only: enough bytes and a HeaderLength inside the frame. For relays and
    /// inspection, which must see frames the ends would refuse.
    Structure,
}

/// Why a frame was refused. Receivers log it and drop the frame: no ack, no disconnect (§1.4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the fixed header fields occupy. The plugin refuses frames under 116
    /// bytes and crashes its reader on 116–119, so nothing under 120 is accepted here.
    #[error("frame of {len} bytes is shorter than the {HEADER_SIZE}-byte header")]
    TooShort {
        /// Length of the frame received.
        len: usize,
    },
    /// HeaderLength points past the end of the frame, so there is no payload to slice.
    #[error("HeaderLength {header_length} points past the end of a {len}-byte frame")]
    HeaderLengthOutOfRange {
        /// The HeaderLength field.
        header_length: u32,
        /// Length of the frame received.
        len: usize,
    },
    /// HeaderLength is 0.
    #[error("HeaderLength is 0")]
    ZeroHeaderLength,
    /// MessageType is empty once NULs and white space are stripped.
    #[error("MessageType is empty")]
    EmptyMessageType,
    /// CreatedDate is 0.
    #[error("CreatedDate is 0")]
    ZeroCreatedDate,
    /// PayloadDigest is not the SHA-256 of the payload ("payload Hash is not valid").
    #[error("PayloadDigest does not match the SHA-256 of the payload")]
    DigestMismatch,
}

/// Every header field as it arrived, including the ones [`Message`] derives on encode.
///
/// For relays and conformance checks, which need to see what a peer actually wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// HeaderLength; the payload starts at this + 4.
    pub header_length: u32,
    /// MessageType with NULs and white space stripped.
    pub message_type: MessageType,
    /// How the 32-byte MessageType field was padded.
    pub padding: Padding,
    /// SchemaVersion.
    pub schema_version: u32,
    /// CreatedDate in milliseconds.
    pub created_date: u64,
    /// SequenceNumber.
    pub sequence_number: i64,
    /// Flags.
    pub flags: Flags,
    /// MessageId, with the halves put back in canonical order.
    pub message_id: Uuid,
    /// PayloadDigest as sent.
    pub payload_digest: [u8; 32],
    /// PayloadType.
    pub payload_type: PayloadType,
    /// PayloadLength as sent, which need not match the payload.
    pub payload_length: u32,
}

impl Header {
    /// Reads the fixed-offset fields of `frame`. Fails only when the frame is too short to hold
    /// them or HeaderLength points past its end.
    pub fn parse(frame: &[u8]) -> Result<Header, DecodeError> {
        if frame.len() < HEADER_SIZE {
            return Err(DecodeError::TooShort { len: frame.len() });
        }
        let header_length = be_u32(frame, offset::HEADER_LENGTH);
        if header_length as usize + 4 > frame.len() {
            return Err(DecodeError::HeaderLengthOutOfRange {
                header_length,
                len: frame.len(),
            });
        }
        let type_field = &frame[offset::MESSAGE_TYPE..offset::MESSAGE_TYPE + MESSAGE_TYPE_LEN];
        Ok(Header {
            header_length,
            message_type: MessageType::from_field(type_field),
            padding: Padding::of(type_field),
            schema_version: be_u32(frame, offset::SCHEMA_VERSION),
            created_date: be_u64(frame, offset::CREATED_DATE),
            sequence_number: be_u64(frame, offset::SEQUENCE_NUMBER) as i64,
            flags: Flags(be_u64(frame, offset::FLAGS)),
            message_id: uuid_from_wire(&frame[offset::MESSAGE_ID..offset::MESSAGE_ID + 16]),
            payload_digest: frame[offset::PAYLOAD_DIGEST..offset::PAYLOAD_DIGEST + 32]
                .try_into()
                .expect("slice of 32 bytes"),
            payload_type: PayloadType::from_u32(be_u32(frame, offset::PAYLOAD_TYPE)),
            payload_length: be_u32(frame, offset::PAYLOAD_LENGTH),
        })
    }

    /// The payload of `frame`, the frame this header was parsed from.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.header_length as usize + 4..]
    }

    /// Whether PayloadDigest is the SHA-256 of the payload of `frame`.
    pub fn digest_matches(&self, frame: &[u8]) -> bool {
        payload_digest(self.payload(frame)) == self.payload_digest
    }

    /// Applies the receive checks of `validation` (§1.4).
    pub fn validate(&self, frame: &[u8], validation: Validation) -> Result<(), DecodeError> {
        let publication = matches!(
            self.message_type,
            MessageType::StartPublication | MessageType::PausePublication
        );
        match validation {
            Validation::Structure => return Ok(()),
            Validation::Client if publication => return Ok(()),
            Validation::Client | Validation::Agent => {}
        }
        if self.header_length == 0 {
            return Err(DecodeError::ZeroHeaderLength);
        }
        if self.message_type.as_str().is_empty() {
            return Err(DecodeError::EmptyMessageType);
        }
        if self.created_date == 0 {
            return Err(DecodeError::ZeroCreatedDate);
        }
        // The plugin skips the digest when the PayloadLength *field* is 0, whatever follows.
        if validation == Validation::Client
            && self.payload_length != 0
            && !self.digest_matches(frame)
        {
            return Err(DecodeError::DigestMismatch);
        }
        Ok(())
    }
}

/// How a peer padded the MessageType field. Both real serializers use spaces; readers also
/// accept NULs (§1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// The type fills all 32 bytes.
    None,
    /// Right-padded with 0x20, as the real serializers do.
    Space,
    /// Right-padded with 0x00.
    Nul,
    /// Anything else, for example leading padding or a mixture.
    Other,
}

impl Padding {
    fn of(field: &[u8]) -> Padding {
        let used = field
            .iter()
            .rposition(|b| *b != b' ' && *b != 0)
            .map_or(0, |i| i + 1);
        let tail = &field[used..];
        let lead_ok = field.first().is_some_and(|b| *b != b' ' && *b != 0);
        if tail.is_empty() {
            Padding::None
        } else if lead_ok && tail.iter().all(|b| *b == b' ') {
            Padding::Space
        } else if lead_ok && tail.iter().all(|b| *b == 0) {
            Padding::Nul
        } else {
            Padding::Other
        }
    }
}

/// The MessageType strings of §1.3.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Client to agent stream data (sequenced, acked).
    InputStreamData,
    /// Agent to client stream data (sequenced, acked).
    OutputStreamData,
    /// Acknowledgement of one stream message, both directions.
    Acknowledge,
    /// The service ends the session (to the client on the data channel, to the agent on either).
    ChannelClosed,
    /// The service lets the agent send again (§5).
    StartPublication,
    /// The service asks the agent to hold its output (§5).
    PausePublication,
    /// The agent reports Connected / Terminating to the service on the data channel.
    AgentSessionState,
    /// Control channel: the service starts a session on the agent.
    InteractiveShell,
    /// Control channel: the agent reports that a session ended.
    AgentTaskComplete,
    /// Control channel: the service acks `agent_task_complete`.
    AgentTaskAcknowledge,
    /// Defined by the agent, unused.
    AgentTaskReply,
    /// Control channel: the service sends or cancels a command.
    AgentJob,
    /// Control channel: the agent acks `agent_job`.
    AgentJobAck,
    /// Control channel: the agent reports command status and output.
    AgentJobReply,
    /// Control channel: the service acks `agent_job_reply`.
    AgentJobReplyAck,
    /// Control channel: agent telemetry, to be tolerated.
    AgentTelemetry,
    /// Control channel: agent update result, to be tolerated.
    AgentUpdateResult,
    /// Any other type string; relays must forward what they do not know.
    Other(OtherType),
}

/// A MessageType string outside §1.3, checked to fit the 32-byte field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OtherType(String);

/// A MessageType string that cannot be written: empty, longer than 32 bytes, not printable
/// ASCII, or with blanks at either end (a reader would strip them).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MessageType {0:?} is not 1 to 32 bytes of printable ASCII")]
pub struct InvalidMessageType(pub String);

const KNOWN_TYPES: [(&str, MessageType); 17] = [
    ("input_stream_data", MessageType::InputStreamData),
    ("output_stream_data", MessageType::OutputStreamData),
    ("acknowledge", MessageType::Acknowledge),
    ("channel_closed", MessageType::ChannelClosed),
    ("start_publication", MessageType::StartPublication),
    ("pause_publication", MessageType::PausePublication),
    ("agent_session_state", MessageType::AgentSessionState),
    ("interactive_shell", MessageType::InteractiveShell),
    ("agent_task_complete", MessageType::AgentTaskComplete),
    ("agent_task_acknowledge", MessageType::AgentTaskAcknowledge),
    ("agent_task_reply", MessageType::AgentTaskReply),
    ("agent_job", MessageType::AgentJob),
    ("agent_job_ack", MessageType::AgentJobAck),
    ("agent_job_reply", MessageType::AgentJobReply),
    ("agent_job_reply_ack", MessageType::AgentJobReplyAck),
    ("agent_telemetry", MessageType::AgentTelemetry),
    ("agent_update_result", MessageType::AgentUpdateResult),
];

impl MessageType {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            MessageType::Other(OtherType(s)) => s,
            known => KNOWN_TYPES
                .iter()
                .find(|(_, t)| t == known)
                .map(|(s, _)| *s)
                .expect("every known variant is in KNOWN_TYPES"),
        }
    }

    /// Whether this type is sequenced and acknowledged (§3.1).
    pub fn is_stream_data(&self) -> bool {
        matches!(
            self,
            MessageType::InputStreamData | MessageType::OutputStreamData
        )
    }

    /// Reads the 32-byte field as the real readers do: strip NULs, then white space, at both
    /// ends. Each byte that is not printable ASCII becomes `?`, one for one, so that the type
    /// fits the field and reads back the same when re-encoded; such a type is always unknown.
    fn from_field(field: &[u8]) -> MessageType {
        let no_nul = trim_bytes(field, |b| b == 0);
        let trimmed = trim_bytes(no_nul, |b| b.is_ascii_whitespace());
        let text: String = trimmed
            .iter()
            .map(|b| if printable(*b) { *b as char } else { '?' })
            .collect();
        KNOWN_TYPES
            .iter()
            .find(|(s, _)| *s == text)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| MessageType::Other(OtherType(text)))
    }

    fn padded(&self) -> [u8; MESSAGE_TYPE_LEN] {
        let mut field = [b' '; MESSAGE_TYPE_LEN];
        let text = self.as_str().as_bytes();
        field[..text.len()].copy_from_slice(text);
        field
    }
}

impl FromStr for MessageType {
    type Err = InvalidMessageType;

    fn from_str(s: &str) -> Result<MessageType, InvalidMessageType> {
        let clean = !s.starts_with(' ') && !s.ends_with(' ') && s.bytes().all(printable);
        if s.is_empty() || s.len() > MESSAGE_TYPE_LEN || !clean {
            return Err(InvalidMessageType(s.to_owned()));
        }
        Ok(KNOWN_TYPES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| MessageType::Other(OtherType(s.to_owned()))))
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PayloadType enum of §1.5. Unknown values are kept, so that they survive a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// 0: messages that carry no payload type (acks, `channel_closed`, control messages).
    Undefined,
    /// 1: terminal bytes, TCP bytes or smux bytes, both directions.
    Output,
    /// 2: defined, never given special handling.
    Error,
    /// 3: client terminal size, `{"cols":…,"rows":…}`.
    Size,
    /// 4: defined, unused.
    Parameter,
    /// 5: agent to client, starts the handshake.
    HandshakeRequest,
    /// 6: client to agent.
    HandshakeResponse,
    /// 7: agent to client, ends the handshake.
    HandshakeComplete,
    /// 8: agent to client, KMS challenge.
    EncChallengeRequest,
    /// 9: client to agent, KMS challenge answer.
    EncChallengeResponse,
    /// 10: a 4-byte big-endian [`crate::payload::Flag`].
    Flag,
    /// 11: agent to client, stderr of NonInteractiveCommands.
    StdErr,
    /// 12: agent to client, `EXIT_CODE: <n>`.
    ExitCode,
    /// Any other value.
    Unknown(u32),
}

impl PayloadType {
    /// Maps the wire value to a variant; never fails.
    pub fn from_u32(value: u32) -> PayloadType {
        match value {
            0 => PayloadType::Undefined,
            1 => PayloadType::Output,
            2 => PayloadType::Error,
            3 => PayloadType::Size,
            4 => PayloadType::Parameter,
            5 => PayloadType::HandshakeRequest,
            6 => PayloadType::HandshakeResponse,
            7 => PayloadType::HandshakeComplete,
            8 => PayloadType::EncChallengeRequest,
            9 => PayloadType::EncChallengeResponse,
            10 => PayloadType::Flag,
            11 => PayloadType::StdErr,
            12 => PayloadType::ExitCode,
            other => PayloadType::Unknown(other),
        }
    }

    /// The wire value.
    pub fn as_u32(self) -> u32 {
        match self {
            PayloadType::Undefined => 0,
            PayloadType::Output => 1,
            PayloadType::Error => 2,
            PayloadType::Size => 3,
            PayloadType::Parameter => 4,
            PayloadType::HandshakeRequest => 5,
            PayloadType::HandshakeResponse => 6,
            PayloadType::HandshakeComplete => 7,
            PayloadType::EncChallengeRequest => 8,
            PayloadType::EncChallengeResponse => 9,
            PayloadType::Flag => 10,
            PayloadType::StdErr => 11,
            PayloadType::ExitCode => 12,
            PayloadType::Unknown(other) => other,
        }
    }
}

/// The Flags bitfield (§1.1, §1.6). Receivers ignore it; senders set it as the real ones do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u64);

impl Flags {
    /// No bit set: client stream data, and agent stream data after seq 0.
    pub const NONE: Flags = Flags(0);
    /// bit 0: the agent's first stream message (seq 0).
    pub const SYN: Flags = Flags(1);
    /// bit 1.
    pub const FIN: Flags = Flags(2);
    /// SYN | FIN: what both ends write on `acknowledge` and `agent_session_state`.
    pub const ACK: Flags = Flags(3);
}

/// SHA-256 of `payload`, the PayloadDigest every real sender writes (§1.4).
pub fn payload_digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// Writes a UUID in the wire order of §1.2: canonical bytes 8..16, then 0..8.
pub fn uuid_to_wire(id: Uuid) -> [u8; 16] {
    let canonical = id.as_bytes();
    let mut wire = [0u8; 16];
    wire[..8].copy_from_slice(&canonical[8..]);
    wire[8..].copy_from_slice(&canonical[..8]);
    wire
}

/// Reads a UUID written in the wire order of §1.2. `wire` must be 16 bytes.
pub fn uuid_from_wire(wire: &[u8]) -> Uuid {
    let mut canonical = [0u8; 16];
    canonical[..8].copy_from_slice(&wire[8..16]);
    canonical[8..].copy_from_slice(&wire[..8]);
    Uuid::from_bytes(canonical)
}

fn payload_length(payload: &[u8]) -> u32 {
    // A websocket message over 4 GiB cannot exist on either real end; saturate rather than wrap.
    u32::try_from(payload.len()).unwrap_or(u32::MAX)
}

fn be_u32(frame: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(frame[at..at + 4].try_into().expect("slice of 4 bytes"))
}

fn be_u64(frame: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(frame[at..at + 8].try_into().expect("slice of 8 bytes"))
}

/// Printable ASCII, space included: what a MessageType may hold.
fn printable(b: u8) -> bool {
    (b' '..=b'~').contains(&b)
}

fn trim_bytes(bytes: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|b| !strip(*b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !strip(*b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

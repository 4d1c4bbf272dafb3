//! The payloads that data-channel and control-channel frames carry (spec §2, §3.1, §4, §6, §9).
//!
//! JSON payloads are serde types whose field order is the order the real peers emit, so that
//! what we write matches their bytes. Readers are lenient where the real readers are: unknown
//! fields are ignored and fields the real code treats as optional are `Option` or defaulted.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::SCHEMA_VERSION;

/// The `acknowledge` payload (§3.1). Receivers match acks by sequence number only, so the type
/// and id are kept as plain strings: a peer that writes odd values there must still be heard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledge {
    /// MessageType of the acked message, e.g. `output_stream_data`.
    #[serde(rename = "AcknowledgedMessageType", default)]
    pub message_type: String,
    /// MessageId of the acked message, lower-case hyphenated UUID.
    #[serde(rename = "AcknowledgedMessageId", default)]
    pub message_id: String,
    /// SequenceNumber of the acked message: the only field receivers use.
    #[serde(rename = "AcknowledgedMessageSequenceNumber")]
    pub sequence_number: i64,
    /// Always `true` when written by the real peers.
    #[serde(rename = "IsSequentialMessage", default)]
    pub is_sequential_message: bool,
}

// ---------------------------------------------------------------------------------------------
// The JSON writer and reader every payload goes through.
// ---------------------------------------------------------------------------------------------

/// Serializes a payload the way Go's `encoding/json` does, which is what both real peers use.
///
/// Compact output in field order, and `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c` etc.
/// (Go's default HTML-safe escaping). Command output routinely contains `>&`, so without this
/// an `agent_job_reply` we write would differ from the real agent's bytes.
pub fn to_json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// [`to_json_bytes`] as a `String`, for the payloads that nest JSON inside a JSON string
/// (`Content` of `interactive_shell` and `agent_job`, `content` of `agent_job_reply`).
pub fn to_json_string<T: Serialize + ?Sized>(value: &T) -> Result<String, PayloadError> {
    let bytes = to_json_bytes(value)?;
    // serde_json only ever writes UTF-8: it copies `&str` fragments and ASCII escapes.
    Ok(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
}

/// Parses a JSON payload leniently: unknown fields are ignored and absent ones defaulted, as
/// Go's `encoding/json` does in the real readers.
pub fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Why a payload could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The bytes are not JSON of the expected shape (or a value could not be serialized).
    #[error("payload is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A Flag payload is always exactly 4 bytes (§6.4).
    #[error("Flag payload has {len} bytes instead of 4")]
    FlagLength {
        /// Length of the payload received.
        len: usize,
    },
    /// An ExitCode payload is `EXIT_CODE: <n>` in ASCII (§6.3).
    #[error("ExitCode payload {0:?} is not `EXIT_CODE: <n>`")]
    ExitCode(String),
    /// The first text frame of a data channel is not a JSON object (§2).
    #[error("open frame is not a JSON object")]
    OpenFrameNotObject,
    /// An `agent_job` whose Topic is neither a sendCommand nor a cancelCommand topic (§9.1).
    #[error("agent_job topic {0:?} is neither aws.ssm.sendCommand nor aws.ssm.cancelCommand")]
    UnknownJobTopic(String),
}

/// A serde_json formatter that escapes like Go's `encoding/json` (see [`to_json_bytes`]).
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..at])?;
            writer.write_all(escape.as_bytes())?;
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Reads `null` as the default value, as Go does for maps, slices and interfaces; serde would
/// otherwise refuse `null` where it expects a map or a sequence.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Declares a string-valued enum whose unknown values are kept, so that a relay or a lenient
/// reader never loses what a peer wrote. The default is the empty string, Go's zero value.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// Any other value, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(text) => text,
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> $name {
                match text.as_str() {
                    $($text => $name::$variant,)*
                    _ => $name::Other(text),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                match value {
                    $name::Other(text) => text,
                    known => known.as_str().to_owned(),
                }
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::Other(String::new())
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Opening the channels (§2, §9.1).
// ---------------------------------------------------------------------------------------------

/// The plugin's first text frame on the data channel (§2 item 3): it carries the token that
/// authenticates the client end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenDataChannelInput {
    /// Always `"1.0"`.
    #[serde(rename = "MessageSchemaVersion")]
    pub message_schema_version: String,
    /// A fresh UUID per frame, also on reconnect.
    #[serde(rename = "RequestId")]
    pub request_id: String,
    /// The StartSession / ResumeSession token.
    #[serde(rename = "TokenValue")]
    pub token_value: String,
    /// A UUID generated once per plugin process; the same on reconnect.
    #[serde(rename = "ClientId")]
    pub client_id: String,
    /// The plugin version; plugins up to 1.2.650.0 omit it.
    #[serde(rename = "ClientVersion", skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
}

/// The agent's first text frame on its data channel (§2 item 6). `ClientInstanceId` is what
/// tells it apart from the plugin's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentOpenDataChannelInput {
    /// Always `"1.0"`.
    #[serde(rename = "MessageSchemaVersion")]
    pub message_schema_version: String,
    /// A fresh UUID per frame.
    #[serde(rename = "RequestId")]
    pub request_id: String,
    /// The CreateDataChannel token.
    #[serde(rename = "TokenValue")]
    pub token_value: String,
    /// The instance id of the agent.
    #[serde(rename = "ClientInstanceId")]
    pub client_instance_id: String,
    /// Empty in the current agent.
    #[serde(rename = "ClientId")]
    pub client_id: String,
}

/// The first text frame of a data-channel websocket, from either end. The relay reads it before
/// it knows which end connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataChannelOpen {
    /// From session-manager-plugin (or any client).
    Client(OpenDataChannelInput),
    /// From the agent.
    Agent(AgentOpenDataChannelInput),
}

impl DataChannelOpen {
    /// Reads an open frame; a `ClientInstanceId` key makes it the agent's, as §2 item 6 suggests.
    pub fn from_json(bytes: &[u8]) -> Result<DataChannelOpen, PayloadError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        let is_agent = match &value {
            serde_json::Value::Object(map) => map.contains_key("ClientInstanceId"),
            _ => return Err(PayloadError::OpenFrameNotObject),
        };
        Ok(if is_agent {
            DataChannelOpen::Agent(serde_json::from_value(value)?)
        } else {
            DataChannelOpen::Client(serde_json::from_value(value)?)
        })
    }

    /// The token the frame presents, whichever end sent it.
    pub fn token_value(&self) -> &str {
        match self {
            DataChannelOpen::Client(open) => &open.token_value,
            DataChannelOpen::Agent(open) => &open.token_value,
        }
    }

    /// The frame as the real end writes it.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, PayloadError> {
        match self {
            DataChannelOpen::Client(open) => to_json_bytes(open),
            DataChannelOpen::Agent(open) => to_json_bytes(open),
        }
    }
}

/// The agent's first text frame on the control channel (§9.1). No reply is expected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenControlChannelInput {
    /// Always `null` from the real agent.
    #[serde(rename = "Cookie")]
    pub cookie: Option<String>,
    /// Always `"1.0"`.
    #[serde(rename = "MessageSchemaVersion")]
    pub message_schema_version: String,
    /// A fresh UUID per connection.
    #[serde(rename = "RequestId")]
    pub request_id: String,
    /// The CreateControlChannel token.
    #[serde(rename = "TokenValue")]
    pub token_value: String,
    /// E.g. `3.3.1142.0`.
    #[serde(rename = "AgentVersion")]
    pub agent_version: String,
    /// E.g. `linux`.
    #[serde(rename = "PlatformType")]
    pub platform_type: String,
}

// ---------------------------------------------------------------------------------------------
// The handshake (§4.2).
// ---------------------------------------------------------------------------------------------

string_enum! {
    /// What an action of the handshake asks for (§4.2).
    ActionType {
        /// Tells the plugin the session type and its properties; always the first action.
        SessionType => "SessionType",
        /// Asks the plugin to set up KMS encryption.
        KmsEncryption => "KMSEncryption",
    }
}

/// HandshakeRequest (agent to plugin, PayloadType 5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandshakeRequest {
    /// The agent version; the plugin picks smux mode from it (§7.2).
    #[serde(rename = "AgentVersion")]
    pub agent_version: String,
    /// The actions, SessionType first.
    #[serde(
        rename = "RequestedClientActions",
        deserialize_with = "null_as_default"
    )]
    pub requested_client_actions: Vec<RequestedClientAction>,
}

/// One action of a [`HandshakeRequest`], with its parameters typed by its ActionType.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestedClientAction {
    /// `ActionType: SessionType`.
    SessionType(SessionTypeRequest),
    /// `ActionType: KMSEncryption`.
    KmsEncryption(KmsEncryptionRequest),
    /// Any other action, or a known one whose parameters do not have the known shape; kept
    /// verbatim so that a reader can answer it as the plugin would (Unsupported / Failed).
    Other {
        /// The ActionType as received.
        action_type: ActionType,
        /// The ActionParameters as received.
        action_parameters: serde_json::Value,
    },
}

/// ActionParameters of a SessionType action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionTypeRequest {
    /// `Standard_Stream`, `InteractiveCommands`, `NonInteractiveCommands` or `Port`.
    #[serde(rename = "SessionType")]
    pub session_type: String,
    /// The resolved document `properties` (an object for Port, `null` otherwise).
    #[serde(rename = "Properties")]
    pub properties: serde_json::Value,
}

/// ActionParameters of a KMSEncryption action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KmsEncryptionRequest {
    /// The KMS key the plugin is to generate a data key with.
    #[serde(rename = "KMSKeyId")]
    pub kms_key_id: String,
    /// Opaque challenge string.
    #[serde(rename = "Challenge")]
    pub challenge: String,
}

impl RequestedClientAction {
    /// The ActionType written for this action.
    pub fn action_type(&self) -> ActionType {
        match self {
            RequestedClientAction::SessionType(_) => ActionType::SessionType,
            RequestedClientAction::KmsEncryption(_) => ActionType::KmsEncryption,
            RequestedClientAction::Other { action_type, .. } => action_type.clone(),
        }
    }
}

/// The two wire fields of an action, read before its parameters are typed.
#[derive(Deserialize)]
#[serde(default)]
struct RawRequestedClientAction {
    #[serde(rename = "ActionType")]
    action_type: ActionType,
    #[serde(rename = "ActionParameters")]
    action_parameters: serde_json::Value,
}

impl Default for RawRequestedClientAction {
    fn default() -> RawRequestedClientAction {
        RawRequestedClientAction {
            action_type: ActionType::default(),
            action_parameters: serde_json::Value::Null,
        }
    }
}

impl Serialize for RequestedClientAction {
    // Written by hand so that typed parameters keep their field order (going through a
    // `serde_json::Value` would sort the keys).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut action = serializer.serialize_struct("RequestedClientAction", 2)?;
        action.serialize_field("ActionType", &self.action_type())?;
        match self {
            RequestedClientAction::SessionType(params) => {
                action.serialize_field("ActionParameters", params)?
            }
            RequestedClientAction::KmsEncryption(params) => {
                action.serialize_field("ActionParameters", params)?
            }
            RequestedClientAction::Other {
                action_parameters, ..
            } => action.serialize_field("ActionParameters", action_parameters)?,
        }
        action.end()
    }
}

impl<'de> Deserialize<'de> for RequestedClientAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawRequestedClientAction::deserialize(deserializer)?;
        let typed = match raw.action_type {
            ActionType::SessionType => serde_json::from_value(raw.action_parameters.clone())
                .ok()
                .map(RequestedClientAction::SessionType),
            ActionType::KmsEncryption => serde_json::from_value(raw.action_parameters.clone())
                .ok()
                .map(RequestedClientAction::KmsEncryption),
            ActionType::Other(_) => None,
        };
        Ok(typed.unwrap_or(RequestedClientAction::Other {
            action_type: raw.action_type,
            action_parameters: raw.action_parameters,
        }))
    }
}

/// ActionStatus of a processed action (§4.2). The agent cancels the session on anything but
/// Success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "i64", into = "i64")]
pub enum ActionStatus {
    /// 1.
    Success,
    /// 2: e.g. an unknown session type.
    Failed,
    /// 3.
    Unsupported,
    /// Anything else; the plugin writes 0 for an unknown action type (a bug the agent sees).
    Other(i64),
}

impl From<i64> for ActionStatus {
    fn from(value: i64) -> ActionStatus {
        match value {
            1 => ActionStatus::Success,
            2 => ActionStatus::Failed,
            3 => ActionStatus::Unsupported,
            other => ActionStatus::Other(other),
        }
    }
}

impl From<ActionStatus> for i64 {
    fn from(status: ActionStatus) -> i64 {
        match status {
            ActionStatus::Success => 1,
            ActionStatus::Failed => 2,
            ActionStatus::Unsupported => 3,
            ActionStatus::Other(other) => other,
        }
    }
}

impl Default for ActionStatus {
    fn default() -> ActionStatus {
        ActionStatus::Other(0)
    }
}

/// HandshakeResponse (plugin to agent, PayloadType 6), field for field as the plugin writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandshakeResponse {
    /// The plugin version; the agent picks smux mode and keepalive from it (§7.2, §7.4).
    #[serde(rename = "ClientVersion")]
    pub client_version: String,
    /// One entry per requested action; an array even when empty.
    #[serde(
        rename = "ProcessedClientActions",
        deserialize_with = "null_as_default"
    )]
    pub processed_client_actions: Vec<ProcessedClientAction>,
    /// `null` when there are none (the plugin), `[]` from some clients; both are kept.
    #[serde(rename = "Errors")]
    pub errors: Option<Vec<String>>,
}

/// The plugin's answer to one requested action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessedClientAction {
    /// The ActionType it answers.
    #[serde(rename = "ActionType")]
    pub action_type: ActionType,
    /// Success, Failed or Unsupported.
    #[serde(rename = "ActionStatus")]
    pub action_status: ActionStatus,
    /// `null`, or e.g. `{"KMSCipherTextKey":…,"KMSCipherTextHash":null}` for KMSEncryption.
    /// Kept as a JSON value, so object keys are written sorted.
    #[serde(rename = "ActionResult")]
    pub action_result: serde_json::Value,
    /// Empty on success.
    #[serde(rename = "Error")]
    pub error: String,
}

impl ProcessedClientAction {
    /// A successful action with a `null` result: what the plugin answers to SessionType.
    pub fn success(action_type: ActionType) -> ProcessedClientAction {
        ProcessedClientAction {
            action_type,
            action_status: ActionStatus::Success,
            action_result: serde_json::Value::Null,
            error: String::new(),
        }
    }
}

/// HandshakeComplete (agent to plugin, PayloadType 7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandshakeComplete {
    /// A Go `time.Duration`: integer nanoseconds.
    #[serde(rename = "HandshakeTimeToComplete")]
    pub handshake_time_to_complete: i64,
    /// Printed by the plugin, plus a newline, when not empty.
    #[serde(rename = "CustomerMessage")]
    pub customer_message: String,
}

impl HandshakeComplete {
    /// Builds the payload from a duration, saturating at `i64::MAX` nanoseconds as Go would
    /// have to.
    pub fn new(time_to_complete: Duration, customer_message: String) -> HandshakeComplete {
        HandshakeComplete {
            handshake_time_to_complete: i64::try_from(time_to_complete.as_nanos())
                .unwrap_or(i64::MAX),
            customer_message,
        }
    }
}

/// EncChallengeRequest (PayloadType 8) and EncChallengeResponse (PayloadType 9): the same shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncryptionChallenge {
    /// Base64 of the AES-GCM ciphertext.
    #[serde(rename = "Challenge")]
    pub challenge: String,
}

/// The agent's KMS challenge (PayloadType 8).
pub type EncChallengeRequest = EncryptionChallenge;

/// The plugin's answer to the KMS challenge (PayloadType 9).
pub type EncChallengeResponse = EncryptionChallenge;

// ---------------------------------------------------------------------------------------------
// Size, Flag, ExitCode (§6).
// ---------------------------------------------------------------------------------------------

/// Terminal size, plugin to agent (PayloadType 3), with exactly the keys `cols` and `rows`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Size {
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// The Flag payload (PayloadType 10): a 4-byte big-endian value (§6.4). Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flag {
    /// 1: the plugin's local TCP client went away (basic port mode).
    DisconnectToPort,
    /// 2: the plugin ends a port session.
    TerminateSession,
    /// 3: the agent could not dial the destination of a new smux stream.
    ConnectToPortError,
    /// Any other value.
    Unknown(u32),
}

impl Flag {
    /// Maps the wire value to a variant; never fails.
    pub fn from_u32(value: u32) -> Flag {
        match value {
            1 => Flag::DisconnectToPort,
            2 => Flag::TerminateSession,
            3 => Flag::ConnectToPortError,
            other => Flag::Unknown(other),
        }
    }

    /// The wire value.
    pub fn as_u32(self) -> u32 {
        match self {
            Flag::DisconnectToPort => 1,
            Flag::TerminateSession => 2,
            Flag::ConnectToPortError => 3,
            Flag::Unknown(other) => other,
        }
    }

    /// The 4-byte payload.
    pub fn encode(self) -> [u8; 4] {
        self.as_u32().to_be_bytes()
    }

    /// Reads a Flag payload, which must be exactly 4 bytes.
    pub fn decode(payload: &[u8]) -> Result<Flag, PayloadError> {
        let bytes: [u8; 4] = payload
            .try_into()
            .map_err(|_| PayloadError::FlagLength { len: payload.len() })?;
        Ok(Flag::from_u32(u32::from_be_bytes(bytes)))
    }
}

/// The ExitCode payload (PayloadType 12): ASCII `EXIT_CODE: <n>` (§6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExitCode(pub i64);

impl ExitCode {
    const PREFIX: &'static str = "EXIT_CODE: ";

    /// The payload bytes, formatted as the agent's `fmt.Sprintf("EXIT_CODE: %d", …)`.
    pub fn encode(self) -> Vec<u8> {
        format!("{}{}", ExitCode::PREFIX, self.0).into_bytes()
    }

    /// Reads an ExitCode payload. White space around the number is tolerated.
    pub fn parse(payload: &[u8]) -> Result<ExitCode, PayloadError> {
        let invalid = || PayloadError::ExitCode(String::from_utf8_lossy(payload).into_owned());
        let text = std::str::from_utf8(payload).map_err(|_| invalid())?;
        let number = text.strip_prefix(ExitCode::PREFIX).ok_or_else(invalid)?;
        number.trim().parse().map(ExitCode).map_err(|_| invalid())
    }
}

// ---------------------------------------------------------------------------------------------
// Messages for the service: channel_closed, agent_session_state (§4.1, §6.5, §9.1).
// ---------------------------------------------------------------------------------------------

/// The `channel_closed` payload, in the field order of the plugin's `ChannelClosed` (§6.5).
///
/// The service sends it to the plugin (data channel) and to the agent (data or control channel)
/// to end a session. The plugin reads only `Output` and the agent only the session id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelClosed {
    /// A UUID string.
    #[serde(rename = "MessageId")]
    pub message_id: String,
    /// A string: epoch milliseconds or ISO 8601; both peers treat it as opaque.
    #[serde(rename = "CreatedDate")]
    pub created_date: String,
    /// The target instance id.
    #[serde(rename = "DestinationId")]
    pub destination_id: String,
    /// The session to end.
    #[serde(rename = "SessionId")]
    pub session_id: String,
    /// Always `channel_closed`.
    #[serde(rename = "MessageType")]
    pub message_type: String,
    /// Always 1.
    #[serde(rename = "SchemaVersion")]
    pub schema_version: u32,
    /// Printed by the plugin instead of the default exit line when not empty.
    #[serde(rename = "Output")]
    pub output: String,
}

impl ChannelClosed {
    /// A `channel_closed` with MessageType and SchemaVersion filled in.
    pub fn new(
        message_id: String,
        created_date: String,
        destination_id: String,
        session_id: String,
        output: String,
    ) -> ChannelClosed {
        ChannelClosed {
            message_id,
            created_date,
            destination_id,
            session_id,
            message_type: "channel_closed".to_owned(),
            schema_version: SCHEMA_VERSION,
            output,
        }
    }
}

string_enum! {
    /// The state an `agent_session_state` reports.
    SessionState {
        /// Sent at every data-channel connect.
        Connected => "Connected",
        /// Sent at a normal shell exit, before the data socket drops.
        Terminating => "Terminating",
    }
}

/// The `agent_session_state` payload (agent to service, data channel, §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSessionState {
    /// Always 1.
    #[serde(rename = "SchemaVersion")]
    pub schema_version: u32,
    /// Connected or Terminating.
    #[serde(rename = "SessionState")]
    pub session_state: SessionState,
    /// The session id.
    #[serde(rename = "SessionId")]
    pub session_id: String,
}

// ---------------------------------------------------------------------------------------------
// Control channel: sessions (§9.1).
// ---------------------------------------------------------------------------------------------

/// Topic of the `interactive_shell` messages the service sends (not checked by the agent).
pub const TOPIC_START_SESSION: &str = "aws.ssm.startSession";

/// Topic of `agent_task_complete` and of its `agent_task_acknowledge`.
pub const TOPIC_AGENT_TASK_COMPLETE: &str = "agent_task_complete";

/// Topic prefix of a Run Command `agent_job`; also the exact topic of its replies.
pub const TOPIC_SEND_COMMAND: &str = "aws.ssm.sendCommand";

/// Topic prefix of a cancel `agent_job`; also the exact topic of its reply.
pub const TOPIC_CANCEL_COMMAND: &str = "aws.ssm.cancelCommand";

/// The `interactive_shell` payload (the agent's `MGSPayload`): the session to start, as a JSON
/// string in `Content`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MgsPayload {
    /// An [`AgentTaskPayload`] serialized as a JSON string.
    #[serde(rename = "Content")]
    pub content: String,
    /// The session id.
    #[serde(rename = "TaskId")]
    pub task_id: String,
    /// Not checked; [`TOPIC_START_SESSION`] in practice.
    #[serde(rename = "Topic")]
    pub topic: String,
    /// Always 1.
    #[serde(rename = "SchemaVersion")]
    pub schema_version: u32,
}

impl MgsPayload {
    /// Wraps a session task: `Content` is the task serialized, `TaskId` its session id.
    pub fn from_task(task: &AgentTaskPayload, topic: &str) -> Result<MgsPayload, PayloadError> {
        Ok(MgsPayload {
            content: to_json_string(task)?,
            task_id: task.session_id.clone(),
            topic: topic.to_owned(),
            schema_version: SCHEMA_VERSION,
        })
    }

    /// Reads `Content` back, as the agent unmarshals it a second time.
    pub fn task(&self) -> Result<AgentTaskPayload, PayloadError> {
        from_json_bytes(self.content.as_bytes())
    }
}

/// The session to start (`AgentTaskPayload`), in the order the service writes it (§9.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentTaskPayload {
    /// E.g. `SSM-SessionManagerRunShell`, `AWS-StartPortForwardingSession`.
    #[serde(rename = "DocumentName")]
    pub document_name: String,
    /// The session id.
    #[serde(rename = "SessionId")]
    pub session_id: String,
    /// Overrides `inputs.runAsDefaultUser` when not empty.
    #[serde(rename = "RunAsUser")]
    pub run_as_user: String,
    /// ARN of the caller of StartSession.
    #[serde(rename = "SessionOwner")]
    pub session_owner: String,
    /// StartSession parameters, substituted verbatim into the document: a String parameter
    /// must be a JSON string (§9.1).
    #[serde(rename = "Parameters", deserialize_with = "null_as_default")]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The session document.
    #[serde(rename = "DocumentContent")]
    pub document_content: SessionDocumentContent,
}

/// A session document, typed as far as the agent's choices depend on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionDocumentContent {
    /// Must be `"1.0"`.
    #[serde(rename = "schemaVersion")]
    pub schema_version: String,
    /// Free text.
    pub description: String,
    /// `Standard_Stream`, `InteractiveCommands`, `NonInteractiveCommands` or `Port`.
    #[serde(rename = "sessionType")]
    pub session_type: String,
    /// Session preferences (logging, KMS, run-as user).
    pub inputs: SessionInputs,
    /// Document parameter declarations, e.g. `{"portNumber":{"type":"String","default":"80"}}`.
    #[serde(deserialize_with = "null_as_default")]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Session-type specific; `{{ name }}` placeholders are substituted by the agent.
    pub properties: serde_json::Value,
}

/// The `inputs` of a session document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionInputs {
    /// S3 logging bucket.
    pub s3_bucket_name: String,
    /// S3 logging prefix.
    pub s3_key_prefix: String,
    /// Whether the S3 bucket must be encrypted.
    pub s3_encryption_enabled: bool,
    /// CloudWatch log group.
    pub cloud_watch_log_group_name: String,
    /// Whether to stream to CloudWatch.
    pub cloud_watch_streaming_enabled: bool,
    /// Whether the log group must be encrypted.
    pub cloud_watch_encryption_enabled: bool,
    /// A non-empty key turns on KMS encryption for non-Port sessions.
    pub kms_key_id: String,
    /// Whether to run as `runAsDefaultUser` instead of `ssm-user`.
    pub run_as_enabled: bool,
    /// The run-as user; must have uid and gid > 0.
    pub run_as_default_user: String,
    /// Shell start-up commands per platform.
    pub shell_profile: ShellProfile,
}

/// `inputs.shellProfile` of a session document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShellProfile {
    /// Commands run at the start of a Windows session.
    pub windows: String,
    /// Commands run at the start of a Linux session.
    pub linux: String,
}

string_enum! {
    /// A document or plugin result status (`FinalTaskStatus`, `documentStatus`, `status`).
    ResultStatus {
        /// Not started yet.
        NotStarted => "NotStarted",
        /// Still running; never overwrites a terminal status.
        InProgress => "InProgress",
        /// Succeeded.
        Success => "Success",
        /// Succeeded, reboot requested.
        SuccessAndReboot => "SuccessAndReboot",
        /// Passed, reboot requested.
        PassedAndReboot => "PassedAndReboot",
        /// Failed.
        Failed => "Failed",
        /// Cancelled.
        Cancelled => "Cancelled",
        /// Timed out.
        TimedOut => "TimedOut",
        /// Skipped.
        Skipped => "Skipped",
    }
}

/// The `agent_task_complete` payload (agent to service, control channel): a session ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentTaskComplete {
    /// Always 1.
    #[serde(rename = "SchemaVersion")]
    pub schema_version: u32,
    /// The session id.
    #[serde(rename = "TaskId")]
    pub task_id: String,
    /// [`TOPIC_AGENT_TASK_COMPLETE`].
    #[serde(rename = "Topic")]
    pub topic: String,
    /// Success after a normal exit or TerminateSession; Failed with the error in `Output`.
    #[serde(rename = "FinalTaskStatus")]
    pub final_task_status: ResultStatus,
    /// Always false in practice.
    #[serde(rename = "IsRoutingFailure")]
    pub is_routing_failure: bool,
    /// Empty in practice.
    #[serde(rename = "AwsAccountId")]
    pub aws_account_id: String,
    /// The agent's instance id.
    #[serde(rename = "InstanceId")]
    pub instance_id: String,
    /// Error text of a failed session.
    #[serde(rename = "Output")]
    pub output: String,
    /// S3 log bucket.
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: String,
    /// S3 log key suffix.
    #[serde(rename = "S3UrlSuffix")]
    pub s3_url_suffix: String,
    /// CloudWatch log group.
    #[serde(rename = "CwlGroup")]
    pub cwl_group: String,
    /// CloudWatch log stream.
    #[serde(rename = "CwlStream")]
    pub cwl_stream: String,
    /// 1 on the first send.
    #[serde(rename = "RetryNumber")]
    pub retry_number: i64,
}

/// The `agent_task_acknowledge` payload (service to agent): without it the agent resends its
/// `agent_task_complete` 3 times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentTaskAcknowledge {
    /// Always 1.
    #[serde(rename = "SchemaVersion")]
    pub schema_version: u32,
    /// MessageId of the acked `agent_task_complete`; the agent matches on it.
    #[serde(rename = "MessageId")]
    pub message_id: String,
    /// The session id.
    #[serde(rename = "TaskId")]
    pub task_id: String,
    /// [`TOPIC_AGENT_TASK_COMPLETE`].
    #[serde(rename = "Topic")]
    pub topic: String,
}

// ---------------------------------------------------------------------------------------------
// Control channel: Run Command (§9.1, §9.2).
// ---------------------------------------------------------------------------------------------

/// The `agent_job` payload (service to agent): a command to run, or to cancel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentJob {
    /// A [`SendCommandPayload`] or a [`CancelCommandPayload`] as a JSON string.
    #[serde(rename = "Content")]
    pub content: String,
    /// `aws.ssm.<commandId>.<instanceId>`.
    #[serde(rename = "JobId")]
    pub job_id: String,
    /// Starts with [`TOPIC_SEND_COMMAND`] or [`TOPIC_CANCEL_COMMAND`]; any suffix is accepted.
    #[serde(rename = "Topic")]
    pub topic: String,
    /// Always 1.
    #[serde(rename = "SchemaVersion")]
    pub schema_version: u32,
}

/// What an `agent_job` asks for, decided by its Topic prefix as the agent does.
#[derive(Clone, Debug, PartialEq)]
pub enum JobContent {
    /// Run a command.
    SendCommand(SendCommandPayload),
    /// Cancel a command.
    CancelCommand(CancelCommandPayload),
}

impl AgentJob {
    /// An `agent_job` that runs `command`.
    pub fn send_command(
        job_id: &str,
        topic: &str,
        command: &SendCommandPayload,
    ) -> Result<AgentJob, PayloadError> {
        AgentJob::wrap(job_id, topic, to_json_string(command)?)
    }

    /// An `agent_job` that cancels the job `cancel.cancel_message_id`.
    pub fn cancel_command(
        job_id: &str,
        topic: &str,
        cancel: &CancelCommandPayload,
    ) -> Result<AgentJob, PayloadError> {
        AgentJob::wrap(job_id, topic, to_json_string(cancel)?)
    }

    fn wrap(job_id: &str, topic: &str, content: String) -> Result<AgentJob, PayloadError> {
        Ok(AgentJob {
            content,
            job_id: job_id.to_owned(),
            topic: topic.to_owned(),
            schema_version: SCHEMA_VERSION,
        })
    }

    /// Reads `Content` according to the Topic prefix.
    pub fn job_content(&self) -> Result<JobContent, PayloadError> {
        let content = self.content.as_bytes();
        if self.topic.starts_with(TOPIC_SEND_COMMAND) {
            Ok(JobContent::SendCommand(from_json_bytes(content)?))
        } else if self.topic.starts_with(TOPIC_CANCEL_COMMAND) {
            Ok(JobContent::CancelCommand(from_json_bytes(content)?))
        } else {
            Err(PayloadError::UnknownJobTopic(self.topic.clone()))
        }
    }
}

/// The command to run (`SendCommandPayload`; also the MDS message `Payload`), in the order the
/// service writes it (§9.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendCommandPayload {
    /// A UUID.
    #[serde(rename = "CommandId")]
    pub command_id: String,
    /// E.g. `AWS-RunShellScript`.
    #[serde(rename = "DocumentName")]
    pub document_name: String,
    /// Output bucket, or empty.
    #[serde(rename = "OutputS3BucketName")]
    pub output_s3_bucket_name: String,
    /// Output prefix, or empty.
    #[serde(rename = "OutputS3KeyPrefix")]
    pub output_s3_key_prefix: String,
    /// Log group, or empty.
    #[serde(rename = "CloudWatchLogGroupName")]
    pub cloud_watch_log_group_name: String,
    /// `"true"` or `"false"`: a string on the wire.
    #[serde(rename = "CloudWatchOutputEnabled")]
    pub cloud_watch_output_enabled: String,
    /// Parameter values; a StringList is an array and a String a string.
    #[serde(rename = "Parameters", deserialize_with = "null_as_default")]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The command document (schema 1.2 or 2.x), left untyped.
    #[serde(rename = "DocumentContent")]
    pub document_content: serde_json::Value,
}

/// The Content of a cancel `agent_job`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CancelCommandPayload {
    /// JobId of the job to cancel, `aws.ssm.<commandId>.<instanceId>`.
    #[serde(rename = "CancelMessageId")]
    pub cancel_message_id: String,
}

/// The `agent_job_ack` payload (agent to service), with the agent's lower-camel keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentJobAck {
    /// JobId of the acked job.
    pub job_id: String,
    /// MessageId of the acked `agent_job`.
    pub acknowledged_message_id: String,
    /// CreatedDate of the acked `agent_job`, ISO 8601 with milliseconds and `Z`.
    pub created_date: String,
    /// `"200"`, or 51401–51408 / 51499 (e.g. `"51405"` DuplicateCommand).
    pub status_code: String,
    /// `Successful`, or the error name.
    pub error_message: String,
}

/// The `agent_job_reply` payload (agent to service): command status and output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentJobReply {
    /// Always 1.
    pub schema_version: u32,
    /// JobId of the job.
    pub job_id: String,
    /// A [`SendReplyPayload`] as a JSON string.
    pub content: String,
    /// Exactly [`TOPIC_SEND_COMMAND`] or [`TOPIC_CANCEL_COMMAND`].
    pub topic: String,
}

impl AgentJobReply {
    /// Wraps a reply: `content` is `reply` serialized.
    pub fn from_reply(
        job_id: &str,
        topic: &str,
        reply: &SendReplyPayload,
    ) -> Result<AgentJobReply, PayloadError> {
        Ok(AgentJobReply {
            schema_version: SCHEMA_VERSION,
            job_id: job_id.to_owned(),
            content: to_json_string(reply)?,
            topic: topic.to_owned(),
        })
    }

    /// Reads `content` back.
    pub fn reply(&self) -> Result<SendReplyPayload, PayloadError> {
        from_json_bytes(self.content.as_bytes())
    }
}

/// The `agent_job_reply_ack` payload (service to agent): without it the agent persists the
/// reply and resends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentJobReplyAck {
    /// JobId of the job.
    pub job_id: String,
    /// MessageId of the acked `agent_job_reply`.
    pub acknowledged_message_id: String,
}

/// A command status report (`SendReplyPayload`): the `content` of `agent_job_reply` and the
/// `Payload` of an MDS SendReply (§9.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SendReplyPayload {
    /// Agent identity, time and status counts.
    pub additional_info: AdditionalInfo,
    /// The document status.
    pub document_status: ResultStatus,
    /// Empty in practice.
    pub document_trace_output: String,
    /// Plugin name to plugin status; `null` in the first InProgress reply. Written with sorted
    /// keys, as Go writes maps.
    pub runtime_status: Option<BTreeMap<String, PluginRuntimeStatus>>,
}

/// `additionalInfo` of a [`SendReplyPayload`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdditionalInfo {
    /// Who reports.
    pub agent: AgentInfo,
    /// ISO 8601 with milliseconds and `Z`; the only field that changes when a reply is resent.
    pub date_time: String,
    /// Empty in practice.
    pub run_id: String,
    /// Status name to number of plugins; `null` in the first reply.
    pub runtime_status_counts: Option<BTreeMap<String, i64>>,
    /// Present in MDS replies only (`false` while MGS cannot be opened).
    #[serde(
        rename = "ableToOpenMGSConnection",
        skip_serializing_if = "Option::is_none"
    )]
    pub able_to_open_mgs_connection: Option<bool>,
}

/// `additionalInfo.agent` of a [`SendReplyPayload`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentInfo {
    /// E.g. `en-US`.
    pub lang: String,
    /// `amazon-ssm-agent`.
    pub name: String,
    /// The Go OS name, e.g. `linux`.
    pub os: String,
    /// OS version.
    pub osver: String,
    /// Agent version.
    pub ver: String,
}

/// The status of one plugin (step) of a command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PluginRuntimeStatus {
    /// Plugin status.
    pub status: ResultStatus,
    /// Exit code; a Failed plugin with code 0 reports 1, a cancelled one 137.
    pub code: i64,
    /// Plugin name, e.g. `aws:runShellScript`.
    pub name: String,
    /// stdout [+ `\n----------ERROR-------\n` + stderr], truncated to 2500.
    pub output: String,
    /// ISO 8601.
    pub start_date_time: String,
    /// ISO 8601.
    pub end_date_time: String,
    /// Output bucket, or empty.
    pub output_s3_bucket_name: String,
    /// Output prefix, or empty.
    pub output_s3_key_prefix: String,
    /// Step name (schema 2.x), or empty.
    pub step_name: String,
    /// stdout, at most 24 000 characters.
    pub standard_output: String,
    /// stderr, at most 24 000 characters.
    pub standard_error: String,
}

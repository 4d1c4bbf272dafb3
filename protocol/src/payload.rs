//! The payloads that data-channel and control-channel frames carry (spec §2, §3.1, §4, §6, §9).
//!
//! JSON payloads are serde types whose field order is the order the real peers emit, so that
//! what we write matches their bytes. Readers are lenient where the real readers are: unknown
//! fields are ignored and fields the real code treats as optional are `Option` or defaulted.

use serde::{Deserialize, Serialize};

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

//! Every size, count and timing constant of the data-channel protocol, named once.
//!
//! The values are the real clients' (spec §1, §3.3, §7.4). Where plugin and agent differ the
//! constant says which one it belongs to; [`crate::reliable::Role`] picks between them.

use std::time::Duration;

/// The HeaderLength field every serializer writes: the offset of PayloadLength (§1.1).
pub const HEADER_LENGTH: u32 = 116;

/// Bytes before the payload of a well-formed frame: HeaderLength + the 4-byte PayloadLength.
pub const HEADER_SIZE: usize = 120;

/// Width of the space-padded MessageType field (§1.1).
pub const MESSAGE_TYPE_LEN: usize = 32;

/// The plugin rejects any frame shorter than this with a parse error (§1.1).
pub const MIN_PARSEABLE_LEN: usize = 116;

/// SchemaVersion written by both real serializers (§1.6).
pub const SCHEMA_VERSION: u32 = 1;

/// Initial retransmission timeout, before any round-trip sample (§3.3 DefaultTransmissionTimeout).
pub const INITIAL_RTO: Duration = Duration::from_millis(200);

/// Initial smoothed round-trip time (§3.3 DefaultRoundTripTime).
pub const INITIAL_SRTT: Duration = Duration::from_millis(100);

/// Initial round-trip time variation (§3.3 DefaultRoundTripTimeVariation).
pub const INITIAL_RTTVAR: Duration = Duration::ZERO;

/// Weight of a new sample in the smoothed RTT: α = 1/8 (§3.3 RTTConstant).
pub const RTT_ALPHA: f64 = 1.0 / 8.0;

/// Weight of a new deviation in the RTT variation: β = 1/4 (§3.3 RTTVConstant).
pub const RTTVAR_BETA: f64 = 1.0 / 4.0;

/// Lower bound of the variation term of the RTO (§3.3 ClockGranularity).
pub const CLOCK_GRANULARITY: Duration = Duration::from_millis(10);

/// Upper bound of the retransmission timeout (§3.3 MaxTransmissionTimeout).
pub const MAX_RTO: Duration = Duration::from_secs(1);

/// Period of the resend scheduler, which only ever looks at the oldest unacked message (§3.3).
pub const RESEND_TICK: Duration = Duration::from_millis(100);

/// Resends of one message after which the plugin gives up and calls TerminateSession (§3.3).
pub const CLIENT_MAX_RESEND_ATTEMPTS: u32 = 3000;

/// Bytes read per chunk from a PTY, a process or a TCP socket before framing (§3.3, §7.4).
pub const STREAM_DATA_PAYLOAD_SIZE: usize = 1024;

/// Outgoing and incoming buffer capacity of the plugin (§3.3).
pub const CLIENT_BUFFER_CAPACITY: usize = 10_000;

/// Outgoing and incoming buffer capacity of the agent (§3.3).
pub const AGENT_BUFFER_CAPACITY: usize = 100_000;

/// How long the agent waits for its outgoing buffer to drain before closing (§3.3).
pub const AGENT_CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// How long the agent waits for a HandshakeResponse (and for an encryption challenge) (§4.2).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// smux v1 frame header: ver, cmd, length (LE u16), stream id (LE u32) (§7.4).
pub const SMUX_HEADER_LEN: usize = 8;

/// smux version carried by every frame of session-manager-plugin and the agent (§7.4).
pub const SMUX_VERSION: u8 = 1;

/// Largest smux frame payload with the DefaultConfig both ends use (§7.4).
pub const SMUX_MAX_FRAME_SIZE: usize = 32_768;

/// Resend-timeout signals the plugin's scheduler can deliver before it blocks for good (§3.3).
///
/// The plugin reports "resent too many times" by writing to a channel with a one-slot buffer that
/// the session goroutine reads exactly once. The first write is read (TerminateSession), the
/// second fills the buffer, the third blocks the scheduler forever: hence "one more copy, then the
/// resend scheduler stops for good".
pub const CLIENT_RESEND_TIMEOUT_SIGNALS: u32 = 2;

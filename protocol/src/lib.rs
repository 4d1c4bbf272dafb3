//! The wire format of AWS Systems Manager Session Manager, shared by every part of ssm-emulator.
//!
//! # Layout
//! - [`message`]: the 120-byte-header data-channel frame ("ClientMessage" in the plugin,
//!   "AgentMessage" in the agent): encode, parse and receive validation (spec §1).
//! - [`payload`]: the JSON and binary payloads those frames carry: open frames, acks, the
//!   handshake, Size, Flag, ExitCode, `channel_closed`, and the control-channel messages (spec §2,
//!   §4, §6, §9).
//! - [`reliable`]: the sequence/ack/retransmit state machine of both ends of a data channel
//!   (spec §3).
//! - [`smux`]: the smux v1 frame codec that mux-mode port forwarding carries inside Output
//!   payloads (spec §7.4).
//! - [`limits`]: every size, count and timing constant of the protocol, in one place.
//!
//! # Architecture invariant: no I/O
//! This crate never touches a socket, a file, the system clock or the operating system's random
//! source. Bytes and the current time come in as arguments; frames to send and the next deadline
//! go out as values. That is what lets the same code run inside the emulator's relay, the agent
//! simulator and the reference client, and be driven by property tests on a simulated clock.
//!
//! Section numbers (§) refer to `shared/spec/ssm-protocol.md`.

pub mod limits;
pub mod message;
pub mod payload;
pub mod reliable;
pub mod smux;

pub use message::{DecodeError, Flags, Message, MessageType, PayloadType, Validation};

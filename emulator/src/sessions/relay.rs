//! The relay of one session: two ends (client, agent), each with the queue of frames waiting
//! for it, and the one function every relayed frame passes through ([`Relay::forward`]).
//!
//! What it does (spec intro, §3.5, Appendix A):
//! - frames are forwarded unchanged, with the opcode they came with, in arrival order per
//!   direction; each end's socket is read by its own task and written by another, so one end's
//!   backpressure never reaches the other: frames wait in the destination's queue, bounded by
//!   [`RELAY_QUEUE_FRAMES`] (overflow drops the new frame and logs; the sender resends);
//! - frames for an end that is not attached (yet, or again after a reconnect) wait in its
//!   queue and go out once it attaches;
//! - client → agent `acknowledge` frames are held [`ACK_HOLD`] (§3.3 RECOMMENDATION); later
//!   client frames queue behind them, so the order holds; agent frames are never held;
//! - every relayed frame goes through the session's [`RelayHook`] (no-op by default), where
//!   fault injection plugs in; the transcript and counters are recorded in the same place;
//! - a hook (or the fault timers, through [`Relay::apply`]) can also ask for [`RelayEffect`]s:
//!   close one end's socket with a chosen close code once what is queued for it went out, or
//!   send a frame of the service's own (`pause_publication`, `start_publication`) to an end.
//!
//! Lock order: the emulator state lock may be held while a relay's lock is taken, never the
//! other way round. Nothing awaits with either held.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ssm_protocol::message::Header;
use ssm_protocol::{MessageType, PayloadType};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The most frames one end's queue holds. Beyond it new frames are dropped (and logged): both
/// ends resend what is not acknowledged. 20,000 frames is twice the plugin's own incoming
/// buffer (§3.3), about 20 MB of 1 KB stream frames.
pub const RELAY_QUEUE_FRAMES: usize = 20_000;

/// How long a client → agent `acknowledge` is held before it is forwarded (§3.3
/// RECOMMENDATION: acks returned faster than a network would trigger the agent's lost-ack race).
pub const ACK_HOLD: Duration = Duration::from_millis(2);

/// The most shell output bytes kept per session for the transcript; later output is counted
/// but not kept.
pub const TRANSCRIPT_LIMIT: usize = 1 << 20;

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (plugin) to the agent.
    ClientToAgent,
    /// From the agent to the client.
    AgentToClient,
}

/// The websocket opcode a frame came with, and goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A binary data frame (what both ends write).
    Binary,
    /// A text data frame (both ends read one like a binary frame, §2 item 5).
    Text,
}

/// One frame on its way through the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedFrame {
    /// The frame exactly as it arrived (a hook may change it).
    pub bytes: Vec<u8>,
    /// The opcode to send it with.
    pub opcode: Opcode,
    /// How long to hold it before it may be sent (frames after it in the same direction wait
    /// behind it). Zero unless a hook (or the ack hold) sets it.
    pub hold: Duration,
}

/// Something the service does on a session besides forwarding a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEffect {
    /// Close the websocket of `end` with this close frame, once the frames queued for it
    /// before it went out: the close has a place in the end's stream of frames, like the
    /// frames around it. The connection writing when that place is reached is closed: the
    /// one attached now, or the next one if this one went away first (a close queued behind
    /// another close closes the resumed connection, as "every N bytes" means). Nothing
    /// happens if no connection of `end` is attached when the effect is applied.
    Disconnect {
        /// Whose socket.
        end: End,
        /// The close code (the real service sends 1000).
        code: u16,
        /// The close reason (the real service sends "Bye").
        reason: String,
    },
    /// Send a frame of the service's own (`pause_publication`, `start_publication`) to `end`,
    /// after what is queued for it. It passes through no hook.
    Inject {
        /// To whom.
        end: End,
        /// The encoded frame.
        bytes: Vec<u8>,
    },
}

/// The one place every relayed frame passes through: fault injection (drop, duplicate,
/// reorder, delay, corrupt, close, blackhole, pause) plugs in here.
///
/// `relay` gets each frame in arrival order for its direction and pushes the frames to send
/// instead onto `out`: none to drop it, two to duplicate it, a changed one to corrupt it, one
/// with a `hold` to delay it; a hook that keeps a frame and emits it with a later one reorders.
/// `effects` are applied after the frames of `out` are queued. Frames the relay consumes
/// (`agent_session_state`) and the service's own frames (`channel_closed`) do not pass
/// through it.
pub trait RelayHook: Send + Sync + 'static {
    /// Decides what to send for `frame` of session `session_id`.
    fn relay(
        &self,
        session_id: &str,
        direction: Direction,
        frame: RelayedFrame,
        out: &mut Vec<RelayedFrame>,
        effects: &mut Vec<RelayEffect>,
    ) {
        let _ = (session_id, direction, effects);
        out.push(frame);
    }
}

/// The default hook: every frame goes through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl RelayHook for PassThrough {}

/// What went through one session's relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Frames from the client handed to the hook.
    pub client_frames: u64,
    /// Frames from the agent handed to the hook.
    pub agent_frames: u64,
    /// Bytes of those client frames.
    pub client_bytes: u64,
    /// Bytes of those agent frames.
    pub agent_bytes: u64,
    /// `agent_session_state` frames consumed.
    pub session_states: u64,
    /// Frames dropped because the destination's queue was full.
    pub overflow_drops: u64,
}

/// One end of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The client (plugin) end.
    Client,
    /// The agent end.
    Agent,
}

impl End {
    fn index(self) -> usize {
        match self {
            End::Client => 0,
            End::Agent => 1,
        }
    }

    /// `client` or `agent`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Client => "client",
            End::Agent => "agent",
        }
    }

    /// The end frames of `direction` go to.
    pub fn receiving(direction: Direction) -> End {
        match direction {
            Direction::ClientToAgent => End::Agent,
            Direction::AgentToClient => End::Client,
        }
    }
}

/// Something waiting in an end's queue.
#[derive(Debug)]
enum Item {
    /// A frame to send.
    Frame(Vec<u8>, Opcode),
    /// Close the connection writing when this is reached, with this close frame.
    Disconnect { code: u16, reason: String },
}

/// An item waiting for its end.
#[derive(Debug)]
struct Queued {
    item: Item,
    release_at: Instant,
}

#[derive(Debug, Default)]
struct EndState {
    /// Frames for this end, oldest first; `release_at` never decreases along it.
    queue: VecDeque<Queued>,
    /// The attached connection, if any.
    current: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    ends: [EndState; 2],
    next_connection: u64,
    /// Set when the session ended: writers drain their queue and close.
    closing: bool,
    stats: RelayStats,
    transcript: Vec<u8>,
    /// The next agent output sequence number not yet in the transcript (resends are skipped).
    transcript_next_seq: i64,
    /// The agent was sent `pause_publication` because the client went away; the client's next
    /// connection gets it a `start_publication` (§3.5 (b)).
    agent_paused: bool,
}

/// What a writer should do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send this frame.
    Send(Vec<u8>, Opcode),
    /// Close this connection's socket with this close frame (a fault, [`RelayEffect::Disconnect`]).
    Disconnect(u16, String),
    /// The front frame is held until then.
    HoldUntil(Instant),
    /// Nothing to send: wait for a wake-up.
    Wait,
    /// A newer connection took this end over.
    Replaced,
    /// The session ended and everything queued went out.
    Close,
}

/// The relay of one session.
pub(crate) struct Relay {
    session_id: String,
    inner: Mutex<Inner>,
    /// Wakes the writers of the client (0) and agent (1) ends.
    wake: [Notify; 2],
    hook: Mutex<Arc<dyn RelayHook>>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub(crate) fn new(session_id: String, hook: Arc<dyn RelayHook>) -> Relay {
        Relay {
            session_id,
            inner: Mutex::new(Inner::default()),
            wake: [Notify::new(), Notify::new()],
            hook: Mutex::new(hook),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the session's hook.
    pub(crate) fn set_hook(&self, hook: Arc<dyn RelayHook>) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Makes a new connection the one of `end` (an older one is told it was replaced).
    /// Returns its number.
    pub(crate) fn attach(&self, end: End) -> u64 {
        let id = {
            let mut inner = self.lock();
            inner.next_connection += 1;
            let id = inner.next_connection;
            inner.ends[end.index()].current = Some(id);
            id
        };
        self.wake[end.index()].notify_waiters();
        id
    }

    /// Whether `end` has a connection now.
    pub(crate) fn is_attached(&self, end: End) -> bool {
        self.lock().ends[end.index()].current.is_some()
    }

    /// Forgets connection `id` of `end` if it is still the current one; returns whether it was.
    pub(crate) fn detach(&self, end: End, id: u64) -> bool {
        let mut inner = self.lock();
        let state = &mut inner.ends[end.index()];
        if state.current == Some(id) {
            state.current = None;
            true
        } else {
            false
        }
    }

    /// The client went away without ending the session: `pause` (a `pause_publication`) goes
    /// to the agent after what is queued for it, and the next client connection is to unpause
    /// it ([`Relay::take_agent_paused`]).
    pub(crate) fn pause_agent(&self, pause: Vec<u8>) {
        self.lock().agent_paused = true;
        self.apply(vec![RelayEffect::Inject {
            end: End::Agent,
            bytes: pause,
        }]);
    }

    /// Whether the agent was paused for the client's absence; clears it (the caller sends
    /// `start_publication`).
    pub(crate) fn take_agent_paused(&self) -> bool {
        std::mem::take(&mut self.lock().agent_paused)
    }

    /// Counts an `agent_session_state` the relay consumed.
    pub(crate) fn count_session_state(&self) {
        self.lock().stats.session_states += 1;
    }

    /// **The one place for every relayed frame**: a frame read from `from` goes through the
    /// counters, the transcript and the hook, gets the ack hold if it is a client
    /// `acknowledge`, and is queued for the other end.
    pub(crate) fn forward(&self, from: End, bytes: Vec<u8>, opcode: Opcode) {
        let direction = match from {
            End::Client => Direction::ClientToAgent,
            End::Agent => Direction::AgentToClient,
        };
        let header = Header::parse(&bytes).ok();
        {
            let mut inner = self.lock();
            let len = bytes.len() as u64;
            match from {
                End::Client => {
                    inner.stats.client_frames += 1;
                    inner.stats.client_bytes += len;
                }
                End::Agent => {
                    inner.stats.agent_frames += 1;
                    inner.stats.agent_bytes += len;
                }
            }
            if from == End::Agent
                && let Some(h) = &header
                && h.message_type == MessageType::OutputStreamData
                && h.payload_type == PayloadType::Output
                && h.sequence_number >= inner.transcript_next_seq
            {
                inner.transcript_next_seq = h.sequence_number + 1;
                let payload = h.payload(&bytes);
                let room = TRANSCRIPT_LIMIT.saturating_sub(inner.transcript.len());
                let take = payload.len().min(room);
                inner.transcript.extend_from_slice(&payload[..take]);
            }
        }
        let hook = self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::with_capacity(1);
        let mut effects = Vec::new();
        hook.relay(
            &self.session_id,
            direction,
            RelayedFrame {
                bytes,
                opcode,
                hold: Duration::ZERO,
            },
            &mut out,
            &mut effects,
        );
        let is_ack = header
            .as_ref()
            .is_some_and(|h| h.message_type == MessageType::Acknowledge);
        let to = match from {
            End::Client => End::Agent,
            End::Agent => End::Client,
        };
        let now = Instant::now();
        {
            let mut inner = self.lock();
            for mut frame in out {
                if from == End::Client && is_ack {
                    frame.hold = frame.hold.max(ACK_HOLD);
                }
                if !Self::enqueue(&mut inner, &self.session_id, to, frame, now) {
                    inner.stats.overflow_drops += 1;
                }
            }
        }
        self.wake[to.index()].notify_waiters();
        if !effects.is_empty() {
            self.apply(effects);
        }
    }

    /// Applies `effects` in order: the service acting on this session on its own.
    pub(crate) fn apply(&self, effects: Vec<RelayEffect>) {
        let now = Instant::now();
        let mut woken = [false; 2];
        {
            let mut inner = self.lock();
            for effect in effects {
                let (end, item) = match effect {
                    RelayEffect::Disconnect { end, code, reason } => {
                        if inner.ends[end.index()].current.is_none() {
                            tracing::debug!(
                                session_id = self.session_id,
                                end = end.as_str(),
                                "disconnect fault: no connection attached"
                            );
                            continue;
                        }
                        let item = Item::Disconnect { code, reason };
                        (end, item)
                    }
                    RelayEffect::Inject { end, bytes } => (end, Item::Frame(bytes, Opcode::Binary)),
                };
                let queue = &mut inner.ends[end.index()].queue;
                let release_at = queue.back().map_or(now, |q| q.release_at);
                queue.push_back(Queued { item, release_at });
                woken[end.index()] = true;
            }
        }
        for (wake, woken) in self.wake.iter().zip(woken) {
            if woken {
                wake.notify_waiters();
            }
        }
    }

    /// Queues `frame` for `to`; false (and a log line) if the queue is full.
    fn enqueue(
        inner: &mut Inner,
        session_id: &str,
        to: End,
        frame: RelayedFrame,
        now: Instant,
    ) -> bool {
        let queue = &mut inner.ends[to.index()].queue;
        if queue.len() >= RELAY_QUEUE_FRAMES {
            tracing::warn!(
                session_id,
                to = to.as_str(),
                limit = RELAY_QUEUE_FRAMES,
                "relay queue full: dropping a frame (the sender will resend it)"
            );
            return false;
        }
        let floor = queue.back().map_or(now, |q| q.release_at);
        queue.push_back(Queued {
            item: Item::Frame(frame.bytes, frame.opcode),
            release_at: (now + frame.hold).max(floor),
        });
        true
    }

    /// Ends the session: queues `to_client` (the service's `channel_closed`) for the client,
    /// then both writers drain their queues and close their sockets.
    pub(crate) fn finish(&self, to_client: Option<Vec<u8>>) {
        {
            let mut inner = self.lock();
            if inner.closing {
                return;
            }
            inner.closing = true;
            if let Some(bytes) = to_client {
                let floor = inner.ends[0]
                    .queue
                    .back()
                    .map_or_else(Instant::now, |q| q.release_at);
                inner.ends[0].queue.push_back(Queued {
                    item: Item::Frame(bytes, Opcode::Binary),
                    release_at: floor,
                });
            }
        }
        for wake in &self.wake {
            wake.notify_waiters();
        }
    }

    /// Whether the session ended.
    pub(crate) fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// What connection `id` of `end` should do next.
    pub(crate) fn next(&self, end: End, id: u64, now: Instant) -> Next {
        let mut inner = self.lock();
        let closing = inner.closing;
        let state = &mut inner.ends[end.index()];
        if state.current != Some(id) {
            return Next::Replaced;
        }
        match state.queue.front() {
            Some(front) if front.release_at > now => Next::HoldUntil(front.release_at),
            Some(_) => match state.queue.pop_front().expect("front exists").item {
                Item::Frame(bytes, opcode) => Next::Send(bytes, opcode),
                Item::Disconnect { code, reason } => Next::Disconnect(code, reason),
            },
            None if closing => Next::Close,
            None => Next::Wait,
        }
    }

    /// The notifier the writer of `end` waits on.
    pub(crate) fn wake(&self, end: End) -> &Notify {
        &self.wake[end.index()]
    }

    /// The shell output so far (agent `output_stream_data` of PayloadType Output, each
    /// sequence number once), at most [`TRANSCRIPT_LIMIT`] bytes.
    pub(crate) fn transcript(&self) -> Vec<u8> {
        self.lock().transcript.clone()
    }

    /// The counters.
    pub(crate) fn stats(&self) -> RelayStats {
        self.lock().stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssm_protocol::Message;
    use uuid::Uuid;

    fn frame(message_type: MessageType, seq: i64, payload: &[u8]) -> Vec<u8> {
        let mut m = Message::new(message_type, 1, Uuid::from_u128(seq as u128 + 1));
        m.sequence_number = seq;
        m.payload_type = PayloadType::Output;
        m.payload = payload.to_vec();
        m.encode()
    }

    fn drain(relay: &Relay, end: End, id: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Next::Send(bytes, _) = relay.next(end, id, Instant::now() + ACK_HOLD * 10) {
            out.push(bytes);
        }
        out
    }

    #[test]
    fn frames_wait_for_their_end_and_keep_their_order() {
        let relay = Relay::new("s".into(), Arc::new(PassThrough));
        let a = frame(MessageType::OutputStreamData, 0, b"$ ");
        let b = frame(MessageType::OutputStreamData, 1, b"hi");
        relay.forward(End::Agent, a.clone(), Opcode::Binary);
        relay.forward(End::Agent, b.clone(), Opcode::Binary);
        let id = relay.attach(End::Client);
        assert_eq!(drain(&relay, End::Client, id), vec![a, b]);
        // Resent output does not repeat in the transcript.
        relay.forward(
            End::Agent,
            frame(MessageType::OutputStreamData, 1, b"hi"),
            Opcode::Binary,
        );
        assert_eq!(relay.transcript(), b"$ hi");
    }

    #[test]
    fn client_acks_are_held_and_later_frames_queue_behind_them() {
        let relay = Relay::new("s".into(), Arc::new(PassThrough));
        let id = relay.attach(End::Agent);
        let ack = frame(MessageType::Acknowledge, 0, b"{}");
        let input = frame(MessageType::InputStreamData, 0, b"x");
        relay.forward(End::Client, ack.clone(), Opcode::Binary);
        relay.forward(End::Client, input.clone(), Opcode::Binary);
        assert!(matches!(
            relay.next(End::Agent, id, Instant::now()),
            Next::HoldUntil(_)
        ));
        assert_eq!(drain(&relay, End::Agent, id), vec![ack, input]);
    }

    #[test]
    fn a_hook_sees_every_frame_and_decides() {
        #[derive(Default)]
        struct Duplicate;
        impl RelayHook for Duplicate {
            fn relay(
                &self,
                _: &str,
                _: Direction,
                f: RelayedFrame,
                out: &mut Vec<RelayedFrame>,
                _: &mut Vec<RelayEffect>,
            ) {
                out.push(f.clone());
                out.push(f);
            }
        }
        let relay = Relay::new("s".into(), Arc::new(Duplicate));
        let id = relay.attach(End::Client);
        let a = frame(MessageType::OutputStreamData, 0, b"x");
        relay.forward(End::Agent, a.clone(), Opcode::Binary);
        assert_eq!(drain(&relay, End::Client, id), vec![a.clone(), a]);
    }

    #[test]
    fn a_close_keeps_its_place_and_a_second_one_closes_the_resumed_connection() {
        let relay = Relay::new("s".into(), Arc::new(PassThrough));
        let old = relay.attach(End::Client);
        let a = frame(MessageType::OutputStreamData, 0, b"a");
        let b = frame(MessageType::OutputStreamData, 1, b"b");
        let close = || RelayEffect::Disconnect {
            end: End::Client,
            code: 1000,
            reason: "Bye".into(),
        };
        relay.forward(End::Agent, a.clone(), Opcode::Binary);
        relay.apply(vec![close()]);
        // The agent outran the client: the second close is due before the first went out.
        relay.forward(End::Agent, b.clone(), Opcode::Binary);
        relay.apply(vec![close()]);
        let now = Instant::now();
        assert!(matches!(relay.next(End::Client, old, now), Next::Send(f, _) if f == a));
        assert!(matches!(
            relay.next(End::Client, old, now),
            Next::Disconnect(1000, _)
        ));
        assert!(relay.detach(End::Client, old));
        let new = relay.attach(End::Client);
        assert!(matches!(relay.next(End::Client, new, now), Next::Send(f, _) if f == b));
        assert!(matches!(
            relay.next(End::Client, new, now),
            Next::Disconnect(1000, _)
        ));
        assert!(relay.detach(End::Client, new));
        // With no client attached a close does nothing, and pausing the agent is remembered.
        relay.apply(vec![close()]);
        relay.pause_agent(vec![9]);
        let agent = relay.attach(End::Agent);
        assert!(
            matches!(relay.next(End::Agent, agent, Instant::now()), Next::Send(f, _) if f == [9])
        );
        assert!(relay.take_agent_paused());
        assert!(!relay.take_agent_paused());
        let again = relay.attach(End::Client);
        assert!(matches!(relay.next(End::Client, again, now), Next::Wait));
    }

    #[test]
    fn a_new_connection_replaces_the_old_and_finish_closes_after_draining() {
        let relay = Relay::new("s".into(), Arc::new(PassThrough));
        let old = relay.attach(End::Client);
        let new = relay.attach(End::Client);
        assert!(matches!(
            relay.next(End::Client, old, Instant::now()),
            Next::Replaced
        ));
        assert!(!relay.detach(End::Client, old));
        relay.finish(Some(vec![1, 2, 3]));
        assert!(matches!(
            relay.next(End::Client, new, Instant::now()),
            Next::Send(b, Opcode::Binary) if b == [1, 2, 3]
        ));
        assert!(matches!(
            relay.next(End::Client, new, Instant::now()),
            Next::Close
        ));
    }
}

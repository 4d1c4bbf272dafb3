//! The reliable stream of one data-channel end: sequence numbers, acks, reordering and
//! retransmission, exactly as session-manager-plugin and amazon-ssm-agent do them (spec §3, §5).
//!
//! [`ReliableStream`] is sans-IO, in the style of quinn-proto: the caller feeds it received frames
//! ([`ReliableStream::handle_frame`]), data to send ([`ReliableStream::send`]) and the passage of
//! time ([`ReliableStream::handle_timeout`]), and takes out frames to write
//! ([`ReliableStream::poll_transmit`]), events ([`ReliableStream::poll_event`]) and the next
//! deadline ([`ReliableStream::poll_timeout`]). It never reads a clock or the OS random source:
//! every `now` is the caller's, and MessageIds come from a seeded [`StdRng`].
//!
//! # What is modelled, and how
//! - Both real ends run their resend scheduler as a `for { sleep(100 ms); … }` goroutine started
//!   with the data channel. Here that loop is a grid of ticks every [`RESEND_TICK`] counted from
//!   [`ReliableStream::new`]'s `now`. A tick that would do nothing need not be run: a caller that
//!   calls [`ReliableStream::handle_timeout`] at [`ReliableStream::poll_timeout`] sees exactly the
//!   resends the real loop would make (without its drift of ≈0.5 ms per tick).
//! - The real senders write a frame *before* appending it to their outgoing buffer, so an ack that
//!   races in between is lost (§3.3 "Lost-acknowledgement race"). Here `send` is atomic, so the
//!   race cannot happen by itself; fault injection reproduces its effect by dropping that ack.
//! - The plugin's three concurrent senders can reuse a sequence number (§3.3); a single-threaded
//!   state machine cannot, so that quirk is not modelled.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::limits::{
    AGENT_BUFFER_CAPACITY, CLIENT_BUFFER_CAPACITY, CLIENT_MAX_RESEND_ATTEMPTS,
    CLIENT_RESEND_TIMEOUT_SIGNALS, CLOCK_GRANULARITY, INITIAL_RTO, INITIAL_RTTVAR, INITIAL_SRTT,
    MAX_RTO, RESEND_TICK, RTT_ALPHA, RTTVAR_BETA,
};
use crate::message::{DecodeError, Flags, Message, MessageType, PayloadType, Validation};
use crate::payload::Acknowledge;

/// Which real end's rules the stream follows. The two differ in small ways that matter on the
/// wire (§3.2, §3.3, §5); each difference is one method below, named after the behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// session-manager-plugin: sends `input_stream_data`, receives `output_stream_data`.
    Client,
    /// amazon-ssm-agent: sends `output_stream_data`, receives `input_stream_data`.
    Agent,
}

/// Limits of one stream. Use [`Config::client`] or [`Config::agent`] for the real values and
/// change fields only to provoke edge cases (for example a tiny buffer in a test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Whose rules to follow.
    pub role: Role,
    /// Unacked messages kept for resending. What happens when it is full depends on the role.
    pub outgoing_capacity: usize,
    /// Early (out-of-order) messages kept until the gap is filled; beyond it they are dropped
    /// without an ack.
    pub incoming_capacity: usize,
    /// Resends of one message after which [`Event::GaveUp`] is raised and the scheduler winds
    /// down (§3.3). `None`: resend forever, as the agent does.
    pub max_resend_attempts: Option<u32>,
    /// Whether a duplicate (a stream message older than the expected one) is acked again.
    /// The agent does; the plugin does not (§3.2), which is what makes one lost plugin ack
    /// stall the agent's front message for good (§3.3 "Lost-acknowledgement race").
    /// [`Config::client_re_acking`] turns it on for a client that must survive that.
    pub re_ack_duplicates: bool,
}

impl Config {
    /// The plugin's limits (§3.3): 10 000-entry buffers, give up after 3000 resends.
    pub fn client() -> Config {
        Config {
            role: Role::Client,
            outgoing_capacity: CLIENT_BUFFER_CAPACITY,
            incoming_capacity: CLIENT_BUFFER_CAPACITY,
            max_resend_attempts: Some(CLIENT_MAX_RESEND_ATTEMPTS),
            re_ack_duplicates: false,
        }
    }

    /// The plugin's limits, except that duplicates are acked again as the agent acks them.
    ///
    /// A deliberate deviation from the plugin, for clients that must not stall: with the
    /// plugin's rule a single lost client ack leaves the agent resending its front message
    /// for the rest of the session, and since the agent resends nothing but its front, the
    /// next lost agent frame is never repaired (§3.3). Acking the resent copy clears the
    /// front, so the agent moves on to what was really lost. The agent cannot tell the
    /// difference: it already takes acks for anything it sent (§3.1).
    pub fn client_re_acking() -> Config {
        Config {
            re_ack_duplicates: true,
            ..Config::client()
        }
    }

    /// The agent's limits (§3.3): 100 000-entry buffers, no resend limit.
    pub fn agent() -> Config {
        Config {
            role: Role::Agent,
            outgoing_capacity: AGENT_BUFFER_CAPACITY,
            incoming_capacity: AGENT_BUFFER_CAPACITY,
            max_resend_attempts: None,
            re_ack_duplicates: true,
        }
    }
}

/// Something the owner of the stream must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The next in-order stream message. Its payload is the delivered bytes; each sequence
    /// number is delivered once.
    Stream(Message),
    /// A message that is neither stream data of the peer nor an ack: `channel_closed`,
    /// `start_publication`, `pause_publication`, `agent_session_state`, anything unknown, and
    /// stream data of our own direction (which the real ends log and ignore).
    Control(Message),
    /// One message was resent [`Config::max_resend_attempts`] times. The plugin then calls the
    /// TerminateSession API (§3.3); raised at most once per stream.
    GaveUp,
}

/// Counters for logs, the emulator's state endpoint and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Stream messages transmitted for the first time.
    pub sent: u64,
    /// Retransmissions by the resend scheduler.
    pub resent: u64,
    /// Acks written.
    pub acks_sent: u64,
    /// Acks that matched an outgoing message and removed it.
    pub acks_received: u64,
    /// Acks whose sequence number matched nothing (already acked, evicted or never buffered).
    pub acks_unmatched: u64,
    /// Acks whose JSON could not be read; ignored.
    pub acks_malformed: u64,
    /// Stream messages delivered in order.
    pub delivered: u64,
    /// Stream messages older than the expected one (dropped; re-acked by the agent).
    pub duplicates: u64,
    /// Early stream messages acked and stored for later.
    pub out_of_order_buffered: u64,
    /// Early stream messages dropped without ack because the incoming buffer was full.
    pub dropped_incoming_full: u64,
    /// Outgoing messages lost to a full outgoing buffer: the oldest one evicted (client) or the
    /// new one not kept (agent).
    pub dropped_outgoing_full: u64,
    /// In-order stream messages refused by the `ready` callback (not acked, not delivered).
    pub not_ready: u64,
    /// Stream messages queued without transmitting because the agent was paused (§5).
    pub queued_while_paused: u64,
    /// Empty payloads the agent ignored (§3.3).
    pub ignored_empty: u64,
    /// Frames refused by [`Message::decode`].
    pub decode_errors: u64,
}

/// The state machine of one end of a data channel (§3). See the module documentation.
#[derive(Debug)]
pub struct ReliableStream {
    /// Role and limits, fixed for the life of the stream.
    config: Config,
    /// Origin of the resend tick grid and of CreatedDate.
    created: Instant,
    /// Unix-epoch milliseconds at `created`, so CreatedDate needs no clock read.
    wall_clock_ms: u64,
    /// Source of MessageIds; seeded so that runs are reproducible.
    ids: StdRng,
    /// Sequence number of the next stream message we send.
    next_seq: i64,
    /// Sequence number of the next stream message we deliver.
    expected_seq: i64,
    /// Sent (or, when paused, queued) messages not yet acked, by sequence number. The real ends
    /// keep a list in send order, which is the same order.
    outgoing: BTreeMap<i64, Outgoing>,
    /// Early messages waiting for the gap before them to be filled (already acked).
    incoming: BTreeMap<i64, Message>,
    /// SRTT / RTTVAR / RTO of §3.3.
    rtt: RttEstimator,
    /// The next tick of the resend scheduler that has not run yet.
    next_tick: Instant,
    /// Agent only: `pause_publication` received and not yet undone (§5).
    paused: bool,
    /// Resend-timeout signals that can still be delivered before the scheduler blocks.
    timeout_signals_left: u32,
    /// The plugin's scheduler blocked on its timeout channel: no resends ever again.
    resend_stopped: bool,
    /// Frames to write, oldest first.
    transmit: VecDeque<Vec<u8>>,
    /// Events for the owner, oldest first.
    events: VecDeque<Event>,
    /// Counters.
    stats: Stats,
}

/// One unacked outgoing message.
#[derive(Clone, Debug)]
struct Outgoing {
    /// The encoded frame; resends repeat these bytes exactly (same MessageId and CreatedDate).
    frame: Vec<u8>,
    /// When it was last put on the wire (or queued, when paused). The client never moves it
    /// after the first send (§3.3 plugin quirk).
    last_sent: Instant,
    /// Resends so far; the plugin's `ResendAttempt`.
    resend_attempts: u32,
    /// Whether it has been on the wire at all (false for a message queued while paused).
    transmitted: bool,
}

impl ReliableStream {
    /// A stream with nothing sent or received.
    ///
    /// `wall_clock_ms` is the Unix-epoch millisecond time that corresponds to `now`; CreatedDate
    /// of every frame is `wall_clock_ms + (t - now)`. It must be non-zero, or both real peers
    /// drop our frames (§1.1). `id_seed` seeds the MessageId generator (UUID v4 from
    /// [`StdRng`]).
    pub fn new(config: Config, now: Instant, wall_clock_ms: u64, id_seed: u64) -> ReliableStream {
        ReliableStream {
            config,
            created: now,
            wall_clock_ms,
            ids: StdRng::seed_from_u64(id_seed),
            next_seq: 0,
            expected_seq: 0,
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            rtt: RttEstimator::new(),
            next_tick: now + RESEND_TICK,
            paused: false,
            timeout_signals_left: CLIENT_RESEND_TIMEOUT_SIGNALS,
            resend_stopped: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Queues one stream message and returns its sequence number.
    ///
    /// The message is `input_stream_data` for the client and `output_stream_data` for the agent,
    /// with Flags as §1.6 shows. It is transmitted at once unless the agent is paused (§5), and
    /// kept for resending subject to the buffer-full policy of the role (§3.3).
    ///
    /// Returns `None`, sending nothing and using no sequence number, when the agent is given an
    /// empty payload: its `SendStreamDataMessage` silently ignores those (§3.3), and a sequence
    /// number that is never sent would make the caller believe otherwise. The client sends empty
    /// payloads like any other, so it always returns `Some`.
    pub fn send(
        &mut self,
        now: Instant,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Option<i64> {
        self.catch_up(now);
        if payload.is_empty() && self.role().ignores_empty_payloads() {
            self.stats.ignored_empty += 1;
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut message = Message::new(
            self.role().outgoing_stream_type(),
            self.wall_ms(now),
            self.next_id(),
        );
        message.sequence_number = seq;
        message.flags = self.role().stream_flags(seq);
        message.payload_type = payload_type;
        message.payload = payload;
        let frame = message.encode();
        let transmitted = !self.paused;
        if transmitted {
            self.transmit.push_back(frame.clone());
            self.stats.sent += 1;
        } else {
            self.stats.queued_while_paused += 1;
        }
        self.buffer_outgoing(
            seq,
            Outgoing {
                frame,
                last_sent: now,
                resend_attempts: 0,
                transmitted,
            },
        );
        Some(seq)
    }

    /// Processes one received websocket message.
    ///
    /// `ready` is asked about each stream message that is about to be delivered in order: `false`
    /// means the handler is "not ready" (§3.2), so the message is neither acked nor delivered and
    /// the expected sequence number stays put; the sender must resend it. The client does not ask
    /// for HandshakeRequest, HandshakeComplete and EncChallengeRequest, which it acks first and
    /// then processes.
    ///
    /// A frame the role's reader refuses is returned as the error, with no other effect; the
    /// caller logs and drops it (no ack, no disconnect, §1.4).
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &[u8],
        ready: &mut dyn FnMut(&Message) -> bool,
    ) -> Result<(), DecodeError> {
        self.catch_up(now);
        let message = Message::decode(frame, self.role().validation()).inspect_err(|_| {
            self.stats.decode_errors += 1;
        })?;
        match message.message_type {
            ref t if *t == self.role().incoming_stream_type() => {
                self.on_stream(now, message, ready)
            }
            MessageType::Acknowledge => self.on_ack(now, &message),
            MessageType::PausePublication => self.on_publication(message, true),
            MessageType::StartPublication => self.on_publication(message, false),
            _ => self.events.push_back(Event::Control(message)),
        }
        Ok(())
    }

    /// Runs the resend scheduler if a tick is due at `now`; otherwise does nothing.
    ///
    /// One tick looks only at the oldest unacked message and resends it if more than the RTO has
    /// passed since its LastSentTime (§3.3). Ticks fall every [`RESEND_TICK`] from the `now` given
    /// to [`ReliableStream::new`]. A caller that wakes late runs the missed tick once, at `now`,
    /// as the real sleep loop would; the next tick stays on the grid.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = self.tick_after(now);
        if self.paused || self.resend_stopped {
            return;
        }
        self.resend_front(now);
    }

    /// The next frame to write to the websocket, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next time [`ReliableStream::handle_timeout`] will resend something, if nothing
    /// changes before then.
    ///
    /// `None` when nothing is unacked, while the agent is paused (only a received frame can
    /// unpause it) and after the client's scheduler has stopped for good.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.paused || self.resend_stopped {
            return None;
        }
        let front = self.outgoing.values().next()?;
        let due = self.tick_after(front.last_sent + self.rtt.rto);
        Some(due.max(self.next_tick))
    }

    /// Messages sent (or queued) and not yet acked; the agent's close waits up to 2 s for this to
    /// reach 0 (§3.3).
    pub fn unacked(&self) -> usize {
        self.outgoing.len()
    }

    /// The retransmission timeout in force.
    pub fn rto(&self) -> Duration {
        self.rtt.rto
    }

    /// Counters since creation.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Rules and limits of this stream.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sequence number of the next stream message [`ReliableStream::send`] will use.
    pub fn next_sequence_number(&self) -> i64 {
        self.next_seq
    }

    /// Sequence number of the next stream message to be delivered.
    pub fn expected_sequence_number(&self) -> i64 {
        self.expected_seq
    }

    /// Whether the agent is paused by `pause_publication` (§5). Always false for the client.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The owner re-dialled the data channel after a read failure and sent its new open frame
    /// (§9.1). The agent keeps its sequence numbers, buffers and RTT estimate, and un-pauses
    /// (§5: "reconnecting also sets `Pause = false`"), so queued output drains through the
    /// resend scheduler again. The client has nothing to reset.
    pub fn on_reconnect(&mut self, now: Instant) {
        self.catch_up(now);
        if self.role().honours_publication() {
            self.paused = false;
        }
    }

    /// Whether the client's resend scheduler has stopped for good after giving up (§3.3).
    pub fn is_resend_stopped(&self) -> bool {
        self.resend_stopped
    }
}

/// Receiving.
impl ReliableStream {
    /// Dispatches a stream message of the peer by its position relative to the expected one.
    fn on_stream(
        &mut self,
        now: Instant,
        message: Message,
        ready: &mut dyn FnMut(&Message) -> bool,
    ) {
        if self.role().honours_publication() {
            self.paused = false;
        }
        let seq = message.sequence_number;
        match seq.cmp(&self.expected_seq) {
            Ordering::Equal => self.on_in_order(now, message, ready),
            Ordering::Greater => self.on_early(now, message),
            Ordering::Less => self.on_duplicate(now, &message),
        }
    }

    /// seq == expected: ack and deliver (unless not ready), then drain the incoming buffer.
    fn on_in_order(
        &mut self,
        now: Instant,
        message: Message,
        ready: &mut dyn FnMut(&Message) -> bool,
    ) {
        if !self.role().acks_before_processing(message.payload_type) && !ready(&message) {
            self.stats.not_ready += 1;
            return;
        }
        self.send_ack(now, &message);
        self.deliver(message);
        self.drain_incoming(ready);
    }

    /// Delivers buffered messages that are now in order. They were acked on arrival and are not
    /// acked again; the first one that is not ready stays buffered and stops the drain (§3.2).
    ///
    /// As in the plugin, a buffered handshake message goes through `ready` like any other (its
    /// buffered items are replayed through the session handlers only), and a not-ready entry
    /// can only be drained by a later in-order arrival of its own sequence number, since the
    /// sender saw it acked and will not resend it. That arrival is delivered and the stale entry
    /// stays in the map, as the plugin's does.
    fn drain_incoming(&mut self, ready: &mut dyn FnMut(&Message) -> bool) {
        while let Some(next) = self.incoming.get(&self.expected_seq) {
            if !ready(next) {
                self.stats.not_ready += 1;
                return;
            }
            let next = self
                .incoming
                .remove(&self.expected_seq)
                .expect("present: just looked it up");
            self.deliver(next);
        }
    }

    /// seq > expected: ack at once and keep it, if there is room; otherwise drop it silently.
    fn on_early(&mut self, now: Instant, message: Message) {
        if self.incoming.len() >= self.config.incoming_capacity {
            self.stats.dropped_incoming_full += 1;
            return;
        }
        self.send_ack(now, &message);
        self.stats.out_of_order_buffered += 1;
        self.incoming.insert(message.sequence_number, message);
    }

    /// seq < expected: the plugin drops it silently, the agent acks it again (§3.2); a client
    /// with [`Config::re_ack_duplicates`] acks it again too.
    fn on_duplicate(&mut self, now: Instant, message: &Message) {
        self.stats.duplicates += 1;
        if self.config.re_ack_duplicates {
            self.send_ack(now, message);
        }
    }

    fn deliver(&mut self, message: Message) {
        self.expected_seq += 1;
        self.stats.delivered += 1;
        self.events.push_back(Event::Stream(message));
    }

    /// Removes the acked message, matched by sequence number only (§3.1), and takes an RTT
    /// sample from its LastSentTime.
    fn on_ack(&mut self, now: Instant, message: &Message) {
        if self.role().honours_publication() {
            // The agent unpauses before it even parses the ack (§5).
            self.paused = false;
        }
        let Ok(ack) = serde_json::from_slice::<Acknowledge>(&message.payload) else {
            self.stats.acks_malformed += 1;
            return;
        };
        match self.outgoing.remove(&ack.sequence_number) {
            Some(acked) => {
                self.rtt
                    .sample(now.saturating_duration_since(acked.last_sent));
                self.stats.acks_received += 1;
            }
            None => self.stats.acks_unmatched += 1,
        }
    }

    /// `pause_publication` / `start_publication`: the agent pauses or resumes (§5); the plugin
    /// ignores both. Either way the owner sees them.
    fn on_publication(&mut self, message: Message, pause: bool) {
        if self.role().honours_publication() {
            self.paused = pause;
        }
        self.events.push_back(Event::Control(message));
    }

    /// Writes the `acknowledge` for `message` (§3.1): seq 0, Flags 3, PayloadType 0.
    fn send_ack(&mut self, now: Instant, message: &Message) {
        let content = Acknowledge {
            message_type: message.message_type.to_string(),
            message_id: message.message_id.to_string(),
            sequence_number: message.sequence_number,
            is_sequential_message: true,
        };
        let mut ack = Message::new(MessageType::Acknowledge, self.wall_ms(now), self.next_id());
        ack.flags = Flags::ACK;
        ack.payload =
            serde_json::to_vec(&content).expect("Acknowledge has only strings, numbers and bools");
        self.transmit.push_back(ack.encode());
        self.stats.acks_sent += 1;
    }
}

/// Sending and resending.
impl ReliableStream {
    /// Appends to the outgoing buffer; when it is full the client evicts the oldest entry and the
    /// agent keeps the new message out (§3.3).
    fn buffer_outgoing(&mut self, seq: i64, entry: Outgoing) {
        if self.outgoing.len() >= self.config.outgoing_capacity {
            self.stats.dropped_outgoing_full += 1;
            if !self.role().evicts_oldest_when_full() {
                return;
            }
            self.outgoing.pop_first();
        }
        self.outgoing.insert(seq, entry);
    }

    /// Brings the tick grid up to `now` before an input is processed at `now`.
    ///
    /// A tick that had work due before `now` but was not run (the caller woke late) runs first,
    /// as the real loop would have run it before this input arrived. Ticks before `now` that had
    /// no work are skipped: without this, an ack that changes the front message could make
    /// [`ReliableStream::poll_timeout`] return a tick in the past, and a punctual caller would
    /// then resend off the grid.
    fn catch_up(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|due| due < now) {
            self.handle_timeout(now);
        }
        if self.next_tick < now {
            self.next_tick = self.tick_at_or_after(now);
        }
    }

    /// One scheduler tick's work: resend the front message if its RTO has passed.
    fn resend_front(&mut self, now: Instant) {
        let rto = self.rtt.rto;
        let Some(front) = self.outgoing.values().next() else {
            return;
        };
        if now.saturating_duration_since(front.last_sent) <= rto {
            return;
        }
        let exhausted = self
            .config
            .max_resend_attempts
            .is_some_and(|max| front.resend_attempts >= max);
        if exhausted && !self.signal_resend_timeout() {
            self.resend_stopped = true;
            return;
        }
        let stores_last_sent = self.role().stores_last_sent_time();
        let front = self
            .outgoing
            .values_mut()
            .next()
            .expect("present: checked above");
        front.resend_attempts += 1;
        if stores_last_sent {
            front.last_sent = now;
        }
        if front.transmitted {
            self.stats.resent += 1;
        } else {
            front.transmitted = true;
            self.stats.sent += 1;
        }
        self.transmit.push_back(front.frame.clone());
    }

    /// The plugin writes "resent too many times" to a channel before each resend past the limit.
    /// The first write is the TerminateSession trigger ([`Event::GaveUp`]); once the channel can
    /// take no more the scheduler blocks, which returns false here.
    fn signal_resend_timeout(&mut self) -> bool {
        if self.timeout_signals_left == 0 {
            return false;
        }
        if self.timeout_signals_left == CLIENT_RESEND_TIMEOUT_SIGNALS {
            self.events.push_back(Event::GaveUp);
        }
        self.timeout_signals_left -= 1;
        true
    }

    /// The first tick of the scheduler strictly after `t`.
    fn tick_after(&self, t: Instant) -> Instant {
        let tick = RESEND_TICK.as_nanos();
        let elapsed = t.saturating_duration_since(self.created).as_nanos();
        let ticks = elapsed / tick + 1;
        let offset = u64::try_from(ticks * tick).unwrap_or(u64::MAX);
        self.created + Duration::from_nanos(offset)
    }

    /// The first tick of the scheduler at or after `t`.
    fn tick_at_or_after(&self, t: Instant) -> Instant {
        let tick = self.tick_after(t);
        if tick - RESEND_TICK == t && t > self.created {
            t
        } else {
            tick
        }
    }

    /// CreatedDate for a frame made at `now`.
    fn wall_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.created).as_millis();
        self.wall_clock_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// A random (version 4) MessageId from the seeded generator.
    fn next_id(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.ids.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn role(&self) -> Role {
        self.config.role
    }
}

/// The per-role rules, one method per difference between the two real ends.
impl Role {
    /// The stream type this end writes (§1.3).
    fn outgoing_stream_type(self) -> MessageType {
        match self {
            Role::Client => MessageType::InputStreamData,
            Role::Agent => MessageType::OutputStreamData,
        }
    }

    /// The stream type this end reads (§1.3).
    fn incoming_stream_type(self) -> MessageType {
        match self {
            Role::Client => MessageType::OutputStreamData,
            Role::Agent => MessageType::InputStreamData,
        }
    }

    /// Flags of stream message `seq` (§1.6): the agent marks its first one SYN, the plugin never.
    fn stream_flags(self, seq: i64) -> Flags {
        match self {
            Role::Agent if seq == 0 => Flags::SYN,
            Role::Client | Role::Agent => Flags::NONE,
        }
    }

    /// The receive checks of this end's reader (§1.4).
    fn validation(self) -> Validation {
        match self {
            Role::Client => Validation::Client,
            Role::Agent => Validation::Agent,
        }
    }

    /// The plugin acks handshake messages before handling them, so "not ready" cannot apply
    /// (§3.2 first row).
    fn acks_before_processing(self, payload_type: PayloadType) -> bool {
        self == Role::Client
            && matches!(
                payload_type,
                PayloadType::HandshakeRequest
                    | PayloadType::HandshakeComplete
                    | PayloadType::EncChallengeRequest
            )
    }

    /// The agent writes the resend time back to its buffer; the plugin writes it to a copy
    /// (§3.3), so its front message is resent every tick once timed out.
    fn stores_last_sent_time(self) -> bool {
        self == Role::Agent
    }

    /// Full outgoing buffer: the plugin evicts the oldest entry, the agent keeps the new message
    /// out (§3.3).
    fn evicts_oldest_when_full(self) -> bool {
        self == Role::Client
    }

    /// Only the agent reacts to `pause_publication` / `start_publication` (§5).
    fn honours_publication(self) -> bool {
        self == Role::Agent
    }

    /// The agent's `SendStreamDataMessage` ignores empty payloads (§3.3).
    fn ignores_empty_payloads(self) -> bool {
        self == Role::Agent
    }
}

/// The retransmission-timeout estimator of §3.3, with the real ends' arithmetic: SRTT and RTTVAR
/// are `float64` nanoseconds and the RTO is truncated to whole nanoseconds, like Go's
/// `time.Duration(float64)`.
#[derive(Clone, Debug)]
struct RttEstimator {
    /// Smoothed round-trip time, nanoseconds.
    srtt: f64,
    /// Round-trip time variation, nanoseconds.
    rttvar: f64,
    /// Current retransmission timeout.
    rto: Duration,
}

impl RttEstimator {
    fn new() -> RttEstimator {
        RttEstimator {
            srtt: INITIAL_SRTT.as_nanos() as f64,
            rttvar: INITIAL_RTTVAR.as_nanos() as f64,
            rto: INITIAL_RTO,
        }
    }

    /// `RTTVAR = (1−β)·RTTVAR + β·|SRTT − r|`, then `SRTT = (1−α)·SRTT + α·r`, then
    /// `RTO = min(SRTT + max(G, 4·RTTVAR), 1 s)`. RTTVAR uses the SRTT from before this sample.
    fn sample(&mut self, round_trip: Duration) {
        let r = round_trip.as_nanos() as f64;
        self.rttvar = (1.0 - RTTVAR_BETA) * self.rttvar + RTTVAR_BETA * (self.srtt - r).abs();
        self.srtt = (1.0 - RTT_ALPHA) * self.srtt + RTT_ALPHA * r;
        let granularity = CLOCK_GRANULARITY.as_nanos() as f64;
        let rto = Duration::from_nanos((self.srtt + granularity.max(4.0 * self.rttvar)) as u64);
        self.rto = rto.min(MAX_RTO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: f64) -> Duration {
        Duration::from_nanos((value * 1e6) as u64)
    }

    #[test]
    fn first_sample_of_one_millisecond_gives_the_traced_187_ms() {
        let mut rtt = RttEstimator::new();
        rtt.sample(ms(1.0));
        // RTTVAR = 0.25·99 = 24.75; SRTT = 0.875·100 + 0.125·1 = 87.625; RTO = 87.625 + 99.
        assert_eq!(rtt.rto, ms(186.625));
    }

    #[test]
    fn variation_floor_is_the_clock_granularity() {
        let mut rtt = RttEstimator::new();
        rtt.sample(ms(100.0));
        // RTTVAR stays 0, so RTO = SRTT + 10 ms.
        assert_eq!(rtt.rto, ms(110.0));
    }

    #[test]
    fn reconnect_unpauses_the_agent_and_keeps_its_state() {
        let t0 = Instant::now();
        let mut agent = ReliableStream::new(Config::agent(), t0, 1_795_387_366_832, 1);
        assert_eq!(agent.send(t0, PayloadType::Output, b"a".to_vec()), Some(0));
        let mut pause = Message::new(MessageType::PausePublication, 1, Uuid::from_u128(9));
        pause.payload = b"{}".to_vec();
        agent
            .handle_frame(t0, &pause.encode(), &mut |_| true)
            .expect("accepted");
        assert_eq!(agent.send(t0, PayloadType::Output, b"b".to_vec()), Some(1));
        assert!(agent.is_paused());
        assert_eq!(agent.poll_timeout(), None);

        agent.on_reconnect(t0 + Duration::from_millis(50));
        assert!(!agent.is_paused());
        assert_eq!((agent.unacked(), agent.next_sequence_number()), (2, 2));
        assert!(
            agent.poll_timeout().is_some(),
            "the resend scheduler runs again"
        );

        let mut client = ReliableStream::new(Config::client(), t0, 1_795_387_366_832, 2);
        client.on_reconnect(t0);
        assert!(!client.is_paused());
    }

    #[test]
    fn rto_is_capped_at_one_second() {
        let mut rtt = RttEstimator::new();
        rtt.sample(Duration::from_secs(5));
        assert_eq!(rtt.rto, MAX_RTO);
    }
}

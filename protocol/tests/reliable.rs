//! The reliable stream of spec §3 and §5, driven on a simulated clock.
//!
//! Every test builds its clock from one arbitrary origin `Instant` and adds offsets to it, so the
//! outcome depends only on the offsets. Section numbers (§) refer to
//! `shared/spec/ssm-protocol.md`; trace names to `shared/spec/traces/`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ssm_protocol::limits::{CLIENT_MAX_RESEND_ATTEMPTS, INITIAL_RTO, MAX_RTO, RESEND_TICK};
use ssm_protocol::payload::Acknowledge;
use ssm_protocol::reliable::{Config, Event, ReliableStream, Role};
use ssm_protocol::{Flags, Message, MessageType, PayloadType, Validation};
use uuid::Uuid;

/// Unix-epoch milliseconds at the origin of every simulated clock (a CreatedDate the plugin
/// wrote in `plugin-retrans.jsonl`).
const WALL: u64 = 1_795_387_739_566;

fn ms(value: f64) -> Duration {
    Duration::from_nanos((value * 1e6).round() as u64)
}

fn client(t0: Instant) -> ReliableStream {
    ReliableStream::new(Config::client(), t0, WALL, 1)
}

fn agent(t0: Instant) -> ReliableStream {
    ReliableStream::new(Config::agent(), t0, WALL, 2)
}

fn decode(frame: &[u8]) -> Message {
    Message::decode(frame, Validation::Structure).expect("our own frames decode")
}

fn transmits(stream: &mut ReliableStream) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| stream.poll_transmit()).collect()
}

fn events(stream: &mut ReliableStream) -> Vec<Event> {
    std::iter::from_fn(|| stream.poll_event()).collect()
}

/// Payloads of the `Stream` events, in order; panics on any other event.
fn delivered(stream: &mut ReliableStream) -> Vec<Vec<u8>> {
    events(stream)
        .into_iter()
        .map(|event| match event {
            Event::Stream(message) => message.payload,
            other => panic!("expected only stream events, got {other:?}"),
        })
        .collect()
}

fn ack_of(frame: &[u8]) -> Acknowledge {
    let message = decode(frame);
    assert_eq!(message.message_type, MessageType::Acknowledge);
    serde_json::from_slice(&message.payload).expect("ack JSON")
}

fn feed(stream: &mut ReliableStream, now: Instant, frame: &[u8]) {
    stream
        .handle_frame(now, frame, &mut |_| true)
        .expect("frame accepted");
}

/// A stream frame as the peer would write it.
fn peer_stream(message_type: MessageType, seq: i64, payload: &[u8]) -> Vec<u8> {
    peer_stream_typed(message_type, seq, PayloadType::Output, payload)
}

fn peer_stream_typed(
    message_type: MessageType,
    seq: i64,
    payload_type: PayloadType,
    payload: &[u8],
) -> Vec<u8> {
    let mut message = Message::new(message_type, WALL, Uuid::from_u128(0x1000 + seq as u128));
    message.sequence_number = seq;
    message.payload_type = payload_type;
    message.payload = payload.to_vec();
    message.encode()
}

fn output(seq: i64, payload: &[u8]) -> Vec<u8> {
    peer_stream(MessageType::OutputStreamData, seq, payload)
}

fn input(seq: i64, payload: &[u8]) -> Vec<u8> {
    peer_stream(MessageType::InputStreamData, seq, payload)
}

/// An ack for `seq` with the given (possibly wrong) type, id and IsSequentialMessage.
fn ack_frame_with(seq: i64, message_type: &str, is_sequential: bool) -> Vec<u8> {
    let content = Acknowledge {
        message_type: message_type.to_owned(),
        message_id: Uuid::from_u128(0xdead_beef).to_string(),
        sequence_number: seq,
        is_sequential_message: is_sequential,
    };
    let mut message = Message::new(
        MessageType::Acknowledge,
        WALL,
        Uuid::from_u128(0x2000 + seq as u128),
    );
    message.flags = Flags::ACK;
    message.payload = serde_json::to_vec(&content).unwrap();
    message.encode()
}

fn ack_frame(seq: i64) -> Vec<u8> {
    ack_frame_with(seq, "output_stream_data", true)
}

fn control(message_type: MessageType) -> Vec<u8> {
    let mut message = Message::new(message_type, WALL, Uuid::from_u128(0x3000));
    message.payload = b"{}".to_vec();
    message.encode()
}

/// Runs the scheduler at each deadline up to and including `end`; returns (time, frame) pairs.
fn run_until(stream: &mut ReliableStream, end: Instant) -> Vec<(Instant, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(deadline) = stream.poll_timeout().filter(|t| *t <= end) {
        stream.handle_timeout(deadline);
        out.extend(transmits(stream).into_iter().map(|frame| (deadline, frame)));
    }
    out
}

fn seqs(frames: &[(Instant, Vec<u8>)]) -> Vec<i64> {
    frames
        .iter()
        .map(|(_, frame)| decode(frame).sequence_number)
        .collect()
}

fn offsets(frames: &[(Instant, Vec<u8>)], from: Instant) -> Vec<Duration> {
    frames.iter().map(|(t, _)| *t - from).collect()
}

// ---------------------------------------------------------------------------------------------
// Framing of what we send and the ack per message (§1.6, §3.1).
// ---------------------------------------------------------------------------------------------

#[test]
fn every_stream_message_gets_one_ack_quoting_its_type_id_and_seq() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    let mut client = client(t0);

    assert_eq!(
        agent.send(t0 + ms(5.0), PayloadType::Output, b"$ ".to_vec()),
        Some(0)
    );
    assert_eq!(
        agent.send(t0 + ms(6.0), PayloadType::StdErr, b"err".to_vec()),
        Some(1)
    );
    let sent = transmits(&mut agent);
    assert_eq!(sent.len(), 2);
    let first = decode(&sent[0]);
    assert_eq!(first.message_type, MessageType::OutputStreamData);
    assert_eq!((first.sequence_number, first.flags), (0, Flags::SYN));
    assert_eq!(first.created_date, WALL + 5);
    assert_eq!(first.message_id.get_version_num(), 4);
    assert_eq!(
        (decode(&sent[1]).sequence_number, decode(&sent[1]).flags),
        (1, Flags::NONE)
    );

    for frame in &sent {
        feed(&mut client, t0 + ms(7.0), frame);
    }
    assert_eq!(
        delivered(&mut client),
        vec![b"$ ".to_vec(), b"err".to_vec()]
    );
    let acks = transmits(&mut client);
    assert_eq!(acks.len(), 2);
    for (ack, original) in acks.iter().zip(&sent) {
        let header = decode(ack);
        assert_eq!((header.sequence_number, header.flags), (0, Flags::ACK));
        assert_eq!(header.payload_type, PayloadType::Undefined);
        assert_eq!(header.created_date, WALL + 7);
        let original = decode(original);
        let content = ack_of(ack);
        assert_eq!(content.message_type, "output_stream_data");
        assert_eq!(content.message_id, original.message_id.to_string());
        assert_eq!(content.sequence_number, original.sequence_number);
        assert!(content.is_sequential_message);
    }
    // The plugin's compact JSON, in its field order (§3.1).
    let text = String::from_utf8(decode(&acks[0]).payload).unwrap();
    assert!(text.starts_with(
        "{\"AcknowledgedMessageType\":\"output_stream_data\",\"AcknowledgedMessageId\":"
    ));
    assert!(
        text.ends_with(",\"AcknowledgedMessageSequenceNumber\":0,\"IsSequentialMessage\":true}")
    );

    for ack in &acks {
        feed(&mut agent, t0 + ms(8.0), ack);
    }
    assert_eq!(agent.unacked(), 0);
    assert_eq!(agent.stats().acks_received, 2);
    assert_eq!(agent.poll_timeout(), None);
}

#[test]
fn client_stream_messages_are_input_with_no_flags() {
    let t0 = Instant::now();
    let mut client = client(t0);
    let mut agent = agent(t0);
    for (seq, payload) in [b"{\"cols\":300,\"rows\":100}".as_slice(), b"ls\r"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            client.send(t0, PayloadType::Size, payload.to_vec()),
            Some(seq as i64)
        );
    }
    let sent = transmits(&mut client);
    for frame in &sent {
        let message = decode(frame);
        assert_eq!(message.message_type, MessageType::InputStreamData);
        assert_eq!(message.flags, Flags::NONE);
        feed(&mut agent, t0, frame);
    }
    assert_eq!(delivered(&mut agent).len(), 2);
    let acks = transmits(&mut agent);
    assert_eq!(
        acks.iter()
            .map(|a| ack_of(a).sequence_number)
            .collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(
        acks.iter()
            .all(|a| ack_of(a).message_type == "input_stream_data")
    );
}

#[test]
fn message_ids_come_from_the_seed() {
    let t0 = Instant::now();
    let ids = |seed| {
        let mut stream = ReliableStream::new(Config::client(), t0, WALL, seed);
        stream.send(t0, PayloadType::Output, b"x".to_vec());
        decode(&transmits(&mut stream)[0]).message_id
    };
    assert_eq!(ids(7), ids(7));
    assert_ne!(ids(7), ids(8));
}

#[test]
fn acks_match_by_sequence_number_only() {
    // plugin-retrans.jsonl: an ack with type `bogus_type`, a random id and
    // IsSequentialMessage false stops the resends of input seq 2.
    let t0 = Instant::now();
    let mut client = client(t0);
    for _ in 0..3 {
        client.send(t0, PayloadType::Output, b"x".to_vec());
    }
    feed(
        &mut client,
        t0 + ms(1.0),
        &ack_frame_with(2, "bogus_type", false),
    );
    assert_eq!(client.unacked(), 2);
    feed(
        &mut client,
        t0 + ms(1.0),
        &ack_frame_with(2, "bogus_type", false),
    );
    feed(&mut client, t0 + ms(1.0), &ack_frame(9));
    assert_eq!(client.unacked(), 2);
    assert_eq!(client.stats().acks_received, 1);
    assert_eq!(client.stats().acks_unmatched, 2);
    assert!(events(&mut client).is_empty(), "acks are not surfaced");
}

#[test]
fn control_messages_are_surfaced_and_not_acked() {
    let t0 = Instant::now();
    for mut stream in [client(t0), agent(t0)] {
        for message_type in [
            MessageType::ChannelClosed,
            MessageType::AgentSessionState,
            MessageType::StartPublication,
            MessageType::PausePublication,
        ] {
            feed(&mut stream, t0, &control(message_type.clone()));
            match events(&mut stream).as_slice() {
                [Event::Control(message)] => assert_eq!(message.message_type, message_type),
                other => panic!("{other:?}"),
            }
        }
        assert!(transmits(&mut stream).is_empty());
    }
}

#[test]
fn refused_frames_are_returned_and_have_no_effect() {
    let t0 = Instant::now();
    let mut frame = output(0, b"hello");
    let last = frame.len() - 1;
    frame[last] ^= 1; // the digest no longer matches

    let mut client = client(t0);
    assert!(client.handle_frame(t0, &frame, &mut |_| true).is_err());
    assert!(
        client
            .handle_frame(t0, &frame[..100], &mut |_| true)
            .is_err()
    );
    assert!(transmits(&mut client).is_empty() && events(&mut client).is_empty());
    assert_eq!(
        (
            client.expected_sequence_number(),
            client.stats().decode_errors
        ),
        (0, 2)
    );

    // The agent never checks the digest (§1.4).
    let mut agent = agent(t0);
    let mut frame = input(0, b"hello");
    frame[last] ^= 1;
    feed(&mut agent, t0, &frame);
    assert_eq!(delivered(&mut agent), vec![b"helln".to_vec()]);
}

// ---------------------------------------------------------------------------------------------
// Receiver rules (§3.2).
// ---------------------------------------------------------------------------------------------

#[test]
fn client_drops_duplicates_without_re_acking() {
    // plugin-retrans.jsonl: seq 1 again with identical bytes, then with a new MessageId and
    // payload: neither acked nor printed.
    let t0 = Instant::now();
    let mut client = client(t0);
    feed(&mut client, t0, &output(0, b"[zero]"));
    feed(&mut client, t0, &output(1, b"[one]"));
    assert_eq!(transmits(&mut client).len(), 2);
    feed(&mut client, t0, &output(1, b"[one]"));
    feed(
        &mut client,
        t0,
        &peer_stream(MessageType::OutputStreamData, 1, b"[dup-new-id]"),
    );
    assert!(transmits(&mut client).is_empty());
    assert_eq!(
        delivered(&mut client),
        vec![b"[zero]".to_vec(), b"[one]".to_vec()]
    );
    assert_eq!(client.stats().duplicates, 2);
}

#[test]
fn agent_re_acks_duplicates_without_redelivering() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    feed(&mut agent, t0, &input(0, b"a"));
    feed(&mut agent, t0, &input(0, b"a"));
    feed(&mut agent, t0, &input(0, b"other"));
    let acks = transmits(&mut agent);
    assert_eq!(
        acks.iter()
            .map(|a| ack_of(a).sequence_number)
            .collect::<Vec<_>>(),
        vec![0, 0, 0]
    );
    assert_eq!(delivered(&mut agent), vec![b"a".to_vec()]);
    assert_eq!(agent.stats().duplicates, 2);
}

#[test]
fn early_messages_are_acked_at_once_and_delivered_in_order_without_a_second_ack() {
    // plugin-retrans.jsonl: seq 3 before seq 2 (acked at once, printed after seq 2 as one
    // write), then seq 3 again (not acked).
    for role in [Role::Client, Role::Agent] {
        let t0 = Instant::now();
        let (mut stream, kind) = match role {
            Role::Client => (client(t0), MessageType::OutputStreamData),
            Role::Agent => (agent(t0), MessageType::InputStreamData),
        };
        feed(&mut stream, t0, &peer_stream(kind.clone(), 0, b"[zero]"));
        feed(&mut stream, t0, &peer_stream(kind.clone(), 3, b"[three]"));
        feed(&mut stream, t0, &peer_stream(kind.clone(), 2, b"[two]"));
        let acks = transmits(&mut stream);
        assert_eq!(
            acks.iter()
                .map(|a| ack_of(a).sequence_number)
                .collect::<Vec<_>>(),
            vec![0, 3, 2]
        );
        assert_eq!(delivered(&mut stream), vec![b"[zero]".to_vec()]);
        assert_eq!(stream.stats().out_of_order_buffered, 2);

        feed(&mut stream, t0, &peer_stream(kind.clone(), 1, b"[one]"));
        let acks = transmits(&mut stream);
        assert_eq!(
            acks.iter()
                .map(|a| ack_of(a).sequence_number)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            delivered(&mut stream),
            vec![b"[one]".to_vec(), b"[two]".to_vec(), b"[three]".to_vec()]
        );
        assert_eq!(stream.expected_sequence_number(), 4);

        feed(&mut stream, t0, &peer_stream(kind, 3, b"[three]"));
        let re_acks = transmits(&mut stream).len();
        assert_eq!(re_acks, usize::from(role == Role::Agent), "{role:?}");
        assert!(events(&mut stream).is_empty());
    }
}

#[test]
fn a_full_incoming_buffer_drops_early_messages_silently() {
    let t0 = Instant::now();
    let config = Config {
        incoming_capacity: 1,
        ..Config::client()
    };
    let mut client = ReliableStream::new(config, t0, WALL, 1);
    feed(&mut client, t0, &output(2, b"two"));
    feed(&mut client, t0, &output(3, b"three"));
    assert_eq!(
        transmits(&mut client)
            .iter()
            .map(|a| ack_of(a).sequence_number)
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(client.stats().dropped_incoming_full, 1);
    feed(&mut client, t0, &output(0, b"zero"));
    feed(&mut client, t0, &output(1, b"one"));
    assert_eq!(
        delivered(&mut client),
        vec![b"zero".to_vec(), b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(client.expected_sequence_number(), 3);
}

#[test]
fn not_ready_means_no_ack_and_the_resend_is_delivered_later() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    let mut client = client(t0);
    agent.send(t0, PayloadType::Output, b"port data".to_vec());
    let first = transmits(&mut agent).remove(0);

    let mut asked = 0;
    client
        .handle_frame(t0 + ms(1.0), &first, &mut |_| {
            asked += 1;
            false
        })
        .unwrap();
    assert_eq!(asked, 1);
    assert!(transmits(&mut client).is_empty(), "no ack");
    assert!(events(&mut client).is_empty());
    assert_eq!(
        (client.expected_sequence_number(), client.stats().not_ready),
        (0, 1)
    );

    // The agent resends it verbatim after its RTO; by then the handler is ready.
    let resent = run_until(&mut agent, t0 + ms(300.0));
    assert_eq!(resent.len(), 1);
    assert_eq!(
        resent[0].1, first,
        "verbatim: same seq, MessageId and CreatedDate"
    );
    feed(&mut client, t0 + ms(301.0), &resent[0].1);
    assert_eq!(delivered(&mut client), vec![b"port data".to_vec()]);
    let ack = transmits(&mut client).remove(0);
    feed(&mut agent, t0 + ms(302.0), &ack);
    assert_eq!(agent.unacked(), 0);
}

#[test]
fn agent_not_ready_means_no_ack_either() {
    // §6.1: Size before the pty is up returns ErrHandlerNotReady.
    let t0 = Instant::now();
    let mut agent = agent(t0);
    let size = peer_stream_typed(
        MessageType::InputStreamData,
        0,
        PayloadType::Size,
        b"{\"cols\":80,\"rows\":24}",
    );
    agent.handle_frame(t0, &size, &mut |_| false).unwrap();
    assert!(transmits(&mut agent).is_empty() && events(&mut agent).is_empty());
    feed(&mut agent, t0, &size);
    assert_eq!(transmits(&mut agent).len(), 1);
    assert_eq!(delivered(&mut agent).len(), 1);
}

#[test]
fn client_acks_handshake_messages_first_without_asking_ready() {
    let t0 = Instant::now();
    let mut client = client(t0);
    let kinds = [
        PayloadType::HandshakeRequest,
        PayloadType::EncChallengeRequest,
        PayloadType::HandshakeComplete,
    ];
    for (seq, kind) in kinds.into_iter().enumerate() {
        let frame = peer_stream_typed(MessageType::OutputStreamData, seq as i64, kind, b"{}");
        client
            .handle_frame(t0, &frame, &mut |_| panic!("ready must not be asked"))
            .unwrap();
    }
    assert_eq!(transmits(&mut client).len(), 3);
    assert_eq!(delivered(&mut client).len(), 3);

    // The agent has no such exception: its ready callback is asked for every payload type.
    let mut agent = agent(t0);
    let frame = peer_stream_typed(
        MessageType::InputStreamData,
        0,
        PayloadType::HandshakeResponse,
        b"{}",
    );
    agent.handle_frame(t0, &frame, &mut |_| false).unwrap();
    assert!(transmits(&mut agent).is_empty());
}

#[test]
fn drain_stops_at_the_first_buffered_message_that_is_not_ready() {
    let t0 = Instant::now();
    let mut client = client(t0);
    feed(&mut client, t0, &output(1, b"one"));
    feed(&mut client, t0, &output(2, b"two"));
    feed(&mut client, t0, &output(3, b"three"));
    assert_eq!(transmits(&mut client).len(), 3);
    client
        .handle_frame(t0, &output(0, b"zero"), &mut |m| m.sequence_number != 2)
        .unwrap();
    assert_eq!(
        delivered(&mut client),
        vec![b"zero".to_vec(), b"one".to_vec()]
    );
    assert_eq!(
        transmits(&mut client).len(),
        1,
        "only seq 0 is acked; buffered ones were acked on arrival"
    );
    assert_eq!(client.expected_sequence_number(), 2);
    // Seq 2 stays buffered; the sender will not resend it (it was acked), so only another
    // in-order arrival drains it (here a duplicate copy of seq 2 itself).
    feed(&mut client, t0, &output(2, b"two"));
    assert_eq!(
        delivered(&mut client),
        vec![b"two".to_vec(), b"three".to_vec()]
    );
}

// ---------------------------------------------------------------------------------------------
// RTT estimator (§3.3).
// ---------------------------------------------------------------------------------------------

#[test]
fn rto_follows_the_formula_from_hand_computed_values() {
    let t0 = Instant::now();
    let mut client = client(t0);
    assert_eq!(client.rto(), INITIAL_RTO);

    client.send(t0, PayloadType::Output, b"a".to_vec());
    feed(&mut client, t0 + ms(1.0), &ack_frame(0));
    // RTTVAR = 0.75·0 + 0.25·|100 − 1| = 24.75; SRTT = 0.875·100 + 0.125·1 = 87.625;
    // RTO = 87.625 + max(10, 99) = 186.625 ms: the "RTO ≈ 187 ms" of §3.3.
    assert_eq!(client.rto(), ms(186.625));

    client.send(t0 + ms(10.0), PayloadType::Output, b"b".to_vec());
    feed(&mut client, t0 + ms(11.0), &ack_frame(1));
    // RTTVAR = 0.75·24.75 + 0.25·|87.625 − 1| = 40.21875; SRTT = 0.875·87.625 + 0.125 = 76.796875;
    // RTO = 76.796875 + 160.875 = 237.671875 ms.
    assert_eq!(client.rto(), ms(237.671875));

    client.send(t0 + ms(20.0), PayloadType::Output, b"c".to_vec());
    feed(&mut client, t0 + ms(2520.0), &ack_frame(2));
    // A 2.5 s sample: SRTT ≈ 379, RTTVAR ≈ 636, so the sum is far above the 1 s cap.
    assert_eq!(client.rto(), MAX_RTO);
}

#[test]
fn granularity_floor_applies_when_the_sample_equals_srtt() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    agent.send(t0, PayloadType::Output, b"a".to_vec());
    feed(&mut agent, t0 + ms(100.0), &ack_frame(0));
    // RTTVAR = 0, SRTT = 100, RTO = 100 + max(10, 0).
    assert_eq!(agent.rto(), ms(110.0));
}

#[test]
fn client_samples_from_the_first_send_agent_from_the_last_resend() {
    let t0 = Instant::now();

    let mut client = client(t0);
    client.send(t0, PayloadType::Output, b"a".to_vec());
    transmits(&mut client);
    assert_eq!(run_until(&mut client, t0 + ms(300.0)).len(), 1); // resent at the 300 ms tick
    feed(&mut client, t0 + ms(310.0), &ack_frame(0));
    // r = 310: RTTVAR = 0.25·210 = 52.5; SRTT = 87.5 + 38.75 = 126.25; RTO = 126.25 + 210.
    assert_eq!(client.rto(), ms(336.25));

    let mut agent = agent(t0);
    agent.send(t0, PayloadType::Output, b"a".to_vec());
    transmits(&mut agent);
    assert_eq!(run_until(&mut agent, t0 + ms(300.0)).len(), 1);
    feed(&mut agent, t0 + ms(310.0), &ack_frame(0));
    // r = 10: RTTVAR = 0.25·90 = 22.5; SRTT = 87.5 + 1.25 = 88.75; RTO = 88.75 + 90.
    assert_eq!(agent.rto(), ms(178.75));
}

// ---------------------------------------------------------------------------------------------
// Resend scheduler (§3.3).
// ---------------------------------------------------------------------------------------------

#[test]
fn only_the_front_message_is_ever_resent() {
    let t0 = Instant::now();
    for mut stream in [client(t0), agent(t0)] {
        for _ in 0..3 {
            stream.send(t0, PayloadType::Output, b"x".to_vec());
        }
        transmits(&mut stream);
        // Seqs 1 and 2 are acked, seq 0 is not: only seq 0 is resent.
        feed(&mut stream, t0 + ms(1.0), &ack_frame(2));
        let resent = run_until(&mut stream, t0 + ms(2000.0));
        assert!(!resent.is_empty());
        assert!(seqs(&resent).iter().all(|seq| *seq == 0));

        // With seq 0 and seq 2 unacked, seq 2 waits behind seq 0 even though it timed out long ago.
        let mut stream2 = ReliableStream::new(stream.config().clone(), t0, WALL, 9);
        for _ in 0..3 {
            stream2.send(t0, PayloadType::Output, b"x".to_vec());
        }
        transmits(&mut stream2);
        feed(&mut stream2, t0 + ms(1.0), &ack_frame(1));
        let resent = run_until(&mut stream2, t0 + ms(1000.0));
        assert!(seqs(&resent).iter().all(|seq| *seq == 0));
        feed(&mut stream2, t0 + ms(1000.0), &ack_frame(0));
        let next = run_until(&mut stream2, t0 + ms(1100.0));
        assert_eq!(
            seqs(&next),
            vec![2],
            "the new front goes out at the next tick"
        );
        assert_eq!(next[0].0, t0 + ms(1100.0));
    }
}

#[test]
fn client_resends_every_tick_after_the_first_timeout() {
    let t0 = Instant::now();
    let mut client = client(t0);
    client.send(t0, PayloadType::Output, b"x".to_vec());
    let first = transmits(&mut client).remove(0);
    let resent = run_until(&mut client, t0 + ms(1000.0));
    // RTO 200 ms: the 200 ms tick is not "more than" the RTO, 300 ms is; then every tick.
    let expected: Vec<Duration> = (3..=10).map(|k| RESEND_TICK * k).collect();
    assert_eq!(offsets(&resent, t0), expected);
    assert!(resent.iter().all(|(_, frame)| *frame == first));
    assert_eq!(client.stats().resent, 8);
}

#[test]
fn agent_resends_once_per_rto_at_tick_granularity() {
    // §3.3: "With no client attached, the front message was resent every ≈300 ms".
    let t0 = Instant::now();
    let mut agent = agent(t0);
    agent.send(t0, PayloadType::Output, b"x".to_vec());
    let first = transmits(&mut agent).remove(0);
    let resent = run_until(&mut agent, t0 + ms(1500.0));
    let expected: Vec<Duration> = [300.0, 600.0, 900.0, 1200.0, 1500.0]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(offsets(&resent, t0), expected);
    assert!(resent.iter().all(|(_, frame)| *frame == first));
}

#[test]
fn handle_timeout_between_ticks_does_nothing() {
    let t0 = Instant::now();
    let mut client = client(t0);
    client.send(t0, PayloadType::Output, b"x".to_vec());
    transmits(&mut client);
    client.handle_timeout(t0 + ms(150.0)); // the (late) 100 ms tick: not timed out yet
    client.handle_timeout(t0 + ms(160.0)); // no tick due: nothing runs
    client.handle_timeout(t0 + ms(199.0)); // still none
    assert!(transmits(&mut client).is_empty());
    assert_eq!(client.poll_timeout(), Some(t0 + ms(300.0)));
}

/// `plugin-retrans.jsonl`, timing of the plugin's resends. Times are the trace's `t` in seconds.
///
/// The scheduler's tick grid is anchored so that it passes through the trace's first resend
/// (2.2849): the real sleep loop drifts by ≈0.5 ms per tick, so no fixed grid matches every
/// recorded copy, and the assertions compare windows rather than exact instants where the drift
/// shows.
#[test]
fn client_schedule_agrees_with_plugin_retrans_trace() {
    // From the trace's `check` events: offsets of the copies of input seq 1 after its first send.
    const SEQ1_OFFSETS: [f64; 24] = [
        0.0, 0.274, 0.3746, 0.4749, 0.5758, 0.6762, 0.7774, 0.8779, 0.9784, 1.0791, 1.1797, 1.2808,
        1.3815, 1.482, 1.5826, 1.6831, 1.784, 1.8846, 1.985, 2.0858, 2.1866, 2.287, 2.388, 2.4884,
    ];
    const SEQ2_OFFSETS: [f64; 6] = [0.0, 1.0154, 1.1161, 1.2167, 1.3177, 1.4182];

    let origin = Instant::now();
    let t = |seconds: f64| origin + ms(seconds * 1000.0);
    let mut client = ReliableStream::new(Config::client(), t(0.4849), WALL, 3);

    // Output seq 0 (the prompt) and its ack, then the Size as input seq 0, acked at once.
    feed(&mut client, t(0.5757), &output(0, b"sh-4.2$ "));
    client.send(
        t(0.5763),
        PayloadType::Size,
        b"{\"cols\":300,\"rows\":100}".to_vec(),
    );
    feed(&mut client, t(0.5763), &ack_frame(0));
    assert!(
        client.rto() > ms(187.0) && client.rto() < ms(188.0),
        "{:?}",
        client.rto()
    );
    transmits(&mut client);

    // Input seq 1 at 2.0109; its ack is withheld until 4.5127.
    client.send(t(2.0109), PayloadType::Output, b"echo hi\n".to_vec());
    let first = transmits(&mut client).remove(0);
    let copies = run_until(&mut client, t(4.5127));
    let ours: Vec<f64> = std::iter::once(0.0)
        .chain(
            offsets(&copies, t(2.0109))
                .iter()
                .map(Duration::as_secs_f64),
        )
        .collect();
    assert_eq!(
        ours.len(),
        SEQ1_OFFSETS.len(),
        "24 copies in total until the ack"
    );
    assert!(
        (ours[1] - SEQ1_OFFSETS[1]).abs() < 1e-9,
        "first resend after 274 ms, as recorded"
    );
    // First resend: the first tick at which more than the RTO has passed, so within (RTO, RTO + tick].
    let window = |offset: f64, rto: Duration| {
        offset > rto.as_secs_f64() && offset <= (rto + RESEND_TICK).as_secs_f64()
    };
    assert!(window(ours[1], ms(187.5)) && window(SEQ1_OFFSETS[1], ms(187.5)));
    for pair in ours[1..].windows(2) {
        assert!(
            (pair[1] - pair[0] - 0.1).abs() < 1e-9,
            "then exactly every tick"
        );
    }
    for pair in SEQ1_OFFSETS[1..].windows(2) {
        assert!(
            (0.1..0.102).contains(&(pair[1] - pair[0])),
            "the trace: every 100 ms, ±drift"
        );
    }
    assert!(
        copies.iter().all(|(_, frame)| *frame == first),
        "byte-identical copies"
    );
    feed(&mut client, t(4.5127), &ack_frame(1));
    assert_eq!(client.poll_timeout(), None, "no copy follows the ack");
    // That RTT sample (2.5 s from the *first* send) pins the RTO at the 1 s cap.
    assert_eq!(client.rto(), MAX_RTO);

    // Input seq 2 at 9.0098, acked at 10.5109 by an ack right only in its seq.
    client.send(t(9.0098), PayloadType::Output, b"echo two\n".to_vec());
    transmits(&mut client);
    let copies = run_until(&mut client, t(10.5109));
    let ours: Vec<f64> = std::iter::once(0.0)
        .chain(
            offsets(&copies, t(9.0098))
                .iter()
                .map(Duration::as_secs_f64),
        )
        .collect();
    assert_eq!(ours.len(), SEQ2_OFFSETS.len());
    assert!(
        window(ours[1], MAX_RTO) && window(SEQ2_OFFSETS[1], MAX_RTO),
        "first resend ≈1 s later"
    );
    feed(
        &mut client,
        t(10.5109),
        &ack_frame_with(2, "bogus_type", false),
    );
    assert_eq!(client.unacked(), 0);
}

#[test]
fn client_gives_up_after_3000_resends_sends_one_more_copy_then_stops_for_good() {
    let t0 = Instant::now();
    let mut client = client(t0);
    client.send(t0, PayloadType::Output, b"lost".to_vec());
    let mut copies = transmits(&mut client).len();
    let mut gave_up_at = None;
    while let Some(deadline) = client.poll_timeout() {
        client.handle_timeout(deadline);
        copies += transmits(&mut client).len();
        for event in events(&mut client) {
            assert_eq!(event, Event::GaveUp);
            assert!(gave_up_at.is_none(), "GaveUp is raised once");
            gave_up_at = Some((deadline, copies));
        }
    }
    let (when, copies_then) = gave_up_at.expect("GaveUp raised");
    // §3.3: TerminateSession after 3 002 copies (the 3001st resend finds 3000 attempts), then
    // exactly one more copy, then nothing.
    assert_eq!(copies_then as u32, CLIENT_MAX_RESEND_ATTEMPTS + 2);
    assert_eq!(copies as u32, CLIENT_MAX_RESEND_ATTEMPTS + 3);
    // ≈302 s in the recording; 300.3 s here because our ticks do not drift.
    // First resend at the 300 ms tick, then one per tick: resend #3001 at 300 ms + 3000 ticks.
    assert_eq!(
        when - t0,
        ms(300.0) + RESEND_TICK * CLIENT_MAX_RESEND_ATTEMPTS
    );
    assert!(client.is_resend_stopped());

    // The scheduler is gone for good: a new message is sent once and never resent, even after
    // the stuck one is acked. Acks are still processed.
    feed(&mut client, when + ms(1000.0), &ack_frame(0));
    assert_eq!(client.unacked(), 0);
    client.send(when + ms(1000.0), PayloadType::Output, b"new".to_vec());
    assert_eq!(transmits(&mut client).len(), 1);
    assert_eq!(client.poll_timeout(), None);
    client.handle_timeout(when + ms(60_000.0));
    assert!(transmits(&mut client).is_empty() && events(&mut client).is_empty());
}

#[test]
fn agent_never_gives_up() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    agent.send(t0, PayloadType::Output, b"x".to_vec());
    transmits(&mut agent);
    let resent = run_until(&mut agent, t0 + Duration::from_secs(1200));
    assert_eq!(resent.len(), 4000); // every 300 ms for 20 minutes
    assert!(events(&mut agent).is_empty());
    assert!(agent.poll_timeout().is_some());
}

// ---------------------------------------------------------------------------------------------
// Buffer-full policy (§3.3) and the agent's empty payload.
// ---------------------------------------------------------------------------------------------

#[test]
fn full_outgoing_buffer_client_evicts_the_oldest() {
    let t0 = Instant::now();
    let mut client = ReliableStream::new(
        Config {
            outgoing_capacity: 2,
            ..Config::client()
        },
        t0,
        WALL,
        1,
    );
    for _ in 0..3 {
        client.send(t0, PayloadType::Output, b"x".to_vec());
    }
    assert_eq!(
        transmits(&mut client).len(),
        3,
        "every message is still sent once"
    );
    assert_eq!(client.unacked(), 2);
    assert_eq!(client.stats().dropped_outgoing_full, 1);
    assert_eq!(
        seqs(&run_until(&mut client, t0 + ms(300.0))),
        vec![1],
        "seq 0 was evicted"
    );
    feed(&mut client, t0 + ms(301.0), &ack_frame(0));
    assert_eq!(client.stats().acks_unmatched, 1);
}

#[test]
fn full_outgoing_buffer_agent_keeps_the_new_message_out() {
    let t0 = Instant::now();
    let mut agent = ReliableStream::new(
        Config {
            outgoing_capacity: 2,
            ..Config::agent()
        },
        t0,
        WALL,
        2,
    );
    for _ in 0..3 {
        agent.send(t0, PayloadType::Output, b"x".to_vec());
    }
    assert_eq!(
        transmits(&mut agent).len(),
        3,
        "the new message is still sent once"
    );
    assert_eq!(agent.unacked(), 2);
    feed(&mut agent, t0 + ms(1.0), &ack_frame(2));
    assert_eq!((agent.stats().acks_unmatched, agent.unacked()), (1, 2));
    assert_eq!(seqs(&run_until(&mut agent, t0 + ms(300.0))), vec![0]);
    assert_eq!(
        agent.next_sequence_number(),
        3,
        "the sequence number was used anyway"
    );
}

#[test]
fn paused_agent_with_a_full_buffer_loses_the_new_message() {
    // Not sent because paused, not kept because full (§3.3, §5): it never goes out.
    let t0 = Instant::now();
    let config = Config {
        outgoing_capacity: 1,
        ..Config::agent()
    };
    let mut agent = ReliableStream::new(config, t0, WALL, 2);
    feed(&mut agent, t0, &control(MessageType::PausePublication));
    events(&mut agent);
    agent.send(t0, PayloadType::Output, b"kept".to_vec());
    agent.send(t0, PayloadType::Output, b"lost".to_vec());
    assert_eq!(agent.unacked(), 1);
    feed(
        &mut agent,
        t0 + ms(1.0),
        &control(MessageType::StartPublication),
    );
    events(&mut agent);
    // Queued at t0 with a 200 ms RTO: first transmitted at the 300 ms tick.
    let out = run_until(&mut agent, t0 + ms(300.0));
    assert_eq!(seqs(&out), vec![0]);
    feed(&mut agent, t0 + ms(301.0), &ack_frame(0));
    assert_eq!((agent.unacked(), agent.poll_timeout()), (0, None));
}

#[test]
fn agent_ignores_empty_payloads_client_sends_them() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    assert_eq!(agent.send(t0, PayloadType::Output, Vec::new()), None);
    assert!(transmits(&mut agent).is_empty());
    assert_eq!(
        (
            agent.next_sequence_number(),
            agent.unacked(),
            agent.stats().ignored_empty
        ),
        (0, 0, 1)
    );
    assert_eq!(agent.send(t0, PayloadType::Output, b"x".to_vec()), Some(0));

    let mut client = client(t0);
    assert_eq!(client.send(t0, PayloadType::Output, Vec::new()), Some(0));
    assert_eq!(transmits(&mut client).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Flow control (§5).
// ---------------------------------------------------------------------------------------------

#[test]
fn paused_agent_queues_without_sending_and_suspends_resends() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    agent.send(t0, PayloadType::Output, b"before".to_vec()); // sent, never acked
    transmits(&mut agent);
    feed(
        &mut agent,
        t0 + ms(10.0),
        &control(MessageType::PausePublication),
    );
    assert!(
        matches!(events(&mut agent).as_slice(), [Event::Control(m)] if m.message_type == MessageType::PausePublication)
    );
    assert!(agent.is_paused());

    assert_eq!(
        agent.send(t0 + ms(20.0), PayloadType::Output, b"during".to_vec()),
        Some(1)
    );
    assert!(
        transmits(&mut agent).is_empty(),
        "serialized and buffered, not sent"
    );
    assert_eq!(agent.poll_timeout(), None, "scheduler suspended");
    for k in 1..=30 {
        agent.handle_timeout(t0 + RESEND_TICK * k);
    }
    assert!(transmits(&mut agent).is_empty(), "no resends while paused");
    assert_eq!(agent.unacked(), 2);

    feed(
        &mut agent,
        t0 + ms(3010.0),
        &control(MessageType::StartPublication),
    );
    assert!(!agent.is_paused());
    let out = run_until(&mut agent, t0 + ms(3100.0));
    assert_eq!(
        seqs(&out),
        vec![0],
        "front-only: the old front first, at the next tick"
    );
    assert_eq!(out[0].0, t0 + ms(3100.0));
    feed(&mut agent, t0 + ms(3101.0), &ack_frame(0));
    let out = run_until(&mut agent, t0 + ms(3200.0));
    assert_eq!(
        seqs(&out),
        vec![1],
        "the queued message drains through the scheduler"
    );
    assert_eq!(
        (agent.stats().sent, agent.stats().resent),
        (2, 1),
        "its first transmission is not a resend"
    );
    assert_eq!(
        decode(&out[0].1).created_date,
        WALL + 20,
        "serialized when queued"
    );
}

#[test]
fn an_ack_or_any_input_unpauses_the_agent() {
    let t0 = Instant::now();
    let unpausers = [
        ack_frame(42),
        input(0, b"x"),
        input(5, b"early"),
        control(MessageType::StartPublication),
    ];
    for frame in unpausers {
        let mut agent = agent(t0);
        feed(&mut agent, t0, &control(MessageType::PausePublication));
        agent.send(t0, PayloadType::Output, b"queued".to_vec());
        assert!(transmits(&mut agent).is_empty());
        feed(&mut agent, t0 + ms(1.0), &frame);
        assert!(!agent.is_paused(), "{:?}", decode(&frame).message_type);
        let out: Vec<_> = run_until(&mut agent, t0 + ms(1000.0))
            .into_iter()
            .filter(|(_, f)| decode(f).message_type == MessageType::OutputStreamData)
            .collect();
        assert!(!out.is_empty());
    }
}

#[test]
fn client_ignores_publication_messages() {
    let t0 = Instant::now();
    let mut client = client(t0);
    feed(&mut client, t0, &control(MessageType::PausePublication));
    assert!(!client.is_paused());
    client.send(t0, PayloadType::Output, b"x".to_vec());
    assert_eq!(transmits(&mut client).len(), 1);
    assert_eq!(run_until(&mut client, t0 + ms(300.0)).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// §3.3 "Lost-acknowledgement race": faithful, unrecoverable.
// ---------------------------------------------------------------------------------------------

/// A lost client ack followed by one lost agent frame stalls the agent→client direction forever.
///
/// §3.3: the agent's front message stays unacked because the plugin never re-acks duplicates
/// (§3.2), so the agent resends it for the rest of the session, and because its scheduler only
/// ever looks at the front, no later agent message can be retransmitted. This is real plugin and
/// agent behaviour (verified end-to-end); fault injection in the emulator reproduces it on
/// purpose, so the lossy-link property below must not drop client acks.
#[test]
fn lost_client_ack_then_lost_agent_frame_stalls_forever() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    let mut client = client(t0);

    agent.send(t0, PayloadType::Output, b"zero".to_vec());
    feed(&mut client, t0 + ms(1.0), &transmits(&mut agent).remove(0));
    let lost_ack = transmits(&mut client);
    assert_eq!(
        lost_ack.len(),
        1,
        "the client acked seq 0; the link loses that ack"
    );

    agent.send(t0 + ms(5.0), PayloadType::Output, b"one".to_vec());
    let _lost_frame = transmits(&mut agent); // seq 1 is lost too

    agent.send(t0 + ms(10.0), PayloadType::Output, b"two".to_vec());
    feed(&mut client, t0 + ms(11.0), &transmits(&mut agent).remove(0));
    feed(&mut agent, t0 + ms(12.0), &transmits(&mut client).remove(0)); // ack of seq 2 arrives

    // A minute of perfect link from now on: every agent frame reaches the client and every
    // client frame reaches the agent.
    let end = t0 + Duration::from_secs(60);
    let mut resent = Vec::new();
    while let Some(deadline) = agent.poll_timeout().filter(|t| *t <= end) {
        agent.handle_timeout(deadline);
        for frame in transmits(&mut agent) {
            resent.push(decode(&frame).sequence_number);
            feed(&mut client, deadline, &frame);
            for reply in transmits(&mut client) {
                feed(&mut agent, deadline, &reply);
            }
        }
    }
    // With a ≈187 ms RTO the front goes out every other tick, for as long as the session lasts.
    assert!(
        resent.len() > 250,
        "the front is resent every ≈200 ms: {}",
        resent.len()
    );
    assert!(
        resent.iter().all(|seq| *seq == 0),
        "and nothing else ever is"
    );
    assert_eq!(
        delivered(&mut client),
        vec![b"zero".to_vec()],
        "\"one\" and \"two\" never arrive"
    );
    assert_eq!(client.expected_sequence_number(), 1);
    assert_eq!(
        client.stats().duplicates as usize,
        resent.len(),
        "every copy dropped, none re-acked"
    );
    assert_eq!(agent.unacked(), 2);
}

/// The same losses with a client that re-acks duplicates ([`Config::client_re_acking`], the
/// deliberate deviation `ssm-session` makes): the resent front is acked, the agent moves on to
/// the frame that was really lost, and everything arrives.
#[test]
fn a_re_acking_client_recovers_from_the_lost_ack_race() {
    let t0 = Instant::now();
    let mut agent = agent(t0);
    let mut client = ReliableStream::new(Config::client_re_acking(), t0, WALL, 2);
    assert_eq!(
        (client.config().role, client.config().incoming_capacity),
        (Role::Client, Config::client().incoming_capacity),
        "a client in every other respect"
    );

    agent.send(t0, PayloadType::Output, b"zero".to_vec());
    feed(&mut client, t0 + ms(1.0), &transmits(&mut agent).remove(0));
    let _lost_ack = transmits(&mut client);
    agent.send(t0 + ms(5.0), PayloadType::Output, b"one".to_vec());
    let _lost_frame = transmits(&mut agent);
    agent.send(t0 + ms(10.0), PayloadType::Output, b"two".to_vec());
    feed(&mut client, t0 + ms(11.0), &transmits(&mut agent).remove(0));
    feed(&mut agent, t0 + ms(12.0), &transmits(&mut client).remove(0));

    let end = t0 + Duration::from_secs(60);
    while let Some(deadline) = agent.poll_timeout().filter(|t| *t <= end) {
        agent.handle_timeout(deadline);
        for frame in transmits(&mut agent) {
            feed(&mut client, deadline, &frame);
            for reply in transmits(&mut client) {
                feed(&mut agent, deadline, &reply);
            }
        }
    }
    assert_eq!(
        delivered(&mut client),
        vec![b"zero".to_vec(), b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(agent.unacked(), 0);
    assert_eq!(client.stats().duplicates, 1, "one resent copy, acked again");
}

#[test]
fn a_re_acking_client_acks_each_duplicate_once_and_delivers_it_once() {
    let t0 = Instant::now();
    let mut client = ReliableStream::new(Config::client_re_acking(), t0, WALL, 1);
    feed(&mut client, t0, &output(0, b"[zero]"));
    assert_eq!(transmits(&mut client).len(), 1);
    feed(&mut client, t0, &output(0, b"[zero]"));
    let again = transmits(&mut client);
    assert_eq!(again.len(), 1);
    assert_eq!(ack_of(&again[0]).sequence_number, 0);
    assert_eq!(delivered(&mut client), vec![b"[zero]".to_vec()]);
}

// ---------------------------------------------------------------------------------------------
// Property: a lossy link between a client and an agent.
// ---------------------------------------------------------------------------------------------

/// What the link does with one frame.
#[derive(Clone, Debug)]
enum Fate {
    /// Deliver after this many milliseconds.
    Deliver(u16),
    /// Lose it. Client acks are never lost (see the stall test above): they are delivered
    /// after [`AFTER_PLAN_DELAY_MS`] instead.
    Drop,
    /// Deliver two copies, after each delay.
    Duplicate(u16, u16),
}

/// Delay of every frame once a direction's plan is used up, so that every run ends.
const AFTER_PLAN_DELAY_MS: u16 = 1;

/// Upper bound of simulated steps (one step = one instant at which something happens).
const MAX_STEPS: usize = 50_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dir {
    ClientToAgent,
    AgentToClient,
}

/// One transmission of a stream message: when, and the sender's RTO at that moment.
#[derive(Clone, Copy, Debug)]
struct Transmission {
    at: Instant,
    rto: Duration,
}

/// A frame on the link: (arrival, tie-breaker in sending order, direction, bytes).
type InFlight = (Instant, u64, Dir, Vec<u8>);

struct Sim {
    t0: Instant,
    client: ReliableStream,
    agent: ReliableStream,
    /// Per direction, the fates still to apply, in frame order.
    plans: [std::vec::IntoIter<Fate>; 2],
    /// Frames in flight: (arrival, tie-breaker, direction, bytes).
    link: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    /// Every transmission of every stream message, per (direction, seq).
    copies: BTreeMap<(Dir, i64), Vec<Transmission>>,
    to_agent: Vec<Vec<u8>>,
    to_client: Vec<Vec<u8>>,
}

impl Sim {
    fn stream(&mut self, dir: Dir) -> &mut ReliableStream {
        match dir {
            Dir::ClientToAgent => &mut self.client,
            Dir::AgentToClient => &mut self.agent,
        }
    }

    /// Takes what `dir`'s sender wrote at `now`, records it and puts it on the link.
    fn flush(&mut self, dir: Dir, now: Instant) {
        let rto = self.stream(dir).rto();
        while let Some(frame) = self.stream(dir).poll_transmit() {
            let message = decode(&frame);
            let is_ack = message.message_type == MessageType::Acknowledge;
            if !is_ack {
                self.copies
                    .entry((dir, message.sequence_number))
                    .or_default()
                    .push(Transmission { at: now, rto });
            }
            let fate = self.plans[dir as usize]
                .next()
                .unwrap_or(Fate::Deliver(AFTER_PLAN_DELAY_MS));
            let fate = match fate {
                Fate::Drop if is_ack && dir == Dir::ClientToAgent => {
                    Fate::Deliver(AFTER_PLAN_DELAY_MS)
                }
                other => other,
            };
            match fate {
                Fate::Deliver(delay) => self.put(dir, now, delay, frame),
                Fate::Drop => {}
                Fate::Duplicate(a, b) => {
                    self.put(dir, now, a, frame.clone());
                    self.put(dir, now, b, frame);
                }
            }
        }
    }

    fn put(&mut self, dir: Dir, now: Instant, delay_ms: u16, frame: Vec<u8>) {
        self.order += 1;
        let arrival = now + Duration::from_millis(delay_ms.into());
        self.link.push(Reverse((arrival, self.order, dir, frame)));
    }

    fn deliver(&mut self, now: Instant, dir: Dir, frame: &[u8]) {
        let (receiver, back) = match dir {
            Dir::ClientToAgent => (&mut self.agent, Dir::AgentToClient),
            Dir::AgentToClient => (&mut self.client, Dir::ClientToAgent),
        };
        receiver
            .handle_frame(now, frame, &mut |_| true)
            .expect("link frames are well-formed");
        let payloads = delivered(receiver);
        match dir {
            Dir::ClientToAgent => self.to_agent.extend(payloads),
            Dir::AgentToClient => self.to_client.extend(payloads),
        }
        self.flush(back, now);
    }

    fn timeout(&mut self, dir: Dir, now: Instant) {
        if self.stream(dir).poll_timeout().is_some_and(|t| t <= now) {
            self.stream(dir).handle_timeout(now);
            self.flush(dir, now);
        }
    }
}

/// Application sends: (gap in ms since the previous one, payload).
type Sends = Vec<(u16, Vec<u8>)>;

fn schedule(t0: Instant, sends: &Sends) -> Vec<(Instant, Vec<u8>)> {
    let mut at = t0;
    sends
        .iter()
        .map(|(gap, payload)| {
            at += Duration::from_millis((*gap).into());
            (at, payload.clone())
        })
        .collect()
}

/// Runs both ends over the planned link until nothing is unacked and nothing is in flight.
fn simulate(client_sends: &Sends, agent_sends: &Sends, c2a: Vec<Fate>, a2c: Vec<Fate>) -> Sim {
    let t0 = Instant::now();
    let mut sim = Sim {
        t0,
        client: ReliableStream::new(Config::client(), t0, WALL, 11),
        agent: ReliableStream::new(Config::agent(), t0, WALL, 22),
        plans: [c2a.into_iter(), a2c.into_iter()],
        link: BinaryHeap::new(),
        order: 0,
        copies: BTreeMap::new(),
        to_agent: Vec::new(),
        to_client: Vec::new(),
    };
    let mut pending = [
        schedule(t0, client_sends).into_iter().peekable(),
        schedule(t0, agent_sends).into_iter().peekable(),
    ];
    let dirs = [Dir::ClientToAgent, Dir::AgentToClient];

    for _ in 0..MAX_STEPS {
        let next = [
            pending[0].peek().map(|(t, _)| *t),
            pending[1].peek().map(|(t, _)| *t),
            sim.link.peek().map(|Reverse((t, ..))| *t),
            sim.client.poll_timeout(),
            sim.agent.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(now) = next else {
            return sim; // nothing to send, nothing in flight, nothing unacked
        };
        for (queue, dir) in pending.iter_mut().zip(dirs) {
            while let Some((_, payload)) = queue.next_if(|(t, _)| *t <= now) {
                sim.stream(dir).send(now, PayloadType::Output, payload);
                sim.flush(dir, now);
            }
        }
        while let Some(Reverse((_, _, dir, frame))) = sim
            .link
            .peek()
            .filter(|Reverse((t, ..))| *t <= now)
            .cloned()
        {
            sim.link.pop();
            sim.deliver(now, dir, &frame);
        }
        for dir in dirs {
            sim.timeout(dir, now);
        }
    }
    panic!("no quiescence within {MAX_STEPS} steps");
}

/// The earliest resend §3.3 allows, checked for every copy after the first of every message.
///
/// The scheduler runs on ticks `t0 + k·RESEND_TICK` (both ends start at `t0`), looks only at the
/// oldest unacked message, and resends it when `now − LastSentTime > RTO` with the RTO in force at
/// that tick. LastSentTime is the first send for the client (the plugin never stores it back) and
/// the previous copy for the agent. Hence, for copy i ≥ 1 at time tᵢ with RTO rᵢ:
/// 1. tᵢ is on the tick grid;
/// 2. client: tᵢ − t₀ > rᵢ; agent: tᵢ − tᵢ₋₁ > rᵢ;
/// 3. at most one resend per sender per tick (only the front is looked at);
/// 4. therefore, for i ≥ 2, tᵢ − tᵢ₋₁ ≥ RESEND_TICK. Only the first resend may follow the original
///    closer than one tick, when the RTO is below a tick and the send fell just before a tick;
///    §3.3's RTO floor (SRTT + 10 ms) still applies to it through rule 2.
///
/// The RTO checked against is the one at the resend, not the one at the previous copy: acks of
/// other messages can change it in between, and the real scheduler reads the current value.
fn check_resend_timing(sim: &Sim) -> Result<(), TestCaseError> {
    let mut resend_ticks = HashSet::new();
    for ((dir, seq), copies) in &sim.copies {
        for (i, copy) in copies.iter().enumerate().skip(1) {
            let since_start = copy.at - sim.t0;
            prop_assert_eq!(
                since_start.as_nanos() % RESEND_TICK.as_nanos(),
                0,
                "{:?} seq {} copy {} off the tick grid",
                dir,
                seq,
                i
            );
            let last_sent = match dir {
                Dir::ClientToAgent => copies[0].at,
                Dir::AgentToClient => copies[i - 1].at,
            };
            prop_assert!(
                copy.at - last_sent > copy.rto,
                "{:?} seq {} copy {} after {:?}, RTO {:?}",
                dir,
                seq,
                i,
                copy.at - last_sent,
                copy.rto
            );
            if i >= 2 {
                prop_assert!(
                    copy.at - copies[i - 1].at >= RESEND_TICK,
                    "{:?} seq {} copy {} within a tick",
                    dir,
                    seq,
                    i
                );
            }
            prop_assert!(
                resend_ticks.insert((*dir, copy.at)),
                "{:?}: two resends in one tick",
                dir
            );
        }
    }
    Ok(())
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        6 => (0u16..300).prop_map(Fate::Deliver),
        2 => Just(Fate::Drop),
        1 => (0u16..300, 0u16..300).prop_map(|(a, b)| Fate::Duplicate(a, b)),
    ]
}

fn sends() -> impl Strategy<Value = Sends> {
    proptest::collection::vec(
        (0u16..400, proptest::collection::vec(any::<u8>(), 0..12)),
        0..24,
    )
}

/// The simulation above really exercises loss, duplication and reordering: a fixed plan that
/// provokes each of them, checked through the counters of both ends.
#[test]
fn lossy_link_harness_exercises_every_fault() {
    let payloads = |tag: u8| -> Sends { (0..6).map(|i| (30, vec![tag, i])).collect() };
    use Fate::{Deliver, Drop, Duplicate};
    let c2a = vec![
        Drop,
        Deliver(250),
        Duplicate(5, 200),
        Deliver(0),
        Drop,
        Deliver(120),
        Deliver(0),
    ];
    let a2c = vec![
        Deliver(0),
        Drop,
        Duplicate(0, 260),
        Deliver(280),
        Drop,
        Deliver(3),
        Deliver(90),
    ];
    let sim = simulate(&payloads(b'c'), &payloads(b'a'), c2a, a2c);
    assert_eq!(
        sim.to_agent,
        payloads(b'c')
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sim.to_client,
        payloads(b'a')
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
    );
    for stream in [&sim.client, &sim.agent] {
        let stats = stream.stats();
        assert!(
            stats.resent > 0 && stats.out_of_order_buffered > 0,
            "{stats:?}"
        );
    }
    assert!(sim.client.stats().duplicates + sim.agent.stats().duplicates > 0);
    assert!(
        sim.client.stats().acks_unmatched + sim.agent.stats().acks_unmatched > 0,
        "duplicated acks"
    );
    check_resend_timing(&sim).unwrap();
}

proptest! {
    /// Over a link that drops, duplicates, reorders and delays (but never drops a client ack),
    /// every payload arrives exactly once and in order in both directions, and no resend comes
    /// sooner than §3.3 allows.
    #[test]
    fn lossy_link_delivers_exactly_once_in_order(
        client_sends in sends(),
        agent_sends in sends(),
        c2a in proptest::collection::vec(fate(), 0..64),
        a2c in proptest::collection::vec(fate(), 0..64),
    ) {
        let sim = simulate(&client_sends, &agent_sends, c2a, a2c);
        let expected_at_agent: Vec<Vec<u8>> = client_sends.iter().map(|(_, p)| p.clone()).collect();
        // The agent ignores empty payloads (§3.3), so they are never sent.
        let expected_at_client: Vec<Vec<u8>> =
            agent_sends.iter().map(|(_, p)| p.clone()).filter(|p| !p.is_empty()).collect();
        prop_assert_eq!(&sim.to_agent, &expected_at_agent);
        prop_assert_eq!(&sim.to_client, &expected_at_client);
        prop_assert_eq!(sim.client.unacked() + sim.agent.unacked(), 0);
        prop_assert_eq!(sim.client.stats().decode_errors + sim.agent.stats().decode_errors, 0);
        check_resend_timing(&sim)?;
    }
}

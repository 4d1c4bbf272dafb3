//! smux v1 codec tests: golden frames from recorded port-forwarding traffic
//! (`plugin-port_mux.jsonl`, `plugin-port_mux_ka.jsonl`), exact bytes for every error, and property
//! tests for round trips, arbitrary chunking and arbitrary input.

use proptest::prelude::*;
use ssm_protocol::limits::SMUX_MAX_FRAME_SIZE;
use ssm_protocol::smux::{Command, Decoder, Frame, SmuxError, psh_frames};
use ssm_protocol::{Message, PayloadType, Validation};

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The Output payload of a recorded data-channel frame: the smux bytes it carries.
fn smux_bytes(frame_hex: &str) -> Vec<u8> {
    let frame = hex(frame_hex);
    let message = Message::decode(&frame, Validation::Structure).unwrap();
    assert_eq!(message.payload_type, PayloadType::Output);
    assert_eq!(message.encode(), frame);
    message.payload
}

/// Decodes `bytes` pushed in one go; fails on an error or on leftover bytes.
fn decode_all(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = Decoder::new();
    decoder.push(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame);
    }
    assert_eq!(decoder.buffered(), 0, "bytes left over");
    frames
}

/// Checks that `bytes` is exactly one frame equal to `expected`, and that `expected` encodes
/// to `bytes`.
fn check(bytes: &[u8], expected: &Frame) {
    assert_eq!(decode_all(bytes), vec![expected.clone()]);
    assert_eq!(expected.encode(), bytes);
}

#[test]
fn golden_syn() {
    let bytes = smux_bytes(SYN_3_FRAME_HEX);
    assert_eq!(bytes, [0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]);
    check(&bytes, &Frame::syn(3));
    check(&smux_bytes(SYN_5_FRAME_HEX), &Frame::syn(5));
}

#[test]
fn golden_psh_both_directions() {
    let bytes = smux_bytes(PSH_3_PLUGIN_FRAME_HEX);
    assert_eq!(bytes[..8], [0x01, 0x02, 0x14, 0x00, 0x03, 0x00, 0x00, 0x00]);
    check(
        &bytes,
        &Frame::psh(3, b"ping-from-tcp-client".to_vec()).unwrap(),
    );
    let frame = decode_all(&smux_bytes(PSH_3_AGENT_FRAME_HEX)).remove(0);
    assert_eq!((frame.cmd(), frame.stream_id()), (Command::Psh, 3));
    assert_eq!(frame.into_data(), b"pong-from-agent-side");
}

#[test]
fn golden_fin() {
    let bytes = smux_bytes(FIN_3_FRAME_HEX);
    assert_eq!(bytes, [0x01, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]);
    check(&bytes, &Frame::fin(3));
    check(&smux_bytes(FIN_5_AGENT_FRAME_HEX), &Frame::fin(5));
    check(&smux_bytes(FIN_5_PLUGIN_FRAME_HEX), &Frame::fin(5));
}

#[test]
fn golden_nop() {
    let bytes = smux_bytes(NOP_FRAME_HEX);
    assert_eq!(bytes, [0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    check(&bytes, &Frame::nop());
}

#[test]
fn a_local_request_as_one_payload_or_split_8_plus_98() {
    // §7.4: a local HTTP request arrives as SYN + PSH in one 106-byte payload, or as 8 + 98.
    let request = vec![b'x'; 90];
    let mut stream = Frame::syn(3).encode();
    stream.extend(Frame::psh(3, request.clone()).unwrap().encode());
    assert_eq!(stream.len(), 106);
    let expected = vec![Frame::syn(3), Frame::psh(3, request).unwrap()];
    assert_eq!(decode_all(&stream), expected);
    let mut decoder = Decoder::new();
    decoder.push(&stream[..8]);
    assert_eq!(decoder.next_frame().unwrap(), Some(Frame::syn(3)));
    assert_eq!(decoder.next_frame().unwrap(), None);
    decoder.push(&stream[8..]);
    assert_eq!(decoder.next_frame().unwrap(), Some(expected[1].clone()));
    assert_eq!(decoder.next_frame().unwrap(), None);
}

#[test]
fn incomplete_is_none_not_an_error() {
    let bytes = Frame::psh(7, vec![1, 2, 3]).unwrap().encode();
    let mut decoder = Decoder::new();
    for (i, byte) in bytes.iter().enumerate() {
        assert_eq!(decoder.next_frame().unwrap(), None, "after {i} bytes");
        decoder.push(&[*byte]);
    }
    assert_eq!(
        decoder.next_frame().unwrap(),
        Some(Frame::psh(7, vec![1, 2, 3]).unwrap())
    );
}

#[test]
fn bulk_psh_header_and_split_of_large_writes() {
    // §7.4: bulk data from the agent comes as PSH frames of 32 768 bytes, `01 02 00 80 <sid>`.
    let data: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let frames = psh_frames(9, &data);
    let lens: Vec<usize> = frames.iter().map(|f| f.data().len()).collect();
    assert_eq!(
        lens,
        [
            SMUX_MAX_FRAME_SIZE,
            SMUX_MAX_FRAME_SIZE,
            70_000 - 2 * SMUX_MAX_FRAME_SIZE
        ]
    );
    assert_eq!(
        frames[0].encode()[..8],
        [0x01, 0x02, 0x00, 0x80, 0x09, 0x00, 0x00, 0x00]
    );
    let stream: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
    let joined: Vec<u8> = decode_all(&stream)
        .into_iter()
        .flat_map(Frame::into_data)
        .collect();
    assert_eq!(joined, data);
    assert!(psh_frames(9, &[]).is_empty());
}

#[test]
fn largest_and_empty_psh() {
    let max = Frame::psh(1, vec![0xaa; 65_535]).unwrap();
    assert_eq!(max.encode()[..4], [0x01, 0x02, 0xff, 0xff]);
    assert_eq!(decode_all(&max.encode()), vec![max]);
    assert_eq!(
        Frame::psh(1, vec![0; 65_536]),
        Err(SmuxError::DataTooLong(65_536))
    );
    // smux skips an empty PSH; it is still a well-formed frame.
    check(
        &[0x01, 0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
        &Frame::psh(1, Vec::new()).unwrap(),
    );
}

#[test]
fn errors() {
    let cases: [(&[u8], SmuxError); 5] = [
        (
            &[0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00],
            SmuxError::BadVersion(2),
        ),
        (
            &[0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            SmuxError::BadVersion(0),
        ),
        // UPD exists only in smux v2.
        (
            &[0x01, 0x04, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00],
            SmuxError::UnknownCommand(4),
        ),
        (
            &[0x01, 0xff, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00],
            SmuxError::UnknownCommand(0xff),
        ),
        (
            &[0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0xaa, 0xbb],
            SmuxError::DataOnControlFrame {
                cmd: Command::Syn,
                len: 2,
            },
        ),
    ];
    for (bytes, expected) in cases {
        let mut decoder = Decoder::new();
        decoder.push(bytes);
        assert_eq!(decoder.next_frame(), Err(expected.clone()), "{bytes:02x?}");
        // The stream cannot be resynchronised: the error sticks.
        decoder.push(&Frame::nop().encode());
        assert_eq!(decoder.next_frame(), Err(expected));
    }
}

#[test]
fn frames_after_good_ones_fail_only_when_reached() {
    let mut stream = Frame::syn(3).encode();
    stream.extend_from_slice(&[0x01, 0x09, 0, 0, 3, 0, 0, 0]);
    let mut decoder = Decoder::new();
    decoder.push(&stream);
    assert_eq!(decoder.next_frame().unwrap(), Some(Frame::syn(3)));
    assert_eq!(decoder.next_frame(), Err(SmuxError::UnknownCommand(9)));
}

// ---------------------------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------------------------

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        any::<u32>().prop_map(Frame::syn),
        any::<u32>().prop_map(Frame::fin),
        Just(Frame::nop()),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..2_000))
            .prop_map(|(sid, data)| Frame::psh(sid, data).unwrap()),
    ]
}

/// Decodes `bytes` delivered in chunks that end at `cuts` (sorted positions), collecting every
/// frame and the first error.
fn decode_chunked(bytes: &[u8], cuts: &[usize]) -> (Vec<Frame>, Option<SmuxError>) {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([bytes.len()]) {
        let end = end.clamp(start, bytes.len());
        decoder.push(&bytes[start..end]);
        start = end;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

fn cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=len, 0..12).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_round_trip(frames in prop::collection::vec(frame(), 0..8)) {
        let stream: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        prop_assert_eq!(decode_all(&stream), frames);
    }

    #[test]
    fn chunk_boundaries_do_not_matter(
        (stream, cuts) in prop::collection::vec(frame(), 0..8)
            .prop_map(|frames| frames.iter().flat_map(Frame::encode).collect::<Vec<u8>>())
            .prop_flat_map(|stream| { let len = stream.len(); (Just(stream), cuts(len)) })
    ) {
        prop_assert_eq!(decode_chunked(&stream, &cuts), decode_chunked(&stream, &[]));
    }

    #[test]
    fn chunked_arbitrary_bytes_decode_as_whole(
        (bytes, cuts) in prop::collection::vec(any::<u8>(), 0..512)
            .prop_flat_map(|bytes| { let len = bytes.len(); (Just(bytes), cuts(len)) })
    ) {
        // Never panics, and the chunking changes neither the frames nor the error.
        prop_assert_eq!(decode_chunked(&bytes, &cuts), decode_chunked(&bytes, &[]));
    }

    #[test]
    fn plausible_headers_never_panic(
        (version, cmd) in (0u8..3, 0u8..6),
        len in any::<u16>(),
        sid in any::<u32>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![version, cmd];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&sid.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let (frames, error) = decode_chunked(&bytes, &[]);
        prop_assert!(frames.len() <= 1 + tail.len() / 8);
        if version != 1 {
            prop_assert_eq!(error, Some(SmuxError::BadVersion(version)));
        }
    }

    #[test]
    fn psh_frames_reassemble(data in prop::collection::vec(any::<u8>(), 0..100_000), sid in any::<u32>()) {
        let frames = psh_frames(sid, &data);
        prop_assert!(frames.iter().all(|f| f.data().len() <= SMUX_MAX_FRAME_SIZE && f.stream_id() == sid));
        let stream: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let joined: Vec<u8> = decode_all(&stream).into_iter().flat_map(Frame::into_data).collect();
        prop_assert_eq!(joined, data);
    }
}

// ---------------------------------------------------------------------------------------------
// Golden data: complete data-channel frames from shared/spec/traces.
// ---------------------------------------------------------------------------------------------

/// plugin-port_mux.jsonl event 23: the plugin opens stream 3
const SYN_3_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056fac3000000000000000010000000000000000aad7d8908dd241b559db41474ff84de430656bde983020b4a04d4fb8027463ad8cd15d89d4b953f961654b1d6579b9b900000001000000080100000003000000";

/// plugin-port_mux.jsonl event 28: the plugin's PSH on stream 3 (ping-from-tcp-client)
const PSH_3_PLUGIN_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056fac340000000000000002000000000000000082de199ccbef36297d8f5c9393344d3dcfc4331394fd914e28c9f83c7a69274cc8ce9ef4955ce8daa24db178992e7dba000000010000001c010214000300000070696e672d66726f6d2d7463702d636c69656e74";

/// plugin-port_mux.jsonl event 31: PSH on stream 3 to the plugin (pong-from-agent-side)
const PSH_3_AGENT_FRAME_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056fac3400000000000000020000000000000000a2aa968363a7cc9057e6f9f295d440c4fe315c9bcce8fc35b0b759691f541cc3530e6166c12b523cb696021fbfea0c32000000010000001c0102140003000000706f6e672d66726f6d2d6167656e742d73696465";

/// plugin-port_mux.jsonl event 36: the plugin opens stream 5
const SYN_5_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056fad640000000000000003000000000000000090770b74a51c2dd18147bd59d54f4692eca75f8497701d6223817cde38bf42cdd1124e01ef6b705bcfe9a584f7b42f0f00000001000000080100000005000000";

/// plugin-port_mux.jsonl event 40: the plugin closes stream 3
const FIN_3_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056fad6500000000000000040000000000000000919777fc8b6e84a4fbb522d809c045ecf6b4390cf40098972820d8b4f713133a60a63858e8241fb69813720deab359b600000001000000080101000003000000";

/// plugin-port_mux.jsonl event 43: FIN on stream 5 to the plugin
const FIN_5_AGENT_FRAME_HEX: &str = "000000746f75747075745f73747265616d5f64617461202020202020202020202020202000000001000001a2056fad6600000000000000030000000000000000a97ed9376d556c8c6ec6dd6eb4d045716bae9ef1cbb73c6a670c048ab6b1cb6788522e6ae90dd05c86f77d33d85dc96a00000001000000080101000005000000";

/// plugin-port_mux.jsonl event 46: the plugin's own FIN for stream 5
const FIN_5_PLUGIN_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056fad67000000000000000500000000000000008a190bd2e93cda7ce96a2fea0a814b566bae9ef1cbb73c6a670c048ab6b1cb6788522e6ae90dd05c86f77d33d85dc96a00000001000000080101000005000000";

/// plugin-port_mux_ka.jsonl event 21: the plugin's keepalive NOP (AgentVersion 3.1.1511.0)
const NOP_FRAME_HEX: &str = "00000074696e7075745f73747265616d5f6461746120202020202020202020202020202000000001000001a2056d914a00000000000000010000000000000000a60c255fca14afd1be7b5f3b92344e1719723fc4e696807b01bfa36c5cca5fb7b0280d4c9eca814427f555a7d0e7a3a700000001000000080103000000000000";

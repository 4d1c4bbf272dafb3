//! Feeds arbitrary bytes, cut at arbitrary points, to the smux decoder, and checks that every
//! frame it returns re-encodes to the bytes it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_protocol::smux::Decoder;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (bytes, cuts) = input;
    let mut decoder = Decoder::new();
    let mut rest = bytes.as_slice();
    let mut decoded = Vec::new();
    for cut in cuts.into_iter().chain(std::iter::once(u8::MAX)) {
        let (chunk, tail) = rest.split_at((cut as usize).min(rest.len()));
        rest = tail;
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => decoded.extend_from_slice(&frame.encode()),
                Ok(None) | Err(_) => break,
            }
        }
    }
    assert!(bytes.starts_with(&decoded), "decoded frames re-encode to a prefix of the input");
});

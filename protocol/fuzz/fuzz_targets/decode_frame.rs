//! Feeds arbitrary bytes to the frame decoder under every validation, and checks that whatever
//! decodes re-encodes to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_protocol::message::Header;
use ssm_protocol::{Message, Validation};

fuzz_target!(|frame: &[u8]| {
    if let Ok(header) = Header::parse(frame) {
        let _ = header.digest_matches(frame);
    }
    for validation in [Validation::Client, Validation::Agent, Validation::Structure] {
        if let Ok(message) = Message::decode(frame, validation) {
            let again = Message::decode(&message.encode(), Validation::Structure)
                .expect("an encoded message always decodes");
            assert_eq!(again, message);
        }
    }
});

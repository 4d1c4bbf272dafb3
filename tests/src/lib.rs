//! End-to-end harness: the real `ssm-emulator` (and later `ssm-agent-sim`) binaries as child
//! processes, driven by real clients: the AWS CLI v1 and boto3 from the repository's `.venv`,
//! and aws-sdk-ssm with lean features.
//!
//! # Layout
//!
//! - [`process`]: locating the workspace's binaries next to the test executable, and
//!   [`process::ChildProcess`], a child whose output is captured (and printed if the test fails)
//!   and which is killed on drop.
//! - [`emulator`]: [`Emulator::start`] runs `ssm-emulator` on a free loopback port with an
//!   instances file the test writes, and waits until it answers; [`emulator::RawResponse`] is
//!   one raw API call.
//! - [`agent`]: [`AgentSim::start`] runs `ssm-agent-sim` against an emulator and waits until
//!   its instances are Online.
//! - [`clients`]: [`Aws`] (the AWS CLI) and [`Python`] (boto3 scripts under `tests/python/`),
//!   both hermetic: dummy credentials, empty config files, no metadata service.
//! - [`run_command`]: [`Fleet`], an emulator with a separate `ssm-agent-sim` fleet, bounded
//!   polls of command state, and the CLI's text formatter for `--output text` assertions.
//! - [`sdk`]: [`sdk::client`], an aws-sdk-ssm client for an endpoint, plain HTTP, static
//!   credentials, retries as the test asks.
//!
//! Tests share nothing: every test starts its own emulator (it starts in milliseconds) on its own
//! port and temporary directory, so they run in parallel safely. Waits are bounded polls, never
//! timed assertions.
//!
//! The binaries are built by `cargo build --workspace --bins` (scripts/test-all does it first);
//! the Python clients come from `tests/requirements.txt`, installed into `.venv` by
//! scripts/test-all.

pub mod agent;
pub mod clients;
pub mod emulator;
pub mod process;
pub mod run_command;
pub mod sdk;
pub mod session;

pub use agent::AgentSim;
pub use clients::{Aws, CliOutput, Python};
pub use emulator::Emulator;
pub use run_command::Fleet;

/// Whether `s` looks like the request ids AWS (and the emulator) send: a lower-case UUID.
pub fn uuid_shaped(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

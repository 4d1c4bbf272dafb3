//! agent-sim: simulated amazon-ssm-agent instances that speak the agent's side of every channel.
//!
//! # Layout
//!
//! - [`command`]: the Run Command executor. It runs an `AWS-RunShellScript` job as a real
//!   `/bin/sh` process and reports the status, code and output strings the real agent would.
//! - [`limits`]: per-agent resource limits (concurrent commands).
//!
//! The control channel, sessions and port forwarding arrive with issues #3 and #4.

pub mod command;
pub mod limits;

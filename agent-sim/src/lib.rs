//! agent-sim: simulated amazon-ssm-agent instances that speak the agent's side of every channel.
//!
//! The agents arrive with issues #3 and #4; this crate holds its place in the workspace.

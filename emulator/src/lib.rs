//! The ssm-emulator control plane: the SSM JSON 1.1 API, the session service (MGS) with its
//! data-channel relay, the agent-facing channels, and fault injection.
//!
//! The server itself arrives with issue #3; this crate holds its place in the workspace so that
//! the dependency direction (`protocol` ← `emulator`) is fixed from the start.

//! The reference client (`ssm-session`, argv-compatible with session-manager-plugin) and the
//! conformance suites that check other clients and agents against the spec.
//!
//! The client arrives with issue #4; this crate holds its place in the workspace.

//! End-to-end tests across processes: the emulator, agent-sim and real clients (the AWS CLI,
//! boto3, aws-sdk-ssm, session-manager-plugin-compatible clients).
//!
//! The harness arrives with issue #3; this crate holds its place in the workspace.

//! Scenarios (issue #5): a TOML file with a seed, a fleet, a timeline of injected events
//! ("at 5 s cut agent i-…, at 35 s restore it"), workloads of real clients running meanwhile,
//! and expectations on what they saw. `ssm-emulator scenario run FILE` runs one against an
//! emulator of its own in this process and reports what happened.
//!
//! - [`file`]: the file format, parsed and checked (the fault rules are [`crate::faults::rules`]);
//! - [`runner`]: the emulator, its fleet, the baselines, the timeline, the workloads;
//! - [`workload`]: the clients: Run Command, `ssm-session` shells and port forwarding, an
//!   API storm with the SDKs' standard retries;
//! - [`report`]: facts, expectations and the report as text or JSON;
//! - [`client`]: the workloads' small SSM API client;
//! - [`library`]: the scenarios shipped in `scenarios/`; [`cli`]: `ssm-emulator scenario …`;
//! - [`limits`]: every bound and default, named once.

pub mod cli;
pub mod client;
pub mod file;
pub mod library;
pub mod limits;
pub mod report;
pub mod runner;
pub mod workload;

pub use file::Scenario;
pub use report::Report;
pub use runner::{Options, RunError, run};

//! Every bound and default of the scenario runner, named once.

use std::time::Duration;

/// A whole run without a `timeout`: long enough for the shipped library's slowest scenario
/// (a 10 MB lossy transfer both ways) on a loaded two-core CI machine.
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// A workload's wait (for a command's final status, a shell's output, a transfer) when the
/// file gives none: a bound on a step that normally takes a second, not a measurement.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// How long every agent of the fleet may take to come online before the run is refused. The
/// embedded fleet connects within a second; this covers a busy machine.
pub const FLEET_ONLINE_LIMIT: Duration = Duration::from_secs(60);

/// How often the runner samples the fault counters while the timeline runs, so that rules
/// which remove themselves (a `durationMs`) still show what they did.
pub const COUNTER_SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// How often a workload polls (GetCommandInvocation, a shell's output).
pub const POLL_PERIOD: Duration = Duration::from_millis(200);

/// The largest transfer a port-transfer workload may ask for, each way: the relay and both
/// ends move about 0.6 MB/s (spec §3.5), so more would not fit a run's timeout.
pub const MAX_MEGABYTES: f64 = 64.0;

/// How long `ssm-session` may take to print its `Port … opened` line, and to exit after the
/// signal that ends a port session or the `exit` that ends a shell.
pub const CLIENT_START_LIMIT: Duration = Duration::from_secs(30);

/// The SDKs' standard retry mode (aws-sdk-rust `RetryConfig::standard`, botocore "standard"):
/// three attempts per call, the first included.
pub const STANDARD_MAX_ATTEMPTS: u32 = 3;

/// Standard mode's backoff base: the delay before retry `n` is a random fraction of
/// `min(1 s × 2^(n-1), 20 s)`.
pub const STANDARD_INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// Standard mode's backoff cap.
pub const STANDARD_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Standard mode's retry quota: a client starts with this many tokens…
pub const RETRY_QUOTA: u32 = 500;

/// …a retry of a throttling or transient error costs this many…
pub const RETRY_COST: u32 = 5;

/// …and a call that succeeds on its first attempt gives this many back.
pub const RETRY_REFUND: u32 = 1;

/// A single API request of a workload: the emulator answers in milliseconds; an injected
/// latency or an agent-side fault does not hold API answers longer than this.
pub const API_REQUEST_LIMIT: Duration = Duration::from_secs(30);

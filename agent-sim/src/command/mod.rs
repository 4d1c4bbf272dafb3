//! The Run Command executor: runs an `AWS-RunShellScript` job as a real process and reports the
//! plugin result the real amazon-ssm-agent 3.3 would (`runtimeStatus["aws:runShellScript"]` of a
//! SendReplyPayload, §9.2).
//!
//! The control channel decodes a SendCommandPayload into a [`CommandJob`], calls
//! [`Executor::run`] and maps the returned [`PluginOutcome`] onto its reply types; this module
//! knows nothing about JSON or channels.
//!
//! - `runner`: the process (spawn in its own group, drain both pipes, time out, cancel, kill).
//! - `output`: the agent's reporting rules (status, code, truncation) as pure functions.
//! - `agent_time`: the reply's timestamp format.

pub(crate) mod agent_time;
mod output;
mod runner;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use self::output::{Captured, Ending, StartFailure};
use self::runner::ScriptRun;

/// The plugin name, the key of `runtimeStatus` and its `name` field.
pub const PLUGIN_NAME: &str = "aws:runShellScript";

/// The plugin id of schema 1.2's single `runtimeConfig` entry; its directory name (colons
/// removed) is part of the script path that appears in shell error messages.
const PLUGIN_ID_DIR: &str = "0.awsrunShellScript";

/// One `AWS-RunShellScript` job, as decoded from the SendCommandPayload `Parameters`.
#[derive(Debug, Clone)]
pub struct CommandJob {
    /// The `commands` StringList. Written one per line into `_script.sh`, so a single entry may
    /// itself hold several lines.
    pub commands: Vec<String>,
    /// The `workingDirectory` parameter, verbatim. An absolute path is used as given (a missing
    /// one fails the job as on the agent); empty or relative means the executor's
    /// [`ExecutorConfig::default_working_dir`].
    pub working_directory: String,
    /// The `executionTimeout` parameter.
    pub execution_timeout: ExecutionTimeout,
    /// Variables added to the agent-sim process's own environment for the script. The real agent
    /// adds `AWS_SSM_INSTANCE_ID`, `AWS_SSM_REGION_NAME`, `AWS_SSM_PLATFORM_NAME` and
    /// `AWS_SSM_PLATFORM_VERSION`; the caller supplies them here.
    pub env: Vec<(String, String)>,
}

/// How long a script may run before its process group is killed and the job reports TimedOut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionTimeout(Duration);

impl ExecutionTimeout {
    /// The document's default, also what the agent falls back to for a value it rejects.
    pub const DEFAULT: Self = Self(Duration::from_secs(3600));

    /// Interprets an `executionTimeout` string as the agent's `ValidateExecutionTimeout` does:
    /// an integer, else a float truncated to an integer, else the default; a result outside
    /// 5..=172 800 seconds also becomes the default (so `"1"` means 3600 on a real agent).
    pub fn from_parameter(raw: &str) -> Self {
        const MIN_SECONDS: i64 = 5;
        const MAX_SECONDS: i64 = 172_800;
        let seconds = raw
            .parse::<i64>()
            .ok()
            // Go's `int(f)` truncates toward zero; `as` does too and saturates out of range.
            .or_else(|| raw.parse::<f64>().ok().map(|float| float as i64));
        match seconds {
            Some(seconds @ MIN_SECONDS..=MAX_SECONDS) => {
                Self(Duration::from_secs(seconds.unsigned_abs()))
            }
            _ => Self::DEFAULT,
        }
    }

    /// A timeout taken as given, without the agent's 5-second minimum: for tests and fault
    /// injection that need a job to time out quickly.
    pub fn exactly(duration: Duration) -> Self {
        Self(duration)
    }

    /// The timeout as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// A command id that is safe to use as a directory name (the agent's orchestration directory is
/// named after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandId(String);

/// A command id with characters that could escape the orchestration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCommandId(pub String);

impl fmt::Display for InvalidCommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid command id {:?}: expected letters, digits, '-' and '_'",
            self.0
        )
    }
}

impl std::error::Error for InvalidCommandId {}

impl CommandId {
    /// Accepts ids made of ASCII letters, digits, `-` and `_` (real ids are UUIDs).
    pub fn parse(raw: &str) -> Result<Self, InvalidCommandId> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if raw.is_empty() || !raw.chars().all(allowed) {
            return Err(InvalidCommandId(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Terminal plugin statuses this executor produces (`contracts.ResultStatus` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginStatus {
    /// Exit code 0 (or 168).
    Success,
    /// Any other exit, a signal, or a job that could not start.
    Failed,
    /// `executionTimeout` elapsed; code 137.
    TimedOut,
    /// Cancelled: code 137 while running, 1 if cancelled before it started.
    Cancelled,
}

impl PluginStatus {
    /// The status string of the reply (`status`, `documentStatus`, `runtimeStatusCounts` keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
        }
    }
}

/// The finished plugin's reply fields, ready to map onto `runtimeStatus["aws:runShellScript"]`.
/// `name` is [`PLUGIN_NAME`]; `outputS3BucketName`, `outputS3KeyPrefix` and `stepName` are empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOutcome {
    /// `status`.
    pub status: PluginStatus,
    /// `code`: the exit code; 137 for timeout and cancel; -1 when a signal killed the shell.
    pub code: i32,
    /// `output`: stdout, `\n----------ERROR-------\n` and stderr, cut to 2 500 bytes.
    pub output: String,
    /// `standardOutput`, cut to 24 000 bytes with `--output truncated--`.
    pub standard_output: String,
    /// `standardError` including the agent's `failed to run commands: …` line.
    pub standard_error: String,
    /// `startDateTime`, e.g. `2026-11-22T22:43:38.001Z`.
    pub start_date_time: String,
    /// `endDateTime`.
    pub end_date_time: String,
}

/// The result the agent reports when a job's plugin properties cannot be decoded, without
/// running anything: Failed, code 1, `message` as `standardError` and after the error title in
/// `output` (the trace's `Invalid format in plugin properties …` for a list-valued
/// `workingDirectory`). Both timestamps are now.
pub fn invalid_plugin_input(message: &str) -> PluginOutcome {
    let now = agent_time::format(SystemTime::now());
    output::outcome(
        Captured {
            stdout: Vec::new(),
            stderr: Vec::new(),
        },
        &Ending::NotStarted(StartFailure::PluginInput(message.to_owned())),
        now.clone(),
        now,
    )
}

/// Settings of one agent's executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The agent's state directory, the counterpart of `/var/lib/amazon/ssm/<instance-id>`.
    /// Scripts go to `document/orchestration/<command-id>/awsrunShellScript/0.awsrunShellScript/`
    /// below it, the path the real agent uses (and that shell error messages show).
    pub state_dir: PathBuf,
    /// Where scripts run when `workingDirectory` is empty. The real agent runs as root in `/`;
    /// agent-sim runs as an ordinary user, so its caller picks, typically
    /// [`default_working_dir`].
    pub default_working_dir: PathBuf,
    /// At most this many scripts run at once; see [`crate::limits::MAX_CONCURRENT_COMMANDS`].
    pub max_concurrent_commands: usize,
}

/// `$HOME` if set, else `/`: a sensible [`ExecutorConfig::default_working_dir`] for an agent
/// that does not run as root.
pub fn default_working_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// One agent's Run Command executor; cheap to clone, clones share the concurrency limit.
#[derive(Debug, Clone)]
pub struct Executor {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: ExecutorConfig,
    /// One permit per running script: the agent's command worker pool.
    slots: Semaphore,
}

impl Executor {
    /// An executor with its own concurrency limit.
    pub fn new(config: ExecutorConfig) -> Self {
        let slots = Semaphore::new(config.max_concurrent_commands);
        Self {
            shared: Arc::new(Shared { config, slots }),
        }
    }

    /// Runs `job` once a slot is free and reports its result. Cancelling `cancel` while the job
    /// waits for a slot gives Cancelled with code 1; while it runs, the process group is killed
    /// and the result is Cancelled with code 137 and the output so far.
    pub async fn run(
        &self,
        id: &CommandId,
        job: &CommandJob,
        cancel: &CancellationToken,
    ) -> PluginOutcome {
        let slot = tokio::select! {
            slot = self.shared.slots.acquire() => slot.ok(),
            () = cancel.cancelled() => None,
        };
        let start = SystemTime::now();
        let (captured, ending) = match slot {
            // The semaphore is never closed, so `None` means cancelled while queued.
            Some(_slot) if !cancel.is_cancelled() => self.run_in_slot(id, job, cancel).await,
            _ => (
                Captured {
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                },
                Ending::CancelledBeforeStart,
            ),
        };
        let end = SystemTime::now();
        output::outcome(
            captured,
            &ending,
            agent_time::format(start),
            agent_time::format(end),
        )
    }

    async fn run_in_slot(
        &self,
        id: &CommandId,
        job: &CommandJob,
        cancel: &CancellationToken,
    ) -> (Captured, Ending) {
        let no_output = || Captured {
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let dir = self.plugin_dir(id);
        if std::fs::create_dir_all(&dir).is_err() {
            let failure = StartFailure::OrchestrationDir(dir.display().to_string());
            return (no_output(), Ending::NotStarted(failure));
        }
        let script = dir.join("_script.sh");
        if let Err(error) = runner::write_script(&script, &job.commands) {
            let failure = StartFailure::ScriptFile(error.to_string());
            return (no_output(), Ending::NotStarted(failure));
        }
        let spec = ScriptRun {
            script: &script,
            working_dir: &self.working_dir(&job.working_directory),
            env: &job.env,
            timeout: job.execution_timeout.duration(),
        };
        let result = runner::run(&spec, cancel).await;
        // The agent keeps orchestration directories for days; a fleet of simulated agents
        // should not fill the disk, so ours go as soon as the result is known.
        let _ = std::fs::remove_dir_all(self.command_dir(id));
        result
    }

    fn command_dir(&self, id: &CommandId) -> PathBuf {
        self.shared
            .config
            .state_dir
            .join("document")
            .join("orchestration")
            .join(id.as_str())
    }

    fn plugin_dir(&self, id: &CommandId) -> PathBuf {
        self.command_dir(id)
            .join("awsrunShellScript")
            .join(PLUGIN_ID_DIR)
    }

    /// An absolute `workingDirectory` as given; anything else the default. (The agent first
    /// tries a relative path under the document's `downloads` directory, which only
    /// `aws:downloadContent` fills; agent-sim runs no such step.)
    fn working_dir(&self, requested: &str) -> PathBuf {
        let requested = Path::new(requested);
        if requested.is_absolute() {
            requested.to_path_buf()
        } else {
            self.shared.config.default_working_dir.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_timeout_follows_validate_execution_timeout() {
        let seconds = |raw: &str| ExecutionTimeout::from_parameter(raw).duration().as_secs();
        assert_eq!(seconds("3600"), 3600);
        assert_eq!(seconds("30"), 30);
        assert_eq!(seconds("5"), 5);
        assert_eq!(seconds("172800"), 172_800);
        assert_eq!(seconds("12.9"), 12);
        // Out of range or unparsable: the default, not the nearest bound.
        assert_eq!(seconds("1"), 3600);
        assert_eq!(seconds("4.99"), 3600);
        assert_eq!(seconds("172801"), 3600);
        assert_eq!(seconds("-10"), 3600);
        assert_eq!(seconds(""), 3600);
        assert_eq!(seconds("soon"), 3600);
        assert_eq!(seconds("NaN"), 3600);
        assert_eq!(seconds("1e100"), 3600);
    }

    #[test]
    fn command_ids_cannot_leave_the_orchestration_directory() {
        assert!(CommandId::parse("11111111-2222-3333-4444-555555555555").is_ok());
        for bad in ["", "..", "a/b", "a.b", "x y"] {
            assert_eq!(CommandId::parse(bad), Err(InvalidCommandId(bad.to_owned())));
        }
    }
}

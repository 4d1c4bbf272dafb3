//! `InteractiveCommands` and `NonInteractiveCommands` sessions (AWS-StartInteractiveCommand,
//! AWS-StartNonInteractiveCommand, and an account's own Session documents of those types): one
//! command line from `properties.linux.commands`, then the session ends.
//!
//! What the real agent does, from its sources (A: = amazon-ssm-agent):
//!
//! - Properties are remarshalled into `ShellProperties` (A:agent/session/contracts/model.go:
//!   `linux.commands` string, `runAsElevated` bool, `separateOutputStream` any,
//!   `stdOutSeparatorPrefix` / `stdErrSeparatorPrefix` strings); a type mismatch fails the
//!   session with "Invalid format in session properties …", blank commands with "Commands
//!   cannot be empty for session type …" (A:agent/session/plugins/singlecommand/singlecommand.go,
//!   interactivecommands/interactivecommands.go and their `_unix.go` files).
//! - `InteractiveCommands` has no handshake and runs `sh -c <commands>` on a PTY, exactly like a
//!   shell session otherwise (Size resizes it, input is written to it, exit → Terminating);
//!   it runs no shell profile and reports no exit code (A:agent/session/shell/shell_unix.go
//!   `StartCommandExecutor`, shell.go `executeCommandsWithPty`). agent-sim runs it through
//!   [`super::shell`].
//! - `NonInteractiveCommands` has the handshake with `Properties` null (§4.1,
//!   `agent-noninteractive.jsonl`), then splits the command line shlex-style
//!   (github.com/google/shlex) and executes it directly, **without a shell**, stdin `/dev/null`,
//!   no PTY (shell_unix.go). So `echo a; exit 3` prints `a; exit 3`; use `sh -c '…'` for shell
//!   syntax, as the recorded session does. Client Output bytes are only scanned for 0x03 /
//!   0x1C, sent as SIGINT / SIGQUIT to the process (not its group); Size is ignored (§6.1,
//!   §6.2; shell_unix.go `InputStreamMessageHandler`).
//!   * Without `separateOutputStream`: stdout and stderr go to one file, which the agent reads
//!     and sends as Output only **after the process exits** (shell.go
//!     `processCommandsWithExec`); no exit code is reported (§9.1, the trace). agent-sim holds
//!     the merged output the same way, up to [`HELD_OUTPUT_LIMIT`], past which it sends as it
//!     reads so memory stays bounded.
//!   * With it: stdout as Output (1), stderr as StdErr (11) as they are read, each read of a
//!     stream prefixed with its separator prefix when the previous read of that stream ended a
//!     line; once both pipes end and the process is reaped, ExitCode (12) `EXIT_CODE: <n>`, with
//!     -1 for a process killed by a signal (Go's `ExitCode()`) (shell.go
//!     `processCommandsWithOutputStreamSeparate`, `sendExitCode`, §6.3). Prefixes must match
//!     `^[0-9a-zA-Z\r\n_:-]{0,30}$`. HandshakeComplete carries a CustomerMessage asking for a
//!     newer plugin when the client is ≤ [`CLIENT_WITHOUT_SEPARATION`]
//!     (A:agent/session/datachannel/datachannel.go `buildHandshakeCompletePayload`).
//!   * Then the same end as a shell: drain ≤ 2 s, `agent_session_state` Terminating, the socket
//!     drops, `agent_task_complete` Success.
//!   * A command line that cannot be split, or a run-as user that cannot be used, fails before
//!     the process starts: the error goes to the client as StdErr, then two
//!     `agent_task_complete` Failed (shell.go `execute`). A process that cannot be started
//!     (`exec: "x": executable file not found in $PATH`): StdErr with that error (after
//!     `EXIT_CODE: 1` when separated), Terminating, Failed.
//!
//! UNCONFIRMED, chosen to be what clients tolerate: Go's exact error wording for remarshal
//! failures and for `separateOutputStream` values that are not booleans; whether the real agent
//! sends Terminating after TerminateSession in separated mode (its code path suggests it does;
//! agent-sim, like its shells, does not); the real agent kills only the process on
//! TerminateSession, agent-sim kills its process group so nothing outlives the session.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use rustix::process::{Pid, Signal};
use serde_json::Value;
use ssm_protocol::limits::{HANDSHAKE_TIMEOUT, STREAM_DATA_PAYLOAD_SIZE};
use ssm_protocol::payload::{
    AgentTaskPayload, ExitCode, Flag, HandshakeComplete, HandshakeRequest, RequestedClientAction,
    SessionTypeRequest, to_json_bytes,
};
use ssm_protocol::reliable::{Config, Event, ReliableStream};
use ssm_protocol::{Message, MessageType, PayloadType};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::port::{HANDSHAKE_TIMED_OUT, resolve_properties, version_above};
use super::shell::{self, DEFAULT_LANG, ShellSpec, TERM, User};
use super::{Outcome, Sessions, Socket, drain_deadline, sleep_until, socket_send};
use crate::agent::now_millis;
use crate::control::{FIRST_PONG_GRACE, KEEPALIVE_DATA, PONG_GRACE};

/// `sessionType` of AWS-StartInteractiveCommand.
pub(crate) const INTERACTIVE_COMMANDS: &str = "InteractiveCommands";
/// `sessionType` of AWS-StartNonInteractiveCommand.
pub(crate) const NON_INTERACTIVE_COMMANDS: &str = "NonInteractiveCommands";

/// Merged (not separated) output held until the process exits, as the real agent holds it in a
/// file; beyond this it is sent as it is read, so a command that writes without end cannot
/// exhaust agent-sim's memory.
pub(crate) const HELD_OUTPUT_LIMIT: usize = 1024 * 1024;
/// After the process is reaped, how long to wait for its pipes to end: a background child that
/// inherited them may keep them open (the real agent reads a file and cannot be held up).
const EXIT_OUTPUT_GRACE: Duration = Duration::from_millis(200);
/// Reads queued from the process's pipes to the session; a full queue holds the readers back.
const OUTPUT_QUEUE: usize = 16;
/// Clients up to this version get the CustomerMessage below with separated output
/// (`clientVersionWithoutOutputSeparation`, datachannel.go).
const CLIENT_WITHOUT_SEPARATION: &str = "1.2.295.0";
/// HandshakeComplete's CustomerMessage for those clients.
const UPDATE_PLUGIN_MESSAGE: &str = "Please update session manager plugin version (minimum \
    required version 1.2.312.0) for fully support of separate StdOut/StdErr output.\r\n";
/// The longest separator prefix (`separateOutputStreamPrefixRegex`, shell.go).
const MAX_PREFIX_CHARS: usize = 30;
/// The banner the real agent's output handler puts before a failure's error text.
const ERROR_BANNER: &str = "\n----------ERROR-------\n";

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

/// `properties.linux` as the real agent reads it (`ShellConfig`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CommandConfig {
    /// The command line.
    pub(crate) commands: String,
    /// Skips the run-as user: the real agent then runs the command as itself (root).
    pub(crate) run_as_elevated: bool,
    /// `separateOutputStream` as given (a bool or a string); read by NonInteractiveCommands.
    separate_output_stream: Value,
    /// `stdOutSeparatorPrefix`.
    stdout_prefix: String,
    /// `stdErrSeparatorPrefix`.
    stderr_prefix: String,
}

impl CommandConfig {
    /// Reads resolved properties as the real plugins do; `Err` is the `agent_task_complete`
    /// Output.
    pub(crate) fn from_properties(
        properties: &Value,
        session_type: &str,
    ) -> Result<CommandConfig, String> {
        let config = remarshal(properties).map_err(|error| {
            format!(
                "Invalid format in session properties {};\nerror {error}",
                go_value(properties)
            )
        })?;
        if config.commands.trim().is_empty() {
            return Err(format!(
                "Commands cannot be empty for session type {session_type}"
            ));
        }
        Ok(config)
    }

    /// How NonInteractiveCommands sends output (`setSeparateOutputStreamProperties`).
    fn output_mode(&self) -> Result<OutputMode, String> {
        let separate = go_bool(&self.separate_output_stream).map_err(|error| {
            format!(
                "fail to get separateOutPutStream property: unable to convert separateOutPutStream: {error}"
            )
        })?;
        if !separate {
            return Ok(OutputMode::Merged);
        }
        for (name, prefix) in [
            ("stdoutSeparatorPrefix", &self.stdout_prefix),
            ("stderrSeparatorPrefix", &self.stderr_prefix),
        ] {
            if !valid_prefix(prefix) {
                return Err(format!("invalid {name} {prefix}"));
            }
        }
        Ok(OutputMode::Separate {
            stdout_prefix: self.stdout_prefix.clone(),
            stderr_prefix: self.stderr_prefix.clone(),
        })
    }
}

/// Go's `json.Unmarshal` of the properties into `ShellProperties`, as far as `linux` goes (the
/// other platforms are checked for their types only). Keys are visited in sorted order, as the
/// remarshalled map has them; the first mismatch is the error.
fn remarshal(properties: &Value) -> Result<CommandConfig, String> {
    let mut config = CommandConfig::default();
    let object = match properties {
        Value::Null => return Ok(config),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type contracts.ShellProperties",
                json_kind(other)
            ));
        }
    };
    let mut platforms: Vec<(&String, &Value)> = object
        .iter()
        .filter(|(key, _)| ["linux", "macos", "windows"].contains(&key.as_str()))
        .collect();
    platforms.sort_by_key(|(key, _)| key.as_str());
    for (platform, value) in platforms {
        let fields = match value {
            Value::Null => continue,
            Value::Object(fields) => fields,
            other => {
                return Err(mismatch(other, platform, "contracts.ShellConfig"));
            }
        };
        let mut fields: Vec<(&String, &Value)> = fields.iter().collect();
        fields.sort_by_key(|(key, _)| key.as_str());
        for (key, value) in fields {
            check_field(&format!("{platform}.{key}"), key, value)?;
            if platform == "linux" {
                config.set(key, value);
            }
        }
    }
    Ok(config)
}

/// The type check of one `ShellConfig` field.
fn check_field(path: &str, key: &str, value: &Value) -> Result<(), String> {
    match (key, value) {
        (_, Value::Null)
        | ("runAsElevated", Value::Bool(_))
        | ("commands" | "stdOutSeparatorPrefix" | "stdErrSeparatorPrefix", Value::String(_)) => {
            Ok(())
        }
        ("runAsElevated", other) => Err(mismatch(other, path, "bool")),
        ("commands" | "stdOutSeparatorPrefix" | "stdErrSeparatorPrefix", other) => {
            Err(mismatch(other, path, "string"))
        }
        _ => Ok(()),
    }
}

impl CommandConfig {
    /// Takes one field of `properties.linux` (already type-checked).
    fn set(&mut self, key: &str, value: &Value) {
        match (key, value) {
            ("commands", Value::String(text)) => text.clone_into(&mut self.commands),
            ("runAsElevated", Value::Bool(b)) => self.run_as_elevated = *b,
            ("separateOutputStream", any) => any.clone_into(&mut self.separate_output_stream),
            ("stdOutSeparatorPrefix", Value::String(text)) => {
                text.clone_into(&mut self.stdout_prefix);
            }
            ("stdErrSeparatorPrefix", Value::String(text)) => {
                text.clone_into(&mut self.stderr_prefix);
            }
            _ => {}
        }
    }
}

fn mismatch(value: &Value, path: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field ShellProperties.{path} of type {go_type}",
        json_kind(value)
    )
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON value as Go's `%v` prints the `interface{}` it decodes to (maps with sorted keys).
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(key, _)| key.as_str());
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{key}:{}", go_value(value)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

/// `separateOutputStream` as the agent's `ConvertToBool` reads it: absent is false, a bool is
/// itself, a string goes through Go's `strconv.ParseBool`.
fn go_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::String(text) => match text.as_str() {
            "" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            other => Err(format!(
                "strconv.ParseBool: parsing {other:?}: invalid syntax"
            )),
        },
        other => Err(format!("{} is not a bool", go_value(other))),
    }
}

/// `^[0-9a-zA-Z\r\n_:-]{0,30}$`.
fn valid_prefix(prefix: &str) -> bool {
    prefix.chars().count() <= MAX_PREFIX_CHARS
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "\r\n_:-".contains(c))
}

/// Splits a command line as github.com/google/shlex does: blanks separate words, `'…'` is
/// literal, `"…"` and a bare `\` escape the next character (the backslash is dropped), `#` at
/// the start of a word comments out the rest of the line.
pub(crate) fn shlex_split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => words.extend(word.take()),
            '#' if word.is_none() => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        break;
                    }
                }
            }
            '\\' => {
                let escaped = chars.next().ok_or("EOF found after escape character")?;
                word.get_or_insert_with(String::new).push(escaped);
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(quoted) => current.push(quoted),
                        None => return Err("EOF found when expecting closing quote"),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => current.push(
                            chars
                                .next()
                                .ok_or("EOF found when expecting closing quote")?,
                        ),
                        Some(quoted) => current.push(quoted),
                        None => return Err("EOF found when expecting closing quote"),
                    }
                }
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    Ok(words)
}

// ---------------------------------------------------------------------------------------------
// InteractiveCommands.
// ---------------------------------------------------------------------------------------------

/// How an `InteractiveCommands` session's PTY process starts: `sh -c <commands>` as the session
/// user (or as agent-sim itself with `runAsElevated`), no shell profile.
pub(crate) fn interactive_spec(
    task: &AgentTaskPayload,
    default_working_dir: &Path,
) -> Result<ShellSpec, String> {
    let config = CommandConfig::from_properties(&resolve_properties(task), INTERACTIVE_COMMANDS)?;
    let mut spec = session_user(task, &config, default_working_dir)?;
    spec.profile = String::new();
    spec.command = Some(config.commands);
    Ok(spec)
}

/// The run-as rules of shells ([`shell::resolve`]); `runAsElevated` skips them.
fn session_user(
    task: &AgentTaskPayload,
    config: &CommandConfig,
    default_working_dir: &Path,
) -> Result<ShellSpec, String> {
    if config.run_as_elevated {
        return Ok(ShellSpec {
            run_as: None,
            working_dir: default_working_dir.to_path_buf(),
            profile: String::new(),
            command: None,
        });
    }
    shell::resolve(task, default_working_dir)
}

// ---------------------------------------------------------------------------------------------
// NonInteractiveCommands.
// ---------------------------------------------------------------------------------------------

/// Where the process's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OutputMode {
    /// stdout and stderr through one pipe, sent as Output after the exit.
    Merged,
    /// stdout as Output and stderr as StdErr as they come, then ExitCode.
    Separate {
        stdout_prefix: String,
        stderr_prefix: String,
    },
}

/// What runs once the handshake is complete.
#[derive(Debug)]
struct Plan {
    argv: Vec<String>,
    spec: ShellSpec,
    mode: OutputMode,
}

/// Why the plan cannot run: the Output of the failed session, and whether the client is told
/// on the data channel first (as StdErr).
#[derive(Debug)]
struct PlanError {
    output: String,
    to_client: Option<String>,
}

impl PlanError {
    /// A properties problem: reported to MGS only, as is.
    fn quiet(output: String) -> PlanError {
        PlanError {
            output,
            to_client: None,
        }
    }

    /// A command executor problem (`Unable to start command: …`): StdErr to the client too.
    fn executor(error: &str) -> PlanError {
        let text = format!("Unable to start command: {error}\n");
        PlanError {
            output: format!("{ERROR_BANNER}{text}"),
            to_client: Some(text),
        }
    }
}

/// Decides what a NonInteractiveCommands session runs, in the real agent's order of checks.
fn plan(task: &AgentTaskPayload, default_working_dir: &Path) -> Result<Plan, PlanError> {
    let config =
        CommandConfig::from_properties(&resolve_properties(task), NON_INTERACTIVE_COMMANDS)
            .map_err(PlanError::quiet)?;
    let mode = config.output_mode().map_err(PlanError::quiet)?;
    let argv = shlex_split(&config.commands).map_err(|error| {
        PlanError::executor(&format!("Failed to parse commands input: {error}\n"))
    })?;
    let spec = session_user(task, &config, default_working_dir).map_err(|output| {
        // shell::resolve words its errors as the Output already; the client gets the text.
        PlanError {
            to_client: Some(output.trim_start_matches(ERROR_BANNER).to_owned()),
            output,
        }
    })?;
    Ok(Plan { argv, spec, mode })
}

/// Whether the session's properties ask for separated output (for the HandshakeComplete
/// CustomerMessage, decided before the other checks as the data channel does).
fn separate_output_requested(task: &AgentTaskPayload) -> bool {
    remarshal(&resolve_properties(task))
        .ok()
        .and_then(|config| config.output_mode().ok())
        .is_some_and(|mode| mode != OutputMode::Merged)
}

/// What a pipe reader tells the session.
#[derive(Debug)]
enum Read {
    /// Bytes to send with this PayloadType (Output or StdErr).
    Data(PayloadType, Vec<u8>),
    /// One pipe ended (EOF or error).
    Eof,
}

/// The running process.
#[derive(Debug)]
struct Process {
    child: Child,
    /// Set once reaped: the exit code as Go reports it (-1 for a signal).
    exit_code: Option<i64>,
    /// When it was reaped, while its pipes may still be open.
    reaped_at: Option<tokio::time::Instant>,
    /// Pipes not yet ended.
    open_pipes: usize,
    /// stdout and stderr apart, with an exit code at the end.
    separate: bool,
    reads: mpsc::Receiver<Read>,
}

impl Process {
    /// SIGKILL to the process group (TerminateSession).
    fn kill_group(&self) {
        if self.exit_code.is_some() {
            return;
        }
        if let Some(group) = self.pid() {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
    }

    /// A control byte's signal, to the process only, as the real agent sends it.
    fn signal(&self, signal: Signal) {
        if self.exit_code.is_some() {
            return;
        }
        if let Some(pid) = self.pid() {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child
            .id()
            .and_then(|id| Pid::from_raw(id.try_into().ok()?))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Starts the process with its output pipes and their reader tasks. `Err` is Go's wording of
/// the start failure.
fn start(plan: &Plan) -> Result<Process, String> {
    let (program, args) = plan
        .argv
        .split_first()
        .ok_or_else(|| "exec: no command".to_owned())?;
    let path = look_path(program)
        .ok_or_else(|| format!("exec: {program:?}: executable file not found in $PATH"))?;
    let mut command = tokio::process::Command::new(path);
    command
        .arg0(program)
        .args(args)
        .current_dir(&plan.spec.working_dir)
        .env("TERM", TERM)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if std::env::var_os("LANG").is_none() {
        command.env("LANG", DEFAULT_LANG);
    }
    if let Some(User {
        name,
        uid,
        gid,
        home,
    }) = &plan.spec.run_as
    {
        command
            .uid(*uid)
            .gid(*gid)
            .env("HOME", home)
            .env("USER", name)
            .env("LOGNAME", name);
    }
    let (tx, reads) = mpsc::channel(OUTPUT_QUEUE);
    let start_error = |error: std::io::Error| go_start_error(program, &error);
    let (child, open_pipes) = match &plan.mode {
        OutputMode::Merged => {
            let (reader, writer) = std::io::pipe().map_err(start_error)?;
            command
                .stdout(writer.try_clone().map_err(start_error)?)
                .stderr(writer);
            let child = command.spawn().map_err(start_error)?;
            // The command holds the write ends: drop it so that the pipe ends with the process.
            drop(command);
            let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
                .map_err(start_error)?;
            tokio::spawn(read_pipe(reader, PayloadType::Output, String::new(), tx));
            (child, 1)
        }
        OutputMode::Separate {
            stdout_prefix,
            stderr_prefix,
        } => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn().map_err(start_error)?;
            let stdout = child.stdout.take().expect("stdout is piped");
            let stderr = child.stderr.take().expect("stderr is piped");
            tokio::spawn(read_pipe(
                stdout,
                PayloadType::Output,
                stdout_prefix.clone(),
                tx.clone(),
            ));
            tokio::spawn(read_pipe(
                stderr,
                PayloadType::StdErr,
                stderr_prefix.clone(),
                tx,
            ));
            (child, 2)
        }
    };
    Ok(Process {
        child,
        exit_code: None,
        reaped_at: None,
        open_pipes,
        separate: plan.mode != OutputMode::Merged,
        reads,
    })
}

/// Where `program` is, as Go's `exec.LookPath` finds it: a name with a slash as it is, else the
/// first executable regular file of that name in a `PATH` directory.
fn look_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The error Go's `exec.Cmd.Start` gives for `program` once it was found.
fn go_start_error(program: &str, error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    let text: String = chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    format!("fork/exec {program}: {text}")
}

/// Reads one pipe in chunks that fit an Output payload with the prefix, prefixing each read
/// that follows a line end (and the first).
async fn read_pipe(
    mut pipe: impl AsyncRead + Unpin,
    payload_type: PayloadType,
    prefix: String,
    reads: mpsc::Sender<Read>,
) {
    let mut buffer = vec![0u8; STREAM_DATA_PAYLOAD_SIZE - prefix.len()];
    let mut need_prefix = true;
    loop {
        let n = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = Vec::with_capacity(prefix.len() + n);
        if need_prefix {
            chunk.extend_from_slice(prefix.as_bytes());
        }
        chunk.extend_from_slice(&buffer[..n]);
        need_prefix = buffer[n - 1] == b'\n';
        if reads.send(Read::Data(payload_type, chunk)).await.is_err() {
            return;
        }
    }
    let _ = reads.send(Read::Eof).await;
}

/// Why the session is winding down.
#[derive(Debug)]
enum Ending {
    /// The command ended: Terminating, then Success.
    Exited,
    /// TerminateSession: no Terminating, Success.
    Terminated,
    /// Failed: two `agent_task_complete` Failed with this Output.
    Failed { output: String, terminating: bool },
}

enum Step {
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Read(Option<Read>),
    Reaped(std::io::Result<std::process::ExitStatus>),
    ExitGraceOver,
    Timer,
    Ping,
    ReadDeadline,
    Cancelled,
    DrainOver,
    HandshakeTimeout,
}

/// Runs a NonInteractiveCommands session on an open data channel.
pub(super) async fn run_non_interactive(
    sessions: &Sessions,
    task: &AgentTaskPayload,
    cancel: &CancellationToken,
    socket: Socket,
) -> Outcome {
    let context = &sessions.0.context;
    let seed = context.random.uuid().as_u64_pair().0;
    let stream = ReliableStream::new(Config::agent(), Instant::now(), now_millis(), seed);
    let mut session = NonInteractive {
        sessions,
        id: &task.session_id,
        cancel,
        stream,
        socket: Some(socket),
        plan: Some(plan(task, &context.default_working_dir)),
        separate_requested: separate_output_requested(task),
        handshake_started: Instant::now(),
        handshake_deadline: Some(tokio::time::Instant::now() + HANDSHAKE_TIMEOUT),
        process: None,
        held: Vec::new(),
        holding: true,
        ending: None,
    };
    session.send_handshake_request();
    session.run().await
}

struct NonInteractive<'a> {
    sessions: &'a Sessions,
    id: &'a str,
    cancel: &'a CancellationToken,
    stream: ReliableStream,
    /// `None` while the data channel is being re-established.
    socket: Option<Socket>,
    /// Taken when the handshake completes.
    plan: Option<Result<Plan, PlanError>>,
    separate_requested: bool,
    handshake_started: Instant,
    /// Set until the HandshakeResponse arrives.
    handshake_deadline: Option<tokio::time::Instant>,
    process: Option<Process>,
    /// Merged output held until the exit.
    held: Vec<u8>,
    /// False once [`HELD_OUTPUT_LIMIT`] was passed: output then goes out as it is read.
    holding: bool,
    ending: Option<(Ending, tokio::time::Instant)>,
}

impl NonInteractive<'_> {
    /// HandshakeRequest with `Properties` null (`agent-noninteractive.jsonl`).
    fn send_handshake_request(&mut self) {
        let request = HandshakeRequest {
            agent_version: self.sessions.0.context.instance.agent_version.clone(),
            requested_client_actions: vec![RequestedClientAction::SessionType(
                SessionTypeRequest {
                    session_type: NON_INTERACTIVE_COMMANDS.to_owned(),
                    properties: Value::Null,
                },
            )],
        };
        let payload = to_json_bytes(&request).expect("strings serialize");
        self.stream
            .send(Instant::now(), PayloadType::HandshakeRequest, payload);
    }

    async fn run(mut self) -> Outcome {
        let timings = self.sessions.0.context.timings;
        let keepalive = timings.keepalive;
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut read_deadline = tokio::time::Instant::now() + keepalive + FIRST_PONG_GRACE;
        loop {
            if self.socket.is_none() {
                if self.ending.is_some() {
                    return self.finish().await;
                }
                let Some(socket) = self.sessions.dial_forever(self.id, self.cancel).await else {
                    return Outcome::Success;
                };
                self.socket = Some(socket);
                self.stream.on_reconnect(Instant::now());
                pings.reset();
                read_deadline = tokio::time::Instant::now() + keepalive + FIRST_PONG_GRACE;
            }
            if !self.flush().await {
                continue;
            }
            if self.ending.is_some() && self.stream.unacked() == 0 {
                return self.finish().await;
            }
            let process = self.process.as_mut();
            let reading = process.as_ref().is_some_and(|p| p.open_pipes > 0)
                && self.ending.is_none()
                && !self.stream.is_paused();
            let reaping = process.as_ref().is_some_and(|p| p.exit_code.is_none());
            let exit_grace = process
                .as_ref()
                .and_then(|p| p.reaped_at)
                .map(|at| at + EXIT_OUTPUT_GRACE);
            let timer = self
                .stream
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let drain = self.ending.as_ref().map(|(_, deadline)| *deadline);
            let handshake = self.handshake_deadline.filter(|_| self.ending.is_none());
            let socket = self.socket.as_mut().expect("connected above");
            let step = {
                let (reads, child) = match process {
                    Some(p) => (Some(&mut p.reads), Some(&mut p.child)),
                    None => (None, None),
                };
                tokio::select! {
                    () = self.cancel.cancelled(), if self.ending.is_none() => Step::Cancelled,
                    frame = socket.next() => Step::Frame(frame),
                    read = async { reads.expect("guarded").recv().await }, if reading => Step::Read(read),
                    status = async { child.expect("guarded").wait().await }, if reaping => Step::Reaped(status),
                    () = sleep_until(exit_grace), if exit_grace.is_some() => Step::ExitGraceOver,
                    () = sleep_until(timer), if timer.is_some() => Step::Timer,
                    () = sleep_until(drain), if drain.is_some() => Step::DrainOver,
                    () = sleep_until(handshake), if handshake.is_some() => Step::HandshakeTimeout,
                    _ = pings.tick() => Step::Ping,
                    () = tokio::time::sleep_until(read_deadline) => Step::ReadDeadline,
                }
            };
            match step {
                Step::Cancelled => {
                    tracing::info!(session = %self.id, "TerminateSession (channel_closed on the control channel)");
                    self.end(Ending::Terminated);
                }
                Step::Frame(Some(Ok(WsMessage::Binary(bytes)))) => self.on_frame(&bytes),
                Step::Frame(Some(Ok(WsMessage::Text(text)))) => self.on_frame(text.as_bytes()),
                Step::Frame(Some(Ok(WsMessage::Pong(_)))) => {
                    read_deadline = tokio::time::Instant::now() + keepalive + PONG_GRACE;
                }
                Step::Frame(Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None) => {
                    tracing::info!(session = %self.id, "data channel lost; reconnecting");
                    self.socket = None;
                }
                Step::Frame(Some(Ok(_))) => {}
                Step::Read(Some(Read::Data(payload_type, bytes))) => {
                    self.on_output(payload_type, bytes);
                    if timings.real_read_pacing {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Step::Read(Some(Read::Eof) | None) => {
                    if let Some(process) = self.process.as_mut() {
                        process.open_pipes = process.open_pipes.saturating_sub(1);
                    }
                    self.maybe_done();
                }
                Step::Reaped(status) => {
                    let code = match status {
                        Ok(status) => status.code().map_or(-1, i64::from),
                        Err(_) => 1,
                    };
                    tracing::info!(session = %self.id, code, "command exited");
                    if let Some(process) = self.process.as_mut() {
                        process.exit_code = Some(code);
                        process.reaped_at = Some(tokio::time::Instant::now());
                    }
                    self.maybe_done();
                }
                Step::ExitGraceOver => {
                    if let Some(process) = self.process.as_mut() {
                        process.open_pipes = 0;
                    }
                    self.maybe_done();
                }
                Step::Timer => self.stream.handle_timeout(Instant::now()),
                Step::DrainOver => return self.finish().await,
                Step::HandshakeTimeout => {
                    tracing::info!(session = %self.id, "no HandshakeResponse");
                    self.handshake_deadline = None;
                    self.end(Ending::Failed {
                        output: HANDSHAKE_TIMED_OUT.to_owned(),
                        terminating: false,
                    });
                }
                Step::Ping => {
                    let ping = WsMessage::Ping(Bytes::from_static(KEEPALIVE_DATA));
                    if socket_send(&mut self.socket, ping).await.is_err() {
                        self.socket = None;
                    }
                }
                Step::ReadDeadline => {
                    tracing::info!(session = %self.id, "no Pong on the data channel; reconnecting");
                    self.socket = None;
                }
            }
        }
    }

    /// Feeds one received frame to the stream and acts on what it delivers. Every stream
    /// message is taken at once: the real handler is never "not ready" for this session type.
    fn on_frame(&mut self, frame: &[u8]) {
        if let Err(error) = self
            .stream
            .handle_frame(Instant::now(), frame, &mut |_| true)
        {
            tracing::warn!(session = %self.id, "data frame dropped: {error}");
        }
        while let Some(event) = self.stream.poll_event() {
            match event {
                Event::Stream(message) => self.on_stream_message(&message),
                Event::Control(message) if message.message_type == MessageType::ChannelClosed => {
                    tracing::info!(session = %self.id, "channel_closed on the data channel");
                    self.end(Ending::Terminated);
                }
                Event::Control(_) | Event::GaveUp => {}
            }
        }
    }

    fn on_stream_message(&mut self, message: &Message) {
        if self.ending.is_some() {
            return;
        }
        match message.payload_type {
            PayloadType::HandshakeResponse => self.on_handshake_response(&message.payload),
            PayloadType::Output => {
                let signal = message.payload.iter().find_map(|byte| match byte {
                    0x03 => Some(Signal::INT),
                    0x1c => Some(Signal::QUIT),
                    _ => None,
                });
                match (signal, &self.process) {
                    (Some(signal), Some(process)) => {
                        tracing::info!(session = %self.id, ?signal, "control byte: signal to the command");
                        process.signal(signal);
                    }
                    (Some(_), None) => {
                        tracing::debug!(session = %self.id, "control byte before the command started");
                    }
                    (None, _) => {}
                }
            }
            PayloadType::Flag => {
                if matches!(Flag::decode(&message.payload), Ok(Flag::TerminateSession)) {
                    tracing::info!(session = %self.id, "Flag TerminateSession");
                    self.end(Ending::Terminated);
                }
            }
            // Size and the rest: no PTY, nothing to do (§6.1).
            other => tracing::debug!(session = %self.id, "{other:?} payload ignored"),
        }
    }

    fn on_handshake_response(&mut self, payload: &[u8]) {
        if self.handshake_deadline.take().is_none() {
            tracing::debug!(session = %self.id, "HandshakeResponse after the handshake ignored");
            return;
        }
        let client_version = match super::check_handshake_response(payload) {
            Ok(response) => response.client_version,
            Err(output) => {
                self.end(Ending::Failed {
                    output,
                    terminating: false,
                });
                return;
            }
        };
        let message = if self.separate_requested
            && !version_above(&client_version, CLIENT_WITHOUT_SEPARATION)
        {
            UPDATE_PLUGIN_MESSAGE.to_owned()
        } else {
            String::new()
        };
        // The ack of the response is already queued: HandshakeComplete follows it.
        let complete = HandshakeComplete::new(self.handshake_started.elapsed(), message);
        self.stream.send(
            Instant::now(),
            PayloadType::HandshakeComplete,
            to_json_bytes(&complete).expect("numbers and strings serialize"),
        );
        tracing::info!(session = %self.id, client_version, "non-interactive command: handshake complete");
        self.start_process();
    }

    /// Runs the plan, or fails the session as the real agent does.
    fn start_process(&mut self) {
        let plan = match self.plan.take() {
            Some(Ok(plan)) => plan,
            Some(Err(PlanError { output, to_client })) => {
                if let Some(text) = to_client {
                    self.stream
                        .send(Instant::now(), PayloadType::StdErr, text.into_bytes());
                }
                self.end(Ending::Failed {
                    output,
                    terminating: false,
                });
                return;
            }
            None => return,
        };
        match start(&plan) {
            Ok(process) => {
                tracing::info!(session = %self.id, argv = ?plan.argv, mode = ?plan.mode, "command started");
                self.process = Some(process);
            }
            Err(error) => {
                tracing::info!(session = %self.id, "command not started: {error}");
                if plan.mode != OutputMode::Merged {
                    self.stream
                        .send(Instant::now(), PayloadType::ExitCode, ExitCode(1).encode());
                }
                self.stream.send(
                    Instant::now(),
                    PayloadType::StdErr,
                    error.clone().into_bytes(),
                );
                self.end(Ending::Failed {
                    output: format!("{ERROR_BANNER}Error occurred starting the command: {error}\n"),
                    terminating: true,
                });
            }
        }
    }

    /// A read from the process: sent, or held until the exit (merged output).
    fn on_output(&mut self, payload_type: PayloadType, bytes: Vec<u8>) {
        let merged = self.process.as_ref().is_some_and(|p| !p.separate);
        if merged && self.holding {
            self.held.extend_from_slice(&bytes);
            if self.held.len() > HELD_OUTPUT_LIMIT {
                self.holding = false;
                self.send_held();
            }
            return;
        }
        self.stream.send(Instant::now(), payload_type, bytes);
    }

    /// The held merged output, in payload-sized pieces.
    fn send_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for chunk in held.chunks(STREAM_DATA_PAYLOAD_SIZE) {
            self.stream
                .send(Instant::now(), PayloadType::Output, chunk.to_vec());
        }
    }

    /// Once the process is reaped and its pipes have ended: the held output or the exit code,
    /// then the drain.
    fn maybe_done(&mut self) {
        let Some(process) = &self.process else {
            return;
        };
        let (Some(code), 0) = (process.exit_code, process.open_pipes) else {
            return;
        };
        let separate = process.separate;
        self.send_held();
        if separate {
            self.stream.send(
                Instant::now(),
                PayloadType::ExitCode,
                ExitCode(code).encode(),
            );
        }
        self.process = None;
        self.end(Ending::Exited);
    }

    /// Kills what runs and starts the drain wait.
    fn end(&mut self, ending: Ending) {
        self.handshake_deadline = None;
        if let Some(process) = self.process.take() {
            process.kill_group();
        }
        if self.ending.is_none() {
            self.ending = Some((ending, drain_deadline()));
        }
    }

    /// Terminating when the command ended (or failed to start), then the socket drops.
    async fn finish(mut self) -> Outcome {
        let (ending, _) = self
            .ending
            .take()
            .unwrap_or((Ending::Terminated, drain_deadline()));
        let terminating = matches!(
            ending,
            Ending::Exited
                | Ending::Failed {
                    terminating: true,
                    ..
                }
        );
        if terminating {
            let state = self
                .sessions
                .session_state(self.id, ssm_protocol::payload::SessionState::Terminating);
            let _ = socket_send(&mut self.socket, WsMessage::Binary(state.into())).await;
        }
        drop(self.socket.take());
        match ending {
            Ending::Failed { output, .. } => Outcome::Failed(output),
            Ending::Exited | Ending::Terminated => Outcome::Success,
        }
    }

    /// Writes every frame the stream has queued; false (and no socket) when a write failed.
    async fn flush(&mut self) -> bool {
        while let Some(frame) = self.stream.poll_transmit() {
            if socket_send(&mut self.socket, WsMessage::Binary(frame.into()))
                .await
                .is_err()
            {
                self.socket = None;
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shlex_like_google_shlex() {
        let split = |s: &str| shlex_split(s).unwrap();
        assert_eq!(
            split("sh -c 'echo out; echo err >&2; exit 3'"),
            ["sh", "-c", "echo out; echo err >&2; exit 3"]
        );
        assert_eq!(split(r#"a "b \"c\" d" e\ f"#), ["a", r#"b "c" d"#, "e f"]);
        assert_eq!(split("echo a#b # comment\nnext"), ["echo", "a#b", "next"]);
        assert_eq!(split("''"), [""]);
        assert_eq!(split("  "), Vec::<String>::new());
        assert_eq!(
            shlex_split("echo 'open"),
            Err("EOF found when expecting closing quote")
        );
        assert_eq!(
            shlex_split("echo \\"),
            Err("EOF found after escape character")
        );
    }

    #[test]
    fn properties_as_the_real_agent_reads_them() {
        let config = CommandConfig::from_properties(
            &json!({"linux": {"commands": "echo hi", "runAsElevated": false,
                              "separateOutputStream": "true", "stdOutSeparatorPrefix": "OUT:",
                              "stdErrSeparatorPrefix": "ERR:"},
                    "windows": {"commands": "dir"}}),
            NON_INTERACTIVE_COMMANDS,
        )
        .unwrap();
        assert_eq!(config.commands, "echo hi");
        assert_eq!(
            config.output_mode(),
            Ok(OutputMode::Separate {
                stdout_prefix: "OUT:".to_owned(),
                stderr_prefix: "ERR:".to_owned()
            })
        );

        let blank = CommandConfig::from_properties(
            &json!({"linux": {"commands": "  "}}),
            INTERACTIVE_COMMANDS,
        );
        assert_eq!(
            blank,
            Err("Commands cannot be empty for session type InteractiveCommands".to_owned())
        );
        let wrong = CommandConfig::from_properties(
            &json!({"linux": {"commands": ["ls"]}}),
            NON_INTERACTIVE_COMMANDS,
        );
        assert_eq!(
            wrong,
            Err(
                "Invalid format in session properties map[linux:map[commands:[ls]]];\nerror \
                 json: cannot unmarshal array into Go struct field ShellProperties.linux.commands \
                 of type string"
                    .to_owned()
            )
        );
    }

    #[test]
    fn separate_output_values_and_prefixes() {
        let mode = |value: Value, prefix: &str| {
            CommandConfig {
                commands: "x".to_owned(),
                separate_output_stream: value,
                stdout_prefix: prefix.to_owned(),
                ..CommandConfig::default()
            }
            .output_mode()
        };
        assert_eq!(mode(Value::Null, ""), Ok(OutputMode::Merged));
        assert_eq!(mode(json!("false"), ""), Ok(OutputMode::Merged));
        assert_eq!(mode(json!(false), ""), Ok(OutputMode::Merged));
        assert!(matches!(
            mode(json!(true), "STD_OUT:\n"),
            Ok(OutputMode::Separate { .. })
        ));
        assert_eq!(
            mode(json!(true), "no spaces"),
            Err("invalid stdoutSeparatorPrefix no spaces".to_owned())
        );
        assert_eq!(
            mode(json!(true), &"x".repeat(31)),
            Err(format!("invalid stdoutSeparatorPrefix {}", "x".repeat(31)))
        );
        assert!(
            mode(json!("maybe"), "")
                .unwrap_err()
                .contains("invalid syntax")
        );
    }

    #[test]
    fn start_errors_in_go_words() {
        assert_eq!(look_path("no-such-cmd-4120"), None);
        assert!(look_path("sh").is_some_and(|path| path.is_absolute()));
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(
            go_start_error("/etc/passwd", &denied),
            "fork/exec /etc/passwd: permission denied"
        );
    }
}

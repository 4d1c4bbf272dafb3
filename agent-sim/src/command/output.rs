//! From what a script did to the strings the real agent reports: status, code, `output`,
//! `standardOutput`, `standardError`.
//!
//! Everything here is pure and works on bytes, because the agent (Go) measures and cuts strings
//! in bytes and only turns them into valid UTF-8 when it marshals the reply.
//! Sources in aws/amazon-ssm-agent:
//! `agent/framework/processor/executer/iohandler/iohandler.go` (`TruncateOutput`, `MarkAsFailed`,
//! `AppendError`, `String`), `agent/plugins/pluginutil/pluginutil.go` (`StringPrefix`),
//! `agent/plugins/pluginutil/pluginutil_unix.go` (`GetStatus`),
//! `agent/framework/runpluginutil/runpluginutil.go` (exit codes 168/169, the 24 000 cut) and
//! `agent/plugins/runscript/runscript.go` (`failed to run commands: …`).

use super::{PluginOutcome, PluginStatus};

/// Bytes of stdout the agent's executor keeps (`MaxStdoutLength`, §9.2).
pub(crate) const MAX_STDOUT_BYTES: usize = 24_000;
/// Bytes of stderr the agent's executor keeps (`MaxStderrLength`, §9.2).
pub(crate) const MAX_STDERR_BYTES: usize = 8_000;

/// `output` is stdout and stderr cut to this many bytes (`MaximumPluginOutputSize`).
const MAX_PLUGIN_OUTPUT: usize = 2_500;
/// Separates stdout from stderr in `output`, present only when stderr is not empty.
const ERROR_TITLE: &[u8] = b"\n----------ERROR-------\n";
/// Ends the stdout part of `output` when it was cut.
const OUTPUT_TRUNCATED: &[u8] = b"\n---Output truncated---";
/// Ends the stderr part of `output` when it was cut.
const ERROR_TRUNCATED: &[u8] = b"\n---Error truncated----";
/// `standardOutput` and `standardError` are cut to this many bytes (both use `MaxStdoutLength`).
const MAX_STANDARD_STREAM: usize = 24_000;
/// Ends a cut `standardOutput` / `standardError` (`OutputTruncatedSuffix`).
const STANDARD_STREAM_TRUNCATED: &[u8] = b"--output truncated--";

/// The code the agent reports when it killed the process group: 128 + SIGKILL.
const STOPPED_PREEMPTIVELY: i32 = 137;
/// "Succeed and skip the remaining steps" (`contracts.ExitWithSuccess`).
const EXIT_WITH_SUCCESS: i32 = 168;
/// "Fail and skip the remaining steps" (`contracts.ExitWithFailure`).
const EXIT_WITH_FAILURE: i32 = 169;

/// How a run ended, before the agent's reporting rules are applied.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The shell exited by itself with this status.
    Exited(i32),
    /// The shell was killed by this signal, not by us.
    Signaled(i32),
    /// `executionTimeout` passed and the process group was killed.
    TimedOut,
    /// The command was cancelled while running and the process group was killed.
    Cancelled,
    /// The command was cancelled before its script started (the plugin's `MarkAsCancelled`).
    CancelledBeforeStart,
    /// The run could not start; the text is the agent's error message after the
    /// `failed to run commands: ` prefix or a plugin-level message (see [`StartFailure`]).
    NotStarted(StartFailure),
}

/// Why a script never ran, with the message the agent puts into stderr.
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// Creating the orchestration directory failed (the path is reported).
    OrchestrationDir(String),
    /// Writing `_script.sh` failed.
    ScriptFile(String),
    /// Starting the shell failed, e.g. because the working directory does not exist.
    Spawn(String),
    /// The plugin properties could not be decoded (a parameter of the wrong JSON type); the
    /// text is the agent's whole message (`Invalid format in plugin properties …`).
    PluginInput(String),
}

/// What the process wrote, as kept by the executor (at most [`MAX_STDOUT_BYTES`] /
/// [`MAX_STDERR_BYTES`]).
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// Applies the agent's reporting rules to a finished run.
pub(crate) fn outcome(
    captured: Captured,
    ending: &Ending,
    start_date_time: String,
    end_date_time: String,
) -> PluginOutcome {
    let Captured { stdout, mut stderr } = captured;
    let (status, code) = status_and_code(ending);
    if let Some(message) = failure_message(ending) {
        // `MarkAsFailed` → `AppendError` writes into the still-open stderr stream, after the
        // process's own bytes and with no separator (the trace has `err\nfailed to run …`).
        stderr.extend_from_slice(message.as_bytes());
    }
    // `String()` drops stderr for code 168 before `output` is built.
    let output = if code == EXIT_WITH_SUCCESS {
        truncate_output(&stdout, b"", MAX_PLUGIN_OUTPUT)
    } else {
        truncate_output(&stdout, &stderr, MAX_PLUGIN_OUTPUT)
    };
    let (status, stdout, stderr) = apply_exit_control_codes(code, status, stdout, stderr);
    PluginOutcome {
        status,
        code,
        output: go_string(&output),
        standard_output: go_string(&string_prefix(&stdout, MAX_STANDARD_STREAM)),
        standard_error: go_string(&string_prefix(&stderr, MAX_STANDARD_STREAM)),
        start_date_time,
        end_date_time,
    }
}

/// Status and code as `GetStatus` and `MarkAsFailed` / `MarkAsCancelled` leave them.
fn status_and_code(ending: &Ending) -> (PluginStatus, i32) {
    match *ending {
        Ending::Exited(0) => (PluginStatus::Success, 0),
        Ending::Exited(code) => (PluginStatus::Failed, code),
        // Go's `ExitStatus()` is -1 for a signalled process, and `GetStatus(-1)` is Failed.
        Ending::Signaled(_) => (PluginStatus::Failed, -1),
        Ending::TimedOut => (PluginStatus::TimedOut, STOPPED_PREEMPTIVELY),
        Ending::Cancelled => (PluginStatus::Cancelled, STOPPED_PREEMPTIVELY),
        Ending::CancelledBeforeStart => (PluginStatus::Cancelled, 1),
        // `MarkAsFailed` turns code 0 into 1.
        Ending::NotStarted(_) => (PluginStatus::Failed, 1),
    }
}

/// The line `MarkAsFailed` appends to stderr, if any. Timeouts and cancels add none.
fn failure_message(ending: &Ending) -> Option<String> {
    match ending {
        Ending::Exited(0) | Ending::TimedOut | Ending::Cancelled | Ending::CancelledBeforeStart => {
            None
        }
        Ending::Exited(code) => Some(format!("failed to run commands: exit status {code}")),
        Ending::Signaled(signal) => Some(format!(
            "failed to run commands: signal: {}",
            go_signal_name(*signal)
        )),
        Ending::NotStarted(StartFailure::Spawn(error)) => {
            Some(format!("failed to run commands: {error}"))
        }
        Ending::NotStarted(StartFailure::ScriptFile(error)) => {
            Some(format!("failed to create script file. {error}"))
        }
        Ending::NotStarted(StartFailure::PluginInput(message)) => Some(message.clone()),
        Ending::NotStarted(StartFailure::OrchestrationDir(dir)) => Some(format!(
            "failed to create orchestrationDir directory, {dir}"
        )),
    }
}

/// The step-control exit codes: 168 reports Success with stderr cleared, 169 stays Failed;
/// both add a note to the streams (not to `output`, which was built before).
fn apply_exit_control_codes(
    code: i32,
    status: PluginStatus,
    mut stdout: Vec<u8>,
    mut stderr: Vec<u8>,
) -> (PluginStatus, Vec<u8>, Vec<u8>) {
    const SUCCESS_NOTE: &[u8] = b"\nStep exited with code 168. Therefore, marking step as succeeded. Further document steps will be skipped.";
    const FAILURE_NOTE: &[u8] = b"\nStep exited with code 169. Therefore, marking step as Failed. Further document steps will be skipped.";
    match code {
        EXIT_WITH_SUCCESS => {
            stdout.extend_from_slice(SUCCESS_NOTE);
            (PluginStatus::Success, stdout, Vec::new())
        }
        EXIT_WITH_FAILURE => {
            stdout.extend_from_slice(FAILURE_NOTE);
            stderr.extend_from_slice(FAILURE_NOTE);
            (status, stdout, stderr)
        }
        _ => (status, stdout, stderr),
    }
}

/// The agent's `TruncateOutput`: stdout, the error title when stderr is not empty, stderr, each
/// part cut with its marker so that the whole fits in `capacity` bytes.
pub(crate) fn truncate_output(stdout: &[u8], stderr: &[u8], capacity: usize) -> Vec<u8> {
    let title: &[u8] = if stderr.is_empty() { b"" } else { ERROR_TITLE };
    // The agent's sizes are Go ints; saturate rather than wrap for absurd capacities.
    let available = capacity.saturating_sub(title.len());
    let half = available / 2;
    let parts: [&[u8]; 5] = if stdout.len() + stderr.len() < available {
        [stdout, title, stderr, b"", b""]
    } else if stdout.len() > half && stderr.len() > half {
        let each = (available - ERROR_TRUNCATED.len() - OUTPUT_TRUNCATED.len()) / 2;
        [
            &stdout[..each],
            OUTPUT_TRUNCATED,
            title,
            &stderr[..each],
            ERROR_TRUNCATED,
        ]
    } else if stdout.len() < half {
        let keep = available - ERROR_TRUNCATED.len() - stdout.len();
        [stdout, title, &stderr[..keep], ERROR_TRUNCATED, b""]
    } else {
        let keep = available - OUTPUT_TRUNCATED.len() - stderr.len();
        [&stdout[..keep], OUTPUT_TRUNCATED, title, stderr, b""]
    };
    parts.concat()
}

/// The agent's `StringPrefix`: at `max` bytes **or more** the text is cut so that it ends with
/// `--output truncated--` and is exactly `max` bytes long.
pub(crate) fn string_prefix(input: &[u8], max: usize) -> Vec<u8> {
    if input.len() < max {
        return input.to_vec();
    }
    let keep = max.saturating_sub(STANDARD_STREAM_TRUNCATED.len());
    [&input[..keep], STANDARD_STREAM_TRUNCATED].concat()
}

/// Bytes to text the way Go's `encoding/json` does it: every byte that is not part of a valid
/// UTF-8 sequence becomes one U+FFFD. (Rust's `from_utf8_lossy` would merge a cut multi-byte
/// sequence into a single U+FFFD, which differs after a truncation that splits a character.)
pub(crate) fn go_string(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                return text;
            }
            Err(error) => {
                let (valid, invalid) = rest.split_at(error.valid_up_to());
                // `valid_up_to` marks a valid prefix, so this conversion cannot fail.
                text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                text.push(char::REPLACEMENT_CHARACTER);
                rest = &invalid[1..];
            }
        }
    }
}

/// Go's `syscall.Signal.String()` on Linux, as it appears in `signal: killed`.
fn go_signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        10 => "user defined signal 1",
        11 => "segmentation fault",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn markers_have_the_agents_lengths() {
        assert_eq!(ERROR_TITLE.len(), 24);
        assert_eq!(OUTPUT_TRUNCATED.len(), 23);
        assert_eq!(ERROR_TRUNCATED.len(), 23);
        assert_eq!(STANDARD_STREAM_TRUNCATED.len(), 20);
    }

    #[test]
    fn short_streams_are_joined_by_the_title_only_when_stderr_is_present() {
        assert_eq!(text(truncate_output(b"hi\n", b"", 2500)), "hi\n");
        assert_eq!(
            text(truncate_output(b"via-mds\n", b"e\n", 2500)),
            "via-mds\n\n----------ERROR-------\ne\n"
        );
        assert_eq!(
            text(truncate_output(b"", b"oops", 2500)),
            "\n----------ERROR-------\noops"
        );
    }

    #[test]
    fn the_fit_test_is_strict() {
        // 2476 bytes of payload do not fit in 2500 - 24; the stderr part is cut.
        let out = truncate_output(&[b'o'; 1000], &[b'e'; 1476], 2500);
        assert_eq!(out.len(), 2500);
        assert!(out.ends_with(ERROR_TRUNCATED));
        let fits = truncate_output(&[b'o'; 1000], &[b'e'; 1475], 2500);
        assert_eq!(fits.len(), 2499);
    }

    #[test]
    fn long_stdout_alone_is_cut_to_capacity() {
        let out = truncate_output(&[b'o'; 30_000], b"", 2500);
        let expected = format!("{}\n---Output truncated---", "o".repeat(2477));
        assert_eq!(text(out), expected);
    }

    #[test]
    fn long_stderr_after_short_stdout_cuts_stderr() {
        let out = truncate_output(b"ab\n", &[b'e'; 9000], 2500);
        let expected = format!(
            "ab\n\n----------ERROR-------\n{}\n---Error truncated----",
            "e".repeat(2476 - 23 - 3)
        );
        assert_eq!(text(out), expected);
    }

    #[test]
    fn both_long_cut_both_halves() {
        let out = truncate_output(&[b'o'; 5000], &[b'e'; 5000], 2500);
        let each = (2476 - 46) / 2;
        let expected = format!(
            "{}\n---Output truncated---\n----------ERROR-------\n{}\n---Error truncated----",
            "o".repeat(each),
            "e".repeat(each)
        );
        assert_eq!(text(out), expected);
    }

    #[test]
    fn long_stdout_with_short_stderr_cuts_stdout() {
        let out = truncate_output(&[b'o'; 5000], b"err\n", 2500);
        let expected = format!(
            "{}\n---Output truncated---\n----------ERROR-------\nerr\n",
            "o".repeat(2476 - 23 - 4)
        );
        assert_eq!(text(out), expected);
    }

    #[test]
    fn string_prefix_cuts_at_exactly_the_limit() {
        assert_eq!(string_prefix(&[b'x'; 23_999], 24_000).len(), 23_999);
        let cut = text(string_prefix(&[b'x'; 24_000], 24_000));
        assert_eq!(cut, format!("{}--output truncated--", "x".repeat(23_980)));
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte() {
        // "€" is E2 82 AC; cut after two bytes, Go yields two U+FFFD.
        assert_eq!(go_string(b"a\xE2\x82"), "a\u{FFFD}\u{FFFD}");
        assert_eq!(go_string(b"ok\xFFok"), "ok\u{FFFD}ok");
    }

    #[test]
    fn exit_168_reports_success_without_stderr() {
        let captured = Captured {
            stdout: b"done\n".to_vec(),
            stderr: b"warn\n".to_vec(),
        };
        let outcome = outcome(captured, &Ending::Exited(168), String::new(), String::new());
        assert_eq!(outcome.status, PluginStatus::Success);
        assert_eq!(outcome.code, 168);
        assert_eq!(outcome.output, "done\n");
        assert_eq!(
            outcome.standard_output,
            "done\n\nStep exited with code 168. Therefore, marking step as succeeded. Further document steps will be skipped."
        );
        assert_eq!(outcome.standard_error, "");
    }

    #[test]
    fn exit_169_stays_failed_and_notes_both_streams() {
        let captured = Captured {
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let outcome = outcome(captured, &Ending::Exited(169), String::new(), String::new());
        assert_eq!(outcome.status, PluginStatus::Failed);
        assert_eq!(outcome.code, 169);
        assert_eq!(
            outcome.output,
            "\n----------ERROR-------\nfailed to run commands: exit status 169"
        );
        let note = "\nStep exited with code 169. Therefore, marking step as Failed. Further document steps will be skipped.";
        assert_eq!(outcome.standard_output, note);
        assert_eq!(
            outcome.standard_error,
            format!("failed to run commands: exit status 169{note}")
        );
    }

    #[test]
    fn a_signal_reports_code_minus_one() {
        let captured = Captured {
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let outcome = outcome(
            captured,
            &Ending::Signaled(15),
            String::new(),
            String::new(),
        );
        assert_eq!((outcome.status, outcome.code), (PluginStatus::Failed, -1));
        assert_eq!(
            outcome.standard_error,
            "failed to run commands: signal: terminated"
        );
    }
}

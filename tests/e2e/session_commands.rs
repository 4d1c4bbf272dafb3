//! InteractiveCommands and NonInteractiveCommands sessions with the AWS CLI v1:
//! `aws ssm start-session --document-name AWS-StartInteractiveCommand` (or
//! AWS-StartNonInteractiveCommand, or an account's own Session document) runs `ssm-session` as
//! `session-manager-plugin` against the real emulator and a separate `ssm-agent-sim`. The tests
//! assert what a user sees: the command's output, the exit line and the exit status.
//!
//! A NonInteractiveCommands command line is split and executed without a shell, as the real
//! agent does, so shell syntax goes through `sh -c '…'`. An InteractiveCommands command runs
//! under `sh -c` on a PTY; the plugin relays keystrokes only once the command has printed
//! something (§4.3), so the interactive command greets first.

use std::process::Command;

use serde_json::json;
use ssm_e2e::session::{CliSession, Plugin, START_LINE, exit_line};
use ssm_e2e::{Aws, Fleet};

use crate::session_cli::on_terminal;

/// A Session document like AWS-StartNonInteractiveCommand with `separateOutputStream` on.
const SEPARATE_OUTPUT_DOCUMENT: &str = "Emu-NonInteractiveSeparate";

/// `aws ssm start-session --target <target> --document-name <document> --parameters
/// {"command":[<command>]}` with `plugin` first on `PATH`.
fn start_session(
    aws: &Aws,
    plugin: &Plugin,
    target: &str,
    document: &str,
    command: &str,
) -> Command {
    let parameters = json!({ "command": [command] }).to_string();
    plugin.start_session(
        aws,
        &[
            "--target",
            target,
            "--document-name",
            document,
            "--parameters",
            &parameters,
        ],
    )
}

/// AWS-StartInteractiveCommand: the command runs on a PTY; a line typed into the user's
/// terminal reaches it (the remote PTY echoes it, `head -n1` prints it back), and its exit
/// ends the session with the exit line and status 0.
#[test]
fn interactive_command_echoes_a_typed_line_and_ends_with_the_exit_line() {
    let fleet = Fleet::start(&Fleet::plain('a', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let mut client = on_terminal(
        &start_session(
            &aws,
            &plugin,
            &fleet.ids[0],
            "AWS-StartInteractiveCommand",
            "echo ready; head -n1",
        ),
        24,
        80,
    );

    client.wait_for_text("ready\n", 0);
    client.type_in("typed-line-4121\r");
    let session_id = client.session_id();
    client.wait_for_text(&exit_line(&session_id), 0);
    let (status, output) = client.finish();

    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert!(
        output.ends_with(&format!(
            "ready\ntyped-line-4121\ntyped-line-4121\n{}",
            exit_line(&session_id)
        )),
        "the echo, the line, the exit line: {output:?}"
    );
}

/// AWS-StartNonInteractiveCommand as AWS ships it (no separateOutputStream): stdout and
/// stderr arrive merged, no exit code is shown, and the CLI exits 0 whatever the command's
/// status, as with the real agent and plugin.
#[test]
fn non_interactive_command_prints_merged_output() {
    let fleet = Fleet::start(&Fleet::plain('b', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let mut client = CliSession::over_pipes(start_session(
        &aws,
        &plugin,
        &fleet.ids[0],
        "AWS-StartNonInteractiveCommand",
        "sh -c 'echo out; echo err >&2; exit 3'",
    ));
    let (status, output) = client.finish();
    let session_id = client.session_id();

    assert_eq!(
        output,
        format!(
            "{START_LINE}{session_id}\nout\nerr\n{}",
            exit_line(&session_id)
        )
    );
    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert_eq!(client.errors(), "", "stderr");
}

/// A Session document with `separateOutputStream` (§6.3): stdout, stderr and `EXIT_CODE: 3`
/// are printed, then the exit line. ssm-session exits 3 (session-manager-plugin would exit
/// 0), and the AWS CLI, whose `check_call` of the plugin fails, reports that and exits 255.
#[test]
fn non_interactive_command_with_separate_output_shows_the_exit_code() {
    let fleet = Fleet::start(&Fleet::plain('c', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let content = json!({
        "schemaVersion": "1.0",
        "description": "NonInteractiveCommands with separate stdout, stderr and exit code",
        "sessionType": "NonInteractiveCommands",
        "parameters": {"command": {"type": "String", "description": "The command"}},
        "properties": {"linux": {"commands": "{{ command }}", "runAsElevated": false,
                                 "separateOutputStream": "true",
                                 "stdOutSeparatorPrefix": "", "stdErrSeparatorPrefix": ""}}
    })
    .to_string();
    aws.ssm(&[
        "create-document",
        "--name",
        SEPARATE_OUTPUT_DOCUMENT,
        "--document-type",
        "Session",
        "--content",
        &content,
    ])
    .ok();
    let plugin = Plugin::install();
    let mut client = CliSession::over_pipes(start_session(
        &aws,
        &plugin,
        &fleet.ids[0],
        SEPARATE_OUTPUT_DOCUMENT,
        "sh -c 'echo out; echo err >&2; exit 3'",
    ));
    let (status, output) = client.finish();
    let session_id = client.session_id();

    // stdout and stderr are two pipes on the instance: either may come first.
    let body = output
        .strip_prefix(&format!("{START_LINE}{session_id}\n"))
        .and_then(|rest| rest.strip_suffix(&format!("EXIT_CODE: 3{}", exit_line(&session_id))))
        .unwrap_or_else(|| panic!("start line, output, exit code, exit line: {output:?}"));
    assert!(body == "out\nerr\n" || body == "err\nout\n", "{body:?}");
    assert_eq!(status.code(), Some(255), "output:\n{output}");
    assert!(
        client.errors().contains("returned non-zero exit status 3"),
        "stderr: {}",
        client.errors()
    );
}

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

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::json;
use ssm_e2e::{Aws, Fleet, process};
use tempfile::TempDir;

/// Bound of every poll (each step takes well under a second).
const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(20);

const START_LINE: &str = "\nStarting session with SessionId: ";

/// A Session document like AWS-StartNonInteractiveCommand with `separateOutputStream` on.
const SEPARATE_OUTPUT_DOCUMENT: &str = "Emu-NonInteractiveSeparate";

/// A directory holding `session-manager-plugin -> ssm-session`, for `PATH`.
fn plugin_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("can create a temporary directory");
    std::os::unix::fs::symlink(
        process::binary("ssm-session"),
        dir.path().join("session-manager-plugin"),
    )
    .expect("can link session-manager-plugin to ssm-session");
    dir
}

/// `aws ssm start-session --target <target> --document-name <document> --parameters
/// {"command":[<command>]}` with `plugin` first on `PATH`.
fn start_session(aws: &Aws, plugin: &Path, target: &str, document: &str, command: &str) -> Command {
    let parameters = json!({ "command": [command] }).to_string();
    let mut cli = aws.command(&[
        "ssm",
        "start-session",
        "--target",
        target,
        "--document-name",
        document,
        "--parameters",
        &parameters,
    ]);
    let mut dirs = vec![plugin.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    cli.env(
        "PATH",
        std::env::join_paths(dirs).expect("PATH entries join"),
    );
    cli
}

type Captured = Arc<Mutex<Vec<u8>>>;

fn capture(mut stream: impl Read + Send + 'static, into: Captured) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("no reader panics")
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// The CLI running a session, its output captured; killed on drop.
struct Client {
    child: Child,
    input: Option<File>,
    output: Captured,
    errors: Captured,
    readers: Vec<JoinHandle<()>>,
}

impl Client {
    /// stdin, stdout and stderr on pipes.
    fn over_pipes(mut command: Command) -> Client {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("can start the AWS CLI");
        let input = File::from(OwnedFd::from(child.stdin.take().expect("piped")));
        let (output, errors) = (Captured::default(), Captured::default());
        let readers = vec![
            capture(child.stdout.take().expect("piped"), output.clone()),
            capture(child.stderr.take().expect("piped"), errors.clone()),
        ];
        Client {
            child,
            input: Some(input),
            output,
            errors,
            readers,
        }
    }

    /// stdin, stdout and stderr on a new 24×80 terminal whose master the test holds.
    fn on_terminal(command: &Command) -> Client {
        let (pty, pts) = pty_process::blocking::open().expect("can open a PTY");
        pty.resize(pty_process::Size::new(24, 80))
            .expect("can size the PTY");
        let mut on_pty = pty_process::blocking::Command::new(command.get_program())
            .args(command.get_args())
            .env_clear();
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                on_pty = on_pty.env(key, value);
            }
        }
        let child = on_pty.spawn(pts).expect("can start the AWS CLI on a PTY");
        let master = File::from(OwnedFd::from(pty));
        let output = Captured::default();
        let reader = capture(
            master.try_clone().expect("can duplicate the PTY master"),
            output.clone(),
        );
        Client {
            child,
            input: Some(master),
            output,
            errors: Captured::default(),
            readers: vec![reader],
        }
    }

    /// Output so far, carriage returns removed.
    fn text(&self) -> String {
        let bytes = self.output.lock().expect("no reader panics").clone();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    fn errors(&self) -> String {
        String::from_utf8_lossy(&self.errors.lock().expect("no reader panics")).into_owned()
    }

    /// Polls until the output contains `needle`; panics with the output if it does not
    /// within `LIMIT`.
    fn wait_for_text(&mut self, needle: &str) {
        let deadline = Instant::now() + LIMIT;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {LIMIT:?}; output:\n{}\nstderr:\n{}",
                self.text(),
                self.errors()
            );
            thread::sleep(STEP);
        }
    }

    fn type_in(&mut self, text: &str) {
        let input = self.input.as_mut().expect("input is open");
        input.write_all(text.as_bytes()).expect("can write input");
        input.flush().expect("can flush input");
    }

    /// Waits (bounded) for the exit and the end of the output; returns the status and the
    /// output.
    fn finish(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("can wait for the CLI") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the CLI still runs after {LIMIT:?}; output:\n{}",
                self.text()
            );
            thread::sleep(STEP);
        };
        let deadline = Instant::now() + LIMIT;
        // A terminal's reader ends only when every holder of the slave is gone; ours is not.
        while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
            if self.readers.len() == 1 && self.text().ends_with(".\n\n") {
                break;
            }
            thread::sleep(STEP);
        }
        (status, self.text())
    }

    /// The session id of the start line.
    fn session_id(&self) -> String {
        let text = self.text();
        let (_, rest) = text.split_once(START_LINE).expect("the start line");
        rest.split_once('\n')
            .expect("a full start line")
            .0
            .to_owned()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.input = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "----- output of aws ssm start-session -----\n{}\n----- stderr -----\n{}",
                self.text(),
                self.errors()
            );
        }
    }
}

fn exit_line(session_id: &str) -> String {
    format!("\n\nExiting session with sessionId: {session_id}.\n\n")
}

/// AWS-StartInteractiveCommand: the command runs on a PTY; a line typed into the user's
/// terminal reaches it (the remote PTY echoes it, `head -n1` prints it back), and its exit
/// ends the session with the exit line and status 0.
#[test]
fn interactive_command_echoes_a_typed_line_and_ends_with_the_exit_line() {
    let fleet = Fleet::start(&Fleet::plain('a', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let plugin = plugin_dir();
    let mut client = Client::on_terminal(&start_session(
        &aws,
        plugin.path(),
        &fleet.ids[0],
        "AWS-StartInteractiveCommand",
        "echo ready; head -n1",
    ));

    client.wait_for_text("ready\n");
    client.type_in("typed-line-4121\r");
    let session_id = client.session_id();
    client.wait_for_text(&exit_line(&session_id));
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
    let plugin = plugin_dir();
    let mut client = Client::over_pipes(start_session(
        &aws,
        plugin.path(),
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
    let plugin = plugin_dir();
    let mut client = Client::over_pipes(start_session(
        &aws,
        plugin.path(),
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

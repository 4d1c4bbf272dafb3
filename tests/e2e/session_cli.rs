//! Session Manager with the AWS CLI v1: `aws ssm start-session` runs the reference client
//! `ssm-session`, installed as `session-manager-plugin` on `PATH` (a symlink in a temporary
//! directory), against the real emulator and a separate `ssm-agent-sim` whose shells run on real
//! PTYs. The tests type into the CLI only after the output they wait for has appeared, and assert
//! what a user sees: the start and exit lines, the shell's output and the exit status.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use ssm_e2e::Fleet;
use ssm_e2e::session::{CliSession, Plugin, START_LINE, exit_line, history};

/// How long a wait for a file or a process may take. A bound on a poll, not an assertion:
/// each step takes well under a second.
const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(20);

/// The rows and columns of the test's terminal.
const ROWS: u16 = 40;
const COLS: u16 = 120;

/// Runs `command` on a new `rows`×`cols` terminal: stdin, stdout and stderr are its slave side,
/// the test reads and writes its master. (Here, not in `ssm_e2e::session`: the PTY crate is a
/// dev-dependency.)
pub(crate) fn on_terminal(command: &Command, rows: u16, cols: u16) -> CliSession {
    let (pty, pts) = pty_process::blocking::open().expect("can open a PTY");
    pty.resize(pty_process::Size::new(rows, cols))
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
    CliSession::on_terminal(child, File::from(OwnedFd::from(pty)))
}

/// Whether process `pid` still runs (a zombie does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) S …`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// A shell over pipes, as `(…; printf …) | aws ssm start-session` has it: the shell evaluates
/// what is typed, `exit` ends the session with the exit line and status 0, and the History
/// lists the session Terminated.
#[test]
fn shell_over_pipes_evaluates_input_and_exits_cleanly() {
    let fleet = Fleet::start(&Fleet::plain('5', 1), &[], &[]);
    let target = &fleet.ids[0];
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let mut client = CliSession::over_pipes(plugin.start_session(&aws, &["--target", target]));

    let (session_id, prompt) = client.wait_for_shell();
    client.type_in("echo hello-from-$((6*7))\n");
    // The computed value, not the echo of what was typed: the shell evaluated it.
    let after = client.wait_for_text("hello-from-42\n", prompt);
    client.type_in("exit\n");
    client.wait_for_text(&exit_line(&session_id), after);
    let (status, stdout) = client.finish();

    assert!(status.success(), "exit status {status}; stdout:\n{stdout}");
    assert!(
        stdout.starts_with(&format!("{START_LINE}{session_id}\n")),
        "{stdout:?}"
    );
    assert!(stdout.ends_with(&exit_line(&session_id)), "{stdout:?}");
    assert_eq!(client.errors(), "", "stderr");

    let session = history(&aws, &session_id);
    assert_eq!(session["Status"], "Terminated", "{session:#}");
    assert_eq!(session["Target"], target.as_str(), "{session:#}");
    assert_eq!(
        session["DocumentName"], "SSM-SessionManagerRunShell",
        "{session:#}"
    );
}

/// A shell on a 40×120 terminal: the plugin's Size message sizes the remote PTY (`stty size`
/// there prints `40 120`), typed lines are evaluated, `exit` ends with the exit line and 0.
#[test]
fn shell_on_a_terminal_gets_its_size_and_exits_cleanly() {
    let fleet = Fleet::start(&Fleet::plain('6', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let mut client = on_terminal(
        &plugin.start_session(&aws, &["--target", &fleet.ids[0]]),
        ROWS,
        COLS,
    );

    let (session_id, prompt) = client.wait_for_shell();
    // Enter sends CR; the local terminal (ICRNL) hands the plugin a newline.
    client.type_in("stty size\r");
    let after = client.wait_for_text(&format!("\n{ROWS} {COLS}\n"), prompt);
    client.type_in("echo sum=$((40+2))\r");
    let after = client.wait_for_text("\nsum=42\n", after);
    client.type_in("exit\r");
    client.wait_for_text(&exit_line(&session_id), after);
    let (status, output) = client.finish();

    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert!(output.ends_with(&exit_line(&session_id)), "{output:?}");
}

/// TerminateSession from another CLI while the shell runs `sleep 1000`: the client prints the
/// exit line and exits 0, and the sleep on the instance is killed.
#[test]
fn terminate_session_ends_the_client_and_kills_the_shells_process() {
    let fleet = Fleet::start(&Fleet::plain('7', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let scratch = tempfile::tempdir().expect("can create a temporary directory");
    let pid_file: PathBuf = scratch.path().join("sleep.pid");
    let mut client =
        CliSession::over_pipes(plugin.start_session(&aws, &["--target", &fleet.ids[0]]));

    let (session_id, prompt) = client.wait_for_shell();
    // A foreground job of the session's shell, which writes its pid and becomes the sleep.
    client.type_in(&format!(
        "sh -c 'echo $$ > {}; exec sleep 1000'\n",
        pid_file.display()
    ));
    let deadline = Instant::now() + LIMIT;
    let pid: u32 = loop {
        let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if let Some(pid) = text.strip_suffix('\n').and_then(|p| p.parse().ok()) {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} not written within {LIMIT:?}; output:\n{}",
            pid_file.display(),
            client.text()
        );
        thread::sleep(STEP);
    };
    // The pid is the sleep's once `exec` is done.
    let deadline = Instant::now() + LIMIT;
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(
            Instant::now() < deadline && running(pid),
            "process {pid} is not a running sleep"
        );
        thread::sleep(STEP);
    }

    let out = aws.ssm(&["terminate-session", "--session-id", &session_id]);
    assert_eq!(out.json()["SessionId"], session_id.as_str());

    client.wait_for_text(&exit_line(&session_id), prompt);
    let (status, stdout) = client.finish();
    assert!(status.success(), "exit status {status}; stdout:\n{stdout}");
    assert!(stdout.ends_with(&exit_line(&session_id)), "{stdout:?}");

    let deadline = Instant::now() + LIMIT;
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "the session's sleep (pid {pid}) still runs {LIMIT:?} after TerminateSession"
        );
        thread::sleep(STEP);
    }
    let session = history(&aws, &session_id);
    assert_eq!(session["Status"], "Terminated", "{session:#}");
}

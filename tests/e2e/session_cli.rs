//! Session Manager with the AWS CLI v1: `aws ssm start-session` runs the reference client
//! `ssm-session`, installed as `session-manager-plugin` on `PATH` (a symlink in a temporary
//! directory), against the real emulator and a separate `ssm-agent-sim` whose shells run on real
//! PTYs. The tests type into the CLI only after the output they wait for has appeared, and assert
//! what a user sees: the start and exit lines, the shell's output and the exit status.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use ssm_e2e::{Aws, Fleet, process};
use tempfile::TempDir;

/// How long a wait for output, a file or an exit may take. A bound on a poll, not an assertion:
/// each step takes well under a second.
const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(20);

/// The rows and columns of the test's terminal.
const ROWS: u16 = 40;
const COLS: u16 = 120;

const START_LINE: &str = "\nStarting session with SessionId: ";

/// A directory holding `session-manager-plugin -> target/<profile>/ssm-session`, for `PATH`.
fn plugin_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("can create a temporary directory");
    std::os::unix::fs::symlink(
        process::binary("ssm-session"),
        dir.path().join("session-manager-plugin"),
    )
    .expect("can link session-manager-plugin to ssm-session");
    dir
}

/// The hermetic `aws ssm start-session --target <target>` with `plugin` first on `PATH`.
fn start_session(aws: &Aws, plugin: &Path, target: &str) -> Command {
    let mut command = aws.command(&["ssm", "start-session", "--target", target]);
    let mut dirs = vec![plugin.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    command.env(
        "PATH",
        std::env::join_paths(dirs).expect("PATH entries join"),
    );
    command
}

/// Bytes a reader thread appends to.
type Captured = Arc<Mutex<Vec<u8>>>;

/// Copies `stream` into `into` until it ends (EOF, or EIO from a PTY master whose terminal
/// has no process left).
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

/// The CLI running a session: input written by the test, output captured; killed on drop
/// (closing its input ends the plugin too: stdin EOF on a pipe, hangup on a terminal).
struct Client {
    child: Child,
    input: Option<File>,
    output: Captured,
    readers: Vec<JoinHandle<()>>,
}

impl Client {
    /// Runs `command` with stdin, stdout and stderr on pipes (stderr kept apart from stdout).
    fn over_pipes(mut command: Command) -> (Client, Captured) {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("can start the AWS CLI");
        let input = File::from(OwnedFd::from(child.stdin.take().expect("stdin is piped")));
        let output = Captured::default();
        let errors = Captured::default();
        let readers = vec![
            capture(child.stdout.take().expect("piped"), output.clone()),
            capture(child.stderr.take().expect("piped"), errors.clone()),
        ];
        let client = Client {
            child,
            input: Some(input),
            output,
            readers,
        };
        (client, errors)
    }

    /// Runs `command` on a new `ROWS`×`COLS` terminal: stdin, stdout and stderr are its slave
    /// side, the test reads and writes its master.
    fn on_terminal(command: &Command) -> Client {
        let (pty, pts) = pty_process::blocking::open().expect("can open a PTY");
        pty.resize(pty_process::Size::new(ROWS, COLS))
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
            readers: vec![reader],
        }
    }

    /// Everything captured so far, carriage returns removed (a terminal's ONLCR and the remote
    /// PTY add them).
    fn text(&self) -> String {
        let bytes = self.output.lock().expect("no reader panics").clone();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// Polls the output until `found` returns `Some`; panics with the output if it does not
    /// within `LIMIT` or the CLI exits first.
    fn wait_for<T>(&mut self, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + LIMIT;
        loop {
            let text = self.text();
            if let Some(value) = found(&text) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Output written just before the exit may still be in the pipe.
                thread::sleep(STEP);
                if let Some(value) = found(&self.text()) {
                    return value;
                }
                panic!("the CLI exited ({status}) before printing {what}; its output:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the CLI did not print {what} within {LIMIT:?}; its output:\n{text}"
            );
            thread::sleep(STEP);
        }
    }

    /// Polls the output until it contains `needle` after byte `from` of [`Client::text`];
    /// returns where the match ends.
    fn wait_for_text(&mut self, needle: &str, from: usize) -> usize {
        self.wait_for(&format!("{needle:?}"), |text| {
            let tail = text.get(from..)?;
            tail.find(needle).map(|at| from + at + needle.len())
        })
    }

    /// Writes `bytes` to the CLI's input.
    fn type_in(&mut self, bytes: &str) {
        let input = self.input.as_mut().expect("input is open");
        input.write_all(bytes.as_bytes()).expect("can write input");
        input.flush().expect("can flush input");
    }

    /// The session id of the start line, once the shell has printed something after it (its
    /// prompt), so that typed input reaches a running shell.
    fn wait_for_shell(&mut self) -> (String, usize) {
        self.wait_for("the start line and the shell's first output", |text| {
            let (_, rest) = text.split_once(START_LINE)?;
            let (id, after) = rest.split_once('\n')?;
            if after.is_empty() {
                return None;
            }
            Some((id.to_owned(), text.len() - after.len()))
        })
    }

    /// Waits (bounded) for the CLI to exit and for its output to end; returns the status and the
    /// whole output. Panics with the output if it does not exit.
    fn finish(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("can wait for the CLI") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the CLI still runs after {LIMIT:?}; its output:\n{}",
                self.text()
            );
            thread::sleep(STEP);
        };
        // The plugin is the CLI's child and has exited with it: the output streams end (a
        // PTY's once its last slave descriptor closes, which may take our side too).
        let deadline = Instant::now() + LIMIT;
        while !self.readers.iter().all(JoinHandle::is_finished) {
            if Instant::now() > deadline {
                // Our master keeps a terminal open; nothing more can arrive once every
                // process on it has exited.
                break;
            }
            thread::sleep(STEP);
        }
        (status, self.text())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.input = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "----- output of aws ssm start-session -----\n{}\n----- end of output -----",
                self.text()
            );
        }
    }
}

/// The exact line the plugin prints when the session ends normally.
fn exit_line(session_id: &str) -> String {
    format!("\n\nExiting session with sessionId: {session_id}.\n\n")
}

/// Session `session_id` from `aws ssm describe-sessions --state History`, once it is listed
/// (bounded poll: the emulator records the end as the agent reports it).
fn history(aws: &Aws, session_id: &str) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let sessions = aws.ssm(&["describe-sessions", "--state", "History"]).json();
        if let Some(session) = sessions["Sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["SessionId"] == session_id)
        {
            return session.clone();
        }
        assert!(
            Instant::now() < deadline,
            "session {session_id} not in the History after {LIMIT:?}: {sessions:#}"
        );
        thread::sleep(STEP * 5);
    }
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
    let plugin = plugin_dir();
    let (mut client, errors) = Client::over_pipes(start_session(&aws, plugin.path(), target));

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
    let errors = String::from_utf8_lossy(&errors.lock().unwrap()).into_owned();
    assert_eq!(errors, "", "stderr");

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
    let plugin = plugin_dir();
    let mut client = Client::on_terminal(&start_session(&aws, plugin.path(), &fleet.ids[0]));

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
    let plugin = plugin_dir();
    let scratch = tempfile::tempdir().expect("can create a temporary directory");
    let pid_file: PathBuf = scratch.path().join("sleep.pid");
    let (mut client, _errors) =
        Client::over_pipes(start_session(&aws, plugin.path(), &fleet.ids[0]));

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

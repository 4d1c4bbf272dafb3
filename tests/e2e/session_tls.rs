//! Session Manager over TLS with the AWS CLI v1: `ssm-emulator --tls-listen` serves the API on
//! `https://` and hands out `wss://` StreamUrls; `aws --endpoint-url https://… ssm start-session`
//! runs `ssm-session` as `session-manager-plugin`, which dials the `wss://` URL and trusts the
//! emulator's CA through `AWS_CA_BUNDLE` (the variable the CLI itself honours). The agents stay on
//! the plain port.
//!
//! `AWS_CA_BUNDLE`, `SSL_CERT_FILE` and `SSL_CERT_DIR` are set or removed explicitly for the CLI
//! and its plugin: the machine running the tests may set them globally.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ssm_e2e::{Aws, Fleet, process};
use tempfile::TempDir;

/// How long a wait for output or an exit may take. A bound on a poll, not an assertion.
const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(20);

const START_LINE: &str = "\nStarting session with SessionId: ";

/// The variables that name CA files, removed from every CLI run before one is set.
const CA_VARIABLES: [&str; 3] = ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// An emulator with one agent (on the plain port) and a TLS listener; the CA file it wrote and
/// the TLS address it announced.
struct TlsFleet {
    fleet: Fleet,
    https: String,
    ca_file: PathBuf,
    /// Holds the CA file and the plugin link.
    dir: TempDir,
}

impl TlsFleet {
    fn start(prefix: char) -> TlsFleet {
        let dir = tempfile::tempdir().expect("can create a temporary directory");
        let ca_file = dir.path().join("ca.pem");
        let ca = ca_file.to_str().expect("a UTF-8 temporary path");
        let fleet = Fleet::start(
            &Fleet::plain(prefix, 1),
            &["--tls-listen", "127.0.0.1:0", "--tls-ca-out", ca],
            &[],
        );
        // The emulator logs the TLS address before the plain one, which the harness has seen.
        let log = fleet.emu.log();
        let https = log
            .split_once("TLS on https://")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|addr| format!("https://{addr}"))
            .unwrap_or_else(|| panic!("no `TLS on https://…` line in the emulator's log:\n{log}"));
        std::os::unix::fs::symlink(
            process::binary("ssm-session"),
            dir.path().join("session-manager-plugin"),
        )
        .expect("can link session-manager-plugin to ssm-session");
        TlsFleet {
            fleet,
            https,
            ca_file,
            dir,
        }
    }

    /// `aws [global…] ssm start-session --target <the agent>` against the https endpoint, with
    /// the plugin first on PATH, `trust` as the only CA variable, over pipes.
    fn start_session(&self, global: &[&str], trust: Option<(&str, &Path)>) -> Client {
        let aws = Aws::new(&self.https);
        let mut args = global.to_vec();
        args.extend(["ssm", "start-session", "--target", &self.fleet.ids[0]]);
        let mut command = aws.command(&args);
        let mut dirs = vec![self.dir.path().to_path_buf()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        command.env(
            "PATH",
            std::env::join_paths(dirs).expect("PATH entries join"),
        );
        for variable in CA_VARIABLES {
            command.env_remove(variable);
        }
        if let Some((variable, file)) = trust {
            command.env(variable, file);
        }
        Client::start(command)
    }
}

/// Bytes a reader thread appends to.
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

/// The CLI running a session over pipes; killed on drop.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Captured,
    stderr: Captured,
    readers: Vec<JoinHandle<()>>,
}

impl Client {
    fn start(mut command: Command) -> Client {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("can start the AWS CLI");
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let readers = vec![
            capture(child.stdout.take().expect("piped"), stdout.clone()),
            capture(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Client {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn text(captured: &Captured) -> String {
        let bytes = captured.lock().expect("no reader panics").clone();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// Polls stdout until it contains `needle` after byte `from`; returns where the match ends.
    fn wait_for_text(&mut self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + LIMIT;
        loop {
            let text = Client::text(&self.stdout);
            if let Some(at) = text.get(from..).and_then(|tail| tail.find(needle)) {
                return from + at + needle.len();
            }
            assert!(
                Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none(),
                "the CLI did not print {needle:?} (or exited); stdout:\n{text}\nstderr:\n{}",
                Client::text(&self.stderr)
            );
            thread::sleep(STEP);
        }
    }

    /// The session id of the start line, once the shell has printed something after it.
    fn wait_for_shell(&mut self) -> (String, usize) {
        let end = self.wait_for_text(START_LINE, 0);
        let after_id = self.wait_for_text("\n", end);
        let text = Client::text(&self.stdout);
        let id = text[end..after_id - 1].to_owned();
        // The prompt, or any first output of the shell.
        let deadline = Instant::now() + LIMIT;
        while Client::text(&self.stdout).len() == after_id {
            assert!(Instant::now() < deadline, "no shell output: {text}");
            thread::sleep(STEP);
        }
        (id, after_id)
    }

    fn type_in(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).expect("can write input");
        stdin.flush().expect("can flush input");
    }

    /// Waits (bounded) for the exit and the end of the output: (status, stdout, stderr).
    fn finish(&mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("can wait for the CLI") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the CLI still runs after {LIMIT:?}; stdout:\n{}",
                Client::text(&self.stdout)
            );
            thread::sleep(STEP);
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("no reader panics");
        }
        (
            status,
            Client::text(&self.stdout),
            Client::text(&self.stderr),
        )
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With `AWS_CA_BUNDLE` naming the emulator's CA, a shell session runs over wss: the shell
/// evaluates what is typed and `exit` ends the session with the exit line and status 0.
#[test]
fn shell_over_wss_with_aws_ca_bundle() {
    let tls = TlsFleet::start('c');
    let mut client = tls.start_session(&[], Some(("AWS_CA_BUNDLE", &tls.ca_file)));

    let (session_id, prompt) = client.wait_for_shell();
    client.type_in("echo tls-$((6*7))\n");
    // The computed value, not the echo of what was typed: the shell evaluated it.
    let after = client.wait_for_text("tls-42\n", prompt);
    client.type_in("exit\n");
    let exit_line = format!("\n\nExiting session with sessionId: {session_id}.\n\n");
    client.wait_for_text(&exit_line, after);
    let (status, stdout, stderr) = client.finish();

    assert!(
        status.success(),
        "exit status {status}; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.starts_with(&format!("{START_LINE}{session_id}\n")),
        "{stdout:?}"
    );
    assert!(stdout.ends_with(&exit_line), "{stdout:?}");
    assert_eq!(stderr, "", "stderr");
}

/// With no CA variable (the CLI told not to verify, so that only the plugin checks), the plugin
/// refuses the emulator's certificate and says what to set.
#[test]
fn without_the_ca_the_plugin_says_what_to_set() {
    let tls = TlsFleet::start('d');
    let mut client = tls.start_session(&["--no-verify-ssl"], None);
    let (status, stdout, stderr) = client.finish();

    assert!(!status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let host = tls.https.trim_start_matches("https://");
    let expected = format!("Cannot perform start session: dialing wss://{host}/v1/data-channel/");
    assert!(stdout.contains(&expected), "{stdout:?}");
    assert!(
        stdout.contains(
            ": the TLS certificate of 127.0.0.1 is not trusted (UnknownIssuer): \
             set AWS_CA_BUNDLE (or SSL_CERT_FILE) to a PEM file holding the CA \
             that signed it (for ssm-emulator: the file written by --tls-ca-out)\n"
        ),
        "{stdout:?}"
    );
}

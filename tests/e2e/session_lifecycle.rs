//! A session's life as Session Manager preferences shape it, through the AWS CLI v1 with
//! `ssm-session` as `session-manager-plugin`, the real emulator and a separate `ssm-agent-sim`:
//! preferences saved with `update-document`, the idle timeout reached by moving the emulator's
//! clock (`POST /_emulator/clock`, no waiting), and the History's `OutputUrl` serving the
//! transcript. TerminateSession from another process is `session_cli`'s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ssm_e2e::{Aws, Fleet, process};
use tempfile::TempDir;

/// A bound on each poll (output, exit, the History). Not an assertion: each step takes well
/// under a second.
const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(20);

const START_LINE: &str = "\nStarting session with SessionId: ";

/// `aws ssm start-session --target <target>` over pipes with `ssm-session` as the plugin:
/// stdout captured, stdin open; killed on drop.
struct Client {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    /// Holds the `session-manager-plugin` link while the CLI runs.
    _plugin: TempDir,
}

impl Client {
    fn start(aws: &Aws, target: &str) -> Client {
        let plugin = tempfile::tempdir().expect("can create a temporary directory");
        std::os::unix::fs::symlink(
            process::binary("ssm-session"),
            plugin.path().join("session-manager-plugin"),
        )
        .expect("can link session-manager-plugin to ssm-session");
        let mut dirs = vec![plugin.path().to_path_buf()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut command: Command = aws.command(&["ssm", "start-session", "--target", target]);
        let mut child = command
            .env(
                "PATH",
                std::env::join_paths(dirs).expect("PATH entries join"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("can start the AWS CLI");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stdout.take().expect("stdout is piped");
        let into = stdout.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().expect("no panic").extend_from_slice(&buf[..n]);
            }
        });
        Client {
            child,
            stdout,
            _plugin: plugin,
        }
    }

    /// The output so far, carriage returns removed (the remote PTY adds them).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("no panic")).replace('\r', "")
    }

    /// Polls the output until `found` gives a value; panics with the output if it does not
    /// within `LIMIT`.
    fn wait_for<T>(&self, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + LIMIT;
        loop {
            let text = self.text();
            if let Some(value) = found(&text) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the CLI did not print {what} within {LIMIT:?}; its output:\n{text}"
            );
            thread::sleep(STEP);
        }
    }

    fn type_in(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(text.as_bytes()).expect("can write input");
        stdin.flush().expect("can flush input");
    }

    /// Waits (bounded) for the CLI to exit; returns whether it exited 0.
    fn exit_success(&mut self) -> bool {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("can wait for the CLI") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "the CLI still runs after {LIMIT:?}; output:\n{}",
                self.text()
            );
            thread::sleep(STEP);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request to the emulator; returns the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("can connect to the emulator");
    stream
        .set_read_timeout(Some(LIMIT))
        .expect("can set a timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("can send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("can read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    // `Connection: close` and no chunking from axum for these small bodies.
    (status, raw[split + 4..].to_vec())
}

/// The session in `aws ssm describe-sessions --state History`, once it is listed.
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
            "{session_id} not in the History after {LIMIT:?}: {sessions:#}"
        );
        thread::sleep(STEP * 5);
    }
}

/// idleSessionTimeout 1 and an S3 bucket saved with `aws ssm update-document`; a shell prints
/// `idle-42`; moving the emulator's clock 61 s ends the session: the client prints the plugin's
/// line `SessionId: <id> : Your session timed out due to inactivity and has been terminated.`
/// and exits 0; `describe-sessions --state History` lists it Terminated with an `OutputUrl`
/// whose transcript holds `idle-42`.
#[test]
fn idle_timeout_ends_the_client_and_the_history_links_the_transcript() {
    let fleet = Fleet::start(&Fleet::plain('8', 1), &[], &[]);
    let aws = fleet.emu.aws();
    let preferences = json!({
        "schemaVersion": "1.0",
        "description": "Document to hold regional settings for Session Manager",
        "sessionType": "Standard_Stream",
        "inputs": {"s3BucketName": "audit-bucket", "s3KeyPrefix": "shells",
                   "s3EncryptionEnabled": false, "cloudWatchLogGroupName": "",
                   "cloudWatchStreamingEnabled": false, "cloudWatchEncryptionEnabled": false,
                   "idleSessionTimeout": "1", "maxSessionDuration": "", "kmsKeyId": "",
                   "runAsEnabled": false, "runAsDefaultUser": "",
                   "shellProfile": {"windows": "", "linux": ""}}
    });
    let file = fleet.emu.dir().join("preferences.json");
    std::fs::write(&file, preferences.to_string()).expect("can write the preferences");
    let updated = aws
        .ssm(&[
            "update-document",
            "--name",
            "SSM-SessionManagerRunShell",
            "--content",
            &format!("file://{}", file.display()),
            "--document-version",
            "$LATEST",
        ])
        .json();
    assert_eq!(
        updated["DocumentDescription"]["LatestVersion"], "2",
        "{updated:#}"
    );

    let mut client = Client::start(&aws, &fleet.ids[0]);
    let session_id = client.wait_for("the start line and the prompt", |text| {
        let (_, rest) = text.split_once(START_LINE)?;
        let (id, after) = rest.split_once('\n')?;
        (!after.is_empty()).then(|| id.to_owned())
    });
    client.type_in("echo idle-$((6*7))\n");
    client.wait_for("idle-42", |text| text.contains("idle-42\n").then_some(()));

    let (status, body) = http(
        fleet.emu.addr(),
        "POST",
        "/_emulator/clock",
        r#"{"advanceSeconds": 61}"#,
    );
    let moved: Value = serde_json::from_slice(&body).expect("the clock answers JSON");
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["expiredSessions"], json!([session_id]), "{moved}");

    let line = format!(
        "\n\nSessionId: {session_id} : Your session timed out due to inactivity and has been \
         terminated.\n\n"
    );
    client.wait_for("the timeout line", |text| {
        text.ends_with(&line).then_some(())
    });
    assert!(client.exit_success(), "output:\n{}", client.text());

    let session = history(&aws, &session_id);
    assert_eq!(session["Status"], "Terminated", "{session:#}");
    let url = session["OutputUrl"]["S3OutputUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("no S3OutputUrl: {session:#}"));
    let expected = format!(
        "{}/_emulator/s3/audit-bucket/shells/{session_id}.log",
        fleet.emu.endpoint()
    );
    assert_eq!(url, expected);
    let (status, transcript) = http(
        fleet.emu.addr(),
        "GET",
        url.strip_prefix(&fleet.emu.endpoint())
            .expect("on the emulator"),
        "",
    );
    let transcript = String::from_utf8_lossy(&transcript);
    assert_eq!(status, 200, "{transcript}");
    assert!(transcript.contains("idle-42"), "{transcript:?}");
}

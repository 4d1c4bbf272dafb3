//! Session Manager through the AWS CLI for the port-forwarding and SSH tests: `ssm-session`
//! installed as `session-manager-plugin`, a bounded wait for a session's place in the History,
//! the local HTTP server a tunnel reaches, and the small tools those tests share (free ports,
//! reproducible random bytes, SHA-256 with coreutils, SIGINT to a process group), and
//! [`CliSession`], `aws ssm start-session` over pipes or on a terminal with its output captured.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::clients::{Aws, client_bin};
use crate::process::{self, COMMAND_LIMIT};

/// A bound on the polls of this module (the History, a server's readiness). Not an assertion:
/// each takes well under a second.
pub const POLL_LIMIT: Duration = Duration::from_secs(60);

/// How long the polls of this module wait between two looks.
const POLL_STEP: Duration = Duration::from_millis(50);

/// How long a read or write on a test's TCP connection may block before it counts as a hang
/// (a guard, not an assertion: a multi-megabyte transfer through the tunnel takes seconds).
pub const IO_LIMIT: Duration = Duration::from_secs(120);

/// A directory holding `session-manager-plugin -> target/<profile>/ssm-session`, to put first
/// on `PATH` so that the AWS CLI runs the reference client.
#[derive(Debug)]
pub struct Plugin {
    dir: TempDir,
}

impl Plugin {
    /// Links the built `ssm-session` as `session-manager-plugin` in a new temporary directory.
    pub fn install() -> Plugin {
        let dir = tempfile::tempdir().expect("can create a temporary directory");
        std::os::unix::fs::symlink(
            process::binary("ssm-session"),
            dir.path().join("session-manager-plugin"),
        )
        .expect("can link session-manager-plugin to ssm-session");
        Plugin { dir }
    }

    /// `PATH` with the plugin's directory first, then the directory of the AWS CLI (so that a
    /// `ProxyCommand` finds `aws`), then the test's own `PATH`.
    pub fn path(&self) -> OsString {
        let aws = client_bin("aws");
        let mut dirs: Vec<PathBuf> = vec![self.dir.path().to_path_buf()];
        dirs.extend(aws.parent().map(Path::to_path_buf));
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).expect("PATH entries join")
    }

    /// The hermetic `aws --endpoint-url … ssm start-session <args…>` with the plugin on `PATH`,
    /// not started.
    pub fn start_session(&self, aws: &Aws, args: &[&str]) -> Command {
        let mut all = vec!["ssm", "start-session"];
        all.extend_from_slice(args);
        let mut command = aws.command(&all);
        command.env("PATH", self.path());
        command
    }

    /// The environment of [`Plugin::start_session`] plus `AWS_ENDPOINT_URL`, for a program that
    /// runs `aws ssm start-session` itself exactly as a tutorial writes it, without
    /// `--endpoint-url` (ssh's `ProxyCommand`).
    pub fn environment(&self, aws: &Aws, endpoint: &str) -> Vec<(OsString, OsString)> {
        let template = self.start_session(aws, &[]);
        let mut environment: Vec<(OsString, OsString)> = template
            .get_envs()
            .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
            .collect();
        environment.push(("AWS_ENDPOINT_URL".into(), endpoint.into()));
        environment
    }
}

/// The line the plugin prints before a session's id.
pub const START_LINE: &str = "\nStarting session with SessionId: ";

/// How long [`CliSession`] waits between two looks at the output.
const OUTPUT_STEP: Duration = Duration::from_millis(20);

/// How long [`CliSession::wait_for`] keeps looking at the output once the CLI has exited, for
/// what was still in the pipe or on the terminal.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// The exact lines the plugin prints when the session ends normally.
pub fn exit_line(session_id: &str) -> String {
    format!("\n\nExiting session with sessionId: {session_id}.\n\n")
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

/// The AWS CLI running a session (e.g. from [`Plugin::start_session`]): input written by the
/// test, output captured; killed on drop (closing its input ends the plugin too: stdin EOF on a
/// pipe, hangup on a terminal). Every wait is bounded by [`POLL_LIMIT`].
pub struct CliSession {
    /// The AWS CLI process.
    pub child: Child,
    input: Option<File>,
    output: Captured,
    errors: Captured,
    readers: Vec<JoinHandle<()>>,
}

impl CliSession {
    /// Runs `command` with stdin, stdout and stderr on pipes (stderr kept apart from stdout).
    pub fn over_pipes(mut command: Command) -> CliSession {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("can start the AWS CLI");
        let input = File::from(OwnedFd::from(child.stdin.take().expect("stdin is piped")));
        let (output, errors) = (Captured::default(), Captured::default());
        let readers = vec![
            capture(child.stdout.take().expect("piped"), output.clone()),
            capture(child.stderr.take().expect("piped"), errors.clone()),
        ];
        CliSession {
            child,
            input: Some(input),
            output,
            errors,
            readers,
        }
    }

    /// The CLI `child`, already started on a terminal whose master side is `master`: the test
    /// reads and writes the master. (The crate that opens the PTY is a dev-dependency: see
    /// `session_cli::on_terminal`.)
    pub fn on_terminal(child: Child, master: File) -> CliSession {
        let output = Captured::default();
        let reader = capture(
            master.try_clone().expect("can duplicate the PTY master"),
            output.clone(),
        );
        CliSession {
            child,
            input: Some(master),
            output,
            errors: Captured::default(),
            readers: vec![reader],
        }
    }

    /// Everything captured so far, carriage returns removed (a terminal's ONLCR and the remote
    /// PTY add them).
    pub fn text(&self) -> String {
        let bytes = self.output.lock().expect("no reader panics").clone();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// Stderr so far (empty on a terminal, where it is part of [`CliSession::text`]).
    pub fn errors(&self) -> String {
        let bytes = self.errors.lock().expect("no reader panics").clone();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// Polls the output until `found` returns `Some`; panics with the output if it does not
    /// within [`POLL_LIMIT`] or the CLI exits first.
    pub fn wait_for<T>(&mut self, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + POLL_LIMIT;
        loop {
            let text = self.text();
            if let Some(value) = found(&text) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Output written just before the exit may still be in the pipe: look again
                // until the readers are done (a terminal's may never be: bounded).
                let grace = Instant::now() + EXIT_GRACE;
                loop {
                    let finished = self.readers.iter().all(JoinHandle::is_finished);
                    if let Some(value) = found(&self.text()) {
                        return value;
                    }
                    if finished || Instant::now() > grace {
                        break;
                    }
                    thread::sleep(OUTPUT_STEP);
                }
                panic!(
                    "the CLI exited ({status}) before printing {what}; its output:\n{text}\nstderr:\n{}",
                    self.errors()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the CLI did not print {what} within {POLL_LIMIT:?}; its output:\n{text}\nstderr:\n{}",
                self.errors()
            );
            thread::sleep(OUTPUT_STEP);
        }
    }

    /// Polls the output until it contains `needle` after byte `from` of [`CliSession::text`];
    /// returns where the match ends.
    pub fn wait_for_text(&mut self, needle: &str, from: usize) -> usize {
        self.wait_for(&format!("{needle:?}"), |text| {
            let tail = text.get(from..)?;
            tail.find(needle).map(|at| from + at + needle.len())
        })
    }

    /// Writes `text` to the CLI's input.
    pub fn type_in(&mut self, text: &str) {
        let input = self.input.as_mut().expect("input is open");
        input.write_all(text.as_bytes()).expect("can write input");
        input.flush().expect("can flush input");
    }

    /// The session id of the start line, once the shell has printed something after it (its
    /// prompt), so that typed input reaches a running shell; and where that output starts.
    pub fn wait_for_shell(&mut self) -> (String, usize) {
        self.wait_for("the start line and the shell's first output", |text| {
            let (_, rest) = text.split_once(START_LINE)?;
            let (id, after) = rest.split_once('\n')?;
            if after.is_empty() {
                return None;
            }
            Some((id.to_owned(), text.len() - after.len()))
        })
    }

    /// The session id of the start line, which must have been printed.
    pub fn session_id(&self) -> String {
        let text = self.text();
        let (_, rest) = text.split_once(START_LINE).expect("the start line");
        rest.split_once('\n')
            .expect("a full start line")
            .0
            .to_owned()
    }

    /// Waits for the CLI to exit; returns its status. Panics with the output if it does not.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + POLL_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("can wait for the CLI") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the CLI still runs after {POLL_LIMIT:?}; its output:\n{}",
                self.text()
            );
            thread::sleep(OUTPUT_STEP);
        }
    }

    /// Waits for the CLI to exit and for its output to end; returns the status and the whole
    /// output.
    pub fn finish(&mut self) -> (ExitStatus, String) {
        let status = self.wait_exit();
        // The plugin is the CLI's child and has exited with it: the output streams end (a
        // PTY's once its last slave descriptor closes, which may take our side too).
        let deadline = Instant::now() + POLL_LIMIT;
        while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
            // On a terminal the exit line is the last thing printed.
            if self.readers.len() == 1 && self.text().ends_with(".\n\n") {
                break;
            }
            thread::sleep(OUTPUT_STEP);
        }
        (status, self.text())
    }
}

impl Drop for CliSession {
    fn drop(&mut self) {
        self.input = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "----- output of aws ssm start-session -----\n{}\n----- stderr -----\n{}\n----- end -----",
                self.text(),
                self.errors()
            );
        }
    }
}

/// Session `session_id` from `aws ssm describe-sessions --state History`, once it is listed
/// (a bounded poll: the emulator records the end as the agent or the client reports it).
pub fn history(aws: &Aws, session_id: &str) -> Value {
    let deadline = Instant::now() + POLL_LIMIT;
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
            "session {session_id} not in the History after {POLL_LIMIT:?}: {sessions:#}"
        );
        thread::sleep(POLL_STEP);
    }
}

/// Sends SIGINT to the process group `pgid`, as Ctrl-C on a terminal does to its foreground
/// job: the AWS CLI ignores it while the plugin runs, the plugin ends the session. (The `kill`
/// utility, because the harness links no libc bindings.)
pub fn interrupt_group(pgid: u32) {
    let out = process::run(
        {
            let mut kill = Command::new("kill");
            kill.args(["-INT", "--", &format!("-{pgid}")]);
            kill
        },
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "kill -INT -{pgid}: {out:?}");
}

/// A loopback port nobody listened on a moment ago. For programs that must be told a port
/// (sshd's `Port`, the plugin's `localPortNumber`); a test that can read the port a program
/// chose itself should do that instead.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("can bind a loopback port")
        .port()
}

/// `len` bytes from a xorshift generator seeded with `seed`: incompressible, different for each
/// seed, the same on every run.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The SHA-256 of `bytes` in hex, from coreutils' `sha256sum`.
pub fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("can run sha256sum (coreutils)");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = bytes.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("sha256sum runs");
    writer
        .join()
        .expect("the writer does not panic")
        .expect("can write to sha256sum");
    assert!(out.status.success(), "sha256sum failed: {out:?}");
    first_word(&out.stdout)
}

/// The SHA-256 of the file at `path` in hex, from coreutils' `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let mut command = Command::new("sha256sum");
    command.arg(path);
    let out = process::run(command, COMMAND_LIMIT);
    assert_eq!(out.code, 0, "sha256sum {}: {out:?}", path.display());
    first_word(out.stdout.as_bytes())
}

fn first_word(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// An HTTP/1.0 server on a loopback port, serving `bodies[n]` at `/n` (404 elsewhere), one
/// thread per connection; stopped on drop. The destination of the port-forwarding tests, as a
/// web server on the instance is in the tutorials.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `127.0.0.1:0` and serves until dropped.
    pub fn start(bodies: Vec<Vec<u8>>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("can bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(bodies);
        let acceptor = {
            let stop = stop.clone();
            thread::spawn(move || {
                for connection in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(connection) = connection {
                        let bodies = bodies.clone();
                        thread::spawn(move || {
                            let _ = serve(connection, &bodies);
                        });
                    }
                }
            })
        };
        HttpServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept so that the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Answers one request on `connection` and closes it (HTTP/1.0: the body ends with the
/// connection).
fn serve(mut connection: TcpStream, bodies: &[Vec<u8>]) -> io::Result<()> {
    connection.set_read_timeout(Some(IO_LIMIT))?;
    let head = read_head(&mut connection)?;
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or_default();
    let body = path
        .strip_prefix('/')
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| bodies.get(n));
    match body {
        Some(body) => {
            let header = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            );
            connection.write_all(header.as_bytes())?;
            connection.write_all(body)?;
        }
        None => connection.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
    }
    connection.shutdown(Shutdown::Write)
}

/// Reads up to and including the blank line that ends an HTTP request head.
fn read_head(connection: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if connection.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// What an HTTP/1.0 GET got: the status code and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code of the status line.
    pub status: u16,
    /// The body: `Content-Length` bytes, or everything to the end of the connection.
    pub body: Vec<u8>,
    /// The `Content-Length` header, if any.
    pub content_length: Option<usize>,
}

/// `GET <path> HTTP/1.0` on a new connection to `127.0.0.1:port`, as a browser or `curl` does
/// through the tunnel. The body is read to its `Content-Length` (in basic port forwarding the
/// destination's close does not reach the local connection, §7.3), else to the end of the
/// connection; the connection is closed when this returns.
pub fn http_get(port: u16, path: &str) -> io::Result<HttpReply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    stream.set_write_timeout(Some(IO_LIMIT))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\n\r\n").as_bytes())?;
    let head = read_head(&mut stream)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP status line: {status_line:?}"),
            )
        })?;
    let content_length: Option<usize> = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok());
    let mut body = Vec::new();
    match content_length {
        Some(len) => {
            body.resize(len, 0);
            stream.read_exact(&mut body).map_err(|e| {
                io::Error::new(e.kind(), format!("reading a body of {len} bytes: {e}"))
            })?;
        }
        None => {
            stream.read_to_end(&mut body)?;
        }
    }
    Ok(HttpReply {
        status,
        body,
        content_length,
    })
}

/// Polls until `check` returns a value, for at most [`POLL_LIMIT`]; panics with `what` and the
/// text `context` gives at that moment if it never does.
pub fn poll<T>(
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + POLL_LIMIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {POLL_LIMIT:?}\n{}",
            context()
        );
        thread::sleep(POLL_STEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_reproducible_and_differ_by_seed() {
        assert_eq!(random_bytes(1, 1000), random_bytes(1, 1000));
        assert_ne!(random_bytes(1, 64), random_bytes(2, 64));
        assert_eq!(random_bytes(3, 13).len(), 13);
    }

    #[test]
    fn sha256_is_coreutils_digest() {
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn http_server_serves_bodies_by_index() {
        let server = HttpServer::start(vec![b"zero".to_vec(), random_bytes(7, 100_000)]);
        let zero = http_get(server.port(), "/0").unwrap();
        assert_eq!((zero.status, zero.body.as_slice()), (200, &b"zero"[..]));
        let one = http_get(server.port(), "/1").unwrap();
        assert_eq!(one.body, random_bytes(7, 100_000));
        assert_eq!(one.content_length, Some(100_000));
        assert_eq!(http_get(server.port(), "/2").unwrap().status, 404);
    }
}

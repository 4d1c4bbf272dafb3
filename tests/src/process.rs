//! Child processes for the tests: where the workspace's binaries are, a child whose output is
//! captured and which dies with its handle, and one-shot commands with a bound on their run.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

/// How long a one-shot command (a CLI call, a Python script, `ssm-emulator --help`) may run
/// before the harness kills it. A guard against hangs, not an assertion: a healthy call takes
/// about a second.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The path of the workspace binary `name`, from the same profile as the running test:
/// `target/<profile>/<name>`, the parent of the test executable's `deps/` directory.
///
/// Panics with what to run if the binary is missing or older than its sources.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable sits in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} does not exist: build the binaries first with `cargo build --workspace --bins` \
         (scripts/test-all does this before running the tests)",
        path.display()
    );
    check_fresh(&path, name);
    path
}

/// Fails if a source of the binary `name` changed after it was built: the tests would run
/// yesterday's binary and report confusing failures.
fn check_fresh(path: &Path, name: &str) {
    let crate_dir = match name {
        "ssm-emulator" => "emulator",
        "ssm-agent-sim" => "agent-sim",
        "ssm-session" => "conformance",
        _ => return,
    };
    let root = workspace_root();
    let built = modified(path);
    let sources = [
        root.join(crate_dir).join("src"),
        root.join(crate_dir).join("Cargo.toml"),
        root.join("protocol").join("src"),
    ];
    if let Some((newest, file)) = sources.iter().filter_map(|p| newest_file(p)).max() {
        assert!(
            built >= newest,
            "{} is older than {}: rebuild the binaries with `cargo build --workspace --bins` \
             before `cargo test -p ssm-e2e`",
            path.display(),
            file.display()
        );
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The most recently modified file under `path` (or `path` itself if it is a file).
fn newest_file(path: &Path) -> Option<(SystemTime, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some((meta.modified().ok()?, path.to_path_buf()));
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| newest_file(&entry.ok()?.path()))
        .max()
}

/// The captured output of a child: both streams, line by line, in arrival order.
type Log = Arc<Mutex<String>>;

/// A long-running child process (the emulator, agent-sim). Its stdout and stderr are captured
/// into one log, which is printed if the test panics while the child is alive. The child is
/// killed when this is dropped.
#[derive(Debug)]
pub struct ChildProcess {
    /// What it is, for messages: the binary's name and arguments.
    name: String,
    child: Child,
    log: Log,
    /// Lines of stdout as they arrive, until the harness stops listening.
    stdout_lines: Option<mpsc::Receiver<String>>,
}

impl ChildProcess {
    /// Spawns `command` with both output streams captured.
    pub fn spawn(mut command: Command) -> ChildProcess {
        let name = describe(&command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Log::default();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        capture(stdout, log.clone(), Some(tx));
        capture(stderr, log.clone(), None);
        ChildProcess {
            name,
            child,
            log,
            stdout_lines: Some(rx),
        }
    }

    /// The binary and arguments, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote so far, stdout and stderr interleaved by line.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The exit status, if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Reads stdout lines as they arrive until `found` returns a value, for at most `limit`.
    /// Panics with the child's output if the child exits or the limit passes first.
    pub fn wait_for_stdout<T>(
        &mut self,
        limit: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let lines = self
            .stdout_lines
            .as_ref()
            .expect("stdout lines are still being listened to");
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(value) = found(&line) {
                        return value;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "{} did not print what the harness waits for within {limit:?}; \
                         its output:\n{}",
                        self.name,
                        self.log()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "{} exited ({status:?}) before printing what the harness waits for; \
                         its output:\n{}",
                        self.name,
                        self.log()
                    )
                }
            }
        }
    }

    /// Stops listening to stdout line by line (the log keeps everything).
    pub fn stop_listening(&mut self) {
        self.stdout_lines = None;
    }

    /// Kills the child (SIGKILL: it gets no chance to say goodbye) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit, polling for at most `limit`; kills it and panics if it does
    /// not.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let step = Duration::from_millis(20);
        for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
            if let Some(status) = self.exited() {
                return status;
            }
            thread::sleep(step);
        }
        let _ = self.child.kill();
        panic!(
            "{} still running after {limit:?}; killed it. Its output:\n{}",
            self.name,
            self.log()
        )
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "----- output of {} (pid {}) -----\n{}----- end of output -----",
                self.name,
                self.child.id(),
                self.log()
            );
        }
    }
}

/// Copies `stream` into `log` line by line on a thread of its own, and each line to `lines` while
/// someone listens.
fn capture(stream: impl Read + Send + 'static, log: Log, lines: Option<mpsc::Sender<String>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                    }
                    if let Some(tx) = &lines {
                        let _ = tx.send(line.trim_end().to_owned());
                    }
                }
            }
        }
    });
}

/// What a one-shot command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code (`-1` if a signal ended it).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Runs `command` to completion with stdin closed, killing it (and panicking) if it runs longer
/// than `limit`.
pub fn run(mut command: Command, limit: Duration) -> Finished {
    let name = describe(&command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let step = Duration::from_millis(10);
    let mut status = None;
    for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
        if let Some(s) = child.try_wait().expect("can wait for the child") {
            status = Some(s);
            break;
        }
        thread::sleep(step);
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{name} still running after {limit:?}; killed it");
    };
    Finished {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

fn read_all(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// `program arg arg…`, for messages.
fn describe(command: &Command) -> String {
    let mut s = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

//! The script as a real process: spawn, capture, time out, cancel, kill the whole group.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::output::{Captured, Ending, MAX_STDERR_BYTES, MAX_STDOUT_BYTES, StartFailure};

/// The interpreter. The agent runs `sh` from `PATH`; a fixed path keeps agent-sim independent of
/// the environment it was started with.
pub(crate) const SHELL: &str = "/bin/sh";

/// After killing the group, how long to keep reading for output that was already in the pipes.
/// The pipes reach end-of-file as soon as the killed processes are gone; this bound only matters
/// when a process left the group (`setsid`) while holding a pipe open.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// Serialises writing a script file against spawning processes.
///
/// A child forked while another task still holds a just-written script open for writing inherits
/// that descriptor until it execs, and an `execve` of the script in that window fails with
/// `ETXTBSY`. The descriptor table is process-wide, so the lock is too: writers take it
/// exclusively while the file is open, spawners take it shared.
static SCRIPT_FD_LOCK: RwLock<()> = RwLock::new(());

/// What to run and under which limits.
pub(crate) struct ScriptRun<'a> {
    pub(crate) script: &'a Path,
    pub(crate) working_dir: &'a Path,
    pub(crate) env: &'a [(String, String)],
    pub(crate) timeout: Duration,
}

/// Writes the script the way the agent's `CreateScriptFile` does: the commands joined with `\n`
/// plus a final `\n`, mode 0700.
pub(crate) fn write_script(path: &Path, commands: &[String]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let mut text = commands.join("\n");
    text.push('\n');
    let _exclusive = SCRIPT_FD_LOCK
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(path)?;
    file.write_all(text.as_bytes())
    // `file` closes here, before the lock is released.
}

/// Runs the script to its end, its timeout or its cancellation, and returns what it wrote.
pub(crate) async fn run(spec: &ScriptRun<'_>, cancel: &CancellationToken) -> (Captured, Ending) {
    let mut captured = Captured {
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let mut child = match spawn(spec) {
        Ok(child) => child,
        Err(error) => {
            let failure = StartFailure::Spawn(go_start_error(&error));
            return (captured, Ending::NotStarted(failure));
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let waited = tokio::select! {
        status = wait_and_drain(&mut child, &mut stdout, &mut stderr, &mut captured) => Ok(status),
        () = tokio::time::sleep(spec.timeout) => Err(Ending::TimedOut),
        () = cancel.cancelled() => Err(Ending::Cancelled),
    };
    let ending = match waited {
        Ok(Ok(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(signal)) => Ending::Signaled(signal),
            (None, None) => Ending::Exited(1),
        },
        // Waiting on our own child failed: nothing sensible to report but a failure.
        Ok(Err(error)) => Ending::NotStarted(StartFailure::Spawn(error.to_string())),
        Err(stopped) => {
            kill_group(&mut child).await;
            let drains = drain_both(&mut stdout, &mut stderr, &mut captured);
            // Elapsing only means a process outside the group still holds a pipe.
            let _ = tokio::time::timeout(DRAIN_AFTER_KILL, drains).await;
            stopped
        }
    };
    (captured, ending)
}

/// Starts `sh -c <script>` in its own process group.
///
/// `-c <path>` is what the agent runs (`ShellArgs = ["-c"]` plus the script path): the shell
/// execs the file, so a `#!` line picks another interpreter as on a real instance, and a file
/// without one fails `execve` with `ENOEXEC` and is read by `sh` itself. Either way the commands
/// run as one script, so `&&`, `||`, redirections, heredocs, `exit N` and multi-line constructs
/// behave as on the real agent, and `$0` is the script path that appears in error messages.
fn spawn(spec: &ScriptRun<'_>) -> io::Result<Child> {
    let mut command = Command::new(SHELL);
    command
        .arg("-c")
        .arg(spec.script)
        .current_dir(spec.working_dir)
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The agent's `Setpgid: true`: the script and everything it starts share one group
        // that a timeout or cancel kills at once.
        .process_group(0)
        // Should this future be dropped, at least the shell does not outlive it.
        .kill_on_drop(true);
    let _shared = SCRIPT_FD_LOCK
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    command.spawn()
}

/// Waits like Go's `cmd.Wait()` with non-file writers: for the shell to exit **and** for both
/// pipes to close, so a background child that keeps stdout open keeps the command running.
async fn wait_and_drain(
    child: &mut Child,
    stdout: &mut Option<tokio::process::ChildStdout>,
    stderr: &mut Option<tokio::process::ChildStderr>,
    captured: &mut Captured,
) -> io::Result<std::process::ExitStatus> {
    let (status, ()) = tokio::join!(child.wait(), drain_both(stdout, stderr, captured));
    status
}

/// Reads both pipes to end-of-file, keeping what the agent's executor keeps.
async fn drain_both(
    stdout: &mut Option<tokio::process::ChildStdout>,
    stderr: &mut Option<tokio::process::ChildStderr>,
    captured: &mut Captured,
) {
    let Captured {
        stdout: out,
        stderr: err,
    } = captured;
    tokio::join!(
        drain(stdout.as_mut().map(|pipe| pipe as _), out, MAX_STDOUT_BYTES),
        drain(stderr.as_mut().map(|pipe| pipe as _), err, MAX_STDERR_BYTES),
    );
}

/// Reads `pipe` to end-of-file, keeping its first `limit` bytes and discarding the rest, so a
/// chatty process never blocks on a full pipe. Cancel-safe: bytes already read stay in `kept`.
async fn drain(
    pipe: Option<&mut (dyn AsyncRead + Unpin + Send)>,
    kept: &mut Vec<u8>,
    limit: usize,
) {
    let Some(pipe) = pipe else { return };
    let mut chunk = [0_u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..read.min(room)]);
            }
        }
    }
}

/// Sends SIGKILL to the script's process group, as the agent does (`kill(-pid, SIGKILL)`), and
/// reaps the shell.
async fn kill_group(child: &mut Child) {
    if let Some(group) = child.id().and_then(|id| Pid::from_raw(id.try_into().ok()?)) {
        // ESRCH only means the group is already gone.
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
    let _ = child.wait().await;
}

/// An error from starting the shell as Go's `exec.Cmd.Start` words it. The agent sets
/// `SysProcAttr`, so Go skips its `chdir` pre-check and a missing working directory surfaces as
/// `fork/exec <shell>: no such file or directory`.
fn go_start_error(error: &io::Error) -> String {
    let reason = match error.raw_os_error() {
        Some(code) if code == rustix::io::Errno::NOENT.raw_os_error() => {
            "no such file or directory".to_owned()
        }
        Some(code) if code == rustix::io::Errno::ACCESS.raw_os_error() => {
            "permission denied".to_owned()
        }
        Some(code) if code == rustix::io::Errno::NOTDIR.raw_os_error() => {
            "not a directory".to_owned()
        }
        _ => error.to_string(),
    };
    format!("fork/exec {SHELL}: {reason}")
}

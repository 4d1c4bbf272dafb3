//! `ssm-session`, the reference client, as a child process started the way the AWS CLI starts
//! session-manager-plugin (spec §8.1): StartSession's answer, the region, `StartSession`, a
//! profile, the request and the endpoint on its command line, so it can call ResumeSession on
//! its own when its websocket drops (§8.2, §8.3).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

use super::Context;

/// The client's binary name.
pub const SESSION_CLIENT: &str = "ssm-session";

/// Where `ssm-session` is: beside this executable (a workspace build or an install puts them
/// together), else on `PATH`.
pub fn find_session_client() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(SESSION_CLIENT)))
        .filter(|path| path.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(SESSION_CLIENT))
                .find(|path| path.is_file())
        })
    })
}

/// Bytes a child wrote so far, and a wake-up for whoever waits on more.
#[derive(Debug, Default)]
struct Captured {
    bytes: Mutex<Vec<u8>>,
    more: Notify,
}

/// A running `ssm-session`.
#[derive(Debug)]
pub struct Plugin {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
    /// The session it runs.
    pub session_id: String,
}

impl Plugin {
    /// Calls StartSession for `target` (with `document` and its `parameters`, if given) and
    /// starts the client on the answer.
    pub async fn start(
        ctx: &Context,
        target: &str,
        document: Option<(&str, Value)>,
    ) -> Result<Plugin, String> {
        let mut request = json!({ "Target": target });
        if let Some((name, parameters)) = document {
            request["DocumentName"] = json!(name);
            request["Parameters"] = parameters;
        }
        let answer = ctx
            .client
            .call("StartSession", &request)
            .await?
            .ok()
            .map_err(|e| format!("StartSession: {e}"))?;
        let session_id = answer["SessionId"].as_str().unwrap_or_default().to_owned();
        let mut child = spawn(&ctx.session_client, ctx, &answer, &request)?;
        let stdout = Arc::new(Captured::default());
        let stderr = Arc::new(Captured::default());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(capture(out, stdout.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(capture(err, stderr.clone()));
        }
        Ok(Plugin {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            session_id,
        })
    }

    /// Everything it printed on stdout so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stdout.bytes)).into_owned()
    }

    /// Everything it printed on stderr so far.
    pub fn errors(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr.bytes)).into_owned()
    }

    /// Waits (at most `limit`) until `found` finds something in the output from byte `from`
    /// on; `None` if it never did.
    pub async fn wait_for<T>(
        &self,
        from: usize,
        limit: Duration,
        found: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let look = async {
            loop {
                // Registered before the output is read, so no write in between is missed.
                let mut more = std::pin::pin!(self.stdout.more.notified());
                more.as_mut().enable();
                let text = self.output();
                if let Some(hit) = text.get(from..).and_then(&found) {
                    return hit;
                }
                more.await;
            }
        };
        tokio::time::timeout(limit, look).await.ok()
    }

    /// How many bytes it printed so far (a mark for [`Plugin::wait_for`]).
    pub fn mark(&self) -> usize {
        lock(&self.stdout.bytes).len()
    }

    /// Types `line` and a newline.
    pub async fn type_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin is closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("cannot type into ssm-session: {e}"))?;
        stdin.flush().await.map_err(|e| e.to_string())
    }

    /// Sends SIGINT, as Ctrl-C in the terminal that runs it.
    pub fn interrupt(&self) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
    }

    /// Waits (at most `limit`) for it to exit; its exit code, `None` if it did not exit (it
    /// is then killed) or died of a signal.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                None
            }
        }
    }
}

fn spawn(binary: &Path, ctx: &Context, answer: &Value, request: &Value) -> Result<Child, String> {
    Command::new(binary)
        .arg(answer.to_string())
        .arg(&ctx.region)
        .arg("StartSession")
        .arg("")
        .arg(request.to_string())
        .arg(ctx.client.endpoint())
        // The emulator accepts any credentials; the client signs its API calls with these.
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

async fn capture(mut from: impl AsyncRead + Unpin, into: Arc<Captured>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                lock(&into.bytes).extend_from_slice(&buf[..n]);
                into.more.notify_waiters();
            }
        }
    }
    into.more.notify_waiters();
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

//! The shell of a `Standard_Stream` session: who it runs as, and `sh` on a real PTY. An
//! `InteractiveCommands` session runs its command the same way, as `sh -c <command>` on a PTY
//! ([`ShellSpec::command`], [`super::commands`]).
//!
//! The PTY comes from pty-process 0.5 with its `async` feature rather than portable-pty 0.9:
//! its master is a tokio `AsyncRead`/`AsyncWrite` (no blocking thread per session, which a fleet
//! of agents would multiply) and it is built on rustix and tokio, both already in the graph, so
//! it adds one small crate to a cold build where portable-pty brings nix, filedescriptor,
//! serial2 and more. The child is spawned through `tokio::process` as a session leader with the
//! PTY as its controlling terminal, so its process group id is its pid.

use std::path::{Path, PathBuf};

use pty_process::{OwnedReadPty, OwnedWritePty};
use rustix::process::{Pid, Signal};
use ssm_protocol::payload::AgentTaskPayload;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio::sync::mpsc;

/// The real agent's Output when the run-as user has uid or gid 0
/// (`agent-shell-runas-root.jsonl`).
pub(crate) const INVALID_UID_AND_GID: &str =
    "\n----------ERROR-------\nUnable to start command: invalid uid and gid\n";

/// `TERM` of every session process: the real agent sets it because the PTY's default (`linux`)
/// leaves vi's screen uncleared (A:agent/session/shell/shell_unix.go).
pub(crate) const TERM: &str = "xterm-256color";
/// `LANG` when agent-sim's own environment has none: Session Manager carries UTF-8 only, and
/// the real agent sets it for the same reason.
pub(crate) const DEFAULT_LANG: &str = "C.UTF-8";

/// Size of a new session's PTY until the client sends its own.
const INITIAL_ROWS: u16 = 24;
const INITIAL_COLS: u16 = 80;

/// How a session's shell is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellSpec {
    /// Another user to switch to (agent-sim runs as root), or `None` for agent-sim's own user.
    pub(crate) run_as: Option<User>,
    /// The shell's working directory.
    pub(crate) working_dir: PathBuf,
    /// `inputs.shellProfile.linux`: written to the shell before anything else.
    pub(crate) profile: String,
    /// `InteractiveCommands`: the command line, run as `sh -c <command>` instead of an
    /// interactive `sh` (`StartCommandExecutor`, A:agent/session/shell/shell_unix.go).
    pub(crate) command: Option<String>,
}

/// A local account, from `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: PathBuf,
}

/// Decides the session user as the real agent does (§9.1), within what agent-sim can do.
///
/// - `runAsEnabled: false`: the real agent uses `ssm-user`; agent-sim runs the shell as itself.
/// - `runAsEnabled: true`: `RunAsUser` if not empty, else `runAsDefaultUser`. Empty means
///   agent-sim's own user. A user with uid or gid 0 fails with the real agent's Output. The
///   current user runs as is; another user needs agent-sim to run as root, otherwise the
///   session fails with an Output that says so.
///
/// `Err` is the `agent_task_complete` Output of the failed session.
pub(crate) fn resolve(
    task: &AgentTaskPayload,
    default_working_dir: &Path,
) -> Result<ShellSpec, String> {
    let inputs = &task.document_content.inputs;
    let requested = if !inputs.run_as_enabled {
        ""
    } else if !task.run_as_user.is_empty() {
        task.run_as_user.as_str()
    } else {
        inputs.run_as_default_user.as_str()
    };
    let own = ShellSpec {
        run_as: None,
        working_dir: default_working_dir.to_path_buf(),
        profile: inputs.shell_profile.linux.clone(),
        command: None,
    };
    if requested.is_empty() {
        return Ok(own);
    }
    let accounts = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let euid = rustix::process::geteuid().as_raw();
    let current_name = passwd_entries(&accounts)
        .find(|user| user.uid == euid)
        .map(|user| user.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let user = passwd_entries(&accounts).find(|user| user.name == requested);
    match user {
        Some(user) if user.uid == 0 || user.gid == 0 => Err(INVALID_UID_AND_GID.to_owned()),
        _ if requested == current_name => Ok(own),
        Some(user) if euid == 0 => {
            let working_dir = if user.home.is_dir() {
                user.home.clone()
            } else {
                PathBuf::from("/")
            };
            Ok(ShellSpec {
                run_as: Some(user),
                working_dir,
                ..own
            })
        }
        Some(_) => Err(format!(
            "\n----------ERROR-------\nUnable to start command: agent-sim runs as {current_name} \
             (uid {euid}), not as root, so it cannot start a session as {requested}; request \
             {current_name} or no run-as user\n"
        )),
        None => Err(format!(
            "\n----------ERROR-------\nUnable to start command: user {requested} does not exist\n"
        )),
    }
}

/// The entries of an `/etc/passwd` text; malformed lines are skipped.
fn passwd_entries(text: &str) -> impl Iterator<Item = User> + '_ {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 {
            return None;
        }
        Some(User {
            name: fields[0].to_owned(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: PathBuf::from(fields[5]),
        })
    })
}

/// What goes to the PTY, in order.
#[derive(Debug)]
pub(crate) enum PtyInput {
    /// Keystrokes (Output payloads of the client).
    Data(Vec<u8>),
    /// A new terminal size.
    Resize { rows: u16, cols: u16 },
}

/// A running shell. Dropping it kills the shell's process group unless the shell has exited.
#[derive(Debug)]
pub(crate) struct Shell {
    /// The PTY master's read half.
    pub(crate) output: OwnedReadPty,
    /// To the task that owns the write half (writes must not stall the session loop).
    pub(crate) input: mpsc::UnboundedSender<PtyInput>,
    /// The `sh` process.
    pub(crate) child: Child,
    /// Set once `child` has been reaped: its pid may then be reused.
    pub(crate) exited: bool,
}

impl Shell {
    /// Starts `sh` (or `sh -c <command>`) on a new 24×80 PTY and writes the shell profile to
    /// it.
    pub(crate) fn spawn(spec: &ShellSpec) -> Result<Shell, pty_process::Error> {
        let (pty, pts) = pty_process::open()?;
        pty.resize(pty_process::Size::new(INITIAL_ROWS, INITIAL_COLS))?;
        let mut command = pty_process::Command::new("sh")
            .current_dir(&spec.working_dir)
            .env("TERM", TERM)
            .kill_on_drop(true);
        if std::env::var_os("LANG").is_none() {
            command = command.env("LANG", DEFAULT_LANG);
        }
        if let Some(line) = &spec.command {
            command = command.arg("-c").arg(line);
        }
        if let Some(user) = &spec.run_as {
            command = command
                .uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        let child = command.spawn(pts)?;
        let (output, writer) = pty.into_split();
        let (input, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_pty(writer, queue));
        if !spec.profile.is_empty() {
            let mut profile = spec.profile.clone().into_bytes();
            profile.push(b'\n');
            let _ = input.send(PtyInput::Data(profile));
        }
        Ok(Shell {
            output,
            input,
            child,
            exited: false,
        })
    }

    /// SIGKILL to the shell's process group, as the agent does on TerminateSession.
    pub(crate) fn kill_group(&self) {
        if self.exited {
            return;
        }
        if let Some(group) = self
            .child
            .id()
            .and_then(|id| Pid::from_raw(id.try_into().ok()?))
        {
            // ESRCH only means the group is already gone.
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Owns the PTY's write half until the session drops its sender.
async fn write_pty(mut writer: OwnedWritePty, mut queue: mpsc::UnboundedReceiver<PtyInput>) {
    while let Some(input) = queue.recv().await {
        match input {
            PtyInput::Data(bytes) => {
                if writer.write_all(&bytes).await.is_err() {
                    // The shell is gone (EIO); the session loop sees it on the read side.
                    return;
                }
            }
            PtyInput::Resize { rows, cols } => {
                let _ = writer.resize(pty_process::Size::new(rows, cols));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(run_as_enabled: bool, default_user: &str, run_as_user: &str) -> AgentTaskPayload {
        let mut task = AgentTaskPayload {
            run_as_user: run_as_user.to_owned(),
            ..AgentTaskPayload::default()
        };
        task.document_content.inputs.run_as_enabled = run_as_enabled;
        task.document_content.inputs.run_as_default_user = default_user.to_owned();
        task
    }

    #[test]
    fn root_fails_like_the_real_agent() {
        let result = resolve(&task(true, "root", ""), Path::new("/"));
        assert_eq!(result, Err(INVALID_UID_AND_GID.to_owned()));
        let result = resolve(&task(true, "nobody", "root"), Path::new("/"));
        assert_eq!(
            result,
            Err(INVALID_UID_AND_GID.to_owned()),
            "RunAsUser wins"
        );
    }

    #[test]
    fn no_run_as_user_runs_as_agent_sim_itself() {
        for task in [task(false, "root", "root"), task(true, "", "")] {
            let spec = resolve(&task, Path::new("/tmp")).unwrap();
            assert_eq!(spec.run_as, None);
            assert_eq!(spec.working_dir, PathBuf::from("/tmp"));
        }
    }

    #[test]
    fn unknown_user_fails_with_a_clear_output() {
        let error = resolve(&task(true, "no-such-user-xyz", ""), Path::new("/")).unwrap_err();
        assert!(
            error.contains("user no-such-user-xyz does not exist"),
            "{error}"
        );
    }

    #[test]
    fn passwd_lines() {
        let users: Vec<User> =
            passwd_entries("root:x:0:0:root:/root:/bin/sh\nbad\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
                .collect();
        assert_eq!(users.len(), 2);
        assert_eq!((users[1].uid, users[1].gid), (65534, 65534));
        assert_eq!(users[1].home, PathBuf::from("/nonexistent"));
    }
}

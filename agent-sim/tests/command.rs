//! The Run Command executor against real `/bin/sh` processes.
//!
//! Expected strings come from the recorded real-agent replies where a trace has them
//! (`agent-runcommand-mgs.jsonl`, `agent-runcommand-mds.jsonl`, `agent-cancel.jsonl`), and from
//! the agent's reporting rules otherwise. No assertion depends on how long anything took.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ssm_agent_sim::command::{
    CommandId, CommandJob, ExecutionTimeout, Executor, ExecutorConfig, PluginOutcome, PluginStatus,
};
use ssm_agent_sim::limits::MAX_CONCURRENT_COMMANDS;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// One simulated agent with its own state directory and default working directory.
struct Agent {
    executor: Executor,
    state: TempDir,
    home: TempDir,
}

fn agent(max_concurrent_commands: usize) -> Agent {
    let state = TempDir::new().unwrap();
    let home = TempDir::new().unwrap();
    let executor = Executor::new(ExecutorConfig {
        state_dir: state.path().to_path_buf(),
        default_working_dir: home.path().to_path_buf(),
        max_concurrent_commands,
    });
    Agent {
        executor,
        state,
        home,
    }
}

fn job(commands: &[&str]) -> CommandJob {
    CommandJob {
        commands: commands.iter().map(|line| (*line).to_owned()).collect(),
        working_directory: String::new(),
        execution_timeout: ExecutionTimeout::DEFAULT,
        env: Vec::new(),
    }
}

fn id(n: u32) -> CommandId {
    CommandId::parse(&format!("{n:08}-4444-5555-6666-777777777777")).unwrap()
}

async fn run(agent: &Agent, job: &CommandJob) -> PluginOutcome {
    agent
        .executor
        .run(&id(1), job, &CancellationToken::new())
        .await
}

/// Runs `commands` and compares status, code, `output`, `standardOutput` and `standardError`.
async fn check(
    commands: &[&str],
    status: PluginStatus,
    code: i32,
    stdout: &str,
    stderr: &str,
    output: &str,
) {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let outcome = run(&agent, &job(commands)).await;
    assert_eq!(
        (
            outcome.status,
            outcome.code,
            outcome.standard_output.as_str(),
            outcome.standard_error.as_str()
        ),
        (status, code, stdout, stderr),
        "{commands:?}"
    );
    assert_eq!(outcome.output, output, "{commands:?}");
}

/// Waits for a file the script writes; the test's only way of knowing how far a script got.
async fn wait_for_file(path: &Path) -> String {
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// True when `pid` no longer runs: gone, or a zombie nobody has reaped yet.
fn is_dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        // The state is the first field after the parenthesised command name.
        Ok(stat) => matches!(
            stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]),
            Some("Z" | "X")
        ),
    }
}

#[tokio::test]
async fn echo_succeeds() {
    // Job 3333… in agent-runcommand-mgs: Success, code 0, output `hello\n`.
    check(
        &["echo hello"],
        PluginStatus::Success,
        0,
        "hello\n",
        "",
        "hello\n",
    )
    .await;
    check(&["echo hi"], PluginStatus::Success, 0, "hi\n", "", "hi\n").await;
}

#[tokio::test]
async fn operators_and_redirections_behave_as_in_one_script() {
    check(
        &[
            "echo one > f && cat f",
            "false || echo two",
            "true && false || echo three",
        ],
        PluginStatus::Success,
        0,
        "one\ntwo\nthree\n",
        "",
        "one\ntwo\nthree\n",
    )
    .await;
}

#[tokio::test]
async fn multi_line_scripts_heredocs_and_functions_span_entries() {
    check(
        &[
            "greet() {",
            "  echo \"hello $1\"",
            "}",
            "cat <<EOF",
            "doc line",
            "EOF",
            "for n in 1 2; do greet $n; done\nx=5",
            "if [ \"$x\" -gt 3 ]; then echo big; fi",
        ],
        PluginStatus::Success,
        0,
        "doc line\nhello 1\nhello 2\nbig\n",
        "",
        "doc line\nhello 1\nhello 2\nbig\n",
    )
    .await;
}

#[tokio::test]
async fn non_zero_exit_reports_the_agents_failure_line() {
    // Job 2222… in agent-runcommand-mgs, with `id -un` giving whoever runs the tests.
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let mut job = job(&[
        "echo hello from run command",
        "id -un",
        "pwd",
        "echo err >&2",
        "exit 3",
    ]);
    job.working_directory = "/".to_owned();
    let outcome = run(&agent, &job).await;
    let stdout = format!("hello from run command\n{user}/\n");
    assert_eq!((outcome.status, outcome.code), (PluginStatus::Failed, 3));
    assert_eq!(outcome.standard_output, stdout);
    assert_eq!(
        outcome.standard_error,
        "err\nfailed to run commands: exit status 3"
    );
    assert_eq!(
        outcome.output,
        format!("{stdout}\n----------ERROR-------\nerr\nfailed to run commands: exit status 3")
    );
}

#[tokio::test]
async fn the_failure_line_follows_stderr_without_a_separator() {
    // `AppendError` adds "\n" only when the handler's own stderr is non-empty, and the process's
    // stderr reaches it only at close, so the line is glued on.
    check(
        &["printf err >&2", "exit 2"],
        PluginStatus::Failed,
        2,
        "",
        "errfailed to run commands: exit status 2",
        "\n----------ERROR-------\nerrfailed to run commands: exit status 2",
    )
    .await;
}

#[tokio::test]
async fn stderr_alone_is_reported_after_the_error_title() {
    // The MDS job in agent-runcommand-mds: stdout, title, stderr; still Success.
    check(
        &["echo via-mds", "echo e >&2"],
        PluginStatus::Success,
        0,
        "via-mds\n",
        "e\n",
        "via-mds\n\n----------ERROR-------\ne\n",
    )
    .await;
    check(
        &["echo oops >&2"],
        PluginStatus::Success,
        0,
        "",
        "oops\n",
        "\n----------ERROR-------\noops\n",
    )
    .await;
}

#[tokio::test]
async fn long_stdout_is_cut_in_both_places() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let outcome = run(&agent, &job(&["head -c 100000 /dev/zero | tr '\\0' o"])).await;
    assert_eq!((outcome.status, outcome.code), (PluginStatus::Success, 0));
    assert_eq!(
        outcome.standard_output,
        format!("{}--output truncated--", "o".repeat(23_980))
    );
    assert_eq!(
        outcome.output,
        format!("{}\n---Output truncated---", "o".repeat(2_477))
    );
    assert_eq!(outcome.standard_error, "");
}

#[tokio::test]
async fn long_stderr_keeps_the_executors_8000_bytes() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let outcome = run(
        &agent,
        &job(&["echo out", "head -c 50000 /dev/zero | tr '\\0' e >&2"]),
    )
    .await;
    assert_eq!((outcome.status, outcome.code), (PluginStatus::Success, 0));
    assert_eq!(outcome.standard_output, "out\n");
    assert_eq!(outcome.standard_error, "e".repeat(8_000));
    // 2 500 - 24 (title) - 23 (marker) - 4 (stdout) bytes of stderr.
    let kept = "e".repeat(2_449);
    assert_eq!(
        outcome.output,
        format!("out\n\n----------ERROR-------\n{kept}\n---Error truncated----")
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group_and_reports_timed_out() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let pid_file = agent.home.path().join("child.pid");
    let mut job = job(&[
        "echo before",
        "sleep 30 &",
        "echo $! > child.pid",
        "wait",
        "echo after",
    ]);
    job.execution_timeout = ExecutionTimeout::exactly(Duration::from_secs(1));
    let outcome = run(&agent, &job).await;
    assert_eq!(
        (outcome.status, outcome.code),
        (PluginStatus::TimedOut, 137)
    );
    assert_eq!(outcome.output, "before\n");
    assert_eq!(outcome.standard_output, "before\n");
    assert_eq!(outcome.standard_error, "");
    let pid = std::fs::read_to_string(pid_file).unwrap();
    assert!(
        is_dead(&pid),
        "background sleep {} survived the timeout",
        pid.trim()
    );
}

#[tokio::test]
async fn cancel_kills_the_group_and_keeps_the_output_so_far() {
    // agent-cancel: `echo start; sleep 60; echo done` cancelled → Cancelled, 137, `start\n`.
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let pid_file = agent.home.path().join("child.pid");
    let job = job(&[
        "echo start",
        "sleep 100 & echo $! > child.pid; wait",
        "echo done",
    ]);
    let cancel = CancellationToken::new();
    let command = id(1);
    let running = agent.executor.run(&command, &job, &cancel);
    let cancel_once_started = async {
        let pid = wait_for_file(&pid_file).await;
        cancel.cancel();
        pid
    };
    let (outcome, pid) = tokio::join!(running, cancel_once_started);
    assert_eq!(
        (outcome.status, outcome.code),
        (PluginStatus::Cancelled, 137)
    );
    assert_eq!(outcome.output, "start\n");
    assert_eq!(outcome.standard_output, "start\n");
    assert_eq!(outcome.standard_error, "");
    assert!(
        is_dead(&pid),
        "background sleep {} survived the cancel",
        pid.trim()
    );
}

#[tokio::test]
async fn working_directory_is_honoured() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let elsewhere = TempDir::new().unwrap();
    let mut job = job(&["pwd"]);
    job.working_directory = elsewhere.path().to_str().unwrap().to_owned();
    let outcome = run(&agent, &job).await;
    assert_eq!(outcome.output, format!("{}\n", canonical(elsewhere.path())));

    // Empty and relative paths mean the executor's default working directory.
    for requested in ["", "relative/dir"] {
        let mut job = self::job(&["pwd"]);
        job.working_directory = requested.to_owned();
        let outcome = run(&agent, &job).await;
        assert_eq!(
            outcome.output,
            format!("{}\n", canonical(agent.home.path())),
            "{requested:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_working_directory_fails_before_the_script_runs() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let mut job = job(&["echo never"]);
    job.working_directory = "/nonexistent/ssm-agent-sim".to_owned();
    let outcome = run(&agent, &job).await;
    assert_eq!((outcome.status, outcome.code), (PluginStatus::Failed, 1));
    let line = "failed to run commands: fork/exec /bin/sh: no such file or directory";
    assert_eq!(outcome.standard_error, line);
    assert_eq!(outcome.output, format!("\n----------ERROR-------\n{line}"));
}

#[tokio::test]
async fn environment_and_script_path_match_the_agents_layout() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let mut job = job(&["echo \"$GREETING\"", "echo \"$0\""]);
    job.env = vec![("GREETING".to_owned(), "from env".to_owned())];
    let outcome = run(&agent, &job).await;
    let script: PathBuf = agent.state.path().join(
        "document/orchestration/00000001-4444-5555-6666-777777777777/awsrunShellScript/0.awsrunShellScript/_script.sh",
    );
    assert_eq!(outcome.output, format!("from env\n{}\n", script.display()));
    assert!(
        !script.exists(),
        "the orchestration directory is removed after the run"
    );
}

#[tokio::test]
async fn at_most_the_limit_runs_at_once() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let board = TempDir::new().unwrap();
    let script = [
        "touch \"$BOARD/running.$N\"",
        "ls \"$BOARD\" | grep -c '^running' > \"$BOARD/seen.$N\"",
        "while [ ! -e \"$BOARD/release\" ]; do sleep 0.01; done",
        "rm \"$BOARD/running.$N\"",
    ];
    let runs: Vec<_> = (0..=MAX_CONCURRENT_COMMANDS)
        .map(|n| {
            let mut job = job(&script);
            job.env = vec![
                (
                    "BOARD".to_owned(),
                    board.path().to_str().unwrap().to_owned(),
                ),
                ("N".to_owned(), n.to_string()),
            ];
            let executor = agent.executor.clone();
            tokio::spawn(async move {
                executor
                    .run(&id(n as u32), &job, &CancellationToken::new())
                    .await
            })
        })
        .collect();
    let running = || {
        std::fs::read_dir(board.path())
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("running")
            })
            .count()
    };
    while running() < MAX_CONCURRENT_COMMANDS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Five hold their slots until released, so the sixth cannot have started.
    let at_the_limit = running();
    std::fs::write(board.path().join("release"), "").unwrap();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap());
    }
    assert_eq!(at_the_limit, MAX_CONCURRENT_COMMANDS);
    for (n, outcome) in outcomes.iter().enumerate() {
        assert_eq!(
            outcome.status,
            PluginStatus::Success,
            "job {n}: {outcome:?}"
        );
        let seen: usize = std::fs::read_to_string(board.path().join(format!("seen.{n}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            seen <= MAX_CONCURRENT_COMMANDS,
            "job {n} saw {seen} running"
        );
    }
}

#[tokio::test]
async fn cancelling_a_queued_job_reports_cancelled_with_code_1() {
    let agent = agent(1);
    let board = TempDir::new().unwrap();
    let release = board.path().join("release");
    let mut blocker = job(&["while [ ! -e \"$RELEASE\" ]; do sleep 0.01; done"]);
    blocker.env = vec![("RELEASE".to_owned(), release.to_str().unwrap().to_owned())];
    let queued = job(&["echo should not run"]);
    let never = CancellationToken::new();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (blocker_id, queued_id) = (id(1), id(2));
    let (first, second) = tokio::join!(agent.executor.run(&blocker_id, &blocker, &never), async {
        let outcome = agent.executor.run(&queued_id, &queued, &cancel).await;
        std::fs::write(&release, "").unwrap();
        outcome
    });
    assert_eq!(first.status, PluginStatus::Success);
    assert_eq!(
        (second.status, second.code, second.output.as_str()),
        (PluginStatus::Cancelled, 1, "")
    );
}

#[tokio::test]
async fn timestamps_use_the_agents_format() {
    let agent = agent(MAX_CONCURRENT_COMMANDS);
    let outcome = run(&agent, &job(&["true"])).await;
    for stamp in [&outcome.start_date_time, &outcome.end_date_time] {
        let shape: String = stamp
            .chars()
            .map(|c| if c.is_ascii_digit() { 'd' } else { c })
            .collect();
        assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{stamp}");
    }
    assert!(outcome.start_date_time <= outcome.end_date_time);
}

fn canonical(path: &Path) -> String {
    path.canonicalize().unwrap().to_str().unwrap().to_owned()
}

//! The Python clients: the AWS CLI v1 and boto3, from the repository's `.venv` (scripts/test-all
//! installs `tests/requirements.txt` there).
//!
//! Every run is hermetic: the environment is cleared, credentials are the dummy
//! `test`/`test`, the region is `us-east-1`, `HOME`, `AWS_CONFIG_FILE` and
//! `AWS_SHARED_CREDENTIALS_FILE` point at an empty temporary directory and files, and the
//! metadata service is off. So a developer's own AWS profile can never leak into a test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::process::{self, COMMAND_LIMIT, Finished};

/// What to do when the clients are missing.
const INSTALL_HINT: &str = "run `bash scripts/test-all` once to install the test clients into \
     .venv (or by hand: `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`)";

/// The output of one client run: exit code, stdout, stderr.
pub type CliOutput = Finished;

impl Finished {
    /// Stdout of a run that must have succeeded; panics with stderr otherwise.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success, got exit code {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Stdout of a successful run, parsed as JSON.
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}"))
    }
}

/// The AWS CLI, pointed at one endpoint.
#[derive(Debug)]
pub struct Aws {
    exe: PathBuf,
    endpoint: String,
    home: TempDir,
}

impl Aws {
    /// The CLI from `.venv/bin/aws` (or the first `aws` on `PATH`) with `--endpoint-url
    /// endpoint`. Panics with what to do if it is not installed.
    pub fn new(endpoint: &str) -> Aws {
        Aws {
            exe: client_bin("aws"),
            endpoint: endpoint.to_owned(),
            home: empty_home(),
        }
    }

    /// `aws --endpoint-url <endpoint> <args…>`.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        process::run(self.command(args), COMMAND_LIMIT)
    }

    /// The hermetic command `aws --endpoint-url <endpoint> <args…>`, not started: for a test
    /// that drives a long-running call itself (`start-session` with stdin or a terminal).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        hermetic(&mut command, self.home.path());
        command.args(["--endpoint-url", &self.endpoint]).args(args);
        command
    }

    /// `aws --endpoint-url <endpoint> ssm <args…>`.
    pub fn ssm(&self, args: &[&str]) -> CliOutput {
        let mut all = vec!["ssm"];
        all.extend_from_slice(args);
        self.run(&all)
    }
}

/// The venv's Python with boto3, running the scripts of `tests/python/`.
#[derive(Debug)]
pub struct Python {
    exe: PathBuf,
    endpoint: String,
    home: TempDir,
}

impl Python {
    /// The Python next to the CLI (`.venv/bin/python`), with `SSM_E2E_ENDPOINT` set to
    /// `endpoint` for the scripts. Panics with what to do if it is not installed.
    pub fn new(endpoint: &str) -> Python {
        let aws = client_bin("aws");
        let dir = aws.parent().expect("the aws executable is in a directory");
        let exe = ["python", "python3"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "no python next to {} (boto3 must be in the same venv): {INSTALL_HINT}",
                    aws.display()
                )
            });
        Python {
            exe,
            endpoint: endpoint.to_owned(),
            home: empty_home(),
        }
    }

    /// Runs `tests/python/<script>` with `args`. The scripts make their client with
    /// `boto3.client("ssm", endpoint_url=os.environ["SSM_E2E_ENDPOINT"])` and print JSON.
    pub fn script(&self, script: &str, args: &[&str]) -> CliOutput {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join(script);
        assert!(path.is_file(), "no script {}", path.display());
        let mut command = Command::new(&self.exe);
        hermetic(&mut command, self.home.path());
        command
            .env("SSM_E2E_ENDPOINT", &self.endpoint)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(path)
            .args(args);
        process::run(command, COMMAND_LIMIT)
    }
}

/// `name` from the repository's `.venv/bin`, else from `PATH`; panics with what to do if
/// neither has it.
pub fn client_bin(name: &str) -> PathBuf {
    let venv = process::workspace_root()
        .join(".venv")
        .join("bin")
        .join(name);
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed ({} does not exist and it is not on PATH): \
                 {INSTALL_HINT}",
                venv.display()
            )
        })
}

/// A temporary `HOME` with empty AWS config and credentials files.
fn empty_home() -> TempDir {
    let home = tempfile::tempdir().expect("can create a temporary directory");
    for file in ["config", "credentials"] {
        std::fs::write(home.path().join(file), "").expect("can write an empty AWS file");
    }
    home
}

/// Clears the environment of `command` and sets only what an AWS client needs, with dummy
/// credentials and no files or metadata service to find others in.
fn hermetic(command: &mut Command, home: &Path) {
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"));
    // Retries stay at the clients' defaults: they only retry throttling, 5xx and connection
    // errors, and `AWS_MAX_ATTEMPTS=1` would change what users see (boto3 then appends
    // "(reached max retries: 0)" to every error).
}

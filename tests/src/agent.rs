//! The real `ssm-agent-sim` binary as a child process, reporting to an [`Emulator`].

use std::process::Command;

use tempfile::TempDir;

use crate::emulator::Emulator;
use crate::process::{self, ChildProcess};

/// The flag that gives agent-sim the emulator's endpoint. The one place to change if its
/// command line names it differently.
const ENDPOINT_FLAG: &str = "--endpoint";

/// A running `ssm-agent-sim`, killed on drop; its output is printed if the test fails.
#[derive(Debug)]
pub struct AgentSim {
    process: ChildProcess,
    /// The agents' `--work-dir`, removed after the process is killed.
    _work_dir: TempDir,
}

impl AgentSim {
    /// Starts `ssm-agent-sim --endpoint <emulator endpoint> --work-dir <temp dir> <args…>`
    /// (`--count 3 --seed 1`, `--instances-file PATH`, …) and waits (a bounded poll of
    /// DescribeInstanceInformation) until every instance of `online` is Online in the emulator.
    /// Panics with agent-sim's output if it exits or its instances never come online.
    ///
    /// The environment is cleared but for `PATH` (commands run real processes), so no proxy
    /// variable of the developer's reaches it.
    pub fn start(emulator: &Emulator, args: &[&str], online: &[&str]) -> AgentSim {
        let work_dir = tempfile::tempdir().expect("can create a temporary directory");
        let mut command = Command::new(process::binary("ssm-agent-sim"));
        command
            .env_clear()
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("SSM_E2E_LOG").unwrap_or_else(|_| "ssm_agent_sim=info".to_owned()),
            )
            .args([ENDPOINT_FLAG, &emulator.endpoint()])
            .arg("--work-dir")
            .arg(work_dir.path())
            .args(args);
        if let Some(path) = std::env::var_os("PATH") {
            // Run Command scripts run real processes and need a PATH.
            command.env("PATH", path);
        }
        let mut agent = AgentSim {
            process: ChildProcess::spawn(command),
            _work_dir: work_dir,
        };
        agent.process.stop_listening();
        emulator.wait_until_online(online);
        if let Some(status) = agent.process.exited() {
            panic!(
                "{} exited ({status}) right after starting; its output:\n{}",
                agent.process.name(),
                agent.process.log()
            );
        }
        agent
    }

    /// agent-sim's output so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Kills the process with SIGKILL, as a crash or a pulled plug would: its agents close
    /// nothing and send nothing more. The scripts they run are in process groups of their own
    /// and outlive it (as they would outlive a crashed amazon-ssm-agent).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }
}

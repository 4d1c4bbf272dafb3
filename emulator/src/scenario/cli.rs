//! `ssm-emulator scenario run FILE|NAME [--seed N] [--json]` and `ssm-emulator scenario list`.
//!
//! `run` exits 0 only when every expectation held; otherwise 1, with the report's last line
//! naming what failed. A file that cannot be read or run exits 2 with the reason on stderr.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Subcommand;

use super::library::{LIBRARY, find};
use super::runner::{self, Options};
use super::{Report, Scenario};

/// `ssm-emulator scenario …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file (or a shipped scenario by name) against an emulator of its own,
    /// started in this process on a free loopback port, and report what happened.
    ///
    /// Exits 0 only if every expectation held.
    Run {
        /// A scenario file, or the name of a shipped one (see `ssm-emulator scenario list`).
        file: String,
        /// Use this seed instead of the file's.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Where the scenario's emulator listens (default: any free port on 127.0.0.1).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// List the scenarios shipped with ssm-emulator (scenarios/ in the repository).
    List,
}

/// Runs the subcommand; the process's exit code.
pub async fn main(command: Command) -> ExitCode {
    match command {
        Command::List => {
            print!("{}", list());
            ExitCode::SUCCESS
        }
        Command::Run {
            file,
            seed,
            json,
            listen,
        } => {
            let scenario = match load(&file) {
                Ok(scenario) => scenario,
                Err(message) => {
                    eprintln!("ssm-emulator: {message}");
                    return ExitCode::from(2);
                }
            };
            let options = Options { seed, listen };
            match runner::run(&scenario, &options).await {
                Ok(report) => {
                    print_report(&report, json);
                    if report.passed {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("ssm-emulator: scenario {}: {e}", scenario.name);
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn print_report(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text());
    }
}

/// A file's scenario, or a shipped one's.
fn load(file: &str) -> Result<Scenario, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => match find(file) {
            Some(text) => text.to_owned(),
            None => {
                return Err(format!(
                    "cannot read {file} ({e}), and no shipped scenario has that name \
                     (ssm-emulator scenario list)"
                ));
            }
        },
    };
    Scenario::parse(&text).map_err(|e| format!("{file}: {e}"))
}

/// One line per shipped scenario: its name and the first line of its description.
pub fn list() -> String {
    let mut out = String::new();
    for (file, text) in LIBRARY {
        let name = file.strip_suffix(".toml").unwrap_or(file);
        let summary = Scenario::parse(text)
            .map(|s| {
                s.description
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        out.push_str(&format!("{name:<34} {summary}\n"));
    }
    out
}

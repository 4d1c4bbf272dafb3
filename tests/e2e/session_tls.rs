//! Session Manager over TLS with the AWS CLI v1: `ssm-emulator --tls-listen` serves the API on
//! `https://` and hands out `wss://` StreamUrls; `aws --endpoint-url https://… ssm start-session`
//! runs `ssm-session` as `session-manager-plugin`, which dials the `wss://` URL and trusts the
//! emulator's CA through `AWS_CA_BUNDLE` (the variable the CLI itself honours). The agents stay on
//! the plain port.
//!
//! `AWS_CA_BUNDLE`, `SSL_CERT_FILE` and `SSL_CERT_DIR` are set or removed explicitly for the CLI
//! and its plugin: the machine running the tests may set them globally.

use std::path::{Path, PathBuf};

use ssm_e2e::session::{CliSession, Plugin, START_LINE, exit_line};
use ssm_e2e::{Aws, Fleet};
use tempfile::TempDir;

/// The variables that name CA files, removed from every CLI run before one is set.
const CA_VARIABLES: [&str; 3] = ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// An emulator with one agent (on the plain port) and a TLS listener; the CA file it wrote and
/// the TLS address it announced.
struct TlsFleet {
    fleet: Fleet,
    https: String,
    ca_file: PathBuf,
    /// Holds the CA file.
    _dir: TempDir,
    plugin: Plugin,
}

impl TlsFleet {
    fn start(prefix: char) -> TlsFleet {
        let dir = tempfile::tempdir().expect("can create a temporary directory");
        let ca_file = dir.path().join("ca.pem");
        let ca = ca_file.to_str().expect("a UTF-8 temporary path");
        let fleet = Fleet::start(
            &Fleet::plain(prefix, 1),
            &["--tls-listen", "127.0.0.1:0", "--tls-ca-out", ca],
            &[],
        );
        // The emulator logs the TLS address before the plain one, which the harness has seen.
        let log = fleet.emu.log();
        let https = log
            .split_once("TLS on https://")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|addr| format!("https://{addr}"))
            .unwrap_or_else(|| panic!("no `TLS on https://…` line in the emulator's log:\n{log}"));
        TlsFleet {
            fleet,
            https,
            ca_file,
            _dir: dir,
            plugin: Plugin::install(),
        }
    }

    /// `aws [global…] ssm start-session --target <the agent>` against the https endpoint, with
    /// the plugin first on PATH, `trust` as the only CA variable, over pipes.
    fn start_session(&self, global: &[&str], trust: Option<(&str, &Path)>) -> CliSession {
        let aws = Aws::new(&self.https);
        let mut args = global.to_vec();
        args.extend(["ssm", "start-session", "--target", &self.fleet.ids[0]]);
        let mut command = aws.command(&args);
        command.env("PATH", self.plugin.path());
        for variable in CA_VARIABLES {
            command.env_remove(variable);
        }
        if let Some((variable, file)) = trust {
            command.env(variable, file);
        }
        CliSession::over_pipes(command)
    }
}

/// With `AWS_CA_BUNDLE` naming the emulator's CA, a shell session runs over wss: the shell
/// evaluates what is typed and `exit` ends the session with the exit line and status 0.
#[test]
fn shell_over_wss_with_aws_ca_bundle() {
    let tls = TlsFleet::start('c');
    let mut client = tls.start_session(&[], Some(("AWS_CA_BUNDLE", &tls.ca_file)));

    let (session_id, prompt) = client.wait_for_shell();
    client.type_in("echo tls-$((6*7))\n");
    // The computed value, not the echo of what was typed: the shell evaluated it.
    let after = client.wait_for_text("tls-42\n", prompt);
    client.type_in("exit\n");
    let exit_line = exit_line(&session_id);
    client.wait_for_text(&exit_line, after);
    let (status, stdout) = client.finish();
    let stderr = client.errors();

    assert!(
        status.success(),
        "exit status {status}; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.starts_with(&format!("{START_LINE}{session_id}\n")),
        "{stdout:?}"
    );
    assert!(stdout.ends_with(&exit_line), "{stdout:?}");
    assert_eq!(stderr, "", "stderr");
}

/// With no CA variable (the CLI told not to verify, so that only the plugin checks), the plugin
/// refuses the emulator's certificate and says what to set.
#[test]
fn without_the_ca_the_plugin_says_what_to_set() {
    let tls = TlsFleet::start('d');
    let mut client = tls.start_session(&["--no-verify-ssl"], None);
    let (status, stdout) = client.finish();
    let stderr = client.errors();

    assert!(!status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let host = tls.https.trim_start_matches("https://");
    let expected = format!("Cannot perform start session: dialing wss://{host}/v1/data-channel/");
    assert!(stdout.contains(&expected), "{stdout:?}");
    assert!(
        stdout.contains(
            ": the TLS certificate of 127.0.0.1 is not trusted (UnknownIssuer): \
             set AWS_CA_BUNDLE (or SSL_CERT_FILE) to a PEM file holding the CA \
             that signed it (for ssm-emulator: the file written by --tls-ca-out)\n"
        ),
        "{stdout:?}"
    );
}

//! The emulator's own command line, as someone starting it sees it.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use ssm_e2e::process::{self, COMMAND_LIMIT};

/// Bound on a run that must end by itself; a guard against a hang, not an assertion.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

fn emulator() -> Command {
    let mut command = Command::new(process::binary("ssm-emulator"));
    command.env_clear().env("NO_COLOR", "1");
    command
}

#[test]
fn help_exits_zero_and_names_the_listen_flag() {
    let mut command = emulator();
    command.arg("--help");

    let out = process::run(command, COMMAND_LIMIT);

    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("--listen <ADDR>"), "{}", out.stdout);
    assert!(
        out.stdout.contains("--instances-file <PATH>"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_port_in_use_is_named_with_the_fix_and_fails() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut command = emulator();
    command.args(["--listen", &addr.to_string()]);

    let out = process::run(command, EXIT_LIMIT);

    assert_eq!(
        (out.code, out.stderr.trim_end()),
        (
            1,
            format!(
                "ssm-emulator: address {addr} already in use: pass --listen 127.0.0.1:<port> \
                 (or 127.0.0.1:0 for any free port)"
            )
            .as_str()
        ),
        "{out:?}"
    );
    drop(taken);
}

#[test]
fn a_bad_instances_file_is_named_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("instances.json");
    std::fs::write(&file, r#"{"instances": [{"id": "bogus"}]}"#).unwrap();
    let mut command = emulator();
    command
        .args(["--listen", "127.0.0.1:0", "--instances-file"])
        .arg(&file);

    let out = process::run(command, EXIT_LIMIT);

    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "ssm-emulator: instances file {}: instance 0 (bogus): ",
            file.display()
        )),
        "{}",
        out.stderr
    );
}

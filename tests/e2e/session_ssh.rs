//! SSH over Session Manager as the tutorial does it (spec §7.5): real OpenSSH `ssh` and `scp`
//! with `ProxyCommand="sh -c 'aws ssm start-session --target %h --document-name
//! AWS-StartSSHSession --parameters portNumber=%p'"`, the AWS CLI v1 running `ssm-session` as
//! `session-manager-plugin` in stdin/stdout mode, the real emulator, a separate `ssm-agent-sim`,
//! and a real `sshd` the test starts on a loopback port of the "instance" (this machine).
//!
//! The test fails (never skips) when OpenSSH is missing: `scripts/test-all` installs it as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ssm_e2e::process::{self, ChildProcess, Finished};
use ssm_e2e::session::{self, Plugin};
use ssm_e2e::{Aws, Fleet};
use tempfile::TempDir;

/// The OpenSSH programs the test runs.
const SSHD: &str = "/usr/sbin/sshd";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const CLIENTS: [&str; 3] = ["ssh", "scp", "ssh-keygen"];

/// What to do when OpenSSH is missing.
const INSTALL_HINT: &str = "run `bash scripts/test-all` as root (it installs openssh-server \
     and openssh-client), or `apt-get install openssh-server openssh-client`";

/// How many times a new sshd is tried on a fresh port when the port was taken meanwhile.
const SSHD_ATTEMPTS: u32 = 5;

/// A bound on one ssh or scp run: 10 MiB at the unpaced rate of the emulator takes seconds.
const TRANSFER_LIMIT: Duration = Duration::from_secs(300);

/// The size of the files copied each way.
const FILE_SIZE: usize = 10 << 20;

/// A real `sshd -D -e` on a loopback port with its own host key, one authorized user key and
/// the sftp subsystem (which `scp` uses), running as the current user; killed on drop.
struct Sshd {
    process: ChildProcess,
    port: u16,
    /// The client's private key.
    key: PathBuf,
    /// Who logs in: the user running the test (root in CI).
    user: String,
    /// Holds the keys and the config for as long as sshd runs.
    _dir: TempDir,
}

impl Sshd {
    /// Generates the keys, writes the config and starts sshd, waiting (bounded) for its
    /// `Server listening` line.
    fn start() -> Sshd {
        require_openssh();
        let dir = tempfile::tempdir().expect("can create a temporary directory");
        let host_key = dir.path().join("host_ed25519");
        let key = dir.path().join("user_ed25519");
        keygen(&host_key);
        keygen(&key);
        std::fs::copy(
            key.with_extension("pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("can write authorized_keys");
        let user = current_user();
        if user == "root" {
            // sshd running as root chroots its pre-auth child there (privilege separation);
            // the package creates it at boot, which a container may not have had.
            std::fs::create_dir_all("/run/sshd").expect("can create /run/sshd");
        }
        for _ in 0..SSHD_ATTEMPTS {
            let port = session::free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, sshd_config(dir.path(), &host_key, port))
                .expect("can write sshd_config");
            let mut command = Command::new(SSHD);
            command.arg("-D").arg("-e").arg("-f").arg(&config);
            let mut process = ChildProcess::spawn(command);
            let listening = format!("Server listening on 127.0.0.1 port {port}.");
            let started = wait_listening(&mut process, &listening);
            if started {
                return Sshd {
                    process,
                    port,
                    key,
                    user,
                    _dir: dir,
                };
            }
            assert!(
                process.log().contains("Address already in use"),
                "sshd exited at start; its output:\n{}",
                process.log()
            );
        }
        panic!("sshd found no free port in {SSHD_ATTEMPTS} attempts");
    }

    /// `program` (ssh or scp) with the tutorial's ProxyCommand, this sshd's port and the
    /// user key, in the hermetic environment of the AWS CLI with the plugin on `PATH`.
    fn client(&self, program: &str, plugin: &Plugin, aws: &Aws, endpoint: &str) -> Command {
        let mut command = Command::new(program);
        command.env_clear();
        command.envs(plugin.environment(aws, endpoint));
        let port_flag = if program == "scp" { "-P" } else { "-p" };
        command
            .args(["-F", "/dev/null", "-i"])
            .arg(&self.key)
            .args([port_flag, &self.port.to_string()])
            .args([
                "-o",
                "ProxyCommand=sh -c 'aws ssm start-session --target %h --document-name \
                 AWS-StartSSHSession --parameters portNumber=%p'",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "LogLevel=ERROR",
            ]);
        command
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.process.kill();
    }
}

/// Polls (bounded) sshd's output for `listening`: true once it is there, false if sshd exited
/// first (a port taken meanwhile).
fn wait_listening(sshd: &mut ChildProcess, listening: &str) -> bool {
    let deadline = Instant::now() + session::POLL_LIMIT;
    loop {
        if sshd.log().contains(listening) {
            return true;
        }
        if sshd.exited().is_some() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "sshd did not print {listening:?} within {:?}; its output:\n{}",
            session::POLL_LIMIT,
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Panics with what to install if a program of OpenSSH is missing.
fn require_openssh() {
    assert!(
        Path::new(SSHD).is_file() && Path::new(SFTP_SERVER).is_file(),
        "{SSHD} or {SFTP_SERVER} is missing: {INSTALL_HINT}"
    );
    for client in CLIENTS {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|dir| dir.join(client).is_file());
        assert!(found, "`{client}` is not on PATH: {INSTALL_HINT}");
    }
}

/// A passphrase-less ed25519 key pair at `path` and `path.pub`.
fn keygen(path: &Path) {
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ssm-e2e", "-f"])
        .arg(path);
    let out = process::run(command, process::COMMAND_LIMIT);
    assert_eq!(out.code, 0, "ssh-keygen: {out:?}");
}

/// The name of the user running the test.
fn current_user() -> String {
    let mut command = Command::new("id");
    command.arg("-un");
    let out = process::run(command, process::COMMAND_LIMIT);
    assert_eq!(out.code, 0, "id -un: {out:?}");
    out.stdout.trim().to_owned()
}

/// An sshd configuration that reads nothing outside `dir`: loopback only, key authentication
/// only (root may log in with a key: `prohibit-password`), no PAM, and no ownership checks on
/// the temporary directory.
fn sshd_config(dir: &Path, host_key: &Path, port: u16) -> String {
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         PidFile none\n\
         AuthorizedKeysFile {keys}\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         Subsystem sftp {SFTP_SERVER}\n\
         LogLevel VERBOSE\n",
        host_key = host_key.display(),
        keys = dir.join("authorized_keys").display(),
    )
}

/// Runs `command` to its end (bounded) and asserts it succeeded; returns its output and how
/// long it took (reported, never asserted).
fn run_ok(what: &str, command: Command) -> (Finished, Duration) {
    let started = Instant::now();
    let out = process::run(command, TRANSFER_LIMIT);
    let took = started.elapsed();
    assert_eq!(
        out.code, 0,
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.code, out.stdout, out.stderr
    );
    (out, took)
}

/// `ssh` runs a command on the instance through Session Manager; `scp` copies a 10 MiB file up
/// and another down, each arriving with the SHA-256 it left with. Every connection is a
/// Session Manager session of its own, which the History lists once it has ended.
#[test]
fn ssh_runs_a_command_and_scp_copies_both_ways() {
    let fleet = Fleet::start(&Fleet::plain('5', 1), &[], &[]);
    let target = &fleet.ids[0];
    let aws = fleet.emu.aws();
    let endpoint = fleet.emu.endpoint();
    let plugin = Plugin::install();
    let sshd = Sshd::start();
    let login = |path: &str| format!("{}@{target}:{path}", sshd.user);

    let mut ssh = sshd.client("ssh", &plugin, &aws, &endpoint);
    ssh.arg(format!("{}@{target}", sshd.user))
        .arg("echo remote-ok; uname -s");
    let (out, _) = run_ok("ssh", ssh);
    assert_eq!(out.stdout, "remote-ok\nLinux\n", "stderr:\n{}", out.stderr);

    let local = tempfile::tempdir().expect("can create a temporary directory");
    let remote = tempfile::tempdir().expect("can create a temporary directory");

    let up = local.path().join("up.bin");
    std::fs::write(&up, session::random_bytes(1, FILE_SIZE)).expect("can write the file");
    let landed = remote.path().join("up.bin");
    let mut scp = sshd.client("scp", &plugin, &aws, &endpoint);
    scp.arg(&up).arg(login(&landed.display().to_string()));
    let (_, up_took) = run_ok("scp up", scp);
    assert_eq!(
        session::sha256_file(&landed),
        session::sha256_file(&up),
        "the uploaded file's SHA-256"
    );

    let source = remote.path().join("down.bin");
    std::fs::write(&source, session::random_bytes(2, FILE_SIZE)).expect("can write the file");
    let down = local.path().join("down.bin");
    let mut scp = sshd.client("scp", &plugin, &aws, &endpoint);
    scp.arg(login(&source.display().to_string())).arg(&down);
    let (_, down_took) = run_ok("scp down", scp);
    assert_eq!(
        session::sha256_file(&down),
        session::sha256_file(&source),
        "the downloaded file's SHA-256"
    );
    eprintln!(
        "scp of {FILE_SIZE} bytes through Session Manager: up {up_took:?}, down {down_took:?}"
    );

    // ssh, scp up, scp down: three sessions of AWS-StartSSHSession, each listed in the
    // History once the agent has reported its end (a bounded poll).
    session::poll(
        "three ended AWS-StartSSHSession sessions in the History",
        || {
            let sessions = aws.ssm(&["describe-sessions", "--state", "History"]).json();
            let ended = sessions["Sessions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| {
                    s["DocumentName"] == "AWS-StartSSHSession" && s["Target"] == target.as_str()
                })
                .count();
            (ended == 3).then_some(())
        },
        || {
            let sessions = aws.ssm(&["describe-sessions", "--state", "History"]).stdout;
            format!("History:\n{sessions}")
        },
    );
}

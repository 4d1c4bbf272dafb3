//! `ssm-session`: the reference Session Manager client, a drop-in for session-manager-plugin.
//! See `ssm-session --help` and [`ssm_conformance::argv`].

use std::io::Write;

use ssm_conformance::argv::{self, Invocation};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The plugin unsets the variable after reading it so that no child sees the token. We read
    // it only: `remove_var` is `unsafe` in edition 2024, the workspace forbids unsafe code, and
    // ssm-session starts no child process.
    let mut read_env = |name: &str| std::env::var(name).ok();
    let status = match argv::parse(&args, &mut read_env) {
        Ok(Invocation::Installed) => out(argv::INSTALLED_MESSAGE),
        Ok(Invocation::Version) => out(&format!("{}\n", argv::VERSION)),
        Ok(Invocation::Help) => out(&argv::help()),
        Ok(Invocation::UnknownOperation(first)) => out(&argv::unknown_operation(&first)),
        Ok(Invocation::InvalidOperation) => out("Invalid Operation"),
        Ok(Invocation::Start(start)) => match start.response() {
            Ok(response) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime starts")
                .block_on(ssm_conformance::session::run(start, response)),
            Err(e) => fail(&e),
        },
        Err(e) => fail(&e),
    };
    std::process::exit(status);
}

fn out(text: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    0
}

fn fail(e: &argv::ArgError) -> i32 {
    if e.status == 0 {
        out(&format!("{}\n", e.message));
    } else {
        eprintln!("{}", e.message);
    }
    e.status
}

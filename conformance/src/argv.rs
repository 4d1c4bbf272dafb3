//! The command line of session-manager-plugin (spec §8.1), parsed by hand: the forms are
//! positional and counted, which no argument-parser crate models.
//!
//! | argc (without argv\[0\]) | plugin behaviour | ours |
//! |---|---|---|
//! | 0 | install-success message | same |
//! | 1, `--version` | version line | same |
//! | 1, `--help` / `-h` | "Unknown operation" | usage text |
//! | 1–2 | `Unknown operation <argv[1]>` | same |
//! | 3 (legacy CLI) | session without profile/params/endpoint | same (no reconnect: no endpoint) |
//! | 4–5 | fields filled as far as given | same |
//! | ≥ 6 | the full call; extra arguments ignored | same |
//!
//! Where the plugin panics (a request-parameter JSON without a string `Target`, a response
//! without SessionId, TokenValue or StreamUrl) we print a clear error and exit with status 2,
//! the status a Go panic gives.

use serde::Deserialize;

/// The version `--version` prints and the open frame carries as `ClientVersion`.
///
/// Our own number in the plugin's four-part scheme, chosen above every plugin release the
/// AWS CLI treats specially: newer than 1.2.497.0, so the CLI passes the StartSession response
/// through `AWS_SSM_START_SESSION_RESPONSE`, and than 1.2.764.0, so AWS CLI v1 prints no
/// "outdated SessionManagerPlugin" warning. The CLI accepts only `^\d+(\.\d+){0,3}$`, so no
/// suffix such as `-ssm-session` can be added. The third part moves with our releases.
pub const VERSION: &str = "1.2.800.0";

/// The name argv\[1\] starts with when the CLI passes the response through the environment.
pub const RESPONSE_ENV: &str = "AWS_SSM_START_SESSION_RESPONSE";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// No arguments: the plugin's install-success message.
    Installed,
    /// `--version`.
    Version,
    /// `--help` or `-h` (the plugin has none; it would say "Unknown operation").
    Help,
    /// One or two arguments: `Unknown operation <first>`.
    UnknownOperation(String),
    /// An operation other than `StartSession`: the plugin prints `Invalid Operation`.
    InvalidOperation,
    /// Start a session.
    Start(StartArgs),
}

/// The StartSession call the AWS CLI hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartArgs {
    /// argv\[1\], or the environment variable it names, as given (parsed by [`StartArgs::response`]).
    pub response: String,
    /// argv\[2\].
    pub region: String,
    /// argv\[4\]; not used for credentials yet (only the environment is read).
    pub profile: String,
    /// argv\[5\]'s `Target`; empty in the legacy form.
    pub target: String,
    /// argv\[6\]: the SSM endpoint for ResumeSession / TerminateSession; empty in the legacy form.
    pub endpoint: String,
}

/// The three fields of the StartSession response the plugin uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StartSessionResponse {
    /// The session.
    #[serde(rename = "SessionId")]
    pub session_id: String,
    /// The token for the first open frame.
    #[serde(rename = "TokenValue")]
    pub token_value: String,
    /// The data-channel URL, dialled verbatim.
    #[serde(rename = "StreamUrl")]
    pub stream_url: String,
}

/// A command line that cannot start a session, with the text to print and the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    /// What went wrong, one line.
    pub message: String,
    /// 2 where the plugin panics, else 0 as the plugin's `Cannot perform start session` paths.
    pub status: i32,
}

impl StartArgs {
    /// Parses argv\[1\]'s JSON the way the plugin needs it.
    pub fn response(&self) -> Result<StartSessionResponse, ArgError> {
        serde_json::from_str(&self.response).map_err(|e| ArgError {
            message: format!("Cannot perform start session: {e}"),
            status: if e.is_data() { 2 } else { 0 },
        })
    }
}

/// Reads the command line (`args` without argv\[0\]). `env` looks up an environment variable
/// (argv\[1\] may name one); it is a parameter so that tests need not touch the process
/// environment.
pub fn parse(
    args: &[String],
    env: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Invocation, ArgError> {
    match args {
        [] => return Ok(Invocation::Installed),
        [one] if one == "--version" => return Ok(Invocation::Version),
        [one] if one == "--help" || one == "-h" => return Ok(Invocation::Help),
        [first] | [first, _] => return Ok(Invocation::UnknownOperation(first.clone())),
        _ => {}
    }
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let response = if args[0].starts_with(RESPONSE_ENV) {
        env(&args[0]).unwrap_or_default()
    } else {
        args[0].clone()
    };
    if arg(2) != "StartSession" {
        return Ok(Invocation::InvalidOperation);
    }
    let target = match args.get(4) {
        None => String::new(),
        Some(params) => target_of(params)?,
    };
    Ok(Invocation::Start(StartArgs {
        response,
        region: arg(1),
        profile: arg(3),
        target,
        endpoint: arg(5),
    }))
}

/// `Target` of the StartSession request parameters; the plugin panics without a string one.
fn target_of(params: &str) -> Result<String, ArgError> {
    let value: serde_json::Value = serde_json::from_str(params).unwrap_or_default();
    match value.get("Target") {
        Some(serde_json::Value::String(target)) => Ok(target.clone()),
        _ => Err(ArgError {
            message: format!(
                "ssm-session: the request parameters (argument 5) need a string \"Target\": {params}"
            ),
            status: 2,
        }),
    }
}

/// The plugin's answer to no arguments.
pub const INSTALLED_MESSAGE: &str = "\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n\n";

/// The plugin's answer to one or two arguments.
pub fn unknown_operation(first: &str) -> String {
    format!(
        "\nUnknown operation {first}. \nUse session-manager-plugin --version to check the version.\n\n"
    )
}

/// `--help`.
pub fn help() -> String {
    format!(
        "ssm-session {VERSION}: the ssm-emulator reference client, argv-compatible with \
session-manager-plugin.

USAGE (what the AWS CLI runs; use it as the session-manager-plugin on PATH):
  ssm-session <response> <region> StartSession <profile> <request-params> <endpoint-url>
  ssm-session <response> <region> StartSession          legacy form: no reconnect
  ssm-session --version                                 prints {VERSION}
  ssm-session                                           prints the install message

  <response>        StartSession response JSON {{\"SessionId\",\"TokenValue\",\"StreamUrl\"}}, or
                    the name {RESPONSE_ENV}: the JSON is read from that
                    environment variable (read, not unset: ssm-session
                    starts no child process that could inherit it)
  <region>          region used to sign ResumeSession / TerminateSession
  <profile>         accepted and ignored: credentials come from AWS_ACCESS_KEY_ID,
                    AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
  <request-params>  StartSession request JSON; must contain a string \"Target\"
  <endpoint-url>    SSM endpoint (http://) for ResumeSession / TerminateSession

SESSIONS: shell sessions (Standard_Stream, no handshake). stdin is sent in reads of up to
1024 bytes (a lone LF becomes CR), stdout's terminal size every 500 ms (300x100 when stdout
is not a terminal), SIGINT/SIGQUIT/SIGTSTP as the bytes 0x03/0x1C/0x1A. A terminal stdin is
put in cbreak/-echo mode and restored on exit. After a lost connection the session is
resumed (ResumeSession, then the StreamUrl is dialled again with the new token).

EXIT STATUS: session-manager-plugin always exits 0. ssm-session exits with the remote
command's exit code when the session carried one (an ExitCode payload \"EXIT_CODE: <n>\"),
else 0 after channel_closed, stdin EOF (\"Cannot perform start session: EOF\") or an expired
session (\"Session: <id> timed out.\"); 1 when the data channel cannot be opened or resumed
(the plugin would wait forever); 2 for a malformed command line (the plugin panics).
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse(&[], &mut no_env), Ok(Invocation::Installed));
        assert_eq!(
            parse(&args(&["--version"]), &mut no_env),
            Ok(Invocation::Version)
        );
        assert_eq!(parse(&args(&["--help"]), &mut no_env), Ok(Invocation::Help));
        assert_eq!(
            parse(&args(&["x", "y"]), &mut no_env),
            Ok(Invocation::UnknownOperation("x".to_owned()))
        );
        assert_eq!(
            parse(&args(&["{}", "r", "Other", "", "{}", "e"]), &mut no_env),
            Ok(Invocation::InvalidOperation)
        );
    }

    #[test]
    fn full_form_reads_the_environment_variable() {
        let mut seen = Vec::new();
        let mut env = |name: &str| {
            seen.push(name.to_owned());
            Some("{\"SessionId\":\"s\",\"TokenValue\":\"t\",\"StreamUrl\":\"ws://h/\"}".to_owned())
        };
        let parsed = parse(
            &args(&[
                "AWS_SSM_START_SESSION_RESPONSE",
                "us-east-1",
                "StartSession",
                "",
                "{\"Target\": \"i-0123456789abcdef0\"}",
                "http://127.0.0.1:4583",
            ]),
            &mut env,
        );
        let Ok(Invocation::Start(start)) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(seen, ["AWS_SSM_START_SESSION_RESPONSE"]);
        assert_eq!(start.target, "i-0123456789abcdef0");
        assert_eq!(start.endpoint, "http://127.0.0.1:4583");
        assert_eq!(start.response().unwrap().token_value, "t");
    }

    #[test]
    fn legacy_form_and_missing_target() {
        let legacy = parse(&args(&["{}", "us-east-1", "StartSession"]), &mut no_env);
        assert!(matches!(legacy, Ok(Invocation::Start(ref s)) if s.endpoint.is_empty()));
        let err = parse(
            &args(&[
                "{}",
                "r",
                "StartSession",
                "",
                "{\"DocumentName\":\"x\"}",
                "e",
            ]),
            &mut no_env,
        )
        .unwrap_err();
        assert_eq!(err.status, 2);
        assert!(err.message.contains("Target"), "{}", err.message);
    }
}

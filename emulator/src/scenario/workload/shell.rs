//! `shell`: an interactive session (SSM-SessionManagerRunShell) through `ssm-session`, lines
//! typed one at a time, each waiting for the output it should bring. When the client's
//! websocket drops, `ssm-session` calls ResumeSession and re-dials by itself (spec §8.3), so a
//! step typed after a fault shows whether the session survived it.
//!
//! Facts: `steps` and `steps-passed`, `output` (everything the client printed), `exit-code`
//! (after `exit`, the shell's; -1 if the client did not exit), `client-errors` (its stderr),
//! `error` when the session could not start.

use tokio::time::Instant;

use super::plugin::Plugin;
use super::{Context, Outcome};
use crate::scenario::file::{ShellSpec, show_duration};
use crate::scenario::limits::CLIENT_START_LIMIT;

/// Opens the session, types the steps, and ends it with `exit`.
pub async fn run(ctx: &Context, spec: &ShellSpec) -> Outcome {
    let mut out = Outcome::default();
    let mut plugin = match Plugin::start(ctx, &spec.instance, None).await {
        Ok(plugin) => plugin,
        Err(e) => {
            out.error(e);
            out.fact("steps-passed", 0);
            return out;
        }
    };
    out.line(format!(
        "{} session {} started",
        super::since(ctx.start),
        plugin.session_id
    ));
    let mut passed = 0u64;
    for step in &spec.steps {
        if let Some(at) = step.at {
            tokio::time::sleep_until(ctx.start + at).await;
        }
        let mark = plugin.mark();
        let typed = Instant::now();
        if let Err(e) = plugin.type_line(&step.send).await {
            out.error(e);
            break;
        }
        let Some(expected) = &step.expect else {
            out.line(format!("{} typed {:?}", super::since(ctx.start), step.send));
            passed += 1;
            continue;
        };
        let seen = plugin
            .wait_for(mark, step.wait, |text| {
                text.contains(expected.as_str()).then_some(())
            })
            .await;
        match seen {
            Some(()) => {
                passed += 1;
                out.line(format!(
                    "{} typed {:?}: {expected:?} came back after {:.2}s",
                    super::since(ctx.start),
                    step.send,
                    typed.elapsed().as_secs_f64()
                ));
            }
            None => out.line(format!(
                "{} typed {:?}: {expected:?} did not come back within {}",
                super::since(ctx.start),
                step.send,
                show_duration(step.wait)
            )),
        }
    }
    let exit_code = if spec.exit {
        let _ = plugin.type_line("exit").await;
        plugin.wait_exit(CLIENT_START_LIMIT).await
    } else {
        plugin.interrupt();
        plugin.wait_exit(CLIENT_START_LIMIT).await
    };
    out.line(format!(
        "{} client exited with {}",
        super::since(ctx.start),
        exit_code.map_or_else(|| "no status (killed)".to_owned(), |c| c.to_string())
    ));
    out.fact("steps", spec.steps.len() as u64);
    out.fact("steps-passed", passed);
    out.fact("exit-code", f64::from(exit_code.unwrap_or(-1)));
    out.fact("output", plugin.output());
    out.fact("client-errors", plugin.errors());
    out
}

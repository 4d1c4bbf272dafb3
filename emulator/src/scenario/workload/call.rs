//! `api-call`: one call of one operation, no retry, and what came back.
//!
//! Facts: `http-status`, `error-type` (the `__type` without namespace, empty on success),
//! `response` (the JSON body as text), `error` when no HTTP answer came.

use serde_json::json;

use super::{Context, Outcome};
use crate::scenario::file::ApiCallSpec;

/// Makes the call.
pub async fn run(ctx: &Context, spec: &ApiCallSpec) -> Outcome {
    let mut out = Outcome::default();
    let body = spec.body.clone().unwrap_or_else(|| json!({}));
    match ctx.client.call(&spec.operation, &body).await {
        Ok(answer) => {
            let error_type = answer.error_type().unwrap_or_default().to_owned();
            out.line(format!(
                "{} {}: HTTP {}{}",
                super::since(ctx.start),
                spec.operation,
                answer.status,
                if error_type.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {error_type}: {}",
                        answer.body["message"].as_str().unwrap_or("")
                    )
                }
            ));
            out.fact("http-status", u64::from(answer.status));
            out.fact("error-type", error_type);
            out.fact("response", answer.body.to_string());
        }
        Err(e) => out.error(e),
    }
    out
}

//! `api-storm`: `calls` calls of one operation, one after the other, each with the SDKs'
//! standard retry mode (aws-sdk-rust `RetryConfig::standard()`, botocore `mode = standard`):
//!
//! - throttling errors (`ThrottlingException` and its kin) and transient ones (HTTP 5xx, no
//!   answer) are retried, anything else is final;
//! - at most `max-attempts` attempts per call; before retry `n` the client sleeps a random
//!   fraction ("full jitter") of `min(initial-backoff × 2^(n-1), max-backoff)`;
//! - a retry quota: [`RETRY_QUOTA`] tokens, [`RETRY_COST`] per retry, refunded when the
//!   retried call succeeds, [`RETRY_REFUND`] back for a call that succeeds at once; with too
//!   few tokens left the error is returned without a retry.
//!
//! The jitter comes from the scenario's seed, and the calls are sequential, so with an api
//! rule on this operation alone the same seed gives the same throttled attempts.
//!
//! Facts: `calls`, `succeeded`, `failed`, `attempts`, `retries`, `throttled` (attempts
//! answered with a throttling error), `transient`, `quota-left`, `seconds`, `last-error`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

use super::{Context, Outcome};
use crate::scenario::client::Answer;
use crate::scenario::file::ApiStormSpec;
use crate::scenario::limits::{RETRY_COST, RETRY_QUOTA, RETRY_REFUND};

/// Seed of the jitter, mixed into the scenario's.
const JITTER_STREAM: u64 = 0x6a69_7474;

/// The error codes the SDKs retry as throttling (aws-smithy-runtime's THROTTLING_ERRORS).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Ok,
    Throttled,
    Transient,
    Final,
}

fn classify(answer: &Result<Answer, String>) -> Attempt {
    match answer {
        Ok(a) if a.status < 300 => Attempt::Ok,
        Ok(a) if a.error_type().is_some_and(|t| THROTTLING.contains(&t)) => Attempt::Throttled,
        Ok(a) if a.status >= 500 => Attempt::Transient,
        Ok(_) => Attempt::Final,
        Err(_) => Attempt::Transient,
    }
}

/// The counts of a storm.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    failed: u64,
    attempts: u64,
    retries: u64,
    throttled: u64,
    transient: u64,
    last_error: String,
}

/// Runs the storm.
pub async fn run(ctx: &Context, spec: &ApiStormSpec) -> Outcome {
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ JITTER_STREAM);
    let body = spec.body.clone().unwrap_or_else(|| json!({}));
    let mut quota = RETRY_QUOTA;
    let mut tally = Tally::default();
    let started = Instant::now();
    for _ in 0..spec.calls {
        let mut taken = 0;
        let mut attempt = 1;
        loop {
            let answer = ctx.client.call(&spec.operation, &body).await;
            tally.attempts += 1;
            let kind = classify(&answer);
            match kind {
                Attempt::Throttled => tally.throttled += 1,
                Attempt::Transient => tally.transient += 1,
                _ => {}
            }
            if kind == Attempt::Ok {
                tally.succeeded += 1;
                quota = (quota + if taken == 0 { RETRY_REFUND } else { taken }).min(RETRY_QUOTA);
                break;
            }
            let retryable = matches!(kind, Attempt::Throttled | Attempt::Transient);
            if !retryable || attempt >= spec.max_attempts || quota < RETRY_COST {
                tally.failed += 1;
                tally.last_error = match answer {
                    Ok(a) => a.ok().err().unwrap_or_default(),
                    Err(e) => e,
                };
                break;
            }
            quota -= RETRY_COST;
            taken += RETRY_COST;
            tally.retries += 1;
            tokio::time::sleep(backoff(spec, attempt, &mut rng)).await;
            attempt += 1;
        }
    }
    let mut out = Outcome::default();
    out.line(format!(
        "{} calls of {}: {} succeeded, {} failed after retries; {} attempts, {} throttled, \
         {} transient errors, {} retries; {:.2}s",
        spec.calls,
        spec.operation,
        tally.succeeded,
        tally.failed,
        tally.attempts,
        tally.throttled,
        tally.transient,
        tally.retries,
        started.elapsed().as_secs_f64()
    ));
    if !tally.last_error.is_empty() {
        out.line(format!("last error: {}", tally.last_error));
    }
    out.fact("calls", u64::from(spec.calls));
    out.fact("succeeded", tally.succeeded);
    out.fact("failed", tally.failed);
    out.fact("attempts", tally.attempts);
    out.fact("retries", tally.retries);
    out.fact("throttled", tally.throttled);
    out.fact("transient", tally.transient);
    out.fact("quota-left", u64::from(quota));
    out.fact("seconds", started.elapsed().as_secs_f64());
    out.fact("last-error", tally.last_error);
    out
}

/// The sleep before retry number `attempt` (1 for the first retry): full jitter over the
/// capped exponential.
fn backoff(spec: &ApiStormSpec, attempt: u32, rng: &mut StdRng) -> Duration {
    let exponential = spec
        .initial_backoff
        .saturating_mul(1u32 << (attempt - 1).min(20))
        .min(spec.max_backoff);
    exponential.mul_f64(rng.random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::limits::{STANDARD_INITIAL_BACKOFF, STANDARD_MAX_BACKOFF};

    fn spec() -> ApiStormSpec {
        ApiStormSpec {
            operation: "DescribeInstanceInformation".into(),
            body: None,
            calls: 1,
            max_attempts: 3,
            initial_backoff: STANDARD_INITIAL_BACKOFF,
            max_backoff: STANDARD_MAX_BACKOFF,
        }
    }

    #[test]
    fn backoff_is_full_jitter_over_a_capped_exponential() {
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in 1..10 {
            let cap = STANDARD_INITIAL_BACKOFF
                .saturating_mul(1 << (attempt - 1))
                .min(STANDARD_MAX_BACKOFF);
            let delay = backoff(&spec(), attempt, &mut rng);
            assert!(delay <= cap, "retry {attempt}: {delay:?} > {cap:?}");
        }
        let mut a = StdRng::seed_from_u64(9);
        let mut b = StdRng::seed_from_u64(9);
        assert_eq!(backoff(&spec(), 2, &mut a), backoff(&spec(), 2, &mut b));
    }

    #[test]
    fn errors_are_classified_as_the_sdks_do() {
        let answer = |status, kind: &str| {
            Ok(Answer {
                status,
                body: json!({ "__type": kind, "message": "m" }),
            })
        };
        assert_eq!(classify(&answer(200, "")), Attempt::Ok);
        assert_eq!(
            classify(&answer(400, "ThrottlingException")),
            Attempt::Throttled
        );
        assert_eq!(
            classify(&answer(500, "InternalServerError")),
            Attempt::Transient
        );
        assert_eq!(classify(&answer(400, "InvalidInstanceId")), Attempt::Final);
        assert_eq!(classify(&Err("reset".into())), Attempt::Transient);
    }
}

//! boto3 against the emulator: its paginator and its `ClientError`s, as a boto3 user reads them.

use serde_json::{Value, json};
use ssm_e2e::{Emulator, uuid_shaped};

use crate::{fleet, many};

#[test]
fn paginator_yields_every_instance_exactly_once() {
    let (ids, instances) = many(12);
    let emu = Emulator::start(&instances);

    let out = emu.python().script("paginate_instances.py", &["5"]).json();

    let pages: Vec<Vec<String>> = serde_json::from_value(out["pages"].clone()).unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 2]);
    assert_eq!(pages.concat(), ids);
}

#[test]
fn client_errors_carry_code_message_status_and_request_id() {
    let emu = Emulator::start(&fleet());

    let out = emu.python().script("client_errors.py", &[]).json();

    let results = out.as_array().expect("a list of results");
    let error = |code: &str, message: &str, operation: &str| {
        json!({
            "code": code,
            "message": message,
            "status": 400,
            "str": format!("An error occurred ({code}) when calling the {operation} operation: {message}"),
        })
    };
    let without_id = |r: &Value| {
        let mut r = r.clone();
        r.as_object_mut().map(|o| o.remove("request_id"));
        r
    };
    assert_eq!(
        results.iter().map(without_id).collect::<Vec<_>>(),
        [
            error(
                "InvalidInstanceId",
                "Invalid instance id(s): bogus",
                "DescribeInstanceInformation"
            ),
            error(
                "ValidationException",
                "1 validation error detected: Value '4' at 'maxResults' failed to satisfy \
                 constraint: Member must have value greater than or equal to 5",
                "DescribeInstanceInformation"
            ),
            error(
                "InvalidNextToken",
                "The specified token is not valid.",
                "DescribeInstanceInformation"
            ),
            error(
                "InvalidResourceId",
                "No managed node with ID i-0ffffffffffffffff in us-east-1 for account \
                 123456789012",
                "ListTagsForResource"
            ),
            error(
                "UnknownOperationException",
                "Operation AmazonSSM.DescribePatchBaselines is not supported by ssm-emulator",
                "DescribePatchBaselines"
            ),
        ]
    );
    let mut ids: Vec<&str> = results
        .iter()
        .map(|r| r["request_id"].as_str().unwrap_or_default())
        .collect();
    assert!(ids.iter().all(|id| uuid_shaped(id)), "request ids: {ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), results.len(), "request ids are distinct");
}

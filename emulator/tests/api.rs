//! The SSM API through `app().oneshot`: every operation's happy path and error paths, the
//! protocol-level errors, pagination, filters and PingStatus on a manual clock.
//!
//! Run with `cargo test -p ssm-emulator --test api`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{GRACE, START, TestEmu, declared, ec2_id, full_report};

const EC2: &str = "i-0123456789abcdef0";
const HYBRID: &str = "mi-0123456789abcdef1";

// ---------------------------------------------------------------------------------------------
// Protocol-level behaviour.

#[tokio::test]
async fn unknown_operation_is_an_aws_error_naming_it() {
    let t = TestEmu::new();
    let message = t
        .call("FrobnicateWidgets", json!({}))
        .await
        .client_error("UnknownOperationException");
    assert!(message.contains("AmazonSSM.FrobnicateWidgets"), "{message}");

    let message = t
        .send(Some("AmazonEC2.DescribeInstances"), None, b"{}".to_vec())
        .await
        .client_error("UnknownOperationException");
    assert!(message.contains("AmazonEC2.DescribeInstances"), "{message}");

    let message = t
        .send(None, None, b"{}".to_vec())
        .await
        .client_error("UnknownOperationException");
    assert!(message.contains("X-Amz-Target"), "{message}");
}

#[tokio::test]
async fn malformed_json_is_a_serialization_exception() {
    let t = TestEmu::new();
    let target = Some("AmazonSSM.DescribeInstanceInformation");
    t.send(target, None, b"{\"MaxResults\": ".to_vec())
        .await
        .client_error("SerializationException");
    t.send(target, None, b"[1, 2]".to_vec())
        .await
        .client_error("SerializationException");
    // A member of the wrong JSON type is a serialization error too, not a validation one.
    t.call("DescribeInstanceInformation", json!({"MaxResults": "ten"}))
        .await
        .client_error("SerializationException");
}

#[tokio::test]
async fn empty_body_counts_as_empty_object() {
    let t = TestEmu::new();
    let body = t
        .send(
            Some("AmazonSSM.DescribeInstanceInformation"),
            None,
            Vec::new(),
        )
        .await
        .ok();
    assert_eq!(body, json!({"InstanceInformationList": []}));
}

#[tokio::test]
async fn request_ids_are_fresh_uuids_from_the_seed() {
    let (a, b) = (TestEmu::new(), TestEmu::new());
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(
            a.call("DescribeInstanceInformation", json!({}))
                .await
                .request_id,
        );
    }
    let mut second = Vec::new();
    for _ in 0..3 {
        second.push(
            b.call("DescribeInstanceInformation", json!({}))
                .await
                .request_id,
        );
    }
    assert_eq!(first, second, "same seed, same requests, same ids");
    assert_ne!(first[0], first[1]);
    assert!(
        first
            .iter()
            .all(|id| support::uuid_shaped(id.as_deref().unwrap()))
    );
}

#[tokio::test]
async fn region_comes_from_the_signature() {
    let t = TestEmu::new();
    t.call_in("eu-west-1", "UpdateInstanceInformation", full_report(EC2))
        .await
        .ok();
    assert!(
        t.describe_all().await.is_empty(),
        "us-east-1 must not see it"
    );
    let body = t
        .call_in("eu-west-1", "DescribeInstanceInformation", json!({}))
        .await
        .ok();
    assert_eq!(body["InstanceInformationList"][0]["InstanceId"], EC2);
    // Explicitly signed for the default region is the same store as unsigned.
    t.call_in(
        "us-east-1",
        "UpdateInstanceInformation",
        full_report(HYBRID),
    )
    .await
    .ok();
    assert_eq!(t.describe_all().await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// UpdateInstanceInformation and DescribeInstanceInformation output.

#[tokio::test]
async fn minimal_report_creates_an_online_ec2_instance() {
    let t = TestEmu::new();
    let body = t
        .call(
            "UpdateInstanceInformation",
            json!({"AgentName":"amazon-ssm-agent","AgentVersion":"3.3.1142.0",
                   "InstanceId": EC2,"PlatformType":"Linux"}),
        )
        .await
        .ok();
    assert_eq!(body, json!({}));

    let list = t.describe_all().await;
    assert_eq!(
        list,
        vec![json!({
            "InstanceId": EC2, "PingStatus": "Online", "LastPingDateTime": START as f64,
            "AgentVersion": "3.3.1142.0", "IsLatestVersion": true, "PlatformType": "Linux",
            "RegistrationDate": START as f64, "ResourceType": "EC2Instance",
            "SourceId": EC2, "SourceType": "AWS::EC2::Instance"
        })]
    );
}

#[tokio::test]
async fn full_report_fills_every_member_and_keeps_registration_date() {
    let t = TestEmu::new();
    t.report(HYBRID).await;
    t.clock.advance(Duration::from_millis(30_250));
    let mut report = full_report(HYBRID);
    report["AgentVersion"] = json!("3.2.0.1");
    report["IPAddress"] = json!("");
    t.call("UpdateInstanceInformation", report).await.ok();

    let node = &t.describe_all().await[0];
    assert_eq!(node["ResourceType"], "ManagedInstance");
    assert_eq!(node["SourceType"], "AWS::SSM::ManagedInstance");
    assert_eq!(node["ComputerName"], "host-1");
    assert_eq!(
        node["IPAddress"], "10.0.0.7",
        "an empty IPAddress keeps the old one"
    );
    assert_eq!(node["PlatformName"], "Debian GNU/Linux");
    assert_eq!(node["PlatformVersion"], "12");
    assert_eq!(node["AgentVersion"], "3.2.0.1");
    assert_eq!(node["IsLatestVersion"], false);
    assert_eq!(node["RegistrationDate"], START as f64);
    assert_eq!(node["LastPingDateTime"], START as f64 + 30.25);
}

#[tokio::test]
async fn update_instance_information_validation() {
    let t = TestEmu::new();
    let message = t
        .call(
            "UpdateInstanceInformation",
            json!({"AgentVersion": "3.3.1142.0"}),
        )
        .await
        .client_error("ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value null at 'instanceId' failed to satisfy constraint: \
         Member must not be null"
    );

    let message = t
        .call(
            "UpdateInstanceInformation",
            json!({"InstanceId": "i-123", "AgentVersion": "three", "PlatformType": "Plan9"}),
        )
        .await
        .client_error("ValidationException");
    assert!(
        message.starts_with("3 validation errors detected: "),
        "{message}"
    );
    assert!(
        message.contains("Value 'i-123' at 'instanceId'"),
        "{message}"
    );
    assert!(
        message.contains("Value 'three' at 'agentVersion'"),
        "{message}"
    );
    assert!(
        message.contains(
            "Value 'Plan9' at 'platformType' failed to satisfy constraint: Member must satisfy \
             enum value set: [Windows, Linux, MacOS]"
        ),
        "{message}"
    );
    assert!(t.describe_all().await.is_empty(), "nothing was created");
}

// ---------------------------------------------------------------------------------------------
// PingStatus and GetConnectionStatus on the manual clock.

#[tokio::test]
async fn ping_status_turns_connection_lost_after_the_grace_period() {
    let t = TestEmu::new();
    t.report(EC2).await;
    let status = |list: Vec<Value>| list[0]["PingStatus"].as_str().unwrap().to_owned();
    let connection = async || {
        t.call("GetConnectionStatus", json!({"Target": EC2}))
            .await
            .ok()["Status"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    t.clock.advance(GRACE);
    assert_eq!(status(t.describe_all().await), "Online");
    assert_eq!(connection().await, "connected");

    t.clock.advance(Duration::from_millis(1));
    assert_eq!(status(t.describe_all().await), "ConnectionLost");
    assert_eq!(connection().await, "notconnected");
    let lost = t
        .ids(json!({"Filters": [{"Key": "PingStatus", "Values": ["ConnectionLost"]}]}))
        .await;
    assert_eq!(lost, vec![EC2]);

    // The next health ping brings it back.
    t.report(EC2).await;
    assert_eq!(status(t.describe_all().await), "Online");

    // The control-channel seam: an open channel keeps the node Online without pings.
    t.clock.advance(GRACE * 10);
    let scope = t.emu.scope("us-east-1");
    assert!(t.emu.set_connected(&scope, EC2, true));
    assert_eq!(status(t.describe_all().await), "Online");
    assert_eq!(connection().await, "connected");
    assert!(t.emu.set_connected(&scope, EC2, false));
    assert_eq!(status(t.describe_all().await), "ConnectionLost");
    assert!(!t.emu.set_connected(&scope, HYBRID, true), "unknown node");
}

#[tokio::test]
async fn get_connection_status_of_unknown_target_and_validation() {
    let t = TestEmu::new();
    let body = t
        .call(
            "GetConnectionStatus",
            json!({"Target": "i-0000000000000000f"}),
        )
        .await
        .ok();
    assert_eq!(
        body,
        json!({"Target": "i-0000000000000000f", "Status": "notconnected"})
    );

    let message = t
        .call("GetConnectionStatus", json!({}))
        .await
        .client_error("ValidationException");
    assert!(message.contains("Value null at 'target'"), "{message}");
    let message = t
        .call("GetConnectionStatus", json!({"Target": ""}))
        .await
        .client_error("ValidationException");
    assert!(
        message.contains("Member must have length greater than or equal to 1"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// DescribeInstanceInformation: pagination.

#[tokio::test]
async fn pagination_walks_every_node_once_with_max_results_5() {
    let t = TestEmu::new();
    let mut expected: Vec<String> = (0..12).map(ec2_id).collect();
    for id in expected.iter().rev() {
        t.report(id).await;
    }
    expected.sort();

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut token: Option<Value> = None;
    loop {
        let mut request = json!({"MaxResults": 5});
        if let Some(token) = &token {
            request["NextToken"] = token.clone();
        }
        let body = t.call("DescribeInstanceInformation", request).await.ok();
        let page = body["InstanceInformationList"].as_array().unwrap();
        pages.push(page.len());
        seen.extend(
            page.iter()
                .map(|i| i["InstanceId"].as_str().unwrap().to_owned()),
        );
        match body.get("NextToken") {
            Some(next) => token = Some(next.clone()),
            None => break,
        }
    }
    assert_eq!(pages, vec![5, 5, 2]);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn next_token_is_bound_to_its_query() {
    let t = TestEmu::new();
    for n in 0..7 {
        t.report(&ec2_id(n)).await;
    }
    let body = t
        .call("DescribeInstanceInformation", json!({"MaxResults": 5}))
        .await
        .ok();
    let token = body["NextToken"].clone();

    // The same token with different filters, in another region, or made up: InvalidNextToken.
    t.call(
        "DescribeInstanceInformation",
        json!({"NextToken": token, "Filters": [{"Key": "PlatformTypes", "Values": ["Linux"]}]}),
    )
    .await
    .client_error("InvalidNextToken");
    t.call_in(
        "eu-west-1",
        "DescribeInstanceInformation",
        json!({"NextToken": token}),
    )
    .await
    .client_error("InvalidNextToken");
    t.call(
        "DescribeInstanceInformation",
        json!({"NextToken": "bm90IGEgdG9rZW4"}),
    )
    .await
    .client_error("InvalidNextToken");
    t.call("DescribeInstanceInformation", json!({"NextToken": "%%%"}))
        .await
        .client_error("InvalidNextToken");
    // A node added between pages does not shift the rest.
    t.report("i-00000000000000000").await;
    let rest = t.ids(json!({"MaxResults": 5, "NextToken": token})).await;
    assert_eq!(rest, vec![ec2_id(5), ec2_id(6)]);
}

#[tokio::test]
async fn max_results_must_be_between_5_and_50() {
    let t = TestEmu::new();
    let message = t
        .call("DescribeInstanceInformation", json!({"MaxResults": 4}))
        .await
        .client_error("ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value '4' at 'maxResults' failed to satisfy constraint: \
         Member must have value greater than or equal to 5"
    );
    let message = t
        .call("DescribeInstanceInformation", json!({"MaxResults": 51}))
        .await
        .client_error("ValidationException");
    assert!(
        message.ends_with("Member must have value less than or equal to 50"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// DescribeInstanceInformation: filters.

/// Three nodes: a Linux EC2 node tagged Env=dev, a Windows hybrid node tagged Env=prod, and an
/// offline Linux node with an old agent.
async fn fleet() -> TestEmu {
    TestEmu::with_instances(vec![
        declared(json!({"id": ec2_id(1), "tags": {"Env": "dev", "Team": "a"}})),
        declared(json!({"id": "mi-0000000000000000b", "platform": "Windows",
                        "tags": {"Env": "prod"}})),
        declared(json!({"id": ec2_id(3), "online": false, "agent_version": "3.0.1.0"})),
    ])
}

#[tokio::test]
async fn filters_select_nodes() {
    let t = fleet().await;
    let hybrid = "mi-0000000000000000b".to_owned();
    let cases: Vec<(Value, Vec<String>)> = vec![
        (
            json!([{"Key": "tag:Env", "Values": ["dev"]}]),
            vec![ec2_id(1)],
        ),
        (
            json!([{"Key": "tag:Env", "Values": ["dev", "prod"]}]),
            vec![ec2_id(1), hybrid.clone()],
        ),
        (json!([{"Key": "tag:Env", "Values": ["qa"]}]), vec![]),
        (
            json!([{"Key": "tag-key", "Values": ["Team"]}]),
            vec![ec2_id(1)],
        ),
        (
            json!([{"Key": "tag:Env", "Values": ["dev", "prod"]}, {"Key": "tag-key", "Values": ["Team"]}]),
            vec![ec2_id(1)],
        ),
        (
            json!([{"Key": "PingStatus", "Values": ["ConnectionLost"]}]),
            vec![ec2_id(3)],
        ),
        (
            json!([{"Key": "PlatformTypes", "Values": ["Windows"]}]),
            vec![hybrid.clone()],
        ),
        (
            json!([{"Key": "ResourceType", "Values": ["EC2Instance"]}]),
            vec![ec2_id(1), ec2_id(3)],
        ),
        (
            json!([{"Key": "AgentVersion", "Values": ["3.0.1.0"]}]),
            vec![ec2_id(3)],
        ),
        (
            json!([{"Key": "InstanceIds", "Values": [ec2_id(1), ec2_id(9)]},
                   {"Key": "PingStatus", "Values": ["Online"]}]),
            vec![ec2_id(1)],
        ),
        (
            json!([{"Key": "SourceTypes", "Values": ["AWS::SSM::ManagedInstance"]}]),
            vec![hybrid.clone()],
        ),
        (
            json!([{"Key": "AssociationStatus", "Values": ["Failed"]}]),
            vec![],
        ),
    ];
    for (filters, expected) in cases {
        assert_eq!(
            t.ids(json!({"Filters": filters})).await,
            expected,
            "Filters {filters}"
        );
    }
    let legacy = t
        .ids(json!({"InstanceInformationFilterList": [
            {"key": "PlatformTypes", "valueSet": ["Linux"]},
            {"key": "PingStatus", "valueSet": ["Online"]}
        ]}))
        .await;
    assert_eq!(legacy, vec![ec2_id(1)]);
}

#[tokio::test]
async fn filter_errors() {
    let t = fleet().await;
    let describe = async |request: Value, code: &str| {
        t.call("DescribeInstanceInformation", request)
            .await
            .client_error(code)
    };

    let both = json!({
        "InstanceInformationFilterList": [{"key": "PingStatus", "valueSet": ["Online"]}],
        "Filters": [{"Key": "PingStatus", "Values": ["Online"]}]
    });
    describe(both, "ValidationException").await;

    let message = describe(
        json!({"Filters": [{"Key": "Colour", "Values": ["red"]}]}),
        "InvalidFilterKey",
    )
    .await;
    assert!(message.contains("Colour"), "{message}");

    let message = describe(
        json!({"InstanceInformationFilterList": [{"key": "Colour", "valueSet": ["red"]}]}),
        "ValidationException",
    )
    .await;
    assert!(
        message.contains(
            "at 'instanceInformationFilterList.1.member.key' failed to satisfy \
                          constraint: Member must satisfy enum value set"
        ),
        "{message}"
    );

    let message = describe(
        json!({"Filters": [{"Key": "ResourceType", "Values": ["EC2Instance", "ManagedInstance"]}]}),
        "InvalidInstanceInformationFilterValue",
    )
    .await;
    assert_eq!(message, "ResourceType filter may contain only one value.");
    let message = describe(
        json!({"Filters": [{"Key": "ResourceType", "Values": ["Document"]}]}),
        "InvalidInstanceInformationFilterValue",
    )
    .await;
    assert_eq!(
        message,
        "ResourceType filter is invalid, valid values are EC2Instance, ManagedInstance"
    );
    describe(
        json!({"Filters": [{"Key": "PingStatus", "Values": ["Sleeping"]}]}),
        "InvalidInstanceInformationFilterValue",
    )
    .await;
    describe(
        json!({"InstanceInformationFilterList": [{"key": "PlatformTypes", "valueSet": ["linux"]}]}),
        "InvalidInstanceInformationFilterValue",
    )
    .await;
    describe(
        json!({"Filters": [{"Key": "InstanceIds", "Values": ["i-nope"]}]}),
        "InvalidInstanceId",
    )
    .await;

    let message = describe(
        json!({"Filters": [{"Key": "tag:Env", "Values": ["dev"]},
                           {"Key": "PingStatus", "Values": ["Online"]}]}),
        "ValidationException",
    )
    .await;
    assert_eq!(
        message,
        "Cannot mix tag or inventory filter with any other filter."
    );

    let message = describe(
        json!({"Filters": [{"Key": "PingStatus", "Values": []}]}),
        "ValidationException",
    )
    .await;
    assert!(
        message.contains(
            "Value '[]' at 'filters.1.member.values' failed to satisfy constraint: \
                          Member must have length greater than or equal to 1"
        ),
        "{message}"
    );
    let message = describe(json!({"Filters": []}), "ValidationException").await;
    assert!(message.contains("at 'filters'"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Declared instances.

#[tokio::test]
async fn declared_instances_hold_their_status_until_an_agent_reports() {
    let t = TestEmu::with_instances(vec![
        declared(json!({"id": EC2, "platform_name": "Ubuntu", "name": "web",
                        "computer_name": "web-1", "ip_address": "10.1.1.1"})),
        declared(json!({"id": HYBRID, "online": false})),
        declared(json!({"id": ec2_id(5), "region": "ap-south-1"})),
    ]);
    t.clock.advance(GRACE * 100);
    let list = t.describe_all().await;
    assert_eq!(list.len(), 2, "the ap-south-1 node lives in its own region");
    assert_eq!(list[0]["InstanceId"], EC2);
    assert_eq!(list[0]["PingStatus"], "Online");
    assert_eq!(list[0]["Name"], "web");
    assert_eq!(list[0]["ComputerName"], "web-1");
    assert_eq!(list[0]["PlatformName"], "Ubuntu");
    assert_eq!(list[0]["PlatformType"], "Linux");
    assert_eq!(list[1]["PingStatus"], "ConnectionLost");
    let other = t
        .call_in("ap-south-1", "DescribeInstanceInformation", json!({}))
        .await
        .ok();
    assert_eq!(other["InstanceInformationList"][0]["InstanceId"], ec2_id(5));

    // Once an agent reports for the offline node, its pings decide.
    t.report(HYBRID).await;
    assert_eq!(t.describe_all().await[1]["PingStatus"], "Online");
    t.clock.advance(GRACE * 2);
    assert_eq!(t.describe_all().await[1]["PingStatus"], "ConnectionLost");
}

// ---------------------------------------------------------------------------------------------
// Tags.

#[tokio::test]
async fn tags_add_list_overwrite_remove_on_both_id_forms() {
    let t = TestEmu::new();
    for id in [EC2, HYBRID] {
        t.report(id).await;
        let resource = json!({"ResourceType": "ManagedInstance", "ResourceId": id});
        let with = |extra: Value| {
            let mut body = resource.clone();
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        let body = t
            .call(
                "AddTagsToResource",
                with(json!({"Tags": [
                    {"Key": "Role", "Value": "web"}, {"Key": "Env", "Value": "dev"}
                ]})),
            )
            .await
            .ok();
        assert_eq!(body, json!({}));
        t.call(
            "AddTagsToResource",
            with(json!({"Tags": [{"Key": "Env", "Value": "prod"}]})),
        )
        .await
        .ok();
        let body = t.call("ListTagsForResource", resource.clone()).await.ok();
        assert_eq!(
            body,
            json!({"TagList": [{"Key": "Env", "Value": "prod"}, {"Key": "Role", "Value": "web"}]})
        );
        assert_eq!(
            t.ids(json!({"Filters": [{"Key": "tag:Env", "Values": ["prod"]}]}))
                .await
                .last()
                .unwrap(),
            id
        );

        let body = t
            .call(
                "RemoveTagsFromResource",
                with(json!({"TagKeys": ["Env", "Missing"]})),
            )
            .await
            .ok();
        assert_eq!(body, json!({}));
        let body = t.call("ListTagsForResource", resource).await.ok();
        assert_eq!(body, json!({"TagList": [{"Key": "Role", "Value": "web"}]}));
    }
}

#[tokio::test]
async fn tag_errors() {
    let t = TestEmu::new();
    t.report(EC2).await;
    let tag = |n: usize| json!({"Key": format!("k{n}"), "Value": "v"});

    t.call(
        "ListTagsForResource",
        json!({"ResourceType": "Document", "ResourceId": "MyDoc"}),
    )
    .await
    .client_error("InvalidResourceType");
    let message = t
        .call(
            "ListTagsForResource",
            json!({"ResourceType": "Bucket", "ResourceId": EC2}),
        )
        .await
        .client_error("ValidationException");
    assert!(
        message.contains("Value 'Bucket' at 'resourceType'"),
        "{message}"
    );
    t.call(
        "AddTagsToResource",
        json!({"ResourceType": "ManagedInstance", "ResourceId": "mi-00000000000000000", "Tags": [tag(1)]}),
    )
    .await
    .client_error("InvalidResourceId");
    t.call(
        "RemoveTagsFromResource",
        json!({"ResourceType": "ManagedInstance", "ResourceId": "i-nope", "TagKeys": ["k"]}),
    )
    .await
    .client_error("InvalidResourceId");

    let message = t
        .call(
            "AddTagsToResource",
            json!({"ResourceType": "ManagedInstance", "ResourceId": EC2,
                   "Tags": [{"Key": "aws:reserved", "Value": "x"}, {"Key": "ok"}]}),
        )
        .await
        .client_error("ValidationException");
    assert!(
        message.starts_with("2 validation errors detected"),
        "{message}"
    );
    assert!(message.contains("at 'tags.1.member.key'"), "{message}");
    assert!(
        message.contains("Value null at 'tags.2.member.value'"),
        "{message}"
    );
    let message = t
        .call(
            "AddTagsToResource",
            json!({"ResourceType": "ManagedInstance", "ResourceId": EC2, "Tags": []}),
        )
        .await
        .client_error("ValidationException");
    assert!(message.contains("at 'tags'"), "{message}");
    t.call(
        "AddTagsToResource",
        json!({"ResourceId": EC2, "Tags": [tag(1)]}),
    )
    .await
    .client_error("ValidationException");

    let fifty: Vec<Value> = (0..50).map(tag).collect();
    t.call(
        "AddTagsToResource",
        json!({"ResourceType": "ManagedInstance", "ResourceId": EC2, "Tags": fifty}),
    )
    .await
    .ok();
    t.call(
        "AddTagsToResource",
        json!({"ResourceType": "ManagedInstance", "ResourceId": EC2, "Tags": [tag(50)]}),
    )
    .await
    .client_error("TooManyTagsError");
    // Overwriting an existing key is not an extra tag.
    t.call(
        "AddTagsToResource",
        json!({"ResourceType": "ManagedInstance", "ResourceId": EC2, "Tags": [tag(49)]}),
    )
    .await
    .ok();
}

// ---------------------------------------------------------------------------------------------
// GetInventory.

#[tokio::test]
async fn inventory_lists_the_same_nodes_as_describe() {
    let t = fleet().await;
    t.report(EC2).await;
    let body = t.call("GetInventory", json!({})).await.ok();
    let entities = body["Entities"].as_array().unwrap();
    let inventory_ids: Vec<&str> = entities.iter().map(|e| e["Id"].as_str().unwrap()).collect();
    let describe_ids = t.ids(json!({})).await;
    assert_eq!(inventory_ids, describe_ids);
    assert_eq!(inventory_ids.len(), 4);

    let reported = entities.iter().find(|e| e["Id"] == EC2).unwrap();
    assert_eq!(
        reported["Data"],
        json!({"AWS:InstanceInformation": {
            "TypeName": "AWS:InstanceInformation", "SchemaVersion": "1.0",
            "CaptureTime": "2023-11-14T22:13:20Z",
            "Content": [{
                "AgentType": "amazon-ssm-agent", "AgentVersion": "3.3.1142.0",
                "ComputerName": "host-1", "InstanceId": EC2, "InstanceStatus": "Active",
                "IpAddress": "10.0.0.7", "PlatformName": "Debian GNU/Linux",
                "PlatformType": "Linux", "PlatformVersion": "12", "ResourceType": "EC2Instance"
            }]
        }})
    );
    let offline = entities.iter().find(|e| e["Id"] == ec2_id(3)).unwrap();
    assert_eq!(
        offline["Data"]["AWS:InstanceInformation"]["Content"][0]["InstanceStatus"],
        "ConnectionLost"
    );
}

#[tokio::test]
async fn inventory_filters_pages_and_errors() {
    let t = fleet().await;
    let ids = async |request: Value| -> Vec<String> {
        let body = t.call("GetInventory", request).await.ok();
        body["Entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Id"].as_str().unwrap().to_owned())
            .collect()
    };
    let windows = ids(
        json!({"Filters": [{"Key": "AWS:InstanceInformation.PlatformType",
                                          "Values": ["Windows"]}]}),
    )
    .await;
    assert_eq!(windows, vec!["mi-0000000000000000b"]);
    let not_lost = ids(
        json!({"Filters": [{"Key": "AWS:InstanceInformation.InstanceStatus",
                                           "Values": ["ConnectionLost"], "Type": "NotEqual"}]}),
    )
    .await;
    assert_eq!(not_lost, vec![ec2_id(1), "mi-0000000000000000b".to_owned()]);

    let first = t.call("GetInventory", json!({"MaxResults": 2})).await.ok();
    assert_eq!(first["Entities"].as_array().unwrap().len(), 2);
    let rest = ids(json!({"MaxResults": 2, "NextToken": first["NextToken"]})).await;
    assert_eq!(rest, vec!["mi-0000000000000000b"]);

    t.call(
        "GetInventory",
        json!({"Filters": [{"Key": "AWS:Application.Name", "Values": ["x"]}]}),
    )
    .await
    .client_error("InvalidTypeNameException");
    t.call(
        "GetInventory",
        json!({"Filters": [{"Key": "AWS:InstanceInformation.Colour", "Values": ["x"]}]}),
    )
    .await
    .client_error("InvalidFilter");
    t.call(
        "GetInventory",
        json!({"Aggregators": [{"Expression": "AWS:Application.Name"}]}),
    )
    .await
    .client_error("InvalidAggregatorException");
    t.call(
        "GetInventory",
        json!({"ResultAttributes": [{"TypeName": "AWS:Application"}]}),
    )
    .await
    .client_error("InvalidResultAttributeException");
    t.call("GetInventory", json!({"MaxResults": 0}))
        .await
        .client_error("ValidationException");
    t.call("GetInventory", json!({"NextToken": "djE"}))
        .await
        .client_error("InvalidNextToken");
}

#[tokio::test]
async fn times_are_epoch_seconds() {
    let t = TestEmu::new();
    t.clock.advance(Duration::from_millis(1_500));
    t.report(EC2).await;
    let node = &t.describe_all().await[0];
    assert_eq!(node["LastPingDateTime"].as_f64(), Some(START as f64 + 1.5));
    assert!(node["RegistrationDate"].is_number());
}

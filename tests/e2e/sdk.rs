//! aws-sdk-ssm (lean features, plain HTTP) against the emulator: typed errors with request ids,
//! and the paginator.

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::operation::RequestId;
use aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationError;
use aws_sdk_ssm::operation::list_tags_for_resource::ListTagsForResourceError;
use aws_sdk_ssm::types::{
    InstanceInformationStringFilter, PingStatus, PlatformType, ResourceTypeForTagging,
};
use ssm_e2e::{Emulator, uuid_shaped};

use crate::{fleet, many};

#[tokio::test]
async fn typed_errors_carry_code_message_and_request_id() {
    let emu = Emulator::start(&fleet());
    let ssm = emu.sdk();

    let bogus = InstanceInformationStringFilter::builder()
        .key("InstanceIds")
        .values("bogus")
        .build()
        .unwrap();
    let e = ssm
        .describe_instance_information()
        .filters(bogus)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, DescribeInstanceInformationError::InvalidInstanceId(_)),
        "{e:?}"
    );
    assert_eq!(
        (e.code(), e.message()),
        (
            Some("InvalidInstanceId"),
            Some("Invalid instance id(s): bogus")
        )
    );
    assert!(uuid_shaped(e.request_id().unwrap_or_default()), "{e:?}");

    let e = ssm
        .describe_instance_information()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, DescribeInstanceInformationError::InvalidNextToken(_)),
        "{e:?}"
    );
    assert!(uuid_shaped(e.request_id().unwrap_or_default()), "{e:?}");

    // The SDK does not check ranges: the emulator's ValidationException comes back, as a code
    // the operation does not model.
    let e = ssm
        .describe_instance_information()
        .max_results(4)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        (e.code(), e.message()),
        (
            Some("ValidationException"),
            Some(
                "1 validation error detected: Value '4' at 'maxResults' failed to satisfy \
                 constraint: Member must have value greater than or equal to 5"
            )
        )
    );
    assert!(uuid_shaped(e.request_id().unwrap_or_default()), "{e:?}");

    let e = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id("i-0ffffffffffffffff")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(e, ListTagsForResourceError::InvalidResourceId(_)),
        "{e:?}"
    );
    assert!(uuid_shaped(e.request_id().unwrap_or_default()), "{e:?}");

    let e = ssm
        .describe_patch_baselines()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        (e.code(), e.message()),
        (
            Some("UnknownOperationException"),
            Some("Operation AmazonSSM.DescribePatchBaselines is not supported by ssm-emulator")
        )
    );
}

#[tokio::test]
async fn paginator_yields_every_instance_exactly_once() {
    let (ids, instances) = many(12);
    let emu = Emulator::start(&instances);
    let ssm = emu.sdk();

    let pages: Vec<_> = ssm
        .describe_instance_information()
        .max_results(5)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();

    let lists: Vec<_> = pages
        .iter()
        .map(|p| p.instance_information_list())
        .collect();
    assert_eq!(lists.iter().map(|l| l.len()).collect::<Vec<_>>(), [5, 5, 2]);
    let nodes: Vec<_> = lists.concat();
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.instance_id().unwrap_or_default())
            .collect::<Vec<_>>(),
        ids
    );
    for node in nodes {
        assert_eq!(node.ping_status(), Some(&PingStatus::Online), "{node:?}");
        assert_eq!(node.platform_type(), Some(&PlatformType::Linux), "{node:?}");
        assert_eq!(node.agent_version(), Some("3.3.1142.0"), "{node:?}");
    }
}

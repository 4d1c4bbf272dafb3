//! The document operations through `app().oneshot`: the AWS-owned documents as DescribeDocument
//! and GetDocument show them, listing with both filter styles and pagination, the life of the
//! account's own Command and Session documents across versions, and every error's `__type`.
//!
//! Run with `cargo test -p ssm-emulator --test documents`.

mod support;

use serde_json::{Value, json};
use support::TestEmu;

/// The documents every region starts with: the AWS-owned ones, and the account's Session
/// Manager preferences (`SSM-SessionManagerRunShell`, owned by the account as in AWS).
const BUILTINS: [&str; 7] = [
    "AWS-RunShellScript",
    "AWS-StartInteractiveCommand",
    "AWS-StartNonInteractiveCommand",
    "AWS-StartPortForwardingSession",
    "AWS-StartPortForwardingSessionToRemoteHost",
    "AWS-StartSSHSession",
    "SSM-SessionManagerRunShell",
];

/// The AWS-owned documents (`Owner: Amazon`).
const AWS_OWNED: [&str; 6] = [
    "AWS-RunShellScript",
    "AWS-StartInteractiveCommand",
    "AWS-StartNonInteractiveCommand",
    "AWS-StartPortForwardingSession",
    "AWS-StartPortForwardingSessionToRemoteHost",
    "AWS-StartSSHSession",
];

/// The account's own document every region starts with.
const PREFERENCES: &str = "SSM-SessionManagerRunShell";

fn command_body(script: &str) -> String {
    json!({
        "schemaVersion": "2.2",
        "description": "Say something.",
        "parameters": {
            "message": {"type": "String", "default": "hello", "description": "What to say."},
            "extra": {"type": "StringList", "default": []}
        },
        "mainSteps": [{"action": "aws:runShellScript", "name": "say",
                       "inputs": {"runCommand": [script]}}]
    })
    .to_string()
}

fn session_body(port: &str) -> String {
    json!({
        "schemaVersion": "1.0",
        "description": "Forward a port.",
        "sessionType": "Port",
        "parameters": {"portNumber": {"type": "String", "default": port}},
        "properties": {"portNumber": "{{ portNumber }}", "type": "LocalPortForwarding"}
    })
    .to_string()
}

async fn create(t: &TestEmu, name: &str, content: &str, document_type: &str) -> Value {
    t.call(
        "CreateDocument",
        json!({"Name": name, "Content": content, "DocumentType": document_type}),
    )
    .await
    .ok()
}

async fn names(t: &TestEmu, request: Value) -> Vec<String> {
    t.call("ListDocuments", request).await.ok()["DocumentIdentifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The AWS-owned documents.

#[tokio::test]
async fn run_shell_script_parameters_as_describe_document_shows_them() {
    let t = TestEmu::new();
    let doc = &t
        .call("DescribeDocument", json!({"Name": "AWS-RunShellScript"}))
        .await
        .ok()["Document"];
    // `aws ssm describe-document --name AWS-RunShellScript --query "Document.Parameters[*]"`.
    assert_eq!(
        doc["Parameters"],
        json!([
            {"Name": "commands", "Type": "StringList",
             "Description": "(Required) Specify a shell script or a command to run."},
            {"Name": "workingDirectory", "Type": "String",
             "Description": "(Optional) The path to the working directory on your instance.",
             "DefaultValue": ""},
            {"Name": "executionTimeout", "Type": "String",
             "Description": "(Optional) The time in seconds for a command to complete before it \
                             is considered to have failed. Default is 3600 (1 hour). Maximum is \
                             172800 (48 hours).",
             "DefaultValue": "3600"}
        ])
    );
    assert_eq!(doc["Name"], "AWS-RunShellScript");
    assert_eq!(doc["Owner"], "Amazon");
    assert_eq!(doc["DocumentType"], "Command");
    assert_eq!(doc["SchemaVersion"], "1.2");
    assert_eq!(doc["DocumentVersion"], "1");
    assert_eq!(doc["LatestVersion"], "1");
    assert_eq!(doc["DefaultVersion"], "1");
    assert_eq!(doc["Status"], "Active");
    assert_eq!(doc["DocumentFormat"], "JSON");
    assert_eq!(doc["HashType"], "Sha256");
    assert_eq!(doc["Hash"].as_str().unwrap().len(), 64);
    assert_eq!(doc["PlatformTypes"], json!(["Linux", "MacOS"]));
    assert!(doc["CreatedDate"].is_number());
}

#[tokio::test]
async fn get_document_returns_the_body_the_agent_runs() {
    let t = TestEmu::new();
    let reply = t
        .call(
            "GetDocument",
            json!({"Name": "AWS-RunShellScript", "DocumentVersion": "$LATEST"}),
        )
        .await
        .ok();
    assert_eq!(reply["DocumentType"], "Command");
    assert_eq!(reply["DocumentFormat"], "JSON");
    assert_eq!(reply["Status"], "Active");
    assert_eq!(reply["DocumentVersion"], "1");
    let content: Value = serde_json::from_str(reply["Content"].as_str().unwrap()).unwrap();
    // Spec §9.2: the runtimeConfig the agent substitutes into.
    assert_eq!(
        content["runtimeConfig"],
        json!({"aws:runShellScript": {"properties": [{"id": "0.aws:runShellScript",
            "runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}",
            "timeoutSeconds": "{{ executionTimeout }}"}]}})
    );

    for (name, session_type) in [
        ("SSM-SessionManagerRunShell", "Standard_Stream"),
        ("AWS-StartSSHSession", "Port"),
        ("AWS-StartPortForwardingSession", "Port"),
        ("AWS-StartPortForwardingSessionToRemoteHost", "Port"),
        ("AWS-StartInteractiveCommand", "InteractiveCommands"),
        ("AWS-StartNonInteractiveCommand", "NonInteractiveCommands"),
    ] {
        let reply = t.call("GetDocument", json!({"Name": name})).await.ok();
        assert_eq!(reply["DocumentType"], "Session", "{name}");
        let content: Value = serde_json::from_str(reply["Content"].as_str().unwrap()).unwrap();
        assert_eq!(content["sessionType"], session_type, "{name}");
        assert_eq!(content["schemaVersion"], "1.0", "{name}");
    }
    let ssh = t
        .call("DescribeDocument", json!({"Name": "AWS-StartSSHSession"}))
        .await
        .ok();
    assert_eq!(
        ssh["Document"]["Parameters"][0]["DefaultValue"], "22",
        "{ssh}"
    );
}

#[tokio::test]
async fn describe_document_accepts_an_arn() {
    let t = TestEmu::new();
    let arn = "arn:aws:ssm:us-east-1::document/AWS-StartPortForwardingSession";
    let doc = t.call("DescribeDocument", json!({"Name": arn})).await.ok();
    assert_eq!(doc["Document"]["Name"], "AWS-StartPortForwardingSession");
}

// ---------------------------------------------------------------------------------------------
// ListDocuments.

#[tokio::test]
async fn list_documents_filters_by_owner_type_name_and_platform() {
    let t = TestEmu::new();
    create(&t, "My-Command", &command_body("echo 1"), "Command").await;
    create(&t, "My-Session", &session_body("80"), "Session").await;

    let mut all: Vec<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
    all.extend(["My-Command".to_owned(), "My-Session".to_owned()]);
    all.sort();
    assert_eq!(names(&t, json!({})).await, all);

    let mine = names(
        &t,
        json!({"Filters": [{"Key": "Owner", "Values": ["Self"]}]}),
    )
    .await;
    assert_eq!(mine, ["My-Command", "My-Session", PREFERENCES]);
    let amazon = names(
        &t,
        json!({"Filters": [{"Key": "Owner", "Values": ["Amazon"]}]}),
    )
    .await;
    assert_eq!(amazon, AWS_OWNED);
    let legacy = names(
        &t,
        json!({"DocumentFilterList": [{"key": "Owner", "value": "Self"}]}),
    )
    .await;
    assert_eq!(legacy, ["My-Command", "My-Session", PREFERENCES]);
    assert_eq!(
        names(
            &t,
            json!({"Filters": [{"Key": "Owner", "Values": ["All"]}]})
        )
        .await
        .len(),
        9
    );

    let commands = names(
        &t,
        json!({"Filters": [{"Key": "DocumentType", "Values": ["Command"]}]}),
    )
    .await;
    assert_eq!(commands, ["AWS-RunShellScript", "My-Command"]);
    let both = names(
        &t,
        json!({"Filters": [{"Key": "DocumentType", "Values": ["Session"]},
                           {"Key": "Owner", "Values": ["Self"]}]}),
    )
    .await;
    assert_eq!(both, ["My-Session", PREFERENCES]);
    let by_name = names(
        &t,
        json!({"DocumentFilterList": [{"key": "Name", "value": "AWS-StartPort"}]}),
    )
    .await;
    assert_eq!(
        by_name,
        [
            "AWS-StartPortForwardingSession",
            "AWS-StartPortForwardingSessionToRemoteHost"
        ]
    );
    let windows = names(
        &t,
        json!({"Filters": [{"Key": "PlatformTypes", "Values": ["Windows"]},
                           {"Key": "Owner", "Values": ["Amazon"]}]}),
    )
    .await;
    assert!(
        !windows.contains(&"AWS-RunShellScript".to_owned()),
        "{windows:?}"
    );
    assert!(
        windows.contains(&"AWS-StartSSHSession".to_owned()),
        "{windows:?}"
    );
    let keyword = names(
        &t,
        json!({"Filters": [{"Key": "SearchKeyword", "Values": ["ssh"]}]}),
    )
    .await;
    assert_eq!(keyword, ["AWS-StartSSHSession"]);

    let listed = t
        .call(
            "ListDocuments",
            json!({"Filters": [{"Key": "Name", "Values": ["My-Command"]}]}),
        )
        .await
        .ok();
    let id = &listed["DocumentIdentifiers"][0];
    assert_eq!(id["Owner"], "123456789012", "{id}");
    assert_eq!(id["DocumentVersion"], "1");
    assert_eq!(id["SchemaVersion"], "2.2");
    assert_eq!(id["DocumentFormat"], "JSON");
    assert_eq!(id["PlatformTypes"], json!(["Linux", "MacOS"]));
}

#[tokio::test]
async fn list_documents_paginates() {
    let t = TestEmu::new();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = json!({"MaxResults": 3});
        if let Some(token) = &token {
            request["NextToken"] = json!(token);
        }
        let page = t.call("ListDocuments", request).await.ok();
        let items = page["DocumentIdentifiers"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|d| d["Name"].as_str().unwrap().to_owned()));
        match page["NextToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, BUILTINS);

    // A token belongs to its query.
    let first = t.call("ListDocuments", json!({"MaxResults": 1})).await.ok();
    let token = first["NextToken"].as_str().unwrap();
    t.call(
        "ListDocuments",
        json!({"MaxResults": 1, "NextToken": token,
               "Filters": [{"Key": "Owner", "Values": ["Amazon"]}]}),
    )
    .await
    .client_error("InvalidNextToken");
}

#[tokio::test]
async fn list_documents_errors() {
    let t = TestEmu::new();
    t.call("ListDocuments", json!({"MaxResults": 0}))
        .await
        .client_error("ValidationException");
    t.call("ListDocuments", json!({"MaxResults": 51}))
        .await
        .client_error("ValidationException");
    t.call(
        "ListDocuments",
        json!({"Filters": [{"Key": "Colour", "Values": ["red"]}]}),
    )
    .await
    .client_error("InvalidFilterKey");
    t.call(
        "ListDocuments",
        json!({"DocumentFilterList": [{"key": "Colour", "value": "red"}]}),
    )
    .await
    .client_error("ValidationException");
    t.call("ListDocuments", json!({"DocumentFilterList": []}))
        .await
        .client_error("ValidationException");
    t.call("ListDocuments", json!({"NextToken": "made-up"}))
        .await
        .client_error("InvalidNextToken");
}

// ---------------------------------------------------------------------------------------------
// The account's own documents.

#[tokio::test]
async fn command_document_versions() {
    let t = TestEmu::new();
    let created = create(
        &t,
        "Say-Hello",
        &command_body("echo {{ message }}"),
        "Command",
    )
    .await;
    let d = &created["DocumentDescription"];
    assert_eq!(d["Name"], "Say-Hello");
    assert_eq!(d["Owner"], "123456789012");
    assert_eq!(d["DocumentVersion"], "1");
    assert_eq!(d["LatestVersion"], "1");
    assert_eq!(d["DefaultVersion"], "1");
    assert_eq!(d["Status"], "Active");
    assert_eq!(d["SchemaVersion"], "2.2");
    assert_eq!(d["Description"], "Say something.");
    assert_eq!(
        d["Parameters"],
        // In the order of the content text (`json!` wrote the members sorted).
        json!([{"Name": "extra", "Type": "StringList", "DefaultValue": "[]"},
               {"Name": "message", "Type": "String", "Description": "What to say.",
                "DefaultValue": "hello"}])
    );

    let v2 = command_body("echo v2 {{ message }}");
    let updated = t
        .call(
            "UpdateDocument",
            json!({"Name": "Say-Hello", "Content": v2, "DocumentVersion": "$LATEST"}),
        )
        .await
        .ok();
    assert_eq!(updated["DocumentDescription"]["DocumentVersion"], "2");
    assert_eq!(updated["DocumentDescription"]["LatestVersion"], "2");
    // UpdateDocument does not move the default version.
    assert_eq!(updated["DocumentDescription"]["DefaultVersion"], "1");

    let v3 = command_body("echo v3");
    let updated = t
        .call(
            "UpdateDocument",
            json!({"Name": "Say-Hello", "Content": v3, "DocumentVersion": "2",
                   "VersionName": "third"}),
        )
        .await
        .ok();
    assert_eq!(updated["DocumentDescription"]["DocumentVersion"], "3");
    assert_eq!(updated["DocumentDescription"]["VersionName"], "third");

    let content_of = |reply: Value| reply["Content"].as_str().unwrap().to_owned();
    let get = |version: Value| {
        let mut request = json!({"Name": "Say-Hello"});
        if !version.is_null() {
            request["DocumentVersion"] = version;
        }
        request
    };
    assert_eq!(
        content_of(t.call("GetDocument", get(Value::Null)).await.ok()),
        command_body("echo {{ message }}")
    );
    assert_eq!(
        content_of(t.call("GetDocument", get(json!("$DEFAULT"))).await.ok()),
        command_body("echo {{ message }}")
    );
    assert_eq!(
        content_of(t.call("GetDocument", get(json!("$LATEST"))).await.ok()),
        command_body("echo v3")
    );
    assert_eq!(
        content_of(t.call("GetDocument", get(json!("2"))).await.ok()),
        v2
    );
    let named = t
        .call(
            "GetDocument",
            json!({"Name": "Say-Hello", "VersionName": "third"}),
        )
        .await
        .ok();
    assert_eq!(named["DocumentVersion"], "3");
    let described = t
        .call(
            "DescribeDocument",
            json!({"Name": "Say-Hello", "DocumentVersion": "2"}),
        )
        .await
        .ok();
    assert_eq!(described["Document"]["DocumentVersion"], "2");
    assert_eq!(described["Document"]["LatestVersion"], "3");

    // Errors of versions.
    t.call("GetDocument", get(json!("4")))
        .await
        .client_error("InvalidDocumentVersion");
    t.call(
        "GetDocument",
        json!({"Name": "Say-Hello", "VersionName": "nope"}),
    )
    .await
    .client_error("InvalidDocumentVersion");
    t.call("GetDocument", get(json!("v1")))
        .await
        .client_error("ValidationException");
    t.call(
        "UpdateDocument",
        json!({"Name": "Say-Hello", "Content": command_body("echo old base"),
               "DocumentVersion": "1"}),
    )
    .await
    .client_error("InvalidDocumentVersion");
    t.call(
        "UpdateDocument",
        json!({"Name": "Say-Hello", "Content": command_body("echo v3")}),
    )
    .await
    .client_error("DuplicateDocumentContent");
    // The same content as an older version is a duplicate too.
    t.call(
        "UpdateDocument",
        json!({"Name": "Say-Hello", "Content": command_body("echo {{ message }}")}),
    )
    .await
    .client_error("DuplicateDocumentContent");

    t.call("DeleteDocument", json!({"Name": "Say-Hello"}))
        .await
        .ok();
    t.call("DescribeDocument", json!({"Name": "Say-Hello"}))
        .await
        .client_error("InvalidDocument");
    t.call("DeleteDocument", json!({"Name": "Say-Hello"}))
        .await
        .client_error("InvalidDocument");
}

#[tokio::test]
async fn session_document_life() {
    let t = TestEmu::new();
    let created = create(&t, "Forward-8080", &session_body("8080"), "Session").await;
    let d = &created["DocumentDescription"];
    assert_eq!(d["DocumentType"], "Session");
    assert_eq!(d["SchemaVersion"], "1.0");
    assert_eq!(d["PlatformTypes"], json!(["Windows", "Linux", "MacOS"]));
    assert_eq!(
        d["Parameters"],
        json!([{"Name": "portNumber", "Type": "String", "DefaultValue": "8080"}])
    );
    let updated = t
        .call(
            "UpdateDocument",
            json!({"Name": "Forward-8080", "Content": session_body("9090")}),
        )
        .await
        .ok();
    assert_eq!(updated["DocumentDescription"]["DocumentVersion"], "2");
    assert_eq!(
        updated["DocumentDescription"]["Parameters"][0]["DefaultValue"],
        "9090"
    );
    // An update is checked against the document's own type.
    t.call(
        "UpdateDocument",
        json!({"Name": "Forward-8080", "Content": command_body("echo")}),
    )
    .await
    .client_error("InvalidDocumentSchemaVersion");
    // Deleting one version of several is not supported; the whole document is.
    t.call(
        "DeleteDocument",
        json!({"Name": "Forward-8080", "DocumentVersion": "1"}),
    )
    .await
    .client_error("InvalidDocumentOperation");
    t.call(
        "DeleteDocument",
        json!({"Name": "Forward-8080", "DocumentVersion": "7"}),
    )
    .await
    .client_error("InvalidDocumentVersion");
    t.call("DeleteDocument", json!({"Name": "Forward-8080"}))
        .await
        .ok();
    assert_eq!(
        names(
            &t,
            json!({"Filters": [{"Key": "Owner", "Values": ["Self"]}]})
        )
        .await,
        [PREFERENCES]
    );
}

#[tokio::test]
async fn documents_are_per_region() {
    let t = TestEmu::new();
    t.call_in(
        "eu-west-1",
        "CreateDocument",
        json!({"Name": "Regional", "Content": command_body("echo"), "DocumentType": "Command"}),
    )
    .await
    .ok();
    t.call("DescribeDocument", json!({"Name": "Regional"}))
        .await
        .client_error("InvalidDocument");
    t.call_in("eu-west-1", "DescribeDocument", json!({"Name": "Regional"}))
        .await
        .ok();
    // The AWS-owned documents are everywhere.
    t.call_in(
        "ap-south-1",
        "DescribeDocument",
        json!({"Name": "AWS-RunShellScript"}),
    )
    .await
    .ok();
}

// ---------------------------------------------------------------------------------------------
// Errors of CreateDocument, UpdateDocument, DeleteDocument, DescribeDocument, GetDocument.

#[tokio::test]
async fn create_document_errors() {
    let t = TestEmu::new();
    let cases = [
        // The model's constraints.
        (
            json!({"Content": command_body("echo")}),
            "ValidationException",
        ),
        (json!({"Name": "ok-name"}), "ValidationException"),
        (
            json!({"Name": "ok-name", "Content": ""}),
            "ValidationException",
        ),
        (
            json!({"Name": "x", "Content": command_body("echo")}),
            "ValidationException",
        ),
        (
            json!({"Name": "bad name", "Content": command_body("echo")}),
            "ValidationException",
        ),
        (
            json!({"Name": "a".repeat(129), "Content": command_body("echo")}),
            "ValidationException",
        ),
        (
            json!({"Name": "ok-name", "Content": command_body("echo"), "DocumentType": "Script"}),
            "ValidationException",
        ),
        (
            json!({"Name": "ok-name", "Content": command_body("echo"), "DocumentFormat": "XML"}),
            "ValidationException",
        ),
        // Reserved prefixes, and a type of the model the emulator does not run.
        (
            json!({"Name": "AWS-Mine", "Content": command_body("echo")}),
            "ValidationException",
        ),
        (
            json!({"Name": "amazon.mine", "Content": command_body("echo")}),
            "ValidationException",
        ),
        (
            json!({"Name": "AMZN_mine", "Content": command_body("echo")}),
            "ValidationException",
        ),
        (
            json!({"Name": "ok-name", "Content": command_body("echo"), "DocumentType": "Automation"}),
            "ValidationException",
        ),
        // The content.
        (
            json!({"Name": "ok-name", "Content": "{not json"}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": "[1]"}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": "{\"mainSteps\": []}"}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": "{\"schemaVersion\": \"9.9\", \"mainSteps\": []}"}),
            "InvalidDocumentSchemaVersion",
        ),
        (
            json!({"Name": "ok-name", "Content": "{\"schemaVersion\": \"2.2\"}"}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": "{\"schemaVersion\": \"1.2\", \"runtimeConfig\": {}}"}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": json!({"schemaVersion": "2.2",
            "parameters": {"p": {"type": "Float"}},
            "mainSteps": [{"action": "aws:runShellScript", "name": "a", "inputs": {}}]}).to_string()}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": json!({"schemaVersion": "2.2",
            "mainSteps": [{"action": "aws:runShellScript", "name": "a"},
                          {"action": "aws:runShellScript", "name": "a"}]}).to_string()}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "DocumentType": "Session",
                "Content": json!({"schemaVersion": "1.0", "sessionType": "Telnet"}).to_string()}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "DocumentType": "Session",
                "Content": json!({"schemaVersion": "2.2", "sessionType": "Port"}).to_string()}),
            "InvalidDocumentSchemaVersion",
        ),
        (
            json!({"Name": "ok-name", "Content": "schemaVersion: '2.2'", "DocumentFormat": "YAML"}),
            "InvalidDocumentContent",
        ),
        (
            json!({"Name": "ok-name", "Content": format!("{{\"schemaVersion\": \"2.2\", \"pad\": \"{}\"}}", "x".repeat(70_000))}),
            "MaxDocumentSizeExceeded",
        ),
    ];
    for (request, code) in cases {
        let shown = request.to_string();
        let message = t.call("CreateDocument", request).await.client_error(code);
        assert!(!message.is_empty(), "{shown}");
    }
    let message = t
        .call(
            "CreateDocument",
            json!({"Name": "ok-name", "Content": "{not json"}),
        )
        .await
        .client_error("InvalidDocumentContent");
    assert!(message.starts_with("JSON not well-formed"), "{message}");

    create(&t, "Taken", &command_body("echo"), "Command").await;
    t.call(
        "CreateDocument",
        json!({"Name": "Taken", "Content": command_body("echo other")}),
    )
    .await
    .client_error("DocumentAlreadyExists");
    // The preferences document exists from the start.
    t.call(
        "CreateDocument",
        json!({"Name": "SSM-SessionManagerRunShell", "Content": session_body("1"),
               "DocumentType": "Session"}),
    )
    .await
    .client_error("DocumentAlreadyExists");
}

#[tokio::test]
async fn aws_owned_documents_are_read_only_and_unknown_ones_invalid() {
    let t = TestEmu::new();
    for name in ["AWS-RunShellScript", "AWS-StartSSHSession"] {
        t.call("DeleteDocument", json!({"Name": name}))
            .await
            .client_error("InvalidDocumentOperation");
        t.call(
            "UpdateDocument",
            json!({"Name": name, "Content": command_body("echo")}),
        )
        .await
        .client_error("InvalidDocumentOperation");
    }
    for op in ["DescribeDocument", "GetDocument", "DeleteDocument"] {
        let message = t
            .call(op, json!({"Name": "No-Such-Document"}))
            .await
            .client_error("InvalidDocument");
        assert!(message.contains("No-Such-Document"), "{op}: {message}");
    }
    t.call(
        "UpdateDocument",
        json!({"Name": "No-Such-Document", "Content": command_body("echo")}),
    )
    .await
    .client_error("InvalidDocument");
    t.call("DescribeDocument", json!({}))
        .await
        .client_error("ValidationException");
    t.call(
        "DescribeDocument",
        json!({"Name": "AWS-RunShellScript", "DocumentVersion": "0"}),
    )
    .await
    .client_error("ValidationException");
    t.call(
        "DescribeDocument",
        json!({"Name": "AWS-RunShellScript", "DocumentVersion": "2"}),
    )
    .await
    .client_error("InvalidDocumentVersion");
    t.call(
        "GetDocument",
        json!({"Name": "AWS-RunShellScript", "DocumentFormat": "YAML"}),
    )
    .await
    .client_error("ValidationException");
    t.call(
        "UpdateDocument",
        json!({"Name": "AWS-RunShellScript", "Content": command_body("echo"),
               "DocumentVersion": "latest"}),
    )
    .await
    .client_error("ValidationException");
}

//! Parameter resolution: a document, a version selector and the request's `Parameters`
//! (name → list of strings, as SendCommand and StartSession take them) become the effective
//! values and the content the agent receives.
//!
//! The agent decodes substituted values into typed structs, so types matter (spec §9.1, §9.2):
//! a `String` parameter is one JSON string (a list makes the plugin fail), a `StringList` a JSON
//! array. Hence `typed_parameters`. Session documents are sent with `{{ name }}` in `inputs` and
//! `properties` already substituted; Command documents are sent unchanged and the agent
//! substitutes. Parameter Store references (`{{ssm:…}}`) are out of scope: they are left
//! verbatim and not checked against `allowedPattern`/`allowedValues`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::content::{Parameter, ParameterType};
use super::pattern::Pattern;
use super::{Document, DocumentType, Version, no_such_document};
use crate::api::error::ApiError;
use crate::model::RegionState;

/// A document ready to send to an agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResolvedDocument {
    /// The document's name (without any ARN prefix the request used).
    pub(crate) name: String,
    /// The numeric version actually used, e.g. "1".
    pub(crate) version: String,
    pub(crate) document_type: DocumentType,
    /// Effective values including defaults, for API output (`Command.Parameters`).
    pub(crate) parameters: BTreeMap<String, Vec<String>>,
    /// What the agent gets as `Parameters`: String → JSON string, StringList → JSON array,
    /// Boolean/Integer → JSON boolean/number, StringMap/MapList → the JSON they hold.
    pub(crate) typed_parameters: Map<String, Value>,
    /// The content as the agent receives it in `DocumentContent`: Session documents with
    /// `{{ name }}` substituted in `inputs` and `properties`, Command documents unchanged.
    pub(crate) content: Value,
    /// Command: the plugin ids (`aws:runShellScript` for schema 1.2, step names for 2.x).
    pub(crate) plugin_names: Vec<String>,
    /// Session: `Standard_Stream`, `Port`, `InteractiveCommands` or `NonInteractiveCommands`.
    pub(crate) session_type: Option<String>,
    /// SHA-256 of the version's content, for SendCommand's `DocumentHash`.
    pub(crate) hash: String,
    /// The platforms the document supports (`Linux`, `MacOS`, `Windows`), for
    /// `UnsupportedPlatformType`.
    pub(crate) platform_types: Vec<&'static str>,
}

/// Resolves document `name` (or its ARN) at `version` (`None`/`$DEFAULT`, `$LATEST`, or a
/// number) with the request's `params`.
///
/// Errors: `InvalidDocument` for an unknown name, `InvalidDocumentVersion` for a bad version,
/// `InvalidParameters` naming the parameter for an unknown one, a required one missing, several
/// values for a String, or a value outside `allowedPattern`/`allowedValues`/`maxChars`/item
/// counts.
pub(crate) fn resolve(
    region: &RegionState,
    name: &str,
    version: Option<&str>,
    params: &BTreeMap<String, Vec<String>>,
) -> Result<ResolvedDocument, ApiError> {
    let name = document_name(name);
    let document = region
        .documents
        .get(name)
        .ok_or_else(|| no_such_document(name))?;
    resolve_version(document, document.version(version)?, params)
}

/// `arn:aws:ssm:<region>:<account>:document/<name>` → `<name>`; a plain name as is.
pub(crate) fn document_name(name: &str) -> &str {
    match name.strip_prefix("arn:") {
        Some(rest) => rest.rsplit_once("document/").map_or(name, |(_, n)| n),
        None => name,
    }
}

/// Resolves one version of `document` with `params`.
pub(crate) fn resolve_version(
    document: &Document,
    version: &Version,
    params: &BTreeMap<String, Vec<String>>,
) -> Result<ResolvedDocument, ApiError> {
    let parsed = &version.parsed;
    if let Some(unknown) = params
        .keys()
        .find(|k| !parsed.parameters.iter().any(|p| &p.name == *k))
    {
        return Err(ApiError::InvalidParameters(format!(
            "Parameter \"{unknown}\" is not defined in document {}.",
            document.name
        )));
    }
    let mut parameters = BTreeMap::new();
    let mut typed_parameters = Map::new();
    for declared in &parsed.parameters {
        let (strings, typed) = match params.get(&declared.name) {
            Some(given) => given_value(declared, given)?,
            None => match &declared.default {
                Some(default) => default_value(declared, default),
                None => {
                    return Err(ApiError::InvalidParameters(format!(
                        "Parameter \"{}\" is required by document {} but was not provided.",
                        declared.name, document.name
                    )));
                }
            },
        };
        parameters.insert(declared.name.clone(), strings);
        typed_parameters.insert(declared.name.clone(), typed);
    }

    let content = match parsed.document_type {
        DocumentType::Command => parsed.body.clone(),
        DocumentType::Session => {
            let mut body = parsed.body.clone();
            if let Value::Object(object) = &mut body {
                for member in ["inputs", "properties"] {
                    if let Some(v) = object.get_mut(member) {
                        substitute(v, &typed_parameters);
                    }
                }
            }
            body
        }
    };

    Ok(ResolvedDocument {
        name: document.name.clone(),
        version: version.number.to_string(),
        document_type: parsed.document_type,
        parameters,
        typed_parameters,
        content,
        plugin_names: parsed.plugin_names.clone(),
        session_type: parsed.session_type.clone(),
        hash: version.hash.clone(),
        platform_types: parsed.platform_types.clone(),
    })
}

fn invalid(parameter: &Parameter, problem: &str) -> ApiError {
    ApiError::InvalidParameters(format!("Parameter \"{}\" {problem}", parameter.name))
}

/// Checks the request's values for `p` and gives them as API strings and as the typed value.
fn given_value(p: &Parameter, given: &[String]) -> Result<(Vec<String>, Value), ApiError> {
    let single = || -> Result<String, ApiError> {
        match given {
            [] => Ok(String::new()),
            [one] => Ok(one.clone()),
            many => Err(invalid(
                p,
                &format!(
                    "is of type {} and takes one value, but {} were given.",
                    p.kind.as_str(),
                    many.len()
                ),
            )),
        }
    };
    let typed = match p.kind {
        ParameterType::StringList => {
            if let Some(min) = p.min_items
                && given.len() < min
            {
                return Err(invalid(p, &format!("needs at least {min} value(s).")));
            }
            if let Some(max) = p.max_items
                && given.len() > max
            {
                return Err(invalid(p, &format!("takes at most {max} value(s).")));
            }
            for value in given {
                check_string(p, value)?;
            }
            Value::Array(given.iter().cloned().map(Value::String).collect())
        }
        ParameterType::String => {
            let value = single()?;
            check_string(p, &value)?;
            Value::String(value)
        }
        ParameterType::Boolean => {
            let value = single()?;
            match value.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ if is_reference(&value) => Value::String(value),
                _ => return Err(invalid(p, "must be true or false.")),
            }
        }
        ParameterType::Integer => {
            let value = single()?;
            match value.trim().parse::<i64>() {
                Ok(n) => {
                    check_string(p, &value)?;
                    Value::from(n)
                }
                Err(_) if is_reference(&value) => Value::String(value),
                Err(_) => return Err(invalid(p, "must be an integer.")),
            }
        }
        ParameterType::StringMap | ParameterType::MapList => {
            let value = single()?;
            let parsed: Value =
                serde_json::from_str(&value).map_err(|_| invalid(p, "must be JSON text."))?;
            let fits = match p.kind {
                ParameterType::StringMap => parsed.is_object(),
                _ => parsed
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_object)),
            };
            if !fits {
                return Err(invalid(
                    p,
                    &format!(
                        "must be a JSON {}.",
                        match p.kind {
                            ParameterType::StringMap => "object",
                            _ => "list of objects",
                        }
                    ),
                ));
            }
            parsed
        }
    };
    Ok((given.to_vec(), typed))
}

/// `allowedValues`, `allowedPattern` and `maxChars` for one string value.
fn check_string(p: &Parameter, value: &str) -> Result<(), ApiError> {
    if is_reference(value) {
        return Ok(());
    }
    if let Some(max) = p.max_chars
        && value.chars().count() > max
    {
        return Err(invalid(p, &format!("is longer than {max} characters.")));
    }
    if let Some(allowed) = &p.allowed_values
        && !allowed.iter().any(|a| a == value)
    {
        return Err(invalid(
            p,
            &format!(
                "has value \"{value}\", which is not one of the allowed values: {}.",
                allowed.join(", ")
            ),
        ));
    }
    if let Some(pattern) = &p.allowed_pattern
        && let Some(compiled) = Pattern::compile(pattern)
        && !compiled.matches_all(value)
    {
        return Err(invalid(
            p,
            &format!("has value \"{value}\", which fails to match the allowed pattern {pattern}."),
        ));
    }
    Ok(())
}

/// A Parameter Store reference such as `{{ssm:name}}`, resolved by the real service before
/// validation and out of the emulator's scope.
fn is_reference(value: &str) -> bool {
    let trimmed = value.trim();
    trimmed.starts_with("{{")
        && trimmed.ends_with("}}")
        && trimmed[2..].trim_start().starts_with("ssm")
}

/// A declared default as API strings and the typed value.
fn default_value(p: &Parameter, default: &Value) -> (Vec<String>, Value) {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (p.kind, default) {
        (ParameterType::StringList, Value::Array(items)) => {
            let strings: Vec<String> = items.iter().map(text).collect();
            let typed = Value::Array(strings.iter().cloned().map(Value::String).collect());
            (strings, typed)
        }
        (ParameterType::StringList, other) => {
            let s = text(other);
            (vec![s.clone()], Value::Array(vec![Value::String(s)]))
        }
        (ParameterType::String, other) => {
            let s = text(other);
            (vec![s.clone()], Value::String(s))
        }
        (_, Value::String(s)) => {
            // A typed default written as text ("true", "5", "{}"): give the agent the JSON.
            let typed = serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()));
            (vec![s.clone()], typed)
        }
        (_, other) => (vec![text(other)], other.clone()),
    }
}

/// Replaces `{{ name }}` (any spacing inside the braces) in every string under `value`. A string
/// that is exactly one placeholder becomes the typed value (a StringList stays a list); a
/// placeholder inside a longer string becomes the value's text. Unknown names, such as
/// `{{ssm:…}}`, stay as they are.
fn substitute(value: &mut Value, params: &Map<String, Value>) {
    match value {
        Value::String(s) => {
            if let Some(replacement) = substitute_str(s, params) {
                *value = replacement;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, params)),
        Value::Object(members) => members.values_mut().for_each(|v| substitute(v, params)),
        _ => {}
    }
}

fn substitute_str(s: &str, params: &Map<String, Value>) -> Option<Value> {
    if let Some(inner) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
        && let Some(v) = params.get(inner.trim())
    {
        return Some(v.clone());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}").map(|c| open + 2 + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        match params.get(rest[open + 2..close].trim()) {
            Some(Value::String(v)) => {
                out.push_str(v);
                changed = true;
            }
            Some(other) => {
                out.push_str(&other.to_string());
                changed = true;
            }
            None => out.push_str(&rest[open..close + 2]),
        }
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    changed.then_some(Value::String(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::documents::content::{self, DocumentFormat};
    use crate::documents::sha256_hex;
    use std::time::UNIX_EPOCH;

    fn params(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn region() -> RegionState {
        RegionState::default()
    }

    fn err(result: Result<ResolvedDocument, ApiError>) -> ApiError {
        result.expect_err("expected an error")
    }

    #[test]
    fn run_shell_script_fills_defaults_and_types_values() {
        let r = resolve(
            &region(),
            "AWS-RunShellScript",
            None,
            &params(&[("commands", &["echo hi", "id"])]),
        )
        .unwrap();
        assert_eq!(r.version, "1");
        assert_eq!(r.document_type, DocumentType::Command);
        assert_eq!(r.plugin_names, ["aws:runShellScript"]);
        assert_eq!(r.session_type, None);
        assert_eq!(
            Value::Object(r.typed_parameters),
            json!({"commands": ["echo hi", "id"], "workingDirectory": "", "executionTimeout": "3600"})
        );
        assert_eq!(
            r.parameters,
            params(&[
                ("commands", &["echo hi", "id"]),
                ("executionTimeout", &["3600"]),
                ("workingDirectory", &[""]),
            ])
        );
        // Command documents go to the agent unchanged: it substitutes itself (§9.2).
        assert_eq!(
            r.content["runtimeConfig"]["aws:runShellScript"]["properties"][0]["runCommand"],
            "{{ commands }}"
        );
        assert_eq!(r.content["parameters"]["commands"]["type"], "StringList");
    }

    #[test]
    fn versions_select_like_the_service() {
        let region = region();
        let ok = |v: Option<&str>| {
            resolve(
                &region,
                "AWS-RunShellScript",
                v,
                &params(&[("commands", &["x"])]),
            )
        };
        for v in [None, Some("$DEFAULT"), Some("$LATEST"), Some("1")] {
            assert_eq!(ok(v).unwrap().version, "1");
        }
        for v in ["2", "0", "01", "latest", ""] {
            assert!(matches!(
                ok(Some(v)),
                Err(ApiError::InvalidDocumentVersion(_))
            ));
        }
    }

    #[test]
    fn unknown_document_is_invalid_document() {
        let e = err(resolve(&region(), "No-Such-Doc", None, &BTreeMap::new()));
        assert!(
            matches!(&e, ApiError::InvalidDocument(m) if m.contains("No-Such-Doc")),
            "{e:?}"
        );
    }

    #[test]
    fn document_arn_names_the_document() {
        let arn = "arn:aws:ssm:us-east-1::document/AWS-StartSSHSession";
        assert_eq!(
            resolve(&region(), arn, None, &BTreeMap::new())
                .unwrap()
                .name,
            "AWS-StartSSHSession"
        );
    }

    #[test]
    fn port_session_properties_are_substituted_as_strings() {
        let r = resolve(
            &region(),
            "AWS-StartPortForwardingSession",
            None,
            &params(&[("portNumber", &["80"])]),
        )
        .unwrap();
        assert_eq!(r.session_type.as_deref(), Some("Port"));
        assert_eq!(
            r.content["properties"],
            json!({"portNumber": "80", "type": "LocalPortForwarding", "localPortNumber": "0"})
        );
        assert_eq!(
            Value::Object(r.typed_parameters),
            json!({"portNumber": "80", "localPortNumber": "0"})
        );
        // The parameter declarations travel with the content, untouched.
        assert_eq!(r.content["parameters"]["portNumber"]["default"], "80");
    }

    #[test]
    fn remote_host_requires_host() {
        let e = err(resolve(
            &region(),
            "AWS-StartPortForwardingSessionToRemoteHost",
            None,
            &BTreeMap::new(),
        ));
        assert!(
            matches!(&e, ApiError::InvalidParameters(m) if m.contains("\"host\"")),
            "{e:?}"
        );
        let r = resolve(
            &region(),
            "AWS-StartPortForwardingSessionToRemoteHost",
            None,
            &params(&[
                ("host", &["db.internal"]),
                ("portNumber", &["5432"]),
                ("localPortNumber", &["15432"]),
            ]),
        )
        .unwrap();
        assert_eq!(
            r.content["properties"],
            json!({"portNumber": "5432", "type": "LocalPortForwarding", "host": "db.internal", "localPortNumber": "15432"})
        );
    }

    #[test]
    fn interactive_command_substitutes_the_command() {
        let r = resolve(
            &region(),
            "AWS-StartInteractiveCommand",
            None,
            &params(&[("command", &["top -b"])]),
        )
        .unwrap();
        assert_eq!(r.session_type.as_deref(), Some("InteractiveCommands"));
        assert_eq!(r.content["properties"]["linux"]["commands"], "top -b");
        assert_eq!(r.content["properties"]["linux"]["runAsElevated"], false);
    }

    #[test]
    fn shell_session_has_no_parameters_and_keeps_its_inputs() {
        let r = resolve(
            &region(),
            "SSM-SessionManagerRunShell",
            None,
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(r.session_type.as_deref(), Some("Standard_Stream"));
        assert!(r.typed_parameters.is_empty());
        assert_eq!(r.content["inputs"]["idleSessionTimeout"], "20");
        assert_eq!(
            r.content["inputs"]["shellProfile"],
            json!({"windows": "", "linux": ""})
        );
        assert_eq!(r.content["schemaVersion"], "1.0");
    }

    #[test]
    fn invalid_parameters_name_the_parameter() {
        let region = region();
        let shell =
            |p: &[(&str, &[&str])]| err(resolve(&region, "AWS-RunShellScript", None, &params(p)));
        type Case<'a> = (&'a [(&'a str, &'a [&'a str])], &'a str);
        let cases: [Case<'_>; 6] = [
            (&[("commands", &["x"]), ("bogus", &["1"])], "\"bogus\""),
            (&[], "\"commands\""),
            (&[("commands", &[])], "\"commands\""),
            (
                &[("commands", &["x"]), ("workingDirectory", &["/a", "/b"])],
                "\"workingDirectory\"",
            ),
            (
                &[("commands", &["x"]), ("executionTimeout", &["0"])],
                "\"executionTimeout\"",
            ),
            (
                &[("commands", &["x"]), ("executionTimeout", &["soon"])],
                "\"executionTimeout\"",
            ),
        ];
        for (p, named) in cases {
            let e = shell(p);
            assert!(
                matches!(&e, ApiError::InvalidParameters(m) if m.contains(named)),
                "{p:?}: {e:?}"
            );
        }
        let e = err(resolve(
            &region,
            "AWS-StartSSHSession",
            None,
            &params(&[("portNumber", &["70000"])]),
        ));
        assert!(
            matches!(&e, ApiError::InvalidParameters(m) if m.contains("portNumber")),
            "{e:?}"
        );
    }

    fn custom(body: &Value, document_type: DocumentType) -> Document {
        let raw = body.to_string();
        let parsed = content::parse(&raw, document_type).unwrap();
        Document {
            name: "Custom".to_owned(),
            owner: crate::documents::Owner::Account,
            versions: vec![Version {
                number: 1,
                hash: sha256_hex(&raw),
                raw,
                format: DocumentFormat::Json,
                created: UNIX_EPOCH,
                version_name: None,
                parsed,
            }],
            default_version: 1,
            created: UNIX_EPOCH,
        }
    }

    #[test]
    fn placeholders_with_and_without_spaces_and_typed_values() {
        let doc = custom(
            &json!({
                "schemaVersion": "1.0",
                "sessionType": "InteractiveCommands",
                "parameters": {
                    "cmd": {"type": "String", "allowedValues": ["top", "htop"]},
                    "args": {"type": "StringList", "default": ["-b", "-n1"]},
                    "elevated": {"type": "Boolean", "default": false}
                },
                "properties": {"linux": {
                    "commands": "{{cmd}} --now {{ cmd }} {{ssm:keep}}",
                    "argv": "{{ args }}",
                    "runAsElevated": "{{elevated}}"
                }}
            }),
            DocumentType::Session,
        );
        let version = &doc.versions[0];
        let r = resolve_version(&doc, version, &params(&[("cmd", &["top"])])).unwrap();
        assert_eq!(
            r.content["properties"]["linux"],
            json!({"commands": "top --now top {{ssm:keep}}", "argv": ["-b", "-n1"], "runAsElevated": false})
        );
        assert_eq!(r.parameters["elevated"], ["false"]);
        let e = resolve_version(&doc, version, &params(&[("cmd", &["rm"])])).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidParameters(m) if m.contains("\"cmd\"")),
            "{e:?}"
        );
    }

    #[test]
    fn schema_two_steps_are_the_plugin_names() {
        let doc = custom(
            &json!({
                "schemaVersion": "2.2",
                "parameters": {"message": {"type": "String", "default": "hi"}},
                "mainSteps": [
                    {"action": "aws:runShellScript", "name": "first", "inputs": {"runCommand": ["echo {{ message }}"]}},
                    {"action": "aws:runShellScript", "name": "second", "inputs": {"runCommand": ["true"]}}
                ]
            }),
            DocumentType::Command,
        );
        let r = resolve_version(&doc, &doc.versions[0], &BTreeMap::new()).unwrap();
        assert_eq!(r.plugin_names, ["first", "second"]);
        assert_eq!(
            r.content["mainSteps"][0]["inputs"]["runCommand"][0],
            "echo {{ message }}"
        );
        assert_eq!(r.platform_types, ["Linux", "MacOS"]);
    }
}

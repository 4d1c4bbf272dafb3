//! Reading a document body: what type of document it is, its schema version, its parameters
//! (in document order, which DescribeDocument keeps) and its plugins or session type.
//!
//! Every problem is `InvalidDocumentContent`, except a schema version the document type does
//! not support, which is `InvalidDocumentSchemaVersion`, as the real service answers.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

use crate::api::error::ApiError;

/// Every `DocumentType` of the model. The emulator runs two of them.
pub(crate) const MODEL_DOCUMENT_TYPES: [&str; 17] = [
    "Command",
    "Policy",
    "Automation",
    "Session",
    "Package",
    "ApplicationConfiguration",
    "ApplicationConfigurationSchema",
    "DeploymentStrategy",
    "ChangeCalendar",
    "Automation.ChangeTemplate",
    "ProblemAnalysis",
    "ProblemAnalysisTemplate",
    "CloudFormation",
    "ConformancePackTemplate",
    "QuickSetup",
    "ManualApprovalPolicy",
    "AutoApprovalPolicy",
];

/// Schema versions of Command documents (spec §9.2: what the agent runs).
const COMMAND_SCHEMAS: [&str; 7] = ["1.0", "1.2", "2.0", "2.0.1", "2.0.2", "2.0.3", "2.2"];

/// The session types of Session documents (spec §9.1).
pub(crate) const SESSION_TYPES: [&str; 4] = [
    "Standard_Stream",
    "Port",
    "InteractiveCommands",
    "NonInteractiveCommands",
];

/// The document types the emulator can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum DocumentType {
    /// Run Command documents (SendCommand).
    Command,
    /// Session Manager documents (StartSession).
    Session,
}

impl DocumentType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DocumentType::Command => "Command",
            DocumentType::Session => "Session",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<DocumentType> {
        match text {
            "Command" => Some(DocumentType::Command),
            "Session" => Some(DocumentType::Session),
            _ => None,
        }
    }
}

/// How the content was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocumentFormat {
    Json,
}

impl DocumentFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DocumentFormat::Json => "JSON",
        }
    }
}

/// A parameter's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParameterType {
    /// One string; the agent gets a JSON string.
    String,
    /// A list of strings; the agent gets a JSON array.
    StringList,
    /// `true`/`false`; the agent gets a JSON boolean.
    Boolean,
    /// A whole number; the agent gets a JSON number.
    Integer,
    /// A JSON object given as text; the agent gets the object.
    StringMap,
    /// A list of JSON objects given as text; the agent gets the list.
    MapList,
}

impl ParameterType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "String",
            ParameterType::StringList => "StringList",
            ParameterType::Boolean => "Boolean",
            ParameterType::Integer => "Integer",
            ParameterType::StringMap => "StringMap",
            ParameterType::MapList => "MapList",
        }
    }

    fn parse(text: &str) -> Option<ParameterType> {
        Some(match text {
            "String" => ParameterType::String,
            "StringList" => ParameterType::StringList,
            "Boolean" => ParameterType::Boolean,
            "Integer" => ParameterType::Integer,
            "StringMap" => ParameterType::StringMap,
            "MapList" => ParameterType::MapList,
            _ => return None,
        })
    }
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parameter {
    pub(crate) name: String,
    pub(crate) kind: ParameterType,
    pub(crate) description: Option<String>,
    /// The `default` as written; a parameter without one is required.
    pub(crate) default: Option<Value>,
    pub(crate) allowed_pattern: Option<String>,
    pub(crate) allowed_values: Option<Vec<String>>,
    pub(crate) min_items: Option<usize>,
    pub(crate) max_items: Option<usize>,
    pub(crate) max_chars: Option<usize>,
}

impl Parameter {
    /// The default as DescribeDocument's `DefaultValue` shows it: a string as is, anything
    /// else as JSON text.
    pub(crate) fn default_text(&self) -> Option<String> {
        self.default.as_ref().map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// A checked document body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedContent {
    /// The body as JSON.
    pub(crate) body: Value,
    pub(crate) document_type: DocumentType,
    pub(crate) schema_version: String,
    pub(crate) description: Option<String>,
    /// In document order.
    pub(crate) parameters: Vec<Parameter>,
    /// Command: the plugin ids (runtimeConfig keys for 1.x, step names for 2.x).
    pub(crate) plugin_names: Vec<String>,
    /// Session: the `sessionType`.
    pub(crate) session_type: Option<String>,
    /// `PlatformTypes`, from the plugins a Command document uses.
    pub(crate) platform_types: Vec<&'static str>,
}

/// Parses and checks `raw` as a `document_type` document.
pub(crate) fn parse(raw: &str, document_type: DocumentType) -> Result<ParsedContent, ApiError> {
    let body: Value = serde_json::from_str(raw).map_err(|e| {
        invalid(format!(
            "JSON not well-formed. at Line: {}, Column: {}",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(object) = &body else {
        return Err(invalid(
            "The document content must be a JSON object.".to_owned(),
        ));
    };
    let schema_version = match object.get("schemaVersion") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("schemaVersion must be a string.".to_owned())),
        None => return Err(invalid("schemaVersion is required.".to_owned())),
    };
    let supported: &[&str] = match document_type {
        DocumentType::Command => &COMMAND_SCHEMAS,
        DocumentType::Session => &["1.0"],
    };
    if !supported.contains(&schema_version.as_str()) {
        return Err(ApiError::InvalidDocumentSchemaVersion(format!(
            "Schema version {schema_version} is not supported for document type {}. \
             Supported schema versions: {}.",
            document_type.as_str(),
            supported.join(", ")
        )));
    }
    let description = match object.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("description must be a string.".to_owned())),
    };
    let parameters = parameters(raw)?;

    let (plugin_names, session_type, platform_types) = match document_type {
        DocumentType::Command => {
            let (names, actions) = if schema_version.starts_with("2.") {
                main_steps(object.get("mainSteps"))?
            } else {
                runtime_config(object.get("runtimeConfig"))?
            };
            (names, None, platform_types(&actions))
        }
        DocumentType::Session => {
            let session_type = match object.get("sessionType") {
                Some(Value::String(s)) if SESSION_TYPES.contains(&s.as_str()) => s.clone(),
                Some(other) => {
                    return Err(invalid(format!(
                        "sessionType {other} is not valid. Valid values: {}.",
                        SESSION_TYPES.join(", ")
                    )));
                }
                None => return Err(invalid("sessionType is required.".to_owned())),
            };
            for member in ["inputs", "properties"] {
                if let Some(v) = object.get(member)
                    && !v.is_object()
                {
                    return Err(invalid(format!("{member} must be a JSON object.")));
                }
            }
            (
                Vec::new(),
                Some(session_type),
                vec!["Windows", "Linux", "MacOS"],
            )
        }
    };

    Ok(ParsedContent {
        body,
        document_type,
        schema_version,
        description,
        parameters,
        plugin_names,
        session_type,
        platform_types,
    })
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidDocumentContent(message)
}

/// Schema 1.x: `runtimeConfig` maps each plugin id to `{"properties": …}`. Returns the plugin
/// ids and the actions (the same, for 1.x).
fn runtime_config(value: Option<&Value>) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let Some(Value::Object(plugins)) = value else {
        return Err(invalid(
            "runtimeConfig is required and must be a JSON object for schema version 1.x."
                .to_owned(),
        ));
    };
    if plugins.is_empty() {
        return Err(invalid(
            "runtimeConfig must name at least one plugin.".to_owned(),
        ));
    }
    for (name, plugin) in plugins {
        if !plugin.is_object() {
            return Err(invalid(format!(
                "runtimeConfig.{name} must be a JSON object."
            )));
        }
    }
    let names: Vec<String> = plugins.keys().cloned().collect();
    Ok((names.clone(), names))
}

/// Schema 2.x: `mainSteps` is a list of `{"action", "name", "inputs"}` with unique names.
/// Returns the step names and their actions.
fn main_steps(value: Option<&Value>) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let Some(Value::Array(steps)) = value else {
        return Err(invalid(
            "mainSteps is required and must be a list for schema version 2.x.".to_owned(),
        ));
    };
    if steps.is_empty() {
        return Err(invalid("mainSteps must have at least one step.".to_owned()));
    }
    let (mut names, mut actions) = (Vec::new(), Vec::new());
    for (i, step) in steps.iter().enumerate() {
        let field = |key: &str| match step.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(invalid(format!(
                "mainSteps[{i}].{key} is required and must be a non-empty string."
            ))),
        };
        let (action, name) = (field("action")?, field("name")?);
        if names.contains(&name) {
            return Err(invalid(format!("Duplicate step name {name} in mainSteps.")));
        }
        names.push(name);
        actions.push(action);
    }
    Ok((names, actions))
}

/// The platforms a Command document's plugins run on.
fn platform_types(actions: &[String]) -> Vec<&'static str> {
    let mut platforms = Vec::new();
    for action in actions {
        let these: &[&'static str] = match action.as_str() {
            "aws:runShellScript" => &["Linux", "MacOS"],
            "aws:runPowerShellScript" => &["Windows", "Linux"],
            _ => &["Windows", "Linux", "MacOS"],
        };
        for p in these {
            if !platforms.contains(p) {
                platforms.push(*p);
            }
        }
    }
    // The order DescribeDocument shows.
    ["Windows", "Linux", "MacOS"]
        .into_iter()
        .filter(|p| platforms.contains(p))
        .collect()
}

/// The `parameters` object with its members in document order (`serde_json::Map` sorts them).
fn parameters(raw: &str) -> Result<Vec<Parameter>, ApiError> {
    #[derive(Deserialize)]
    struct Top {
        #[serde(default)]
        parameters: Option<Ordered>,
    }
    let top: Top = serde_json::from_str(raw)
        .map_err(|e| invalid(format!("parameters must be a JSON object: {e}")))?;
    let Some(Ordered(members)) = top.parameters else {
        return Ok(Vec::new());
    };
    members
        .into_iter()
        .map(|(name, spec)| parameter(name, &spec))
        .collect()
}

fn parameter(name: String, spec: &Value) -> Result<Parameter, ApiError> {
    let Value::Object(spec) = spec else {
        return Err(invalid(format!("Parameter {name} must be a JSON object.")));
    };
    let kind = match spec.get("type") {
        Some(Value::String(t)) => ParameterType::parse(t).ok_or_else(|| {
            invalid(format!(
                "Parameter {name} has type {t}, which is not one of String, StringList, \
                 Boolean, Integer, StringMap, MapList."
            ))
        })?,
        _ => return Err(invalid(format!("Parameter {name} must declare a type."))),
    };
    let string = |key: &str| match spec.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!(
            "Parameter {name}: {key} must be a string."
        ))),
    };
    let count = |key: &str| match spec.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(format!("Parameter {name}: {key} must be a number."))),
    };
    let allowed_values = match spec.get("allowedValues") {
        None => None,
        Some(Value::Array(values)) => Some(
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        Some(_) => {
            return Err(invalid(format!(
                "Parameter {name}: allowedValues must be a list."
            )));
        }
    };
    Ok(Parameter {
        kind,
        description: string("description")?,
        default: spec.get("default").cloned(),
        allowed_pattern: string("allowedPattern")?,
        allowed_values,
        min_items: count("minItems")?,
        max_items: count("maxItems")?,
        max_chars: count("maxChars")?,
        name,
    })
}

/// A JSON object read as its members in order.
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ordered, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    members.push((k, v));
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

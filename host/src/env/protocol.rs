//! leafe's session protocol, typed once: the client (`env/remote.rs`, for
//! `--env remote:URL`) and the server (`jobs/serve/sessions.rs`) both speak
//! these types, and a server in another language (the ScienceWorld bridge)
//! is checked against the JSON schema generated from them
//! (`docs/session-protocol.schema.json`, [`schema`]).
//!
//! | call | request | answer |
//! |---|---|---|
//! | list environments | `GET /envs` | [`EnvList`] |
//! | open (reset, or continue a snapshot) | `POST /sessions` [`CreateRequest`] | [`Created`] (201) |
//! | step | `POST /sessions/{id}/step` [`StepRequest`] | [`StepAnswer`] |
//! | admissible actions | `GET /sessions/{id}/admissible` | [`AdmissibleAnswer`] |
//! | expert action | `GET /sessions/{id}/expert` | [`ExpertAnswer`] |
//! | snapshot | `POST /sessions/{id}/snapshot` | [`SnapshotAnswer`] |
//! | restore | `POST /sessions/{id}/restore` [`RestoreRequest`] | [`RestoreAnswer`] |
//! | describe one | `GET /sessions/{id}` | [`SessionView`] |
//! | list | `GET /sessions` | [`SessionList`] |
//! | close | `DELETE /sessions/{id}` | nothing (204) |
//!
//! An error is any other status with a JSON body: `{"error": {"message",
//! "type"}}` (OpenAI's shape, which leafe's servers write) or `{"message"}`.
//! The environment contract needs only `/envs`, open, step, admissible,
//! expert and close; snapshots are leafe's own (a remote environment without
//! them is gone back in by reset and replay).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `GET /envs`: every environment the server serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EnvList {
    pub envs: Vec<EnvListing>,
}

/// One environment, as its description (`EnvInfo`) says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EnvListing {
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// What makes its observations (a component's sha256, a simulator's);
    /// a client without it hashes the description instead.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Each split's name and its number of tasks.
    pub splits: Vec<(String, u32)>,
    /// Steps an episode may take before it is truncated.
    pub max_steps: u32,
    /// What an action looks like, for a policy's prompt.
    #[serde(default)]
    pub action_hint: String,
    /// The Python sandbox build its programs run in, where it runs programs.
    #[serde(default)]
    pub sandbox_sha256: Option<String>,
}

/// `POST /sessions`: a fresh episode of task `task` of `split`, or the
/// snapshot `state` to continue from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreateRequest {
    /// Which environment (optional where the server has one, or with `state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default = "test_split")]
    pub split: String,
    #[serde(default)]
    pub task: u32,
    #[serde(default)]
    pub seed: u64,
    /// Environment options, e.g. `{"size": "8x8"}`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// A snapshot (base64, from `/snapshot`) to continue instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

fn test_split() -> String {
    "test".into()
}

/// The answer to `POST /sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Created {
    pub id: String,
    pub observation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_sha256: Option<String>,
    /// The valid actions now, saving a call to `/admissible`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admissible: Option<Vec<String>>,
}

/// `POST /sessions/{id}/step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StepRequest {
    pub action: String,
}

/// The answer to a step. `info` is free-form; `info.admissible` (a list
/// of strings) is the valid actions now, `info.success` and
/// `info["dead-end"]` what the environment contract reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StepAnswer {
    pub observation: String,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    #[serde(default)]
    pub info: Map<String, Value>,
}

/// `GET /sessions/{id}/admissible`: the valid actions, or `null` where
/// the environment does not list them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AdmissibleAnswer {
    pub actions: Option<Vec<String>>,
}

/// `GET /sessions/{id}/expert`: the expert's next action, or `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExpertAnswer {
    pub action: Option<String>,
}

/// `POST /sessions/{id}/snapshot`: the session's state, base64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SnapshotAnswer {
    pub state: String,
}

/// `POST /sessions/{id}/restore`: a snapshot to put the session in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RestoreRequest {
    pub state: String,
}

/// The answer to a restore: the observation the snapshot was taken at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RestoreAnswer {
    pub observation: String,
}

/// `GET /sessions/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionView {
    pub id: String,
    pub env: String,
    pub split: String,
    pub task: u32,
    pub seed: u64,
    /// Steps taken since it opened.
    pub steps: u64,
    pub observation: String,
}

/// `GET /sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionList {
    pub sessions: Vec<ListedSession>,
    pub max_sessions: usize,
}

/// One session of `GET /sessions`; one busy in a call is listed by its id
/// alone, with `busy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ListedSession {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Seconds since its last call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<bool>,
}

/// `value` read as `T`, or what is wrong with it and where: `reward:
/// invalid type: string "1", expected f64`.
pub fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => e.into_inner().to_string(),
            _ => format!("{path}: {}", e.into_inner()),
        }
    })
}

/// The JSON schema of every message, by type name: what
/// `docs/session-protocol.schema.json` holds.
#[cfg(feature = "schema")]
pub fn schema() -> Value {
    use schemars::{JsonSchema, SchemaGenerator};
    let mut generator = SchemaGenerator::default();
    let mut messages = Map::new();
    let mut add = |name: &str, schema: schemars::Schema| {
        messages.insert(name.to_string(), schema.to_value());
    };
    add("EnvList", EnvList::json_schema(&mut generator));
    add("CreateRequest", CreateRequest::json_schema(&mut generator));
    add("Created", Created::json_schema(&mut generator));
    add("StepRequest", StepRequest::json_schema(&mut generator));
    add("StepAnswer", StepAnswer::json_schema(&mut generator));
    add(
        "AdmissibleAnswer",
        AdmissibleAnswer::json_schema(&mut generator),
    );
    add("ExpertAnswer", ExpertAnswer::json_schema(&mut generator));
    add(
        "SnapshotAnswer",
        SnapshotAnswer::json_schema(&mut generator),
    );
    add(
        "RestoreRequest",
        RestoreRequest::json_schema(&mut generator),
    );
    add("RestoreAnswer", RestoreAnswer::json_schema(&mut generator));
    add("SessionView", SessionView::json_schema(&mut generator));
    add("SessionList", SessionList::json_schema(&mut generator));
    let definitions: Map<String, Value> = generator
        .definitions()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "leafe session protocol",
        "description": "The messages of leafe's session API (leafe-host serve, --env remote:URL), one schema per message type, by name.",
        "messages": messages,
        "$defs": definitions,
    })
}

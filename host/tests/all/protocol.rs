//! The session protocol's types: what the client sends the server reads
//! back unchanged, and the JSON schema that other servers are checked
//! against is the one the types generate.

use leafe_host::env::protocol::{
    AdmissibleAnswer, CreateRequest, Created, EnvList, EnvListing, ExpertAnswer, ListedSession,
    RestoreAnswer, RestoreRequest, SessionList, SessionView, SnapshotAnswer, StepAnswer,
    StepRequest, decode, schema,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::path::Path;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
    let text = serde_json::to_string(&value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(back, value, "{text}");
}

#[test]
fn every_message_reads_back_as_it_was_written() {
    round_trip(EnvList {
        envs: vec![EnvListing {
            name: "sokoban".into(),
            version: "0.1.0".into(),
            sha256: Some("ab".into()),
            splits: vec![("train".into(), 1000), ("test".into(), 100)],
            max_steps: 120,
            action_hint: "up, down, left or right".into(),
            sandbox_sha256: None,
        }],
    });
    round_trip(CreateRequest {
        env: Some("sokoban".into()),
        split: "train".into(),
        task: u32::MAX,
        seed: u64::MAX,
        options: [("size".to_string(), "8x8".to_string())].into(),
        state: None,
    });
    round_trip(Created {
        id: "s1".into(),
        observation: "#####".into(),
        env: Some("sokoban".into()),
        component_sha256: Some("cd".into()),
        admissible: Some(vec!["up".into()]),
    });
    round_trip(StepRequest {
        action: "up".into(),
    });
    let info = json!({"success": true, "admissible": ["a"]});
    round_trip(StepAnswer {
        observation: "o".into(),
        reward: -0.25,
        terminated: true,
        truncated: false,
        info: info.as_object().unwrap().clone(),
    });
    round_trip(AdmissibleAnswer { actions: None });
    round_trip(ExpertAnswer {
        action: Some("left".into()),
    });
    round_trip(SnapshotAnswer {
        state: "AAEC".into(),
    });
    round_trip(RestoreRequest {
        state: "AAEC".into(),
    });
    round_trip(RestoreAnswer {
        observation: "o".into(),
    });
    round_trip(SessionView {
        id: "s1".into(),
        env: "guess".into(),
        split: "test".into(),
        task: 3,
        seed: 9,
        steps: 2,
        observation: "o".into(),
    });
    round_trip(SessionList {
        sessions: vec![ListedSession {
            id: "s2".into(),
            env: None,
            task: None,
            steps: None,
            idle_s: None,
            busy: Some(true),
        }],
        max_sessions: 256,
    });
}

#[test]
fn a_minimal_answer_takes_the_documented_defaults() {
    let created: Created = decode(json!({"id": "x", "observation": "o"})).unwrap();
    assert_eq!(created.admissible, None);
    let request: CreateRequest = decode(json!({})).unwrap();
    assert_eq!((request.split.as_str(), request.task), ("test", 0));
    let step: StepAnswer = decode(json!({
        "observation": "o", "reward": 1, "terminated": false, "truncated": false
    }))
    .unwrap();
    assert!(step.info.is_empty());
}

#[test]
fn an_answer_that_does_not_fit_names_what_is_wrong_and_where() {
    let wrong_type = decode::<StepAnswer>(json!({
        "observation": "o", "reward": "1", "terminated": false, "truncated": false
    }))
    .unwrap_err();
    assert!(
        wrong_type.starts_with("reward: invalid type"),
        "{wrong_type}"
    );
    let missing = decode::<StepAnswer>(json!({"observation": "o", "reward": 0})).unwrap_err();
    assert!(missing.contains("missing field `terminated`"), "{missing}");
    let nested =
        decode::<EnvList>(json!({"envs": [{"name": "x", "splits": [["a", -1]], "max_steps": 1}]}))
            .unwrap_err();
    assert!(nested.starts_with("envs[0].splits[0][1]:"), "{nested}");
    for bad in [json!([]), json!("envs"), json!(17), json!(null)] {
        assert!(decode::<EnvList>(bad.clone()).is_err(), "{bad}");
    }
}

fn committed_schema() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/session-protocol.schema.json")
}

/// `LEAFE_WRITE_SCHEMA=1 cargo test --test all protocol::` rewrites it.
#[test]
fn the_committed_schema_is_the_one_the_types_generate() {
    let generated = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
    let path = committed_schema();
    if std::env::var_os("LEAFE_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the protocol's types generate: run \
         `LEAFE_WRITE_SCHEMA=1 cargo test -p leafe-host --test all protocol::` and commit it",
        path.display()
    );
    let messages: &Value = &schema()["messages"];
    for name in [
        "EnvList",
        "Created",
        "StepAnswer",
        "AdmissibleAnswer",
        "ExpertAnswer",
    ] {
        assert!(messages[name].is_object(), "{name} has no schema");
    }
}

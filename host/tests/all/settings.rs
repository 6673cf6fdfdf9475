//! The library checks its own settings: a caller that is not the command
//! line (the Python package, `serve`, a program) gets the same ranges and
//! names, with the field named so that each front end can name its flag.

use leafe_host::jobs::serve::ServeConfig;
use leafe_host::llm::{ChatClient, ChatConfig};
use leafe_host::tree::{Header, PolicyName, ReflectorName};
use leafe_host::{BadSetting, ExploreConfig, Limits, Method, PolicySpec, ReflectorSpec, RunLimits};
use std::time::Duration;

fn field_of(e: &anyhow::Error) -> &'static str {
    e.downcast_ref::<BadSetting>()
        .unwrap_or_else(|| panic!("not a setting error: {e:#}"))
        .field
}

fn explore(budget: u32, snapshot_every: u32) -> ExploreConfig {
    ExploreConfig {
        method: Method::Leafe,
        reflect_every: 0,
        budget,
        budget_unit: Default::default(),
        max_depth: 10,
        snapshot_every,
    }
}

#[test]
fn explore_settings_out_of_range_name_their_field() {
    assert!(explore(300, 1).validate().is_ok());
    let zero = explore(0, 1).validate().unwrap_err();
    assert_eq!(zero.field, "budget");
    assert_eq!(
        zero.to_string(),
        "budget must be between 1 and 100000, got 0"
    );
    let huge = explore(ExploreConfig::MAX_BUDGET + 1, 1).validate();
    assert_eq!(huge.unwrap_err().field, "budget");
    assert_eq!(
        explore(10, 0).validate().unwrap_err().field,
        "snapshot_every"
    );
}

#[test]
fn engine_limits_out_of_range_name_their_field() {
    let ok = Limits::default();
    assert!(ok.validate().is_ok());
    let cases = [
        (
            Limits {
                fuel_per_call: 0,
                ..ok
            },
            "fuel_per_call",
        ),
        (
            Limits {
                wall_ms_per_call: 0,
                ..ok
            },
            "wall_ms_per_call",
        ),
        (
            Limits {
                wall_ms_per_call: Limits::MAX_WALL_MS + 1,
                ..ok
            },
            "wall_ms_per_call",
        ),
        (
            Limits {
                memory_bytes: Limits::MAX_MEMORY_BYTES + 1,
                ..ok
            },
            "memory_bytes",
        ),
        (
            Limits {
                output_bytes: 0,
                ..ok
            },
            "output_bytes",
        ),
    ];
    for (limits, field) in cases {
        assert_eq!(limits.validate().unwrap_err().field, field, "{limits:?}");
        // A library caller gets the same refusal when it makes a runtime.
        let options = leafe_host::EngineOptions {
            limits,
            cache: None,
            ..Default::default()
        };
        let err = leafe_host::Runtime::new(options).err().expect("refused");
        assert_eq!(field_of(&err), field);
    }
    assert!(RunLimits::default().output_bytes <= RunLimits::MAX_OUTPUT_BYTES);
}

#[test]
fn policy_and_reflector_names_live_in_the_library() {
    let no_model = || -> anyhow::Result<_> { anyhow::bail!("no model configured") };
    let oracle = PolicySpec::parse("oracle", 0.3, no_model).unwrap();
    assert_eq!(oracle.name(), PolicyName::Oracle);
    assert_eq!(oracle.noise(), 0.3);
    let unknown = PolicySpec::parse("telepathy", 0.0, no_model).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "unknown policy 'telepathy' (available: oracle, reference, human, openai)"
    );
    // The model is made only for the policy that needs one.
    let openai = PolicySpec::parse("openai", 0.0, no_model).unwrap_err();
    assert_eq!(openai.to_string(), "no model configured");
    let noisy = PolicySpec::parse("oracle", 1.5, no_model).unwrap_err();
    assert_eq!(field_of(&noisy), "noise");
    assert!(PolicySpec::parse("oracle", f64::NAN, no_model).is_err());

    let no_client = || -> anyhow::Result<_> { anyhow::bail!("no client") };
    let rule = ReflectorSpec::parse("rule", no_client).unwrap();
    assert_eq!(rule.name(), ReflectorName::Rule);
    assert_eq!(
        ReflectorSpec::parse("llm", no_client)
            .unwrap_err()
            .to_string(),
        "no client"
    );
    assert_eq!(
        ReflectorSpec::parse("oracle", no_client)
            .unwrap_err()
            .to_string(),
        "unknown reflector 'oracle' (available: rule, llm)"
    );
    for name in PolicyName::ALL {
        assert_eq!(PolicyName::parse(name.as_str()).unwrap(), name);
    }
    for name in ReflectorName::ALL {
        assert_eq!(ReflectorName::parse(name.as_str()).unwrap(), name);
    }
}

#[test]
fn a_header_stores_the_names_as_runs_always_wrote_them() {
    let line = r#"{"format":1,"env":"sokoban","env_name":"sokoban","env_version":"1",
        "component_sha256":"x","split":"test","tasks":[0],"seed":0,"options":[],
        "policy":"openai","noise":0.0,"budget":10,"max_depth":2,"snapshot_every":1}"#;
    let header: Header = serde_json::from_str(line).unwrap();
    assert_eq!(header.policy, PolicyName::OpenAi);
    // Logs from before reflectors had names used the rules.
    assert_eq!(header.reflector, ReflectorName::Rule);
    let back = serde_json::to_value(&header).unwrap();
    assert_eq!(back["policy"], "openai");
    assert_eq!(back["reflector"], "rule");
    let bad = line.replace("\"openai\"", "\"telepathy\"");
    assert!(serde_json::from_str::<Header>(&bad).is_err());
}

fn chat(base_url: &str, temperature: f64) -> ChatConfig {
    ChatConfig {
        base_url: base_url.into(),
        model: "m".into(),
        api_key: None,
        temperature,
        top_p: 1.0,
        max_tokens: 16,
        timeout: Duration::from_secs(5),
        retries: 0,
        backoff: Duration::from_millis(10),
        concurrency: 1,
    }
}

#[test]
fn a_chat_client_refuses_settings_out_of_range() {
    assert!(ChatClient::new(chat("http://127.0.0.1:1/v1", 0.7)).is_ok());
    let scheme = ChatClient::new(chat("ftp://x", 0.7)).err().unwrap();
    assert_eq!(scheme.field, "base_url");
    let hot = ChatClient::new(chat("http://x", 2.5)).err().unwrap();
    assert_eq!(
        hot.to_string(),
        "temperature must be between 0 and 2, got 2.5"
    );
}

fn serve_config(token: Option<&str>) -> ServeConfig {
    ServeConfig {
        token: token.map(str::to_string),
        max_sessions: 8,
        session_idle_secs: 60,
        max_body_kb: 1024,
        concurrency: 2,
        queue: 8,
        run_limits: RunLimits::default(),
        body_timeout_secs: 30,
    }
}

#[test]
fn the_server_config_holds_the_token_rule_and_the_ranges() {
    let loopback = "127.0.0.1:8080".parse().unwrap();
    let everyone = "0.0.0.0:8080".parse().unwrap();
    assert!(serve_config(None).validate(loopback).is_ok());
    let open = serve_config(None).validate(everyone).unwrap_err();
    assert_eq!(open.field, "token");
    assert!(open.problem.contains("0.0.0.0:8080 is reachable"), "{open}");
    assert!(serve_config(Some("s3cret")).validate(everyone).is_ok());
    let blank = serve_config(Some("  ")).validate(loopback).unwrap_err();
    assert_eq!(blank.field, "token");
    let mut c = serve_config(None);
    c.max_sessions = 0;
    assert_eq!(c.validate(loopback).unwrap_err().field, "max_sessions");
    let mut c = serve_config(None);
    c.max_body_kb = ServeConfig::MAX_BODY_KB + 1;
    assert_eq!(c.validate(loopback).unwrap_err().field, "max_body_kb");
    let mut c = serve_config(None);
    c.session_idle_secs = 0;
    assert_eq!(c.validate(loopback).unwrap_err().field, "session_idle_secs");
}

#[test]
fn the_server_refuses_an_open_address_without_a_token_for_library_callers() {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let err = tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let runtime = leafe_host::Runtime::new(leafe_host::EngineOptions {
            cache: None,
            pool_instances: 4,
            ..Default::default()
        })
        .unwrap();
        let state = std::sync::Arc::new(leafe_host::jobs::serve::AppState::new(
            serve_config(None),
            runtime,
            Vec::new(),
        ));
        leafe_host::jobs::serve::serve(listener, state, async {}, Duration::from_secs(1))
            .await
            .unwrap_err()
    });
    assert_eq!(field_of(&err), "token");
}

//! The whole loop with a real model over real HTTP: a tiny random model from
//! the trainer, served by `leafe-trainer`'s OpenAI-compatible server on
//! loopback, plays an environment through the host's `openai` policy (its
//! babble becomes format feedback, never a crash), and the run's exported
//! chat data is what the trainer's SFT reads.

use leafe_host::agent::prompt::PromptConfig;
use leafe_host::agent::reflect::rule::RuleReflector;
use leafe_host::llm::{ChatClient, ChatConfig};
use leafe_host::{
    EngineOptions, EnvComponent, ExploreConfig, Method, PolicySpec, Record, Runtime, Source, Task,
    explore_task,
};
use leafe_trainer::io::chat::ChatTemplate;
use leafe_trainer::jobs::serve::{Served, spawn_on_loopback};
use leafe_trainer::jobs::tiny::{TinySpec, init_tiny};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn tiny_model(dir: &Path) -> std::path::PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "Guess the secret whole number between 1 and 100. Action: 50 is wrong: go higher. "
            .repeat(40),
    )
    .unwrap();
    let model = dir.join("tiny");
    init_tiny(
        &corpus,
        &model,
        &TinySpec {
            vocab_size: 300,
            ..TinySpec::default()
        },
    )
    .unwrap();
    model
}

fn start_server(model: &Path) -> SocketAddr {
    let cfg = leafe_trainer::nn::config::ModelConfig::load(model).unwrap();
    let params =
        leafe_trainer::io::checkpoint::load_params(model, &cfg, candle_dtype(), &candle_device())
            .unwrap();
    let state = Arc::new(Served::new(
        "tiny".into(),
        leafe_trainer::nn::model::Model::new(&cfg, &params).unwrap(),
        leafe_trainer::io::tokenizer::load(model).unwrap(),
        ChatTemplate::load(model).unwrap(),
    ));
    spawn_on_loopback(state).unwrap()
}

fn candle_dtype() -> candle_core::DType {
    candle_core::DType::F32
}

fn candle_device() -> candle_core::Device {
    candle_core::Device::Cpu
}

#[test]
fn a_served_tiny_model_plays_through_the_openai_policy() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let addr = start_server(&model);
    let client = Arc::new(
        ChatClient::new(ChatConfig {
            base_url: format!("http://{addr}/v1"),
            model: "tiny".into(),
            api_key: None,
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 6,
            timeout: Duration::from_secs(60),
            retries: 2,
            backoff: Duration::from_millis(50),
            concurrency: 1,
        })
        .unwrap(),
    );
    let spec = PolicySpec::OpenAi {
        client: client.clone(),
        prompt: Arc::new(PromptConfig::default()),
    };
    let runtime = Runtime::new(EngineOptions {
        cache: None,
        ..Default::default()
    })
    .unwrap();
    let env = EnvComponent::load(&runtime, Source::Builtin("guess".into())).unwrap();
    let task = Task {
        split: "test".into(),
        index: 0,
        seed: 0,
        options: vec![],
    };
    let cfg = ExploreConfig {
        method: Method::Leafe,
        reflect_every: 0,
        budget: 4,
        budget_unit: Default::default(),
        max_depth: 1,
        snapshot_every: 1,
    };
    let mut policy = spec.build(0, 0);
    let run = explore_task(
        &env.clone().into(),
        &task,
        policy.as_mut(),
        &mut RuleReflector,
        &cfg,
    )
    .unwrap();
    assert_eq!(run.end.error, None);
    assert_eq!(
        run.end.steps, 4,
        "every answer cost a step, whatever it said"
    );
    let usage = client.totals();
    assert_eq!(usage.requests, 4);
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    let actions: Vec<&str> = run
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Node(n) => n.action.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(actions.len(), 4);
}

#[test]
fn exported_distillation_data_is_what_the_trainer_reads() {
    use leafe_host::jobs::TaskSelection;
    use leafe_host::jobs::export::{
        ExportArgs, ExportData, ExportTarget, PromptOverride, WeightLayout, export,
    };
    use leafe_host::jobs::run::{RunArgs, run};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let runtime = Runtime::new(EngineOptions {
        cache: None,
        ..Default::default()
    })
    .unwrap();
    let out = dir.path().join("run");
    run(
        &runtime,
        &RunArgs {
            env: "sokoban".into(),
            split: "train".into(),
            tasks: TaskSelection::Range { start: 0, count: 6 },
            seed: 0,
            options: vec![("boxes".into(), "2".into())],
            policy: PolicySpec::Oracle { noise: 0.5 },
            prompt: Default::default(),
            reflector: leafe_host::ReflectorSpec::Rule,
            explore: ExploreConfig {
                method: Method::Leafe,
                reflect_every: 0,
                budget: 200,
                budget_unit: Default::default(),
                max_depth: 8,
                snapshot_every: 1,
            },
            out: out.clone(),
            resume: false,
            force: false,
            jobs: 2,
            progress: false,
        },
    )
    .unwrap();
    let template = ChatTemplate::load(&model).unwrap();
    let tokenizer = leafe_trainer::io::tokenizer::load(&model).unwrap();
    let layouts = [WeightLayout::Inline, WeightLayout::Split];
    let mut trained_inline = std::collections::BTreeMap::new();
    for (data, weights) in [ExportData::Leafe, ExportData::Rft, ExportData::Iwm]
        .into_iter()
        .flat_map(|d| layouts.map(|w| (d, w)))
    {
        let file = dir.path().join(format!("{data:?}-{weights:?}.jsonl"));
        let summary = export(
            &runtime,
            &ExportArgs {
                runs: vec![out.clone()],
                out: file.clone(),
                data,
                cf_per_task: 3,
                reh_fraction: 0.5,
                beta: 0.5,
                seed: 0,
                // A short history: this tokenizer never saw a sokoban board.
                prompt: PromptOverride {
                    system: None,
                    history_chars: Some(1_500),
                },
                keep_experience: false,
                target: ExportTarget::Action,
                cf_from: Default::default(),
                weights,
                allow_empty: false,
            },
        )
        .unwrap();
        let set = leafe_trainer::io::data::load_chat_jsonl(
            &file,
            &template,
            &tokenizer,
            8192,
            leafe_trainer::io::data::OnBadLine::Stop,
        )
        .unwrap();
        assert_eq!(set.examples.len(), summary.records, "{data:?} {weights:?}");
        assert!(set.trained_tokens() > 0);
        if data == ExportData::Leafe {
            let mut sets = set.sets.clone();
            sets.sort();
            assert_eq!(sets, ["cf", "reh"], "{weights:?}");
        }
        // Both layouts train the same tokens.
        let trained = *trained_inline
            .entry(format!("{data:?}"))
            .or_insert(set.trained_tokens());
        assert_eq!(trained, set.trained_tokens(), "{data:?} {weights:?}");
    }
}

/// GRPO from leafe's pieces (`scripts/experiments/grpo.sh`): a tiny model that answers
/// guess-the-number (1 to 4) at random learns task 0's secret from group
/// sampling, advantage-weighted updates and weight reloads in the server.
#[test]
fn grpo_raises_the_success_rate_of_a_tiny_model() {
    use leafe_host::jobs::TaskSelection;
    use leafe_host::jobs::export::{ExportArgs, ExportData, ExportTarget, WeightLayout, export};
    use leafe_host::jobs::run::{RunArgs, run};
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(EngineOptions {
        cache: None,
        ..Default::default()
    })
    .unwrap();
    let opts = vec![
        ("max".to_string(), "4".to_string()),
        ("max-steps".to_string(), "1".to_string()),
    ];
    // The prompt of task 0, from a random player's successful guesses.
    let played = dir.path().join("played");
    run(
        &runtime,
        &RunArgs {
            env: "guess".into(),
            split: "test".into(),
            tasks: TaskSelection::One(0),
            seed: 0,
            options: opts.clone(),
            policy: PolicySpec::Oracle { noise: 1.0 },
            prompt: Default::default(),
            reflector: leafe_host::ReflectorSpec::Rule,
            explore: ExploreConfig {
                method: Method::Group,
                reflect_every: 0,
                budget: 32,
                budget_unit: Default::default(),
                max_depth: 31,
                snapshot_every: 1,
            },
            out: played.clone(),
            resume: false,
            force: false,
            jobs: 1,
            progress: false,
        },
    )
    .unwrap();
    let won = dir.path().join("won.jsonl");
    export(
        &runtime,
        &ExportArgs {
            runs: vec![played],
            out: won.clone(),
            data: ExportData::Rft,
            cf_per_task: 3,
            reh_fraction: 0.0,
            beta: 1.0,
            seed: 0,
            prompt: Default::default(),
            keep_experience: false,
            target: ExportTarget::Action,
            cf_from: Default::default(),
            weights: WeightLayout::Inline,
            allow_empty: false,
        },
    )
    .unwrap();
    // A base policy that answers 1, 2, 3 or 4 evenly: SFT on all four.
    let text = std::fs::read_to_string(&won).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let (mut data, mut corpus) = (String::new(), String::new());
    for k in 0..40 {
        let messages = record["messages"].as_array_mut().unwrap();
        messages.last_mut().unwrap()["content"] = format!("Action: {}", k % 4 + 1).into();
        for m in messages.iter() {
            corpus.push_str(m["content"].as_str().unwrap());
            corpus.push('\n');
        }
        data.push_str(&format!("{record}\n"));
    }
    std::fs::write(dir.path().join("corpus.txt"), corpus).unwrap();
    std::fs::write(dir.path().join("uniform.jsonl"), data).unwrap();
    let init = dir.path().join("init");
    init_tiny(
        &dir.path().join("corpus.txt"),
        &init,
        &TinySpec {
            vocab_size: 300,
            ..TinySpec::default()
        },
    )
    .unwrap();
    let base = dir.path().join("base");
    let cfg = leafe_trainer::jobs::sft::SftConfig {
        epochs: 25,
        batch_size: 8,
        lr: 3e-3,
        ..Default::default()
    };
    leafe_trainer::jobs::sft::train(
        &init,
        &dir.path().join("uniform.jsonl"),
        &base,
        &cfg,
        &candle_core::Device::Cpu,
        false,
        false,
    )
    .unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let work = dir.path().join("grpo");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/experiments/grpo.sh"))
        .arg(&base)
        .arg(&work)
        .args([
            "--env",
            "guess",
            "--opt",
            "max=4",
            "--opt",
            "max-steps=1",
            "--task",
            "0",
        ])
        .envs([
            ("ITERS", "8"),
            ("GROUP", "16"),
            ("STEPS", "1"),
            ("LR", "1e-3"),
            ("MAX_TOKENS", "6"),
        ])
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rates: Vec<f64> = std::fs::read_to_string(work.join("grpo_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["success_rate"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(rates.len(), 8);
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    // From about chance (1 in 4) to well above it.
    assert!(
        mean(&rates[..2]) < 0.4 && mean(&rates[4..]) > mean(&rates[..2]) + 0.2,
        "{rates:?}"
    );
    assert!(work.join("final/model.safetensors").exists());
}

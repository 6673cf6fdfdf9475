//! The OpenAI-compatible server over real HTTP on loopback: a chat
//! completion returns what `generate` returns, and bad requests get 4xx.

use crate::common;
use crate::common::load;

use leafe_trainer::io::chat::ChatTemplate;
use leafe_trainer::jobs::generate::{GenerateConfig, generate};
use leafe_trainer::jobs::serve::{ServeLimits, Served, spawn_on_loopback};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

fn start(dir: &Path) -> SocketAddr {
    let (model, tok) = load(dir);
    let state = Arc::new(Served::new(
        "tiny".into(),
        model,
        tok,
        ChatTemplate::load(dir).unwrap(),
    ));
    spawn_on_loopback(state).unwrap()
}

/// One HTTP/1.1 request; returns (status, JSON body).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn chat_completions_match_generate_and_bad_requests_are_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = common::tiny_model(
        dir.path(),
        &"user: which way? assistant: left, then down. ".repeat(40),
        &common::small_spec(),
    );
    let addr = start(&model_dir);

    let (status, models) = request(addr, "GET", "/v1/models", "");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "tiny");

    let body = serde_json::json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": "which way?"}],
        "temperature": 0, "max_tokens": 12,
    });
    let (status, reply) = request(addr, "POST", "/v1/chat/completions", &body.to_string());
    assert_eq!(status, 200, "{reply}");
    let (model, tok) = load(&model_dir);
    let ids = common::chat_prompt(&model_dir, &tok, "which way?");
    let eos: Vec<u32> = model.cfg.eos_token_id.into_iter().collect();
    let expected = generate(
        &model,
        &tok,
        &ids,
        &eos,
        &GenerateConfig {
            max_tokens: 12,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        expected.text.as_str()
    );
    assert_eq!(reply["usage"]["prompt_tokens"], ids.len());

    // n samples with a seed: reproducible, n choices.
    let sampled = serde_json::json!({
        "messages": [{"role": "user", "content": "which way?"}],
        "n": 3, "temperature": 1.0, "top_p": 0.9, "seed": 5, "max_tokens": 6, "stop": ["zzz"],
    });
    let (_, a) = request(addr, "POST", "/v1/chat/completions", &sampled.to_string());
    let (_, b) = request(addr, "POST", "/v1/chat/completions", &sampled.to_string());
    assert_eq!(a["choices"].as_array().unwrap().len(), 3);
    assert_eq!(a["choices"], b["choices"]);

    let (status, e) = request(addr, "POST", "/v1/chat/completions", "{not json");
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid request body")
    );
    let (status, _) = request(
        addr,
        "POST",
        "/v1/chat/completions",
        r#"{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}"#,
    );
    assert_eq!(status, 404);
    let (status, _) = request(
        addr,
        "POST",
        "/v1/chat/completions",
        r#"{"messages": [], "n": 1}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = request(
        addr,
        "POST",
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "x"}], "n": 0}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = request(addr, "GET", "/nowhere", "");
    assert_eq!(status, 404);
}

/// The raw response: status line, headers and body.
fn raw(addr: SocketAddr, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn beyond_capacity_is_503_with_retry_after_and_long_prompts_are_400() {
    let (_dir, state, addr) = common::serve_tiny(ServeLimits {
        concurrency: 1,
        queue: 0,
        max_context: 64,
        ..ServeLimits::default()
    });

    let long = serde_json::json!({
        "messages": [{"role": "user", "content": "which way? ".repeat(100)}],
    });
    let (status, e) = request(addr, "POST", "/v1/chat/completions", &long.to_string());
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-context"),
        "{e}"
    );

    // All slots taken, no queue: 503 with Retry-After, and the server
    // stays up; once the slot is free, requests pass again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hold = rt.block_on(state.hold_all_slots());
    let small = r#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}"#;
    let busy = raw(addr, small);
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(
        busy.to_ascii_lowercase().contains("retry-after: 1"),
        "{busy}"
    );
    assert!(busy.contains("the server is busy"), "{busy}");
    drop(hold);
    assert!(raw(addr, small).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_full_queue_refuses_and_queued_requests_finish() {
    let (_dir, state, addr) = common::serve_tiny(ServeLimits {
        concurrency: 1,
        queue: 1,
        max_context: 256,
        ..ServeLimits::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hold = rt.block_on(state.hold_all_slots());
    let small = r#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}"#;
    let queued = std::thread::spawn(move || raw(addr, small));
    // Once the first waits in the queue, a second finds it full.
    for _ in 0..500 {
        if state.queued() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(state.queued(), 1);
    let refused = raw(addr, small);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    drop(hold);
    let first = queued.join().unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
}

/// `POST /v1/reload` swaps in another checkpoint under the same name, when
/// the server allows it; a bad directory leaves the old weights serving.
#[test]
fn reload_swaps_the_weights_without_a_restart() {
    let corpus = "user: which way? assistant: left, then down. ".repeat(40);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::tiny_model(dir_a.path(), &corpus, &common::small_spec());
    // B: A after some training, as in an on-policy loop.
    let line = serde_json::json!({"messages": [
        {"role": "user", "content": "which way?"},
        {"role": "assistant", "content": "left, then down."}]});
    let data = dir_b.path().join("data.jsonl");
    std::fs::write(&data, format!("{line}\n").repeat(4)).unwrap();
    let b = dir_b.path().join("b");
    let cfg = leafe_trainer::jobs::sft::SftConfig {
        epochs: 30,
        lr: 1e-2,
        warmup_steps: 0,
        ..Default::default()
    };
    leafe_trainer::jobs::sft::train(&a, &data, &b, &cfg, &candle_core::Device::Cpu, false, false)
        .unwrap();
    let greedy = |dir: &Path| {
        let (model, tok) = load(dir);
        let ids = common::chat_prompt(dir, &tok, "which way?");
        let eos: Vec<u32> = model.cfg.eos_token_id.into_iter().collect();
        let cfg = GenerateConfig {
            max_tokens: 12,
            ..Default::default()
        };
        generate(&model, &tok, &ids, &eos, &cfg).unwrap().text
    };
    let (want_a, want_b) = (greedy(&a), greedy(&b));
    assert_ne!(want_a, want_b, "two different models");

    let (model, tok) = load(&a);
    let served = Served::new("tiny".into(), model, tok, ChatTemplate::load(&a).unwrap());
    let addr = spawn_on_loopback(Arc::new(served.allowing_reload())).unwrap();
    let ask = || {
        let body = serde_json::json!({
            "model": "tiny", "messages": [{"role": "user", "content": "which way?"}],
            "temperature": 0, "max_tokens": 12,
        });
        let (status, reply) = request(addr, "POST", "/v1/chat/completions", &body.to_string());
        assert_eq!(status, 200, "{reply}");
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(ask(), want_a);
    let reload = |dir: &Path| {
        let body = serde_json::json!({ "model": dir });
        request(addr, "POST", "/v1/reload", &body.to_string())
    };
    let (status, reply) = reload(&b);
    assert_eq!(
        (status, reply["reloads"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    assert_eq!(ask(), want_b);
    let (status, reply) = reload(&dir_b.path().join("nothing"));
    assert_eq!(status, 400);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot load"),
        "{reply}"
    );
    assert_eq!(ask(), want_b, "a failed reload changes nothing");

    // Off unless asked for.
    let addr = start(&a);
    let body = serde_json::json!({ "model": b }).to_string();
    let (status, reply) = request(addr, "POST", "/v1/reload", &body);
    assert_eq!(status, 403);
    assert!(reply.to_string().contains("--allow-reload"), "{reply}");
}

/// Concurrent requests are decoded together, and each reply is the one the
/// request gets alone.
#[test]
fn concurrent_requests_are_decoded_together_and_each_gets_its_own_reply() {
    let (dir, state, addr) = common::serve_tiny(ServeLimits {
        concurrency: 4,
        queue: 8,
        max_context: 256,
        ..ServeLimits::default()
    });
    let questions = [
        "which way?",
        "left or right, then down?",
        "up",
        "which way is down? left?",
    ];
    let model_dir = dir.path().join("tiny");
    let (model, tok) = load(&model_dir);
    // All four wait in the queue, then start at once.
    each_gets_its_own_reply(&state, addr, &model_dir, &model, &tok, &questions, 24);
    assert!(
        state.largest_batch() >= 2,
        "largest batch {}",
        state.largest_batch()
    );
}

/// Chat completion requests `bodies`, held in the queue until all of them
/// are there and then let go together; their (status, reply) in order.
pub fn all_at_once(
    state: &Served,
    addr: SocketAddr,
    bodies: &[String],
) -> Vec<(u16, serde_json::Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hold = rt.block_on(state.hold_all_slots());
    let clients: Vec<_> = bodies
        .iter()
        .cloned()
        .map(|body| {
            std::thread::spawn(move || request(addr, "POST", "/v1/chat/completions", &body))
        })
        .collect();
    for _ in 0..500 {
        if state.queued() == bodies.len() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(hold);
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

/// Send `questions` (greedy, `max_tokens` each) all at once to the server of
/// `model` and check that each reply is what `generate` gives it alone.
pub fn each_gets_its_own_reply(
    state: &Served,
    addr: SocketAddr,
    model_dir: &Path,
    model: &leafe_trainer::nn::model::Model,
    tok: &tokenizers::Tokenizer,
    questions: &[&str],
    max_tokens: usize,
) {
    let eos: Vec<u32> = model.cfg.eos_token_id.into_iter().collect();
    let alone = questions.iter().map(|q| {
        let ids = common::chat_prompt(model_dir, tok, q);
        let cfg = GenerateConfig {
            max_tokens,
            ..Default::default()
        };
        generate(model, tok, &ids, &eos, &cfg).unwrap().text
    });
    let bodies: Vec<String> = questions
        .iter()
        .map(|q| {
            serde_json::json!({
                "messages": [{"role": "user", "content": q}], "temperature": 0,
                "max_tokens": max_tokens,
            })
            .to_string()
        })
        .collect();
    for ((status, reply), expected) in all_at_once(state, addr, &bodies).into_iter().zip(alone) {
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["choices"][0]["message"]["content"], expected.as_str());
    }
}

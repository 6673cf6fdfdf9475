//! The OpenAI-compatible server over real HTTP on loopback: a chat
//! completion returns what `generate` returns, and bad requests get 4xx.

mod common;
use common::load;

use leafe_trainer::chat::ChatTemplate;
use leafe_trainer::generate::{GenerateConfig, generate};
use leafe_trainer::serve::{Served, spawn_on_loopback};
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
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
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

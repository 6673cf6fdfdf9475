//! The prefix cache: a prompt prefilled after cached keys and values gets
//! a cold prefill's logits and tokens; lookups find whole blocks; eviction
//! keeps the cap and what stays is still right; the server reports the
//! reuse in `usage` and `/metrics` and answers as a cold server does.

use crate::common::{self, max_diff};
use candle_core::Tensor;
use leafe_trainer::jobs::serve::prefix::{BLOCK, PrefixCache};
use leafe_trainer::jobs::serve::{ServeLimits, Served, spawn_on_loopback};
use leafe_trainer::nn::model::{KvBatch, KvCache, Model};
use leafe_trainer::nn::quant::Quantization;
use std::sync::Arc;

fn tiny() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(
        dir.path(),
        &"user: which way? assistant: left, then down. ".repeat(40),
        &common::small_spec(),
    );
    (dir, model)
}

/// `n` token ids below the vocabulary, from `seed`.
fn ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 37 + seed * 11 + 5) % 290)
        .collect()
}

/// Greedy tokens after a prefill's logits and cache.
fn greedy(model: &Model, logits: &Tensor, cache: KvCache, steps: usize) -> Vec<u32> {
    let mut batch = KvBatch::new();
    batch.push(cache).unwrap();
    let mut next = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap();
    let mut out = next.clone();
    for _ in 1..steps {
        next = model
            .decode_batch(&next, &mut batch)
            .unwrap()
            .argmax(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        out.extend(&next);
    }
    out
}

#[test]
fn a_prompt_after_a_cached_prefix_gets_the_cold_logits_and_tokens() {
    let (_dir, model_dir) = tiny();
    for q in [Quantization::None, Quantization::Q8_0] {
        let (model, _) = common::load_quantized(&model_dir, q);
        let prompt = ids(100, 1);
        let (cold, cache) = model.prefill_batch(&[&prompt]).unwrap();
        let mut caches = cache;
        let cold_cache = caches.remove(0);
        for cached in [BLOCK, 2 * BLOCK, 99] {
            let prefix = cold_cache.slice(0, cached).unwrap();
            let (warm, warm_cache) = model.prefill_after(&prefix, &prompt[cached..]).unwrap();
            assert_eq!(warm_cache.len(), prompt.len());
            let d = max_diff(&warm, &cold);
            assert!(d < 1e-4, "{q:?}, {cached} cached: logits differ by {d}");
            let again = cold_cache.slice(0, prompt.len()).unwrap();
            assert_eq!(
                greedy(&model, &warm, warm_cache, 12),
                greedy(&model, &cold, again, 12),
                "{q:?}, {cached} cached"
            );
        }
    }
}

#[test]
fn lookups_find_whole_blocks_and_eviction_keeps_the_cap_and_stays_right() {
    let (_dir, model_dir) = tiny();
    let (model, _) = common::load_frozen(&model_dir);
    let prefill = |p: &[u32]| {
        let (logits, mut caches) = model.prefill_batch(&[p]).unwrap();
        (logits, caches.remove(0))
    };
    let a = ids(3 * BLOCK + 4, 2);
    let (_, a_kv) = prefill(&a);
    let mut cache = PrefixCache::new(usize::MAX);
    assert!(cache.lookup(&a).unwrap().is_none(), "empty");
    cache.insert(&a, &a_kv).unwrap();
    assert_eq!(cache.blocks(), 3);
    assert_eq!(cache.lookup(&a).unwrap().unwrap().len(), 3 * BLOCK);
    // At least one token is left to compute.
    assert_eq!(
        cache.lookup(&a[..3 * BLOCK]).unwrap().unwrap().len(),
        2 * BLOCK
    );
    // A prompt that parts in block 1 reuses block 0 only.
    let mut b = a.clone();
    b[BLOCK + 3] = (b[BLOCK + 3] + 1) % 290;
    assert_eq!(cache.lookup(&b).unwrap().unwrap().len(), BLOCK);
    // The same tokens at another place are another block.
    let mut c = a[BLOCK..].to_vec();
    c.extend(ids(BLOCK, 3));
    assert!(cache.lookup(&c).unwrap().is_none());

    // A cap of two blocks: the deepest of the least recently used goes.
    let block_bytes = a_kv.slice(0, BLOCK).unwrap().bytes();
    let mut small = PrefixCache::new(2 * block_bytes);
    small.insert(&a, &a_kv).unwrap();
    assert_eq!(small.blocks(), 2);
    assert!(small.bytes() <= 2 * block_bytes);
    let kept = small.lookup(&a).unwrap().unwrap();
    assert_eq!(kept.len(), 2 * BLOCK);
    // What is left gives the cold logits.
    let (cold, _) = prefill(&a);
    let (warm, _) = model.prefill_after(&kept, &a[2 * BLOCK..]).unwrap();
    assert!(max_diff(&warm, &cold) < 1e-4);
    // Another prompt pushes out a's blocks, least recently used first.
    let d = ids(2 * BLOCK + 1, 4);
    let (_, d_kv) = prefill(&d);
    small.insert(&d, &d_kv).unwrap();
    assert!(small.bytes() <= 2 * block_bytes);
    assert_eq!(small.lookup(&d).unwrap().unwrap().len(), 2 * BLOCK);
    assert!(small.lookup(&a).unwrap().is_none());
    // No cap, no cache.
    let mut none = PrefixCache::new(0);
    none.insert(&a, &a_kv).unwrap();
    assert_eq!(none.blocks(), 0);
}

#[test]
fn the_server_reuses_a_shared_start_reports_it_and_answers_as_a_cold_one() {
    let (_dir, model_dir) = tiny();
    let start = |prefix_cache_mb: usize| {
        let (model, tok) = common::load_frozen(&model_dir);
        let template = leafe_trainer::io::chat::ChatTemplate::load(&model_dir).unwrap();
        let limits = ServeLimits {
            prefix_cache_mb,
            ..ServeLimits::default()
        };
        let served = Arc::new(Served::with_limits(
            "tiny".into(),
            model,
            tok,
            template,
            limits,
        ));
        (served.clone(), spawn_on_loopback(served).unwrap())
    };
    let (warm_state, warm) = start(64);
    let (_, cold) = start(0);
    let system = "You are an agent in a small world. ".repeat(12);
    let ask = |addr, question: &str| {
        let body = serde_json::json!({
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
            "temperature": 0, "max_tokens": 8,
        });
        let (status, reply) =
            crate::serve::request(addr, "POST", "/v1/chat/completions", &body.to_string());
        assert_eq!(status, 200, "{reply}");
        reply
    };
    let first = ask(warm, "which way?");
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    for question in ["which way now?", "left or right?"] {
        let reply = ask(warm, question);
        let cached = reply["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap() as usize;
        let prompt = reply["usage"]["prompt_tokens"].as_u64().unwrap() as usize;
        assert!(cached >= BLOCK && cached < prompt, "{cached} of {prompt}");
        assert_eq!(cached % BLOCK, 0);
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            ask(cold, question)["choices"][0]["message"]["content"]
        );
    }
    let counts = warm_state.prompt_counts();
    assert_eq!(counts.received, counts.computed + counts.reused);
    assert!(counts.reused >= 2 * BLOCK as u64, "{counts:?}");
    let (status, _) = crate::serve::request(warm, "GET", "/metrics", "");
    assert_eq!(status, 200);
    let mut s = std::net::TcpStream::connect(warm).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let reused = format!(
        "leafe_trainer_prompt_tokens_total{{kind=\"reused\"}} {}",
        counts.reused
    );
    assert!(text.contains(&reused), "{text}");
    assert!(text.contains("leafe_trainer_prefix_cache_bytes "), "{text}");
}

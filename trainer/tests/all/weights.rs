//! OpenAI-style weights in chat JSONL: `"weight": 0` on an assistant turn
//! makes it context only; a record's `"weight"` scales its loss.

use crate::common;

use leafe_trainer::io::chat::ChatTemplate;
use leafe_trainer::io::data::{OnBadLine, load_chat_jsonl};
use leafe_trainer::jobs::sft::{
    SetNorm, SftConfig, kl_to_reference_sum, make_batch, masked_nll_sum, train,
};

#[test]
fn message_and_record_weights_shape_the_loss_mask() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(
        dir.path(),
        &"up down left right the box is on the goal ".repeat(50),
        &common::small_spec(),
    );
    let template = ChatTemplate::load(&model).unwrap();
    let tokenizer = leafe_trainer::io::tokenizer::load(&model).unwrap();
    let conversation = |first_weight: serde_json::Value, record_weight: serde_json::Value| {
        let mut first = serde_json::json!({"role": "assistant", "content": "up up up"});
        if !first_weight.is_null() {
            first["weight"] = first_weight;
        }
        let mut line = serde_json::json!({"messages": [
            {"role": "user", "content": "the box"},
            first,
            {"role": "user", "content": "the goal"},
            {"role": "assistant", "content": "left"},
        ]});
        if !record_weight.is_null() {
            line["weight"] = record_weight;
        }
        line.to_string()
    };
    let data = dir.path().join("data.jsonl");
    let null = serde_json::Value::Null;
    std::fs::write(
        &data,
        [
            conversation(null.clone(), null.clone()),
            conversation(0.into(), null.clone()),
            conversation(null.clone(), 0.25.into()),
        ]
        .join("\n"),
    )
    .unwrap();
    let set = load_chat_jsonl(&data, &template, &tokenizer, 512, OnBadLine::Stop).unwrap();
    let trained = |i: usize| set.examples[i].trained.iter().filter(|t| **t).count();
    assert!(
        trained(1) < trained(0),
        "the weight-0 turn is not trained on"
    );
    assert!(trained(1) > 0);
    assert_eq!(set.examples[2].weight, 0.25);
    let batch = make_batch(
        &[&set.examples[0], &set.examples[2]],
        0,
        &candle_core::Device::Cpu,
        &SetNorm::none(),
    )
    .unwrap();
    let mask: Vec<Vec<f32>> = batch.mask.to_vec2().unwrap();
    assert!(mask[0].iter().all(|m| *m == 0.0 || *m == 1.0));
    assert!(mask[1].contains(&0.25) && mask[1].iter().all(|m| *m == 0.0 || *m == 0.25));

    for (bad, why) in [
        (
            conversation(0.into(), null.clone()).replace(
                "\"content\":\"left\",",
                "\"content\":\"left\",\"weight\":0,",
            ),
            "weight 0",
        ),
        (conversation(2.into(), null.clone()), "0 or 1"),
    ] {
        std::fs::write(&data, bad).unwrap();
        let err = load_chat_jsonl(&data, &template, &tokenizer, 512, OnBadLine::Stop)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains(why), "{err:#}");
    }
}

/// L = L_cf + beta * L_reh, each a mean over its own set's tokens: checked
/// against the two records' losses computed one by one.
#[test]
fn a_mixed_set_is_the_sum_of_per_set_means() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(
        dir.path(),
        &"up down left right the box is on the goal ".repeat(50),
        &common::small_spec(),
    );
    let beta = 0.3;
    // Different lengths, so a mean over all tokens would differ.
    let records = [
        serde_json::json!({"kind": "cf", "weight": 1.0, "messages": [
            {"role": "user", "content": "the box"},
            {"role": "assistant", "content": "up"}]}),
        serde_json::json!({"kind": "reh", "weight": beta, "prompt": [
            {"role": "user", "content": "the goal"},
            {"role": "assistant", "content": "left left"},
            {"role": "user", "content": "the box is on the goal"}],
            "completion": [{"role": "assistant", "content": "down down right right up the box"}]}),
    ];
    let data = dir.path().join("mixed.jsonl");
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(&data, lines.join("\n")).unwrap();

    let template = ChatTemplate::load(&model).unwrap();
    let (net, tokenizer) = common::load(&model);
    let set = load_chat_jsonl(&data, &template, &tokenizer, 512, OnBadLine::Stop).unwrap();
    assert_eq!(set.sets, ["cf", "reh"]);
    // The prompt half of a prompt-completion record is context only.
    let trained = |i: usize| set.examples[i].trained.iter().filter(|t| **t).count();
    assert!(trained(1) > 2 * trained(0), "{} {}", trained(0), trained(1));
    let mean_loss = |i: usize| {
        let e = &set.examples[i];
        let batch = make_batch(&[e], 0, &candle_core::Device::Cpu, &SetNorm::none()).unwrap();
        let logits = net.forward(&batch.inputs).unwrap();
        let sum = masked_nll_sum(&logits, &batch.targets, &batch.mask).unwrap();
        f64::from(sum.to_scalar::<f32>().unwrap()) / f64::from(e.weight) / batch.tokens as f64
    };
    let expected = mean_loss(0) + beta * mean_loss(1);

    let out = dir.path().join("out");
    let report = train(
        &model,
        &data,
        &out,
        &SftConfig {
            epochs: 1,
            batch_size: 2,
            max_steps: Some(1),
            ..SftConfig::default()
        },
        &candle_core::Device::Cpu,
        false,
        false,
    )
    .unwrap();
    // The logged loss is the one of the step, before its update.
    assert!(
        (report.final_loss - expected).abs() < 1e-4 * expected,
        "{} vs {expected}",
        report.final_loss
    );

    // Negative weights (advantages) need saying so; then they count as such.
    let negative = records[1]
        .to_string()
        .replace("\"weight\":0.3", "\"weight\":-0.3");
    std::fs::write(&data, format!("{}\n{negative}", lines[0])).unwrap();
    let cfg = SftConfig {
        epochs: 1,
        batch_size: 2,
        max_steps: Some(1),
        ..SftConfig::default()
    };
    let cpu = candle_core::Device::Cpu;
    let refused = train(
        &model,
        &data,
        &dir.path().join("neg"),
        &cfg,
        &cpu,
        false,
        false,
    );
    let err = format!("{:#}", refused.err().unwrap());
    assert!(err.contains("--allow-negative-weights"), "{err}");
    let allowed = SftConfig {
        allow_negative_weights: true,
        ..cfg
    };
    let report = train(
        &model,
        &data,
        &dir.path().join("neg"),
        &allowed,
        &cpu,
        false,
        false,
    );
    let loss = report.unwrap().final_loss;
    let expected = mean_loss(0) - beta * mean_loss(1);
    assert!(
        (loss - expected).abs() < 1e-4 * expected.abs(),
        "{loss} vs {expected}"
    );
}

/// `--kl-to`: the step's loss gains coef * the mean k3 estimate of
/// KL(model || reference) over the trained tokens; zero against itself.
#[test]
fn a_kl_penalty_adds_the_mean_divergence_from_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = "up down left right the box is on the goal ".repeat(50);
    let model = common::tiny_model(dir.path(), &corpus, &common::small_spec());
    let data = dir.path().join("data.jsonl");
    let line = serde_json::json!({"messages": [
        {"role": "user", "content": "the box"},
        {"role": "assistant", "content": "up up left"}]});
    std::fs::write(&data, format!("{line}\n")).unwrap();
    let cpu = candle_core::Device::Cpu;
    // A reference that differs: the model after a few steps on the data.
    let reference = dir.path().join("reference");
    let warm = SftConfig {
        epochs: 5,
        lr: 1e-2,
        warmup_steps: 0,
        ..SftConfig::default()
    };
    train(&model, &data, &reference, &warm, &cpu, false, false).unwrap();

    let template = ChatTemplate::load(&model).unwrap();
    let (net, tokenizer) = common::load(&model);
    let (reference_net, _) = common::load(&reference);
    let set = load_chat_jsonl(&data, &template, &tokenizer, 512, OnBadLine::Stop).unwrap();
    let batch = make_batch(&[&set.examples[0]], 0, &cpu, &SetNorm::none()).unwrap();
    let logits = net.forward(&batch.inputs).unwrap();
    let scalar = |t: candle_core::Tensor| f64::from(t.to_scalar::<f32>().unwrap());
    let n = batch.tokens as f64;
    let nll = scalar(masked_nll_sum(&logits, &batch.targets, &batch.mask).unwrap()) / n;
    let kl = |other: &leafe_trainer::nn::model::Model| {
        let theirs = other.forward(&batch.inputs).unwrap();
        scalar(kl_to_reference_sum(&logits, &theirs, &batch.targets, &batch.trained).unwrap()) / n
    };
    assert!(kl(&net).abs() < 1e-6, "no divergence from itself");
    let divergence = kl(&reference_net);
    assert!(divergence > 1e-3, "{divergence}");

    let coef = 0.5;
    let cfg = SftConfig {
        epochs: 1,
        max_steps: Some(1),
        kl: Some(leafe_trainer::jobs::sft::KlPenalty {
            reference: reference.clone(),
            coef,
        }),
        ..SftConfig::default()
    };
    let report = train(
        &model,
        &data,
        &dir.path().join("out"),
        &cfg,
        &cpu,
        false,
        false,
    )
    .unwrap();
    let expected = nll + coef * divergence;
    assert!(
        (report.final_loss - expected).abs() < 1e-4 * expected,
        "{} vs {expected}",
        report.final_loss
    );
}

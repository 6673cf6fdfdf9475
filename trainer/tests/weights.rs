//! OpenAI-style weights in chat JSONL: `"weight": 0` on an assistant turn
//! makes it context only; a record's `"weight"` scales its loss.

mod common;

use leafe_trainer::chat::ChatTemplate;
use leafe_trainer::data::{OnBadLine, load_chat_jsonl};
use leafe_trainer::sft::make_batch;

#[test]
fn message_and_record_weights_shape_the_loss_mask() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(
        dir.path(),
        &"up down left right the box is on the goal ".repeat(50),
        &common::small_spec(),
    );
    let template = ChatTemplate::load(&model).unwrap();
    let tokenizer = leafe_trainer::tokenizer::load(&model).unwrap();
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
        (conversation(null.clone(), (-1).into()), ">= 0"),
    ] {
        std::fs::write(&data, bad).unwrap();
        let err = load_chat_jsonl(&data, &template, &tokenizer, 512, OnBadLine::Stop)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains(why), "{err:#}");
    }
}

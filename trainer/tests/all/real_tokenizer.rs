//! The real Qwen3 tokenizer and chat template (vendored in tests/data/qwen3):
//! loading, token ids, and rendering exactly as transformers renders them.

use leafe_trainer::io::chat::{ChatTemplate, Message};
use std::io::Read;
use std::path::Path;

fn qwen3_dir() -> tempfile::TempDir {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qwen3");
    let dir = tempfile::tempdir().unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data.join("tokenizer.json.gz")).unwrap())
        .read_to_end(&mut json)
        .unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
    std::fs::copy(
        data.join("tokenizer_config.json"),
        dir.path().join("tokenizer_config.json"),
    )
    .unwrap();
    dir
}

fn conversation() -> Vec<Message> {
    vec![
        Message::new("system", "You play Sokoban."),
        Message::new("user", "Which way?"),
        Message::new("assistant", "<think>\nThe box is left.\n</think>\n\nleft"),
        Message::new("user", "And now?"),
    ]
}

#[test]
fn qwen3_chat_template_renders_as_transformers_does() {
    let dir = qwen3_dir();
    let template = ChatTemplate::load(dir.path()).unwrap();
    // Reasoning of earlier turns is dropped; the prompt opens an assistant turn.
    assert_eq!(
        template.render(&conversation(), true).unwrap(),
        "<|im_start|>system\nYou play Sokoban.<|im_end|>\n<|im_start|>user\nWhich way?<|im_end|>\n\
         <|im_start|>assistant\nleft<|im_end|>\n<|im_start|>user\nAnd now?<|im_end|>\n<|im_start|>assistant\n"
    );
    let mut no_thinking = serde_json::Map::new();
    no_thinking.insert("enable_thinking".into(), serde_json::Value::Bool(false));
    assert_eq!(
        template
            .render_with(&conversation()[..2], true, &no_thinking)
            .unwrap(),
        "<|im_start|>system\nYou play Sokoban.<|im_end|>\n<|im_start|>user\nWhich way?<|im_end|>\n\
         <|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
}

#[test]
fn qwen3_tokenizer_gives_the_reference_ids() {
    let dir = qwen3_dir();
    let tok = leafe_trainer::io::tokenizer::load(dir.path()).unwrap();
    let ids = tok
        .encode("Hello world, push the box left!", false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(ids, [9707, 1879, 11, 4484, 279, 3745, 2115, 0]);
    let template = ChatTemplate::load(dir.path()).unwrap();
    let mut no_thinking = serde_json::Map::new();
    no_thinking.insert("enable_thinking".into(), serde_json::Value::Bool(false));
    let prompt = template
        .render_with(&conversation()[..2], true, &no_thinking)
        .unwrap();
    let ids = tok
        .encode(prompt.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(
        ids,
        [
            151644, 8948, 198, 2610, 1486, 84114, 674, 276, 13, 151645, 198, 151644, 872, 198,
            23085, 1616, 30, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271
        ]
    );
    assert_eq!(tok.decode(&ids, false).unwrap(), prompt);
}

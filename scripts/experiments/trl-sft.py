"""Train a few TRL SFT steps on data exported by `leafe-host export`.

Usage: python scripts/experiments/trl-sft.py MODEL_DIR DATA.jsonl [--steps N] [--out DIR]

MODEL_DIR is a checkpoint directory leafe wrote (`leafe-trainer init-tiny`,
`sft`, `import-gguf`) or any Hugging Face one. DATA is `export --weights
split` output: TRL's conversational prompt-completion records. The script
first checks, on every record, that transformers' assistant mask (from the
template's `{% generation %}` markers) inside the completion covers exactly
the completion turn, then trains with `assistant_only_loss=True`. Record
weights (beta for rehearsal) have no TRL equivalent; they are reported and
not applied.
"""

import argparse
import json
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import datasets
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"trl {trl.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}")
    records = [json.loads(line) for line in open(args.data) if line.strip()]
    if not records or "completion" not in records[0]:
        sys.exit(f"{args.data}: not prompt-completion records; export with `--weights split`")
    kinds = sorted({r.get("kind", "") for r in records})
    weights = sorted({r.get("weight", 1.0) for r in records})
    print(f"{len(records)} records, kinds {kinds}, record weights {weights} (not applied by TRL)")

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # The mask TRL trains on: assistant tokens of prompt + completion, within the completion.
    for i, r in enumerate(records):
        prompt_ids = tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(
            r["prompt"] + r["completion"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, mask = full["input_ids"], full["assistant_masks"]
        if ids[: len(prompt_ids)] != prompt_ids:
            sys.exit(f"record {i}: the prompt does not render as a prefix of prompt + completion")
        trained = [t for t, m in zip(ids[len(prompt_ids):], mask[len(prompt_ids):]) if m]
        text = tokenizer.decode(trained)
        want = r["completion"][0]["content"]
        if not text.startswith(want) or "<|im_start|>" in text:
            sys.exit(f"record {i}: the assistant mask covers {text!r}, not the completion {want!r}")
    print(f"assistant masks cover exactly each completion turn ({len(records)} records)")

    data = datasets.Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in records])
    model = AutoModelForCausalLM.from_pretrained(args.model)
    out = args.out or tempfile.mkdtemp(prefix="trl-sft-")
    config = trl.SFTConfig(
        output_dir=out,
        max_steps=args.steps,
        per_device_train_batch_size=4,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        assistant_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    result = trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    print("losses:", " ".join(f"{l:.4f}" for l in losses))
    print(f"trained {result.global_step} steps with assistant_only_loss=True; output in {out}")
    if not losses or losses[-1] >= losses[0]:
        sys.exit("the loss did not fall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

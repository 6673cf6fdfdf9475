#!/usr/bin/env python3
"""Record what transformers computes for a GGUF model, as the reference that
leafe-trainer's import is checked against (trainer/tests/all/real_model.rs and
`leafe-trainer check-parity`).

For each chat prompt: the token ids of the chat-templated prompt, the
last position's logits (top 50 ids and values, float32) and the greedy
continuation (up to 32 new tokens, stopping at the end-of-turn token).

usage: scripts/bench/parity.sh (makes the venv), or
       python scripts/bench/parity.py GGUF_FILE OUT.json
"""
import hashlib
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

# No digits in these prompts: transformers' GGUF tokenizer conversion drops
# the model's one-token-per-digit rule (see docs/MODELS.md), so ids of text
# with digits differ by design.
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a Python function that returns the largest element of a list."}],
    [
        {"role": "system", "content": "You are a Sokoban player. Answer with one move: up, down, left or right."},
        {"role": "user", "content": "The box is left of you and the goal is left of the box. Which move?"},
    ],
    [{"role": "user", "content": "Say hello in French, then explain why the sky is blue in one sentence."}],
]
TOP = 50
NEW_TOKENS = 32


def main():
    gguf, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    folder, name = os.path.split(os.path.abspath(gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    eos = model.config.eos_token_id
    records = []
    for messages in PROMPTS:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tok(text, add_special_tokens=False).input_ids
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0, -1].float()
            top = torch.topk(logits, TOP)
            gen = model.generate(
                x, attention_mask=torch.ones_like(x), max_new_tokens=NEW_TOKENS, do_sample=False,
                eos_token_id=eos, pad_token_id=eos,
            )[0, len(ids):].tolist()
        if eos in gen:
            gen = gen[: gen.index(eos)]
        records.append({
            "messages": messages,
            "text": text,
            "ids": ids,
            "top_ids": top.indices.tolist(),
            "top_logits": top.values.tolist(),
            "greedy": gen,
            "greedy_text": tok.decode(gen),
        })
        print(f"{len(ids)} prompt tokens -> {tok.decode(gen)!r}", file=sys.stderr)
    sha = hashlib.sha256(open(gguf, "rb").read()).hexdigest()
    fixture = {
        "gguf_sha256": sha,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": "float32",
        "new_tokens": NEW_TOKENS,
        "prompts": records,
    }
    with open(out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

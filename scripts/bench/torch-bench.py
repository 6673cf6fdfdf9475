#!/usr/bin/env python3
"""The PyTorch twin of `leafe-trainer bench`'s training step, for a ratio
measured on the same machine in the same run (docs/BENCHMARKS.md).

The same work as trainer/src/jobs/bench/mod.rs `train_step`: a randomly initialised
model of the given shape (transformers' Qwen2/Llama), random token ids
(batch x (seq+1)), mean next-token cross-entropy over every position,
backward, global-norm clip at 1.0 and one AdamW step (lr 1e-5,
weight decay 0.01); one warm-up step, then the mean of STEPS timed steps.

usage: torch-bench.py --config DIR/config.json | --size 0.5b
                      [--batch B] [--seq T] [--steps N] [--device cpu|cuda]
                      [--precision f32|tf32|bf16]
prints one JSON line: tokens_per_s, step_s, peak memory (CUDA allocator).
"""
import argparse
import json
import time

import torch
import transformers

QWEN2_05B = dict(
    architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=151936, hidden_size=896,
    intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    max_position_embeddings=4096, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config")
    ap.add_argument("--size", choices=["0.5b"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["f32", "tf32", "bf16"], default="f32")
    ap.add_argument("--generate", type=int, default=0,
                    help="instead: greedy generation of N tokens after a 16-token prompt, --batch "
                         "prompts at once, with the KV cache (batch 1 is `leafe-trainer bench`'s "
                         "generation figure; larger batches are the twin of `serve` under that many "
                         "concurrent clients)")
    a = ap.parse_args()
    if a.config:
        cfg = transformers.AutoConfig.from_pretrained(a.config)
    else:
        d = dict(QWEN2_05B)
        cfg = transformers.Qwen2Config(**{k: v for k, v in d.items() if k not in ("architectures", "model_type")})
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa").to(dev)
    if a.generate:
        return generate(model, cfg, dev, a)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-5)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq + 1), generator=g).to(dev)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()

    step()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    step_s = (time.perf_counter() - t) / a.steps
    out = {
        "side": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
        "precision": a.precision, "device": a.device, "batch": a.batch, "seq": a.seq,
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_s": step_s, "tokens_per_s": a.batch * a.seq / step_s,
        "threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out))


def generate(model, cfg, dev, a):
    model.eval()
    prompt = torch.tensor([[(i + row) % min(cfg.vocab_size, 256) for i in range(16)]
                           for row in range(a.batch)], device=dev)
    kw = dict(max_new_tokens=a.generate, min_new_tokens=a.generate, do_sample=False,
              attention_mask=torch.ones_like(prompt), pad_token_id=0)
    with torch.no_grad():
        model.generate(prompt, **kw)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(prompt, **kw)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        s = time.perf_counter() - t
    new = out.shape[1] - prompt.shape[1]
    print(json.dumps({"side": "pytorch", "generate": new, "batch": a.batch,
                      "tokens_per_s": a.batch * new / s, "device": a.device,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()

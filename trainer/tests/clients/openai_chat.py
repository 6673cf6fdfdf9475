"""Drive `leafe-trainer serve` with the official `openai` client (pinned in
trainer/tests/all/openai_client.rs). usage: python openai_chat.py BASE_URL MODEL"""
import sys

import openai

base, name = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAILED: {what}")
    checks += 1


msgs = [{"role": "user", "content": "which way?"}]
check([m.id for m in client.models.list().data] == [name], "models.list names the model")

greedy = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=12)
c = greedy.choices[0]
check(isinstance(c.message.content, str) and c.message.role == "assistant", "a chat completion")
check(c.finish_reason in ("stop", "length"), "finish_reason")
check(greedy.usage.completion_tokens <= 12 and greedy.usage.prompt_tokens > 0, "usage")
again = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=12)
check(again.choices[0].message.content == c.message.content, "greedy is deterministic")

# A long shared start is served from the prefix cache the second time; the
# client reads it from usage.prompt_tokens_details.cached_tokens.
system = {"role": "system", "content": "You are an agent in a small world. " * 12}
first = client.chat.completions.create(model=name, messages=[system] + msgs, temperature=0, max_tokens=4)
second = client.chat.completions.create(model=name, messages=[system, {"role": "user", "content": "left?"}],
                                        temperature=0, max_tokens=4)
check(first.usage.prompt_tokens_details.cached_tokens == 0, "a cold prompt has no cached tokens")
cached = second.usage.prompt_tokens_details.cached_tokens
check(0 < cached < second.usage.prompt_tokens, f"the shared start is cached ({cached} tokens)")

short = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=3)
check(short.usage.completion_tokens <= 3, "max_tokens")
check(short.choices[0].finish_reason == "length" or short.usage.completion_tokens < 3, "length finish")

a = client.chat.completions.create(model=name, messages=msgs, temperature=1.0, seed=7, max_tokens=8, n=3)
b = client.chat.completions.create(model=name, messages=msgs, temperature=1.0, seed=7, max_tokens=8, n=3)
check(len(a.choices) == 3 and [x.index for x in a.choices] == [0, 1, 2], "n choices")
check([x.message.content for x in a.choices] == [x.message.content for x in b.choices], "seed reproduces")

text = c.message.content
if len(text) >= 4:
    cut = text[len(text) // 2:len(text) // 2 + 2]
    stopped = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=12, stop=[cut])
    check(stopped.choices[0].message.content == text[:text.index(cut)], f"stop {cut!r}")
    check(stopped.choices[0].finish_reason == "stop", "stop finish")

pieces, finish, usage, roles = [], None, None, []
for chunk in client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True}):
    if chunk.usage:
        usage = chunk.usage
    for ch in chunk.choices:
        if ch.delta.role:
            roles.append(ch.delta.role)
        pieces.append(ch.delta.content or "")
        finish = ch.finish_reason or finish
check("".join(pieces) == text, "stream=True gives the same text")
check(roles == ["assistant"] and finish == c.finish_reason, "stream roles and finish")
check(usage is not None and usage.completion_tokens == greedy.usage.completion_tokens, "stream usage")

for extra in [{"logprobs": True}, {"response_format": {"type": "json_object"}},
              {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}]:
    key = next(iter(extra))
    try:
        client.chat.completions.create(model=name, messages=msgs, max_tokens=2, **extra)
        check(False, f"{key} is refused")
    except openai.BadRequestError as e:
        check(key in str(e), f"the 400 for {key} names it: {e}")

try:
    client.chat.completions.create(model="other", messages=msgs, max_tokens=2)
    check(False, "an unknown model is refused")
except openai.NotFoundError:
    check(True, "404 for another model")

print(f"{checks} passed, 0 failed")

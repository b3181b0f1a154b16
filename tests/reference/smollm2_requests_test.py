#!/usr/bin/env python3
"""Real requests on a real model: SmolLM2-135M-Instruct through `executor run --requests` with text
prompts, all in one batch of different prompt lengths, on 1 and 3 CPU ranks.

Checks:
  - greedy: each request's token ids and text (special tokens skipped) are exactly what
    transformers' generate gives for that prompt alone (float32, eager attention, the model's
    generation_config: it stops at the end-of-sequence token), with finish_reason "eos" where
    transformers stopped before max_tokens and "length" otherwise;
  - seeded sampling (temperature, top_k, top_p): the same text on 1 and 3 ranks (every rank draws
    the same token from the same logits), and another seed gives another text;
  - a stop string cuts the text before it (finish_reason "stop") and its request leaves the
    batch while the other goes on.

Usage: smollm2_requests_test.py --executor EXE --model DIR --spec SPEC --work DIR
       (SPEC's mesh: examples/smollm2-135m-tp3.yaml, 3 ranks; a one-rank copy is made)
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from smollm2_test import one_rank_copy  # the spec on one rank (the same folder)

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
QUESTIONS = [
    "What is the capital of France? Answer in one word.",
    "Say hello.",
    "Write a haiku about the sea. Use exactly three lines and nothing else, please.",
]
MAX_TOKENS = [48, 40, 24]


def run(executor, spec, requests, output, report=None):
    proc = subprocess.run([executor, "run", "--spec", str(spec), "--device", "cpu", "--requests", str(requests),
                           "--output", str(output)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: executor exit {proc.returncode} on {spec}:\n{proc.stderr}")
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
    if report is not None:
        report.append(proc.stdout)
    return [json.loads(line) for line in Path(output).read_text().splitlines()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (Path(args.model) / "model.safetensors").is_file():
        print(f"smollm2_requests_test: {args.model} has no model.safetensors: run scripts/setup.sh", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    specs = {1: one_rank_copy(args.spec, work), 3: Path(args.spec)}

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager").eval()
    prompts = [CHAT.format(q) for q in QUESTIONS]
    want = []
    for prompt, max_tokens in zip(prompts, MAX_TOKENS):
        ids = tokenizer(prompt).input_ids
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_tokens, do_sample=False)
        new = out[0, len(ids):].tolist()
        reason = "eos" if new and new[-1] in (model.generation_config.eos_token_id
                                              if isinstance(model.generation_config.eos_token_id, list)
                                              else [model.generation_config.eos_token_id]) else "length"
        want.append({"ids": new, "text": tokenizer.decode(new, skip_special_tokens=True), "reason": reason,
                     "prompt_tokens": len(ids)})
    lengths = sorted({w["prompt_tokens"] for w in want})
    assert len(lengths) > 1, "the prompts must differ in length (a ragged batch)"

    failures = 0
    greedy = work / "smollm2-greedy.jsonl"
    greedy.write_text("".join(json.dumps({"prompt": p, "max_tokens": m}) + "\n" for p, m in zip(prompts, MAX_TOKENS)))
    for ranks, spec in specs.items():
        got = run(args.executor, spec, greedy, work / f"smollm2-greedy-{ranks}.out.jsonl")
        for i, (g, w) in enumerate(zip(got, want)):
            ok = (g["token_ids"] == w["ids"] and g["text"] == w["text"] and g["finish_reason"] == w["reason"]
                  and g["prompt_tokens"] == w["prompt_tokens"])
            print(f"{ranks} rank(s), request {i} ({w['prompt_tokens']} prompt tokens): {g['finish_reason']}, "
                  f"{g['text']!r}" + ("" if ok else f"  MISMATCH: transformers {w['reason']}, {w['text']!r}"))
            failures += 0 if ok else 1

    # Requests that all end at the end-of-sequence token end the run there, on every rank count.
    ended = work / "smollm2-ended.jsonl"
    eos_requests = [i for i, w in enumerate(want) if w["reason"] == "eos"]
    ended.write_text("".join(json.dumps({"prompt": prompts[i], "max_tokens": 60}) + "\n" for i in eos_requests))
    for ranks, spec in specs.items():
        proc = subprocess.run([args.executor, "run", "--spec", str(spec), "--device", "cpu", "--requests", str(ended),
                               "--format", "json"], capture_output=True, text=True)
        steps = json.loads(proc.stdout)["new_tokens"] if proc.returncode == 0 else None
        longest = max(len(want[i]["ids"]) for i in eos_requests)
        print(f"{ranks} rank(s): {len(eos_requests)} requests ending at EOS ran {steps} steps (the longest answer: {longest})")
        if steps != longest:
            print(f"FAIL: the run did not end with its last request ({steps} steps, expected {longest})", file=sys.stderr)
            failures += 1

    sampled = work / "smollm2-sampled.jsonl"
    sample = {"temperature": 0.9, "top_k": 40, "top_p": 0.95, "max_tokens": 24, "ignore_eos": True}
    sampled.write_text(json.dumps({"prompt": prompts[1], "seed": 7, **sample}) + "\n" +
                       json.dumps({"prompt": prompts[1], "seed": 8, **sample}) + "\n" +
                       json.dumps({"prompt": prompts[0], "seed": 7, **sample}) + "\n")
    texts = {r: [g["text"] for g in run(args.executor, spec, sampled, work / f"smollm2-sampled-{r}.out.jsonl")]
             for r, spec in specs.items()}
    print(f"sampled (seeds 7, 8, 7): {texts[1]!r}")
    if texts[1] != texts[3]:
        print(f"FAIL: seeded sampling differs between 1 and 3 ranks: {texts[1]!r} vs {texts[3]!r}", file=sys.stderr)
        failures += 1
    if texts[1][0] == texts[1][1]:
        print("FAIL: seeds 7 and 8 sampled the same text", file=sys.stderr)
        failures += 1

    # A stop string ends its request, which leaves the batch; the other one goes on to its end.
    stop = work / "smollm2-stop.jsonl"
    # (From the 12th character on: a few tokens in, so the batch of two runs first.)
    text0 = want[0]["text"]
    cut = text0[12:14] if len(text0) >= 14 else text0
    stop.write_text(json.dumps({"prompt": prompts[0], "max_tokens": MAX_TOKENS[0], "stop": [cut]}) + "\n" +
                    json.dumps({"prompt": prompts[1], "max_tokens": MAX_TOKENS[1], "ignore_eos": True}) + "\n")
    report = []
    g, other = run(args.executor, specs[1], stop, work / "smollm2-stop.out.jsonl", report)
    expected = text0[:text0.find(cut)]
    if g["finish_reason"] != "stop" or g["text"] != expected:
        print(f"FAIL: stop {cut!r}: {g['finish_reason']}, {g['text']!r}, expected 'stop', {expected!r}", file=sys.stderr)
        failures += 1
    left = len(g["token_ids"]) == 1 or "decode batch: 2, 1 (finished requests leave it)" in report[0]
    if len(other["token_ids"]) != MAX_TOKENS[1] or not left:
        print(f"FAIL: the request ended by its stop string did not leave the batch, or the other did not go on "
              f"({len(other['token_ids'])} tokens):\n{report[0]}", file=sys.stderr)
        failures += 1

    print(f"SmolLM2 requests: {failures} failure(s)" if failures else
          "SmolLM2 requests: greedy text identical to transformers' on 1 and 3 ranks, seeded sampling rank-independent")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

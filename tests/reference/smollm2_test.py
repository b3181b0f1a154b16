#!/usr/bin/env python3
"""A real trained model: SmolLM2-135M-Instruct (scripts/models/convert_smollm2.py writes it into
the build tree) through `executor run --requests` on CPU ranks, against transformers' greedy tokens.

For each prompt below, the token ids come from the model's own tokenizer (tokenizer.json, through
transformers), transformers decodes NEW tokens greedily in float32, and the executor, given the
same ids, must generate exactly the same tokens; decoded, the first prompt's answer names Paris.

Usage: smollm2_test.py --executor EXE --model DIR --spec SPEC --work DIR
       (SPEC's mesh sets the ranks: examples/smollm2-135m-tp3.yaml runs on 3; --ranks 1 writes a
       one-rank copy of it)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PROMPTS = [
    ("The capital of France is", "Paris"),
    ("The largest planet in our solar system is", None),
    ("def fibonacci(n):", None),
]
NEW = 10


def transformers_greedy(model_dir, ids):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, eos_token_id=None,
                             pad_token_id=0)
    return out[0, len(ids):].tolist()


def one_rank_copy(spec, work):
    """The spec with mesh {tp: 1} and no rules: the whole model on one rank."""
    text = Path(spec).read_text()
    base = Path(spec).resolve().parent
    text = re.sub(r"(config|checkpoint): *(\S+)", lambda m: f"{m.group(1)}: {(base / m.group(2)).resolve()}", text)
    text = re.sub(r"mesh:.*?\n(?=\S)", "mesh: {tp: 1}\n", text, flags=re.S)
    text = re.sub(r"modules:.*?\n(?=\S)", "", text, flags=re.S)
    out = Path(work) / "smollm2-one-rank.yaml"
    out.write_text(text)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--ranks", type=int, choices=[1], help="run a one-rank copy of SPEC")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (Path(args.model) / "model.safetensors").is_file():
        print(f"smollm2_test: {args.model} has no model.safetensors: run scripts/setup.sh", file=sys.stderr)
        return 2
    Path(args.work).mkdir(parents=True, exist_ok=True)
    spec = one_rank_copy(args.spec, args.work) if args.ranks == 1 else Path(args.spec)

    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    failures = 0
    for i, (prompt, expect) in enumerate(PROMPTS):
        ids = tokenizer(prompt).input_ids
        want = transformers_greedy(args.model, ids)
        requests = Path(args.work) / f"smollm2-{args.ranks or 'spec'}-{i}.jsonl"
        requests.write_text(json.dumps({"prompt_token_ids": ids, "max_tokens": NEW}) + "\n")
        t0 = time.time()
        proc = subprocess.run([args.executor, "run", "--spec", str(spec), "--device", "cpu", "--format", "json",
                               "--requests", str(requests)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAIL {prompt!r}: executor exit {proc.returncode}:\n{proc.stderr}", file=sys.stderr)
            failures += 1
            continue
        run = json.loads(proc.stdout)
        got = run["generated_token_ids"][0]
        text = tokenizer.decode(got)
        print(f"{prompt!r} -> {text!r} ({run['world_size']} ranks, {time.time() - t0:.1f} s)")
        if got != want:
            print(f"FAIL {prompt!r}: executor {got} vs transformers {want} ({tokenizer.decode(want)!r})", file=sys.stderr)
            failures += 1
        if expect and expect not in text:
            print(f"FAIL {prompt!r}: the answer {text!r} does not name {expect}", file=sys.stderr)
            failures += 1
    print(f"SmolLM2-135M-Instruct: {failures} failure(s) over {len(PROMPTS)} prompts" if failures else
          f"SmolLM2-135M-Instruct: {len(PROMPTS)} prompts, tokens identical to transformers'")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

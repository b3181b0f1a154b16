#!/usr/bin/env python3
"""`executor run` against Hugging Face transformers on the CPU, in float32, step by step.

Every case is one spec over one tiny config with odd sizes (tests/reference/configs): the same
random checkpoint and the executor's own deterministic inputs go through transformers'
(scripts/reference/hf_reference.py, a greedy loop with its KV cache) and through
`executor run --logits-out` on 1, 2 or 4 CPU ranks. A case passes when the greedy tokens are
identical and, at every step, the relative error ||executor - transformers|| / ||transformers||
of that step's logits (all requests) is at most 1e-5.

  reference_case.py list                              the case names (ctest registers one test each)
  reference_case.py prepare CONFIG --executor EXE --work DIR
                                                      checkpoint + transformers' reference of CONFIG
  reference_case.py run CASE --executor EXE --work DIR
                                                      one case (needs `prepare` of its config first)

The table CASES below is the list: config, mesh, batch axes and module rules.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REFERENCE = ROOT / "scripts" / "reference" / "hf_reference.py"
TOLERANCE = 1e-5

# The workload of every case: 4 requests (divisible by every dp group), odd prompt length.
BATCH, PROMPT, NEW, SEED, IMAGES = 4, 7, 5, 0, 2

# config -> family of hf_reference.py
CONFIGS = {
    "llama-odd": "causal",
    "mistral-odd": "causal",
    "qwen2-odd": "causal",
    "mixtral-odd": "causal",
    "qwen2_moe-odd": "causal",
    "llava-odd": "llava",
    "whisper-odd": "whisper",
}

TEXT = "embedding, attention, mlp, lm_head"
# name: (config, mesh, batch_axes, rules). Rules are YAML flow mappings.
CASES = {
    # llama / mistral / qwen2: tensor (KV heads replicated under tp 4: 2 KV heads, 12 heads), data,
    # dp x tp.
    "llama-one-rank": ("llama-odd", "{tp: 1}", [], []),
    "llama-tensor-2": ("llama-odd", "{tp: 2}", [], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "llama-tensor-4": ("llama-odd", "{tp: 4}", [], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "llama-data-2": ("llama-odd", "{dp: 2}", ["dp"], []),
    "llama-dp2-tp2": ("llama-odd", "{dp: 2, tp: 2}", ["dp"], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "mistral-tensor-2": ("mistral-odd", "{tp: 2}", [], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "mistral-dp2-tp2": ("mistral-odd", "{dp: 2, tp: 2}", ["dp"], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "qwen2-tensor-2": ("qwen2-odd", "{tp: 2}", [], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "qwen2-data-4": ("qwen2-odd", "{dp: 4}", ["dp"], []),
    "qwen2-dp2-tp2": ("qwen2-odd", "{dp: 2, tp: 2}", ["dp"], [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    # mixtral: MoE tensor, expert (all_reduce), attention data + experts (all_to_all).
    "mixtral-moe-tensor-2": ("mixtral-odd", "{tp: 2}", [], [f"{{kind: [{TEXT}, moe], mode: tensor, axes: [tp]}}"]),
    "mixtral-moe-tensor-4": ("mixtral-odd", "{tp: 4}", [], [f"{{kind: [{TEXT}, moe], mode: tensor, axes: [tp]}}"]),
    "mixtral-expert-4": ("mixtral-odd", "{ep: 4}", [],
                         [f"{{kind: [{TEXT}], mode: tensor, axes: [ep]}}", "{kind: moe, mode: expert, axes: [ep]}"]),
    "mixtral-attn-data-expert-2": ("mixtral-odd", "{ep: 2}", [],
                                   ["{kind: attention, mode: data, axes: [ep]}", "{kind: moe, mode: expert, axes: [ep]}"]),
    "mixtral-attn-data-expert-4": ("mixtral-odd", "{ep: 4}", [],
                                   ["{kind: attention, mode: data, axes: [ep]}", "{kind: moe, mode: expert, axes: [ep]}"]),
    # qwen2-moe (layer 2 dense): routed experts expert-parallel with the shared expert replicated or
    # tensor-parallel over the same or another axis; attention data + experts (all_to_all).
    "qwen2moe-one-rank": ("qwen2_moe-odd", "{tp: 1}", [], []),
    "qwen2moe-tensor-2": ("qwen2_moe-odd", "{tp: 2}", [], [f"{{kind: [{TEXT}, moe], mode: tensor, axes: [tp]}}"]),
    "qwen2moe-expert-shared-tensor-4": ("qwen2_moe-odd", "{tp: 4}", [],
                                        [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}",
                                         "{kind: moe, mode: expert, axes: [tp], shared_expert: {mode: tensor, axes: [tp]}}"]),
    "qwen2moe-expert-shared-replicate-2": ("qwen2_moe-odd", "{ep: 2}", [],
                                           [f"{{kind: [{TEXT}], mode: tensor, axes: [ep]}}",
                                            "{kind: moe, mode: expert, axes: [ep], shared_expert: {mode: replicate}}"]),
    "qwen2moe-ep2-shared-tp2": ("qwen2_moe-odd", "{ep: 2, tp: 2}", [],
                                [f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}",
                                 "{kind: moe, mode: expert, axes: [ep], shared_expert: {mode: tensor, axes: [tp]}}"]),
    "qwen2moe-attn-data-expert-2": ("qwen2_moe-odd", "{ep: 2}", [],
                                    ["{kind: attention, mode: data, axes: [ep]}",
                                     "{kind: moe, mode: expert, axes: [ep]}"]),
    # llava: the vision tower data-parallel or tensor-parallel, the language model tensor-parallel.
    "llava-one-rank": ("llava-odd", "{tp: 1}", [], []),
    "llava-vision-data-2": ("llava-odd", "{tp: 2}", [],
                            ["{kind: encoder, mode: data, axes: [tp]}", f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "llava-vision-data-4": ("llava-odd", "{tp: 4}", [],
                            ["{kind: encoder, mode: data, axes: [tp]}", f"{{kind: [{TEXT}], mode: tensor, axes: [tp]}}"]),
    "llava-vision-tensor-2": ("llava-odd", "{tp: 2}", [], [f"{{kind: [encoder, {TEXT}], mode: tensor, axes: [tp]}}"]),
    "llava-vision-tensor-4": ("llava-odd", "{tp: 4}", [], [f"{{kind: [encoder, {TEXT}], mode: tensor, axes: [tp]}}"]),
    # whisper: the encoder data-parallel or tensor-parallel; cross-attention split (q and the fused kv).
    "whisper-one-rank": ("whisper-odd", "{tp: 1}", [], []),
    "whisper-tensor-2": ("whisper-odd", "{tp: 2}", [],
                         [f"{{kind: [encoder, {TEXT}, cross_attention], mode: tensor, axes: [tp]}}"]),
    "whisper-tensor-4": ("whisper-odd", "{tp: 4}", [],
                         [f"{{kind: [encoder, {TEXT}, cross_attention], mode: tensor, axes: [tp]}}"]),
    "whisper-encoder-data-2": ("whisper-odd", "{tp: 2}", [],
                               ["{kind: encoder, mode: data, axes: [tp]}",
                                f"{{kind: [{TEXT}, cross_attention], mode: tensor, axes: [tp]}}"]),
    "whisper-encoder-data-4": ("whisper-odd", "{tp: 4}", [],
                               ["{kind: encoder, mode: data, axes: [tp]}",
                                f"{{kind: [{TEXT}, cross_attention], mode: tensor, axes: [tp]}}"]),
}


def config_path(config):
    return HERE / "configs" / f"{config}.json"


def prepared(work, config):
    return Path(work) / config


def prepare(args):
    out = prepared(args.work, args.config)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    subprocess.run([args.executor, "make-checkpoint", "--config", str(config_path(args.config)), "--out", str(ckpt),
                    "--seed", "1", "--dtype", "float32"], check=True, stdout=subprocess.DEVNULL)
    # transformers reads config.json beside the weights.
    (ckpt / "config.json").write_text(config_path(args.config).read_text())
    t0 = time.time()
    subprocess.run([sys.executable, str(REFERENCE), CONFIGS[args.config], str(ckpt), str(BATCH), str(PROMPT),
                    str(NEW), "float32", str(out / "hf"), str(SEED), str(IMAGES)], check=True)
    print(f"prepare {args.config}: checkpoint and transformers' reference in {time.time() - t0:.1f} s")
    return 0


def write_spec(path, name, config, ckpt, mesh, batch_axes, rules):
    lines = ["version: 1", f"name: {name} (reference test)", "model:", f"  config: {config_path(config)}",
             f"  checkpoint: {ckpt}", "  dtype: float32", f"mesh: {mesh}"]
    if batch_axes:
        lines.append(f"batch_axes: [{', '.join(batch_axes)}]")
    if rules:
        lines.append("modules:")
        lines += [f"  - {r}" for r in rules]
    lines += ["workload:", f"  batch: {BATCH}", f"  prompt_tokens: {PROMPT}", f"  new_tokens: {NEW}"]
    if CONFIGS[config] == "llava":
        lines.append(f"  images_per_request: {IMAGES}")
    Path(path).write_text("\n".join(lines) + "\n")


def compare(run, ours, hf, theirs):
    """Failures (strings) of one case: tokens and per-step relative errors. Prints the errors."""
    failures = []
    if run["generated_token_ids"] != hf["tokens"]:
        failures.append(f"greedy tokens differ: executor {run['generated_token_ids']} vs transformers {hf['tokens']}")
    if ours.shape != theirs.shape:
        return failures + [f"logits shape {ours.shape} vs transformers' {theirs.shape}"]
    errors = []
    for step in range(ours.shape[0]):
        a, b = ours[step].astype(np.float64), theirs[step].astype(np.float64)
        errors.append(float(np.linalg.norm(a - b) / np.linalg.norm(b)))
    print("relative error per step: " + ", ".join(f"{e:.2e}" for e in errors) + f" (tolerance {TOLERANCE:g})")
    for step, e in enumerate(errors):
        if not e <= TOLERANCE:
            failures.append(f"step {step}: relative error {e:.3e} > {TOLERANCE:g}")
    return failures


def run_case(args):
    config, mesh, batch_axes, rules = CASES[args.case]
    base = prepared(args.work, config)
    if not (base / "hf.json").is_file():
        print(f"{args.case}: no reference for {config}: run `prepare {config}` first", file=sys.stderr)
        return 2
    spec = Path(args.work) / f"{args.case}.yaml"
    write_spec(spec, args.case, config, base / "checkpoint", mesh, batch_axes, rules)
    logits = Path(args.work) / f"{args.case}.npy"
    t0 = time.time()
    proc = subprocess.run([args.executor, "run", "--spec", str(spec), "--device", "cpu", "--format", "json",
                           "--seed", str(SEED), "--logits-out", str(logits)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{args.case}: executor exit {proc.returncode}:\n{proc.stderr}", file=sys.stderr)
        return 1
    run = json.loads(proc.stdout)
    hf = json.loads((base / "hf.json").read_text())
    failures = compare(run, np.load(logits), hf, np.load(base / "hf.logits.npy"))
    print(f"{args.case}: {run['world_size']} ranks, mesh {mesh}, {time.time() - t0:.1f} s")
    for f in failures:
        print(f"{args.case}: FAIL: {f}", file=sys.stderr)
    if not failures:
        print(f"{args.case}: tokens identical to transformers', every step within {TOLERANCE:g}: PASS")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    p = sub.add_parser("prepare")
    p.add_argument("config", choices=sorted(CONFIGS))
    p.add_argument("--executor", required=True)
    p.add_argument("--work", required=True)
    r = sub.add_parser("run")
    r.add_argument("case", choices=sorted(CASES))
    r.add_argument("--executor", required=True)
    r.add_argument("--work", required=True)
    args = parser.parse_args()
    if args.command == "list":
        for name, (config, *_rest) in CASES.items():
            print(f"{name} {config}")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return prepare(args) if args.command == "prepare" else run_case(args)


if __name__ == "__main__":
    sys.exit(main())

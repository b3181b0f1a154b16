#!/usr/bin/env python3
"""Compares an executor run (--format json, --logits-out .npy) with hf_generate.py's output.

Both runs generate freely, so their logits are comparable while their contexts are the same: for
each request, the steps up to and including the first step whose greedy token differs. On those
steps the criterion is the relative error ||executor - transformers|| / ||transformers|| (as
`executor run --verify`): float32 1e-4, bfloat16 1e-1, float16 2e-2. Tokens must be identical in
float32; in half precision a differing token is reported with the gap between the two best logits
there, which shows whether it is a near tie.

Usage: compare.py RUN.json RUN_LOGITS.npy HF_PREFIX DTYPE [RECORDS.jsonl]
       -> prints one line; exit 1 on failure. With RECORDS.jsonl, also appends one JSON line there
       (relative error, tolerance, tokens identical, mismatches, the run's --verify and timings) for
       a summary table (multimodal-check.sh).
"""
import json
import sys

import numpy as np

run_json, run_logits, hf_prefix, dtype = sys.argv[1:5]
run = json.load(open(run_json))
hf = json.load(open(hf_prefix + ".json"))
a = np.load(run_logits).astype(np.float64)   # [steps, batch, vocab]
b = np.load(hf_prefix + ".logits.npy").astype(np.float64)
ours, theirs = run["generated_token_ids"], hf["tokens"]
rtol = {"float32": 1e-4, "bfloat16": 1e-1, "float16": 2e-2}[dtype]

num = den = 0.0
mismatches = []
for r, (x, y) in enumerate(zip(ours, theirs)):
    last = len(x) - 1
    for s, (p, q) in enumerate(zip(x, y)):
        if p != q:
            top2 = np.sort(b[s, r])[-2:]
            mismatches.append(f"request {r} step {s}: {p} vs {q}, transformers' top-2 gap "
                              f"{top2[1] - top2[0]:.3g}, |diff| there {np.abs(a[s, r] - b[s, r]).max():.3g}")
            last = s
            break
    num += float(((a[: last + 1, r] - b[: last + 1, r]) ** 2).sum())
    den += float((b[: last + 1, r] ** 2).sum())
rel = (num ** 0.5) / (den ** 0.5)
tokens_ok = not mismatches
ok = rel <= rtol and (tokens_ok or dtype != "float32")
print(f"{run['spec']} [{dtype}]: relative error of the logits vs transformers {rel:.3g} (tolerance {rtol:g}); "
      f"tokens identical: {tokens_ok}" + ("" if tokens_ok else " (" + "; ".join(mismatches) + ")")
      + f"; TTFT median {run['ttft_ms']['median']:.1f} ms, TPOT median {run['tpot_ms']['median']:.2f} ms: "
      + ("PASS" if ok else "FAIL"))
if len(sys.argv) > 5:
    with open(sys.argv[5], "a") as f:
        f.write(json.dumps({"spec": run["spec"], "name": run.get("name"), "model_type": run.get("model_type"),
                            "dtype": dtype, "world_size": run.get("world_size"), "hf_relative_error": rel,
                            "hf_tolerance": rtol, "tokens_identical": tokens_ok, "mismatches": mismatches,
                            "passed": ok, "verify": run.get("verify"), "ttft_ms": run["ttft_ms"]["median"],
                            "tpot_ms": run["tpot_ms"]["median"], "time_by_kind_s": run.get("time_by_kind_s")}) + "\n")
sys.exit(0 if ok else 1)

#!/usr/bin/env python3
"""Compares an executor run (--format json, --logits-out .npy) with hf_generate.py's output.

Usage: compare.py RUN.json RUN_LOGITS.npy HF_PREFIX DTYPE   -> prints one line; exit 1 on mismatch
"""
import json
import sys

import numpy as np

run_json, run_logits, hf_prefix, dtype = sys.argv[1:5]
run = json.load(open(run_json))
hf = json.load(open(hf_prefix + ".json"))
a = np.load(run_logits)
b = np.load(hf_prefix + ".logits.npy")
same_tokens = run["generated_token_ids"] == hf["tokens"]
diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
rtol = {"float32": 1e-3, "bfloat16": 5e-2, "float16": 1e-2}[dtype]
tol = rtol * max(1.0, float(np.abs(b).max()))
first_mismatch = None
if not same_tokens:
    for r, (x, y) in enumerate(zip(run["generated_token_ids"], hf["tokens"])):
        for s, (p, q) in enumerate(zip(x, y)):
            if p != q:
                first_mismatch = (r, s)
                break
        if first_mismatch:
            break
ok = same_tokens and diff <= tol
print(f"{run['spec']}: tokens identical to transformers: {same_tokens}"
      + (f" (first difference: request {first_mismatch[0]}, step {first_mismatch[1]})" if first_mismatch else "")
      + f"; max |logits - transformers| {diff:.4g} (tolerance {tol:.4g}); "
      + f"TTFT median {run['ttft_ms']['median']:.1f} ms, TPOT median {run['tpot_ms']['median']:.2f} ms, "
      + f"{run['output_tokens_per_s']:.1f} tok/s: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)

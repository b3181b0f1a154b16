#!/usr/bin/env python3
"""How far two half-precision runs are from float32, step by step.

compare.py measures the executor against transformers in the same half precision: two
implementations that each round differently, so their difference does not say which is closer to
the exact function. Here both are measured against a third run: transformers in float32 on the
same (half-precision-valued) weights, the reference. At each generated step s, a request counts
while the run's tokens before s equal the reference's (the same context); the relative error is
||run - reference|| / ||reference|| over those requests' logits at step s.

Usage: accuracy.py RUN.json RUN_LOGITS.npy HF_HALF_PREFIX HF_FLOAT32_PREFIX
       -> a table: step, then for the executor and for transformers in half precision the
          requests compared and the relative error; the last line compares the whole runs.
"""
import json
import sys

import numpy as np

run_json, run_logits, half_prefix, ref_prefix = sys.argv[1:5]
ref_tokens = json.load(open(ref_prefix + ".json"))["tokens"]
ref = np.load(ref_prefix + ".logits.npy").astype(np.float64)  # [steps, batch, vocab]
runs = {
    "executor": (json.load(open(run_json))["generated_token_ids"], np.load(run_logits).astype(np.float64)),
    "transformers": (json.load(open(half_prefix + ".json"))["tokens"], np.load(half_prefix + ".logits.npy").astype(np.float64)),
}
steps = ref.shape[0]
totals = {name: [0.0, 0.0] for name in runs}
print(f"{'step':>4}  {'executor: requests, rel. error':>32}  {'transformers: requests, rel. error':>36}")
for s in range(steps):
    cells = []
    for name, (tokens, logits) in runs.items():
        same = [r for r in range(len(ref_tokens)) if tokens[r][:s] == ref_tokens[r][:s]]
        if not same:
            cells.append("-")
            continue
        num = float(((logits[s, same] - ref[s, same]) ** 2).sum())
        den = float((ref[s, same] ** 2).sum())
        totals[name][0] += num
        totals[name][1] += den
        cells.append(f"{len(same)}, {(num / den) ** 0.5:.3g}")
    print(f"{s:>4}  {cells[0]:>32}  {cells[1]:>36}")
whole = {name: (t[0] / t[1]) ** 0.5 for name, t in totals.items()}
print(f"all steps: executor {whole['executor']:.3g}, transformers {whole['transformers']:.3g} "
      f"(relative error against transformers in float32 on the same weights)")

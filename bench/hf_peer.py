#!/usr/bin/env python3
"""transformers as the peer of `executor run` (bench/performance.sh): greedy generation on the same
checkpoint, the same prompts (the executor's splitmix64 token ids) and the same device, in one of
two modes:

  eager            transformers' default: a dynamic KV cache, eager PyTorch
  static-compile   a static KV cache, which makes transformers compile the decode step with
                   torch.compile (its automatic compile, CUDA graphs included) on CUDA; on the CPU
                   transformers does not compile, so this is the static cache alone

Prints one JSON line: ms per decode step ((time of N new tokens - time of 1) / (N - 1), medians of
three runs after two warm-ups, so compilation is not counted), time to the first token, tokens/s.

Usage: hf_peer.py CKPT BATCH PROMPT NEW DTYPE DEVICE MODE [SEED]
"""
import json
import statistics
import sys
import time

import torch
import transformers
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "reference"))
from executor_inputs import make_prompts  # noqa: E402  (the executor's prompts, bit for bit)



def main():
    ckpt, batch, prompt, new, dtype, device, mode = sys.argv[1:8]
    seed = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    batch, prompt, new = int(batch), int(prompt), int(new)
    if mode not in ("eager", "static-compile"):
        sys.exit(f"hf_peer: mode must be eager or static-compile, not {mode!r}")
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=dt, device_map=device)
    model.eval()
    model.generation_config.eos_token_id = None
    vocab = model.config.vocab_size
    ids = torch.from_numpy(make_prompts(batch, prompt, vocab, seed)).to(device)
    extra = {"cache_implementation": "static"} if mode == "static-compile" else {}

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run(n):
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0, **extra)
        sync()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    run(new)
    run(new)
    warm_s = time.perf_counter() - t0
    first = statistics.median(run(1) for _ in range(3))
    whole = statistics.median(run(new) for _ in range(3))
    step_ms = (whole - first) / max(new - 1, 1) * 1e3
    print(json.dumps({"peer": f"transformers {mode}", "mode": mode, "batch": batch, "prompt": prompt, "new": new,
                      "dtype": dtype, "device": device, "ms_per_step": step_ms, "ttft_ms": first * 1e3,
                      "tokens_per_s": batch * new / whole, "warm_up_s": warm_s,
                      "transformers": transformers.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

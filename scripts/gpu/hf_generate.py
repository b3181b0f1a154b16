#!/usr/bin/env python3
"""Greedy generation with Hugging Face transformers on the executor's prompts, for comparison.

Loads a checkpoint written by `executor make-checkpoint`, builds the executor's deterministic
prompts (executor/runtime/workload.cc: splitmix64((seed << 32) + i) % vocab), runs
`generate(do_sample=False)` for exactly NEW tokens (no end-of-sequence stop) and saves the tokens
(JSON) and the raw logits of every step ([new, batch, vocab] float32 .npy).

Usage: hf_generate.py CKPT BATCH PROMPT NEW DTYPE OUT_PREFIX [SEED]
"""
import json
import sys

import numpy as np
import torch
import transformers

MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def main():
    ckpt, batch, prompt, new, dtype, out = sys.argv[1:7]
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    batch, prompt, new = int(batch), int(prompt), int(new)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=dt, device_map="cuda")
    model.eval()
    model.generation_config.eos_token_id = None
    vocab = model.config.vocab_size
    ids = [splitmix64(((seed << 32) + i) & MASK) % vocab for i in range(batch * prompt)]
    ids = torch.tensor(ids, dtype=torch.long, device="cuda").view(batch, prompt)
    with torch.no_grad():
        res = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             min_new_tokens=new, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=0)
    tokens = res.sequences[:, prompt:].tolist()
    logits = torch.stack([l.float() for l in res.logits]).cpu().numpy()
    np.save(out + ".logits.npy", logits)
    with open(out + ".json", "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "dtype": dtype, "tokens": tokens}, f)
    print(f"hf: {batch} requests x {new} tokens, logits {logits.shape}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()

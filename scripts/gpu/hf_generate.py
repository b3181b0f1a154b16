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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "reference"))
from executor_inputs import make_prompts  # noqa: E402  (the executor's prompts, bit for bit)



def main():
    ckpt, batch, prompt, new, dtype, out = sys.argv[1:7]
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    batch, prompt, new = int(batch), int(prompt), int(new)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=dt, device_map="cuda")
    model.eval()
    model.generation_config.eos_token_id = None
    vocab = model.config.vocab_size
    ids = torch.from_numpy(make_prompts(batch, prompt, vocab, seed)).to("cuda")
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

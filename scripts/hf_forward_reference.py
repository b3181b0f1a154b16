#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for the executor's Llama-family forward.

For each checkpoint directory given (written by `executor make-checkpoint --seed 7 --dtype
float32`, config.json beside the weights), runs transformers' model in float32 with eager
attention on the executor's deterministic prompts (executor/runtime/workload.h: splitmix64,
seed 0), greedy-decodes NEW tokens by recomputing the whole sequence each step (no cache), and
records per step and request the argmax and the first 32 logits. Also records the Llama-3 RoPE
frequencies of every config that has them. Runs where transformers is installed (the GPU
machine); the output is recorded in tests/executor/data/hf_forward_reference.json and
tests/executor/hf_reference_test.cc compares the executor against it.

Usage: python3 scripts/hf_forward_reference.py OUT.json CKPT_DIR_OR_LLAMA3_CONFIG.json...
"""
import json
import os
import sys

import torch
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "reference"))
from executor_inputs import make_prompts  # noqa: E402  (the executor's prompts, bit for bit)

BATCH, PROMPT, NEW, SEED, KEEP = 2, 8, 4, 0, 32


def prompts(vocab):
    return torch.from_numpy(make_prompts(BATCH, PROMPT, vocab, SEED))


def run(ckpt):
    config = transformers.AutoConfig.from_pretrained(ckpt)
    config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, config=config, dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()
    ids = prompts(config.vocab_size)
    out = {"prompts": ids.tolist(), "tokens": [], "logits_head": [], "logits_max": []}
    with torch.no_grad():
        for _ in range(NEW):
            logits = model(input_ids=ids).logits[:, -1, :].float()
            nxt = logits.argmax(-1)
            out["tokens"].append(nxt.tolist())
            out["logits_head"].append(logits[:, :KEEP].tolist())
            out["logits_max"].append(logits.max(-1).values.tolist())
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type")) == "llama3":
        inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
        out["llama3_inv_freq"] = [float(v) for v in inv_freq.tolist()]
    return out


def rope_only(config_file):
    config = transformers.LlamaConfig.from_json_file(config_file)
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    return {"llama3_inv_freq": [float(v) for v in inv_freq.tolist()]}


def main():
    result = {"transformers": transformers.__version__, "torch": torch.__version__, "batch": BATCH,
              "prompt_tokens": PROMPT, "new_tokens": NEW, "seed": SEED, "models": {}}
    for arg in sys.argv[2:]:
        name = os.path.basename(os.path.normpath(arg))
        if arg.endswith(".json"):  # a config alone: its Llama-3 RoPE frequencies
            result["models"][name[:-len(".json")]] = rope_only(arg)
        else:
            result["models"][name] = run(arg)
    with open(sys.argv[1], "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

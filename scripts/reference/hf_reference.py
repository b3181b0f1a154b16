#!/usr/bin/env python3
"""Greedy reference with Hugging Face transformers on the executor's deterministic inputs, for every
family: causal (llama, mistral, qwen2, mixtral: AutoModelForCausalLM), llava and whisper. Used by
the CPU reference tests (tests/reference) and the GPU scripts (scripts/gpu).

Loads a checkpoint written by `executor make-checkpoint` (AutoModelForCausalLM,
LlavaForConditionalGeneration or WhisperForConditionalGeneration, eager attention) and rebuilds, bit for bit,
the inputs of executor/runtime/workload.cc:

  splitmix64(x): the usual 64-bit finaliser (below), all arithmetic mod 2^64.
  make_prompts(batch, P, vocab, seed) [batch, P] int64: element (r, t) is
      splitmix64((seed << 32) + r * P + t) % vocab.
  llava prompts [batch, I + P], I = images_per_request * tokens_per_image: columns [0, I) are
      image_token_index; column I + t of row r is make_prompts' (r, t), an id equal to
      image_token_index replaced by (image_token_index + 1) % vocab.
  make_uniform_inputs(shape, seed) float32, row-major element i:
      (splitmix64((seed << 32) + 2^30 + i) >> 40) / 2^23 - 1  (exact in float32).
  llava pixels = make_uniform_inputs([batch * images_per_request, channels, image_size, image_size],
      seed); image k belongs to request k // images_per_request.
  whisper: decoder prompt = make_prompts(batch, P, vocab, seed); audio features =
      make_uniform_inputs([batch, num_mel_bins, 2 * max_source_positions], seed) (same seed).
  causal (llama, mistral, qwen2, mixtral): make_prompts(batch, P, vocab, seed).

Then a plain greedy loop (argmax of the last position at each step, KV cache through
past_key_values, no end-of-sequence stop, no forced or suppressed tokens: not generate()) for
exactly NEW tokens. Saves OUT.json ({"tokens": [per request, NEW ids], ...}), OUT.logits.npy
([new, batch, vocab] float32: what `executor run --verify --logits-out` writes) and, for llava,
OUT.features.npy (the projected image features, [items, tokens_per_image, text hidden]).

Usage: hf_reference.py FAMILY CKPT BATCH PROMPT NEW DTYPE OUT [SEED] [IMAGES_PER_REQUEST]
       FAMILY: causal | mixtral (= causal) | llava | whisper; PROMPT = text tokens (llava: after
       the image tokens).
       hf_reference.py selftest   (checks the input generators; numpy only)
"""
import json
import sys
import time

import numpy as np

# The executor's input generators (executor/runtime/workload.cc), shared with every script that
# feeds transformers the executor's inputs.
from executor_inputs import (MASK, check_uniform, counters, make_image_prompts, make_prompts,  # noqa: F401
                             make_uniform_inputs, selftest, splitmix64, splitmix64_np)


def dtype_of(name):
    import torch
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load(cls, ckpt, dtype, device):
    import torch
    # NOTE: float32 references must not use TF32 (matmuls or cuDNN convolutions: whisper's conv
    # stem, CLIP's patch embedding), or they differ from a float32 run by ~1e-3.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    kwargs = {"dtype": dtype_of(dtype), "attn_implementation": "eager"}
    try:  # transformers 5 can run MoE experts as grouped GEMMs; the plain loop is the reference
        model = cls.from_pretrained(ckpt, experts_implementation="eager", **kwargs)
    except (TypeError, ValueError):
        model = cls.from_pretrained(ckpt, **kwargs)
    return model.to(device).eval()


def greedy(model, first, new, step_kwargs=None):
    """Greedy loop: model(**first), then one token at a time with the cache. Returns tokens
    [batch, new] and logits [new, batch, vocab] float32."""
    import torch
    step_kwargs = step_kwargs or {}
    tokens, logits = [], []
    key = "decoder_input_ids" if "decoder_input_ids" in first else "input_ids"
    with torch.no_grad():
        out = model(**first, use_cache=True)
        for s in range(new):
            last = out.logits[:, -1, :].float()
            nxt = last.argmax(-1)
            logits.append(last.cpu())
            tokens.append(nxt.cpu())
            if s + 1 == new:
                break
            out = model(**{key: nxt[:, None]}, past_key_values=out.past_key_values, use_cache=True, **step_kwargs)
    return torch.stack(tokens, 1).tolist(), torch.stack(logits).numpy()


def save(out, meta, tokens, logits):
    np.save(out + ".logits.npy", logits.astype(np.float32))
    meta = dict(meta, tokens=tokens)
    with open(out + ".json", "w") as f:
        json.dump(meta, f)


def llava(ckpt, batch, prompt, new, dtype, seed, images_per_request, device):
    import torch
    import transformers
    model = load(transformers.LlavaForConditionalGeneration, ckpt, dtype, device)
    cfg = model.config
    vision = cfg.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    tokens_per_image = patches + (1 if cfg.vision_feature_select_strategy == "full" else 0)
    image_token = cfg.image_token_index if hasattr(cfg, "image_token_index") else cfg.image_token_id
    vocab = cfg.text_config.vocab_size
    image_tokens = images_per_request * tokens_per_image
    ids = torch.from_numpy(make_image_prompts(batch, image_tokens, prompt, vocab, image_token, seed)).to(device)
    shape = (batch * images_per_request, vision.num_channels, vision.image_size, vision.image_size)
    host_pixels = make_uniform_inputs(shape, seed)
    check_uniform(host_pixels, seed)
    pixels = torch.from_numpy(host_pixels).to(device=device, dtype=dtype_of(dtype))
    with torch.no_grad():
        features = model.get_image_features(
            pixel_values=pixels, vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy)
        # NOTE: transformers versions differ: a tensor [items, tokens, hidden], a list of per-image
        # [tokens, hidden] tensors, or an output object holding one of those.
        if not isinstance(features, (torch.Tensor, list, tuple)):
            pooled = getattr(features, "pooler_output", None)
            features = pooled if pooled is not None else features[0]
        if isinstance(features, (list, tuple)):
            features = torch.stack(list(features)) if features[0].dim() == 2 else torch.cat(list(features))
        features = features.reshape(batch * images_per_request, tokens_per_image, -1)
    tokens, logits = greedy(model, {"input_ids": ids, "pixel_values": pixels}, new)
    meta = {"images_per_request": images_per_request, "tokens_per_image": tokens_per_image}
    return tokens, logits, meta, features.float().cpu().numpy()


def causal(ckpt, batch, prompt, new, dtype, seed, device):
    import torch
    import transformers
    model = load(transformers.AutoModelForCausalLM, ckpt, dtype, device)
    ids = torch.from_numpy(make_prompts(batch, prompt, model.config.vocab_size, seed)).to(device)
    tokens, logits = greedy(model, {"input_ids": ids}, new)
    return tokens, logits, {}, None


def whisper(ckpt, batch, prompt, new, dtype, seed, device):
    import torch
    import transformers
    model = load(transformers.WhisperForConditionalGeneration, ckpt, dtype, device)
    cfg = model.config
    ids = torch.from_numpy(make_prompts(batch, prompt, cfg.vocab_size, seed)).to(device)
    host = make_uniform_inputs((batch, cfg.num_mel_bins, 2 * cfg.max_source_positions), seed)
    check_uniform(host, seed)
    features = torch.from_numpy(host).to(device=device, dtype=dtype_of(dtype))
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(input_features=features)
    # The encoder runs once; every step reuses its output (and the cached cross-attention k/v).
    tokens, logits = greedy(model, {"encoder_outputs": encoder_outputs, "decoder_input_ids": ids}, new,
                            step_kwargs={"encoder_outputs": encoder_outputs})
    return tokens, logits, {}, None


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "selftest":
        return selftest()
    if len(sys.argv) < 8 or sys.argv[1] not in ("causal", "llava", "mixtral", "whisper"):
        sys.exit(__doc__)
    import torch
    import transformers
    family, ckpt, batch, prompt, new, dtype, out = sys.argv[1:8]
    seed = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    images = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    batch, prompt, new = int(batch), int(prompt), int(new)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    if family == "llava":
        tokens, logits, meta, features = llava(ckpt, batch, prompt, new, dtype, seed, images, device)
    elif family in ("causal", "mixtral"):
        tokens, logits, meta, features = causal(ckpt, batch, prompt, new, dtype, seed, device)
    else:
        tokens, logits, meta, features = whisper(ckpt, batch, prompt, new, dtype, seed, device)
    if features is not None:
        np.save(out + ".features.npy", features)
    meta = dict({"family": family, "transformers": transformers.__version__, "torch": torch.__version__,
                 "dtype": dtype, "seed": seed, "batch": batch, "prompt_tokens": prompt, "new_tokens": new}, **meta)
    save(out, meta, tokens, logits)
    print(f"hf {family} [{dtype}]: {batch} requests x {new} tokens, logits {logits.shape}, "
          f"{time.time() - t0:.1f} s, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()

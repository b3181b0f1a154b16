#!/usr/bin/env python3
"""LLaVA reference with Hugging Face transformers on the executor's deterministic inputs.

Loads a checkpoint written by `executor make-checkpoint` (a llava config) with
LlavaForConditionalGeneration and rebuilds, bit for bit, the inputs of executor/runtime/workload.cc:

  splitmix64(x): the usual 64-bit finaliser (below), all arithmetic mod 2^64.
  prompts [batch, I + P] int64, I = images_per_request * tokens_per_image:
      columns [0, I): image_token_index;
      column I + t of row r: splitmix64((seed << 32) + r * P + t) % vocab, with an id equal to
      image_token_index replaced by (image_token_index + 1) % vocab.
  pixels [batch * images_per_request, channels, image_size, image_size] float32, row-major
      element i: (splitmix64((seed << 32) + 2^30 + i) >> 40) / 2^23 - 1  (exact in float32).
      Image k belongs to request k // images_per_request.

It prints and saves (OUT.json) the greedy tokens (exactly NEW, no end-of-sequence stop), the
projected image features (OUT.features.npy, [items, tokens_per_image, text hidden]: what
models/llava/llava_forward.h's LlavaVision::project returns) and the logits of every step
(OUT.logits.npy, [new, batch, vocab]).

NOTE: the executor's image path (tower, projector, merge) is implemented and tested against its
own unsharded run; the end-to-end llava run through `executor run` is not wired yet, so today the
features are what can be compared (e.g. with a small C++ driver calling LlavaVision).

Usage: hf_multimodal_reference.py llava CKPT BATCH PROMPT NEW DTYPE OUT [SEED] [IMAGES_PER_REQUEST]
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


def make_prompts(batch, tokens, vocab, seed):
    return [[splitmix64(((seed << 32) + r * tokens + t) & MASK) % vocab for t in range(tokens)]
            for r in range(batch)]


def make_image_prompts(batch, image_tokens, text_tokens, vocab, image_token, seed):
    text = make_prompts(batch, text_tokens, vocab, seed)
    return [[image_token] * image_tokens + [(image_token + 1) % vocab if t == image_token else t for t in row]
            for row in text]


def make_uniform_inputs(shape, seed):
    n = int(np.prod(shape))
    base = ((seed << 32) + (1 << 30)) & MASK
    values = [(splitmix64((base + i) & MASK) >> 40) / 8388608.0 - 1.0 for i in range(n)]
    return np.asarray(values, dtype=np.float32).reshape(shape)


def llava(ckpt, batch, prompt, new, dtype, out, seed, images_per_request):
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = transformers.LlavaForConditionalGeneration.from_pretrained(ckpt, dtype=dt).to(device)
    model.eval()
    model.generation_config.eos_token_id = None
    cfg = model.config
    vision = cfg.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    tokens_per_image = patches + (1 if cfg.vision_feature_select_strategy == "full" else 0)
    image_token = cfg.image_token_index if hasattr(cfg, "image_token_index") else cfg.image_token_id
    vocab = cfg.text_config.vocab_size
    image_tokens = images_per_request * tokens_per_image
    ids = torch.tensor(make_image_prompts(batch, image_tokens, prompt, vocab, image_token, seed),
                       dtype=torch.long, device=device)
    pixels = torch.from_numpy(make_uniform_inputs(
        (batch * images_per_request, vision.num_channels, vision.image_size, vision.image_size), seed))
    pixels = pixels.to(device=device, dtype=dt)
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
        res = model.generate(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids),
                             max_new_tokens=new, min_new_tokens=new, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=0)
    tokens = res.sequences[:, ids.shape[1]:].tolist()
    np.save(out + ".features.npy", features.float().cpu().numpy())
    np.save(out + ".logits.npy", torch.stack([l.float() for l in res.logits]).cpu().numpy())
    with open(out + ".json", "w") as f:
        json.dump({"family": "llava", "transformers": transformers.__version__, "torch": torch.__version__,
                   "dtype": dtype, "seed": seed, "images_per_request": images_per_request,
                   "tokens_per_image": tokens_per_image, "tokens": tokens}, f)
    print(json.dumps({"tokens": tokens}))


def main():
    if len(sys.argv) < 8 or sys.argv[1] != "llava":
        sys.exit(__doc__)
    ckpt, batch, prompt, new, dtype, out = sys.argv[2:8]
    seed = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    images = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    llava(ckpt, int(batch), int(prompt), int(new), dtype, out, seed, images)


if __name__ == "__main__":
    main()

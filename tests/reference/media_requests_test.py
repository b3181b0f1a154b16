#!/usr/bin/env python3
"""Requests with image and audio files through `executor run --requests`, against transformers fed
with its own processors' output for the same files (CPU, float32, random weights of tiny configs).

llava: two requests, two images each (a JPEG photograph with an EXIF orientation, a grey PNG, an
RGBA PNG, a wide JPEG), image tokens ("<image>", one per image) in the middle of the text; the
executor expands each to the image's tokens as transformers' processor does. transformers gets
CLIPImageProcessor's pixel values of the same files (llava-1.5's processor at the vision tower's
size) and the expanded ids. whisper: a WAV clip a request (16 kHz PCM and 22.05 kHz float), the
reference features WhisperFeatureExtractor's (the 22.05 kHz clip resampled by python-soxr first,
as transformers' audio loading does). Each on 1 rank and 2 ranks (the encoder data-parallel,
the rest tensor-parallel). Per step, the relative error of the logits is at most 1e-5 and the
greedy tokens are identical.

Usage: media_requests_test.py --executor EXE --work DIR
"""
import argparse
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "reference"))
TOLERANCE = 1e-5
NEW = 4
LLAVA_MEAN = [0.48145466, 0.4578275, 0.40821073]
LLAVA_STD = [0.26862954, 0.26130258, 0.27577711]


def photo(width, height, seed, mode="RGB"):
    from PIL import Image
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(3 * x / width + c + 2 * y / height) for c in range(3)], -1)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(img)
    if mode == "RGBA":
        alpha = (255 * (x / max(width - 1, 1))).astype(np.uint8)
        image = Image.fromarray(np.dstack([img, alpha]), "RGBA")
    elif mode == "L":
        image = image.convert("L")
    return image


def make_images(folder):
    from PIL import Image
    files = []
    rotated = photo(90, 60, 1)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 on display
    path = folder / "photo_exif6.jpg"
    rotated.save(path, quality=92, exif=exif)
    files.append(path)
    for name, image in [("grey.png", photo(50, 70, 2, "L")), ("rgba.png", photo(64, 48, 3, "RGBA")),
                        ("wide.jpg", photo(200, 40, 4))]:
        image.save(folder / name)
        files.append(folder / name)
    return [str(f) for f in files]


def write_wav(path, samples, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def speech_like(rate, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    envelope = 0.5 * (1 - np.cos(2 * np.pi * t / seconds))
    tone = sum(np.sin(2 * np.pi * f * t + p) / (i + 1) for i, (f, p) in enumerate([(180, 0), (360, 1), (900, 2)]))
    return (0.3 * envelope * tone + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def read_pcm16(path):
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        return data, w.getframerate()


def run_executor(executor, spec, requests, logits, work):
    out = Path(work) / (Path(spec).stem + ".out.jsonl")
    proc = subprocess.run([executor, "run", "--spec", str(spec), "--device", "cpu", "--format", "json",
                           "--requests", str(requests), "--logits-out", str(logits), "--output", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: executor exit {proc.returncode} on {spec}:\n{proc.stderr}")
    return json.loads(proc.stdout)


def compare(name, run, ours, tokens, theirs):
    failures = []
    if run["generated_token_ids"] != tokens:
        failures.append(f"{name}: greedy tokens differ: executor {run['generated_token_ids']} vs transformers {tokens}")
    if ours.shape != theirs.shape:
        return failures + [f"{name}: logits shape {ours.shape} vs transformers' {theirs.shape}"]
    errors = [float(np.linalg.norm(ours[s].astype(np.float64) - theirs[s]) / np.linalg.norm(theirs[s]))
              for s in range(ours.shape[0])]
    print(f"{name}: relative error per step " + ", ".join(f"{e:.2e}" for e in errors))
    failures += [f"{name}: step {s}: relative error {e:.3e} > {TOLERANCE:g}" for s, e in enumerate(errors)
                 if not e <= TOLERANCE]
    return failures


def spec_text(name, config, ckpt, mesh, rules, batch):
    lines = ["version: 1", f"name: {json.dumps(name)}", "model:", f"  config: {config}", f"  checkpoint: {ckpt}",
             "  dtype: float32", f"mesh: {mesh}"]
    if rules:
        lines += ["modules:"] + [f"  - {r}" for r in rules]
    lines += ["workload:", f"  batch: {batch}", "  prompt_tokens: 4", f"  new_tokens: {NEW}"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from hf_reference import greedy, load
    torch.manual_seed(0)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    failures = []

    # --- llava: images --------------------------------------------------------------------------
    config = ROOT / "models" / "configs" / "tiny-llava.json"
    ckpt = work / "tiny-llava"
    subprocess.run([args.executor, "make-checkpoint", "--config", str(config), "--out", str(ckpt), "--seed", "3",
                    "--dtype", "float32"], check=True, stdout=subprocess.DEVNULL)
    (ckpt / "config.json").write_text(config.read_text())
    cfg = json.loads(config.read_text())
    image_token, size = cfg["image_token_index"], cfg["vision_config"]["image_size"]
    tokens_per_image = (size // cfg["vision_config"]["patch_size"]) ** 2
    images = make_images(work)
    prompts = [[5, 17, image_token, 40, 41, image_token, 7], [9, image_token, 3, 4, image_token, 11]]
    (work / "llava.jsonl").write_text(
        json.dumps({"prompt_token_ids": prompts[0], "images": images[:2], "max_tokens": NEW}) + "\n" +
        json.dumps({"prompt_token_ids": prompts[1], "images": images[2:], "max_tokens": NEW}) + "\n")
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, image_mean=LLAVA_MEAN,
        image_std=LLAVA_STD, resample=3, do_convert_rgb=True)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"].float()
    expanded = []
    for p in prompts:
        expanded.append([t for i in p for t in ([i] * tokens_per_image if i == image_token else [i])])
    assert len(expanded[0]) != len(expanded[1]), "the prompts should differ in length (a ragged batch)"
    model = load(transformers.LlavaForConditionalGeneration, str(ckpt), "float32", "cpu")
    hf_tokens, hf_logits = [], []
    for r, ids in enumerate(expanded):  # one request at a time: each as transformers runs it alone
        t, lg = greedy(model, {"input_ids": torch.tensor([ids]), "pixel_values": pixels[2 * r:2 * r + 2]}, NEW)
        hf_tokens.append(t[0])
        hf_logits.append(lg[:, 0])
    theirs = np.stack(hf_logits, 1)
    for mesh, rules in [("{tp: 1}", []),
                        ("{tp: 2}", ["{kind: encoder, mode: data, axes: [tp]}",
                                     "{kind: [embedding, attention, mlp, lm_head], mode: tensor, axes: [tp]}"])]:
        name = f"llava images, mesh {mesh}"
        spec = work / f"llava-{mesh.count(':')}-{len(rules)}.yaml"
        spec.write_text(spec_text(name, config, ckpt, mesh, rules, 2))
        logits = work / (spec.stem + ".npy")
        run = run_executor(args.executor, spec, work / "llava.jsonl", logits, work)
        failures += compare(name, run, np.load(logits), hf_tokens, theirs)

    # --- whisper: audio -------------------------------------------------------------------------
    import soxr
    config = ROOT / "models" / "configs" / "tiny-whisper.json"
    ckpt = work / "tiny-whisper"
    subprocess.run([args.executor, "make-checkpoint", "--config", str(config), "--out", str(ckpt), "--seed", "4",
                    "--dtype", "float32"], check=True, stdout=subprocess.DEVNULL)
    (ckpt / "config.json").write_text(config.read_text())
    cfg = json.loads(config.read_text())
    clips = [(work / "speech16.wav", 16000, 0.8), (work / "speech22.wav", 22050, 0.6)]
    for i, (path, rate, seconds) in enumerate(clips):
        write_wav(path, speech_like(rate, seconds, i), rate)
    decoder_prompts = [[1, 5, 9], [1, 7, 3]]
    (work / "whisper.jsonl").write_text("".join(
        json.dumps({"prompt_token_ids": p, "audio": str(c[0]), "max_tokens": NEW}) + "\n"
        for p, c in zip(decoder_prompts, clips)))
    extractor = transformers.WhisperFeatureExtractor(
        feature_size=cfg["num_mel_bins"], chunk_length=2 * cfg["max_source_positions"] * 160 // 16000)
    features = []
    for path, rate, _ in clips:
        samples, file_rate = read_pcm16(path)
        if file_rate != 16000:
            samples = soxr.resample(samples, file_rate, 16000)
        features.append(extractor(samples, sampling_rate=16000, return_tensors="np").input_features[0])
    features = torch.from_numpy(np.stack(features)).float()
    model = load(transformers.WhisperForConditionalGeneration, str(ckpt), "float32", "cpu")
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(input_features=features)
    tokens, theirs = greedy(model, {"encoder_outputs": encoder_outputs, "decoder_input_ids": torch.tensor(decoder_prompts)},
                            NEW, step_kwargs={"encoder_outputs": encoder_outputs})
    for mesh, rules in [("{tp: 1}", []),
                        ("{tp: 2}", ["{kind: encoder, mode: data, axes: [tp]}",
                                     "{kind: [embedding, attention, mlp, lm_head, cross_attention], mode: tensor, "
                                     "axes: [tp]}"])]:
        name = f"whisper audio, mesh {mesh}"
        spec = work / f"whisper-{len(rules)}.yaml"
        spec.write_text(spec_text(name, config, ckpt, mesh, rules, 2))
        logits = work / (spec.stem + ".npy")
        run = run_executor(args.executor, spec, work / "whisper.jsonl", logits, work)
        failures += compare(name, run, np.load(logits), tokens, theirs)

    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print(f"media requests: {len(failures)} failure(s)" if failures else
          f"media requests: llava images and whisper audio within {TOLERANCE:g} of transformers on 1 and 2 ranks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

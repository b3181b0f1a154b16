#!/usr/bin/env python3
"""Differential test of executor/media against transformers 5.17 (docs/media.md).

Images: synthetic photographs (smooth gradients, shapes, noise) of every size and aspect and of
every Pillow mode a JPEG or PNG decodes to, EXIF orientations included, are preprocessed by
media_driver and by transformers' image processor given the file's path (what transformers gives
users here: CLIPImageProcessor -> CLIPImageProcessorPil without torchvision; load_image applies
the EXIF orientation and convert("RGB")). Pixel values must agree within 1e-5.

Audio: espeak-ng speech at 22.05 kHz, the same resampled to 16 kHz and 44.1 kHz, and the 16 kHz
clip written in every WAV sample format (and in stereo), through media_driver and through
python-soxr's resample + WhisperFeatureExtractor, both its default torch path and its NumPy path.
Log-mel features must agree within 1e-4. A clip longer than the chunk must be refused.

usage: media_reference_test.py <media_driver>   (prints the worst error per case; exit 1 on failure)
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
import zlib

import numpy as np
from PIL import Image

IMAGE_TOLERANCE = 1e-5
AUDIO_TOLERANCE = 1e-4

LLAVA_PREPROCESSOR = {
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "processor_class": "LlavaProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 336},
}


# --- images -------------------------------------------------------------------------------------

def photo(width, height, seed):
    """A photograph-like RGB array: smooth colour gradients, a few shapes with soft edges, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width, 1), y / max(height, 1)
    img = np.empty((height, width, 3))
    for c in range(3):
        img[..., c] = 128 + 90 * np.sin(2.5 * u + 1.7 * c + 3 * v * v) * np.cos(1.3 * v - 0.6 * c)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.35)
        colour = rng.uniform(0, 255, 3)
        d = np.sqrt((u - cx) ** 2 + (v - cy) ** 2)
        mask = np.clip((r - d) * 40, 0, 1)[..., None]
        img = img * (1 - mask) + colour * mask
    x0, x1 = sorted(rng.integers(0, max(width, 2), 2))
    y0, y1 = sorted(rng.integers(0, max(height, 2), 2))
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def png_bytes(samples, bit_depth, color_type):
    """A PNG written by hand (Pillow writes no 16-bit RGB / RGBA / LA and no 2-bit grey)."""
    height, width = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    rows = []
    for row in samples.reshape(height, width * channels):
        if bit_depth == 16:
            data = row.astype(">u2").tobytes()
        elif bit_depth == 8:
            data = row.astype(np.uint8).tobytes()
        else:
            per_byte = 8 // bit_depth
            padded = np.zeros(-(-len(row) // per_byte) * per_byte, np.uint8)
            padded[: len(row)] = row
            packed = np.zeros(len(padded) // per_byte, np.uint8)
            for i in range(per_byte):
                packed |= padded[i::per_byte] << (8 - bit_depth * (i + 1))
            data = packed.tobytes()
        rows.append(b"\0" + data)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def make_images(folder):
    """Writes the test images; returns their paths."""
    paths = []

    def save(name, image, **kwargs):
        path = os.path.join(folder, name)
        image.save(path, **kwargs)
        paths.append(path)

    def save_bytes(name, data):
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)

    # Every size and aspect, RGB.
    for i, (w, h) in enumerate([(640, 480), (480, 640), (1, 1), (1, 300), (300, 1), (2048, 1536),
                                (337, 199), (56, 56), (30, 20), (13, 7), (336, 336), (500, 337)]):
        rgb = Image.fromarray(photo(w, h, i))
        save(f"rgb_{w}x{h}.png", rgb)
        if w * h > 1:
            save(f"rgb_{w}x{h}.jpg", rgb, quality=90)
    rgb = Image.fromarray(photo(500, 375, 40))
    save("rgb_progressive_500x375.jpg", rgb, quality=85, progressive=True)
    save("rgb_444_500x375.jpg", rgb, quality=95, subsampling=0)
    save("rgb_422_500x375.jpg", rgb, quality=75, subsampling=1)
    save("rgb_1x1.jpg", Image.fromarray(photo(1, 1, 41)), quality=90)
    # Modes.
    grey = Image.fromarray(photo(333, 250, 50)).convert("L")
    save("l_333x250.jpg", grey, quality=90)
    save("l_333x250.png", grey)
    la = Image.fromarray(np.dstack([photo(200, 300, 51)[..., 0], photo(200, 300, 52)[..., 1]]), "LA")
    save("la_200x300.png", la)
    pal = Image.fromarray(photo(320, 240, 53)).quantize(colors=200)
    save("p_320x240.png", pal)
    save("p_transparent_320x240.png", pal, transparency=7)
    save("p_4bit_320x240.png", Image.fromarray(photo(320, 240, 54)).quantize(colors=16), bits=4)
    rgba = Image.fromarray(np.dstack([photo(310, 230, 55), photo(310, 230, 56)[..., 2]]), "RGBA")
    save("rgba_310x230.png", rgba)
    save("cmyk_200x150.jpg", Image.fromarray(np.dstack([photo(200, 150, 57), photo(200, 150, 58)[..., 0]]), "CMYK"),
         quality=90)
    save("bilevel_123x77.png", Image.fromarray(photo(123, 77, 59)).convert("1"))
    # 16-bit: grey ("I;16", clipped at 255 by convert), RGB, RGBA, LA (the high byte); 2-bit grey.
    ramp = (photo(250, 180, 60)[..., 0].astype(np.uint16) * 3)  # 0..765: some above 255
    save_bytes("i16_250x180.png", png_bytes(ramp, 16, 0))
    wide = photo(260, 190, 61).astype(np.uint16) * 257 + np.random.default_rng(1).integers(0, 257, (190, 260, 3)).astype(np.uint16)
    save_bytes("rgb16_260x190.png", png_bytes(wide, 16, 2))
    save_bytes("rgba16_260x190.png", png_bytes(np.dstack([wide, wide[..., :1]]), 16, 6))
    save_bytes("la16_260x190.png", png_bytes(wide[..., :2], 16, 4))
    save_bytes("grey2bit_99x45.png", png_bytes(photo(99, 45, 62)[..., 0] // 64, 2, 0))
    # EXIF orientations (JPEG and PNG), and an orientation given only in XMP.
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(f"orient{orientation}_120x80.jpg", Image.fromarray(photo(120, 80, 70 + orientation)), quality=92,
             exif=exif.tobytes())
    exif = Image.Exif()
    exif[0x0112] = 6
    save("orient6_150x90.png", Image.fromarray(photo(150, 90, 80)), exif=exif.tobytes())
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    save("xmp_orient8_140x100.jpg", Image.fromarray(photo(140, 100, 81)), quality=90, xmp=xmp)
    return paths


def run_driver(driver, args):
    result = subprocess.run([driver] + args, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"media_driver {' '.join(args[:4])} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def image_cases(driver, tmp, failures):
    from transformers import CLIPImageProcessor

    folder = os.path.join(tmp, "images")
    os.makedirs(folder)
    paths = make_images(folder)
    subset = [p for p in paths if os.path.basename(p) in
              ("rgb_640x480.jpg", "rgb_1x300.png", "rgb_13x7.jpg", "rgba_310x230.png", "rgb_2048x1536.jpg")]

    # (case, preprocessor_config.json or None for llava's defaults at image_size, image_size, images)
    configs = [
        ("tiny-llava defaults (56)", None, 56, paths),
        ("llava-1.5 preprocessor_config.json (336)", LLAVA_PREPROCESSOR, 336, paths),
    ]
    for name, resample in (("bilinear", 2), ("lanczos", 1), ("box", 4), ("hamming", 5)):
        configs.append((f"{name} resample (64)", dict(LLAVA_PREPROCESSOR, resample=resample, size={"shortest_edge": 64},
                                                     crop_size={"height": 64, "width": 64}), 64, subset))
    configs.append(("fixed 40x64 resize, no crop", dict(LLAVA_PREPROCESSOR, size={"height": 40, "width": 64},
                                                        do_center_crop=False), 0, subset))
    configs.append(("crop 56 over a 40 resize (zero padding)", dict(LLAVA_PREPROCESSOR, size={"shortest_edge": 40},
                                                                   crop_size={"height": 56, "width": 56}), 56, subset))
    configs.append(("no resize, no normalise", dict(LLAVA_PREPROCESSOR, do_resize=False, do_normalize=False,
                                                    crop_size={"height": 50, "width": 70}), 0, subset))

    # NOTE: AutoImageProcessor needs torchvision in transformers 5.17; CLIPImageProcessor (the
    # class llava-1.5's preprocessor_config.json names) falls back to CLIPImageProcessorPil.
    cls = type(CLIPImageProcessor.from_pretrained(write_model_dir(tmp, "cls", LLAVA_PREPROCESSOR))).__name__
    print(f"reference image processor: {cls}")
    for case, config, image_size, images in configs:
        model_dir = write_model_dir(tmp, f"m{len(case)}_{image_size}_{abs(hash(case))}", config)
        if config is None:
            defaults = dict(LLAVA_PREPROCESSOR, size={"shortest_edge": image_size},
                            crop_size={"height": image_size, "width": image_size})
            reference = CLIPImageProcessor(**{k: v for k, v in defaults.items() if k != "image_processor_type"})
        else:
            reference = CLIPImageProcessor.from_pretrained(model_dir)
        out_dir = os.path.join(tmp, "out_" + os.path.basename(model_dir))
        os.makedirs(out_dir)
        refused = run_driver(driver, ["images", model_dir, str(image_size), out_dir] + images)
        if refused:
            failures.append(f"images [{case}]: refused:\n{refused}")
            continue
        worst = (0.0, "")
        for path in images:
            expected = reference(images=[path], return_tensors="np")["pixel_values"][0]
            got = np.load(os.path.join(out_dir, os.path.basename(path) + ".npy"))
            if got.shape != expected.shape:
                failures.append(f"images [{case}] {os.path.basename(path)}: shape {got.shape} != {expected.shape}")
                continue
            err = float(np.max(np.abs(got - expected)))
            if err > IMAGE_TOLERANCE:
                failures.append(f"images [{case}] {os.path.basename(path)}: max error {err:.3g}")
            if err >= worst[0]:
                worst = (err, os.path.basename(path))
        where = worst[1] if worst[0] > 0 else "every file bit-exact"
        print(f"images [{case}]: {len(images)} files, max abs error {worst[0]:.3g} ({where})")


def write_model_dir(tmp, name, config):
    model_dir = os.path.join(tmp, name)
    os.makedirs(model_dir, exist_ok=True)
    if config is not None:
        with open(os.path.join(model_dir, "preprocessor_config.json"), "w") as f:
            json.dump(config, f)
    return model_dir


# --- audio --------------------------------------------------------------------------------------

def write_wav(path, samples, rate, sample_width):
    """PCM through the wave module: samples in [-1, 1) (a [frames, channels] or [frames] array)."""
    x = samples if samples.ndim == 2 else samples[:, None]
    if sample_width == 1:
        data = np.clip(np.round(x * 128) + 128, 0, 255).astype(np.uint8).tobytes()
    else:
        full = 2 ** (8 * sample_width - 1)
        ints = np.clip(np.round(x * full), -full, full - 1).astype(np.int64)
        data = b"".join(int(v).to_bytes(sample_width, "little", signed=True) for v in ints.reshape(-1)) \
            if sample_width == 3 else ints.astype(f"<i{sample_width}").tobytes()
    with wave.open(path, "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(sample_width)
        w.setframerate(rate)
        w.writeframes(data)


def write_float_wav(path, samples, rate, dtype):
    """IEEE-float WAV (format tag 3), written by hand: the wave module writes PCM only."""
    data = samples.astype(dtype).tobytes()
    width = np.dtype(dtype).itemsize
    fmt = struct.pack("<HHIIHHH", 3, 1, rate, rate * width, width, 8 * width, 0)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, len(samples))
            + b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def read_pcm16(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0, w.getframerate()


def espeak(path, text, speed):
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: the audio test needs it to make speech "
                         "(scripts/setup.sh installs it; CI installs it)")
    subprocess.run(["espeak-ng", "-s", str(speed), "-w", path, text], check=True)


def audio_cases(driver, tmp, failures):
    import soxr
    from transformers import WhisperFeatureExtractor
    from transformers.models.whisper import feature_extraction_whisper as fe_module

    folder = os.path.join(tmp, "audio")
    os.makedirs(folder)
    long22 = os.path.join(folder, "speech_22050.wav")
    espeak(long22, "The quick brown fox jumps over the lazy dog, while the sharding planner splits the weights.",
           170)
    short22 = os.path.join(folder, "short_22050.wav")
    espeak(short22, "hi there", 400)

    # (file, mono float32 samples as libsndfile / soundfile decode them, their rate)
    def derived(name, source, rate):
        x, r = read_pcm16(source)
        y = soxr.resample(x, r, rate)
        path = os.path.join(folder, name)
        write_wav(path, np.clip(y, -1, 32767 / 32768), rate, 2)
        return path

    long16 = derived("speech_16000.wav", long22, 16000)
    short16 = derived("short_16000.wav", short22, 16000)
    long44 = derived("speech_44100.wav", long22, 44100)
    x16, _ = read_pcm16(long16)
    formats = []
    for width in (1, 3, 4):
        path = os.path.join(folder, f"speech_16000_pcm{8 * width}.wav")
        write_wav(path, x16, 16000, width)
        full = 2 ** (8 * width - 1)
        q = np.clip(np.round(x16.astype(np.float64) * full), -full, full - 1)
        formats.append((path, (q / full).astype(np.float32), 16000))
    for dtype in (np.float32, np.float64):
        path = os.path.join(folder, f"speech_16000_{np.dtype(dtype).name}.wav")
        write_float_wav(path, x16 * 0.9, 16000, dtype)
        formats.append((path, (x16 * 0.9).astype(dtype).astype(np.float32), 16000))
    stereo = np.stack([x16, np.roll(x16, 80) * 0.5], axis=1)
    stereo_path = os.path.join(folder, "speech_16000_stereo.wav")
    write_wav(stereo_path, stereo, 16000, 2)
    formats.append((stereo_path, np.mean(np.round(stereo * 32768).astype(np.float32) / 32768.0, axis=1), 16000))

    def decoded(path):
        x, rate = read_pcm16(path)
        return path, x, rate

    configs = [
        ("tiny-whisper (16 mels, 1 s)", 16, 50, [decoded(short16), decoded(short22)]),
        ("whisper-base (80 mels, 30 s)", 80, 1500, [decoded(long16), decoded(long22), decoded(long44)] + formats),
        ("whisper-large-v3 (128 mels, 30 s)", 128, 1500, [decoded(long16), decoded(long22)]),
    ]
    torch_path = fe_module.is_torch_available
    for case, n_mels, positions, clips in configs:
        chunk_seconds = 2 * positions * 160 // 16000
        extractor = WhisperFeatureExtractor(feature_size=n_mels, chunk_length=chunk_seconds)
        out_dir = os.path.join(tmp, f"audio_out_{n_mels}_{positions}")
        os.makedirs(out_dir)
        refused = run_driver(driver, ["audio", str(n_mels), str(positions), out_dir] + [c[0] for c in clips])
        if refused:
            failures.append(f"audio [{case}]: refused:\n{refused}")
            continue
        worst = {"torch": (0.0, ""), "numpy": (0.0, "")}
        for path, samples, rate in clips:
            if rate != 16000:
                samples = soxr.resample(samples, rate, 16000)
            got = np.load(os.path.join(out_dir, os.path.basename(path) + ".npy"))
            for backend in ("torch", "numpy"):
                fe_module.is_torch_available = torch_path if backend == "torch" else (lambda: False)
                expected = extractor(samples, sampling_rate=16000, return_tensors="np").input_features[0]
                fe_module.is_torch_available = torch_path
                if got.shape != expected.shape:
                    failures.append(f"audio [{case}] {os.path.basename(path)}: shape {got.shape} != {expected.shape}")
                    continue
                err = float(np.max(np.abs(got - expected)))
                if err > AUDIO_TOLERANCE:
                    failures.append(f"audio [{case}] {os.path.basename(path)} vs the {backend} path: "
                                    f"max error {err:.3g}")
                if err >= worst[backend][0]:
                    worst[backend] = (err, os.path.basename(path))
        where = {b: worst[b][1] if worst[b][0] > 0 else "every file bit-exact" for b in worst}
        print(f"audio [{case}]: {len(clips)} files, max abs error {worst['torch'][0]:.3g} ({where['torch']}) "
              f"vs the torch path, {worst['numpy'][0]:.3g} ({where['numpy']}) vs the NumPy path")

    # A clip past the chunk is refused, naming the file, its duration and the limit.
    out = run_driver(driver, ["audio", "16", "50", tmp, long16])
    if not (out.startswith(f"REFUSED {long16} exit=1") and "s long, more than the 1.00 s" in out):
        failures.append(f"audio: a {len(x16) / 16000:.2f} s clip on a 1 s model was not refused as expected: {out!r}")
    else:
        print(f"audio: a {len(x16) / 16000:.2f} s clip on tiny-whisper (1 s) refused: {out.strip()}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    driver = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        image_cases(driver, tmp, failures)
        audio_cases(driver, tmp, failures)
    if failures:
        print(f"FAILED: {len(failures)} problem(s)")
        for f in failures:
            print("  " + f)
        return 1
    print("media_reference_test: all cases within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())

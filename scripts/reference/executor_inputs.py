"""The executor's deterministic inputs (executor/runtime/workload.cc), rebuilt bit for bit with
numpy: the one Python copy, imported by scripts/reference/hf_reference.py,
scripts/hf_forward_reference.py, scripts/gpu/hf_generate.py and bench/hf_peer.py. The
definitions are in hf_reference.py's docstring; `selftest` checks the vectorised generators
against the pure-Python splitmix64.
"""
import numpy as np

MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def splitmix64_np(x):
    """splitmix64 of a uint64 array (numpy wraps array arithmetic mod 2^64)."""
    u = np.uint64
    with np.errstate(over="ignore"):
        x = x + u(0x9E3779B97F4A7C15)
        x = (x ^ (x >> u(30))) * u(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> u(27))) * u(0x94D049BB133111EB)
        return x ^ (x >> u(31))


def counters(base, n):
    """uint64 array base + [0, n) mod 2^64."""
    with np.errstate(over="ignore"):
        return np.uint64(base & MASK) + np.arange(n, dtype=np.uint64)


def make_prompts(batch, tokens, vocab, seed):
    ids = splitmix64_np(counters(seed << 32, batch * tokens)) % np.uint64(vocab)
    return ids.astype(np.int64).reshape(batch, tokens)


def make_image_prompts(batch, image_tokens, text_tokens, vocab, image_token, seed):
    text = make_prompts(batch, text_tokens, vocab, seed)
    text[text == image_token] = (image_token + 1) % vocab
    return np.concatenate([np.full((batch, image_tokens), image_token, dtype=np.int64), text], axis=1)


def make_uniform_inputs(shape, seed):
    n = int(np.prod(shape))
    u = splitmix64_np(counters((seed << 32) + (1 << 30), n)) >> np.uint64(40)
    return (u.astype(np.float64) / 8388608.0 - 1.0).astype(np.float32).reshape(shape)


def check_uniform(values, seed):
    """Spot-checks a vectorized make_uniform_inputs draw against the pure-Python definition."""
    flat = values.reshape(-1)
    for i in sorted({0, 1, flat.size // 2, flat.size - 1}):
        want = np.float32((splitmix64(((seed << 32) + (1 << 30) + i) & MASK) >> 40) / 8388608.0 - 1.0)
        if flat[i] != want:
            raise SystemExit(f"make_uniform_inputs mismatch at element {i}: {flat[i]} != {want}")


def selftest():
    seed = 3
    p = make_prompts(3, 5, 1000, seed)
    want = [[splitmix64(((seed << 32) + r * 5 + t) & MASK) % 1000 for t in range(5)] for r in range(3)]
    assert p.tolist() == want, (p.tolist(), want)
    img = make_image_prompts(2, 4, 6, 7, 3, seed)
    text = [[splitmix64(((seed << 32) + r * 6 + t) & MASK) % 7 for t in range(6)] for r in range(2)]
    want = [[3] * 4 + [4 if t == 3 else t for t in row] for row in text]
    assert img.tolist() == want, (img.tolist(), want)
    x = make_uniform_inputs((2, 3, 4), seed)
    want = [np.float32((splitmix64(((seed << 32) + (1 << 30) + i) & MASK) >> 40) / 8388608.0 - 1.0)
            for i in range(24)]
    assert x.reshape(-1).tolist() == [float(w) for w in want]
    big = (1 << 64) - 5  # wrap-around of the counter
    assert int(splitmix64_np(counters(big, 8))[7]) == splitmix64((big + 7) & MASK)
    print("selftest: input generators match the pure-Python definitions")

#!/usr/bin/env python3
"""Markdown tables and SVG bar charts (hand-written SVG, no matplotlib) for the GPU benchmarks.

  bench_report.py vision OUT_PREFIX RUN.json...   vision-bench.sh's runs, files named
      vision-{data|tensor}-i{images per request}-n{GPUs}.json (`executor run --format json`):
      encoder images/s = requests * images per request / time_by_kind_s["encoder"] (the encoder's
      seconds, mean over ranks; the gather after a data-parallel tower is in "collectives"), TTFT
      median, output tokens/s.
  bench_report.py cross OUT_PREFIX LABEL=BENCH.json...   cross_attention_bench's
      --benchmark_format=json outputs (LABEL names the run, e.g. the host), split vs full_qkv.
Writes OUT_PREFIX.md and OUT_PREFIX.svg and prints the markdown.
"""
import html
import json
import os
import re
import sys

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"]


def svg_bars(panels, title):
    """panels: [{"title", "unit", "groups": [label], "series": [name], "values": [[v or None]]}]
    -> an SVG document: one grouped bar chart per panel, side by side, a shared legend."""
    pw, ph, top, left, bottom = 360, 260, 56, 58, 64
    width = left + len(panels) * (pw + 30)
    height = top + ph + bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{html.escape(title)}</text>']
    series = panels[0]["series"] if panels else []
    for k, name in enumerate(series):
        x = left + k * 140
        out.append(f'<rect x="{x}" y="28" width="12" height="12" fill="{COLORS[k % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="38">{html.escape(name)}</text>')
    for p, panel in enumerate(panels):
        x0, y0 = left + p * (pw + 30), top
        vals = [v for row in panel["values"] for v in row if v is not None]
        vmax = max(vals) if vals else 1.0
        vmax = vmax * 1.12 if vmax > 0 else 1.0
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 + 4}" text-anchor="middle" font-size="12">'
                   f'{html.escape(panel["title"])} ({html.escape(panel["unit"])})</text>')
        base = y0 + ph
        out.append(f'<line x1="{x0}" y1="{base}" x2="{x0 + pw}" y2="{base}" stroke="black"/>')
        out.append(f'<line x1="{x0}" y1="{y0 + 12}" x2="{x0}" y2="{base}" stroke="black"/>')
        for t in range(5):
            v = vmax * t / 4
            y = base - (ph - 12) * t / 4
            out.append(f'<line x1="{x0 - 3}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="9">{v:.3g}</text>')
        ng, ns = len(panel["groups"]), len(series)
        gw = pw / max(ng, 1)
        bw = gw * 0.8 / max(ns, 1)
        for g, label in enumerate(panel["groups"]):
            gx = x0 + g * gw + gw * 0.1
            for s in range(ns):
                v = panel["values"][g][s]
                if v is None:
                    continue
                h = (ph - 12) * v / vmax
                out.append(f'<rect x="{gx + s * bw:.1f}" y="{base - h:.1f}" width="{bw * 0.92:.1f}" '
                           f'height="{h:.1f}" fill="{COLORS[s % len(COLORS)]}"><title>{html.escape(label)}, '
                           f'{html.escape(series[s])}: {v:.4g}</title></rect>')
                out.append(f'<text x="{gx + s * bw + bw * 0.46:.1f}" y="{base - h - 2:.1f}" text-anchor="middle" '
                           f'font-size="8">{v:.3g}</text>')
            for i, line in enumerate(label.split("\n")):
                out.append(f'<text x="{gx + gw * 0.4:.1f}" y="{base + 14 + 12 * i}" text-anchor="middle" '
                           f'font-size="10">{html.escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(prefix, md, svg):
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write(md)
    with open(prefix + ".svg", "w") as f:
        f.write(svg)
    print(md, end="")


def vision(prefix, files):
    runs = {}
    for path in files:
        m = re.match(r"vision-(\w+)-i(\d+)-n(\d+)\.json$", os.path.basename(path))
        if not m or not os.path.exists(path) or os.path.getsize(path) == 0:
            continue
        mode, images, n = m.group(1), int(m.group(2)), int(m.group(3))
        j = json.load(open(path))
        kinds = j.get("time_by_kind_s", {})
        items = j["requests"] * images
        enc = kinds.get("encoder")
        runs[(n, images, mode)] = {
            "items": items, "encoder_s": enc, "images_per_s": items / enc if enc else None,
            "collectives_s": kinds.get("collectives"), "projector_s": kinds.get("projector"),
            "ttft_ms": j["ttft_ms"]["median"], "tpot_ms": j["tpot_ms"]["median"],
            "tok_s": j["output_tokens_per_s"], "requests": j["requests"], "dtype": j.get("dtype")}
    if not runs:
        sys.exit("bench_report: no vision runs found")
    modes = sorted({k[2] for k in runs}, key=lambda m: (m != "data", m))
    groups = sorted({(k[0], k[1]) for k in runs})
    fmt = lambda v, f: "-" if v is None else format(v, f)
    md = ["| GPUs | images / request | vision tower | images | encoder s | encoder images/s | projector s | "
          "collectives s | TTFT median ms | TPOT median ms | output tok/s |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, images in groups:
        for mode in modes:
            r = runs.get((n, images, mode))
            if r is None:
                md.append(f"| {n} | {images} | {mode} | - | - | - | - | - | - | - | failed |")
                continue
            md.append(f"| {n} | {images} | {mode} | {r['items']} | {fmt(r['encoder_s'], '.4f')} | "
                      f"{fmt(r['images_per_s'], '.1f')} | {fmt(r['projector_s'], '.4f')} | {fmt(r['collectives_s'], '.4f')} | "
                      f"{r['ttft_ms']:.1f} | {r['tpot_ms']:.2f} | {r['tok_s']:.0f} |")
    if "data" in modes and "tensor" in modes:
        md += ["", "| GPUs | images / request | encoder images/s, data / tensor | TTFT, data / tensor |", "|---|---|---|---|"]
        for n, images in groups:
            d, t = runs.get((n, images, "data")), runs.get((n, images, "tensor"))
            if d and t and d["images_per_s"] and t["images_per_s"]:
                md.append(f"| {n} | {images} | {d['images_per_s'] / t['images_per_s']:.2f}x | "
                          f"{d['ttft_ms'] / t['ttft_ms']:.2f}x |")
    md = "\n".join(md) + "\n"
    labels = [f"{n} GPUs\n{images} img/req" for n, images in groups]
    get = lambda key: [[(runs.get((n, i, m)) or {}).get(key) for m in modes] for n, i in groups]
    panels = [{"title": "encoder throughput", "unit": "images/s", "groups": labels, "series": modes,
               "values": get("images_per_s")},
              {"title": "TTFT median", "unit": "ms", "groups": labels, "series": modes, "values": get("ttft_ms")},
              {"title": "output throughput", "unit": "tokens/s", "groups": labels, "series": modes,
               "values": get("tok_s")}]
    batch = next(iter(runs.values()))["requests"]
    title = f"llava-1.5-7b (bf16), vision tower data vs tensor, language model tensor; batch {batch}"
    write(prefix, md, svg_bars(panels, title))


def cross(prefix, args):
    rows = {}
    labels = []
    for arg in args:
        label, _, path = arg.rpartition("=")
        label = label or os.path.basename(path)
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            continue
        j = json.load(open(path))
        ctx = j.get("context", {})
        labels.append((label, ctx.get("device", "?"), ctx.get("size", "?")))
        for b in j.get("benchmarks", []):
            m = re.match(r"cross_attention/(prefill|decode)/(split|full_qkv)/tp:(\d+)", b["name"])
            if not m or b.get("run_type", "iteration") != "iteration":
                continue
            scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
            rows[(label, m.group(1), int(m.group(3)), m.group(2))] = {
                "us": b["real_time"] * scale, "gflop": b.get("proj_GFLOP"), "weight_mb": b.get("proj_weight_MB"),
                "heads": b.get("local_heads")}
    if not rows:
        sys.exit("bench_report: no cross_attention_bench results found")
    md = []
    for label, device, size in labels:
        md.append(f"**{label}**: {device}, {size}")
        md.append("")
    md += ["| run | phase | TP | heads / rank | split µs | full QKV µs | full / split | projection GFLOP split / full | "
           "projection weights MB split / full |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({k[:3] for k in rows}, key=lambda k: (k[0], k[1] != "prefill", k[2]))
    for label, phase, tp in keys:
        s, f = rows.get((label, phase, tp, "split")), rows.get((label, phase, tp, "full_qkv"))
        if not s or not f:
            continue
        md.append(f"| {label} | {phase} | {tp} | {s['heads']:.0f} | {s['us']:.1f} | {f['us']:.1f} | "
                  f"{f['us'] / s['us']:.2f}x | {s['gflop']:.3g} / {f['gflop']:.3g} | "
                  f"{s['weight_mb']:.3g} / {f['weight_mb']:.3g} |")
    md += ["", "Both variants end with the same row-parallel out_proj and the same all_reduce of its "
           "partial sums (not timed): the difference lies entirely in the q/k/v projections."]
    md = "\n".join(md) + "\n"
    panels = []
    for phase in ("prefill", "decode"):
        ks = [k for k in keys if k[1] == phase]
        panels.append({"title": f"cross-attention {phase}", "unit": "µs per call", "series": ["split", "full QKV"],
                       "groups": [f"{k[0]}\nTP{k[2]}" if len(labels) > 1 else f"TP{k[2]}" for k in ks],
                       "values": [[(rows.get(k + ("split",)) or {}).get("us"), (rows.get(k + ("full_qkv",)) or {}).get("us")]
                                  for k in ks]})
    write(prefix, md, svg_bars(panels, "whisper-large-v3 cross-attention per rank: split q + fused kv vs full QKV"))


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("vision", "cross"):
        sys.exit(__doc__)
    (vision if sys.argv[1] == "vision" else cross)(sys.argv[2], sys.argv[3:])


if __name__ == "__main__":
    main()

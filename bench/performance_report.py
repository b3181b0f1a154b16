#!/usr/bin/env python3
"""The report of bench/performance.sh: reads OUT/calibrate.json and one JSON per run (`executor run
--format json`, or bench/hf_peer.py's line), writes OUT/performance.json, the Markdown page DOC and
the SVG chart beside it (DOC with .svg).

Usage: performance_report.py OUT DOC DEVICE CONFIG DTYPE PROMPT NEW RUN...
"""
import datetime
import html
import json
import os
import subprocess
import sys


def gpu_name(device):
    if device != "cuda":
        return "CPU"
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, check=True).stdout.strip().splitlines()
        return f"{len(names)} x {names[0]}" if names else "CUDA"
    except (OSError, subprocess.CalledProcessError):
        return "CUDA"


def commit():
    # NOTE: a copy of the tree on a GPU host may carry a stale .git; SHARDPLAN_COMMIT names the
    # commit that was copied.
    if os.environ.get("SHARDPLAN_COMMIT"):
        return os.environ["SHARDPLAN_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def shapes(config):
    """The Llama-style shapes the bounds need, from config.json."""
    with open(config) as f:
        c = json.load(f)
    c = c.get("text_config", c)
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    return {"hidden": c["hidden_size"], "inter": c["intermediate_size"], "layers": c["num_hidden_layers"],
            "q": heads * head_dim, "kv": c.get("num_key_value_heads", heads) * head_dim, "vocab": c["vocab_size"]}


def prefill_flops(s, batch, prompt):
    """Matmul FLOPs of a prefill: the projections of every token, causal attention (half of the
    L x L scores and of p @ v), the LM head on each request's last token."""
    per_token = 2 * s["layers"] * (s["hidden"] * (s["q"] + 2 * s["kv"]) + s["q"] * s["hidden"] +
                                   3 * s["hidden"] * s["inter"])
    attention = 2 * s["layers"] * batch * prompt * prompt * s["q"]
    return per_token * batch * prompt + attention + 2 * batch * s["hidden"] * s["vocab"]


def kv_bytes_read(s, batch, prompt, new, element):
    """KV-cache bytes a decode step reads on average: the filled rows only (prompt + half the new tokens)."""
    return 2 * s["layers"] * s["kv"] * element * batch * (prompt + (new - 1) / 2)


def load_runs(out, names, gbps, tflops, s, element, new):
    runs = []
    for name in names:
        with open(os.path.join(out, name + ".json")) as f:
            j = json.loads(f.read().strip().splitlines()[-1] if name.startswith("hf-") else f.read())
        if name.startswith("prefill-"):
            flops = prefill_flops(s, j["requests"], j["prompt_tokens"])
            runs.append({"name": name, "kind": "prefill", "who": f"executor TP{j['world_size']}",
                         "batch": j["requests"], "prompt": j["prompt_tokens"], "ms": j["duration_s"] * 1e3,
                         "tflops": flops / j["duration_s"] / 1e12, "peak_tflops": tflops})
            continue
        if name.startswith("long-"):
            wbytes = max(j["weight_bytes_read"])
            kv = kv_bytes_read(s, j["requests"], j["prompt_tokens"], new, element)
            runs.append({"name": name, "kind": "long", "who": f"executor TP{j['world_size']}", "batch": j["requests"],
                         "prompt": j["prompt_tokens"], "ms_per_step": j["tpot_ms"]["median"],
                         "tokens_per_s": j["output_tokens_per_s"], "weight_bytes_per_rank": wbytes, "kv_bytes": kv,
                         "bound_ms": (wbytes + kv) / (gbps * 1e9) * 1e3,
                         "cuda_graph": j.get("cuda_graphs", {}).get("decode", False)})
            continue
        if name.startswith("executor-"):
            wbytes = max(j["weight_bytes_read"])
            runs.append({"name": name, "who": f"executor TP{j['world_size']}", "batch": j["requests"],
                         "ranks": j["world_size"], "ms_per_step": j["tpot_ms"]["median"],
                         "ttft_ms": j["ttft_ms"]["median"], "tokens_per_s": j["output_tokens_per_s"],
                         "weight_bytes_per_rank": wbytes, "bound_ms": wbytes / (gbps * 1e9) * 1e3,
                         "cuda_graph": j.get("cuda_graphs", {}).get("decode", False),
                         "capture_ms": j.get("cuda_graphs", {}).get("capture_ms", 0.0)})
        else:
            runs.append({"name": name, "who": j["peer"], "batch": j["batch"], "ranks": 1,
                         "ms_per_step": j["ms_per_step"], "ttft_ms": j["ttft_ms"], "tokens_per_s": j["tokens_per_s"],
                         "versions": {"transformers": j["transformers"], "torch": j["torch"]}})
    return runs


def svg_chart(runs, title):
    batches = sorted({r["batch"] for r in runs})
    rows = [(b, r) for b in batches for r in runs if r["batch"] == b]
    width, left, row_h, top = 860, 300, 26, 50
    height = top + row_h * len(rows) + 16 * len(batches) + 40
    scale = max(r["ms_per_step"] for _, r in rows) * 1.1
    px = lambda ms: left + (width - left - 30) * ms / scale
    colors = {"executor": "#2b6cb0", "transformers eager": "#a0aec0", "transformers static-compile": "#dd6b20"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           f'<text x="{left}" y="40" fill="#555">ms per decode step (shorter is faster); | = bandwidth bound</text>']
    y = top
    last = None
    for b, r in rows:
        if b != last:
            y += 16
            out.append(f'<text x="8" y="{y}" font-weight="bold">batch {b}</text>')
            last = b
        color = colors["executor"] if r["who"].startswith("executor") else colors.get(r["who"], "#718096")
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{html.escape(r["who"])}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{px(r["ms_per_step"]) - left:.1f}" height="{row_h - 8}" '
                   f'fill="{color}"/>')
        out.append(f'<text x="{px(r["ms_per_step"]) + 4:.1f}" y="{y + 15}">{r["ms_per_step"]:.2f}</text>')
        if "bound_ms" in r:
            x = px(r["bound_ms"])
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 1}" y2="{y + row_h - 3}" stroke="black" '
                       f'stroke-width="2"/>')
        y += row_h
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    out, doc, device, config, dtype, prompt, new = sys.argv[1:8]
    names = sys.argv[8:]
    with open(os.path.join(out, "calibrate.json")) as f:
        cal = json.load(f)
    bw = {"GBps": cal["memory_GBps"]}
    element = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
    everything = load_runs(out, names, cal["memory_GBps"], cal["matmul_tflops"], shapes(config), element, int(new))
    runs = [r for r in everything if "kind" not in r]
    extra = [r for r in everything if "kind" in r]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = next((r["versions"] for r in runs if "versions" in r), {})
    result = {"date": when, "device": gpu_name(device), "commit": commit(), "config": os.path.basename(config),
              "dtype": dtype, "prompt": int(prompt), "new": int(new), "bandwidth_GBps": bw["GBps"],
              "matmul_tflops": cal["matmul_tflops"], "versions": versions, "runs": everything}
    with open(os.path.join(out, "performance.json"), "w") as f:
        json.dump(result, f, indent=1)

    svg_path = os.path.splitext(doc)[0] + ".svg"
    title = f"{os.path.basename(config)} {dtype}, prompt {prompt}, {new} new tokens, {result['device']}"
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    with open(svg_path, "w") as f:
        f.write(svg_chart(runs, title))

    def peer(batch, who):
        return next((r for r in runs if r["batch"] == batch and r["who"] == who), None)

    lines = ["# Performance: the executor against its peers", "",
             "Produced by `bench/performance.sh` (one invocation runs everything below on the same device(s), "
             "the same random weights and the same prompts). Rerun: "
             f"`bench/performance.sh --device {device}`.", "",
             f"- date: {when}; device: {result['device']}; commit {result['commit']}",
             f"- model: {os.path.basename(config)} (random weights), {dtype}; prompt {prompt} tokens, {new} new tokens, "
             "greedy",
             f"- peers: transformers {versions.get('transformers', '?')} on torch {versions.get('torch', '?')}, eager "
             "and with a static KV cache (its automatic torch.compile of the decode step on CUDA)",
             f"- bound: the rank's weight bytes / the copy bandwidth measured in the same run ({bw['GBps']:.0f} GB/s); "
             "the KV cache read is not counted (short contexts)", "",
             "| run | batch | ms / decode step | tokens/s | time to first token ms | x bound | "
             "vs transformers eager | vs transformers compiled |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        xb = f"{r['ms_per_step'] / r['bound_ms']:.2f}" if "bound_ms" in r else ""
        eager = peer(r["batch"], "transformers eager")
        comp = peer(r["batch"], "transformers static-compile")
        def ratio(p):
            if not p or not r["who"].startswith("executor"):
                return ""
            x = p["ms_per_step"] / r["ms_per_step"]
            return f"{x:.2f}x faster" if x >= 1 else f"{1 / x:.2f}x slower"
        who = r["who"] + (" (CUDA graph)" if r.get("cuda_graph") else "")
        lines.append(f"| {who} | {r['batch']} | {r['ms_per_step']:.3f} | {r['tokens_per_s']:.1f} | "
                     f"{r['ttft_ms']:.1f} | {xb} | {ratio(eager)} | {ratio(comp)} |")
    lines += ["", f"![ms per decode step]({os.path.basename(svg_path)})", ""]
    if extra:
        lines += ["## Long context and prefill (the same run)", "",
                  f"Long context: the bound adds the KV cache rows a step reads (the filled part: the prompt and, on "
                  f"average, half the new tokens) to the weights, at {bw['GBps']:.0f} GB/s. Prefill (new tokens 0): "
                  f"its matmul FLOPs (projections, causal attention, the LM head on the last tokens) over its time, "
                  f"against the {dtype} matmul peak measured in the same run (square GEMMs of "
                  f"{cal['matmul_n']}: {cal['matmul_tflops']:.1f} TFLOP/s).", "",
                  "| run | batch | prompt | ms | x bound or % of peak |", "|---|---|---|---|---|"]
        for r in extra:
            if r["kind"] == "long":
                lines.append(f"| {r['who']} decode{' (CUDA graph)' if r.get('cuda_graph') else ''} | {r['batch']} | "
                             f"{r['prompt']} | {r['ms_per_step']:.3f} per step | {r['ms_per_step'] / r['bound_ms']:.2f}x "
                             f"the bound ({r['bound_ms']:.3f} ms) |")
            else:
                lines.append(f"| {r['who']} prefill | {r['batch']} | {r['prompt']} | {r['ms']:.1f} | "
                             f"{r['tflops']:.1f} TFLOP/s = {100 * r['tflops'] / r['peak_tflops']:.0f}% of the peak |")
        lines.append("")
    with open(doc, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[9:]))
    print(f"performance: wrote {doc}, {svg_path} and {os.path.join(out, 'performance.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()

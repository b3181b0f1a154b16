#!/usr/bin/env bash
# Tokenizer benchmark: encode throughput (tokens/s, MB/s) of executor/text's Tokenizer against
# Hugging Face `tokenizers` in Python, both on one thread (RAYON_NUM_THREADS=1,
# TOKENIZERS_PARALLELISM=false), on the same corpus: the differential test's generated strings
# (tests/executor/text/tokenizer_reference.py: many scripts, emoji, code, whitespace runs,
# special-token text). `tokenizers` is timed with encode_batch and with one encode per string.
# Every number is the best of --repeats passes after a first (cold cache) pass; ids are checked
# equal. Writes OUT/tokenizer.md (a markdown table) and OUT/tokenizer.json.
#
#   bench/tokenizer.sh [--bench PATH] [--tokenizer DIR] [--python PATH] [--strings N] [--repeats N] [--out DIR]
# Example: bench/tokenizer.sh --bench build-text/tests/executor/text/tokenizer_bench
set -euo pipefail
bench=build/tests/executor/text/tokenizer_bench
tokenizer=build/models/smollm2-135m-instruct
python=.venv/bin/python3
strings=20000
repeats=5
out=build/bench-tokenizer
while (($#)); do
  case "$1" in
    --bench) bench=$2; shift 2 ;;
    --tokenizer) tokenizer=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --strings) strings=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "tokenizer.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bench" ]] || { echo "tokenizer.sh: no tokenizer_bench at $bench (cmake --build BUILD --target tokenizer_bench)" >&2; exit 2; }
[[ -f "$tokenizer/tokenizer.json" ]] || { echo "tokenizer.sh: no $tokenizer/tokenizer.json (scripts/setup.sh)" >&2; exit 2; }
mkdir -p "$out"
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

"$python" - "$out/corpus.jsonl" "$strings" <<'PY'
import json, sys
sys.path.insert(0, "tests/executor/text")
from tokenizer_reference import test_strings
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for s in test_strings(int(sys.argv[2])):
        f.write(json.dumps(s, ensure_ascii=False) + "\n")
PY

"$bench" "$tokenizer" "$out/corpus.jsonl" "$repeats" > "$out/ours.json"

"$python" - "$out" "$tokenizer" "$repeats" <<'PY'
import json, os, platform, sys, time
import tokenizers
from tokenizers import Tokenizer
out, folder, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
corpus = [json.loads(line) for line in open(os.path.join(out, "corpus.jsonl"), encoding="utf-8")]
nbytes = sum(len(s.encode()) for s in corpus)
ours = json.load(open(os.path.join(out, "ours.json")))

def timed(fn):
    fn()  # cold pass
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result

tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
batch_s, batch = timed(lambda: tok.encode_batch(corpus, add_special_tokens=True))
single_s, single = timed(lambda: [tok.encode(s, add_special_tokens=True) for s in corpus])
tokens = sum(len(e.ids) for e in batch)
assert tokens == sum(len(e.ids) for e in single)
if tokens != ours["tokens"]:
    sys.exit(f"tokenizer.sh: token counts differ: ours {ours['tokens']}, tokenizers {tokens}")
rows = [
    ("executor/text (C++), encode per string", ours["best_s"]),
    (f"tokenizers {tokenizers.__version__} (Python), encode_batch", batch_s),
    (f"tokenizers {tokenizers.__version__} (Python), encode per string", single_s),
]
result = {"corpus_strings": len(corpus), "corpus_bytes": nbytes, "tokens": tokens, "cpu": platform.processor() or platform.machine(),
          "rows": [{"name": n, "seconds": s, "tokens_per_s": tokens / s, "mb_per_s": nbytes / s / 1e6} for n, s in rows],
          "ours_cold_s": ours["cold_s"], "ours_load_s": ours["load_s"]}
json.dump(result, open(os.path.join(out, "tokenizer.json"), "w"), indent=1)
lines = [f"Encode throughput, one thread, {os.path.basename(folder.rstrip('/'))}'s tokenizer.json, "
         f"{len(corpus)} strings ({nbytes / 1e6:.2f} MB, {tokens} tokens); best of {repeats} passes after a cold one.",
         "", "| encoder | seconds | tokens/s | MB/s | vs tokenizers encode_batch |", "|---|---:|---:|---:|---:|"]
for n, s in rows:
    lines.append(f"| {n} | {s:.3f} | {tokens / s / 1e6:.2f} M | {nbytes / s / 1e6:.1f} | {batch_s / s:.2f}x |")
lines.append("")
lines.append(f"executor/text cold pass (empty word cache): {ours['cold_s']:.3f} s; loading tokenizer.json: {ours['load_s']:.3f} s.")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "tokenizer.md"), "w").write(text)
print(text)
PY

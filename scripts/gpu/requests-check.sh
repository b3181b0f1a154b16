#!/usr/bin/env bash
# On a GPU host: `executor run --requests` on CUDA with CUDA graphs. A ragged batch (prompts of 3
# to 300 tokens, max_tokens 1 to 64) gives each request the tokens it gets alone (tiny-llama,
# float32: the decode kernel skips each request's padding) while finished requests leave it (the
# batch steps down through CUDA-graph sizes to 1); tiny-mixtral's dense MoE decode runs in
# a CUDA graph and passes --verify.
#   scripts/gpu/requests-check.sh EXECUTOR WORK_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
executor=$(realpath "${1:?executor}") work=${2:?work directory}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$work"
spec() {  # name config mesh modules batch
  cat >"$work/$1.yaml" <<YAML
version: 1
name: $1
model: {config: $PWD/models/configs/$2, checkpoint: $work/${2%.json}, dtype: float32}
mesh: {$3}
$4
workload: {batch: ${5:-2}, prompt_tokens: 8, new_tokens: 4}
YAML
}
for c in tiny-llama.json tiny-mixtral.json; do
  "$executor" make-checkpoint --config "models/configs/$c" --out "$work/${c%.json}" --seed 1 --dtype float32 >/dev/null
done
spec llama tiny-llama.json "one: 1" ""
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
lengths, max_tokens = [3, 17, 300, 64, 150, 9], [1, 64, 7, 33, 12, 50]
state = 12345
with open(f"{work}/ragged.jsonl", "w") as all_requests:
    for i, (n, m) in enumerate(zip(lengths, max_tokens)):
        ids = []
        for _ in range(n):
            state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
            ids.append((state >> 33) % 1024)
        line = json.dumps({"prompt_token_ids": ids, "max_tokens": m}) + "\n"
        all_requests.write(line)
        open(f"{work}/alone-{i}.jsonl", "w").write(line)
PY
"$executor" run --spec "$work/llama.yaml" --device cuda --requests "$work/ragged.jsonl" --output "$work/ragged.out" \
  --format json >"$work/ragged.json"
failures=0
for i in 0 1 2 3 4 5; do
  "$executor" run --spec "$work/llama.yaml" --device cuda --requests "$work/alone-$i.jsonl" --output "$work/alone-$i.out" >/dev/null
  a=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[$i])['token_ids'])" "$work/ragged.out")
  b=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['token_ids'])" "$work/alone-$i.out")
  if [[ $a == "$b" ]]; then echo "ragged request $i: same tokens as alone"; else echo "FAIL ragged request $i: $a vs $b"; failures=$((failures + 1)); fi
done
python3 -c "
import json,sys; j=json.load(open(sys.argv[1])); b=j['decode_batch']
print('ragged batch decode step:', 'CUDA graph' if j['cuda_graphs']['decode'] else 'eager', '- batch', ', '.join(str(x) for i, x in enumerate(b) if i == 0 or x != b[i - 1]), 'over', len(b), 'decode steps')
sys.exit(0 if j['cuda_graphs']['decode'] and b[-1] == 1 else 1)" "$work/ragged.json" || failures=$((failures + 1))
spec mixtral tiny-mixtral.json "tp: 1" "" 4  # 4 tokens x top-2 >= 8 experts: dense
"$executor" run --spec "$work/mixtral.yaml" --device cuda --verify --format json >"$work/mixtral.json" || failures=$((failures + 1))
python3 -c "
import json,sys; j=json.load(open(sys.argv[1]))
print('tiny-mixtral dense MoE decode:', 'CUDA graph' if j['cuda_graphs']['decode'] else 'eager', '--verify', 'passed' if j['verify']['passed'] else 'FAILED')
sys.exit(0 if j['cuda_graphs']['decode'] and j['verify']['passed'] else 1)" "$work/mixtral.json" || failures=$((failures + 1))
echo "requests-check: $failures failure(s)"
exit $((failures > 0))

#!/usr/bin/env bash
# The planner CLI's contract (spec-format.md §4): exit codes 0/1/2, diagnostics on stderr as
# FILE:LINE:COL: severity: message, one summary line per valid spec, --format json, -o FILE.
# Usage: cli_test.sh PATH/TO/planner   (run from the repository root)
set -u
planner="$1"
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect() {  # expect NAME WANT_EXIT CMD...
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [[ $got -ne $want ]]; then
    echo "FAIL $name: exit $got, want $want"; cat "$tmp/err"; failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}
contains() {  # contains NAME FILE TEXT
  if ! grep -qF -- "$3" "$2"; then
    echo "FAIL $1: '$3' not in output:"; cat "$2"; failures=$((failures + 1))
  fi
}

d=tests/planner/data/check
expect "valid spec" 0 "$planner" check specs/llama-3-8b-tp4.yaml
contains "one summary line" "$tmp/out" "specs/llama-3-8b-tp4.yaml: ok"
[[ $(wc -l <"$tmp/out") -eq 1 && ! -s "$tmp/err" ]] || { echo "FAIL valid spec prints one line only"; failures=$((failures + 1)); }

expect "several valid specs" 0 "$planner" check specs/llama-3-8b-tp4.yaml specs/whisper-large-v3-tp2.yaml
[[ $(wc -l <"$tmp/out") -eq 2 ]] || { echo "FAIL two summary lines"; failures=$((failures + 1)); }

expect "invalid spec" 1 "$planner" check $d/heads-not-divisible.yaml
contains "diagnostic format" "$tmp/err" "$d/heads-not-divisible.yaml:8:11: error: attention 'tensor' over [tp] (size 3): 8 heads are not divisible by 3"

expect "worst of several" 1 "$planner" check specs/llama-3-8b-tp4.yaml $d/unknown-axis.yaml
expect "missing spec" 2 "$planner" check $d/does-not-exist.yaml
expect "missing config" 2 "$planner" check $d/config-missing.yaml
expect "yaml syntax" 1 "$planner" check $d/yaml-syntax-error.yaml
expect "usage: no subcommand" 2 "$planner"
expect "usage: unknown option" 2 "$planner" check --frobnicate specs/llama-3-8b-tp4.yaml
expect "usage: bad format" 2 "$planner" check --format xml specs/llama-3-8b-tp4.yaml
expect "warning only" 0 "$planner" check $d/rule-matches-nothing.yaml
contains "warning" "$tmp/err" "warning: rule 0 (kind moe) matches no module"

expect "json diagnostics" 1 "$planner" check --format json $d/five-mistakes.yaml
python3 - "$tmp/out" <<'PY' || failures=$((failures + 1))
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, list) and len(d) == 5, d
for e in d:
    assert set(e) == {"file", "line", "column", "severity", "message"}, e
assert [e["line"] for e in d] == [9, 12, 16, 19, 21], d
print("ok   json diagnostics parse")
PY

expect "plan text" 0 "$planner" plan specs/llama-3-8b-tp4.yaml
contains "plan text rows" "$tmp/out" "model.layers.*.self_attn"
expect "plan json to file" 0 "$planner" plan specs/llama-3-8b-tp4.yaml --format json -o "$tmp/plan.json"
python3 -c "import json,sys; p=json.load(open('$tmp/plan.json')); assert p['world_size']==4 and len(p['comms'])==66" \
  && echo "ok   plan json file" || { echo "FAIL plan json file"; failures=$((failures + 1)); }
expect "plan of invalid spec" 1 "$planner" plan $d/heads-not-divisible.yaml
expect "plan to unwritable path" 2 "$planner" plan specs/llama-3-8b-tp4.yaml -o "$tmp/no/such/dir/plan.json"
[[ ! -e "$tmp/no" ]] || { echo "FAIL nothing written"; failures=$((failures + 1)); }

# What check passes, the executor runs: a plan the executor cannot bind is an error at its rule.
expect "check binds the plan" 1 "$planner" check tests/planner/data/bind/tp-before-dp-attention-data.yaml
contains "binding error at the rule" "$tmp/err" "tp-before-dp-attention-data.yaml:14:5: error: the executor cannot run this plan: the local slice of requests in front of model.layers.0.self_attn"
expect "plan refuses it too" 1 "$planner" plan tests/planner/data/bind/tp-before-dp-attention-data.yaml

# -o never replaces what is not a regular file (output_file.h): a symlink keeps pointing at its
# target, a FIFO stays a FIFO, /dev/stdout writes to the shell's redirection, the spec itself is refused.
spec=specs/llama-3-8b-tp4.yaml
echo old >"$tmp/target.txt"; ln -s target.txt "$tmp/link.txt"
expect "plan -o symlink" 0 "$planner" plan $spec -o "$tmp/link.txt"
[[ -L "$tmp/link.txt" ]] && grep -q "model.layers" "$tmp/target.txt" && echo "ok   symlink written through" \
  || { echo "FAIL -o symlink was replaced or its target not written"; failures=$((failures + 1)); }
mkfifo "$tmp/fifo"; (cat "$tmp/fifo" >"$tmp/from-fifo") & reader=$!
expect "plan -o fifo" 0 timeout 60 "$planner" plan $spec -o "$tmp/fifo"
wait $reader
[[ -p "$tmp/fifo" ]] && grep -q "model.layers" "$tmp/from-fifo" && echo "ok   fifo written through" \
  || { echo "FAIL -o fifo was replaced or not written through"; failures=$((failures + 1)); }
"$planner" plan $spec -o /dev/stdout >"$tmp/stdout.txt" 2>"$tmp/err"
grep -q "model.layers" "$tmp/stdout.txt" && echo "ok   -o /dev/stdout" \
  || { echo "FAIL -o /dev/stdout"; cat "$tmp/err"; failures=$((failures + 1)); }
cp $spec "$tmp/spec.yaml"; sed -i "s|config: ../|config: $PWD/|" "$tmp/spec.yaml"; cp "$tmp/spec.yaml" "$tmp/spec.orig"
expect "plan -o its own spec" 2 "$planner" plan "$tmp/spec.yaml" -o "$tmp/spec.yaml"
contains "own spec refused" "$tmp/err" "never overwritten"
cmp -s "$tmp/spec.yaml" "$tmp/spec.orig" || { echo "FAIL the spec was modified"; failures=$((failures + 1)); }
ln -s "$tmp/missing/x.dot" "$tmp/dangling.dot"
expect "render -o dangling symlink" 2 "$planner" render $spec -o "$tmp/dangling.dot"
[[ -L "$tmp/dangling.dot" && ! -e "$tmp/missing" ]] || { echo "FAIL dangling link replaced"; failures=$((failures + 1)); }

# Hostile inputs: clear errors, never a hang or a crash (docs/reliability.md).
mkfifo "$tmp/fifo.yaml"
expect "a FIFO as spec" 2 timeout 10 "$planner" check "$tmp/fifo.yaml"
contains "FIFO named" "$tmp/err" "cannot read the spec file: a FIFO, not a regular file"
printf 'version: 1\nmodel: {config: /dev/zero}\nmesh: {tp: 1}\n' >"$tmp/zero.yaml"
expect "/dev/zero as config" 2 timeout 10 "$planner" check "$tmp/zero.yaml"
contains "device named" "$tmp/err" "a character device, not a regular file"
mkfifo "$tmp/fifo.json"
printf 'version: 1\nmodel: {config: fifo.json}\nmesh: {tp: 1}\n' >"$tmp/fifocfg.yaml"
expect "a FIFO as config" 2 timeout 10 "$planner" check "$tmp/fifocfg.yaml"
python3 -c "print('{\"a\":' + '['*70000 + ']'*70000 + '}')" >"$tmp/deep.json"
printf 'version: 1\nmodel: {config: deep.json}\nmesh: {tp: 1}\n' >"$tmp/deep.yaml"
expect "a config nested 70,000 deep" 2 "$planner" check "$tmp/deep.yaml"
contains "nesting named" "$tmp/err" "nests deeper than 64 levels"
mkdir "$tmp/cfgdir"
printf 'version: 1\nmodel: {config: cfgdir}\nmesh: {tp: 1}\n' >"$tmp/dircfg.yaml"
expect "a directory as config" 2 "$planner" check "$tmp/dircfg.yaml"
contains "directory named" "$tmp/err" "cannot read model.config 'cfgdir' (resolved to '$tmp/cfgdir'): a directory, not a regular file"
printf '{"model_type": "llama",\n  "x": [1, 2,, 3]}' >"$tmp/badjson.json"
printf 'version: 1\nmodel: {config: badjson.json}\nmesh: {tp: 1}\n' >"$tmp/badjson.yaml"
expect "a config that is not JSON" 2 "$planner" check "$tmp/badjson.yaml"
contains "JSON error's position named" "$tmp/err" "is not valid JSON: [json.exception.parse_error.101] parse error at line 2, column 14"
# 25 '**' segments in one rule path against every module: matched in linear time, not exponential.
python3 -c "print('version: 1\nmodel: {config: $PWD/models/configs/tiny-llama.json}\nmesh: {tp: 2}\nmodules:\n  - path: \"' + '.'.join(['**'] * 25) + '.self_attnx\"\n    mode: tensor\n    axes: [tp]')" >"$tmp/stars.yaml"
expect "25 '**' segments in a rule path" 0 timeout 5 "$planner" check "$tmp/stars.yaml"
contains "the rule that matches nothing named" "$tmp/err" "matches no module of this llama model"
python3 -c "print('version: 1\n? ' + 'k'*60000 + '\n: 1\nmodel: {config: x.json}\nmesh: {tp: 1}')" >"$tmp/longkey.yaml"
expect "a key of 60,000 characters" 1 "$planner" check "$tmp/longkey.yaml"
contains "long key named" "$tmp/err" "a key of 60000 characters (at most 256)"
python3 -c "print('version: 1\nname: ' + 'a'*60000 + '\nmodel: {config: x.json}\nmesh: {tp: 1}')" >"$tmp/longvalue.yaml"
expect "a value of 60,000 characters" 1 "$planner" check "$tmp/longvalue.yaml"
contains "long value named" "$tmp/err" "a value of 60000 characters at name (at most 4096)"
head -c 2000000 /dev/zero | tr '\0' '#' >"$tmp/huge.yaml"
expect "a 2 MB spec" 2 "$planner" check "$tmp/huge.yaml"
contains "size limit named" "$tmp/err" "more than the 1.0 MiB a spec may have"
printf 'version: 1\nname: caf\xe9\nmodel: {config: x.json}\nmesh: {tp: 1}\n' >"$tmp/latin1.yaml"
expect "a value that is not UTF-8" 1 "$planner" check "$tmp/latin1.yaml"
contains "UTF-8 named" "$tmp/err" "latin1.yaml:2:7: error: a value that is not valid UTF-8 at name (byte 4 of it)"
sed 's/"hidden_size": [0-9]*/"hidden_size": 4611686018427387904/' models/configs/tiny-llama.json >"$tmp/huge-hidden.json"
printf 'version: 1\nmodel: {config: huge-hidden.json}\nmesh: {tp: 1}\n' >"$tmp/huge-hidden.yaml"
expect "a size past the limit" 1 "$planner" check "$tmp/huge-hidden.yaml"
contains "size limit named" "$tmp/err" "hidden_size 4611686018427387904 is more than the 16777216 a size a config may give"
sed 's/"num_hidden_layers": [0-9]*/"num_hidden_layers": 1000000/' models/configs/tiny-llama.json >"$tmp/many-layers.json"
printf 'version: 1\nmodel: {config: many-layers.json}\nmesh: {tp: 1}\n' >"$tmp/many-layers.yaml"
expect "a million layers" 1 "$planner" check "$tmp/many-layers.yaml"
contains "layer limit named" "$tmp/err" "num_hidden_layers 1000000 is more than the 4096 layers a config may give"
expect "--version" 0 "$planner" --version
contains "version printed" "$tmp/out" "shardplan"

# The ranks view of a plan whose every rank holds the same slices (data-parallel).
printf 'version: 1\nmodel: {config: %s/models/configs/tiny-llama.json}\nmesh: {dp: 4}\nbatch_axes: [dp]\n' "$PWD" >"$tmp/dp4.yaml"
expect "render ranks of a data-parallel plan" 0 "$planner" render "$tmp/dp4.yaml" -o "$tmp/dp4.svg" --view ranks
contains "the table is drawn" "$tmp/dp4.svg" "all ranks"

# Memory per rank against the device (the spec's `hardware`, or --hardware): one memory model
# with the sweep's.
h=tests/planner/data/hardware
expect "hardware: does not fit" 1 "$planner" check $h/llama-70b-one-h100.yaml
contains "memory error at the hardware key" "$tmp/err" "$h/llama-70b-one-h100.yaml:7:11: error: rank 0 needs 135.9 GiB (weights 131.4 GiB, KV cache 2.8 GiB, prefill activations 1.7 GiB) but the device (H100) gives a rank 67.1 GiB"
expect "hardware: unknown preset in the spec" 1 "$planner" check $h/unknown-hardware.yaml
contains "unknown hardware at its key" "$tmp/err" "$h/unknown-hardware.yaml:4:11: error: hardware 'tpu-v9' is neither a file nor a preset"
expect "--hardware fits" 0 "$planner" check specs/llama-3-70b-tp8.yaml --hardware h200
contains "memory summary" "$tmp/out" "memory per rank: 20.0 GiB of 118.2 GiB usable on H200"
expect "--hardware: unknown" 2 "$planner" check specs/llama-3-70b-tp8.yaml --hardware tpu-v9
expect "plan --hardware" 0 "$planner" plan specs/llama-3-70b-tp8.yaml --hardware h100
contains "plan says how full" "$tmp/out" "memory per rank: 20.0 GiB of 67.1 GiB usable on H100"
expect "plan json --hardware" 0 "$planner" plan specs/llama-3-70b-tp8.yaml --hardware h100 --format json
contains "plan json device" "$tmp/out" '"usable_bytes"'
{ sed 's/hardware: h100/hardware: h200/; s/one: 1/tp: 2/' $h/llama-70b-one-h100.yaml | sed "s|config: ../../../../models|config: $PWD/models|"
  printf 'modules:\n  - {kind: [embedding, attention, mlp, lm_head], mode: tensor, axes: [tp]}\n'; } >"$tmp/l70-tp2.yaml"
expect "two H200s hold it" 0 "$planner" check "$tmp/l70-tp2.yaml"

# planner sweep: the top specs, the tables and the chart; every written spec checks; bad inputs exit 2.
expect "sweep -o" 0 "$planner" sweep --config models/configs/llama-3-8b.json --world 4 --batch 8 --top 3 -o "$tmp/sweep"
for f in rank-01.yaml rank-03.yaml sweep.txt sweep.csv sweep.json pareto.svg; do
  [[ -s "$tmp/sweep/$f" ]] || { echo "FAIL sweep did not write $f"; failures=$((failures + 1)); }
done
expect "swept specs check" 0 "$planner" check "$tmp/sweep/rank-01.yaml" "$tmp/sweep/rank-02.yaml" "$tmp/sweep/rank-03.yaml"
expect "sweep: missing config" 2 "$planner" sweep --config "$tmp/none.json" --world 2
expect "sweep: unknown hardware" 2 "$planner" sweep --config models/configs/llama-3-8b.json --world 2 --hardware tpu-v9
contains "unknown hardware named" "$tmp/err" "presets: h100, h200"
expect "sweep: world 0" 2 "$planner" sweep --config models/configs/llama-3-8b.json --world 0

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all planner CLI checks passed"

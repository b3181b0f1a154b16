#!/usr/bin/env bash
# Regenerates docs/specs/ from specs/: for every spec NAME.yaml a page NAME.md with its plan graph
# (NAME.svg), the weight slices per rank of its first layer (NAME.ranks.svg), the text plan and how
# to read them, and an index README.md. Everything in docs/specs/ is generated: edit this script
# (or the planner), not the pages.
#
# Usage: scripts/render-docs.sh [--check] [--planner PATH]
#   --check    regenerate into a temporary folder and compare with docs/specs/; exit 1 and list
#              what is stale (CI runs this), 0 when everything is up to date.
#   --planner  the planner binary; default $PLANNER, else build/planner/planner, else
#              build-render/planner/planner.
# The SVGs are laid out with Graphviz's built-in font metrics, so they are the same bytes on any
# machine with the same Graphviz (Debian 12: 2.42.2).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

check=0
planner=${PLANNER:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --planner) planner=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "render-docs.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$planner" ]; then
  for p in build/planner/planner build-render/planner/planner; do
    if [ -x "$p" ]; then planner=$p; break; fi
  done
fi
if [ -z "$planner" ] || [ ! -x "$planner" ]; then
  echo "render-docs.sh: no planner binary; build it or pass --planner PATH" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# What is particular about each shipped spec; a spec without notes gets none.
notes() {
  case "$1" in
    llama-3-70b-tp8) cat <<'NOTES'
Every module is tensor-parallel over the 8 GPUs, so each holds an eighth of every weight; the 8
KV heads give one KV head per GPU. The price is on the red arrows: an `all_reduce` over all 8 GPUs
after the embedding, after every attention block and after every MLP (two per layer, 80 layers),
and an `all_gather` of the vocabulary-split logits at the end.
NOTES
      ;;
    llama-3-8b-dp2-tp4) cat <<'NOTES'
Two replicas (`dp`) of a 4-way tensor-parallel model. Requests are split over `dp` at the input
(no communication), and every collective runs inside one `tp` group: a row of the mesh grid,
[0,1,2,3] or [4,5,6,7]. In the slices picture ranks 0 and 4 share a column: the two replicas hold
the same slices. Compare with [llama-3-8b-tp4](llama-3-8b-tp4.md): the same weights per GPU,
twice the GPUs, twice the requests.
NOTES
      ;;
    llama-3-8b-tp4) cat <<'NOTES'
The plain tensor-parallel baseline: every module split over the 4 GPUs, two `all_reduce` per
layer, the logits gathered at the end. [llama-3-8b-dp2-tp4](llama-3-8b-dp2-tp4.md) runs two of
these side by side.
NOTES
      ;;
    llava-1.5-7b-vision-dp-tp4) cat <<'NOTES'
Three stages with three different modes. The vision tower (green) is data-parallel: each GPU
encodes its quarter of the images with the whole tower, with no collective inside it. The
projector (grey) is replicated; its image features are gathered once (`all_gather`, prefill only)
where they join the text tokens in front of layer 0. The language model (blue) is
tensor-parallel, with two `all_reduce` per layer in every decode step.
NOTES
      ;;
    mixtral-8x7b-attn-dp8-ep8) cat <<'NOTES'
Attention is data-parallel (green): attention weights are copied to every GPU and each GPU keeps
the KV cache of its own requests. The MoE is split by expert (purple): one expert per GPU. The
tokens travel to their experts' GPUs and back: an `all_to_all` dispatch in front of every MoE
and a combine after it. There is no `all_reduce` at all. Compare with
[mixtral-8x7b-ep8](mixtral-8x7b-ep8.md): more weight bytes per GPU, much less traffic per
decode step.
NOTES
      ;;
    mixtral-8x7b-ep8) cat <<'NOTES'
Embedding, attention and head are tensor-parallel (blue) over the same 8 GPUs that hold one
expert each (purple). Every GPU sees every token, so no token has to travel: each GPU runs its
expert on the tokens routed to it and the partial MoE outputs are summed with an `all_reduce`,
like the attention's. Compare with [mixtral-8x7b-attn-dp8-ep8](mixtral-8x7b-attn-dp8-ep8.md).
NOTES
      ;;
    whisper-large-v3-tp2) cat <<'NOTES'
An encoder-decoder. The audio encoder is tensor-parallel: its `all_reduce`s (the loop on the
encoder box) run in prefill only, once per request. The dashed
arrow is the cross-attention input: every decoder layer reads the encoder states through a fused
k/v projection computed once per request and cached. The decoder has three `all_reduce` per
layer: after self-attention, cross-attention and the MLP.
NOTES
      ;;
  esac
}

spec_title() { sed -n 's/^name: *//p' "$1" | head -1; }

for spec in specs/*.yaml; do
  name=$(basename "$spec" .yaml)
  "$planner" render "$spec" -o "$out/$name.svg"
  "$planner" render "$spec" --view ranks -o "$out/$name.ranks.svg"
  plan_text=$("$planner" plan "$spec")
  title=$(spec_title "$spec")
  {
    echo "<!-- Generated by scripts/render-docs.sh from specs/$name.yaml: do not edit. -->"
    echo "# ${title:-$name}"
    echo
    echo "[\`specs/$name.yaml\`](../../specs/$name.yaml) · drawn with"
    echo "\`planner render specs/$name.yaml -o $name.svg\` · [all specs](README.md)"
    echo
    echo "![The plan of $name: modules in data-flow order, coloured by mode, collectives in red]($name.svg)"
    echo
    if [ -n "$(notes "$name")" ]; then
      echo "## What this plan does"
      echo
      notes "$name"
      echo
    fi
    cat <<'GUIDE'
## How to read the picture

- **Boxes are modules**, top to bottom in the order the data flows: inputs (text tokens, images,
  audio clips), the encoder and projector, the layers, the head, the logits. Each box says the
  module's kind and path, its **mode** and mesh axes (`tensor [tp]`), what the mode splits
  (`heads ÷ 4`), and the weight bytes every rank holds for it.
- **The colour is the mode**: grey `replicate` (a full copy everywhere), blue `tensor` (weights
  split, partial results combined), green `data` (requests or images split, weights whole),
  purple `expert` (experts split, tokens sent to them).
- **A dashed frame `layers 0–31 ×32`** is a run of identical layers drawn once; the arrow that
  goes back up is the step from one layer to the next.
- **Red arrows are communication.** Each is labelled with the collective, the mesh axes it runs
  over, how often it runs per forward pass (`×32`) and the bytes each rank sends **per decode
  step** (one new token for every request). Image and audio features only move in
  prefill: those arrows say `in prefill only`. Grey arrows move no data between ranks.
- **The mesh grid** numbers the ranks: the last axis runs across, so each row is one group
  over it; the collectives over that axis stay inside a row.

## Which rank holds what

For one layer (`--view ranks`, the first decoder layer unless `--layer N`), every tensor and the
slice of it each rank loads: `rows 0–255` is dimension 0, `cols` dimension 1, ranges inclusive,
`—` nothing. Ranks that hold the same slices of everything share a column.

GUIDE
    echo "![Which slice of each weight every rank holds, first layer of $name]($name.ranks.svg)"
    echo
    echo "## The spec"
    echo
    echo '```yaml'
    cat "$spec"
    echo '```'
    echo
    echo "## The text plan"
    echo
    echo "\`planner plan specs/$name.yaml\`:"
    echo
    echo '```text'
    printf '%s\n' "$plan_text"
    echo '```'
  } > "$out/$name.md"
done

{
  echo "<!-- Generated by scripts/render-docs.sh: do not edit. -->"
  echo "# The shipped specs, drawn"
  echo
  echo "One page per spec in [\`specs/\`](../../specs): the plan graph (\`planner render\`), which"
  echo "slice of each weight every rank holds, the spec and the text plan. Regenerate with"
  echo "\`scripts/render-docs.sh\`; CI runs \`scripts/render-docs.sh --check\`."
  echo
  echo "| spec | plan |"
  echo "|---|---|"
  for spec in specs/*.yaml; do
    name=$(basename "$spec" .yaml)
    echo "| [$name]($name.md) | $(spec_title "$spec") |"
  done
} > "$out/README.md"

if [ "$check" = 1 ]; then
  stale=0
  for f in "$out"/*; do
    base=$(basename "$f")
    if ! cmp -s "$f" "docs/specs/$base"; then
      echo "stale: docs/specs/$base" >&2
      stale=1
    fi
  done
  for f in docs/specs/*; do
    [ -e "$f" ] || continue
    if [ ! -e "$out/$(basename "$f")" ]; then
      echo "stale: docs/specs/$(basename "$f") (no spec makes it any more)" >&2
      stale=1
    fi
  done
  if [ "$stale" = 1 ]; then
    echo "render-docs.sh: docs/specs/ is out of date: run scripts/render-docs.sh and commit the result" >&2
    exit 1
  fi
  echo "docs/specs/ is up to date"
  exit 0
fi

mkdir -p docs/specs
for f in docs/specs/*; do
  [ -e "$f" ] || continue
  [ -e "$out/$(basename "$f")" ] || rm -f "$f"
done
cp "$out"/* docs/specs/
echo "wrote docs/specs/ ($(ls "$out" | wc -l) files)"

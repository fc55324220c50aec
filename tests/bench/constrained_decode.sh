#!/usr/bin/env bash
# tests/bench/constrained_decode.sh: decode tokens/s of `tiergate slm run` under a JSON Schema
# against the same run without one (greedy, same prompt, same length), alternated ROUNDS times
# so the machine's drift hits both; prints each pair and the median ratio.
#
#   tests/bench/constrained_decode.sh                       smollm2-135m Q8_0 (made with mkmodel)
#   MODEL=F SCHEMA=S N=200 ROUNDS=7 THREADS=2 tests/bench/constrained_decode.sh
# Not part of CI (a benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TG=$BUILD/tiergate
N=${N:-200}
ROUNDS=${ROUNDS:-7}
THREADS=${THREADS:-2}
SCHEMA=${SCHEMA:-tests/bench/schema/contact.json}
MODEL=${MODEL:-${TMPDIR:-/tmp}/tiergate-bench-models/smollm2-135m-q8_0.gguf}
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }
[ -x "$TG" ] || { echo "no $TG (ninja -C $BUILD)" >&2; exit 1; }
[ -f "$MODEL" ] || { mkdir -p "$(dirname "$MODEL")"; "$TG" slm mkmodel --shape smollm2-135m --type q8_0 -o "$MODEL" >&2; }
run() { "$TG" slm run -m "$MODEL" -p "Give me the JSON." -n "$N" --temp 0 -t "$THREADS" --json "$@" 2>/dev/null; }
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  u=$(run --ignore-eos | jq .timings.gen_tokens_per_s)
  out=$(run --json-schema "$SCHEMA")
  c=$(jq .timings.gen_tokens_per_s <<<"$out")
  ok=$(jq .constraint_satisfied <<<"$out")
  ratio=$(awk -v u="$u" -v c="$c" 'BEGIN { printf "%.3f", c / u }')
  ratios+=("$ratio")
  printf 'round %d: unconstrained %.1f tok/s, constrained %.1f tok/s (%s tokens, satisfied %s): %.0f %%\n' \
    "$r" "$u" "$c" "$(jq '.tokens | length' <<<"$out")" "$ok" "$(awk -v x="$ratio" 'BEGIN { print 100 * x }')"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "median constrained / unconstrained: %.0f %% (%d rounds)\n", 100 * a[int((NR + 1) / 2)], NR }'

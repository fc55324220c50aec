#!/bin/sh
# test_schema_gen.sh: generation soundness. Generates under every N-th dev-suite schema (and the
# regexes and choices in gen_regexes.txt / gen_choices.txt) with a tiny random model and with
# stories260K at several seeds, then validates every output independently (test_schema_gen.py:
# python3-jsonschema with formats, re.fullmatch, membership). Any invalid or incomplete output
# fails the test.
# usage: test_schema_gen.sh GEN_CONSTRAINED_BINARY
#   TIERGATE_GEN_EVERY=N (default 40: about 146 schemas per model), TIERGATE_GEN_SEEDS (default 3).
#   The full run (every schema; minutes in a release build):
#     TIERGATE_GEN_EVERY=1 meson test -C build-rel slm_schema_gen --timeout-multiplier 0
set -u
gen=$1
shared=${TIERGATE_SHARED_DIR:-../shared}
src=${TIERGATE_SOURCE_DIR:-.}
every=${TIERGATE_GEN_EVERY:-40}
seeds=${TIERGATE_GEN_SEEDS:-3}
suite="$shared/data/jsonschema/maskbench-dev.jsonl"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

py=
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import jsonschema' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "SKIP: python3-jsonschema is not installed (apt-get install python3-jsonschema)"
  exit 77
fi

rc=0
i=0
for model in tiny-llama-F32.gguf stories260K.gguf; do
  "$gen" "$shared/models/$model" "$suite" "$tmp/$model.jsonl" --every "$every" --offset "$i" \
    --seeds "$seeds" --max-tokens 128 --regexes "$src/tests/slm/gen_regexes.txt" \
    --choices "$src/tests/slm/gen_choices.txt" || { echo "FAIL: generation with $model"; rc=1; }
  i=$((i + 7))
done
"$py" "$src/tests/slm/test_schema_gen.py" "$suite" "$tmp"/*.jsonl || rc=1
exit $rc

#!/bin/sh
# test_slm_tools.sh: the `tiergate slm` command frame and `slm info` on real files from ../shared.
# usage: test_slm_tools.sh TIERGATE_BINARY   (meson passes the built binary)
set -u
bin=$1
shared=${TIERGATE_SHARED_DIR:-../shared}
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE WANT_SUBSTRING -- command...
expect() {
  code=$1; want=$2; shift 2
  checks=$((checks + 1))
  "$@" >"$tmp/out" 2>&1
  rc=$?
  if [ "$rc" != "$code" ]; then
    echo "FAIL: '$*' exited $rc, expected $code"; sed -n 1,20p "$tmp/out"; fails=$((fails + 1)); return
  fi
  if [ -n "$want" ] && ! grep -qF -- "$want" "$tmp/out"; then
    echo "FAIL: '$*' output lacks '$want'"; sed -n 1,40p "$tmp/out"; fails=$((fails + 1))
  fi
}

# dispatch and help
expect 2 "usage: tiergate slm <tool>" "$bin" slm
expect 0 "mkmodel" "$bin" slm --help
expect 2 "unknown tool 'frobnicate'" "$bin" slm frobnicate
for t in info tokenize run bench mkmodel quantize; do
  checks=$((checks + 1))
  "$bin" slm $t --help >"$tmp/out" 2>&1
  rc=$?
  # a tool not written yet answers "not implemented" (exit 1); a written one prints its usage
  if [ $rc = 0 ]; then grep -q "usage: tiergate slm $t" "$tmp/out" || { echo "FAIL: $t --help"; fails=$((fails + 1)); }
  elif ! grep -q "not implemented" "$tmp/out"; then echo "FAIL: $t --help exited $rc"; cat "$tmp/out"; fails=$((fails + 1)); fi
done

# info
expect 0 "architecture:  qwen3" "$bin" slm info -m "$shared/models/tiny-qwen3-Q4_K_M.gguf"
expect 0 "file type:     Q4_K_M (15)" "$bin" slm info -m "$shared/models/tiny-qwen3-Q4_K_M.gguf"
expect 0 "Q6_K      3 tensors" "$bin" slm info -m "$shared/models/tiny-qwen3-Q4_K_M.gguf"
expect 0 "blk.0.attn_q_norm.weight         F32    [64]" "$bin" slm info -m "$shared/models/tiny-qwen3-Q4_K_M.gguf"
expect 0 "4 heads, 2 kv heads (GQA 2), head dim 64" "$bin" slm info -m "$shared/models/tiny-qwen3-Q4_K_M.gguf"
expect 0 "blk.1.ffn_up.weight" "$bin" slm info --tensors -m "$shared/models/tiny-llama-Q8_0.gguf"
expect 0 "parameters:    0.29 M" "$bin" slm info -m "$shared/models/stories260K.gguf"
expect 0 "vocab:         llama (SentencePiece), 512 tokens" "$bin" slm info -m "$shared/models/stories260K.gguf"
expect 0 "151936 tokens, 151387 merges, pre-tokenizer 'qwen2'" "$bin" slm info "$shared/vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf"
expect 0 "eot 151645 \"<|im_end|>\"" "$bin" slm info "$shared/vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf"
expect 0 "chat template: phi3-legacy (269 bytes in the file)" "$bin" slm info -m "$shared/vocab/ggml-vocab-phi-3.gguf"
expect 0 "tokenizer     SentencePiece, 32064 tokens (loaded by the engine)" "$bin" slm info -m "$shared/vocab/ggml-vocab-phi-3.gguf"
expect 0 "engine:        supported" "$bin" slm info -m "$shared/models/tiny-qwen2-Q4_K_M.gguf"
expect 0 "none in the file (the engine falls back to chatml)" "$bin" slm info -m "$shared/models/tiny-llama-Q5_1.gguf"
expect 0 "tokenizer.ggml.add_eos_token (bool) = false" "$bin" slm info --kv -m "$shared/vocab/ggml-vocab-phi-3.gguf"
expect 1 "not a GGUF file" "$bin" slm info -m "$shared/models/README.md"
expect 1 "No such file" "$bin" slm info -m "$tmp/none.gguf"
expect 2 "-m FILE is required" "$bin" slm info
expect 2 "unknown option '--bogus'" "$bin" slm info --bogus
expect 2 "--model needs a value" "$bin" slm info --model
head -c 2000 "$shared/models/tiny-llama-F16.gguf" > "$tmp/trunc.gguf"
expect 1 "runs past the end of the file" "$bin" slm info -m "$tmp/trunc.gguf"

# mkmodel's plan at the real shapes: the weight sizes llama.cpp reports for the same models
# (../shared/data/bench/llamacpp.md), which pins the per-tensor type choices of the mixes
for spec in "smollm2-135m f16 256.6" "smollm2-135m q8_0 136.4" "smollm2-135m q4_0 85.8" \
            "smollm2-135m q4_k_m 98.9" "qwen2.5-0.5b f16 942.4" "qwen2.5-0.5b q8_0 500.8" \
            "qwen2.5-0.5b q4_0 330.2" "qwen2.5-0.5b q4_k_m 373.7"; do
  set -- $spec
  expect 0 "$3 MiB of weights" "$bin" slm mkmodel --shape "$1" --type "$2" --dry-run
done
expect 0 "blk.0.attn_q_norm.weight" "$bin" slm mkmodel --shape qwen3-0.6b --type q8_0 --dry-run
expect 0 "rope_freqs.weight" "$bin" slm mkmodel --shape llama3.2-1b --type q4_k_m --dry-run
expect 2 "unknown shape 'gpt-2'" "$bin" slm mkmodel --shape gpt-2 --type f16 -o "$tmp/x.gguf"
expect 2 "unknown type 'q3_k'" "$bin" slm quantize "$shared/models/tiny-llama-F32.gguf" "$tmp/x.gguf" q3_k
expect 2 "needs IN OUT TYPE" "$bin" slm quantize "$shared/models/tiny-llama-F32.gguf"
expect 1 "quantize reads only F32, F16 and BF16" "$bin" slm quantize "$shared/models/tiny-llama-Q8_0.gguf" "$tmp/x.gguf" q4_0
expect 0 "Q5_K_M), 0 tensors fell back" "$bin" slm quantize -v "$shared/models/tiny-qwen3-F32.gguf" "$tmp/q.gguf" q5_k_m
expect 0 "Q5_K_M (17)" "$bin" slm info -m "$tmp/q.gguf"
# a mkmodel file: loads in the engine, template recognised
"$bin" slm mkmodel --shape smollm2-135m --type q4_0 --layers 1 -q -o "$tmp/sm.gguf"
expect 0 "chat template: chatml" "$bin" slm info -m "$tmp/sm.gguf"
expect 0 "engine:        supported" "$bin" slm info -m "$tmp/sm.gguf"

echo "$((checks - fails)) passed, $fails failed"
[ $fails = 0 ]

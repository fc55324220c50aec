#!/bin/sh
# test_slm_tokenize.sh: `tiergate slm tokenize` on real files from ../shared (vocabulary-only
# files and a full model), its output formats, flags and errors.
# usage: test_slm_tokenize.sh TIERGATE_BINARY   (meson passes the built binary)
set -u
bin=$1
shared=${TIERGATE_SHARED_DIR:-../shared}
spm=$shared/vocab/ggml-vocab-llama-spm.gguf
qwen=$shared/vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf
llama3=$shared/vocab/ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE WANT -- command...: exit code CODE and output (stdout+stderr) containing WANT
expect() {
  code=$1; want=$2; shift 2
  checks=$((checks + 1))
  "$@" >"$tmp/out" 2>&1
  rc=$?
  if [ "$rc" != "$code" ]; then
    echo "FAIL: '$*' exited $rc, expected $code"; sed -n 1,20p "$tmp/out"; fails=$((fails + 1)); return
  fi
  if [ -n "$want" ] && ! grep -qF -- "$want" "$tmp/out"; then
    echo "FAIL: '$*' output lacks '$want'"; sed -n 1,20p "$tmp/out"; fails=$((fails + 1))
  fi
}

# exact: stdout of the command must be exactly WANT
exact() {
  want=$1; shift
  checks=$((checks + 1))
  got=$("$@" 2>&1)
  if [ "$got" != "$want" ]; then
    echo "FAIL: '$*'"; echo "  got:  $got"; echo "  want: $want"; fails=$((fails + 1))
  fi
}

# --ids: a JSON list; BOS as the vocabulary asks (llama SPM: yes; Qwen: no; Llama 3: yes)
exact "[1, 15043, 3186]" "$bin" slm tokenize -m "$spm" --ids "Hello world"
exact "[15043, 3186]" "$bin" slm tokenize -m "$spm" --ids --no-bos Hello world
exact "[9707, 1879]" "$bin" slm tokenize -m "$qwen" --ids "Hello world"
exact "[128000, 9906, 1917]" "$bin" slm tokenize -m "$llama3" --ids -p "Hello world"
exact "[]" "$bin" slm tokenize -m "$qwen" --ids ""
# special tokens parsed by default, not with --no-parse-special; escapes processed
exact "[151644, 872, 198, 13048, 151645]" "$bin" slm tokenize -m "$qwen" --ids '<|im_start|>user\nHi<|im_end|>'
exact "[27, 91, 318, 4906, 91, 29]" "$bin" slm tokenize -m "$qwen" --ids --no-parse-special '<|im_start|>'
exact "[198]" "$bin" slm tokenize -m "$qwen" --ids '\n'
exact "[1699]" "$bin" slm tokenize -m "$qwen" --ids --no-escape '\n'
# a full model works the same way (stories260K: the reference prompt ids of its golden file)
exact "[1, 403, 407, 261, 378]" "$bin" slm tokenize -m "$shared/models/stories260K.gguf" --ids "Once upon a time"
# pieces, as llama-tokenize prints them
expect 0 "     1 -> '<s>'" "$bin" slm tokenize -m "$spm" "Hello world"
expect 0 " 15043 -> ' Hello'" "$bin" slm tokenize -m "$spm" "Hello world"
expect 0 "  9707 -> 'Hello'" "$bin" slm tokenize -m "$qwen" Hello
expect 0 "Total number of tokens: 2" "$bin" slm tokenize -m "$qwen" --show-count "Hello world"
# the llama SPM vocabulary has no llama emoji: four byte tokens, each not UTF-8 on its own
expect 0 "   243 -> '\xF0' (not valid UTF-8 on its own)" "$bin" slm tokenize -m "$spm" "$(printf '\360\237\246\231')"
# from a file and from stdin (taken literally: no escape processing)
printf 'Hello world' > "$tmp/in.txt"
exact "[9707, 1879]" "$bin" slm tokenize -m "$qwen" --ids -f "$tmp/in.txt"
checks=$((checks + 1))
got=$(printf 'Hi\\n' | "$bin" slm tokenize -m "$qwen" --ids --stdin)
[ "$got" = "[13048, 1699]" ] || { echo "FAIL: --stdin gave $got"; fails=$((fails + 1)); }
# errors
expect 2 "-m FILE is required" "$bin" slm tokenize "Hello"
expect 2 "no text" "$bin" slm tokenize -m "$qwen"
expect 2 "one way only" "$bin" slm tokenize -m "$qwen" -p a b
expect 2 "unknown option '--bogus'" "$bin" slm tokenize -m "$qwen" --bogus x
expect 1 "No such file" "$bin" slm tokenize -m "$tmp/none.gguf" x
expect 1 "not a GGUF file" "$bin" slm tokenize -m "$shared/models/README.md" x
expect 1 "cannot open" "$bin" slm tokenize -m "$qwen" -f "$tmp/none.txt"
expect 0 "usage: tiergate slm tokenize" "$bin" slm tokenize --help

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" = 0 ]

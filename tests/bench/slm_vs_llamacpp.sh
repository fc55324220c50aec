#!/bin/sh
# slm_vs_llamacpp.sh: `tiergate slm bench` next to llama.cpp's `llama-bench` on the same GGUF
# files, the same thread counts and the same tests (ppP, tgN), back to back in one run, plus the
# memory-bandwidth ceiling of decode and the engine's peak RSS.
#
#   tests/bench/slm_vs_llamacpp.sh            (from the repository root, after `ninja -C build`)
#
# Environment (all optional):
#   LLAMA_CPP_BIN  directory holding llama-bench (default /work/ext/llama.cpp/build/bin); this
#                  script never builds llama.cpp
#   TIERGATE       the tiergate binary (default build/tiergate)
#   BWPROBE        the bandwidth probe (default build/tests/bench/bench_bandwidth)
#   MODELS         "shape:type ..." made with `tiergate slm mkmodel` when missing (default: the
#                  135M and 0.5B shapes in q8_0 and q4_k_m, then f16 and q4_0)
#   THREADS PP TG REPS ROUNDS   (default 1,2  128  64  3  2)
#   OUT            where models, raw JSON and the report go (default tests/bench/out)
#   TASKSET        e.g. "taskset -c 0,1" to pin both engines to the same cores
#
# Timing on a shared machine is noisy: each round runs both engines back to back (alternating
# which goes first), the report takes the median over rounds of each engine's mean, and the ratio
# is computed within the run. Compare ratios, not absolute figures, across runs.
#
# Output: a Markdown report on stdout and in $OUT/slm_vs_llamacpp.md; raw JSON in $OUT/raw/.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-/work/ext/llama.cpp/build/bin}
TIERGATE=${TIERGATE:-$ROOT/build/tiergate}
BWPROBE=${BWPROBE:-$ROOT/build/tests/bench/bench_bandwidth}
MODELS=${MODELS:-"smollm2-135m:q8_0 smollm2-135m:q4_k_m qwen2.5-0.5b:q8_0 qwen2.5-0.5b:q4_k_m smollm2-135m:f16 smollm2-135m:q4_0 qwen2.5-0.5b:f16 qwen2.5-0.5b:q4_0"}
THREADS=${THREADS:-1,2}
PP=${PP:-128}
TG=${TG:-64}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-$ROOT/tests/bench/out}
TASKSET=${TASKSET:-}

die() { echo "slm_vs_llamacpp.sh: $*" >&2; exit 1; }
[ -x "$TIERGATE" ] || die "no tiergate binary at $TIERGATE (build first: ninja -C build)"
[ -x "$LLAMA_CPP_BIN/llama-bench" ] || die "no llama-bench in $LLAMA_CPP_BIN (set LLAMA_CPP_BIN)"
command -v jq >/dev/null || die "jq is needed (apt-get install -y jq)"
mkdir -p "$OUT/models" "$OUT/raw"
RAW="$OUT/raw/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RAW"
ROWS="$RAW/rows.jsonl"
: > "$ROWS"

# ---- bandwidth (before the runs; best of 5 per thread count)
BW_JSON='{"results":[]}'
if [ -x "$BWPROBE" ]; then
  BW_JSON=$($TASKSET "$BWPROBE" 1024 "$THREADS" 5)
  echo "$BW_JSON" > "$RAW/bandwidth.json"
fi

# ---- models
for mt in $MODELS; do
  shape=${mt%%:*} type=${mt#*:}
  f="$OUT/models/$shape-$type.gguf"
  [ -f "$f" ] || "$TIERGATE" slm mkmodel --shape "$shape" --type "$type" -o "$f" >&2
done

run_slm() {   # model file, round, tag
  $TASKSET "$TIERGATE" slm bench -m "$1" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" --json > "$RAW/slm-$3-r$2.json"
  jq -c --arg m "$3" --argjson r "$2" '.[] | {engine:"slm", model:$m, round:$r, threads:.n_threads,
      test:.test, ts:.avg_ts, sd:.stddev_ts, wbytes:.weight_bytes_per_token, file:.file_size,
      kv:.kv_bytes, hwm_kib:.vm_hwm_kib}' "$RAW/slm-$3-r$2.json" >> "$ROWS"
}

run_llama() {
  $TASKSET "$LLAMA_CPP_BIN/llama-bench" -m "$1" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json \
    > "$RAW/llama-$3-r$2.json" 2> "$RAW/llama-$3-r$2.log"
  jq -c --arg m "$3" --argjson r "$2" '.[] | {engine:"llama", model:$m, round:$r, threads:.n_threads,
      test:(if .n_prompt > 0 then "pp\(.n_prompt)" else "tg\(.n_gen)" end), ts:.avg_ts,
      sd:.stddev_ts}' "$RAW/llama-$3-r$2.json" >> "$ROWS"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for mt in $MODELS; do
  shape=${mt%%:*} type=${mt#*:}
  f="$OUT/models/$shape-$type.gguf"
  tag="$shape-$type"
  r=1
  while [ "$r" -le "$ROUNDS" ]; do
    echo "== $tag round $r" >&2
    if [ $((r % 2)) -eq 1 ]; then run_slm "$f" "$r" "$tag"; run_llama "$f" "$r" "$tag"
    else run_llama "$f" "$r" "$tag"; run_slm "$f" "$r" "$tag"; fi
    r=$((r + 1))
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report
{
  echo "# tiergate slm vs llama.cpp ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs;" \
       "load average $load_before before, $load_after after."
  echo "Tests pp$PP and tg$TG, threads $THREADS, $REPS repetitions per test, $ROUNDS rounds" \
       "(median of the per-round means; both engines back to back in each round)."
  echo "llama.cpp: $LLAMA_CPP_BIN/llama-bench with its defaults (F16 KV cache, flash attention auto, mmap)."
  echo
  echo "| model | threads | test | slm t/s | llama.cpp t/s | slm / llama.cpp |"
  echo "|---|---:|---|---:|---:|---:|"
  jq -s -r '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def f2: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
    group_by([.model, .threads, .test]) | map({
      model: .[0].model, threads: .[0].threads, test: .[0].test,
      slm: ([.[] | select(.engine == "slm") | .ts] | median),
      llama: ([.[] | select(.engine == "llama") | .ts] | median)})
    | sort_by(.model, (.test | startswith("tg")), .threads)[]
    | "| \(.model) | \(.threads) | \(.test) | \(.slm | f2) | \(.llama | f2) | " +
      (if .slm != null and .llama != null and .llama > 0 then "\(.slm / .llama * 100 | round / 100)x" else "-" end) + " |"
  ' "$ROWS"
  echo
  echo "Decode against the memory-bandwidth ceiling (every weight read once per token; the tied"
  echo "embedding is read in full by the output projection). Bandwidth: read-only sum over 1 GiB,"
  echo "best of 5 (build/tests/bench/bench_bandwidth)."
  echo
  echo "| model | threads | weights MiB | bandwidth GB/s | ceiling t/s | slm tg t/s | slm % of ceiling | llama.cpp % of ceiling |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  jq -s -r --argjson bw "$BW_JSON" '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def r1: . * 10 | round / 10;
    ($bw.results | map({key: (.threads | tostring), value: .read_gbs}) | from_entries) as $b
    | [.[] | select(.test | startswith("tg"))] | group_by([.model, .threads]) | map(
      (.[0].threads | tostring) as $t
      | ([.[] | select(.engine == "slm") | .wbytes] | first) as $wb
      | ([.[] | select(.engine == "slm") | .ts] | median) as $s
      | ([.[] | select(.engine == "llama") | .ts] | median) as $l
      | if $b[$t] == null or $wb == null then empty else
        ($b[$t] * 1e9 / $wb) as $ceil
        | "| \(.[0].model) | \($t) | \($wb / 1048576 | r1) | \($b[$t]) | \($ceil | r1) | \($s | r1) | \(if $s then $s / $ceil * 100 | r1 else "-" end)% | \(if $l then $l / $ceil * 100 | r1 else "-" end)% |"
        end)[]
  ' "$ROWS"
  echo
  echo "Peak RSS of \`tiergate slm bench\` (VmHWM over all its tests) against the budget"
  echo "mapped file + KV cache + 64 MiB (KV cache of its largest context, F16):"
  echo
  echo "| model | file MiB | KV MiB | budget MiB | peak RSS MiB | within |"
  echo "|---|---:|---:|---:|---:|---|"
  jq -s -r '
    def r1: . * 10 | round / 10;
    [.[] | select(.engine == "slm")] | group_by(.model) | map(
      (map(.kv) | max) as $kv | (map(.hwm_kib) | max) as $h | .[0].file as $f
      | ($f + $kv + 67108864) as $budget
      | "| \(.[0].model) | \($f / 1048576 | r1) | \($kv / 1048576 | r1) | \($budget / 1048576 | r1) | \($h / 1024 | r1) | \(if $h * 1024 <= $budget then "yes" else "NO" end) |")[]
  ' "$ROWS"
} | tee "$OUT/slm_vs_llamacpp.md"
echo "raw results: $RAW" >&2

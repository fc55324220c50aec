#!/usr/bin/env bash
# tests/bench/local/run.sh: local serving side by side with llama-server. The same GGUF files
# (random weights at real shapes, from `tiergate slm mkmodel`), the same threads, slots and
# context per slot, served one after the other (never both at once: 2 cores), under the same
# streamed OpenAI chat completions load (tests/bench/local/streams.c): 1, 4, 8, 16 concurrent
# streams of 64 generated tokens (aggregate tokens/s, TTFT p50/p99, inter-token gaps), the
# arrival of a 64-token prompt while 7 streams decode (its TTFT against the same request alone),
# each server's RSS (VmRSS sampled every 50 ms, VmHWM at the end), and `tiergate slm bench`'s tg
# figure for the same file. Writes $OUT/report.md with the ratios and each target met / NOT met.
#
#   tests/bench/local/run.sh                              everything (about 30 minutes)
#   MODELS=smollm2-135m:q8_0 STREAMS="1 8" ROUNDS=2 tests/bench/local/run.sh
#   SERVERS=llama-server tests/bench/local/run.sh         only llama-server
#
# Environment (all optional):
#   MODELS         "shape:type ..." (default: smollm2-135m and qwen2.5-0.5b, q8_0 and q4_k_m)
#   STREAMS        concurrent streams per load (default "1 4 8 16")
#   ROUNDS         measured rounds per load and of the arrival scenario (default 3), after one
#                  warm-up round each
#   THREADS SLOTS CTX QUEUE   engine threads, sequences decoded together (llama-server -np),
#                  tokens per sequence, requests waiting beyond the slots (default 2 8 1024 64)
#   MAX_TOKENS     tokens generated per stream (default 64)
#   PROMPT_TOKENS  prompt tokens of each stream (default 64, calibrated against the server's own
#                  count); `slm bench` measures tg at that depth too (-d), the like-for-like
#                  figure for one stream through HTTP
#   SERVERS        which servers, in order (default "llama-server tiergate"); the order
#                  alternates from one model to the next
#   LLAMA_CPP_BIN  directory holding llama-server and llama-bench (default
#                  /work/ext/llama.cpp/build/bin); this script never builds llama.cpp
#   LLAMA_ARGS     extra llama-server arguments (default none: its defaults otherwise)
#   LLAMA_BENCH=0  skip llama-bench's tg figure (shown next to `slm bench`'s for reference)
#   BUILD          tiergate's release build dir (default build-rel; set up and built here unless
#                  NO_BUILD=1); TIERGATE and STREAMS_BIN override the two binaries
#   MODEL_DIR      where the models are made, or reused (default $TMPDIR/tiergate-bench-models)
#   OUT            results dir (default tests/bench/out/local-<time>)
#   NOISE_PCT RETRIES  a load during which other processes took more than NOISE_PCT % of the
#                  CPUs (default 10) is run again, up to RETRIES more times (default 2); the
#                  least disturbed attempt is kept and the report shows the share
#   NICE           e.g. -10 (root): every benchmark process (servers, load generator, the bench
#                  tools) at that priority, all the same, for numbers on a busy shared machine
# Needs: the Debian packages of the README, node (the report), jq, a llama.cpp build.
# Not part of CI: it takes long and wants a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$(pwd)
here=tests/bench/local

MODELS=${MODELS:-"smollm2-135m:q8_0 smollm2-135m:q4_k_m qwen2.5-0.5b:q8_0 qwen2.5-0.5b:q4_k_m"}
STREAMS=${STREAMS:-"1 4 8 16"}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-8}
CTX=${CTX:-1024}
QUEUE=${QUEUE:-64}
MAX_TOKENS=${MAX_TOKENS:-64}
PROMPT_TOKENS=${PROMPT_TOKENS:-64}
SERVERS=${SERVERS:-"llama-server tiergate"}
LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-/work/ext/llama.cpp/build/bin}
LLAMA_ARGS=${LLAMA_ARGS:-}
LLAMA_BENCH=${LLAMA_BENCH:-1}
BUILD=${BUILD:-build-rel}
NOISE_PCT=${NOISE_PCT:-10}
RETRIES=${RETRIES:-2}
MODEL_DIR=${MODEL_DIR:-${TMPDIR:-/tmp}/tiergate-bench-models}
OUT=${OUT:-tests/bench/out/local-$(date +%Y%m%d-%H%M%S)}

die() { echo "run.sh: $*" >&2; exit 1; }
NICE=${NICE:-}
run_nice() { if [ -n "$NICE" ]; then nice -n "$NICE" "$@"; else "$@"; fi; }
# For servers started with `(nice_exec ...) &`: $! is then the server's own pid (RSS is read there).
nice_exec() { if [ -n "$NICE" ]; then exec nice -n "$NICE" "$@"; else exec "$@"; fi; }
command -v jq >/dev/null || die "jq is needed (apt-get install -y jq)"
command -v node >/dev/null || die "node is needed for the report"
if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ ! -d "$BUILD" ]; then meson setup "$BUILD" -Dbuildtype=release >/dev/null; fi
  ninja -C "$BUILD" tiergate tests/bench/streams >/dev/null
fi
TIERGATE=${TIERGATE:-$root/$BUILD/tiergate}
STREAMS_BIN=${STREAMS_BIN:-$root/$BUILD/tests/bench/streams}
[ -x "$TIERGATE" ] || die "no tiergate binary at $TIERGATE"
[ -x "$STREAMS_BIN" ] || die "no load generator at $STREAMS_BIN"
case " $SERVERS " in
  *" llama-server "*) [ -x "$LLAMA_CPP_BIN/llama-server" ] || die "no llama-server in $LLAMA_CPP_BIN (set LLAMA_CPP_BIN)" ;;
esac
mkdir -p "$OUT/raw" "$MODEL_DIR"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/raw

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# The run's conditions, for the report.
jq -n --arg date "$(date -u +%FT%TZ)" --argjson nproc "$(nproc)" \
  --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
  --arg load_start "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --argjson threads "$THREADS" --argjson slots "$SLOTS" --argjson ctx "$CTX" --argjson queue "$QUEUE" \
  --argjson max_tokens "$MAX_TOKENS" --argjson prompt_tokens "$PROMPT_TOKENS" --argjson rounds "$ROUNDS" --arg streams "$STREAMS" \
  --arg servers "$SERVERS" --arg llama_args "$LLAMA_ARGS" --arg nice "$NICE" \
  --arg tiergate_commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +dirty)" \
  --arg llama_cpp_commit "$(git -C "$LLAMA_CPP_BIN/../.." rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  '{date: $date, nproc: $nproc, cpu: $cpu, load_start: $load_start, threads: $threads, slots: $slots,
    ctx: $ctx, queue: $queue, max_tokens: $max_tokens, prompt_tokens: $prompt_tokens, rounds: $rounds,
    streams: ($streams | split(" ") | map(select(length > 0) | tonumber)),
    servers: ($servers | split(" ") | map(select(length > 0))), llama_args: $llama_args, nice: $nice,
    tiergate_commit: $tiergate_commit, llama_cpp_commit: $llama_cpp_commit}' >"$RAW/meta.json"

# --- models, and what each one's weights and KV cache take (f16 K and V, SLOTS x CTX tokens)
for mt in $MODELS; do
  shape=${mt%%:*} type=${mt#*:}
  f="$MODEL_DIR/$shape-$type.gguf"
  [ -f "$f" ] || "$TIERGATE" slm mkmodel --shape "$shape" --type "$type" -o "$f" >&2
  "$TIERGATE" slm info -m "$f" >"$RAW/info-$shape-$type.txt"
  awk -v file_bytes="$(stat -c %s "$f")" -v slots="$SLOTS" -v ctx="$CTX" -v name="$shape-$type" '
    $1 == "block_count" { layers = $2 }
    /^attention:/ { for (i = 1; i <= NF; i++) { if ($i == "kv") kv = $(i - 1); if ($i == "dim") hd = $(i + 1) } }
    END { gsub(/[^0-9]/, "", kv); gsub(/[^0-9]/, "", hd)
          printf "{\"model\":\"%s\",\"file_bytes\":%d,\"layers\":%d,\"kv_heads\":%d,\"head_dim\":%d,\"kv_bytes\":%d}\n",
                 name, file_bytes, layers, kv, hd, layers * 2 * kv * hd * 2 * slots * ctx }' \
    "$RAW/info-$shape-$type.txt" >"$RAW/model-$shape-$type.json"
done

# engine_bench KIND MODEL_FILE NAME SUFFIX: the engine's own speed on the file, nothing else
# running. Taken right before and right after each server's loads on that file: this machine's
# speed drifts by tens of percent over a run, and a ratio of figures taken half an hour apart
# measured the drift (the report uses the mean of the two).
engine_bench() {
  local kind=$1 f=$2 name=$3 sfx=$4
  if [ "$kind" = tiergate ]; then
    run_nice "$TIERGATE" slm bench -m "$f" -t "$THREADS" -p 64 -n "$MAX_TOKENS" -d "0,$PROMPT_TOKENS" --json \
      >"$RAW/slmbench-$name$sfx.json"
  elif [ "$LLAMA_BENCH" = 1 ] && [ -x "$LLAMA_CPP_BIN/llama-bench" ]; then
    run_nice "$LLAMA_CPP_BIN/llama-bench" -m "$f" -t "$THREADS" -p 64 -n 64 -o json \
      >"$RAW/llamabench-$name$sfx.json" 2>"$RAW/llamabench-$name$sfx.log" || echo "llama-bench failed on $name" >&2
  fi
}

# start_server KIND MODEL_FILE NAME -> SRV_PID, SRV_PORT, SRV_MODEL (the request's model name);
# returns 1 when the server does not answer a chat completion
start_server() {
  local kind=$1 f=$2 name=$3 log="$RAW/$1-$3.log"
  SRV_PID= SRV_PORT=
  case $kind in
    llama-server)
      SRV_PORT=$(free_port)
      SRV_MODEL=$name
      # -c is the whole KV cache: SLOTS sequences of CTX tokens; continuous batching on.
      # shellcheck disable=SC2086
      (nice_exec "$LLAMA_CPP_BIN/llama-server" -m "$f" -t "$THREADS" -tb "$THREADS" -np "$SLOTS" \
        -c $((SLOTS * CTX)) --cont-batching --host 127.0.0.1 --port "$SRV_PORT" $LLAMA_ARGS) \
        >"$log" 2>&1 &
      SRV_PID=$!
      ;;
    tiergate)
      SRV_MODEL=local
      rm -f "$RAW/tiergate-$name.port"
      mkdir -p "$RAW/db-$name"
      cat >"$RAW/tiergate-$name.yaml" <<EOF
listen: 127.0.0.1:0
database: $RAW/db-$name/tiergate.db
providers:
  local:
    kind: local
    model_path: $f
    threads: $THREADS
    context: $CTX
    slots: $SLOTS
    queue: $QUEUE
models:
  local: {provider: local}
EOF
      (nice_exec "$TIERGATE" serve --config "$RAW/tiergate-$name.yaml" --listen 127.0.0.1:0 \
        --port-file "$RAW/tiergate-$name.port") >"$log" 2>&1 &
      SRV_PID=$!
      for _ in $(seq 600); do
        [ -s "$RAW/tiergate-$name.port" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
      done
      SRV_PORT=$(cat "$RAW/tiergate-$name.port" 2>/dev/null || true)
      ;;
  esac
  pids+=("$SRV_PID")
  # Ready once a one-token chat completion for the model comes back (a model loads meanwhile).
  local body="{\"model\":\"$SRV_MODEL\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
  for _ in $(seq 600); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    if [ -n "$SRV_PORT" ] && curl -sf -m 30 -o "$RAW/$kind-$name.ready.json" \
         -H 'content-type: application/json' -d "$body" \
         "http://127.0.0.1:$SRV_PORT/v1/chat/completions" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "$kind does not serve $name (see $log)" >&2
  stop_server
  return 1
}

stop_server() {
  [ -n "${SRV_PID:-}" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  SRV_PID=
}

# measure OUT_JSON STREAMS_ARGS...: one load against the running server, repeated (up to RETRIES
# more times) while other processes took more than NOISE_PCT % of the CPUs during a measured
# round; keeps the attempt they disturbed least.
measure() {
  local out=$1 k best=
  shift
  for k in $(seq 0 "$RETRIES"); do
    run_nice "$STREAMS_BIN" --port "$SRV_PORT" --model "$SRV_MODEL" --warmup 1 --pid "$SRV_PID" "$@" \
      >"$out.try$k" 2>>"$RAW/streams.log" || echo "  errors in $*" >&2
    if [ -z "$best" ] || jq -e --slurpfile b "$best" '(.others_cpu_pct_max // 1e9) < ($b[0].others_cpu_pct_max // 1e9)' "$out.try$k" >/dev/null 2>&1; then
      best=$out.try$k
    fi
    jq -e --argjson lim "$NOISE_PCT" '(.others_cpu_pct_max // 1e9) <= $lim' "$best" >/dev/null 2>&1 && break
    echo "  other processes took $(jq -r '.others_cpu_pct_max' "$out.try$k" 2>/dev/null) % CPU: again" >&2
  done
  cp "$best" "$out"
}

first=1
for mt in $MODELS; do
  name=${mt%%:*}-${mt#*:}
  f="$MODEL_DIR/$name.gguf"
  order=$SERVERS
  if [ "$first" != 1 ]; then
    read -ra sv <<<"$SERVERS"
    order=
    for ((i = ${#sv[@]} - 1; i >= 0; i--)); do order="$order ${sv[i]}"; done
  fi
  first=$((1 - first))
  for kind in $order; do
    echo "== $kind $name" >&2
    engine_bench "$kind" "$f" "$name" ""
    if ! start_server "$kind" "$f" "$name"; then
      jq -n --arg s "$kind" --arg m "$name" --arg why "$(head -c 300 "$RAW/$kind-$name.log" | head -n 1)" \
        '{server: $s, model: $m, available: false, reason: $why}' >"$RAW/unavailable-$kind-$name.json"
      continue
    fi
    for n in $STREAMS; do
      measure "$RAW/load-$kind-$name-$n.json" --streams "$n" --rounds "$ROUNDS" \
        --max-tokens "$MAX_TOKENS" --prompt-tokens "$PROMPT_TOKENS" --label "$kind $name $n"
      jq -r '"  \(.streams) streams: \(.agg_tps|floor) tok/s, TTFT p50 \(.ttft_ms.p50) ms p99 \(.ttft_ms.p99) ms (others \(.others_cpu_pct_max|floor) % CPU)"' \
        "$RAW/load-$kind-$name-$n.json" >&2 || true
    done
    measure "$RAW/arrival-$kind-$name.json" --arrival --background $((SLOTS - 1)) \
      --prompt-tokens 64 --rounds "$ROUNDS" --bg-max-tokens $((CTX / 2)) --label "$kind $name arrival"
    jq -r '"  arrival: TTFT alone \(.alone_ttft_ms) ms, with \(.background) decoding \(.loaded_ttft_ms) ms (others \(.others_cpu_pct_max|floor) % CPU)"' \
      "$RAW/arrival-$kind-$name.json" >&2 || true
    awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "{\"rss_kib\":%d,\"hwm_kib\":%d}\n", r, h}' \
      "/proc/$SRV_PID/status" >"$RAW/rss-$kind-$name.json"
    stop_server
    engine_bench "$kind" "$f" "$name" "-after"
  done
done
jq --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" '.load_end = $l' "$RAW/meta.json" >"$RAW/meta.json.new"
mv "$RAW/meta.json.new" "$RAW/meta.json"

node "$here/report.mjs" "$OUT" >"$OUT/report.md"
cat "$OUT/report.md"
echo "results in $OUT" >&2

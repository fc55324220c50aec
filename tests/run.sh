#!/usr/bin/env bash
# tests/run.sh: install what the tests need (Debian 12), build with AddressSanitizer and
# UndefinedBehaviorSanitizer, run every test (meson C tests, then the Node end-to-end tests with the
# official SDKs), and end with one line: "N passed, M failed".
#
#   tests/run.sh                 everything, from a fresh Debian 12 machine
#   TIERGATE_SKIP_APT=1 tests/run.sh   skip apt-get (packages already there)
#   TIERGATE_BUILD=dir           build directory (default build-asan)
set -u
cd "$(dirname "$0")/.."
root=$(pwd)

sudo_=
[ "$(id -u)" != 0 ] && sudo_=sudo

if [ "${TIERGATE_SKIP_APT:-0}" != 1 ]; then
  pkgs="build-essential meson ninja-build pkg-config libevent-dev libcurl4-openssl-dev \
        libsqlite3-dev libjansson-dev libyaml-dev libpcre2-dev sqlite3 ca-certificates curl \
        openssl nghttp2-server python3-jsonschema"
  command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
  $sudo_ apt-get update -qq >/dev/null || echo "warning: apt-get update failed" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq $pkgs >/dev/null ||
    { echo "apt-get install failed" >&2; echo "0 passed, 1 failed"; exit 1; }
fi

build=${TIERGATE_BUILD:-build-asan}
jobs=$(nproc 2>/dev/null || echo 2)

meson_passed=0
meson_failed=0
if [ ! -d "$build" ]; then
  meson setup "$build" -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
    -Dc_args=-fno-sanitize-recover=undefined -Db_lundef=false >/dev/null ||
    { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$build" >"$build/build-output.log" 2>&1; then
  tail -50 "$build/build-output.log"
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

meson test -C "$build" --print-errorlogs --num-processes "$jobs" 2>&1 | tee "$build/test-run.log"
summary=$(sed -n '/^Ok:/,/^Timeout:/p' "$build/test-run.log")
ok=$(echo "$summary" | awk '/^Ok:/ {print $2}')
fail=$(echo "$summary" | awk '/^(Fail|Timeout|Unexpected Pass):/ {s += $NF} END {print s + 0}')
meson_passed=${ok:-0}
meson_failed=${fail:-0}
[ -z "$ok" ] && meson_failed=$((meson_failed + 1))

# Node end-to-end tests (official SDKs against the gateway, tests/e2e), if present. The TAP
# summary's last "# pass N" / "# fail N" lines are the counts (earlier "# ..." lines are
# diagnostics, e.g. the gateway's stderr); cancelled tests count as failed; a run that dies
# without a summary, or finds no test at all, counts as one failure.
node_passed=0
node_failed=0
if [ -f tests/e2e/package.json ]; then
  if ! command -v node >/dev/null 2>&1; then
    echo "node is not installed: the end-to-end tests cannot run"
    node_failed=1
  elif (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$root/$build/npm.log"); then
    TIERGATE_BIN="$root/$build/tiergate" TIERGATE_BUILD_DIR="$root/$build" \
      MOCK_UPSTREAM_BIN="$root/$build/tests/mock/mock_upstream" \
      node --test --test-reporter=tap --test-concurrency=1 tests/e2e/ >"$build/node-tests.log" 2>&1
    node_rc=$?
    cat "$build/node-tests.log"
    summary() { awk -v k="$1" '$1 == "#" && $2 == k && $3 ~ /^[0-9]+$/ && NF == 3 {n = $3} END {print n}' "$build/node-tests.log"; }
    node_passed=$(summary pass)
    node_failed=$(summary fail)
    node_cancelled=$(summary cancelled)
    node_tests=$(summary tests)
    if [ -z "$node_passed" ] || [ -z "$node_failed" ] || [ "${node_tests:-0}" -eq 0 ]; then
      echo "node test run gave no usable summary (exit $node_rc)"
      node_passed=${node_passed:-0}
      node_failed=$(( ${node_failed:-0} + 1 ))
    else
      node_failed=$((node_failed + ${node_cancelled:-0}))
      # A non-zero exit with nothing failed (a crash after the summary, a hook failure) counts too.
      [ "$node_rc" -ne 0 ] && [ "$node_failed" -eq 0 ] && node_failed=1
    fi
  else
    cat "$build/npm.log"
    echo "npm ci failed"
    node_failed=1
  fi
fi

echo "meson: $meson_passed passed, $meson_failed failed; node: $node_passed passed, $node_failed failed"
echo "$((meson_passed + node_passed)) passed, $((meson_failed + node_failed)) failed"
[ $((meson_failed + node_failed)) -eq 0 ]

#!/usr/bin/env bash
# examples/quickstart.sh: install the Debian 12 packages, build tiergate (release), and run
# `tiergate serve` on examples/tiergate.yaml. The SQLite log is created on first run.
#
#   examples/quickstart.sh                 listen on ${TIERGATE_LISTEN:-127.0.0.1:8080}
#   OPENAI_API_KEY=sk-... ANTHROPIC_API_KEY=sk-ant-... examples/quickstart.sh
set -eu
cd "$(dirname "$0")/.."
sudo_=
[ "$(id -u)" != 0 ] && sudo_=sudo
if [ "${TIERGATE_SKIP_APT:-0}" != 1 ]; then
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq build-essential meson ninja-build \
    pkg-config libevent-dev libcurl4-openssl-dev libsqlite3-dev libjansson-dev libyaml-dev \
    libpcre2-dev >/dev/null
fi
[ -d build ] || meson setup build -Dbuildtype=release >/dev/null
ninja -C build >/dev/null
exec ./build/tiergate serve --config examples/tiergate.yaml

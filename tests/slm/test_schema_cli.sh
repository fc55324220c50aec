#!/bin/sh
# test_schema_cli.sh: `tiergate slm schema check` (accept/reject per line, exit codes, the
# "unsupported: KEYWORD at POINTER" message) on small schemas written here.
# usage: test_schema_cli.sh TIERGATE_BINARY   (meson passes the built binary)
set -u
bin=$1
fails=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check SCHEMA_FILE INPUT_LINES EXPECTED_OUTPUT
judge() {
  checks=$((checks + 1))
  out=$(printf '%s' "$2" | "$bin" slm schema check "$1" 2>"$tmp/err")
  rc=$?
  if [ "$rc" != 0 ]; then fail "check $1 exited $rc: $(cat "$tmp/err")"; return; fi
  if [ "$out" != "$3" ]; then fail "check $1: got '$(echo $out)', expected '$(echo $3)'"; fi
}

cat > "$tmp/obj.json" <<'J'
{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
 "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
 "required": ["name"], "additionalProperties": false}
J
judge "$tmp/obj.json" '{"name":"bob","age":3}
{"name":"","age":3}
{"age":3}
{"name":"x","tags":["a","b"]}
{"name":"x","tags":["a","b","c"]}
{ "name" : "x" , "age" : 0 }
{"name":"x","extra":1}
{"name":"x"} trailing
' 'accept
reject
reject
accept
reject
accept
reject
reject'

# the last line without a newline is judged too; an empty line is not JSON
judge "$tmp/obj.json" '
{"name":"é"}' 'reject
accept'

# --compact: no whitespace
checks=$((checks + 1))
out=$(printf '%s\n%s\n' '{"name":"x"}' '{"name": "x"}' | "$bin" slm schema check --compact "$tmp/obj.json")
[ "$out" = "accept
reject" ] || fail "--compact: $out"

# unsupported: exit 3 with the keyword and its pointer on stderr
printf '%s' '{"properties": {"list": {"type": "array", "uniqueItems": true}}}' > "$tmp/uniq.json"
checks=$((checks + 1))
printf '[]\n' | "$bin" slm schema check "$tmp/uniq.json" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] || fail "uniqueItems: exit $rc"
grep -q '^unsupported: uniqueItems at /properties/list' "$tmp/err" || fail "uniqueItems message: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "uniqueItems: printed a verdict"

printf '%s' '{"properties": {"p": {"type": "string", "pattern": "(a)\\1"}}}' > "$tmp/back.json"
checks=$((checks + 1))
printf '{}\n' | "$bin" slm schema check "$tmp/back.json" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] || fail "backreference: exit $rc"
grep -q '^unsupported: pattern at /properties/p/pattern (.*backreference' "$tmp/err" || fail "backreference message: $(cat "$tmp/err")"

printf '%s' '{"type": "object", "properties": {' > "$tmp/bad.json"
checks=$((checks + 1))
printf '{}\n' | "$bin" slm schema check "$tmp/bad.json" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] || fail "not JSON: exit $rc"
grep -q '^unsupported: json at ' "$tmp/err" || fail "not JSON message: $(cat "$tmp/err")"

# --relaxed ignores uniqueItems and says so
checks=$((checks + 1))
out=$(printf '[1,1]\n' | "$bin" slm schema check --relaxed "$tmp/uniq.json" 2>"$tmp/err")
[ "$out" = "accept" ] || fail "--relaxed: $out"
grep -q 'relaxed: ignored uniqueItems' "$tmp/err" || fail "--relaxed message: $(cat "$tmp/err")"

# slm run under constraints (stories260K): the output is judged by the same matcher; greedy is
# reproducible
shared=${TIERGATE_SHARED_DIR:-../shared}
model="$shared/models/stories260K.gguf"
for seed in 1 2 3; do
  checks=$((checks + 1))
  "$bin" slm run -m "$model" -p "Once upon a time" -n 96 --temp 0.9 --seed $seed -t 1 \
    --json-schema "$tmp/obj.json" >"$tmp/gen" 2>"$tmp/err" || { fail "run --json-schema: $(cat "$tmp/err")"; continue; }
  verdict=$(head -n 1 "$tmp/gen" | "$bin" slm schema check --compact "$tmp/obj.json")
  [ "$verdict" = accept ] || fail "run --json-schema seed $seed produced: $(cat "$tmp/gen")"
done
checks=$((checks + 1))
a=$("$bin" slm run -m "$model" -p "Tom" -n 40 --temp 0 -t 1 --json-schema "$tmp/obj.json" 2>/dev/null)
b=$("$bin" slm run -m "$model" -p "Tom" -n 40 --temp 0 -t 1 --json-schema "$tmp/obj.json" 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "greedy under a schema is not reproducible: '$a' vs '$b'"
checks=$((checks + 1))
out=$("$bin" slm run -m "$model" -p "The cat" -n 30 --temp 0.8 -t 1 --regex '[0-9]{3}-[a-z]+' 2>/dev/null)
echo "$out" | grep -Eqx '[0-9]{3}-[a-z]+' || fail "run --regex produced '$out'"
checks=$((checks + 1))
out=$("$bin" slm run -m "$model" -p "The cat was" -n 10 --temp 0.8 -t 1 --choice 'happy,sad,angry' 2>/dev/null)
case "$out" in happy|sad|angry) ;; *) fail "run --choice produced '$out'" ;; esac
checks=$((checks + 1))
"$bin" slm run -m "$model" -p x -n 5 --json-schema "$tmp/uniq.json" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] && grep -q '^unsupported: uniqueItems at /properties/list' "$tmp/err" || fail "run with an unsupported schema: exit $rc, $(cat "$tmp/err")"

# usage errors
checks=$((checks + 1))
"$bin" slm schema check >/dev/null 2>&1
[ $? = 2 ] || fail "no schema: not exit 2"
checks=$((checks + 1))
"$bin" slm schema frob >/dev/null 2>&1
[ $? = 2 ] || fail "unknown command: not exit 2"
checks=$((checks + 1))
"$bin" slm schema check "$tmp/missing.json" </dev/null >/dev/null 2>&1
[ $? = 1 ] || fail "missing file: not exit 1"

if [ "$fails" = 0 ]; then echo "$checks checks passed"; exit 0; fi
echo "$fails of $checks checks failed"
exit 1

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

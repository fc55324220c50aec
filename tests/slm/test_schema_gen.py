#!/usr/bin/env python3
"""test_schema_gen.py: validates what gen_constrained generated, with validators that share no
code with the engine: python3-jsonschema (the draft the schema names, formats checked), re.fullmatch
for regular expressions, membership for choices.

    test_schema_gen.py SUITE.jsonl OUT.jsonl [OUT.jsonl ...]

Every generation must be complete (the constraint could end: the budget makes sure it does),
parse as JSON and validate. A schema python-jsonschema itself cannot use (a regex dialect it does
not know, an invalid schema) is counted and skipped, not failed. Exit 1 on any failure.
"""
import json
import re
import sys

try:
    import jsonschema
    from jsonschema import validators
except ImportError:
    print("python3-jsonschema is not installed (apt-get install python3-jsonschema)")
    sys.exit(77)


def main():
    suite = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            suite[row["id"]] = row["schema"]
    checked = failed = skipped = 0
    kinds = {}
    validators_cache = {}
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                g = json.loads(line)
                kind = g["kind"]
                kinds[kind] = kinds.get(kind, 0) + 1
                text = g["text"]
                where = "%s %s seed %d" % (kind, g.get("id") or g.get("regex") or g.get("choices"), g["seed"])
                checked += 1
                if not g["done"]:
                    failed += 1
                    print("FAIL (incomplete after %d tokens): %s: %r" % (g["tokens"], where, text[:200]))
                    continue
                if kind == "regex":
                    if not re.fullmatch(g["regex"], text):
                        failed += 1
                        print("FAIL (no match): %s: %r" % (where, text[:200]))
                    continue
                if kind == "choice":
                    if text not in g["choices"].split(","):
                        failed += 1
                        print("FAIL (not a choice): %s: %r" % (where, text[:200]))
                    continue
                schema = suite[g["id"]]
                try:
                    instance = json.loads(text)
                except ValueError as e:
                    failed += 1
                    print("FAIL (not JSON: %s): %s: %r" % (e, where, text[:200]))
                    continue
                v = validators_cache.get(g["id"])
                if v is None:
                    try:
                        cls = validators.validator_for(schema)
                        v = cls(schema, format_checker=cls.FORMAT_CHECKER)
                    except Exception as e:  # an invalid schema, an unknown $schema
                        v = e
                    validators_cache[g["id"]] = v
                if isinstance(v, Exception):
                    skipped += 1
                    continue
                try:
                    errs = list(v.iter_errors(instance))
                except Exception as e:  # re.error on an ECMA-only pattern, an unresolvable $ref
                    skipped += 1
                    print("skipped (validator error %s): %s" % (type(e).__name__, where))
                    continue
                if errs:
                    failed += 1
                    print("FAIL (invalid: %s): %s: %s" % (errs[0].message[:200], where, text[:300]))
    print("%d generations checked (%s), %d failed, %d skipped (validator could not run)"
          % (checked, ", ".join("%s %d" % kv for kv in sorted(kinds.items())), failed, skipped))
    if checked == 0:
        print("FAIL: nothing was generated")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

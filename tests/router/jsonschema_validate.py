#!/usr/bin/env python3
"""jsonschema_validate.py: the independent validator of the structured-output tests.

Reads JSON Lines on stdin (or from the file named as the only argument), one item per line:
    {"id": "label", "schema": <JSON Schema>, "text": "<the reply's JSON text>"}
and prints one line per item, in order:
    ok <id>
    FAIL <id>: <why>      (the text is not strict JSON, or it does not validate)
then a last line "total N ok K fail F".

The text is parsed strictly (no NaN/Infinity, which Python's json accepts by default) and
validated with Debian's python3-jsonschema: the draft is the schema's $schema (2020-12 when
absent), formats are asserted with the library's checker plus two it lacks without optional
packages ("uri": RFC 3986's scheme ":" and allowed characters; "hostname": RFC 1123 labels).
Exit status: 0 if every item is ok, 1 if any failed, 2 on bad input.
"""
import json
import re
import sys

import jsonschema

URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                  r"(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*")


def no_constant(name):
    raise ValueError("not JSON: " + name)


def checker_for(cls):
    fc = cls.FORMAT_CHECKER
    # the library's checker has no uri/hostname without rfc3987/fqdn installed: add strict ones
    # (only when missing, so an installed checker is used as is)
    if "uri" not in fc.checkers:
        fc.checks("uri")(lambda s: not isinstance(s, str) or (URI.fullmatch(s) is not None
                                                            and "%" not in re.sub(r"%[0-9A-Fa-f]{2}", "", s)))
    if "hostname" not in fc.checkers:
        fc.checks("hostname")(lambda s: not isinstance(s, str) or HOST.fullmatch(s) is not None)
    return fc


def judge(item):
    schema, text = item["schema"], item["text"]
    try:
        value = json.loads(text, parse_constant=no_constant)
    except ValueError as e:
        return "not JSON (%s): %.200r" % (e, text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    v = cls(schema, format_checker=checker_for(cls))
    errs = sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errs:
        e = errs[0]
        return "invalid at %s: %s; text %.300r" % ("/".join(map(str, e.absolute_path)) or "(root)",
                                                  e.message[:200], text)
    return None


def main():
    src = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    total = fails = 0
    for line in src:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            print("bad input line: %s" % e)
            return 2
        total += 1
        why = judge(item)
        if why:
            fails += 1
            print("FAIL %s: %s" % (item.get("id"), why))
        else:
            print("ok %s" % item.get("id"))
    print("total %d ok %d fail %d" % (total, total - fails, fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

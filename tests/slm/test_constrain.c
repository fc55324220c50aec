/*
 * test_constrain.c: constrained decoding below the sampler (slm/constrain/): the JSON reader,
 * regular expressions, automata, number languages, formats, the JSON Schema compiler judged byte
 * by byte, compile errors, recursion limits, and token masks on real vocabularies (byte-level
 * BPE and SentencePiece): UTF-8 split across byte tokens, tokens spanning a string's end and the
 * next key, end-of-generation tokens, masks equal to per-token checks, the token budget.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "slm/constrain/cn.h"
#include "slm/slm.h"

/* ---------------------------------------------------------------- JSON reader */

static void test_json(void) {
  struct cn_arena a;
  cn_arena_init(&a, 0);
  char err[200];
  const char *ok[] = {"{}", "[]", " 1 ", "-0.5e+3", "\"\\u00e9\\ud83d\\ude00\"", "{\"a\":[1,{\"b\":null}],\"c\":true}"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    CHECK_MSG(cj_parse(&a, ok[i], strlen(ok[i]), 64, err, sizeof err) != NULL, "%s: %s", ok[i], err);
  const char *bad[] = {"", "{", "[1,]", "01", "1.", "\"\\x\"", "{\"a\" 1}", "tru", "1 2", "\"\x01\"", "\"\xc3\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_MSG(cj_parse(&a, bad[i], strlen(bad[i]), 64, err, sizeof err) == NULL, "accepted %s", bad[i]);
  /* depth limit */
  char deep[300];
  memset(deep, '[', 200);
  deep[200] = 0;
  CHECK(cj_parse(&a, deep, 200, 64, err, sizeof err) == NULL);
  /* values */
  const char *obj = "{\"k\":\"\\u00e9\",\"n\":1.0,\"m\":1,\"t\":true}";
  struct cj_val *v = cj_parse(&a, obj, strlen(obj), 64, err, sizeof err);
  CHECK(v && v->type == CJ_OBJECT && v->len == 4);
  if (v) {
    const struct cj_val *k = cj_get(v, "k"), *n = cj_get(v, "n"), *m = cj_get(v, "m");
    CHECK(k && k->len == 2 && !memcmp(k->u.s, "\xc3\xa9", 2));
    CHECK(n && m && cj_equal(n, m) == CN_TRUE);
    CHECK(cj_equal(cj_get(v, "t"), m) == CN_FALSE);
  }
  CHECK_EQ_INT(cj_num_cmp_exact("1e2", 3, "100.0", 5), 0);
  CHECK_EQ_INT(cj_num_cmp_exact("-0.001", 6, "-1e-3", 5), 0);
  CHECK_EQ_INT(cj_num_cmp_exact("2.5", 3, "10", 2), -1);
  cn_arena_free(&a);
}

/* ---------------------------------------------------------------- regex, automata, numbers */

static int rx_match(const char *pat, bool search, enum rx_mode mode, const char *s) {
  struct cdfa d;
  char msg[200];
  if (rx_to_cdfa(pat, strlen(pat), mode, search, 0, &d, msg, sizeof msg)) return -1;
  int r = cdfa_match(&d, s, strlen(s));
  cdfa_free(&d);
  return r;
}

static void test_regex(void) {
  static const struct { const char *p; bool search; const char *s; int want; } t[] = {
      {"abc", true, "xxabcxx", 1}, {"^abc$", true, "abc", 1}, {"^abc$", true, "abcd", 0},
      {"^abc$", true, "abc\n", 0}, {"^[a-z]+$", true, "hello", 1}, {"^[a-z]+$", true, "hel1o", 0},
      {"^\\d{3}-\\d{4}$", true, "555-1234", 1}, {"^\\d{3}-\\d{4}$", true, "555-12345", 0},
      {"(ab)*c", false, "ababc", 1}, {"(ab)*c", false, "abac", 0}, {"x{2,3}", false, "xxxx", 0},
      {"x{2,3}", false, "xxx", 1}, {"[^a]", false, "\xc3\xa9", 1}, {"a.c", false, "a\nc", 0},
      {"a$|b", true, "zb", 1}, {"\\d", false, "\xd9\xa3", 0} /* ARABIC-INDIC THREE: not in STRICT */,
      {"[\\w.-]+@\\w+", false, "a.b-c@host", 1}, {"(?:a|b)+?", false, "abba", 1},
      {"\\u00e9", false, "\xc3\xa9", 1}, {"a{,2}x", false, "ax", -1}, {"(?=a)", true, "a", -1},
      {"\\1", true, "a", -1}, {"\\bword", true, "word", -1}, {"\\p{L}", true, "a", -1}, {"[", true, "a", -1},
      {"a**", true, "a", -1}, {"(?i)a", true, "a", -1}, {"\\e", true, "a", -1}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int r = rx_match(t[i].p, t[i].search, RX_STRICT, t[i].s);
    CHECK_MSG(r == t[i].want, "/%s/ on '%s': %d, expected %d", t[i].p, t[i].s, r, t[i].want);
  }
  /* loose reading: $ before a final newline, \d of any script */
  CHECK_EQ_INT(rx_match("^abc$", true, RX_LOOSE, "abc\n"), 1);
  CHECK_EQ_INT(rx_match("^\\d$", true, RX_LOOSE, "\xd9\xa3"), 1);
  char msg[200];
  struct cnfa na;
  cnfa_init(&na, 0);
  CHECK_EQ_INT(rx_compile("(a)\\1", 5, RX_STRICT, false, &na, msg, sizeof msg), -EINVAL);
  CHECK_MSG(strstr(msg, "backreference") != NULL, "message: %s", msg);
  cnfa_free(&na);
  /* products and complement */
  struct cdfa a, b, c, nc;
  CHECK(rx_to_cdfa("^a+$", 4, RX_STRICT, true, 0, &a, msg, sizeof msg) == 0);
  CHECK(rx_to_cdfa("^.{2}$", 6, RX_STRICT, true, 0, &b, msg, sizeof msg) == 0);
  CHECK(cdfa_product(&a, &b, CDFA_AND, 0, &c) == 0);
  CHECK(cdfa_match(&c, "aa", 2) && !cdfa_match(&c, "a", 1) && !cdfa_match(&c, "aaa", 3));
  size_t cnt = 0;
  CHECK(cdfa_finite(&c, 100, &cnt) && cnt == 1);
  CHECK(cdfa_complement(&c, &nc) == 0);
  CHECK(!cdfa_match(&nc, "aa", 2) && cdfa_match(&nc, "a", 1) && cdfa_match(&nc, "", 0));
  CHECK(!cdfa_is_all(&nc) && !cdfa_is_empty(&nc));
  cdfa_free(&a);
  cdfa_free(&b);
  cdfa_free(&c);
  cdfa_free(&nc);
  /* numbers: value predicates on texts without exponent */
  static const struct { const char *bound; enum cn_cmp op; const char *s; int want; } n[] = {
      {"5", CMP_GE, "5", 1}, {"5", CMP_GE, "4.99", 0}, {"5", CMP_GE, "5.0", 1}, {"5", CMP_GT, "5", 0},
      {"0", CMP_GE, "-0", 1}, {"0", CMP_GE, "-0.1", 0}, {"0", CMP_GT, "0.0", 0}, {"-2.5", CMP_GE, "-2.51", 0},
      {"-2.5", CMP_LT, "-3", 1}, {"100", CMP_LE, "1e2", 0}, {"0.5", CMP_LT, "0.50", 0},
      {"1", CMP_LE, "0.1234567890123456", 0} /* 16 significant digits: refused */,
      {"1", CMP_LE, "0.123456789012345", 1}, {"1e2", CMP_LE, "99", 1}};
  for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
    struct cn_dec d;
    cn_dec_from_text(n[i].bound, strlen(n[i].bound), &d);
    struct cdfa x;
    CHECK(num_cmp(&d, n[i].op, &x) == 0);
    CHECK_MSG(cdfa_match(&x, n[i].s, strlen(n[i].s)) == n[i].want, "%s op %d %s", n[i].s, n[i].op, n[i].bound);
    cdfa_free(&x);
  }
  struct cdfa mu;
  CHECK(num_multiple(7, false, &mu) == 0);
  CHECK(cdfa_match(&mu, "-21", 3) && cdfa_match(&mu, "14.0", 4) && !cdfa_match(&mu, "15", 2) && !cdfa_match(&mu, "14.5", 4));
  cdfa_free(&mu);
  /* formats */
  static const struct { const char *f, *s; int want; } fm[] = {
      {"date", "2024-02-29", 1}, {"date", "2023-02-29", 0}, {"date", "1900-02-29", 0}, {"date", "2000-02-29", 1},
      {"date", "2022-04-31", 0}, {"date-time", "2022-01-31T10:20:30.5+05:30", 1}, {"time", "24:00:00Z", 0},
      {"uuid", "123e4567-e89b-12d3-a456-426614174000", 1}, {"ipv4", "192.168.0.01", 0}, {"ipv4", "10.0.0.255", 1},
      {"ipv6", "::ffff:192.168.1.1", 1}, {"ipv6", "1::2::3", 0}, {"email", "john.doe@example.com", 1},
      {"email", "john@", 0}, {"uri", "https://example.com/a?b=c#d", 1}, {"uri", "/relative", 0}};
  for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++) {
    bool known;
    const char *re = cn_format_regex(fm[i].f, &known);
    CHECK(re && known);
    if (re) CHECK_MSG(rx_match(re, false, RX_STRICT, fm[i].s) == fm[i].want, "format %s on %s", fm[i].f, fm[i].s);
  }
}

/* ---------------------------------------------------------------- schemas, byte by byte */

static struct slm_constraint *compile(const char *schema, bool compact, struct slm_constraint_error *ce) {
  struct slm_constraint_params p = slm_constraint_default_params();
  if (compact) p.whitespace = SLM_JSON_WS_COMPACT;
  p.max_depth = 8;
  return slm_constraint_new(NULL, SLM_CONSTRAINT_JSON_SCHEMA, schema, strlen(schema), &p, ce);
}

static int judge(struct slm_constraint *c, const char *text) {
  struct slm_matcher *mt = slm_matcher_new(c);
  if (!mt) return -1;
  int r = slm_matcher_accept_bytes(mt, text, strlen(text)) == 0 && slm_matcher_can_end(mt);
  slm_matcher_free(mt);
  return r;
}

static void test_schemas(void) {
  static const struct { const char *schema, *text; int want; } t[] = {
      {"{\"type\":\"object\"}", "{}", 1},
      {"{\"type\":\"object\"}", " { } ", 1},
      {"{\"type\":\"array\"}", "[]", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "[\"a\",\"b\"]", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "[\"a\",1]", 0},
      {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":3}", "[1]", 0},
      {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":3}", "[1,[2],{}]", 1},
      {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":3}", "[1,2,3,4]", 0},
      {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1,\"a\"]", 1},
      {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1,\"a\",2]", 0},
      {"{\"type\":\"array\",\"contains\":{\"const\":3}}", "[1,2,3]", 1},
      {"{\"type\":\"array\",\"contains\":{\"const\":3}}", "[1,2]", 0},
      /* objects: schema order, required, additional, patterns */
      {"{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}", "{\"b\":\"x\"}", 1},
      {"{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}", "{\"a\":1}", 0},
      {"{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}", "{\"a\":1,\"b\":\"x\",\"c\":[]}", 1},
      {"{\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":false}", "{\"a\":1,\"c\":2}", 0},
      {"{\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":{\"type\":\"string\"}}", "{\"a\":1,\"c\":\"x\"}", 1},
      {"{\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":{\"type\":\"string\"}}", "{\"c\":2}", 0},
      {"{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}", "{\"x-a\":1}", 1},
      {"{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}", "{\"x-a\":\"s\"}", 0},
      {"{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}", "{\"y\":1}", 0},
      {"{\"properties\":{\"a\":{},\"b\":{}},\"minProperties\":2}", "{\"a\":1}", 0},
      {"{\"properties\":{\"a\":{},\"b\":{}},\"minProperties\":2}", "{\"a\":1,\"b\":2}", 1},
      /* repeated keys read as one member by validators: extras count once for minProperties */
      {"{\"type\":\"object\",\"minProperties\":2}", "{\"a\":1,\"a\":2}", 0},
      {"{\"type\":\"object\",\"minProperties\":1}", "{\"a\":1}", 1},
      {"{\"patternProperties\":{\"^[a-f]$\":{}},\"additionalProperties\":false,\"minProperties\":2}", "{\"a\":1,\"b\":2}", 1},
      {"{\"patternProperties\":{\"^[a-f]$\":{}},\"additionalProperties\":false,\"minProperties\":2}", "{\"a\":1,\"a\":2}", 0},
      /* a witness member comes last (nothing can replace its value) */
      {"{\"not\":{\"additionalProperties\":{\"type\":\"integer\"}}}", "{\"b\":1,\"a\":\"s\"}", 1},
      {"{\"not\":{\"additionalProperties\":{\"type\":\"integer\"}}}", "{\"a\":\"s\",\"a\":1}", 0},
      {"{\"type\":\"object\",\"maxProperties\":1}", "{\"a\":1,\"b\":2}", 0},
      {"{\"propertyNames\":{\"pattern\":\"^[a-z]+$\"}}", "{\"abc\":1}", 1},
      {"{\"propertyNames\":{\"pattern\":\"^[a-z]+$\"}}", "{\"aBc\":1}", 0},
      {"{\"dependentRequired\":{\"a\":[\"b\"]},\"properties\":{\"a\":{},\"b\":{}}}", "{\"a\":1}", 0},
      {"{\"dependentRequired\":{\"a\":[\"b\"]},\"properties\":{\"a\":{},\"b\":{}}}", "{\"a\":1,\"b\":2}", 1},
      /* strings */
      {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"ab\"", 1},
      {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"abcd\"", 0},
      {"{\"type\":\"string\",\"maxLength\":2}", "\"\\u00e9\\u00e9\"", 1},   /* counts code points */
      {"{\"type\":\"string\",\"maxLength\":2}", "\"\xc3\xa9\xc3\xa9x\"", 0},
      {"{\"type\":\"string\",\"pattern\":\"^[0-9]{3}$\"}", "\"123\"", 1},
      {"{\"type\":\"string\",\"pattern\":\"^[0-9]{3}$\"}", "\"12a\"", 0},
      {"{\"type\":\"string\",\"format\":\"date\"}", "\"2023-02-29\"", 0},
      {"{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-29\"", 1},
      {"{\"type\":\"string\"}", "\"tab\\there \\\"q\\\" \\ud83d\\ude00\"", 1},
      {"{\"type\":\"string\"}", "\"raw\x01control\"", 0},
      {"{\"type\":\"string\"}", "\"\\ud83d alone\"", 0},
      /* numbers */
      {"{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}", "10", 1},
      {"{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}", "11", 0},
      {"{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}", "5.5", 0},
      {"{\"type\":\"number\",\"exclusiveMaximum\":1}", "0.999", 1},
      {"{\"type\":\"number\",\"exclusiveMaximum\":1}", "1", 0},
      {"{\"$schema\":\"http://json-schema.org/draft-04/schema#\",\"type\":\"number\",\"maximum\":1,\"exclusiveMaximum\":true}", "1", 0},
      {"{\"type\":\"integer\",\"multipleOf\":5}", "-15", 1},
      {"{\"type\":\"integer\",\"multipleOf\":5}", "16", 0},
      {"{\"type\":\"number\"}", "-1.5e-7", 1},
      /* enums, const, combinators */
      {"{\"enum\":[\"a\",1,null,[1,2],{\"k\":true}]}", "[1,2]", 1},
      {"{\"enum\":[\"a\",1,null,[1,2],{\"k\":true}]}", "{\"k\":true}", 1},
      {"{\"enum\":[\"a\",1,null,[1,2],{\"k\":true}]}", "1.0", 1},
      {"{\"enum\":[\"a\",1,null,[1,2],{\"k\":true}]}", "2", 0},
      {"{\"const\":\"x\",\"type\":\"integer\"}", "\"x\"", 0},
      {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "3", 1},
      {"{\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}],\"properties\":{\"a\":{},\"b\":{}}}", "{\"a\":1}", 1},
      {"{\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}],\"properties\":{\"a\":{},\"b\":{}}}", "{\"a\":1,\"b\":2}", 0},
      {"{\"not\":{\"type\":\"string\"}}", "\"s\"", 0},
      {"{\"not\":{\"type\":\"string\"}}", "[]", 1},
      {"{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":2}]}", "\"abc\"", 0},
      {"{\"if\":{\"properties\":{\"k\":{\"const\":1}}},\"then\":{\"required\":[\"v\"]},\"properties\":{\"k\":{},\"v\":{}}}", "{\"k\":1}", 0},
      {"{\"if\":{\"properties\":{\"k\":{\"const\":1}}},\"then\":{\"required\":[\"v\"]},\"properties\":{\"k\":{},\"v\":{}}}", "{\"k\":2}", 1},
      {"{\"type\":[\"string\",\"null\"]}", "null", 1},
      {"{\"type\":\"string\",\"nullable\":true}", "null", 0},   /* JSON Schema meaning */
      {"true", "{\"any\":[1,\"x\"]}", 1},
      {"false", "1", 0},
      /* $ref and recursion (max_depth 8 here) */
      {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"c\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}}}},\"$ref\":\"#/$defs/n\"}",
       "{\"c\":[{\"c\":[{}]}]}", 1},
      {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"c\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}}}},\"$ref\":\"#/$defs/n\"}",
       "{\"c\":[{\"c\":[{\"c\":[{\"c\":[{\"c\":[{\"c\":[{\"c\":[{\"c\":[{\"c\":[{}]}]}]}]}]}]}]}]}]}", 0},
      {"{\"definitions\":{\"a\":{\"type\":\"integer\"}},\"properties\":{\"x\":{\"$ref\":\"#/definitions/a\"}}}", "{\"x\":\"s\"}", 0},
      {"{\"$id\":\"http://e.com/s.json\",\"$defs\":{\"a\":{\"$anchor\":\"A\",\"type\":\"integer\"}},\"$ref\":\"s.json#A\"}", "3", 1},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct slm_constraint_error ce;
    struct slm_constraint *c = compile(t[i].schema, false, &ce);
    CHECK_MSG(c != NULL, "schema %zu does not compile: %s at %s (%s)", i, ce.keyword, ce.pointer, ce.message);
    if (!c) continue;
    int r = judge(c, t[i].text);
    CHECK_MSG(r == t[i].want, "schema %s on %s: %d, expected %d", t[i].schema, t[i].text, r, t[i].want);
    slm_constraint_free(c);
  }
  /* compact mode: no whitespace */
  struct slm_constraint_error ce;
  struct slm_constraint *c = compile("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}", true, &ce);
  CHECK(c && judge(c, "{\"a\":1}") == 1 && judge(c, "{\"a\": 1}") == 0);
  slm_constraint_free(c);
  /* a huge enum */
  size_t cap = 20000 * 16 + 64, n = 0;
  char *big = malloc(cap);
  n += (size_t)snprintf(big + n, cap - n, "{\"enum\":[");
  for (int i = 0; i < 20000; i++) n += (size_t)snprintf(big + n, cap - n, "%s\"item%05d\"", i ? "," : "", i);
  n += (size_t)snprintf(big + n, cap - n, "]}");
  c = compile(big, false, &ce);
  CHECK_MSG(c != NULL, "huge enum: %s", ce.message);
  if (c) CHECK(judge(c, "\"item12345\"") == 1 && judge(c, "\"item20000\"") == 0 && judge(c, "\"item1234\"") == 0);
  slm_constraint_free(c);
  free(big);
}

static void test_errors(void) {
  static const struct { const char *schema, *kw, *ptr; } t[] = {
      {"{\"type\":", "json", ""},
      {"not json", "json", ""},
      {"[1]", "", ""},
      {"{\"properties\":{\"a\":{\"minLength\":\"5\",\"type\":\"string\"}}}", "minLength", "/properties/a/minLength"},
      {"{\"properties\":{\"a\":{\"$ref\":\"#/definitions/nope\"}}}", "$ref", "/properties/a"},
      {"{\"$ref\":\"other.json#/x\"}", "$ref", ""},
      {"{\"type\":\"strin\"}", "type", "/type"},
      {"{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems", ""},
      {"{\"properties\":{\"p\":{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}}}", "pattern", "/properties/p/pattern"},
      {"{\"type\":\"number\",\"multipleOf\":0.01}", "multipleOf", ""},
      {"{\"$ref\":\"#\"}", "$ref", ""},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct slm_constraint_error ce;
    memset(&ce, 0, sizeof ce);
    struct slm_constraint *c = compile(t[i].schema, false, &ce);
    CHECK_MSG(c == NULL, "%s compiled", t[i].schema);
    slm_constraint_free(c);
    CHECK_MSG(!strcmp(ce.keyword, t[i].kw), "%s: keyword '%s', expected '%s' (%s)", t[i].schema, ce.keyword, t[i].kw, ce.message);
    CHECK_MSG(!strncmp(ce.pointer, t[i].ptr, strlen(t[i].ptr)), "%s: pointer '%s', expected '%s'", t[i].schema, ce.pointer, t[i].ptr);
    CHECK_MSG(ce.message[0] != 0, "%s: no message", t[i].schema);
    CHECK(ce.code < 0);
  }
  /* relaxed: uniqueItems ignored and reported */
  struct slm_constraint_params p = slm_constraint_default_params();
  p.relaxed = true;
  struct slm_constraint_error ce;
  const char *s = "{\"type\":\"array\",\"uniqueItems\":true}";
  struct slm_constraint *c = slm_constraint_new(NULL, SLM_CONSTRAINT_JSON_SCHEMA, s, strlen(s), &p, &ce);
  CHECK(c && !strcmp(slm_constraint_relaxed_keywords(c), "uniqueItems"));
  if (c) CHECK(judge(c, "[1,1]") == 1);
  slm_constraint_free(c);
  /* an unsatisfiable schema compiles to the empty language */
  c = compile("{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", false, &ce);
  CHECK(c && slm_constraint_is_empty(c));
  slm_constraint_free(c);
  /* deep nesting of the schema itself: an error, not a crash */
  char deep[4100];
  size_t n = 0;
  for (int i = 0; i < 400; i++) n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"not\":");
  n += (size_t)snprintf(deep + n, sizeof deep - n, "{}");
  for (int i = 0; i < 400 && n < sizeof deep - 1; i++) deep[n++] = '}';
  deep[n] = 0;
  c = compile(deep, false, &ce);
  CHECK(c == NULL);
  slm_constraint_free(c);
}

/* ---------------------------------------------------------------- token masks */

static struct slm_model *load_vocab(const char *file) {
  const char *sh = getenv("TIERGATE_SHARED_DIR");
  char path[1024], err[256];
  snprintf(path, sizeof path, "%s/vocab/%s", sh ? sh : "../shared", file);
  struct slm_model_params mp = slm_model_default_params();
  mp.vocab_only = true;
  struct slm_model *m = slm_model_load(path, &mp, err, sizeof err);
  CHECK_MSG(m != NULL, "%s: %s", path, err);
  return m;
}

/* The token whose piece is exactly the bytes S (N of them), or -1. */
static slm_token find_token(const struct slm_model *m, const char *s, int n) {
  char buf[64];
  for (slm_token t = 0; t < slm_n_vocab(m); t++) {
    int32_t k = slm_token_to_piece(m, t, buf, sizeof buf, false);
    if (k == n && !memcmp(buf, s, (size_t)n) && !slm_token_is_eog(m, t)) return t;
  }
  return -1;
}

static bool bit(const uint32_t *bits, slm_token t) { return bits[t >> 5] >> (t & 31) & 1; }

/* Every token's mask bit equals its own check. */
static int mask_mismatches(struct slm_matcher *mt, int32_t nv, uint32_t *bits) {
  int bad = 0;
  int32_t n = slm_matcher_fill_mask(mt, bits);
  int32_t cnt = 0;
  for (slm_token t = 0; t < nv; t++) {
    bool b = bit(bits, t);
    cnt += b;
    if (b != slm_matcher_token_allowed(mt, t)) bad++;
  }
  if (cnt != n) bad++;
  return bad;
}

static void test_masks(const char *vocab_file, bool spm) {
  struct slm_model *m = load_vocab(vocab_file);
  if (!m) return;
  struct slm_vocab_index *vi = slm_vocab_index_new(m);
  CHECK(vi != NULL);
  int32_t nv = slm_n_vocab(m);
  uint32_t *bits = calloc(((size_t)nv + 31) / 32, sizeof *bits);
  struct slm_constraint_params p = slm_constraint_default_params();
  p.whitespace = SLM_JSON_WS_COMPACT;
  struct slm_constraint_error ce;
  const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"},"
                       "\"n\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"a\",\"b\"],\"additionalProperties\":false}";
  struct slm_constraint *c = slm_constraint_new(vi, SLM_CONSTRAINT_JSON_SCHEMA, schema, strlen(schema), &p, &ce);
  CHECK_MSG(c != NULL, "%s", ce.message);
  struct slm_matcher *mt = c ? slm_matcher_new(c) : NULL;
  if (mt) {
    CHECK_EQ_INT(mask_mismatches(mt, nv, bits), 0);
    CHECK(!slm_matcher_can_end(mt));
    slm_token eos = slm_token_eos(m);
    CHECK(eos < 0 || !bit(bits, eos));
    CHECK(slm_matcher_accept_bytes(mt, "{\"a\":\"x", 7) == 0);
    CHECK_EQ_INT(mask_mismatches(mt, nv, bits), 0);
    /* a token that closes the string and opens the next key */
    slm_token span = find_token(m, "\",\"", 3);
    if (span >= 0) {
      CHECK(bit(bits, span));
      CHECK(slm_matcher_accept_token(mt, span) == 0);
      CHECK(slm_matcher_accept_bytes(mt, "b\":\"", 4) == 0);
    } else {
      CHECK(slm_matcher_accept_bytes(mt, "\",\"b\":\"", 7) == 0);
    }
    /* UTF-8 split over byte tokens: "é" = C3 A9 */
    slm_token b1 = find_token(m, "\xc3", 1), b2 = find_token(m, "\xa9", 1);
    (void)spm;   /* SentencePiece: <0xC3> <0xA9>; byte-level BPE: the bytes' own tokens */
    CHECK_MSG(b1 >= 0 && b2 >= 0, "no byte tokens for C3 A9 in %s", vocab_file);
    if (b1 >= 0 && b2 >= 0) {
      CHECK(slm_matcher_token_allowed(mt, b1));
      CHECK(!slm_matcher_token_allowed(mt, b2));   /* a lone continuation byte */
      CHECK(slm_matcher_accept_token(mt, b1) == 0);
      CHECK_EQ_INT(mask_mismatches(mt, nv, bits), 0);
      slm_token quote = find_token(m, "\"", 1);
      CHECK(quote >= 0 && !bit(bits, quote));   /* the character is not finished */
      CHECK(bit(bits, b2));
      CHECK(slm_matcher_accept_token(mt, b2) == 0);
    }
    CHECK(slm_matcher_accept_bytes(mt, "\"}", 2) == 0);
    CHECK(slm_matcher_can_end(mt) && slm_matcher_is_done(mt));
    /* done: only end-of-generation tokens remain */
    int32_t left = slm_matcher_fill_mask(mt, bits), only_eog = 1;
    for (slm_token t = 0; t < nv; t++)
      if (bit(bits, t) && !slm_token_is_eog(m, t)) only_eog = 0;
    CHECK(left > 0 && only_eog);
    if (eos >= 0) CHECK(bit(bits, eos) && slm_matcher_token_allowed(mt, eos));
    slm_matcher_free(mt);
  }
  slm_constraint_free(c);
  /* recursion and free values: masks equal token checks along an instance (escapes, calls) */
  const char *rs = "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{},\"c\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}}}},\"$ref\":\"#/$defs/n\"}";
  c = slm_constraint_new(vi, SLM_CONSTRAINT_JSON_SCHEMA, rs, strlen(rs), &p, &ce);
  CHECK_MSG(c != NULL, "%s", ce.message);
  mt = c ? slm_matcher_new(c) : NULL;
  if (mt) {
    const char *text = "{\"v\":[1,{\"x\":\"y\"}],\"c\":[{\"c\":[]},{\"v\":null}]}";
    int bad = 0;
    for (size_t i = 0; text[i]; i++) {
      if (i % 5 == 0) bad += mask_mismatches(mt, nv, bits);
      CHECK(slm_matcher_accept_bytes(mt, text + i, 1) == 0);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(slm_matcher_can_end(mt));
    slm_matcher_free(mt);
  }
  slm_constraint_free(c);
  /* the budget: greedy by lowest token id, the text still ends in time */
  c = slm_constraint_new(vi, SLM_CONSTRAINT_JSON_SCHEMA, schema, strlen(schema), &p, &ce);
  mt = c ? slm_matcher_new(c) : NULL;
  if (mt) {
    int budget = 40, used = 0;
    while (used < budget && !slm_matcher_is_done(mt)) {
      slm_matcher_set_budget(mt, budget - used);
      int32_t n = slm_matcher_fill_mask(mt, bits);
      CHECK(n > 0);
      if (n <= 0) break;
      /* prefer long tokens, as a model might */
      slm_token best = -1;
      char buf[64];
      int32_t bl = -1;
      for (slm_token t = 0; t < nv; t++)
        if (bit(bits, t)) {
          int32_t k = slm_token_to_piece(m, t, buf, sizeof buf, false);
          if (k > bl) bl = k, best = t;
        }
      if (slm_token_is_eog(m, best)) break;
      CHECK(slm_matcher_accept_token(mt, best) == 0);
      used++;
    }
    CHECK_MSG(slm_matcher_can_end(mt), "did not finish within %d tokens (used %d, %u bytes left)", budget, used,
              slm_matcher_bytes_to_end(mt));
    slm_matcher_free(mt);
  }
  slm_constraint_free(c);
  /* regex and choices */
  c = slm_constraint_new(vi, SLM_CONSTRAINT_REGEX, "[0-9]{2}-[a-z]+", 15, &p, &ce);
  mt = c ? slm_matcher_new(c) : NULL;
  if (mt) {
    CHECK_EQ_INT(mask_mismatches(mt, nv, bits), 0);
    CHECK(slm_matcher_accept_bytes(mt, "42-", 3) == 0);
    CHECK_EQ_INT(mask_mismatches(mt, nv, bits), 0);
    CHECK(!slm_matcher_can_end(mt));
    CHECK(slm_matcher_accept_bytes(mt, "ok", 2) == 0 && slm_matcher_can_end(mt));
    slm_matcher_free(mt);
  }
  slm_constraint_free(c);
  const char *ch[] = {"yes", "no", "maybe"};
  c = slm_constraint_new_choice(vi, ch, 3, &p, &ce);
  mt = c ? slm_matcher_new(c) : NULL;
  if (mt) {
    CHECK(slm_matcher_accept_bytes(mt, "ma", 2) == 0 && slm_matcher_accept_bytes(mt, "ybe", 3) == 0);
    CHECK(slm_matcher_is_done(mt));
    slm_matcher_reset(mt);
    CHECK(slm_matcher_accept_bytes(mt, "yesno", 5) != 0);
    slm_matcher_free(mt);
  }
  slm_constraint_free(c);
  free(bits);
  slm_vocab_index_free(vi);
  slm_model_free(m);
}

/* ---------------------------------------------------------------- the constrained sampler */

static void test_sampler(void) {
  struct slm_model *m = load_vocab("ggml-vocab-qwen2-from-qwen3-tokenizer.gguf");
  if (!m) return;
  struct slm_vocab_index *vi = slm_vocab_index_new(m);
  int32_t nv = slm_n_vocab(m);
  float *lg = malloc((size_t)nv * sizeof *lg);
  uint32_t *bits = calloc(((size_t)nv + 31) / 32, sizeof *bits);
  /* logits that prefer what the constraint forbids: letters high, digits low */
  uint64_t r = 12345;
  for (int32_t t = 0; t < nv; t++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    lg[t] = (float)((r >> 40) % 1000) / 100.0f;
  }
  struct slm_constraint_params p = slm_constraint_default_params();
  struct slm_constraint_error ce;
  struct slm_constraint *c = slm_constraint_new(vi, SLM_CONSTRAINT_REGEX, "[0-9]+", 6, &p, &ce);
  struct slm_matcher *mt = c ? slm_matcher_new(c) : NULL;
  if (!mt) {
    CHECK(0);
    goto out;
  }
  int32_t na = slm_matcher_fill_mask(mt, bits);
  CHECK(na > 0 && na < nv);
  /* greedy: the best allowed token, ties to the lowest id */
  slm_token best = -1;
  for (slm_token t = 0; t < nv; t++)
    if (bit(bits, t) && (best < 0 || lg[t] > lg[best])) best = t;
  struct slm_sampler_params sp = slm_sampler_default_params();
  sp.temperature = 0;
  struct slm_sampler *s = slm_sampler_new(m, &sp);
  CHECK_EQ_INT(slm_sampler_sample_constrained(s, lg, mt, NULL), best);
  slm_sampler_free(s);
  /* top-k 3: every draw among the 3 best allowed; the same seed gives the same draws */
  slm_token top3[3] = {-1, -1, -1};
  for (slm_token t = 0; t < nv; t++) {
    if (!bit(bits, t)) continue;
    for (int k = 0; k < 3; k++)
      if (top3[k] < 0 || lg[t] > lg[top3[k]] || (lg[t] == lg[top3[k]] && t < top3[k])) {
        for (int j = 2; j > k; j--) top3[j] = top3[j - 1];
        top3[k] = t;
        break;
      }
  }
  sp = slm_sampler_default_params();
  sp.temperature = 1.0f;
  sp.top_k = 3;
  sp.top_p = 1.0f;
  sp.min_p = 0;
  struct slm_sampler *a = slm_sampler_new(m, &sp), *b = slm_sampler_new(m, &sp);
  int hits[3] = {0, 0, 0}, same = 0, other = 0;
  for (int i = 0; i < 600; i++) {
    slm_token x = slm_sampler_sample_constrained(a, lg, mt, NULL), y = slm_sampler_sample_constrained(b, lg, mt, NULL);
    same += x == y;
    int k;
    for (k = 0; k < 3 && top3[k] != x; k++) {}
    if (k < 3) hits[k]++;
    else other++;
  }
  CHECK_EQ_INT(same, 600);
  CHECK_EQ_INT(other, 0);
  CHECK(hits[0] > hits[2]);   /* the best is drawn most often */
  slm_sampler_free(a);
  slm_sampler_free(b);
  /* top-k off (the full mask), with log-probabilities over the allowed tokens */
  sp.top_k = 0;
  sp.n_probs = 4;
  s = slm_sampler_new(m, &sp);
  struct slm_token_prob tp[5];
  int bad = 0;
  for (int i = 0; i < 50; i++) {
    slm_token x = slm_sampler_sample_constrained(s, lg, mt, tp);
    if (x < 0 || !bit(bits, x) || tp[0].token != x || tp[1].token != best) bad++;
    for (int k = 1; k <= 4; k++)
      if (tp[k].token < 0 || !bit(bits, tp[k].token) || (k > 1 && tp[k].logprob > tp[k - 1].logprob)) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  slm_sampler_free(s);
  /* nothing allowed: -1 */
  slm_matcher_free(mt);
  slm_constraint_free(c);
  const char *one = "7";
  c = slm_constraint_new(vi, SLM_CONSTRAINT_CHOICE, one, 2, &p, &ce);
  mt = c ? slm_matcher_new(c) : NULL;
  if (mt) {
    CHECK(slm_matcher_accept_bytes(mt, "7", 1) == 0);
    sp = slm_sampler_default_params();
    s = slm_sampler_new(m, &sp);
    slm_token x = slm_sampler_sample_constrained(s, lg, mt, NULL);
    CHECK(x == -1 || slm_token_is_eog(m, x));   /* only end-of-generation may follow */
    slm_sampler_free(s);
  }
out:
  slm_matcher_free(mt);
  slm_constraint_free(c);
  free(lg);
  free(bits);
  slm_vocab_index_free(vi);
  slm_model_free(m);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  test_json();
  test_regex();
  test_schemas();
  test_errors();
  printf("masks: qwen2 (byte-level BPE)\n");
  test_masks("ggml-vocab-qwen2-from-qwen3-tokenizer.gguf", false);
  printf("masks: llama (SentencePiece)\n");
  test_masks("ggml-vocab-llama-spm.gguf", true);
  printf("constrained sampling\n");
  test_sampler();
  return check_done();
}

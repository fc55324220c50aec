/* test_prices.c: the built-in price table (policies/prices.c) against the checked list in
 * ../shared/data/prices.json, row by row, and the name lookups. */
#include "policies/policies.h"
#include "tests/check.h"

#include <jansson.h>
#include <math.h>

/* USD per 1M tokens (a JSON number or null) -> micro-USD per 1M tokens, or -1 for null. */
static int64_t uusd(const json_t *v) {
  if (!v || json_is_null(v)) return -1;
  return (int64_t)llround(json_number_value(v) * 1e6);
}

static void test_against_shared_list(void) {
  json_error_t e;
  json_t *rows = json_load_file(check_shared_path("data/prices.json"), 0, &e);
  CHECK_MSG(rows && json_is_array(rows), "cannot read prices.json: %s", e.text);
  if (!rows) return;
  const struct pol_price_row *table;
  size_t n = pol_price_rows(&table);
  CHECK_EQ_INT(n, json_array_size(rows));
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    const char *model = json_string_value(json_object_get(r, "model"));
    const struct pol_price *p = pol_price_builtin(model);
    CHECK_MSG(p != NULL, "no built-in price for %s", model);
    if (!p) continue;
    /* the exact row, not a dated-suffix neighbour */
    bool exact = false;
    for (size_t k = 0; k < n; k++) exact |= &table[k].price == p && !strcmp(table[k].model, model);
    CHECK_MSG(exact, "%s found through a different row", model);
    CHECK_MSG(p->input_uusd == uusd(json_object_get(r, "input_per_mtok")), "%s input", model);
    CHECK_MSG(p->output_uusd == uusd(json_object_get(r, "output_per_mtok")), "%s output", model);
    CHECK_MSG(p->cached_input_uusd == uusd(json_object_get(r, "cached_input_per_mtok")),
              "%s cached input", model);
    CHECK_MSG(p->cache_write_uusd == uusd(json_object_get(r, "cache_write_per_mtok")),
              "%s cache write", model);
    /* Anthropic's rule: 1-hour cache writes cost twice the input price */
    const char *prov = json_string_value(json_object_get(r, "provider"));
    if (!strcmp(prov, "anthropic"))
      CHECK_MSG(p->cache_write_1h_uusd == 2 * p->input_uusd, "%s 1h write", model);
    else
      CHECK_MSG(p->cache_write_1h_uusd == -1, "%s 1h write", model);
  }
  json_decref(rows);
}

static void test_lookup(void) {
  const struct pol_price *mini = pol_price_builtin("gpt-4o-mini");
  CHECK(mini != NULL);
  CHECK_EQ_INT(mini->input_uusd, 150000);
  CHECK_EQ_INT(mini->cached_input_uusd, 75000);
  CHECK_EQ_INT(mini->output_uusd, 600000);
  CHECK(pol_price_builtin("gpt-4o-mini-2024-07-18") == mini);
  CHECK(pol_price_builtin("gpt-4o-mini-latest") == mini);
  CHECK(pol_price_builtin("gpt-4o-2024-08-06") == pol_price_builtin("gpt-4o"));
  CHECK(pol_price_builtin("gpt-4o") != mini);
  CHECK(pol_price_builtin("claude-haiku-4-5-20251001") == pol_price_builtin("claude-haiku-4-5"));
  CHECK(pol_price_builtin("gpt-5.5-2026-04-23") == pol_price_builtin("gpt-5.5"));
  /* an undated alias finds a table row that only exists dated */
  const struct pol_price *s4 = pol_price_builtin("claude-sonnet-4");
  CHECK(s4 != NULL && s4 == pol_price_builtin("claude-sonnet-4-20250514"));
  CHECK(pol_price_builtin("claude-3-5-haiku") == pol_price_builtin("claude-3-5-haiku-20241022"));
  /* no prefix guessing */
  CHECK(pol_price_builtin("gpt-4") == NULL);
  CHECK(pol_price_builtin("gpt-4o-mini-search") == NULL);
  CHECK(pol_price_builtin("gpt-4o-mini-2024") == NULL);
  CHECK(pol_price_builtin("") == NULL);
  CHECK(pol_price_builtin(NULL) == NULL);
  CHECK(pol_price_builtin("llama-3-8b") == NULL);
  CHECK_EQ_INT(pol_price_builtin("o3-mini")->cached_input_uusd, 550000);
  CHECK_EQ_INT(pol_price_builtin("o3")->cached_input_uusd, 500000);
}

static void test_merge(void) {
  struct pol_price p = *pol_price_builtin("gpt-4o-mini");
  struct pol_price o = {-1, -1, 90000, 700000, -1};
  pol_price_merge(&p, &o);
  CHECK_EQ_INT(p.input_uusd, 150000);
  CHECK_EQ_INT(p.cached_input_uusd, 75000);
  CHECK_EQ_INT(p.cache_write_uusd, 90000);
  CHECK_EQ_INT(p.output_uusd, 700000);
  CHECK_EQ_INT(p.cache_write_1h_uusd, -1);
}

int main(void) {
  test_against_shared_list();
  test_lookup();
  test_merge();
  return check_done();
}

/*
 * prices.c: the price table built into the binary, and lookups in it.
 *
 * Units: integer micro-USD per 1M tokens (0.075 $/Mtok = 75000), so that tokens x price is an exact
 * count of pico-USD (see cost.c). -1 means "not listed": a cached-input or cache-write price of -1
 * falls back to the input price (OpenAI bills cache writes as plain input); a 1-hour cache-write
 * price of -1 falls back to the cache-write price.
 *
 * Figures transcribed by hand from the checked list in the team's shared data (prices.json, which
 * in turn transcribes BerriAI/litellm model_prices_and_context_window.json at commit
 * 00035b69f416be24e2e323c13198d9b7d2d1bdf9). The file is never read at run time; each row names its
 * litellm key. tests/policies/test_prices.c cross-checks every row against that list.
 *
 * Not modelled: long-context tiers (Claude Sonnet 4/4.5 above 200k input tokens, Gemini 2.5 Pro
 * above 200k, GPT-5.4/5.5 above 272k bill higher rates), audio tokens, batch discounts. Override
 * per model in the config where that matters.
 *
 * 1-hour cache writes: Anthropic bills them at 2x the base input price (5-minute writes at 1.25x,
 * which is the listed cache-write figure); the column below applies that published rule.
 *
 * Dated snapshots ("gpt-4o-mini-2024-07-18", "claude-haiku-4-5-20251001") are priced as their
 * undated alias. TRAP: a few old snapshots were billed differently from today's alias (for example
 * gpt-4o-2024-05-13 listed at 5/15 $/Mtok); configure a price override for those.
 */
#include "policies/internal.h"

#include <string.h>

/* {model, provider, {input, cached_input, cache_write, output, cache_write_1h}} */
static const struct pol_price_row rows[] = {
  /* --- OpenAI */
  /* litellm "gpt-4o" */
  {"gpt-4o", "openai", {2500000, 1250000, -1, 10000000, -1}},
  /* litellm "gpt-4o-mini" */
  {"gpt-4o-mini", "openai", {150000, 75000, -1, 600000, -1}},
  /* litellm "gpt-4.1" */
  {"gpt-4.1", "openai", {2000000, 500000, -1, 8000000, -1}},
  /* litellm "gpt-4.1-mini" */
  {"gpt-4.1-mini", "openai", {400000, 100000, -1, 1600000, -1}},
  /* litellm "gpt-4.1-nano" */
  {"gpt-4.1-nano", "openai", {100000, 25000, -1, 400000, -1}},
  /* litellm "o3" */
  {"o3", "openai", {2000000, 500000, -1, 8000000, -1}},
  /* litellm "o3-mini" */
  {"o3-mini", "openai", {1100000, 550000, -1, 4400000, -1}},
  /* litellm "o4-mini" */
  {"o4-mini", "openai", {1100000, 275000, -1, 4400000, -1}},
  /* litellm "gpt-5" */
  {"gpt-5", "openai", {1250000, 125000, -1, 10000000, -1}},
  /* litellm "gpt-5-mini" */
  {"gpt-5-mini", "openai", {250000, 25000, -1, 2000000, -1}},
  /* litellm "gpt-5-nano" */
  {"gpt-5-nano", "openai", {50000, 5000, -1, 400000, -1}},
  /* litellm "gpt-5.1" */
  {"gpt-5.1", "openai", {1250000, 125000, -1, 10000000, -1}},
  /* litellm "gpt-5.2" */
  {"gpt-5.2", "openai", {1750000, 175000, -1, 14000000, -1}},
  /* litellm "gpt-5.4" (above 272k input: 5 / 22.5 $/Mtok, not modelled) */
  {"gpt-5.4", "openai", {2500000, 250000, -1, 15000000, -1}},
  /* litellm "gpt-5.4-mini" */
  {"gpt-5.4-mini", "openai", {750000, 75000, -1, 4500000, -1}},
  /* litellm "gpt-5.5-2026-04-23" (above 272k input: 10 / 45 $/Mtok, not modelled) */
  {"gpt-5.5", "openai", {5000000, 500000, -1, 30000000, -1}},

  /* --- Anthropic (cache_write = 5-minute write, 1.25x input; 1h write = 2x input) */
  /* litellm "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0": no anthropic-provider row at
   * that commit (retired model), the Bedrock US row is the listed figure */
  {"claude-3-5-haiku-20241022", "bedrock", {800000, 80000, 1000000, 4000000, -1}},
  /* litellm "claude-3-7-sonnet-20250219" (deprecation 2026-02-19) */
  {"claude-3-7-sonnet-20250219", "anthropic", {3000000, 300000, 3750000, 15000000, 6000000}},
  /* litellm "claude-sonnet-4-20250514" (above 200k input: 6 / 22.5, not modelled) */
  {"claude-sonnet-4-20250514", "anthropic", {3000000, 300000, 3750000, 15000000, 6000000}},
  /* litellm "claude-opus-4-20250514" (deprecation 2026-05-14) */
  {"claude-opus-4-20250514", "anthropic", {15000000, 1500000, 18750000, 75000000, 30000000}},
  /* litellm "claude-opus-4-1" */
  {"claude-opus-4-1", "anthropic", {15000000, 1500000, 18750000, 75000000, 30000000}},
  /* litellm "claude-haiku-4-5" (same for claude-haiku-4-5-20251001) */
  {"claude-haiku-4-5", "anthropic", {1000000, 100000, 1250000, 5000000, 2000000}},
  /* litellm "claude-sonnet-4-5" (same for -20250929; above 200k input: 6 / 22.5, not modelled) */
  {"claude-sonnet-4-5", "anthropic", {3000000, 300000, 3750000, 15000000, 6000000}},
  /* litellm "claude-sonnet-4-6" */
  {"claude-sonnet-4-6", "anthropic", {3000000, 300000, 3750000, 15000000, 6000000}},
  /* litellm "claude-opus-4-5" */
  {"claude-opus-4-5", "anthropic", {5000000, 500000, 6250000, 25000000, 10000000}},
  /* litellm "claude-opus-4-6" */
  {"claude-opus-4-6", "anthropic", {5000000, 500000, 6250000, 25000000, 10000000}},
  /* litellm "claude-opus-4-7" */
  {"claude-opus-4-7", "anthropic", {5000000, 500000, 6250000, 25000000, 10000000}},
  /* litellm "claude-opus-4-8" */
  {"claude-opus-4-8", "anthropic", {5000000, 500000, 6250000, 25000000, 10000000}},
  /* litellm "claude-sonnet-5" */
  {"claude-sonnet-5", "anthropic", {2000000, 200000, 2500000, 10000000, 4000000}},

  /* --- Google (reachable through OpenAI-compatible endpoints) */
  /* litellm "gemini/gemini-2.0-flash" (deprecation 2026-06-01; audio input billed higher) */
  {"gemini-2.0-flash", "gemini", {100000, 25000, -1, 400000, -1}},
  /* litellm "gemini/gemini-2.5-flash" (audio input billed higher) */
  {"gemini-2.5-flash", "gemini", {300000, 30000, -1, 2500000, -1}},
  /* litellm "gemini/gemini-2.5-flash-lite" */
  {"gemini-2.5-flash-lite", "gemini", {100000, 10000, -1, 400000, -1}},
  /* litellm "gemini/gemini-2.5-pro" (above 200k input: 2.5 / 15, not modelled) */
  {"gemini-2.5-pro", "gemini", {1250000, 125000, -1, 10000000, -1}},
};

size_t pol_price_rows(const struct pol_price_row **out) {
  if (out) *out = rows;
  return sizeof rows / sizeof rows[0];
}

static bool all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* Length of NAME without a trailing snapshot date ("-2024-07-18" or "-20251001") or "-latest".
 * Returns the full length when there is none. */
size_t pol_model_base_len(const char *name) {
  size_t n = strlen(name);
  if (n > 11 && name[n - 11] == '-' && name[n - 6] == '-' && name[n - 3] == '-' &&
      all_digits(name + n - 10, 4) && all_digits(name + n - 5, 2) && all_digits(name + n - 2, 2))
    return n - 11;
  if (n > 9 && name[n - 9] == '-' && all_digits(name + n - 8, 8)) return n - 9;
  if (n > 7 && strcmp(name + n - 7, "-latest") == 0) return n - 7;
  return n;
}

const struct pol_price_row *pol_price_row_find(const char *model) {
  if (!model || !*model) return NULL;
  size_t nrows = sizeof rows / sizeof rows[0];
  /* 1. exact */
  for (size_t i = 0; i < nrows; i++)
    if (strcmp(rows[i].model, model) == 0) return &rows[i];
  /* 2. both sides without their snapshot date: "gpt-4o-mini-2024-07-18" finds "gpt-4o-mini",
   *    "claude-sonnet-4" finds "claude-sonnet-4-20250514". */
  size_t qn = pol_model_base_len(model);
  for (size_t i = 0; i < nrows; i++) {
    size_t rn = pol_model_base_len(rows[i].model);
    if (rn == qn && memcmp(rows[i].model, model, qn) == 0) return &rows[i];
  }
  return NULL;
}

const struct pol_price *pol_price_builtin(const char *model) {
  const struct pol_price_row *r = pol_price_row_find(model);
  return r ? &r->price : NULL;
}

void pol_price_merge(struct pol_price *dst, const struct pol_price *over) {
  if (over->input_uusd >= 0) dst->input_uusd = over->input_uusd;
  if (over->cached_input_uusd >= 0) dst->cached_input_uusd = over->cached_input_uusd;
  if (over->cache_write_uusd >= 0) dst->cache_write_uusd = over->cache_write_uusd;
  if (over->output_uusd >= 0) dst->output_uusd = over->output_uusd;
  if (over->cache_write_1h_uusd >= 0) dst->cache_write_1h_uusd = over->cache_write_1h_uusd;
}

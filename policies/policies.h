/*
 * policies.h: the gateway's configuration and money model. Public header of policies/.
 *
 * - The config file (YAML, libyaml): listen address, database, providers, models, limits.
 *   `${VAR}` and `${VAR:-default}` are expanded inside scalar values before they are typed.
 *   Every error carries file:line:col. Unknown keys, wrong types, missing env vars (a `${VAR}`
 *   with no default whose variable is unset) and bad URLs are errors.
 * - The price table (USD per million tokens), built into the binary from the repository's table,
 *   overridable per model in the config.
 * - Cost rules: a canonical usage record and the exact cost of it.
 *
 * Thread-safety: a loaded pol_config is immutable; share it freely. Free with pol_config_free().
 */
#ifndef TIERGATE_POLICIES_H
#define TIERGATE_POLICIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ errors */

struct pol_error {
  char file[256];
  int line, col;        /* 1-based; 0 when the error is about the file as a whole */
  char msg[256];
};

struct pol_errors {
  int n;                /* how many were found (may exceed the stored ones) */
  struct pol_error e[32];
};

/* Formats error I as "file:line:col: message" into buf. */
void pol_error_format(const struct pol_error *e, char *buf, size_t cap);

/* ------------------------------------------------------------------ prices */

/* USD per 1M tokens, as integer micro-USD per 1M tokens (so 0.075 $/Mtok = 75000) so that
 * cost = tokens * price is exact in pico-USD (1e-12 USD). -1 = unknown. */
struct pol_price {
  int64_t input_uusd;          /* per 1M uncached input tokens */
  int64_t cached_input_uusd;   /* per 1M cache-read input tokens (-1: same as input) */
  int64_t cache_write_uusd;    /* per 1M cache-write input tokens (-1: same as input) */
  int64_t output_uusd;         /* per 1M output tokens (reasoning included) */
};

/* Built-in table lookup by upstream model name (exact, then dated-suffix stripped:
 * "gpt-4o-mini-2024-07-18" finds "gpt-4o-mini"). Returns NULL if unknown. */
const struct pol_price *pol_price_builtin(const char *model);

/* ------------------------------------------------------------------ usage and cost */

/* Canonical usage, whatever the provider's wire format:
 *   input_tokens    ALL prompt tokens, cached and cache-written included
 *   cached_tokens   the part of input_tokens read from the provider's cache
 *   cache_write_tokens  the part of input_tokens written to the cache (Anthropic)
 *   output_tokens   ALL generated tokens, reasoning included
 *   reasoning_tokens    the part of output_tokens spent on reasoning */
struct pol_usage {
  int64_t input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens;
};

/* Cost in pico-USD (1e-12 USD), exact. Returns -1 if the price is unknown. */
int64_t pol_cost_pusd(const struct pol_price *p, const struct pol_usage *u);
/* Same, as USD. */
double pol_cost_usd(const struct pol_price *p, const struct pol_usage *u);

/* Provider wire formats to canonical usage. Return 0, or -EINVAL if the object is not a usage
 * object. The json argument is a jansson json_t* (kept as void* so this header needs no jansson). */
int pol_usage_from_openai(const void *usage_json, struct pol_usage *out);
int pol_usage_from_anthropic(const void *usage_json, struct pol_usage *out);

/* ------------------------------------------------------------------ config */

enum pol_provider_kind { POL_PROVIDER_OPENAI = 0, POL_PROVIDER_ANTHROPIC = 1 };

struct pol_header { char *name, *value; };

struct pol_provider {
  char *name;
  enum pol_provider_kind kind;
  char *base_url;          /* without trailing slash; OpenAI kind includes /v1 */
  char *api_key_env;       /* name of the env var holding the key */
  char *api_key;           /* its value at load time, or NULL if unset/empty */
  char *anthropic_version; /* kind anthropic: version sent upstream (default 2023-06-01) */
  struct pol_header *headers;   /* extra headers sent upstream */
  size_t n_headers;
  int line;                /* where it was defined, for messages */
};

struct pol_model {
  char *name;              /* public name clients send */
  struct pol_provider *provider;
  char *upstream_model;    /* name sent upstream */
  struct pol_price price;  /* override merged over the built-in row; fields -1 if unknown */
  bool has_price;          /* a usable input+output price is known */
  int line;
};

struct pol_limits {
  size_t max_body_bytes;        /* default 4 MiB */
  int connect_timeout_ms;       /* default 5000 */
  int first_byte_timeout_ms;    /* default 60000: upstream response headers / first byte */
  int total_timeout_ms;         /* default 600000 */
  int client_timeout_ms;        /* default 30000: slow/idle client reading or sending */
  int max_connections;          /* default 4096 */
};

struct pol_config {
  char *path;
  char *listen_host;            /* default 127.0.0.1 */
  int listen_port;              /* default 8080 */
  char *db_path;                /* default tiergate.db */
  struct pol_provider *providers;
  size_t n_providers;
  struct pol_model *models;
  size_t n_models;
  struct pol_model *default_model;    /* may be NULL */
  struct pol_model *baseline_model;   /* may be NULL: then baseline cost = cost */
  struct pol_limits limits;
};

/* Loads and validates PATH. Returns 0 and *out, or a negative errno and the errors in errs
 * (*out is NULL then). Env values are read through getenv() at load time. */
int pol_config_load(const char *path, struct pol_config **out, struct pol_errors *errs);
/* Same, from a string (NAME is used in messages). */
int pol_config_load_str(const char *name, const char *yaml, size_t len, struct pol_config **out,
                        struct pol_errors *errs);
void pol_config_free(struct pol_config *c);   /* accepts NULL */

/* Model by public name; NULL if not configured. */
const struct pol_model *pol_model_find(const struct pol_config *c, const char *name);

#endif

/*
 * policies.h: the gateway's configuration and money model. Public header of policies/.
 *
 * - The config file (YAML, libyaml): listen address, database, providers, models, limits, and the
 *   per-model resilience settings (deployments, fallbacks, retries, breakers, timeouts).
 *   `${VAR}` and `${VAR:-default}` are expanded inside scalar values before they are typed
 *   (`$${` writes a literal `${`). Every error carries file:line:col. Unknown keys, duplicate
 *   keys, wrong types, missing env vars (a `${VAR}` with no default whose variable is unset), bad
 *   URLs, undefined references and duplicate names are errors. A model with no known price and a
 *   provider whose key variable is unset are warnings: the gateway starts; costs of that model are
 *   logged as unknown (NULL), requests to that provider get a clear error.
 * - The price table (USD per million tokens), built into the binary from the repository's table,
 *   overridable per model in the config.
 * - Cost rules: a canonical usage record and the exact cost of it.
 *
 * Thread-safety: a loaded pol_config is immutable; share it freely. Free with pol_config_free().
 * The price table and the cost functions are pure and thread-safe.
 *
 * Example
 *   struct pol_errors errs;
 *   struct pol_config *cfg;
 *   if (pol_config_load("tiergate.yaml", &cfg, &errs) < 0) {
 *     char line[600];
 *     for (int i = 0; i < errs.n && i < POL_MAX_ERRORS; i++) {
 *       pol_error_format(&errs.e[i], line, sizeof line);   // "tiergate.yaml:12:5: unknown key 'x'"
 *       fprintf(stderr, "%s\n", line);
 *     }
 *     return 1;
 *   }
 *   const struct pol_model *m = pol_model_find(cfg, "gpt-4o-mini");
 *   struct pol_usage u;
 *   pol_usage_from_openai(usage_json, &u);
 *   int64_t cost = pol_cost_pusd(&m->price, &u);                          // pico-USD or -1
 *   int64_t base = pol_baseline_cost_pusd(cfg, m, &u);                   // pico-USD or -1
 *   pol_config_free(cfg);
 */
#ifndef TIERGATE_POLICIES_H
#define TIERGATE_POLICIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ errors */

#define POL_MAX_ERRORS 32

struct pol_error {
  char file[256];
  int line, col;        /* 1-based; 0 when the error is about the file as a whole */
  char msg[256];
};

struct pol_errors {
  int n;                /* how many were found (may exceed the stored ones: POL_MAX_ERRORS) */
  struct pol_error e[POL_MAX_ERRORS];
};

/* Formats error E as "file:line:col: message" ("file: message" when line is 0) into buf. */
void pol_error_format(const struct pol_error *e, char *buf, size_t cap);

/* ------------------------------------------------------------------ prices */

/* USD per 1M tokens, as integer micro-USD per 1M tokens (so 0.075 $/Mtok = 75000) so that
 * cost = tokens * price is exact in pico-USD (1e-12 USD). -1 = unknown / not listed. */
struct pol_price {
  int64_t input_uusd;          /* per 1M uncached input tokens */
  int64_t cached_input_uusd;   /* per 1M cache-read input tokens (-1: same as input) */
  int64_t cache_write_uusd;    /* per 1M cache-write input tokens (-1: same as input) */
  int64_t output_uusd;         /* per 1M output tokens (reasoning included) */
  int64_t cache_write_1h_uusd; /* per 1M 1-hour-TTL cache writes (Anthropic; -1: as cache_write) */
};

/* One row of the built-in table. */
struct pol_price_row {
  const char *model;           /* undated name as the provider lists it */
  const char *provider;        /* "openai", "anthropic", "gemini", "bedrock" (informative) */
  struct pol_price price;
};

/* Built-in table lookup by upstream model name (exact, then dated-suffix stripped:
 * "gpt-4o-mini-2024-07-18" finds "gpt-4o-mini", "claude-haiku-4-5-20251001" finds
 * "claude-haiku-4-5"). Returns NULL if unknown. */
const struct pol_price *pol_price_builtin(const char *model);
/* The whole built-in table; returns the row count and points *rows at the first row. */
size_t pol_price_rows(const struct pol_price_row **rows);
/* Fields of OVER that are >= 0 replace those of DST (a config override over a table row). */
void pol_price_merge(struct pol_price *dst, const struct pol_price *over);

/* ------------------------------------------------------------------ usage and cost */

/* Canonical usage, whatever the provider's wire format:
 *   input_tokens    ALL prompt tokens, cached and cache-written included
 *   cached_tokens   the part of input_tokens read from the provider's cache
 *   cache_write_tokens  the part of input_tokens written to the cache (Anthropic)
 *   output_tokens   ALL generated tokens, reasoning included
 *   reasoning_tokens    the part of output_tokens spent on reasoning
 *   cache_write_1h_tokens  the part of cache_write_tokens written with a 1-hour TTL (Anthropic) */
struct pol_usage {
  int64_t input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens;
  int64_t cache_write_1h_tokens;
};

/* Cost in pico-USD (1e-12 USD), exact:
 *   (input - cached - cache_write) * input_price + cached * cached_price
 *   + (cache_write - cache_write_1h) * cache_write_price + cache_write_1h * cache_write_1h_price
 *   + output * output_price            (reasoning is inside output: never added twice)
 * Returns -1 if P is NULL or lacks an input or output price, if the usage is inconsistent
 * (a negative count, or parts larger than their whole), or on int64 overflow. */
int64_t pol_cost_pusd(const struct pol_price *p, const struct pol_usage *u);
/* Same, as USD (pusd / 1e12); -1.0 when unknown. */
double pol_cost_usd(const struct pol_price *p, const struct pol_usage *u);

/* Provider wire formats to canonical usage. Return 0, or -EINVAL if the object is not a usage
 * object (not an object, a count that is not a non-negative integer, parts larger than the
 * whole). Absent fields count 0. The json argument is a jansson json_t* (kept as void* so this
 * header needs no jansson).
 *   OpenAI:    prompt_tokens includes prompt_tokens_details.cached_tokens and .cache_write_tokens;
 *              completion_tokens includes completion_tokens_details.reasoning_tokens.
 *   Anthropic: input_tokens EXCLUDES cache_read_input_tokens and cache_creation_input_tokens
 *              (canonical input = the sum of the three); output_tokens includes thinking
 *              (output_tokens_details.thinking_tokens); cache_creation.ephemeral_1h_input_tokens
 *              is the 1-hour part of the cache writes. */
int pol_usage_from_openai(const void *usage_json, struct pol_usage *out);
int pol_usage_from_anthropic(const void *usage_json, struct pol_usage *out);
/* Anthropic streams: message_start carries the input counts, each message_delta carries
 * cumulative totals of whatever fields it has. Updates ACC with the fields present in
 * USAGE_JSON (absent ones keep their value). Start ACC zeroed. Returns 0 or -EINVAL. */
int pol_usage_update_anthropic(const void *usage_json, struct pol_usage *acc);

/* ------------------------------------------------------------------ config */

/* Where a provider's requests are answered: an OpenAI-compatible API, the Anthropic Messages API,
 * or the gateway's own in-process engine (a GGUF model). */
enum pol_provider_kind { POL_PROVIDER_OPENAI = 0, POL_PROVIDER_ANTHROPIC = 1, POL_PROVIDER_LOCAL = 2 };
#define POL_PROVIDER_KINDS 3

enum pol_kv_type { POL_KV_F16 = 0, POL_KV_F32 = 1 };

/* A provider of kind local: the model file and how the engine serves it. */
struct pol_local {
  char *model_path;        /* the GGUF file (required) */
  int path_line, path_col; /* where model_path was given, for messages about the file */
  int threads;             /* engine threads; 0 (default): every online CPU */
  int context;             /* tokens per sequence (prompt + answer); default 4096, capped at the
                            * model's training context */
  int slots;               /* sequences decoded together; default 4 */
  int queue;               /* requests waiting for a slot beyond the running ones; default 64 */
  enum pol_kv_type kv_type;/* KV cache precision; default f16 */
  char *chat_template;     /* a Jinja template (or a family name: chatml, llama3, ...) used
                            * instead of the file's tokenizer.chat_template; NULL: the file's */
  bool embeddings;         /* serve /v1/embeddings from this model; default true */
  struct pol_price price;  /* per 1M tokens; default 0 input / 0 output (a team may charge its
                            * own hardware); models may override it like any price */
};

struct pol_header { char *name, *value; };

struct pol_provider {
  char *name;
  enum pol_provider_kind kind;
  char *base_url;          /* without trailing slash; OpenAI kind includes /v1 (default
                            * https://api.openai.com/v1); Anthropic kind excludes it (default
                            * https://api.anthropic.com); NULL for kind local */
  char *api_key_env;       /* name of the env var holding the key; NULL: no key is sent */
  char *api_key;           /* its value at load time, or NULL if unset/empty */
  char *anthropic_version; /* kind anthropic: version sent upstream (default 2023-06-01); NULL for
                            * kind openai */
  struct pol_header *headers;   /* extra headers sent upstream, in file order */
  size_t n_headers;
  struct pol_local local;  /* kind local only */
  int line;                /* where it was defined, for messages */
};

/* Failure classes, as bits, for retry `on:` and model `fallback_on:` lists. */
enum {
  POL_FAIL_CONNECT = 1u << 0,   /* "connect": DNS, refused, reset before the response */
  POL_FAIL_TIMEOUT = 1u << 1,   /* "timeout": connect / first-byte / idle / total timeout */
  POL_FAIL_408 = 1u << 2,       /* "408" */
  POL_FAIL_429 = 1u << 3,       /* "429" */
  POL_FAIL_5XX = 1u << 4,       /* "5xx": 500-599 except 529 */
  POL_FAIL_529 = 1u << 5,       /* "529": Anthropic overloaded */
  POL_FAIL_4XX = 1u << 6,       /* "4xx": any other 4xx (e.g. context too long: fall back) */
  POL_FAIL_CONTEXT = 1u << 7,   /* "context_length": a 4xx saying the prompt is too long for the
                                 * model (the router sets it together with POL_FAIL_4XX) */
};
/* Names accepted in `on:` / `fallback_on:` lists: connect, timeout, 408, 429, 4xx, 5xx, 529,
 * context_length, and the aliases rate_limit (= 429), server_error (= 5xx), overloaded (= 529),
 * client_error (= 4xx). */
/* The class bit of one failed attempt: a transport error (connect_error or timed_out) or an HTTP
 * status; 0 for a success (2xx/3xx) or when nothing matches. */
unsigned pol_fail_class(int http_status, bool connect_error, bool timed_out);

enum pol_jitter { POL_JITTER_FULL = 0, POL_JITTER_DECORRELATED = 1, POL_JITTER_NONE = 2 };

struct pol_retry {
  int max_attempts;        /* attempts per request on one model, first included; default 3 */
  int base_delay_ms;       /* backoff base: retry n waits up to min(base * 2^(n-1), max); 250 */
  int max_delay_ms;        /* cap for one delay, retry-after included (a longer retry-after is
                            * not waited for: that deployment is not retried); default 8000 */
  unsigned on;             /* POL_FAIL_* bits retried; default connect|timeout|408|429|5xx|529 */
  enum pol_jitter jitter;  /* how a delay is spread; default full */
  int budget_ms;           /* no retry or fallback starts later than this after the request
                            * arrived; 0 (default): only the request's deadline limits them */
};

struct pol_breaker {
  int failures;            /* consecutive failures that open it; default 5 (0: off) */
  int error_rate_pct;      /* or this error rate over the window...; default 50 (0: off) */
  int min_requests;        /* ...once the window holds this many; default 20 */
  int window_ms;           /* default 30000 */
  int cooldown_ms;         /* open -> half-open probe after this; default 30000 */
  unsigned on;             /* POL_FAIL_* bits that count as failures; default
                            * connect|timeout|5xx|529 (a 429 or another 4xx shows the deployment
                            * is up: it counts as a success) */
};

struct pol_timeouts {      /* per model; unset fields inherit from limits */
  int connect_ms, first_byte_ms, idle_ms, total_ms;
};

enum pol_balance { POL_BALANCE_WEIGHTED = 0, POL_BALANCE_LEAST_IN_FLIGHT = 1 };

/* One place a model can be served from. A model has at least one. */
struct pol_deployment {
  struct pol_provider *provider;
  char *upstream_model;    /* name sent upstream */
  int weight;              /* load-balancing weight, default 1 */
  struct pol_price price;  /* built-in row of upstream_model, then the model's override, then
                            * this deployment's own override; fields -1 if unknown */
  bool has_price;          /* a usable input+output price is known */
  int line;
};

struct pol_model {
  char *name;              /* public name clients send */
  struct pol_provider *provider;  /* = deployments[0].provider */
  char *upstream_model;    /* = deployments[0].upstream_model */
  struct pol_price price;  /* = deployments[0].price */
  bool has_price;          /* = deployments[0].has_price */
  int line;
  /* Resilience (issue 4). Defaults come from the top-level retry/breaker blocks and limits. */
  struct pol_deployment *deployments;
  size_t n_deployments;
  enum pol_balance balance;
  struct pol_model **fallbacks;   /* tried in order after this model's deployments fail */
  size_t n_fallbacks;
  unsigned fallback_on;    /* POL_FAIL_* bits that move on to a fallback; default
                            * connect|timeout|429|5xx|529 */
  struct pol_retry retry;
  struct pol_breaker breaker;
  struct pol_timeouts timeouts;   /* resolved: limits overridden by the model's own */
};

struct pol_limits {
  size_t max_body_bytes;        /* default 4 MiB */
  int connect_timeout_ms;       /* default 5000 */
  int first_byte_timeout_ms;    /* default 60000: upstream response headers / first byte */
  int total_timeout_ms;         /* default 600000 */
  int client_timeout_ms;        /* default 30000: slow/idle client reading or sending */
  int max_connections;          /* default 4096 */
  int idle_timeout_ms;          /* default 60000: silence between upstream stream chunks */
};

struct pol_config {
  char *path;
  char *listen_host;            /* default 127.0.0.1; IPv6 without brackets */
  int listen_port;              /* default 8080; 0 = any free port (tests) */
  char *db_path;                /* default tiergate.db */
  struct pol_provider *providers;
  size_t n_providers;
  struct pol_model *models;
  size_t n_models;
  struct pol_model *default_model;    /* may be NULL */
  struct pol_model *baseline_model;   /* may be NULL: then baseline cost = cost */
  struct pol_limits limits;
  /* Things that do not stop the gateway but deserve a line at startup and in `config check`:
   * a model with no known price, a provider whose key variable is unset. Same format. */
  struct pol_error *warnings;
  size_t n_warnings;
};

/* Loads and validates PATH (at most 4 MiB). Returns 0 and *out, or a negative errno (-ENOENT...
 * when the file cannot be read, -EINVAL when it is invalid) and the errors in errs (*out is NULL
 * then). Env values are read through getenv() at load time. */
int pol_config_load(const char *path, struct pol_config **out, struct pol_errors *errs);
/* Same, from a string (NAME is used in messages). */
int pol_config_load_str(const char *name, const char *yaml, size_t len, struct pol_config **out,
                        struct pol_errors *errs);
void pol_config_free(struct pol_config *c);   /* accepts NULL */

/* Model by public name; NULL if not configured. */
const struct pol_model *pol_model_find(const struct pol_config *c, const char *name);
/* Provider by name; NULL if not configured. */
const struct pol_provider *pol_provider_find(const struct pol_config *c, const char *name);

/* What the configured baseline model would have charged for the same canonical usage, in
 * pico-USD; the cost at MODEL's own price when no baseline is configured; -1 when unknown. */
int64_t pol_baseline_cost_pusd(const struct pol_config *c, const struct pol_model *model,
                               const struct pol_usage *u);

#endif

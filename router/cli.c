/*
 * cli.c: `tiergate serve` and `tiergate config check`: argument parsing, config loading with
 * file:line:col errors, the startup report (which providers lack a key), the request log's
 * lifetime around the server loop.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"
#include "router/router.h"

#define DEFAULT_CONFIG "examples/tiergate.yaml"

static void print_errors(const struct pol_errors *errs) {
  int shown = errs->n < POL_MAX_ERRORS ? errs->n : POL_MAX_ERRORS;
  char line[800];
  for (int i = 0; i < shown; i++) {
    pol_error_format(&errs->e[i], line, sizeof line);
    fprintf(stderr, "%s\n", line);
  }
  if (errs->n > shown) fprintf(stderr, "... and %d more error(s)\n", errs->n - shown);
}

/* Loads PATH, printing errors; NULL on failure. */
static struct pol_config *load(const char *path) {
  struct pol_config *cfg = NULL;
  struct pol_errors errs;
  memset(&errs, 0, sizeof errs);
  int rc = pol_config_load(path, &cfg, &errs);
  if (rc || !cfg) {
    if (errs.n) print_errors(&errs);
    else fprintf(stderr, "%s: cannot load the configuration (error %d)\n", path, rc);
    return NULL;
  }
  return cfg;
}

/* Warnings (no price for a model, a provider whose key variable is unset) do not stop the
 * gateway; they are printed as file:line:col: warning: message. */
static void report_warnings(const struct pol_config *cfg, FILE *f) {
  char line[800];
  for (size_t i = 0; i < cfg->n_warnings; i++) {
    const struct pol_error *w = &cfg->warnings[i];
    if (w->line) snprintf(line, sizeof line, "%s:%d:%d: warning: %s", w->file, w->line, w->col, w->msg);
    else snprintf(line, sizeof line, "%s: warning: %s", w->file, w->msg);
    fprintf(f, "%s\n", line);
  }
}

static void serve_usage(FILE *f) {
  fputs("usage: tiergate serve [--config FILE] [--listen HOST:PORT] [--db PATH]\n"
        "                      [--port-file FILE] [--drain-timeout-ms N]\n"
        "\n"
        "  --config FILE        configuration (default " DEFAULT_CONFIG ")\n"
        "  --listen HOST:PORT   override the config's listen address; port 0 picks a free port\n"
        "  --db PATH            override the config's database path\n"
        "  --port-file FILE     write the bound port there once listening (for tests)\n"
        "  --drain-timeout-ms N on SIGINT/SIGTERM, wait this long for in-flight requests (10000)\n"
        "\n"
        "Prints \"tiergate: listening on http://HOST:PORT\" on stdout once it accepts connections.\n",
        f);
}

int rt_serve_main(int argc, char **argv) {
  const char *config = DEFAULT_CONFIG, *db_path = NULL;
  struct rt_serve_opts o = {.drain_ms = 10000};
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      serve_usage(stdout);
      return 0;
    }
    if (!next) {
      fprintf(stderr, "tiergate serve: unknown or incomplete option '%s'\n", a);
      serve_usage(stderr);
      return 2;
    }
    if (!strcmp(a, "--config")) config = next;
    else if (!strcmp(a, "--listen")) o.listen = next;
    else if (!strcmp(a, "--db")) db_path = next;
    else if (!strcmp(a, "--port-file")) o.port_file = next;
    else if (!strcmp(a, "--drain-timeout-ms")) o.drain_ms = atoi(next);
    else {
      fprintf(stderr, "tiergate serve: unknown option '%s'\n", a);
      serve_usage(stderr);
      return 2;
    }
  }

  struct pol_config *cfg = load(config);
  if (!cfg) {
    fprintf(stderr, "tiergate: refusing to start with an invalid configuration\n");
    return 1;
  }
  fprintf(stderr, "tiergate: config %s: %zu provider(s), %zu model(s)\n", config, cfg->n_providers,
          cfg->n_models);
  report_warnings(cfg, stderr); /* says which providers lack a key, among others */

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "tiergate: libcurl initialisation failed\n");
    pol_config_free(cfg);
    return 1;
  }
  const char *dbp = db_path ? db_path : cfg->db_path;
  char err[512] = "";
  struct db_options dopt = db_default_options();
  struct db_writer *db = db_open(dbp, &dopt, err, sizeof err);
  if (!db) {
    fprintf(stderr, "tiergate: cannot open the request log %s: %s\n", dbp, err);
    pol_config_free(cfg);
    curl_global_cleanup();
    return 1;
  }
  fprintf(stderr, "tiergate: request log %s\n", dbp);

  int rc = rt_server_run(cfg, db, &o);

  struct db_stats st;
  db_stats(db, &st);
  db_close(db); /* flushes every queued row */
  fprintf(stderr, "tiergate: request log closed (%llu row(s) queued this run)\n",
          (unsigned long long)st.queued);
  pol_config_free(cfg);
  curl_global_cleanup();
  return rc;
}

int rt_config_main(int argc, char **argv) {
  if (argc < 3 || strcmp(argv[1], "check") != 0) {
    fputs("usage: tiergate config check FILE\n", stderr);
    return 2;
  }
  const char *path = argv[2];
  struct pol_config *cfg = load(path);
  if (!cfg) return 1;
  /* local models: the file loads, its architecture is supported, slots x context fits */
  int bad = 0;
  for (size_t i = 0; i < cfg->n_providers; i++) {
    const struct pol_provider *p = &cfg->providers[i];
    if (p->kind != POL_PROVIDER_LOCAL) continue;
    char err[800], info[600];
    if (rt_local_check(cfg, p, err, sizeof err, info, sizeof info)) {
      fprintf(stderr, "%s\n", err);
      bad++;
    } else {
      printf("%s: %s\n", path, info);
    }
  }
  if (bad) {
    pol_config_free(cfg);
    return 1;
  }
  report_warnings(cfg, stdout);
  printf("%s: ok (%zu provider(s), %zu model(s)%s)\n", path, cfg->n_providers, cfg->n_models,
         cfg->n_warnings ? ", see the warnings above" : "");
  pol_config_free(cfg);
  return 0;
}

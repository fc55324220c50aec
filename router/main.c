/*
 * main.c: the tiergate command line. Dispatches subcommands to the folder that owns them.
 */
#include <stdio.h>
#include <string.h>

#include "router/router.h"
#include "slm/slm.h"

static void usage(FILE *out) {
  fputs("usage: tiergate <command> [args]\n"
        "\n"
        "commands:\n"
        "  serve [--config FILE]     run the gateway (default config: examples/tiergate.yaml)\n"
        "  config check FILE         validate a config file; errors as file:line:col: message\n"
        "  pull NAME|URL [-o DIR]    download a GGUF model (catalogue: tiergate pull --list)\n"
        "  slm <tool> ...            the in-process engine: info, tokenize, run, bench, mkmodel, quantize\n"
        "  help                      this text\n",
        out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "serve")) return rt_serve_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "config")) return rt_config_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "pull")) return rt_pull_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "slm")) return slm_tool_main(argc - 2, argv + 2);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "tiergate: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}

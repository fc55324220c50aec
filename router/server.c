/* server.c: HTTP server (not written yet). */
#include <stdio.h>

#include "router/router.h"

int rt_serve_main(int argc, char **argv) {
  (void)argc; (void)argv;
  fputs("tiergate serve: not implemented yet\n", stderr);
  return 1;
}

int rt_config_main(int argc, char **argv) {
  (void)argc; (void)argv;
  fputs("tiergate config: not implemented yet\n", stderr);
  return 1;
}

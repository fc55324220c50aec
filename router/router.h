/*
 * router.h: the gateway process. Public header of router/.
 */
#ifndef TIERGATE_ROUTER_H
#define TIERGATE_ROUTER_H

/* `tiergate serve [--config FILE]`; returns the exit code. */
int rt_serve_main(int argc, char **argv);
/* `tiergate config check FILE`; returns the exit code. */
int rt_config_main(int argc, char **argv);
/* `tiergate pull NAME|URL [-o DIR]` (router/pull.c): download a GGUF model, resumable, header and
 * sha256 checked; ARGV[0] is "pull". Returns the exit code: 0 done (or already there), 1 the
 * download or a check failed, 2 usage error. Prints the file's path alone on stdout. */
int rt_pull_main(int argc, char **argv);

#endif

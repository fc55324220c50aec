/*
 * router.h: the gateway process. Public header of router/.
 */
#ifndef TIERGATE_ROUTER_H
#define TIERGATE_ROUTER_H

/* `tiergate serve [--config FILE]`; returns the exit code. */
int rt_serve_main(int argc, char **argv);
/* `tiergate config check FILE`; returns the exit code. */
int rt_config_main(int argc, char **argv);

#endif

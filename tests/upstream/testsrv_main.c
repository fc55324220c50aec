/*
 * testsrv_main.c: the test server as a program, for poking the gateway by hand:
 *   build/tests/upstream/testsrv    prints "testsrv: listening on PORT", serves until killed
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "testsrv.h"

int main(void) {
  int port = 0;
  struct testsrv *s = testsrv_start(&port);
  if (!s) {
    fprintf(stderr, "testsrv: cannot listen\n");
    return 1;
  }
  printf("testsrv: listening on %d\n", port);
  fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sig;
  sigwait(&set, &sig);
  testsrv_stop(s);
  return 0;
}

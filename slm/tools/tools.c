/* tools.c: `tiergate slm <tool>` dispatch (tools not written yet). */
#include <stdio.h>

#include "slm/slm.h"

int slm_tool_main(int argc, char **argv) {
  (void)argc; (void)argv;
  fputs("tiergate slm: not implemented yet\n", stderr);
  return 1;
}

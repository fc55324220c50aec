/* run.c: slm run (not written yet; slm-model replaces this placeholder, which only keeps the
 * dispatcher in tools.c linking). */
#include "slm/tools/tools.h"

int slm_tool_run(int argc, char **argv) {
  (void)argc;
  (void)argv;
  slm_tool_errorf("run", "not implemented yet");
  return 1;
}

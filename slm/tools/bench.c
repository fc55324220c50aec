/* bench.c: slm bench (not written yet; slm-model replaces this placeholder, which only keeps the
 * dispatcher in tools.c linking). */
#include "slm/tools/tools.h"

int slm_tool_bench(int argc, char **argv) {
  (void)argc;
  (void)argv;
  slm_tool_errorf("bench", "not implemented yet");
  return 1;
}

/* mkmodel.c: slm mkmodel (being written). */
#include "slm/tools/tools.h"

int slm_tool_mkmodel(int argc, char **argv) {
  (void)argc;
  (void)argv;
  slm_tool_errorf("mkmodel", "not implemented yet");
  return 1;
}

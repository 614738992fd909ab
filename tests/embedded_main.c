/* The kernel suite on bare metal (make test-embedded): on the Cortex-M55
   the Helium kernels against the scalar references for every size class,
   and the SLM_NO_STDIO formatter against newlib's snprintf. Built with
   tests/test_kernels.c (which includes slm.c) and tests/util.c, run under
   qemu-system-arm with semihosting (the writer test's file goes to the
   host's /tmp through it). */
#include "test.h"

void test_kernels(void);
void test_embed_fmt(void);

int main(void) {
    test_kernels();
    test_embed_fmt();
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

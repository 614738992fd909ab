#include "test.h"
void test_sampler(void) {}

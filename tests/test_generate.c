#include "test.h"
void test_generate(void) {}

/* Minimal Cortex-M (ARMv7-M / ARMv8-M mainline) startup for QEMU boards
   (mps2-an386, mps3-an547), from ../shared/toolchains/cm/startup.c. Link with:
     --specs=rdimon.specs -nostartfiles -T an547.ld (or an386.ld)
   (-nostartfiles drops newlib's rdimon-crt0, whose semihosting HEAPINFO call lets QEMU
   move the stack/heap limit to places that do not match this linker script).
   Reset_Handler: enable FPU/MVE, copy .data, zero .bss, set up semihosting stdio,
   run constructors, exit(main()) -> semihosting SYS_EXIT -> QEMU exits with main's status. */
#include <stdint.h>
#include <stdlib.h>
extern uint32_t __StackTop, __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void _init(void) {}
void _fini(void) {}

__attribute__((section(".vectors"), used))
const void *const vector_table[16] = {
  &__StackTop, (void *)Reset_Handler, (void *)Fault_Handler, (void *)Fault_Handler,
  (void *)Fault_Handler, (void *)Fault_Handler, (void *)Fault_Handler, 0, 0, 0, 0,
  (void *)Fault_Handler, (void *)Fault_Handler, 0, (void *)Fault_Handler, (void *)Fault_Handler,
};

__attribute__((noreturn, noinline, used)) static void reset_c(void) {
  uint32_t *src = &__data_load__, *dst = &__data_start__;
  while (dst < &__data_end__) *dst++ = *src++;
  for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

__attribute__((naked, noreturn)) void Reset_Handler(void) {
  __asm__ volatile(
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CPACR |= 0xF << 20: full access to CP10/CP11 (FPU, and MVE on M55), before any FP code */
    "ldr r0, =0xE000ED88\n"
    "ldr r1, [r0]\n"
    "orr r1, r1, #(0xF << 20)\n"
    "str r1, [r0]\n"
    "dsb\n"
    "isb\n"
#endif
    "b reset_c\n");
}

/* Any fault: semihosting SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown (0x20023),
   so QEMU exits with status 1 instead of hanging. */
__attribute__((naked, noreturn)) void Fault_Handler(void) {
  __asm__ volatile(
    "movs r0, #0x18\n"
    "ldr r1, =0x20023\n"
    "bkpt 0xab\n"
    "3: b 3b\n");
}

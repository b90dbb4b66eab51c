// The instruction set a translation unit is compiled for. Kernels built once per instruction
// set (power_sums.cpp) define SAP_KERNELS_ISA; every internal header puts its inline functions
// in namespace sap_kernels::cpu::SAP_KERNELS_ISA, so that the AVX2 and the baseline copies of
// a function never merge at link time (the linker would keep one of them for both).
#pragma once

#ifndef SAP_KERNELS_ISA
#define SAP_KERNELS_ISA baseline
#endif

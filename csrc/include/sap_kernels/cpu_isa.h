// The copies of the CPU kernels, one per instruction set, and which one runs. The best copy
// this CPU supports is chosen when the library loads; set_cpu_isa picks another (tests run
// every copy this way, benchmarks compare them).
#pragma once

namespace sap_kernels {

// Worst to best. Every build has the baseline copy; x86-64 builds add the others.
enum class CpuIsa { kBaseline = 0, kX86_64_V3 = 1, kX86_64_V4 = 2 };

constexpr int kCpuIsaCount = 3;

// "baseline", "x86-64-v3" (AVX2, FMA, BMI2) or "x86-64-v4" (AVX-512 F/BW/DQ/VL).
const char* cpu_isa_name(CpuIsa isa);

// True when the copy was compiled into this build and this CPU can run it.
bool cpu_isa_supported(CpuIsa isa);

// The copy every CPU kernel runs now.
CpuIsa active_cpu_isa();

// Makes `isa` the copy that runs; false (and nothing changed) when it is not supported.
// Meant to be called between kernel calls, not during one.
bool set_cpu_isa(CpuIsa isa);

}  // namespace sap_kernels

// pybind11 bindings of the framework-free kernels: the extension module sap_kernels._C.
// Tensors cross as raw addresses (int) that the Python layer has already validated: device,
// dtype, contiguity, sizes and offsets. The GIL is released while a kernel runs.
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "addresses.h"
#include "sap_kernels/apply_mask.h"
#include "sap_kernels/cpu_isa.h"
#include "sap_kernels/huge_pages.h"
#include "sap_kernels/pqi.h"
#include "sap_kernels/power_sums.h"
#include "sap_kernels/sap_counts.h"
#include "sap_kernels/sap_step.h"
#include "sap_kernels/topk_mask.h"

namespace py = pybind11;
using namespace sap_kernels;
using bindings::address;
using bindings::segmented_buffer;

#ifdef SAP_KERNELS_WITH_CUDA
void bind_cuda(py::module_& m);  // bindings_cuda.cpp
#endif

namespace {

// Outputs given as 0 are not written.
int64_t power_sums(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel,
                   uintptr_t offsets, int64_t num_segments, double p, double q, uintptr_t scale,
                   uintptr_t sum_p, uintptr_t sum_q, uintptr_t count) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  const PowerSumsOutput out{address<double>(scale), address<double>(sum_p),
                            address<double>(sum_q), address<int64_t>(count), nullptr};
  py::gil_scoped_release release;
  return segmented_power_sums_cpu(input, p, q, out);
}

int64_t pqi(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel, uintptr_t offsets,
            int64_t num_segments, double p, double q, uintptr_t out, uintptr_t count) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  py::gil_scoped_release release;
  return segmented_pqi_cpu(input, p, q, address<double>(out), address<int64_t>(count));
}

void retain_bound(uintptr_t pqi, uintptr_t count, int64_t num_segments, double p, double q,
                  double eta_r, uintptr_t out) {
  py::gil_scoped_release release;
  sap_retain_bound_cpu(address<const double>(pqi), address<const int64_t>(count), num_segments,
                       SapParameters{p, q, eta_r, 1.0, 1.0}, address<double>(out));
}

void prune_counts(uintptr_t pqi, uintptr_t count, int64_t num_segments, double p, double q,
                  double eta_r, double gamma, double beta, uintptr_t out) {
  py::gil_scoped_release release;
  sap_prune_counts_cpu(address<const double>(pqi), address<const int64_t>(count), num_segments,
                       SapParameters{p, q, eta_r, gamma, beta}, address<int64_t>(out));
}

// Returns the number of non-finite live entries (the mask is then not to be used).
int64_t topk_mask(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel, uintptr_t offsets,
                  int64_t num_segments, uintptr_t keep, uintptr_t out) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  py::gil_scoped_release release;
  return segmented_topk_mask_cpu(input, address<const int64_t>(keep), address<uint8_t>(out));
}

// Returns the number of non-finite live entries (the outputs are then not to be used).
int64_t sap_step(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel, uintptr_t offsets,
                 int64_t num_segments, double p, double q, double eta_r, double gamma, double beta,
                 uintptr_t pqi, uintptr_t count, uintptr_t prune, uintptr_t out) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  py::gil_scoped_release release;
  return sap_step_cpu(input, SapParameters{p, q, eta_r, gamma, beta}, address<double>(pqi),
                      address<int64_t>(count), address<int64_t>(prune), address<uint8_t>(out));
}

int64_t count_nonfinite(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, 0, 0);
  py::gil_scoped_release release;
  return count_nonfinite_live_cpu(input);
}

void apply_mask(uintptr_t params, int32_t element_size, uintptr_t mask, int64_t numel) {
  py::gil_scoped_release release;
  apply_mask_cpu(address<void>(params), element_size, address<const uint8_t>(mask), numel);
}

void advise_huge_pages_at(uintptr_t data, int64_t bytes) {
  advise_huge_pages(address<void>(data), bytes);
}

std::vector<std::string> supported_cpu_isas() {
  std::vector<std::string> names;
  for (int i = 0; i < kCpuIsaCount; ++i) {
    const auto isa = static_cast<CpuIsa>(i);
    if (cpu_isa_supported(isa)) names.emplace_back(cpu_isa_name(isa));
  }
  return names;
}

void select_cpu_isa(const std::string& name) {
  for (int i = 0; i < kCpuIsaCount; ++i) {
    const auto isa = static_cast<CpuIsa>(i);
    if (name == cpu_isa_name(isa)) {
      if (set_cpu_isa(isa)) return;
      break;
    }
  }
  std::string supported;
  for (const std::string& each : supported_cpu_isas()) {
    supported += (supported.empty() ? "'" : ", '") + each + "'";
  }
  throw py::value_error("set_cpu_isa: expected one of the kernel copies this build and CPU run (" +
                        supported + "), got '" + name + "'");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "sap_kernels native kernels (CPU, and CUDA where built with it)";
  m.def("power_sums", &power_sums,
        "Segmented power sums; returns the number of non-finite live entries.");
  m.def("pqi", &pqi, "PQ Index per segment; returns the number of non-finite live entries.");
  m.def("retain_bound", &retain_bound, "SAP retained-count bound (Theorem 2).");
  m.def("prune_counts", &prune_counts, "SAP prune counts.");
  m.def("topk_mask", &topk_mask, "Exact per-segment magnitude mask (keep counts per segment).");
  m.def("sap_step", &sap_step, "One fused SAP step: PQI, counts, prune counts and the new mask.");
  m.def("count_nonfinite", &count_nonfinite, "The number of live NaN / inf entries.");
  m.def("apply_mask", &apply_mask, "Zeroes in place the entries whose mask byte is 0.");
  m.def("cpu_isas", &supported_cpu_isas,
        "The instruction sets with a kernel copy this build and CPU run, worst to best.");
  m.def("cpu_isa", [] { return std::string(cpu_isa_name(active_cpu_isa())); },
        "The instruction set whose kernel copy runs now.");
  m.def("set_cpu_isa", &select_cpu_isa, "Makes the copy for this instruction set the one that runs.");
  m.def("advise_huge_pages", &advise_huge_pages_at,
        "Advises huge pages for a fresh buffer (Linux transparent huge pages; advice only).");
#ifdef SAP_KERNELS_WITH_CUDA
  bind_cuda(m);
#else
  m.attr("has_cuda") = false;
#endif
}

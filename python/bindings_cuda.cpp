// pybind11 bindings of the CUDA kernels (built with SAP_KERNELS_WITH_CUDA). Device memory
// crosses as raw addresses that the Python layer has validated, with the current CUDA stream
// and a workspace it allocated (sap_kernels/_cuda.py). A failed launch raises RuntimeError.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "addresses.h"
#include "sap_kernels/cuda.h"

namespace py = pybind11;
using namespace sap_kernels;
using bindings::address;
using bindings::segmented_buffer;

namespace {

CudaLaunch launch_of(uintptr_t stream, uintptr_t workspace, size_t workspace_bytes) {
  return CudaLaunch{address<void>(stream), address<void>(workspace), workspace_bytes};
}

void check(const char* op, int code) {
  if (code != 0) {
    throw std::runtime_error(std::string(op) + ": CUDA error: " + cuda_error_message(code));
  }
}

void power_sums(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel, uintptr_t offsets,
                int64_t num_segments, double p, double q, uintptr_t scale, uintptr_t sum_p,
                uintptr_t sum_q, uintptr_t count, uintptr_t pqi, uintptr_t nonfinite,
                uintptr_t stream, uintptr_t workspace, size_t workspace_bytes) {
  const PowerSumsOutput out{address<double>(scale), address<double>(sum_p),
                            address<double>(sum_q), address<int64_t>(count), address<double>(pqi)};
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  check("segmented_power_sums",
        segmented_power_sums_cuda(input, p, q, out, address<int32_t>(nonfinite),
                                  launch_of(stream, workspace, workspace_bytes)));
}

void topk_mask(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel, uintptr_t offsets,
               int64_t num_segments, uintptr_t keep, uintptr_t out, uintptr_t stream,
               uintptr_t workspace, size_t workspace_bytes) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  check("segmented_topk_mask",
        segmented_topk_mask_cuda(input, address<const int64_t>(keep), address<uint8_t>(out),
                                 launch_of(stream, workspace, workspace_bytes)));
}

void sap_step(uintptr_t params, int32_t dtype, uintptr_t mask, int64_t numel, uintptr_t offsets,
              int64_t num_segments, double p, double q, double eta_r, double gamma, double beta,
              uintptr_t pqi, uintptr_t count, uintptr_t prune, uintptr_t out,
              uintptr_t nonfinite, uintptr_t stream, uintptr_t workspace,
              size_t workspace_bytes) {
  const SegmentedBuffer input = segmented_buffer(params, dtype, mask, numel, offsets, num_segments);
  check("sap_step", sap_step_cuda(input, SapParameters{p, q, eta_r, gamma, beta},
                                  address<double>(pqi), address<int64_t>(count),
                                  address<int64_t>(prune), address<uint8_t>(out),
                                  address<int32_t>(nonfinite),
                                  launch_of(stream, workspace, workspace_bytes)));
}

void retain_bound(uintptr_t pqi, uintptr_t count, int64_t num_segments, double p, double q,
                  double eta_r, uintptr_t out, uintptr_t stream) {
  check("sap_retain_bound",
        sap_retain_bound_cuda(address<const double>(pqi), address<const int64_t>(count),
                              num_segments, SapParameters{p, q, eta_r, 1.0, 1.0},
                              address<double>(out), address<void>(stream)));
}

void prune_counts(uintptr_t pqi, uintptr_t count, int64_t num_segments, double p, double q,
                  double eta_r, double gamma, double beta, uintptr_t out, uintptr_t stream) {
  check("sap_prune_counts",
        sap_prune_counts_cuda(address<const double>(pqi), address<const int64_t>(count),
                              num_segments, SapParameters{p, q, eta_r, gamma, beta},
                              address<int64_t>(out), address<void>(stream)));
}

}  // namespace

void bind_cuda(py::module_& m) {
  m.def("power_sums_cuda_workspace", [](int64_t numel, int64_t num_segments, int32_t dtype,
                                        double q) {
    return power_sums_cuda_workspace_bytes(numel, num_segments, static_cast<ScalarType>(dtype), q);
  });
  m.def("topk_mask_cuda_workspace", [](int64_t numel, int64_t num_segments, int32_t dtype) {
    return topk_mask_cuda_workspace_bytes(numel, num_segments, static_cast<ScalarType>(dtype));
  });
  m.def("sap_step_cuda_workspace", [](int64_t numel, int64_t num_segments, int32_t dtype,
                                      double q) {
    return sap_step_cuda_workspace_bytes(numel, num_segments, static_cast<ScalarType>(dtype), q);
  });
  // The kernels only enqueue work, so they keep the GIL: no wait on the device happens here.
  m.def("power_sums_cuda", &power_sums, "Segmented power sums (and PQI) on the device.");
  m.def("topk_mask_cuda", &topk_mask, "Exact per-segment magnitude mask on the device.");
  m.def("sap_step_cuda", &sap_step, "One fused SAP step on the device.");
  m.def("retain_bound_cuda", &retain_bound, "SAP retained-count bound on the device.");
  m.def("prune_counts_cuda", &prune_counts, "SAP prune counts on the device.");
  m.attr("has_cuda") = true;
}

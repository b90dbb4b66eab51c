// The CUDA kernels (csrc/cuda/): the ops of the CPU backend on device memory, with the same
// contract. Every pointer of a SegmentedBuffer and of the outputs is device memory. A call
// enqueues its kernels on `stream` (a cudaStream_t) and returns without waiting for them; it
// uses the caller's workspace (device memory of at least the *_workspace_bytes given for the
// same sizes) and allocates nothing. Returns a cudaError_t code: 0 when every launch succeeded.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sap_kernels/power_sums.h"
#include "sap_kernels/sap_counts.h"

namespace sap_kernels {

struct CudaLaunch {
  void* stream;     // cudaStream_t
  void* workspace;  // device memory, 256-byte aligned
  size_t workspace_bytes;
};

// The power sums (and, where out.pqi, the PQI) of every segment; *nonfinite (a device int32,
// zeroed by the caller) becomes 1 when a live entry is NaN or inf (those segments get NaN).
size_t power_sums_cuda_workspace_bytes(int64_t numel, int64_t num_segments, ScalarType dtype,
                                       double q);
int segmented_power_sums_cuda(const SegmentedBuffer& input, double p, double q,
                              const PowerSumsOutput& out, int32_t* nonfinite,
                              const CudaLaunch& launch);

// The mask keeping min(keep[s], d) live entries of largest |w| per segment (keep: device).
// Params must be finite where live.
size_t topk_mask_cuda_workspace_bytes(int64_t numel, int64_t num_segments, ScalarType dtype);
int segmented_topk_mask_cuda(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out,
                             const CudaLaunch& launch);

// One SAP step: pqi, count, prune [S] and the new mask, equal to the three ops composed.
size_t sap_step_cuda_workspace_bytes(int64_t numel, int64_t num_segments, ScalarType dtype,
                                     double q);
int sap_step_cuda(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,
                  int64_t* count, int64_t* prune, uint8_t* out, int32_t* nonfinite,
                  const CudaLaunch& launch);

// Elementwise over segments (no workspace).
int sap_retain_bound_cuda(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, double* retain, void* stream);
int sap_prune_counts_cuda(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, int64_t* prune, void* stream);

// The message of an error code these functions return.
const char* cuda_error_message(int code);

}  // namespace sap_kernels

// Exact per-segment magnitude masks: in each segment keep the min(keep[s], d) live entries of
// largest |w| (d = live entries); among equal |w| the lower flat index is kept. Dead entries
// (mask 0) stay 0. Params must be finite where live: the kernel counts the live NaN / inf
// entries as it reads each segment, and when it found any its mask is not to be used.
#pragma once

#include <cstdint>

#include "sap_kernels/power_sums.h"

namespace sap_kernels {

// keep: num_segments counts >= 0; out: numel bytes, written 0 / 1. Returns the number of live
// NaN / inf entries.
int64_t segmented_topk_mask_cpu(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out);

// The number of live NaN / inf entries of input (offsets are not used): one read, all cores.
int64_t count_nonfinite_live_cpu(const SegmentedBuffer& input);

}  // namespace sap_kernels

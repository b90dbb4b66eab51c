// One SAP iteration fused (Diao et al., ICLR 2023, Algorithm 1): per segment the PQ Index of
// the live entries (pqi.h), the prune count c (sap_counts.h) and the mask that keeps the
// d - c live entries of largest |w| (topk_mask.h), bit for bit what the three ops give.
#pragma once

#include <cstdint>

#include "sap_kernels/power_sums.h"
#include "sap_kernels/sap_counts.h"

namespace sap_kernels {

// pqi, count, prune: [num_segments]; out: numel bytes, written 0 / 1. Returns the number of
// non-finite live entries (the mask is then meaningless; the caller raises).
int64_t sap_step_cpu(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,
                     int64_t* count, int64_t* prune, uint8_t* out);

}  // namespace sap_kernels

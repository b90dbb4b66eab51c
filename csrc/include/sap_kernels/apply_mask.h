// Zeroes, in place, the entries of a buffer whose mask byte is 0 (one pass, any element size).
#pragma once

#include <cstdint>

namespace sap_kernels {

// element_size: 2, 4 or 8 bytes; a zeroed entry becomes +0.0.
void apply_mask_cpu(void* params, int element_size, const uint8_t* mask, int64_t numel);

}  // namespace sap_kernels

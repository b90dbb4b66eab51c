// Raw addresses from the Python layer as typed pointers, and the segmented buffer they describe
// (the tensors were validated there and stay alive for the call).
#pragma once

#include <cstdint>

#include "sap_kernels/power_sums.h"
#include "sap_kernels/scalar_type.h"

namespace sap_kernels::bindings {

template <class T>
T* address(uintptr_t value) {
  return reinterpret_cast<T*>(value);
}

inline SegmentedBuffer segmented_buffer(uintptr_t params, int32_t dtype, uintptr_t mask,
                                        int64_t numel, uintptr_t offsets, int64_t num_segments) {
  return SegmentedBuffer{address<const void>(params), static_cast<ScalarType>(dtype),
                         address<const uint8_t>(mask), numel, address<const int64_t>(offsets),
                         num_segments};
}

}  // namespace sap_kernels::bindings

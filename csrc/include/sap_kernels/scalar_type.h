// Element types of a parameter buffer, as the Python layer passes them across the boundary.
#pragma once

#include <cstdint>

namespace sap_kernels {

enum class ScalarType : int32_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kFloat16 = 2,
  kBFloat16 = 3,
};

}  // namespace sap_kernels

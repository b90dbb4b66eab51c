#include "sap_kernels/sap_counts.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sap_kernels {
namespace {

// r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p)), NaN where I is NaN.
double retain_bound(double pqi, int64_t count, const SapParameters& sap) {
  const double d = static_cast<double>(count);
  const double eta_factor = std::pow(1.0 + sap.eta_r, -sap.q / (sap.q - sap.p));
  return d * eta_factor * std::pow(1.0 - pqi, sap.q * sap.p / (sap.q - sap.p));
}

}  // namespace

void sap_retain_bound_cpu(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, double* retain) {
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < num_segments; ++s) retain[s] = retain_bound(pqi[s], count[s], sap);
}

int64_t sap_prune_count(double pqi, int64_t count, const SapParameters& sap) {
  if (std::isnan(pqi) || count == 0) return 0;
  const double d = static_cast<double>(count);
  const double r = retain_bound(pqi, count, sap);
  const double wanted = std::min(sap.gamma * (d - r), sap.beta * d);
  return static_cast<int64_t>(std::floor(std::max(0.0, wanted)));
}

void sap_prune_counts_cpu(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& sap, int64_t* prune) {
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < num_segments; ++s) prune[s] = sap_prune_count(pqi[s], count[s], sap);
}

}  // namespace sap_kernels

// SAP prune counts from the PQ Index (Diao et al., ICLR 2023, Theorem 2 and Algorithm 1):
//   r = d * (1 + eta_r)^(-q/(q-p)) * (1 - I)^(q*p/(q-p))
//   c = floor(max(0, min(gamma * (d - r), beta * d)))      (0 where I is NaN or d = 0)
#pragma once

#include <cstdint>

namespace sap_kernels {

struct SapParameters {
  double p;
  double q;
  double eta_r;
  double gamma;
  double beta;
};

void sap_retain_bound_cpu(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& params, double* retain);

// The factors of r that depend on the parameters alone: computed once a call, not a segment.
struct SapCountFactors {
  double eta_factor;    // (1 + eta_r)^(-q/(q-p))
  double pqi_exponent;  // q p / (q - p)
};

SapCountFactors sap_count_factors(const SapParameters& params);

// The prune count of one segment (compiled once, so every caller gets the same bits).
int64_t sap_prune_count(double pqi, int64_t count, const SapParameters& params,
                        const SapCountFactors& factors);

void sap_prune_counts_cpu(const double* pqi, const int64_t* count, int64_t num_segments,
                          const SapParameters& params, int64_t* prune);

}  // namespace sap_kernels

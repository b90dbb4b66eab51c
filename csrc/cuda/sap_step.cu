// sap_step_cuda: one SAP step. The tile kernel of the power sums (STEP) also writes the PQI,
// prune count and mask of every segment whole in its tile, from the entries in its registers,
// and the first radix round's histogram of the segments selected grid-wide;
// the combine finishes the segments that cross tiles (their counts too), which the selection of
// select_launch.cuh then masks. The values are those of the separate ops, which run the same
// device code in the same order.
#include "sap_kernels/cuda.h"
#include "select_launch.cuh"
#include "sums_launch.cuh"

namespace sap_kernels {
namespace {

using namespace cuda;

template <class Traits>
bool launch(SumsArgs a, const SegmentedBuffer& input, Workspace& workspace,
            cudaStream_t stream) {
  if (input.numel == 0) return launch_sums<Traits, true>(a, input.dtype, workspace, stream);
  SelectArgs select{};
  select.keep = KeepCounts{a.count, a.prune};
  select.out = a.out;
  // first: the sums' tile kernel adds the first radix round's histograms into its slots
  if (!prepare_selection(input, select, workspace, stream)) return false;
  a.first_histograms = select.histograms;
  a.block_max = select.block_max;
  if (!launch_sums<Traits, true>(a, input.dtype, workspace, stream)) return false;
  launch_long_selection<Traits>(select, stream);
  return true;
}

}  // namespace

size_t sap_step_cuda_workspace_bytes(int64_t numel, int64_t num_segments, ScalarType dtype,
                                     double q) {
  return power_sums_cuda_workspace_bytes(numel, num_segments, dtype, q) +
         3 * Workspace::bytes_for<double>(num_segments) +
         topk_mask_cuda_workspace_bytes(numel, num_segments, dtype);
}

int sap_step_cuda(const SegmentedBuffer& input, const SapParameters& sap, double* pqi,
                  int64_t* count, int64_t* prune, uint8_t* out, int32_t* nonfinite,
                  const CudaLaunch& launch_info) {
  const auto stream = static_cast<cudaStream_t>(launch_info.stream);
  Workspace workspace(launch_info.workspace, launch_info.workspace_bytes);
  SumsArgs a = sums_arguments(input, sap.p, sap.q, nonfinite);
  a.scale = workspace.take<double>(input.num_segments);  // the sums are not returned
  a.sum_p = workspace.take<double>(input.num_segments);
  a.sum_q = workspace.take<double>(input.num_segments);
  a.count = count;
  a.pqi = pqi;
  a.prune = prune;
  a.rule = make_count_rule(sap);
  a.out = out;
  const bool fits = (a.sum_q != nullptr || input.num_segments == 0) &&
                    for_dtype(input.dtype, [&](auto traits) {
                      return launch<decltype(traits)>(a, input, workspace, stream);
                    });
  if (!fits) return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace sap_kernels

// segmented_topk_mask_cuda: exact per-segment magnitude masks. A tile kernel ranks the segments
// whole in each tile on chip and takes the first radix round of the long ones; the segments
// that cross tiles follow (select_launch.cuh).
#include "sap_kernels/cuda.h"
#include "select_launch.cuh"
#include "sums_launch.cuh"

namespace sap_kernels {
namespace {

using namespace cuda;

union SelectTileStorage {
  PieceStorage pieces;
  SelectStorage select;
};

template <class Traits>
__global__ __launch_bounds__(kThreads) void select_tile_kernel(SelectArgs a) {
  __shared__ SelectTileStorage storage;
  const int64_t t = blockIdx.x;
  typename Traits::Bits bits[kItems];
  bool live[kItems];
  TilePieces pieces;
  const int64_t n_valid = begin_tile<Traits>(a.params, a.mask, a.offsets, a.numel, a.tile_first,
                                             a.tile_last, t, storage.pieces, bits, live, pieces);
  const int64_t tile_start = t * kTile;
  __syncthreads();  // the pieces' storage is the selection's too
  select_in_tile<Traits>(bits, live, pieces, tile_start, n_valid, a.offsets, a.keep, a.out,
                         storage.select);
  __shared__ uint32_t first_bins[kBins];
  add_first_histograms<Traits>(a.offsets, a.block_max, a.histograms, bits, live, pieces,
                               first_bins);
}

template <class Traits>
void launch(const SelectArgs& a, cudaStream_t stream) {
  select_tile_kernel<Traits><<<static_cast<unsigned>(a.num_tiles), kThreads, 0, stream>>>(a);
  launch_long_selection<Traits>(a, stream);
}

}  // namespace

size_t topk_mask_cuda_workspace_bytes(int64_t numel, int64_t num_segments, ScalarType dtype) {
  (void)num_segments;
  const int64_t tiles = ceil_div(numel, kTile);
  return 2 * Workspace::bytes_for<int64_t>(tiles) +
         select_workspace_bytes(numel, tiles, kBlockSelectMax, dtype);
}

// Fills a's tile plan and selection slots from the workspace; false when it is too small.
bool prepare_selection(const SegmentedBuffer& input, SelectArgs& a, Workspace& workspace,
                       cudaStream_t stream) {
  a.params = input.params;
  a.mask = input.mask;
  a.offsets = input.offsets;
  a.numel = input.numel;
  a.num_tiles = ceil_div(input.numel, kTile);
  a.block_max = kBlockSelectMax;
  int64_t* first = workspace.take<int64_t>(a.num_tiles);
  int64_t* last = workspace.take<int64_t>(a.num_tiles);
  if (!take_select_workspace(workspace, a, input.dtype, stream)) return false;
  a.tile_first = first;
  a.tile_last = last;
  const unsigned plan_blocks = static_cast<unsigned>(ceil_div(a.num_tiles, kThreads));
  tile_plan_kernel<<<plan_blocks, kThreads, 0, stream>>>(input.offsets, input.num_segments,
                                                         input.numel, a.num_tiles, first, last);
  return true;
}

int segmented_topk_mask_cuda(const SegmentedBuffer& input, const int64_t* keep, uint8_t* out,
                             const CudaLaunch& launch_info) {
  if (input.numel == 0) return 0;
  const auto stream = static_cast<cudaStream_t>(launch_info.stream);
  Workspace workspace(launch_info.workspace, launch_info.workspace_bytes);
  SelectArgs a{};
  a.keep = KeepCounts{keep, nullptr};
  a.out = out;
  if (!prepare_selection(input, a, workspace, stream)) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  for_dtype(input.dtype, [&](auto traits) {
    launch<decltype(traits)>(a, stream);
    return true;
  });
  return static_cast<int>(cudaGetLastError());
}

}  // namespace sap_kernels

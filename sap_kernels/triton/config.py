"""The sizes the Triton kernels work in. Tests shrink them (monkeypatch) so that a few hundred
entries already cover many tiles, pieces that cross them and several combine levels."""

# Entries of the flat buffer per program of a tile kernel (a power of two).
TILE = 2048
# Records per program when the pieces of segments that cross tiles are combined (a power of two).
COMBINE_CHUNK = 1024
# Offsets a tile reads per step when it maps its entries to segments (a power of two).
SEGMENT_BLOCK = 1024
# Selection: a segment that lies in one tile is ranked there; one that crosses tiles and has at
# most this many entries is selected by one program (radix rounds over its entries); a longer one
# by all the tiles it covers, with one histogram per round in memory (a power of two).
BLOCK_SELECT_MAX = 1 << 16
# The segments selected by all their tiles keep the keys that still match, once they are few,
# in a buffer of one key per this many entries of the buffer (a power of two dividing TILE).
CANDIDATE_DIVISOR = 32
# One that crosses tiles and has at most this many entries (half as many float64) is read once,
# into the program's registers, for all its rounds (a power of two): 16 a thread at NUM_WARPS.
BLOCK_ON_CHIP = 4096
# Warps per program of the tile kernels: 2048 entries over 256 threads keep their values in
# registers (with 128 threads, the float64 scans of the power sums spill).
NUM_WARPS = 8

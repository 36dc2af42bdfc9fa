// Quantize (n_blocks, MX_BLOCK_SIZE) rows of float16/32/64 (read as raw bits) to element
// codes and E8M0 scale bytes; the format is the compile-time MxFormat MX_FORMAT (see
// _cuda_sources.format_definitions).  block_ids (null: the row numbers) number the rows for
// stochastic rounding.
//
// Work distribution: MX_QUANTIZE_LANES (8) lanes per block, each owning MX_QUANTIZE_WIDTH
// (4) consecutive elements read with one vector load (8 bytes of float16, 16 of float32,
// 2 x 16 of float64); the block's largest key and its non-finite flag are reduced over the
// 8 lanes with shuffles, each lane writes its 4 codes as one 4-byte store and the group's
// first lane writes the scale byte.  The input must start on a multiple of the vector width
// and the codes on 4 bytes (the CuPy backend copies inputs that do not).
#include "mx_warp.cuh"
#include "mx_index.cuh"

#define MX_QUANTIZE_LANES 8
#define MX_QUANTIZE_WIDTH 4
static_assert(MX_BLOCK_SIZE == MX_QUANTIZE_LANES * MX_QUANTIZE_WIDTH,
              "8 lanes of 4 elements per 32-element block");

// The 4 elements starting at element i (a multiple of 4) of each input type.
__device__ __forceinline__ void mx_load_f16(const unsigned short* in, long long i,
                                            MxValue v[MX_QUANTIZE_WIDTH]) {
    const uint2 w = *reinterpret_cast<const uint2*>(in + i);
    v[0] = mx_unpack_f16((unsigned short)(w.x & 0xFFFFu));
    v[1] = mx_unpack_f16((unsigned short)(w.x >> 16));
    v[2] = mx_unpack_f16((unsigned short)(w.y & 0xFFFFu));
    v[3] = mx_unpack_f16((unsigned short)(w.y >> 16));
}

__device__ __forceinline__ void mx_load_f32(const mx_u32* in, long long i,
                                            MxValue v[MX_QUANTIZE_WIDTH]) {
    const uint4 w = *reinterpret_cast<const uint4*>(in + i);
    v[0] = mx_unpack_f32(w.x);
    v[1] = mx_unpack_f32(w.y);
    v[2] = mx_unpack_f32(w.z);
    v[3] = mx_unpack_f32(w.w);
}

__device__ __forceinline__ void mx_load_f64(const mx_u64* in, long long i,
                                            MxValue v[MX_QUANTIZE_WIDTH]) {
    const ulonglong2 lo = *reinterpret_cast<const ulonglong2*>(in + i);
    const ulonglong2 hi = *reinterpret_cast<const ulonglong2*>(in + i + 2);
    v[0] = mx_unpack_f64(lo.x);
    v[1] = mx_unpack_f64(lo.y);
    v[2] = mx_unpack_f64(hi.x);
    v[3] = mx_unpack_f64(hi.y);
}

// One lane's share of block `row`: every lane of the warp calls this (the reductions need
// full warps); lanes past the last block hold zeros and write nothing.
__device__ __forceinline__ void mx_quantize_lanes(const MxValue v[MX_QUANTIZE_WIDTH],
                                                  bool in_range, long long row, int lane,
                                                  unsigned char* codes, unsigned char* scales,
                                                  int rounding, int scale_mode, mx_u64 seed,
                                                  const mx_u64* block_ids) {
    constexpr MxFormat kFormat = MX_FORMAT;
    bool nonfinite = false;
    mx_u64 key = 0;
#pragma unroll
    for (int k = 0; k < MX_QUANTIZE_WIDTH; ++k) {
        nonfinite = nonfinite || v[k].cls == MX_NONFINITE;
        const mx_u64 kk = mx_magnitude_key(v[k]);
        key = kk > key ? kk : key;
    }
    const bool bad = mx_group_any(nonfinite, MX_QUANTIZE_LANES);
    key = mx_group_max(key, MX_QUANTIZE_LANES);
    if (!in_range) return;
    const int x = mx_shared_exponent(kFormat, key, scale_mode);
    mx_u32 word = 0;
#pragma unroll
    for (int k = 0; k < MX_QUANTIZE_WIDTH; ++k) {
        const int element = lane * MX_QUANTIZE_WIDTH + k;
        const mx_u64 index = mx_random_index(block_ids, row, MX_BLOCK_SIZE, element);
        const unsigned code = bad ? 0u : mx_encode(kFormat, v[k], x, rounding, seed, index);
        word |= (mx_u32)(code & 0xFFu) << (8 * k);
    }
    *reinterpret_cast<mx_u32*>(codes + row * MX_BLOCK_SIZE + lane * MX_QUANTIZE_WIDTH) = word;
    if (lane == 0) {
        scales[row] = (unsigned char)(bad ? MX_SCALE_NAN_CODE : x + MX_SCALE_BIAS);
    }
}

// Threads are launched in whole warps and n_blocks * 8 threads do work: a warp wholly past
// the end returns at once, a partly filled one keeps every lane for the shuffles.
#define MX_QUANTIZE_KERNEL(NAME, BITS_T, LOAD)                                              \
    extern "C" __global__ void NAME(const BITS_T* __restrict__ in,                            \
                                    unsigned char* __restrict__ codes,                        \
                                    unsigned char* __restrict__ scales, long long n_blocks,   \
                                    int rounding, int scale_mode, mx_u64 seed,                \
                                    const mx_u64* __restrict__ block_ids) {                   \
        const long long t = mx_thread_index();                                                \
        if ((t & ~31ll) / MX_QUANTIZE_LANES >= n_blocks) return;                              \
        const long long row = t / MX_QUANTIZE_LANES;                                          \
        const int lane = (int)(t % MX_QUANTIZE_LANES);                                        \
        const bool in_range = row < n_blocks;                                                 \
        MxValue v[MX_QUANTIZE_WIDTH];                                                         \
        if (in_range) {                                                                       \
            LOAD(in, row * MX_BLOCK_SIZE + lane * MX_QUANTIZE_WIDTH, v);                      \
        } else {                                                                              \
            for (int k = 0; k < MX_QUANTIZE_WIDTH; ++k) v[k] = mx_unpack_f32(0u);             \
        }                                                                                     \
        mx_quantize_lanes(v, in_range, row, lane, codes, scales, rounding, scale_mode, seed,  \
                          block_ids);                                                         \
    }

MX_QUANTIZE_KERNEL(mx_quantize_f16, unsigned short, mx_load_f16)
MX_QUANTIZE_KERNEL(mx_quantize_f32, mx_u32, mx_load_f32)
MX_QUANTIZE_KERNEL(mx_quantize_f64, mx_u64, mx_load_f64)

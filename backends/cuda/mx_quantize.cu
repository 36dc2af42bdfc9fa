// Quantize (n_blocks, MX_BLOCK_SIZE) rows of float16/32/64 (read as raw bits) to element
// codes and E8M0 scale bytes.  One warp per block, one lane per element; the format is the
// compile-time MxFormat MX_FORMAT (see _cuda_sources.format_definitions).  block_ids (null:
// the row numbers) number the rows for stochastic rounding.
#include "mx_warp.cuh"

static_assert(MX_BLOCK_SIZE == 32, "one warp per block needs 32-element blocks");

__device__ __forceinline__ void mx_quantize_lane(const MxValue v, unsigned char* codes,
                                                 unsigned char* scales, long long t,
                                                 int rounding, int scale_mode, mx_u64 seed,
                                                 const mx_u64* block_ids) {
    constexpr MxFormat kFormat = MX_FORMAT;
    const bool bad = mx_group_any(v.cls == MX_NONFINITE, 32);
    const mx_u64 key = mx_group_max(mx_magnitude_key(v), 32);
    const int x = mx_shared_exponent(kFormat, key, scale_mode);
    const mx_u64 index = mx_random_index(block_ids, t >> 5, 32, (int)(t & 31));
    codes[t] = bad ? 0 : (unsigned char)mx_encode(kFormat, v, x, rounding, seed, index);
    if ((t & 31) == 0) {
        scales[t >> 5] = (unsigned char)(bad ? MX_SCALE_NAN_CODE : x + MX_SCALE_BIAS);
    }
}

// Threads are launched in whole warps and n_blocks * 32 threads do work: a warp is either
// entirely in range or entirely out, so the early return keeps the shuffles full.
#define MX_QUANTIZE_KERNEL(NAME, BITS_T, UNPACK)                                            \
    extern "C" __global__ void NAME(const BITS_T* __restrict__ in,                            \
                                    unsigned char* __restrict__ codes,                        \
                                    unsigned char* __restrict__ scales, long long n_blocks,   \
                                    int rounding, int scale_mode, mx_u64 seed,                \
                                    const mx_u64* __restrict__ block_ids) {                   \
        const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;                 \
        if ((t >> 5) >= n_blocks) return;                                                     \
        mx_quantize_lane(UNPACK(in[t]), codes, scales, t, rounding, scale_mode, seed,         \
                         block_ids);                                                          \
    }

MX_QUANTIZE_KERNEL(mx_quantize_f16, unsigned short, mx_unpack_f16)
MX_QUANTIZE_KERNEL(mx_quantize_f32, mx_u32, mx_unpack_f32)
MX_QUANTIZE_KERNEL(mx_quantize_f64, mx_u64, mx_unpack_f64)

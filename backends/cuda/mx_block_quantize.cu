// Quantize (n_blocks, block_size) rows of float16/32/64 (raw bits) in a general block format
// (microexponent sub-blocks under an E8M0 scale, or a UE4M3 scale with a float32 tensor
// scale).  One lane per element, an aligned group of block_size lanes per block; the format
// is the compile-time MX_FORMAT (element) and MX_FORMAT_BLOCK (block layout).
#include "mx_block_arith.cuh"
#include "mx_warp.cuh"
#include "mx_index.cuh"

constexpr MxBlockFormat kBlockLayout = MX_FORMAT_BLOCK;
typedef MxCodeType<kBlockLayout.code_bytes>::type MxCode;
static_assert(32 % kBlockLayout.block_size == 0, "a block must be a power-of-two part of a warp");

// Every lane of the warp calls this (the reductions need full warps); lanes past the end
// take part with a zero and write nothing.
__device__ __forceinline__ void mx_block_quantize_lane(const MxValue v, bool in_range,
                                                       MxCode* codes, unsigned char* scales,
                                                       long long t, int rounding,
                                                       int scale_mode, mx_u64 seed,
                                                       const mx_u64* block_ids,
                                                       mx_u32 tensor_scale) {
    constexpr MxFormat kFormat = MX_FORMAT;
    constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;
    const bool bad = mx_group_any(v.cls == MX_NONFINITE, kBlock.block_size);
    const mx_u64 key = mx_magnitude_key(v);
    const mx_u64 amax = mx_group_max(key, kBlock.block_size);
    const long long b = t / kBlock.block_size;
    const int lane = (int)(t % kBlock.block_size);
    unsigned code, scale;
    if constexpr (kBlock.scale_kind == MX_SCALE_KIND_UE4M3) {
        const MxTensorScale ts = mx_tensor_scale(tensor_scale);
        scale = mx_ue4m3_scale_code(kFormat, amax, ts);
        code = mx_ue4m3_element_code(kFormat, v, scale, ts, rounding);
    } else {
        const int x = mx_shared_exponent(kFormat, amax, scale_mode);
        const mx_u64 sub = mx_group_max(key, kBlock.sub_block_size);
        // lanes past the end must not read block_ids
        const mx_u64 index = in_range ? mx_random_index(block_ids, b, kBlock.block_size, lane) : 0;
        code = mx_sub_block_code(kFormat, kBlock, v, x, sub, scale_mode, rounding, seed, index);
        scale = (unsigned)(x + MX_SCALE_BIAS);
    }
    if (!in_range) return;
    codes[t] = (MxCode)(bad ? 0u : code);
    if (lane == 0) scales[b] = (unsigned char)(bad ? (unsigned)kBlock.scale_nan_code : scale);
}

#define MX_BLOCK_QUANTIZE_KERNEL(NAME, BITS_T, UNPACK)                                      \
    extern "C" __global__ void NAME(const BITS_T* __restrict__ in, MxCode* __restrict__ codes, \
                                    unsigned char* __restrict__ scales, long long n_blocks,   \
                                    int rounding, int scale_mode, mx_u64 seed,                \
                                    const mx_u64* __restrict__ block_ids,                     \
                                    mx_u32 tensor_scale) {                                    \
        const long long t = mx_thread_index();                                                \
        const long long n = n_blocks * kBlockLayout.block_size;                               \
        if ((t & ~31ll) >= n) return; /* whole warps only */                                  \
        const bool in_range = t < n;                                                          \
        mx_block_quantize_lane(UNPACK(in_range ? in[t] : (BITS_T)0), in_range, codes, scales, \
                               t, rounding, scale_mode, seed, block_ids, tensor_scale);       \
    }

MX_BLOCK_QUANTIZE_KERNEL(mx_block_quantize_f16, unsigned short, mx_unpack_f16)
MX_BLOCK_QUANTIZE_KERNEL(mx_block_quantize_f32, mx_u32, mx_unpack_f32)
MX_BLOCK_QUANTIZE_KERNEL(mx_block_quantize_f64, mx_u64, mx_unpack_f64)

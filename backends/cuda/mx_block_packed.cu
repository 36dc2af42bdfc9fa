// Fused quantize and dequantize of a general block format (MX9/MX6/MX4/NVFP4) to and from
// packed bytes, one thread per block (see mx_packed.cuh); tensor_scale is the float32
// tensor scale's bits (ignored without one).  Inputs and outputs of float values start on
// 16 bytes (the CuPy backend copies, or writes through a copy, otherwise).
#include "mx_packed.cuh"
#include "mx_index.cuh"

#define MX_BLOCK_DEQUANTIZE_PACKED_KERNEL(NAME, OUT_BITS)                                    \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ packed,               \
                                    const unsigned char* __restrict__ scales,               \
                                    unsigned char* __restrict__ out, long long n_blocks,    \
                                    mx_u32 tensor_scale) {                                  \
        const long long row = mx_thread_index();                                            \
        if (row >= n_blocks) return;                                                        \
        constexpr MxFormat kFormat = MX_FORMAT;                                             \
        constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;                                   \
        mx_block_dequantize_packed_block(kFormat, kBlock, packed, scales, row, out,         \
                                         OUT_BITS, tensor_scale);                           \
    }

MX_BLOCK_DEQUANTIZE_PACKED_KERNEL(mx_block_dequantize_packed_f32, 32)
MX_BLOCK_DEQUANTIZE_PACKED_KERNEL(mx_block_dequantize_packed_f64, 64)

#define MX_BLOCK_QUANTIZE_PACKED_KERNEL(NAME, INPUT_BITS)                                    \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ in,                   \
                                    unsigned char* __restrict__ packed,                     \
                                    unsigned char* __restrict__ scales, long long n_blocks, \
                                    int rounding, int scale_mode, mx_u64 seed,              \
                                    const mx_u64* __restrict__ block_ids,                   \
                                    mx_u32 tensor_scale) {                                  \
        const long long row = mx_thread_index();                                            \
        if (row >= n_blocks) return;                                                        \
        constexpr MxFormat kFormat = MX_FORMAT;                                             \
        constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;                                   \
        mx_block_quantize_packed_block(kFormat, kBlock, in, INPUT_BITS, row, packed, scales, \
                                       rounding, scale_mode, seed, block_ids, tensor_scale); \
    }

MX_BLOCK_QUANTIZE_PACKED_KERNEL(mx_block_quantize_packed_f16, 16)
MX_BLOCK_QUANTIZE_PACKED_KERNEL(mx_block_quantize_packed_f32, 32)
MX_BLOCK_QUANTIZE_PACKED_KERNEL(mx_block_quantize_packed_f64, 64)

// Fused OCP quantize and dequantize on packed bytes, one thread per 32-element block (see
// mx_packed.cuh).  The format is the compile-time MxFormat MX_FORMAT.  Inputs, packed rows
// and outputs start on 16 bytes (the CuPy backend copies what does not; packed rows of
// FP6, 24 bytes, on 8).
#include "mx_packed.cuh"
#include "mx_index.cuh"

#define MX_QUANTIZE_PACKED_KERNEL(NAME, INPUT_BITS)                                          \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ in,                   \
                                    unsigned char* __restrict__ packed,                     \
                                    unsigned char* __restrict__ scales, long long n_blocks, \
                                    int rounding, int scale_mode, mx_u64 seed,              \
                                    const mx_u64* __restrict__ block_ids) {                 \
        const long long row = mx_thread_index();                                            \
        if (row >= n_blocks) return;                                                        \
        constexpr MxFormat kFormat = MX_FORMAT;                                             \
        mx_quantize_packed_block(kFormat, in, INPUT_BITS, row, packed, scales, rounding,    \
                                 scale_mode, seed, block_ids);                              \
    }

MX_QUANTIZE_PACKED_KERNEL(mx_quantize_packed_f16, 16)
MX_QUANTIZE_PACKED_KERNEL(mx_quantize_packed_f32, 32)

#define MX_DEQUANTIZE_PACKED_KERNEL(NAME, OUT_BITS)                                          \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ packed,               \
                                    const unsigned char* __restrict__ scales,               \
                                    unsigned char* __restrict__ out, long long n_blocks) {  \
        const long long row = mx_thread_index();                                            \
        if (row >= n_blocks) return;                                                        \
        constexpr MxFormat kFormat = MX_FORMAT;                                             \
        mx_dequantize_packed_block(kFormat, packed, scales, row, out, OUT_BITS);            \
    }

MX_DEQUANTIZE_PACKED_KERNEL(mx_dequantize_packed_f32, 32)
MX_DEQUANTIZE_PACKED_KERNEL(mx_dequantize_packed_f64, 64)

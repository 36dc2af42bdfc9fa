// Fused dequantize of a general block format (MX9/MX6/MX4/NVFP4) from packed bytes, one
// thread per block (see mx_packed.cuh); tensor_scale is the float32 tensor scale's bits
// (ignored without one).  The output starts on 16 bytes (the CuPy backend writes through a
// copy otherwise).
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

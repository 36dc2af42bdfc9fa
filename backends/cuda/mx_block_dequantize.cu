// Dequantize unpacked codes of a general block format to exact float32 or float64 bits, one
// thread per element; tensor_scale is the float32 tensor scale's bits (ignored without one).
#include "mx_block_arith.cuh"
#include "mx_index.cuh"

constexpr MxBlockFormat kBlockLayout = MX_FORMAT_BLOCK;
typedef MxCodeType<kBlockLayout.code_bytes>::type MxCode;

extern "C" __global__ void mx_block_dequantize_f32(const MxCode* __restrict__ codes,
                                                   const unsigned char* __restrict__ scales,
                                                   mx_u32* __restrict__ out, long long n,
                                                   mx_u32 tensor_scale) {
    const long long t = mx_thread_index();
    if (t >= n) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;
    out[t] = mx_block_decode_f32_bits(kFormat, kBlock, codes[t], scales[t / kBlock.block_size],
                                      mx_tensor_scale(tensor_scale));
}

extern "C" __global__ void mx_block_dequantize_f64(const MxCode* __restrict__ codes,
                                                   const unsigned char* __restrict__ scales,
                                                   mx_u64* __restrict__ out, long long n,
                                                   mx_u32 tensor_scale) {
    const long long t = mx_thread_index();
    if (t >= n) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;
    out[t] = mx_block_decode_f64_bits(kFormat, kBlock, codes[t], scales[t / kBlock.block_size],
                                      mx_tensor_scale(tensor_scale));
}

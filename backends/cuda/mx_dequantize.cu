// Dequantize element codes and scale bytes to exact float32 or float64 bits, one thread
// per element.  The format is the compile-time MxFormat MX_FORMAT.
#include "mx_arith.cuh"

extern "C" __global__ void mx_dequantize_f32(const unsigned char* __restrict__ codes,
                                             const unsigned char* __restrict__ scales,
                                             mx_u32* __restrict__ out, long long n) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    out[t] = mx_decode_f32_bits(kFormat, codes[t], scales[t / MX_BLOCK_SIZE]);
}

extern "C" __global__ void mx_dequantize_f64(const unsigned char* __restrict__ codes,
                                             const unsigned char* __restrict__ scales,
                                             mx_u64* __restrict__ out, long long n) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    out[t] = mx_decode_f64_bits(kFormat, codes[t], scales[t / MX_BLOCK_SIZE]);
}

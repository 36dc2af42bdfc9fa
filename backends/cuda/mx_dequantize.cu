// Dequantize element codes and scale bytes to exact float32 or float64 bits.  The format is
// the compile-time MxFormat MX_FORMAT.
//
// Work distribution: one thread per MX_DEQUANTIZE_WIDTH (4) consecutive codes of a block:
// one 4-byte code load, one scale byte load, and one 16-byte (float32) or two 16-byte
// (float64) stores.  The codes must start on 4 bytes (the CuPy backend copies them if not).
#include "mx_arith.cuh"
#include "mx_index.cuh"

#define MX_DEQUANTIZE_WIDTH 4
static_assert(MX_BLOCK_SIZE % MX_DEQUANTIZE_WIDTH == 0, "a group of codes within one block");

// n_groups = n_elements / 4 groups of 4 codes.
extern "C" __global__ void mx_dequantize_f32(const unsigned char* __restrict__ codes,
                                             const unsigned char* __restrict__ scales,
                                             mx_u32* __restrict__ out, long long n_groups) {
    const long long t = mx_thread_index();
    if (t >= n_groups) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    const mx_u32 word = reinterpret_cast<const mx_u32*>(codes)[t];
    const unsigned scale = scales[t / (MX_BLOCK_SIZE / MX_DEQUANTIZE_WIDTH)];
    uint4 bits;
    bits.x = mx_decode_f32_bits(kFormat, word & 0xFFu, scale);
    bits.y = mx_decode_f32_bits(kFormat, (word >> 8) & 0xFFu, scale);
    bits.z = mx_decode_f32_bits(kFormat, (word >> 16) & 0xFFu, scale);
    bits.w = mx_decode_f32_bits(kFormat, word >> 24, scale);
    reinterpret_cast<uint4*>(out)[t] = bits;
}

extern "C" __global__ void mx_dequantize_f64(const unsigned char* __restrict__ codes,
                                             const unsigned char* __restrict__ scales,
                                             mx_u64* __restrict__ out, long long n_groups) {
    const long long t = mx_thread_index();
    if (t >= n_groups) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    const mx_u32 word = reinterpret_cast<const mx_u32*>(codes)[t];
    const unsigned scale = scales[t / (MX_BLOCK_SIZE / MX_DEQUANTIZE_WIDTH)];
    ulonglong2 lo, hi;
    lo.x = mx_decode_f64_bits(kFormat, word & 0xFFu, scale);
    lo.y = mx_decode_f64_bits(kFormat, (word >> 8) & 0xFFu, scale);
    hi.x = mx_decode_f64_bits(kFormat, (word >> 16) & 0xFFu, scale);
    hi.y = mx_decode_f64_bits(kFormat, word >> 24, scale);
    reinterpret_cast<ulonglong2*>(out)[2 * t] = lo;
    reinterpret_cast<ulonglong2*>(out)[2 * t + 1] = hi;
}

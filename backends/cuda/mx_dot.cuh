// Block-scaled dot products of MX rows, shared by the matmul kernel and the host library.
//
// C = sum over blocks b of 2^(XA_b + XB_b) * sum_i PA_i * PB_i.  Each element value is
// exact in float32 and so is each product (at most 8 significant bits, magnitude between
// 2^-32 and 2^32), so a fused multiply-add gives the same bits as a multiply and an add,
// and no partial sum is a float32 subnormal: neither FMA contraction nor flush-to-zero
// changes a block sum.  Block sums are scaled by an exact power of two and accumulated in
// float64, whose range holds every 2^(XA + XB) and which -ftz does not affect; the final
// rounding to float32 is integer arithmetic (mx_f64_to_f32_bits).
#pragma once

#include "mx_arith.cuh"

MX_HD float mx_f32_from_bits(mx_u32 bits) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(bits);
#else
    float f;
    __builtin_memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

MX_HD double mx_f64_from_bits(mx_u64 bits) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double((long long)bits);
#else
    double d;
    __builtin_memcpy(&d, &bits, sizeof d);
    return d;
#endif
}

MX_HD mx_u64 mx_f64_bits(double d) {
#if defined(__CUDA_ARCH__)
    return (mx_u64)__double_as_longlong(d);
#else
    mx_u64 bits;
    __builtin_memcpy(&bits, &d, sizeof bits);
    return bits;
#endif
}

// float64 bits to float32 bits, rounding to nearest even, subnormals kept, NaN made the
// canonical quiet NaN.  Integer-only, so -ftz cannot flush a subnormal result (the
// compiler's cvt.rn.f32.f64 becomes cvt.rn.ftz.f32.f64 under -ftz=true).
MX_HD mx_u32 mx_f64_to_f32_bits(mx_u64 d) {
    const mx_u32 sign = (mx_u32)(d >> 32) & 0x80000000u;
    const int field = (int)((d >> 52) & 0x7FFu);
    const mx_u64 frac = d & 0xFFFFFFFFFFFFFull;
    if (field == 0x7FF) return frac ? 0x7FC00000u : sign | 0x7F800000u;
    if (field == 0) return sign;  // float64 subnormals are far below float32's range
    const int e = field - 1023;
    if (e > 127) return sign | 0x7F800000u;
    const mx_u64 sig = frac | (1ull << 52);
    const int shift = e >= -126 ? 29 : 29 + (-126 - e);
    if (shift > 53) return sign;  // below half the smallest subnormal
    const mx_u64 keep = sig >> shift;
    const mx_u64 rem = sig & ((1ull << shift) - 1);
    const mx_u64 half = 1ull << (shift - 1);
    const mx_u32 up = (rem > half || (rem == half && (keep & 1u))) ? 1u : 0u;
    // a carry out of the significand moves into the exponent field (up to Inf): correct
    const mx_u32 base = e >= -126 ? ((mx_u32)(e + 127) << 23) | ((mx_u32)keep & 0x7FFFFFu)
                                  : (mx_u32)keep;
    return sign | (base + up);
}

// float32 sum of the MX_BLOCK_SIZE exact products of one pair of blocks (no scales).
MX_HD float mx_block_dot(const MxFormat& fa, const unsigned char* a, const MxFormat& fb,
                         const unsigned char* b) {
    float sum = 0.0f;
    for (int i = 0; i < MX_BLOCK_SIZE; ++i) {
        const float va = mx_f32_from_bits(mx_decode_f32_bits(fa, a[i], MX_SCALE_BIAS));
        const float vb = mx_f32_from_bits(mx_decode_f32_bits(fb, b[i], MX_SCALE_BIAS));
        sum += va * vb;
    }
    return sum;
}

// Dot product of two rows of n_kb blocks each (codes row-major, one scale byte per block).
MX_HD double mx_row_dot(const MxFormat& fa, const unsigned char* a_codes,
                        const unsigned char* a_scales, const MxFormat& fb,
                        const unsigned char* b_codes, const unsigned char* b_scales,
                        long long n_kb) {
    double acc = 0.0;
    for (long long kb = 0; kb < n_kb; ++kb) {
        const unsigned sa = a_scales[kb];
        const unsigned sb = b_scales[kb];
        if (sa == MX_SCALE_NAN_CODE || sb == MX_SCALE_NAN_CODE) {
            acc = mx_f64_from_bits(0x7FF8000000000000ull);  // a NaN block poisons the sum
            continue;
        }
        const int x = (int)sa + (int)sb - 2 * MX_SCALE_BIAS;  // |x| <= 254: a normal float64
        const double scale = mx_f64_from_bits((mx_u64)(x + 1023) << 52);
        acc += (double)mx_block_dot(fa, a_codes + kb * MX_BLOCK_SIZE, fb,
                                    b_codes + kb * MX_BLOCK_SIZE) * scale;
    }
    return acc;
}

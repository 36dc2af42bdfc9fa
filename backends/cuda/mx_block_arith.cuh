// Arithmetic of the general block formats (MX9/MX6/MX4 microexponents, NVFP4's UE4M3 block
// scale and float32 tensor scale), shared by the block-format kernels and the host library.
//
// As in mx_arith.cuh, everything is integer work on IEEE bits: the UE4M3 scale and the
// elements under it are chosen by exact comparisons of integers times powers of two, so
// -ftz=true, MXCSR FTZ/DAZ and multiply-add contraction cannot change a bit.  The block
// layout arrives as an MxBlockFormat filled by mxarray/_cuda_sources.py from the spec;
// the E4M3 element format behind the UE4M3 scale is MX_UE4M3, defined by the same module.
#pragma once

#include "mx_dot.cuh"

#if !defined(MX_UE4M3) || !defined(MX_SCALE_KIND_E8M0) || !defined(MX_SCALE_KIND_UE4M3)
#error "compile with the definitions of mxarray._cuda_sources.spec_definitions()"
#endif

// The block part of a format (see _cuda_sources.block_fields), next to its MxFormat element.
struct MxBlockFormat {
    int block_size;       // elements per block scale: 16 or 32, lanes of one warp
    int scale_kind;       // MX_SCALE_KIND_E8M0 or MX_SCALE_KIND_UE4M3
    int scale_nan_code;   // scale byte of a block holding NaN or Inf
    int sub_block_size;   // elements per microexponent, 0 without sub-blocks
    int sub_block_bits;   // bits of a microexponent
    int code_bytes;       // bytes of an unpacked code (element | D << bits): 1 or 2
    int element_bytes;    // packed bytes of one block's elements
    int sub_block_bytes;  // packed bytes of one block's microexponents, after the elements
};

// ---------------------------------------------------------------------------------------
// Microexponents (sub-blocks): D_j = clamp(X - X_j, 0, 2^sub_block_bits - 1)
// ---------------------------------------------------------------------------------------

// D of a sub-block whose largest magnitude has key sub_key, under shared exponent x.
MX_HD int mx_microexponent(const MxFormat& f, const MxBlockFormat& b, int x, mx_u64 sub_key,
                           int scale_mode) {
    if (sub_key == 0) return 0;  // an all-zero sub-block
    const int d = x - mx_mode_exponent(f, sub_key, scale_mode);
    const int d_max = (1 << b.sub_block_bits) - 1;
    return d < 0 ? 0 : (d > d_max ? d_max : d);
}

// Unpacked code of one finite (or zero) element: the element encoded against X - D
// (saturating), with D above the element bits.
MX_HD unsigned mx_sub_block_code(const MxFormat& f, const MxBlockFormat& b, const MxValue& v,
                                 int x, mx_u64 sub_key, int scale_mode, int rounding,
                                 mx_u64 seed, mx_u64 index) {
    const int d = mx_microexponent(f, b, x, sub_key, scale_mode);
    return mx_encode(f, v, x - d, rounding, seed, index) | ((unsigned)d << f.bits);
}

// ---------------------------------------------------------------------------------------
// Exact comparisons of positive dyadic numbers sig * 2^exp (0 < sig < 2^63)
// ---------------------------------------------------------------------------------------

MX_HD int mx_dyadic_compare(mx_u64 a_sig, int a_exp, mx_u64 b_sig, int b_exp) {
    const int la = 63 - mx_clz64(a_sig), lb = 63 - mx_clz64(b_sig);
    if (a_exp + la != b_exp + lb) return a_exp + la < b_exp + lb ? -1 : 1;
    const mx_u64 an = a_sig << (63 - la), bn = b_sig << (63 - lb);  // no bit is lost
    return an < bn ? -1 : (an > bn ? 1 : 0);
}

// Value of grid code c of the float format g in units of its smallest step 2^(emin - m).
MX_HD mx_u64 mx_grid_units(const MxFormat& g, unsigned c) {
    const MxElement el = mx_element(g, c);
    return (mx_u64)el.n << (el.p - (g.emin - g.mantissa_bits));
}

// Index of the exact quotient a / q rounded onto the grid of codes 0..last of the float
// format g (ascending, starting at 0), saturating at last.  a = a_sig * 2^a_exp (a_sig = 0
// for zero), q = q_sig * 2^q_exp > 0.  Every bound (a grid value or a midpoint of two) times
// q is an integer below 2^63 times a power of two and is compared with a exactly: "even"
// and "nearest" count the midpoints below a / q and settle a tie to the even index or up;
// "toward_zero" counts the grid values after 0 at or below a / q.
MX_HD int mx_round_onto_grid(const MxFormat& g, int last, mx_u64 a_sig, int a_exp,
                             mx_u64 q_sig, int q_exp, int rounding) {
    if (a_sig == 0) return 0;
    const bool truncate = rounding == MX_ROUNDING_TOWARD_ZERO;
    const int unit = g.emin - g.mantissa_bits + q_exp - (truncate ? 0 : 1);
    int lo = 0, hi = last;  // the count is in [lo, hi]
    while (lo < hi) {
        const int k = (lo + hi) / 2;
        const mx_u64 bound = truncate ? mx_grid_units(g, (unsigned)k + 1u)
                                      : mx_grid_units(g, (unsigned)k) +
                                            mx_grid_units(g, (unsigned)k + 1u);
        const int c = mx_dyadic_compare(bound * q_sig, unit, a_sig, a_exp);
        if (truncate ? c <= 0 : c < 0) {
            lo = k + 1;
        } else {
            hi = k;
        }
    }
    if (truncate || lo == last) return lo;
    const mx_u64 bound = mx_grid_units(g, (unsigned)lo) + mx_grid_units(g, (unsigned)lo + 1u);
    const bool tie = mx_dyadic_compare(bound * q_sig, unit, a_sig, a_exp) == 0;
    if (!tie) return lo;
    return rounding == MX_ROUNDING_NEAREST ? lo + 1 : lo + (lo & 1);
}

// ---------------------------------------------------------------------------------------
// UE4M3 block scale with a float32 tensor scale S_t (NVFP4)
// ---------------------------------------------------------------------------------------

// S_t as sig * 2^exp: a positive finite float32 has at most 24 significant bits.
struct MxTensorScale {
    mx_u64 sig;
    int exp;
};

MX_HD MxTensorScale mx_tensor_scale(mx_u32 bits) {
    const MxValue v = mx_unpack_f32(bits);
    return MxTensorScale{v.sig >> 29, v.e - 23};
}

// The UE4M3 code of a block whose largest magnitude has key amax_key: the exact
// amax / (max_normal * S_t) rounded to nearest, ties to even, onto the UE4M3 grid.
MX_HD unsigned mx_ue4m3_scale_code(const MxFormat& f, mx_u64 amax_key, MxTensorScale ts) {
    constexpr MxFormat kScale = MX_UE4M3;
    if (amax_key == 0) return 0;
    const MxElement top = mx_element(f, (unsigned)f.max_code);
    const mx_u64 a_sig = (amax_key & ((1ull << 52) - 1)) | (1ull << 52);
    const int a_exp = (int)(amax_key >> 52) - MX_KEY_EXP_OFFSET - 52;
    return (unsigned)mx_round_onto_grid(kScale, kScale.max_code, a_sig, a_exp,
                                        (mx_u64)top.n * ts.sig, top.p + ts.exp,
                                        MX_ROUNDING_EVEN);
}

// The element code of v under UE4M3 scale code s: |v| / (E4M3(s) * S_t) rounded onto the
// element grid, the sign bit attached (-0 kept); scale 0 keeps only the sign.
MX_HD unsigned mx_ue4m3_element_code(const MxFormat& f, const MxValue& v, unsigned s,
                                     MxTensorScale ts, int rounding) {
    constexpr MxFormat kScale = MX_UE4M3;
    const MxElement scale = mx_element(kScale, s);
    unsigned magnitude = 0;
    if (v.cls == MX_FINITE && scale.n != 0) {
        magnitude = (unsigned)mx_round_onto_grid(f, f.max_code, v.sig, v.e - 52,
                                                 (mx_u64)scale.n * ts.sig, scale.p + ts.exp,
                                                 rounding);
    }
    return magnitude | (v.neg ? 1u << (f.bits - 1) : 0u);
}

// float64 bits of element code * E4M3(s) * S_t, exact (at most 32 significant bits, far
// inside float64's normal range); NaN for the NaN and the invalid scale bytes.
MX_HD mx_u64 mx_ue4m3_decode_f64_bits(const MxFormat& f, unsigned code, unsigned s,
                                      MxTensorScale ts) {
    constexpr MxFormat kScale = MX_UE4M3;
    const mx_u64 nan_bits = 0x7FF8000000000000ull;
    if (s > (unsigned)kScale.max_code) return nan_bits;
    const MxElement el = mx_element(f, code);
    const MxElement scale = mx_element(kScale, s);
    const mx_u64 sign = el.neg ? 0x8000000000000000ull : 0ull;
    if (el.kind == MX_ELEM_NAN || (el.kind == MX_ELEM_INF && scale.n == 0)) return nan_bits;
    if (el.kind == MX_ELEM_INF) return sign | 0x7FF0000000000000ull;
    const mx_u64 sig = (mx_u64)el.n * scale.n * ts.sig;
    if (sig == 0) return sign;
    const int lead = 63 - mx_clz64(sig);
    const int e = lead + el.p + scale.p + ts.exp;
    return sign | ((mx_u64)(e + 1023) << 52) | ((sig << (52 - lead)) & 0xFFFFFFFFFFFFFull);
}

// ---------------------------------------------------------------------------------------
// Dequantize any block format: exact value, rounded once to float32 or float64
// ---------------------------------------------------------------------------------------

MX_HD mx_u64 mx_block_decode_f64_bits(const MxFormat& f, const MxBlockFormat& b,
                                      unsigned code, unsigned scale_byte, MxTensorScale ts) {
    if (b.scale_kind == MX_SCALE_KIND_UE4M3) {
        return mx_ue4m3_decode_f64_bits(f, code, scale_byte, ts);
    }
    if (scale_byte == MX_SCALE_NAN_CODE) return 0x7FF8000000000000ull;
    const int d = (int)(code >> f.bits);
    return mx_element_f64_bits(mx_element(f, code), (int)scale_byte - MX_SCALE_BIAS - d);
}

MX_HD mx_u32 mx_block_decode_f32_bits(const MxFormat& f, const MxBlockFormat& b,
                                      unsigned code, unsigned scale_byte, MxTensorScale ts) {
    if (b.scale_kind == MX_SCALE_KIND_UE4M3) {  // exact in float64, then one rounding
        return mx_f64_to_f32_bits(mx_ue4m3_decode_f64_bits(f, code, scale_byte, ts));
    }
    if (scale_byte == MX_SCALE_NAN_CODE) return 0x7FC00000u;
    const int d = (int)(code >> f.bits);
    return mx_element_f32_bits(mx_element(f, code), (int)scale_byte - MX_SCALE_BIAS - d);
}

// ---------------------------------------------------------------------------------------
// Dot products of rows in any two block formats (the simple matmul kernel)
// ---------------------------------------------------------------------------------------

// float64 a * b + c with one rounding, on the device and on the host alike.
MX_HD double mx_fma_f64(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
    return __fma_rn(a, b, c);
#else
    return __builtin_fma(a, b, c);
#endif
}

// sum of a_k * b_k over k < k_len, a_k and b_k the exact dequantized values (float64:
// at most 32 significant bits each, magnitudes between 2^-160 and 2^137), accumulated in
// K order with float64 fused multiply-adds: a NaN or an infinity propagates as in the
// reference's float64 matmul, nothing overflows, and the error is far inside the spec's
// float32 bound.  Codes are row-major, scales one byte per block of each operand.
template <typename CodeA, typename CodeB>
MX_HD double mx_block_row_dot(const MxFormat& fa, const MxBlockFormat& ba, const CodeA* a_codes,
                              const unsigned char* a_scales, MxTensorScale ta,
                              const MxFormat& fb, const MxBlockFormat& bb, const CodeB* b_codes,
                              const unsigned char* b_scales, MxTensorScale tb, long long k_len) {
    double acc = 0.0;
    for (long long k = 0; k < k_len; ++k) {
        const unsigned sa = a_scales[k / ba.block_size], sb = b_scales[k / bb.block_size];
        const mx_u64 va = mx_block_decode_f64_bits(fa, ba, a_codes[k], sa, ta);
        const mx_u64 vb = mx_block_decode_f64_bits(fb, bb, b_codes[k], sb, tb);
        acc = mx_fma_f64(mx_f64_from_bits(va), mx_f64_from_bits(vb), acc);
    }
    return acc;
}

// ---------------------------------------------------------------------------------------
// Packing one block: its codes' element bits as an LSB-first bit stream, then (with
// sub-blocks) each sub-block's microexponent, LSB-first, zero-padded to a whole byte
// ---------------------------------------------------------------------------------------

// A little-endian bit stream written or read a field at a time.
struct MxBitStream {
    unsigned char* bytes;
    mx_u64 acc;
    int n_bits;
};

MX_HD void mx_put_bits(MxBitStream& s, unsigned value, int width) {
    s.acc |= (mx_u64)(value & ((1u << width) - 1u)) << s.n_bits;
    s.n_bits += width;
    for (; s.n_bits >= 8; s.n_bits -= 8, s.acc >>= 8) *s.bytes++ = (unsigned char)(s.acc & 0xFFu);
}

MX_HD void mx_flush_bits(MxBitStream& s) {
    if (s.n_bits > 0) *s.bytes++ = (unsigned char)(s.acc & 0xFFu);
    s.acc = 0;
    s.n_bits = 0;
}

template <typename Code>
MX_HD void mx_pack_block(const MxFormat& f, const MxBlockFormat& b, const Code* codes,
                         unsigned char* out) {
    MxBitStream s{out, 0, 0};
    for (int i = 0; i < b.block_size; ++i) mx_put_bits(s, codes[i], f.bits);
    if (b.sub_block_size) {
        for (int i = 0; i < b.block_size; i += b.sub_block_size) {
            mx_put_bits(s, (unsigned)codes[i] >> f.bits, b.sub_block_bits);
        }
    }
    mx_flush_bits(s);
}

// The width-bit field (width <= 16) starting at bit `bit` of a little-endian bit stream.
MX_HD unsigned mx_get_bits(const unsigned char* bytes, int bit, int width) {
    const int first = bit >> 3, shift = bit & 7;
    const int n = (shift + width + 7) >> 3;  // the bytes the field touches, at most three
    mx_u32 word = 0;
    for (int j = 0; j < n; ++j) word |= (mx_u32)bytes[first + j] << (8 * j);
    return (word >> shift) & ((1u << width) - 1u);
}

template <typename Code>
MX_HD void mx_unpack_block(const MxFormat& f, const MxBlockFormat& b, const unsigned char* in,
                           Code* codes) {
    for (int i = 0; i < b.block_size; ++i) {
        unsigned code = mx_get_bits(in, i * f.bits, f.bits);
        if (b.sub_block_size) {
            code |= mx_get_bits(in + b.element_bytes, (i / b.sub_block_size) * b.sub_block_bits,
                                b.sub_block_bits) << f.bits;
        }
        codes[i] = (Code)code;
    }
}

// The C type of an unpacked code of code_bytes bytes.
template <int Bytes>
struct MxCodeType;
template <>
struct MxCodeType<1> {
    typedef unsigned char type;
};
template <>
struct MxCodeType<2> {
    typedef unsigned short type;
};

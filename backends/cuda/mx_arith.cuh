// MX element and scale arithmetic shared by every CUDA kernel and by the host test library.
//
// Everything here is integer arithmetic on IEEE bit patterns: exponents come from the
// exponent field (subnormals normalised with a count of leading zeros), rounding onto the
// element grid is an integer shift with an explicit round-up decision, and decoding builds
// the float32/float64 bits directly.  No floating-point instruction touches a value, so
// flush-to-zero (-ftz=true, MXCSR FTZ/DAZ) and multiply-add contraction cannot change a bit.
//
// Nothing numeric about a format is written here: the format arrives as an MxFormat filled
// by mxarray/_cuda_sources.py from spec/mx.toml, and the spec-wide constants (block size,
// E8M0 bias, generator constants, the numbering of scale and rounding modes) arrive as
// preprocessor definitions made by the same module.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define MX_HD __host__ __device__ __forceinline__
#else
#define MX_HD inline
#endif

#if !defined(MX_BLOCK_SIZE) || !defined(MX_SCALE_BIAS) || !defined(MX_SCALE_NAN_CODE) ||   \
    !defined(MX_SCALE_MIN_EXP) || !defined(MX_SCALE_MAX_EXP) || !defined(MX_RNG_GAMMA) ||  \
    !defined(MX_RNG_MIX1) || !defined(MX_RNG_MIX2) || !defined(MX_SCALE_MODE_FLOOR) ||     \
    !defined(MX_SCALE_MODE_CEIL) || !defined(MX_SCALE_MODE_RCEIL) ||                      \
    !defined(MX_SCALE_MODE_EVEN) || !defined(MX_ROUNDING_EVEN) ||                         \
    !defined(MX_ROUNDING_NEAREST) || !defined(MX_ROUNDING_TOWARD_ZERO) ||                 \
    !defined(MX_ROUNDING_STOCHASTIC) || !defined(MX_KIND_FLOAT) || !defined(MX_KIND_INT) ||  \
    !defined(MX_KIND_SIGNMAG)
#error "compile with the definitions of mxarray._cuda_sources.spec_definitions()"
#endif

typedef unsigned long long mx_u64;
typedef unsigned int mx_u32;

// One element format, field for field the spec entry (see _cuda_sources.format_fields).
struct MxFormat {
    int kind;            // MX_KIND_FLOAT, MX_KIND_INT (two's-complement k / 2^mantissa_bits)
                         // or MX_KIND_SIGNMAG (sign bit and magnitude M / 2^mantissa_bits)
    int bits;            // bits per element code
    int mantissa_bits;   // mantissa (float) or fraction (int) bits
    int bias;            // exponent bias (float kinds)
    int emax;            // exponent of the largest normal
    int emin;            // exponent of the smallest normal (1 - bias; -mantissa_bits for int)
    int max_code;        // magnitude code of +max_normal (int: the symmetric clamp)
    int inf_code;        // magnitude code of +Inf, or -1 when the format has none
    int max_normal_exp;  // floor(log2(max_normal))
    int pack_elements;   // packing: pack_elements codes ...
    int pack_bytes;      // ... in pack_bytes bytes
    int reserved;        // keeps max_normal_sig 8-byte aligned on every compiler
    mx_u64 max_normal_sig;  // significand of max_normal, leading one at bit 52
};

// ---------------------------------------------------------------------------------------
// Bit helpers
// ---------------------------------------------------------------------------------------

MX_HD int mx_clz64(mx_u64 x) {  // x != 0
#if defined(__CUDA_ARCH__)
    return __clzll((long long)x);
#else
    return __builtin_clzll(x);
#endif
}

MX_HD int mx_clz32(mx_u32 x) {  // x != 0
#if defined(__CUDA_ARCH__)
    return __clz((int)x);
#else
    return __builtin_clz(x);
#endif
}

// ---------------------------------------------------------------------------------------
// Inputs: an IEEE value unpacked to sign, exponent floor(log2|v|) and a 53-bit significand
// ---------------------------------------------------------------------------------------

enum { MX_ZERO = 0, MX_FINITE = 1, MX_NONFINITE = 2 };

struct MxValue {
    int cls;      // MX_ZERO, MX_FINITE (non-zero) or MX_NONFINITE
    int neg;      // sign bit
    int e;        // floor(log2 |v|) for MX_FINITE
    mx_u64 sig;   // |v| = sig * 2^(e - 52), bit 52 set, for MX_FINITE
};

// Unpack the bits of an IEEE binary format with ebits exponent and mbits fraction bits.
MX_HD MxValue mx_unpack_ieee(mx_u64 bits, int ebits, int mbits) {
    MxValue v;
    const mx_u64 frac_mask = (1ull << mbits) - 1;
    const mx_u64 exp_mask = (1ull << ebits) - 1;
    const mx_u64 field = (bits >> mbits) & exp_mask;
    const mx_u64 frac = bits & frac_mask;
    const int bias = (1 << (ebits - 1)) - 1;
    v.neg = (int)((bits >> (ebits + mbits)) & 1u);
    v.e = 0;
    v.sig = 0;
    if (field == exp_mask) {
        v.cls = MX_NONFINITE;
    } else if (field == 0 && frac == 0) {
        v.cls = MX_ZERO;
    } else if (field == 0) {  // subnormal: normalise by the position of the leading one
        const int lead = 63 - mx_clz64(frac);
        v.cls = MX_FINITE;
        v.e = 1 - bias - mbits + lead;
        v.sig = frac << (52 - lead);
    } else {
        v.cls = MX_FINITE;
        v.e = (int)field - bias;
        v.sig = (frac | (1ull << mbits)) << (52 - mbits);
    }
    return v;
}

MX_HD MxValue mx_unpack_f16(unsigned short bits) { return mx_unpack_ieee(bits, 5, 10); }
MX_HD MxValue mx_unpack_f32(mx_u32 bits) { return mx_unpack_ieee(bits, 8, 23); }
MX_HD MxValue mx_unpack_f64(mx_u64 bits) { return mx_unpack_ieee(bits, 11, 52); }

// A key whose unsigned order is the order of |v| (0 for zeros and non-finite values, which
// the spec replaces by zero before taking the block maximum): the biased exponent in the
// top 12 bits above the 52 fraction bits of the significand.
enum { MX_KEY_EXP_OFFSET = 1100 };  // > 1074, the depth of float64's smallest subnormal

MX_HD mx_u64 mx_magnitude_key(const MxValue& v) {
    if (v.cls != MX_FINITE) return 0;
    return ((mx_u64)(v.e + MX_KEY_EXP_OFFSET) << 52) | (v.sig & ((1ull << 52) - 1));
}

// ---------------------------------------------------------------------------------------
// Shared exponent X of a block from the key of its largest magnitude
// ---------------------------------------------------------------------------------------

// The scale mode's exponent of a positive maximum (amax_key != 0), not clamped: the
// sub-block exponents X_j of formats with microexponents use it unclamped.
MX_HD int mx_mode_exponent(const MxFormat& f, mx_u64 amax_key, int scale_mode) {
    const int e = (int)(amax_key >> 52) - MX_KEY_EXP_OFFSET;
    const mx_u64 sig = (amax_key & ((1ull << 52) - 1)) | (1ull << 52);
    int x;
    if (scale_mode == MX_SCALE_MODE_CEIL) {
        x = e - f.emax + (sig != (1ull << 52) ? 1 : 0);
    } else if (scale_mode == MX_SCALE_MODE_RCEIL) {
        // ceil(log2(amax / max_normal)): compare significands at a common exponent.
        x = e - f.max_normal_exp + (sig > f.max_normal_sig ? 1 : 0);
    } else if (scale_mode == MX_SCALE_MODE_EVEN) {
        // round amax to mantissa_bits with ties to even; a carry bumps the exponent.
        const int sh = 52 - f.mantissa_bits;
        const mx_u64 half = 1ull << (sh - 1);
        const mx_u64 rem = sig & ((1ull << sh) - 1);
        mx_u64 q = sig >> sh;
        if (rem > half || (rem == half && (q & 1u))) q += 1;
        x = e - f.emax + (q == (2ull << f.mantissa_bits) ? 1 : 0);
    } else {  // MX_SCALE_MODE_FLOOR
        x = e - f.emax;
    }
    return x;
}

MX_HD int mx_shared_exponent(const MxFormat& f, mx_u64 amax_key, int scale_mode) {
    if (amax_key == 0) return MX_SCALE_MIN_EXP;  // all-zero block: byte 0
    int x = mx_mode_exponent(f, amax_key, scale_mode);
    if (x < MX_SCALE_MIN_EXP) x = MX_SCALE_MIN_EXP;
    if (x > MX_SCALE_MAX_EXP) x = MX_SCALE_MAX_EXP;
    return x;
}

// ---------------------------------------------------------------------------------------
// Counter-based random bits for stochastic rounding (SplitMix64, as mxarray/_random.py)
// ---------------------------------------------------------------------------------------

MX_HD mx_u32 mx_random_u32(mx_u64 seed, mx_u64 index) {
    mx_u64 z = seed + (index + 1ull) * (mx_u64)MX_RNG_GAMMA;
    z = (z ^ (z >> 30)) * (mx_u64)MX_RNG_MIX1;
    z = (z ^ (z >> 27)) * (mx_u64)MX_RNG_MIX2;
    z = z ^ (z >> 31);
    return (mx_u32)(z >> 32);
}

// Random-stream index of lane `lane` of row b: block_ids[b] * block_size + lane (uint64,
// wrapping), or b * block_size + lane when block_ids is null.
MX_HD mx_u64 mx_random_index(const mx_u64* block_ids, long long b, int block_size, int lane) {
    const mx_u64 id = block_ids ? block_ids[b] : (mx_u64)b;
    return id * (mx_u64)block_size + (mx_u64)lane;
}

// ---------------------------------------------------------------------------------------
// Rounding sig * 2^-sh (sh > 0) to an integer, in one of the four modes
// ---------------------------------------------------------------------------------------

// A count that saturates every format: returned for scaled values of 2^52 or more.
#define MX_SATURATED_COUNT (1ull << 40)

MX_HD mx_u64 mx_round_shift(mx_u64 sig, int sh, int rounding, mx_u64 seed, mx_u64 index) {
    if (sh <= 0) return MX_SATURATED_COUNT;
    const mx_u64 whole = sh >= 64 ? 0 : sig >> sh;
    const mx_u64 rem = sh >= 64 ? sig : sig & ((1ull << sh) - 1);
    bool up = false;
    if (rounding == MX_ROUNDING_STOCHASTIC) {
        // up iff frac * 2^32 > R, with frac = rem / 2^sh, compared exactly in integers
        const mx_u32 r = mx_random_u32(seed, index);
        if (sh <= 32) {
            up = (rem << (32 - sh)) > (mx_u64)r;
        } else {
            const int k = sh - 32;
            const mx_u64 q = k >= 64 ? 0 : rem >> k;
            const mx_u64 low = k >= 64 ? rem : rem & ((1ull << k) - 1);
            up = q > (mx_u64)r || (q == (mx_u64)r && low != 0);
        }
    } else if (rounding != MX_ROUNDING_TOWARD_ZERO && sh <= 53) {
        // sig < 2^53, so for sh > 53 the fraction is below one half and nothing rounds up
        const mx_u64 half = 1ull << (sh - 1);
        if (rounding == MX_ROUNDING_NEAREST) {
            up = rem >= half;
        } else {  // MX_ROUNDING_EVEN
            up = rem > half || (rem == half && (whole & 1u));
        }
    }
    return whole + (up ? 1u : 0u);
}

// ---------------------------------------------------------------------------------------
// Encode one finite (or zero) value divided by 2^x as an element code
// ---------------------------------------------------------------------------------------

MX_HD unsigned mx_encode(const MxFormat& f, const MxValue& v, int x, int rounding,
                         mx_u64 seed, mx_u64 index) {
    const unsigned code_mask = (1u << f.bits) - 1u;
    if (f.kind == MX_KIND_INT) {
        mx_u64 k = 0;
        if (v.cls == MX_FINITE) {
            k = mx_round_shift(v.sig, 52 + (x - f.mantissa_bits) - v.e, rounding, seed, index);
        }
        if (k > (mx_u64)f.max_code) k = (mx_u64)f.max_code;
        const unsigned kk = (unsigned)k;
        return (v.neg ? (0u - kk) : kk) & code_mask;  // no negative zero: -0 gives code 0
    }
    mx_u64 magnitude = 0;
    if (v.cls == MX_FINITE && f.kind == MX_KIND_SIGNMAG) {  // a uniform grid of step 2^(x-m)
        magnitude = mx_round_shift(v.sig, 52 + (x - f.mantissa_bits) - v.e, rounding, seed, index);
    } else if (v.cls == MX_FINITE) {
        int e_elem = v.e - x;
        if (e_elem < f.emin) e_elem = f.emin;  // the subnormal range shares emin's quantum
        const int step = x + e_elem - f.mantissa_bits;  // log2 of the grid step
        const mx_u64 n = mx_round_shift(v.sig, 52 + step - v.e, rounding, seed, index);
        const int exp_code = e_elem - f.emin;
        // exp_code is large only for values far beyond the format, which saturate
        magnitude = exp_code > 255 ? MX_SATURATED_COUNT
                                   : ((mx_u64)exp_code << f.mantissa_bits) + n;
    }
    if (magnitude > (mx_u64)f.max_code) magnitude = (mx_u64)f.max_code;
    return ((unsigned)magnitude | (v.neg ? 1u << (f.bits - 1) : 0u)) & code_mask;
}

// ---------------------------------------------------------------------------------------
// Decode: element code and scale byte to exact float32 / float64 bits
// ---------------------------------------------------------------------------------------

enum { MX_ELEM_FINITE = 0, MX_ELEM_INF = 1, MX_ELEM_NAN = 2 };

struct MxElement {
    int kind;   // MX_ELEM_FINITE, MX_ELEM_INF or MX_ELEM_NAN
    int neg;    // sign
    mx_u32 n;   // |value| = n * 2^p
    int p;
};

MX_HD MxElement mx_element(const MxFormat& f, unsigned code) {
    MxElement el;
    el.kind = MX_ELEM_FINITE;
    const unsigned sign_bit = 1u << (f.bits - 1);
    code &= (1u << f.bits) - 1u;
    if (f.kind == MX_KIND_INT) {
        el.neg = (code & sign_bit) ? 1 : 0;
        el.n = el.neg ? (2u * sign_bit - code) : code;  // |two's complement value|
        el.p = -f.mantissa_bits;
        return el;
    }
    const unsigned magnitude = code & (sign_bit - 1u);
    el.neg = (code & sign_bit) ? 1 : 0;
    el.n = 0;
    el.p = 0;
    if (f.kind == MX_KIND_SIGNMAG) {  // every magnitude is a value: M / 2^mantissa_bits
        el.n = magnitude;
        el.p = -f.mantissa_bits;
        return el;
    }
    if ((int)magnitude > f.max_code) {
        el.kind = (int)magnitude == f.inf_code ? MX_ELEM_INF : MX_ELEM_NAN;
        return el;
    }
    const unsigned field = magnitude >> f.mantissa_bits;
    const unsigned frac = magnitude & ((1u << f.mantissa_bits) - 1u);
    if (field == 0) {
        el.n = frac;
        el.p = f.emin - f.mantissa_bits;
    } else {
        el.n = frac | (1u << f.mantissa_bits);
        el.p = (int)field - f.bias - f.mantissa_bits;
    }
    return el;
}

// float32 bits of the element el times 2^x.  Every format's smallest value times 2^-127
// (times 2^-D for the largest microexponent D) is a float32, normal or subnormal, exactly;
// _cuda_sources checks this for every format.  Values from 2^128 up overflow to Inf, as
// the reference's float64 -> float32 cast does.
MX_HD mx_u32 mx_element_f32_bits(const MxElement& el, int x) {
    const mx_u32 sign = el.neg ? 0x80000000u : 0u;
    if (el.kind == MX_ELEM_NAN) return 0x7FC00000u;
    if (el.kind == MX_ELEM_INF) return sign | 0x7F800000u;
    if (el.n == 0) return sign;
    const int p = el.p + x;
    const int lead = 31 - mx_clz32(el.n);
    const int e = lead + p;
    if (e > 127) return sign | 0x7F800000u;
    if (e >= -126) {
        return sign | ((mx_u32)(e + 127) << 23) | ((el.n << (23 - lead)) & 0x7FFFFFu);
    }
    return sign | (el.n << (p + 149));  // subnormal: n * 2^p with p >= -149
}

// float64 bits of the element el times 2^x: always a normal float64, exactly.
MX_HD mx_u64 mx_element_f64_bits(const MxElement& el, int x) {
    const mx_u64 sign = el.neg ? 0x8000000000000000ull : 0ull;
    if (el.kind == MX_ELEM_NAN) return 0x7FF8000000000000ull;
    if (el.kind == MX_ELEM_INF) return sign | 0x7FF0000000000000ull;
    if (el.n == 0) return sign;
    const int p = el.p + x;
    const int lead = 31 - mx_clz32(el.n);
    return sign | ((mx_u64)(lead + p + 1023) << 52) |
           (((mx_u64)el.n << (52 - lead)) & 0xFFFFFFFFFFFFFull);
}

// float32 / float64 bits of decode(code) * 2^(scale_byte - bias); NaN for the NaN byte.
MX_HD mx_u32 mx_decode_f32_bits(const MxFormat& f, unsigned code, unsigned scale_byte) {
    if (scale_byte == MX_SCALE_NAN_CODE) return 0x7FC00000u;
    return mx_element_f32_bits(mx_element(f, code), (int)scale_byte - MX_SCALE_BIAS);
}

MX_HD mx_u64 mx_decode_f64_bits(const MxFormat& f, unsigned code, unsigned scale_byte) {
    if (scale_byte == MX_SCALE_NAN_CODE) return 0x7FF8000000000000ull;
    return mx_element_f64_bits(mx_element(f, code), (int)scale_byte - MX_SCALE_BIAS);
}

// ---------------------------------------------------------------------------------------
// Packing: pack_elements codes of `bits` bits, little-endian, into pack_bytes <= 8 bytes
// ---------------------------------------------------------------------------------------

MX_HD void mx_pack_group(const MxFormat& f, const unsigned char* codes, unsigned char* out) {
    mx_u64 word = 0;
    for (int i = 0; i < f.pack_elements; ++i) word |= (mx_u64)codes[i] << (f.bits * i);
    for (int j = 0; j < f.pack_bytes; ++j) out[j] = (unsigned char)((word >> (8 * j)) & 0xFFu);
}

MX_HD void mx_unpack_group(const MxFormat& f, const unsigned char* packed,
                           unsigned char* codes) {
    mx_u64 word = 0;
    for (int j = 0; j < f.pack_bytes; ++j) word |= (mx_u64)packed[j] << (8 * j);
    const mx_u64 mask = (1ull << f.bits) - 1u;
    for (int i = 0; i < f.pack_elements; ++i) {
        codes[i] = (unsigned char)((word >> (f.bits * i)) & mask);
    }
}

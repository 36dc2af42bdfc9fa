// One thread per block, packed bytes in and out: the fused OCP quantize (float16 or float32
// input) and dequantize (float32 or float64 output), and the general block formats' fused
// quantize and dequantize, of mx_packed.cu and mx_block_packed.cu; shared with the host test
// library, which replays them block by block.
//
// Quantize: the block's 32 inputs are read as raw bits with 16-byte loads; the block
// maximum is taken on the bits themselves (|v|'s bits order finite magnitudes, subnormals
// included), so only the maximum is unpacked to find the shared exponent; each element is
// then unpacked to a 24-bit significand and rounded onto the element grid with 32-bit
// integer work (mx_round_shift32: the random bits are drawn only for stochastic rounding);
// the codes are packed in registers and the block's packed bytes stored with 16-byte
// (FP6: 8-byte) stores.  Every decision is the one mx_arith.cuh's 64-bit path makes: the
// fraction a rounding looks at is the same number, held in fewer bits.
#pragma once

#include "mx_arith.cuh"
#include "mx_block_arith.cuh"
#include "mx_vector.cuh"

// A finite non-zero float16/float32 value: |v| = sig * 2^(e - 23), bit 23 of sig set.
struct MxValue32 {
    int cls;
    int neg;
    int e;
    mx_u32 sig;
};

MX_HD MxValue32 mx_unpack32(mx_u32 bits, int ebits, int mbits) {
    MxValue32 v;
    const mx_u32 frac = bits & ((1u << mbits) - 1u);
    const mx_u32 field = (bits >> mbits) & ((1u << ebits) - 1u);
    const int bias = (1 << (ebits - 1)) - 1;
    v.neg = (int)((bits >> (ebits + mbits)) & 1u);
    v.e = 0;
    v.sig = 0;
    if (field == (1u << ebits) - 1u) {
        v.cls = MX_NONFINITE;
    } else if (field == 0 && frac == 0) {
        v.cls = MX_ZERO;
    } else if (field == 0) {
        const int lead = 31 - mx_clz32(frac);
        v.cls = MX_FINITE;
        v.e = 1 - bias - mbits + lead;
        v.sig = frac << (23 - lead);
    } else {
        v.cls = MX_FINITE;
        v.e = (int)field - bias;
        v.sig = (frac | (1u << mbits)) << (23 - mbits);
    }
    return v;
}

// mx_round_shift for a 24-bit significand (sig < 2^24): the same count in every mode.
MX_HD mx_u32 mx_round_shift32(mx_u32 sig, int sh, int rounding, mx_u64 seed, mx_u64 index) {
    if (sh <= 0) return 1u << 30;  // saturates every format (as MX_SATURATED_COUNT)
    const mx_u32 whole = sh >= 32 ? 0u : sig >> sh;
    const mx_u32 rem = sh >= 32 ? sig : sig & ((1u << sh) - 1u);
    bool up = false;
    if (rounding == MX_ROUNDING_STOCHASTIC) {  // up iff (rem / 2^sh) * 2^32 > R
        const mx_u32 r = mx_random_u32(seed, index);
        if (sh <= 32) {
            up = ((mx_u64)rem << (32 - sh)) > (mx_u64)r;
        } else {
            const int k = sh - 32;
            const mx_u32 q = k >= 32 ? 0u : rem >> k;
            const mx_u32 low = k >= 32 ? rem : rem & ((1u << k) - 1u);
            up = q > r || (q == r && low != 0u);
        }
    } else if (rounding != MX_ROUNDING_TOWARD_ZERO && sh <= 24) {
        const mx_u32 half = 1u << (sh - 1);
        up = rounding == MX_ROUNDING_NEAREST ? rem >= half
                                             : (rem > half || (rem == half && (whole & 1u)));
    }
    return whole + (up ? 1u : 0u);
}

// mx_encode for a MxValue32: the element code of v / 2^x.
MX_HD unsigned mx_encode32(const MxFormat& f, const MxValue32& v, int x, int rounding,
                           mx_u64 seed, mx_u64 index) {
    const unsigned code_mask = (1u << f.bits) - 1u;
    mx_u32 magnitude = 0;
    if (v.cls == MX_FINITE) {
        int step = x - f.mantissa_bits;  // int and sign-magnitude: a uniform grid
        if (f.kind == MX_KIND_FLOAT) {
            const int e_elem = v.e - x < f.emin ? f.emin : v.e - x;
            step = x + e_elem - f.mantissa_bits;
            const mx_u32 n = mx_round_shift32(v.sig, 23 + step - v.e, rounding, seed, index);
            const int exp_code = e_elem - f.emin;
            magnitude = exp_code > 255 ? (1u << 30) : ((mx_u32)exp_code << f.mantissa_bits) + n;
        } else {
            magnitude = mx_round_shift32(v.sig, 23 + step - v.e, rounding, seed, index);
        }
    }
    if (magnitude > (mx_u32)f.max_code) magnitude = (mx_u32)f.max_code;
    if (f.kind == MX_KIND_INT) return (v.neg ? (0u - magnitude) : magnitude) & code_mask;
    return (magnitude | (v.neg ? 1u << (f.bits - 1) : 0u)) & code_mask;
}

// The 32 input bit patterns of block `row` (input_bits 16 or 32), 16-byte loads.
MX_HD void mx_load_block_bits(const unsigned char* in, int input_bits, long long row,
                              mx_u32 bits[MX_BLOCK_SIZE]) {
    if (input_bits == 32) {
        mx_copy_bytes(reinterpret_cast<unsigned char*>(bits), in + row * MX_BLOCK_SIZE * 4,
                      MX_BLOCK_SIZE * 4);
        return;
    }
    alignas(16) unsigned short halves[MX_BLOCK_SIZE];
    mx_copy_bytes(reinterpret_cast<unsigned char*>(halves), in + row * MX_BLOCK_SIZE * 2,
                  MX_BLOCK_SIZE * 2);
    MX_UNROLL
    for (int i = 0; i < MX_BLOCK_SIZE; ++i) bits[i] = halves[i];
}

// Quantize block `row` of float16/float32 bits to packed bytes and its scale byte.
MX_HD void mx_quantize_packed_block(const MxFormat& f, const unsigned char* in, int input_bits,
                                    long long row, unsigned char* packed,
                                    unsigned char* scales, int rounding, int scale_mode,
                                    mx_u64 seed, const mx_u64* block_ids) {
    const int ebits = input_bits == 16 ? 5 : 8;
    const int mbits = input_bits == 16 ? 10 : 23;
    const mx_u32 magnitude_mask = input_bits == 16 ? 0x7FFFu : 0x7FFFFFFFu;
    const mx_u32 inf_bits = input_bits == 16 ? 0x7C00u : 0x7F800000u;
    alignas(16) mx_u32 bits[MX_BLOCK_SIZE];
    mx_load_block_bits(in, input_bits, row, bits);
    mx_u32 top = 0;
    bool bad = false;
    MX_UNROLL
    for (int i = 0; i < MX_BLOCK_SIZE; ++i) {
        const mx_u32 m = bits[i] & magnitude_mask;
        bad = bad || m >= inf_bits;
        top = m > top ? m : top;
    }
    const MxValue amax = input_bits == 16 ? mx_unpack_f16((unsigned short)top)
                                          : mx_unpack_f32(top);
    const int x = mx_shared_exponent(f, mx_magnitude_key(amax), scale_mode);
    const int block_bytes = MX_BLOCK_SIZE * f.pack_bytes / f.pack_elements;
    alignas(16) unsigned char out[MX_BLOCK_SIZE];
    MX_UNROLL
    for (int g = 0; g < MX_BLOCK_SIZE / f.pack_elements; ++g) {
        unsigned char codes[8];
        MX_UNROLL
        for (int j = 0; j < f.pack_elements; ++j) {
            const int i = g * f.pack_elements + j;
            const MxValue32 v = mx_unpack32(bits[i], ebits, mbits);
            const mx_u64 index = mx_random_index(block_ids, row, MX_BLOCK_SIZE, i);
            codes[j] = (unsigned char)(bad ? 0u : mx_encode32(f, v, x, rounding, seed, index));
        }
        mx_pack_group(f, codes, out + g * f.pack_bytes);
    }
    mx_copy_bytes(packed + row * block_bytes, out, block_bytes);
    scales[row] = (unsigned char)(bad ? MX_SCALE_NAN_CODE : x + MX_SCALE_BIAS);
}

// Dequantize block `row` of packed bytes to 32 float32 (out_bits 32) or float64 bit
// patterns, 16-byte stores.
MX_HD void mx_dequantize_packed_block(const MxFormat& f, const unsigned char* packed,
                                      const unsigned char* scales, long long row,
                                      unsigned char* out, int out_bits) {
    const int block_bytes = MX_BLOCK_SIZE * f.pack_bytes / f.pack_elements;
    alignas(16) unsigned char raw[MX_BLOCK_SIZE];
    mx_copy_bytes(raw, packed + row * block_bytes, block_bytes);
    const unsigned scale = scales[row];
    alignas(16) mx_u32 f32[MX_BLOCK_SIZE];      // the float32 block, or
    alignas(16) mx_u64 f64[MX_BLOCK_SIZE / 2];  // one half of the float64 block
    const int per_half = out_bits == 32 ? MX_BLOCK_SIZE : MX_BLOCK_SIZE / 2;
    MX_UNROLL
    for (int half = 0; half < MX_BLOCK_SIZE / per_half; ++half) {
        MX_UNROLL
        for (int g = 0; g < per_half / f.pack_elements; ++g) {
            unsigned char codes[8];
            const int first = half * per_half + g * f.pack_elements;
            mx_unpack_group(f, raw + first / f.pack_elements * f.pack_bytes, codes);
            MX_UNROLL
            for (int j = 0; j < f.pack_elements; ++j) {
                const int i = g * f.pack_elements + j;
                if (out_bits == 32) {
                    f32[i] = mx_decode_f32_bits(f, codes[j], scale);
                } else {
                    f64[i] = mx_decode_f64_bits(f, codes[j], scale);
                }
            }
        }
        const unsigned char* src = out_bits == 32 ? reinterpret_cast<const unsigned char*>(f32)
                                                  : reinterpret_cast<const unsigned char*>(f64);
        mx_copy_bytes(out + (row * MX_BLOCK_SIZE + half * per_half) * (out_bits / 8), src,
                      per_half * out_bits / 8);
    }
}

// Dequantize block `row` of a general block format (MX9/MX6/MX4/NVFP4) from its packed
// bytes (element bit stream, then microexponents) to block_size float32 (out_bits 32) or
// float64 bit patterns, 16-byte stores; tensor_scale is the float32 tensor scale's bits.
MX_HD void mx_block_dequantize_packed_block(const MxFormat& f, const MxBlockFormat& b,
                                            const unsigned char* packed,
                                            const unsigned char* scales, long long row,
                                            unsigned char* out, int out_bits,
                                            mx_u32 tensor_scale) {
    const int block_bytes = b.element_bytes + b.sub_block_bytes;
    unsigned char raw[MX_BLOCK_SIZE * 2];
    MX_UNROLL
    for (int j = 0; j < block_bytes; ++j) raw[j] = packed[row * block_bytes + j];
    unsigned codes[MX_BLOCK_SIZE];
    mx_unpack_block(f, b, raw, codes);
    const unsigned scale = scales[row];
    const MxTensorScale ts = mx_tensor_scale(tensor_scale);
    alignas(16) mx_u32 f32[MX_BLOCK_SIZE];
    alignas(16) mx_u64 f64[MX_BLOCK_SIZE];
    MX_UNROLL
    for (int i = 0; i < b.block_size; ++i) {
        if (out_bits == 32) {
            f32[i] = mx_block_decode_f32_bits(f, b, codes[i], scale, ts);
        } else {
            f64[i] = mx_block_decode_f64_bits(f, b, codes[i], scale, ts);
        }
    }
    const unsigned char* src = out_bits == 32 ? reinterpret_cast<const unsigned char*>(f32)
                                              : reinterpret_cast<const unsigned char*>(f64);
    mx_copy_bytes(out + row * b.block_size * (out_bits / 8), src, b.block_size * out_bits / 8);
}

// The input of element i of block `row` (block_size elements of input_bits 16/32/64 bits)
// unpacked; `raw` holds the block's bytes.
MX_HD MxValue mx_block_input(const unsigned char* raw, int input_bits, int i) {
    mx_u64 bits = 0;
    MX_UNROLL
    for (int j = 0; j < input_bits / 8; ++j) {
        bits |= (mx_u64)raw[i * (input_bits / 8) + j] << (8 * j);
    }
    return input_bits == 16 ? mx_unpack_f16((unsigned short)bits)
                            : input_bits == 32 ? mx_unpack_f32((mx_u32)bits) : mx_unpack_f64(bits);
}

// Quantize block `row` of a general block format from float16/32/64 to its packed bytes and
// scale byte, one thread per block, through the same per-element functions as the
// one-lane-per-element kernel (mx_block_quantize.cu): the block maximum, the sub-block
// maxima and every element code are computed by this thread in turn.
MX_HD void mx_block_quantize_packed_block(const MxFormat& f, const MxBlockFormat& b,
                                          const unsigned char* in, int input_bits,
                                          long long row, unsigned char* packed,
                                          unsigned char* scales, int rounding, int scale_mode,
                                          mx_u64 seed, const mx_u64* block_ids,
                                          mx_u32 tensor_scale) {
    const int n = b.block_size;
    const int in_bytes = n * input_bits / 8;
    alignas(16) unsigned char raw[MX_BLOCK_SIZE * 8];
    mx_copy_bytes(raw, in + row * in_bytes, in_bytes);
    mx_u64 amax = 0;
    bool bad = false;
    MX_UNROLL
    for (int i = 0; i < n; ++i) {
        const MxValue v = mx_block_input(raw, input_bits, i);
        bad = bad || v.cls == MX_NONFINITE;
        const mx_u64 key = mx_magnitude_key(v);
        amax = key > amax ? key : amax;
    }
    unsigned codes[MX_BLOCK_SIZE];
    unsigned scale;
    if (b.scale_kind == MX_SCALE_KIND_UE4M3) {
        const MxTensorScale ts = mx_tensor_scale(tensor_scale);
        scale = mx_ue4m3_scale_code(f, amax, ts);
        MX_UNROLL
        for (int i = 0; i < n; ++i) {
            codes[i] = mx_ue4m3_element_code(f, mx_block_input(raw, input_bits, i), scale, ts,
                                             rounding);
        }
    } else {
        const int x = mx_shared_exponent(f, amax, scale_mode);
        const int sub = b.sub_block_size ? b.sub_block_size : n;
        MX_UNROLL
        for (int s0 = 0; s0 < n; s0 += sub) {
            mx_u64 sub_key = 0;
            MX_UNROLL
            for (int i = s0; i < s0 + sub; ++i) {
                const mx_u64 key = mx_magnitude_key(mx_block_input(raw, input_bits, i));
                sub_key = key > sub_key ? key : sub_key;
            }
            MX_UNROLL
            for (int i = s0; i < s0 + sub; ++i) {
                const mx_u64 index = mx_random_index(block_ids, row, n, i);
                codes[i] = mx_sub_block_code(f, b, mx_block_input(raw, input_bits, i), x,
                                             sub_key, scale_mode, rounding, seed, index);
            }
        }
        scale = (unsigned)(x + MX_SCALE_BIAS);
    }
    if (bad) {
        MX_UNROLL
        for (int i = 0; i < n; ++i) codes[i] = 0;
        scale = (unsigned)b.scale_nan_code;
    }
    const int block_bytes = b.element_bytes + b.sub_block_bytes;
    unsigned char out[MX_BLOCK_SIZE * 2];
    mx_pack_block(f, b, codes, out);
    MX_UNROLL
    for (int j = 0; j < block_bytes; ++j) packed[row * block_bytes + j] = out[j];
    scales[row] = (unsigned char)scale;
}

// The two-pass MX matmul's arithmetic, shared by mx_fold_bf16.cu and the host test library.
//
// Pass one decodes each operand to bfloat16 with its block scale folded in and one
// operand-wide power-of-two shift 2^sigma added; pass two is a cuBLAS bf16 x bf16 -> fp32
// GEMM of the folded operands; the epilogue multiplies by 2^-(sigma_A + sigma_B) (and the
// NVFP4 tensor scales) and rounds once to float32.
//
// Every element value times its block scale has at most 8 significant bits (checked for
// each format by mxarray.backends._cuda_two_pass.fold_is_exact), so the folded value is
// a bfloat16 exactly while it lies in bfloat16's normal range.  The shifts are chosen on
// the host from the operands' scale bytes (_cuda_two_pass.plan_shifts) so that every
// folded value, and every product of two, is a normal float32/bfloat16; a block the plan
// did not cover (an E8M0 scale byte below `min_byte` holding a non-zero element), a NaN
// scale or a non-finite element sets the caller's flag, and the caller then computes the
// product on the exact path instead.
//
// Work split: one thread owns one whole block of one operand row: it reads the block's
// bytes with the widest aligned vector loads, decodes every element in registers and
// writes the block's bfloat16 values with 16-byte stores.  mx_fold_thread_* below is the
// whole per-thread body; the kernels and the host replay both call it.
#pragma once

#include "mx_block_arith.cuh"
#include "mx_dot.cuh"
#include "mx_vector.cuh"

// Elements, and unpacked code bytes, of the largest block.
enum { MX_FOLD_MAX_BLOCK = 32, MX_FOLD_MAX_BYTES = 64 };

// bfloat16 bits of the float64 `bits` times 2^shift, keeping the top 7 fraction bits.  Exact
// when the product is zero or a normal bfloat16 with at most 8 significant bits; a product
// outside the normal range gives Inf or a signed zero, and the fold flags its block.
MX_HD unsigned mx_f64_to_bf16_shifted(mx_u64 bits, int shift) {
    const unsigned sign = (unsigned)(bits >> 48) & 0x8000u;
    const int field = (int)((bits >> 52) & 0x7FFu);
    if (field == 0x7FF) return (bits & 0xFFFFFFFFFFFFFull) ? 0x7FC0u : sign | 0x7F80u;
    if (field == 0) return sign;  // zero: float64 subnormals never reach here
    const int e = field - 1023 + shift;
    if (e > 127) return sign | 0x7F80u;
    if (e < -126) return sign;
    return sign | ((unsigned)(e + 127) << 7) | ((unsigned)(bits >> 45) & 0x7Fu);
}

// bfloat16 bits of decode(code) * scale * 2^shift (no tensor scale).  E8M0 formats go
// through the float32 bits (integer work on 32-bit words), UE4M3 through float64.
MX_HD unsigned mx_fold_bf16(const MxFormat& f, const MxBlockFormat& b, unsigned code,
                            unsigned scale_byte, int shift) {
    if (b.scale_kind == MX_SCALE_KIND_UE4M3) {
        const MxTensorScale one = mx_tensor_scale(0x3F800000u);
        return mx_f64_to_bf16_shifted(mx_ue4m3_decode_f64_bits(f, code, scale_byte, one), shift);
    }
    if (scale_byte == MX_SCALE_NAN_CODE) return 0x7FC0u;
    const int d = (int)(code >> f.bits);
    const mx_u32 bits =
        mx_element_f32_bits(mx_element(f, code), (int)scale_byte - MX_SCALE_BIAS - d + shift);
    const mx_u32 field = bits & 0x7F800000u;
    if (field == 0) return (bits >> 16) & 0x8000u;  // zero, or below the normals (flagged)
    return bits >> 16;
}

// Whether a folded value is outside what the plan covers: Inf or NaN; a non-zero element
// that underflowed to zero; or a non-zero element under a scale byte below min_byte (the
// plan took no account of that block, so its products may leave float32's normal range).
MX_HD bool mx_fold_uncovered(unsigned value, bool nonzero, unsigned scale_byte, int min_byte) {
    if ((value & 0x7F80u) == 0x7F80u) return true;
    return nonzero && ((value & 0x7FFFu) == 0u || (int)scale_byte < min_byte);
}

// Fold n codes of one block (codes[i] the unpacked code, i < n) into out[0..n).  Returns
// whether any value is uncovered (see mx_fold_uncovered).
MX_HD bool mx_fold_codes(const MxFormat& f, const MxBlockFormat& b, const unsigned* codes, int n,
                         unsigned scale_byte, int shift, int min_byte, unsigned short* out) {
    bool uncovered = false;
    MX_UNROLL
    for (int i = 0; i < n; ++i) {
        const unsigned v = mx_fold_bf16(f, b, codes[i], scale_byte, shift);
        out[i] = (unsigned short)v;
        const MxElement el = mx_element(f, codes[i]);
        uncovered = uncovered || mx_fold_uncovered(v, el.n != 0, scale_byte, min_byte);
    }
    return uncovered;
}

// Thread t of a fold launch over `rows` operand rows of n_kb blocks each: block kb0 + t %
// tile_kb of row t / tile_kb, written to out[t * block_size ..] (out is rows x tile_kb
// blocks of bfloat16).  OCP packed layout: each block is 32 codes in
// 32 * pack_bytes / pack_elements bytes.  Returns whether the block is uncovered.
MX_HD bool mx_fold_thread_packed(const MxFormat& f, const MxBlockFormat& b, long long t,
                                 const unsigned char* packed, const unsigned char* scales,
                                 unsigned short* out, long long n_kb, long long kb0,
                                 long long tile_kb, int shift, int min_byte) {
    const int block_bytes = MX_BLOCK_SIZE * f.pack_bytes / f.pack_elements;
    const long long row = t / tile_kb;
    const long long kb = kb0 + t % tile_kb;
    alignas(16) unsigned char bytes[MX_BLOCK_SIZE];
    mx_copy_bytes(bytes, packed + (row * n_kb + kb) * block_bytes, block_bytes);
    unsigned codes[MX_BLOCK_SIZE];
    MX_UNROLL
    for (int g = 0; g < MX_BLOCK_SIZE / f.pack_elements; ++g) {
        unsigned char group[8];
        mx_unpack_group(f, bytes + g * f.pack_bytes, group);
        MX_UNROLL
        for (int i = 0; i < f.pack_elements; ++i) codes[g * f.pack_elements + i] = group[i];
    }
    alignas(16) unsigned short values[MX_BLOCK_SIZE];
    const bool uncovered = mx_fold_codes(f, b, codes, MX_BLOCK_SIZE, scales[row * n_kb + kb],
                                         shift, min_byte, values);
    mx_copy_bytes(reinterpret_cast<unsigned char*>(out + t * MX_BLOCK_SIZE),
                 reinterpret_cast<const unsigned char*>(values), 2 * MX_BLOCK_SIZE);
    return uncovered;
}

// The same for unpacked codes of any block format (code_bytes 1 or 2 per element).
MX_HD bool mx_fold_thread_codes(const MxFormat& f, const MxBlockFormat& b, long long t,
                                const unsigned char* code_bytes, const unsigned char* scales,
                                unsigned short* out, long long n_kb, long long kb0,
                                long long tile_kb, int shift, int min_byte) {
    const int n = b.block_size;
    const long long row = t / tile_kb;
    const long long kb = kb0 + t % tile_kb;
    alignas(16) unsigned char bytes[MX_FOLD_MAX_BYTES];
    mx_copy_bytes(bytes, code_bytes + (row * n_kb + kb) * n * b.code_bytes, n * b.code_bytes);
    unsigned codes[MX_FOLD_MAX_BLOCK];
    MX_UNROLL
    for (int i = 0; i < n; ++i) {
        codes[i] = b.code_bytes == 1 ? bytes[i]
                                     : (unsigned)bytes[2 * i] | ((unsigned)bytes[2 * i + 1] << 8);
    }
    alignas(16) unsigned short values[MX_FOLD_MAX_BLOCK];
    const bool uncovered = mx_fold_codes(f, b, codes, n, scales[row * n_kb + kb], shift,
                                         min_byte, values);
    mx_copy_bytes(reinterpret_cast<unsigned char*>(out + t * n),
                 reinterpret_cast<const unsigned char*>(values), 2 * n);
    return uncovered;
}

// float64 bits of the float32 bits v (finite), exactly, by integer work (no DAZ).
MX_HD mx_u64 mx_f32_to_f64_bits(mx_u32 v) {
    const MxValue x = mx_unpack_f32(v);
    const mx_u64 sign = (mx_u64)x.neg << 63;
    if (x.cls == MX_ZERO) return sign;
    return sign | ((mx_u64)(x.e + 1023) << 52) | (x.sig & 0xFFFFFFFFFFFFFull);
}

// The epilogue: float32 bits of c * 2^-shift * ts_a * ts_b (ts_* float32 bits, 1.0 for
// formats without a tensor scale).  Without tensor scales the only rounding is the final
// one to float32 (c * 2^-shift is exact in float64); with them, two float64 products
// (relative error 2^-53 each) precede it.  Integer work around the products, so -ftz
// flushes nothing the spec keeps.
MX_HD mx_u32 mx_two_pass_result_bits(mx_u32 c, int shift, mx_u32 ts_a, mx_u32 ts_b) {
    if ((c & 0x7F800000u) == 0x7F800000u) return (c & 0x7FFFFFu) ? 0x7FC00000u : c;
    mx_u64 bits = mx_f32_to_f64_bits(c);
    if ((bits & 0x7FFFFFFFFFFFFFFFull) == 0) return c;
    bits -= (mx_u64)(long long)shift << 52;  // |shift| < 600: the exponent stays normal
    double v = mx_f64_from_bits(bits);
    if (ts_a != 0x3F800000u) v = v * mx_f64_from_bits(mx_f32_to_f64_bits(ts_a));
    if (ts_b != 0x3F800000u) v = v * mx_f64_from_bits(mx_f32_to_f64_bits(ts_b));
    return mx_f64_to_f32_bits(mx_f64_bits(v));
}

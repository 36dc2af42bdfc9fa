// A host build of the shared __host__ __device__ arithmetic, for testing without a GPU.
//
// Compiled with the host compiler (g++ -x c++) and the -D definitions of
// mxarray._cuda_sources; called from Python through ctypes by tests/test_cuda_host.py.
// Each entry point runs the same header functions as the kernels, one block at a time
// where a kernel uses one warp, and can run with the x86 MXCSR flush-to-zero and
// denormals-are-zero bits set (ftz != 0) to show that flushing changes no bit.
#include <xmmintrin.h>

#include <vector>

#include "../mx_block_arith.cuh"
#include "../mx_dot.cuh"
#include "../mx_fold.cuh"
#include "../mx_packed.cuh"
#include "../mx_mma_tile.cuh"

namespace {

// Sets MXCSR FTZ (bit 15) and DAZ (bit 6) for its lifetime when asked to.
class FlushToZero {
  public:
    explicit FlushToZero(int on) : saved_(_mm_getcsr()) {
        if (on) _mm_setcsr(saved_ | 0x8040u);
    }
    ~FlushToZero() { _mm_setcsr(saved_); }
    FlushToZero(const FlushToZero&) = delete;
    FlushToZero& operator=(const FlushToZero&) = delete;

  private:
    unsigned saved_;
};

// The PTX ISA's fragment tables for mma.m16n8k16 (.f16 inputs, .f32 accumulators),
// written out independently of mx_mma_tile.cuh in the table's own terms: A elements
// a0..a7, B elements b0..b3, C elements c0..c3 of lane (group = lane / 4, tig = lane % 4).
MxRowCol ptx_a_element(int lane, int i) {
    const int group = lane >> 2, tig = lane & 3;
    const bool low_rows = i == 0 || i == 1 || i == 4 || i == 5;
    return {low_rows ? group : group + 8, tig * 2 + (i & 1) + (i >= 4 ? 8 : 0)};
}

MxRowCol ptx_b_element(int lane, int i) {
    const int group = lane >> 2, tig = lane & 3;
    return {tig * 2 + (i & 1) + (i >= 2 ? 8 : 0), group};
}

MxRowCol ptx_c_element(int lane, int i) {
    const int group = lane >> 2, tig = lane & 3;
    return {i < 2 ? group : group + 8, tig * 2 + (i & 1)};
}

float half_to_float(unsigned h) {  // exact: every float16 is a float32
    const unsigned sign = (h & 0x8000u) << 16;
    const int field = (int)((h >> 10) & 0x1Fu);
    const unsigned frac = h & 0x3FFu;
    mx_u32 bits;
    if (field == 0x1F) {
        bits = sign | 0x7F800000u | (frac << 13);
    } else if (field != 0) {
        bits = sign | ((mx_u32)(field - 15 + 127) << 23) | (frac << 13);
    } else if (frac == 0) {
        bits = sign;
    } else {
        const int lead = 31 - __builtin_clz(frac);  // value = frac * 2^-24
        bits = sign | ((mx_u32)(lead - 24 + 127) << 23) | ((frac << (23 - lead)) & 0x7FFFFFu);
    }
    return mx_f32_from_bits(bits);
}

// A model of one warp-wide mma.m16n8k16: rebuild A, B and C from the 32 lanes' registers
// through the PTX tables, then D = A * B + C with exact products summed in float32 in K
// order (the hardware's summation order and rounding inside the instruction may differ;
// the kernel's error analysis allows for that).
void model_mma(const mx_u32 a[32][4], const mx_u32 b[32][2], const float c[32][4],
               float d[32][4]) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        for (int i = 0; i < 8; ++i) {
            const MxRowCol p = ptx_a_element(lane, i);
            A[p.row][p.col] = half_to_float((a[lane][i / 2] >> (16 * (i % 2))) & 0xFFFFu);
        }
        for (int i = 0; i < 4; ++i) {
            const MxRowCol p = ptx_b_element(lane, i);
            B[p.row][p.col] = half_to_float((b[lane][i / 2] >> (16 * (i % 2))) & 0xFFFFu);
        }
        for (int i = 0; i < 4; ++i) {
            const MxRowCol p = ptx_c_element(lane, i);
            C[p.row][p.col] = c[lane][i];
        }
    }
    for (int lane = 0; lane < 32; ++lane) {
        for (int i = 0; i < 4; ++i) {
            const MxRowCol p = ptx_c_element(lane, i);
            float acc = C[p.row][p.col];
            for (int k = 0; k < 16; ++k) acc = __builtin_fmaf(A[p.row][k], B[k][p.col], acc);
            d[lane][i] = acc;
        }
    }
}

// One thread block of mx_matmul_mma.cu replayed on the host: the same header functions in
// the same order, thread by thread and lane by lane, with model_mma for the tensor cores.
void replay_mma_tile(const MxFormat& fa, const unsigned char* a_codes,
                     const unsigned char* a_scales, const MxFormat& fb,
                     const unsigned char* b_codes, const unsigned char* b_scales, mx_u32* out,
                     long long block, long long m, long long n, long long n_kb) {
    const MxTile tile = mx_mma_tile(block, m, n);
    std::vector<unsigned short> tile_a(MX_MMA_BM * MX_MMA_LDS), tile_b(MX_MMA_BN * MX_MMA_LDS);
    unsigned short table_a[256], table_b[256];
    int part_a[MX_MMA_BM], part_b[MX_MMA_BN];
    unsigned char nan_a[MX_MMA_BM], nan_b[MX_MMA_BN];
    for (int i = 0; i < 256; ++i) {
        table_a[i] = mx_decode_f16_bits(fa, (unsigned)i);
        table_b[i] = mx_decode_f16_bits(fb, (unsigned)i);
    }
    const unsigned char* a_codes_b = a_codes + tile.batch * m * n_kb * MX_BLOCK_SIZE;
    const unsigned char* b_codes_b = b_codes + tile.batch * n * n_kb * MX_BLOCK_SIZE;
    const unsigned char* a_scales_b = a_scales + tile.batch * m * n_kb;
    const unsigned char* b_scales_b = b_scales + tile.batch * n * n_kb;
    int max_a = 0, max_b = 0;
    for (int r = 0; r < MX_MMA_BM; ++r) {
        const long long row = tile.row0 + r;
        const MxRowScan s = row < m ? mx_mma_scan_row(a_scales_b + row * n_kb, n_kb)
                                    : MxRowScan{0, 0};
        nan_a[r] = (unsigned char)s.has_nan;
        max_a = s.max_byte > max_a ? s.max_byte : max_a;
    }
    for (int r = 0; r < MX_MMA_BN; ++r) {
        const long long col = tile.col0 + r;
        const MxRowScan s = col < n ? mx_mma_scan_row(b_scales_b + col * n_kb, n_kb)
                                    : MxRowScan{0, 0};
        nan_b[r] = (unsigned char)s.has_nan;
        max_b = s.max_byte > max_b ? s.max_byte : max_b;
    }
    const int S = mx_mma_tile_shift(max_a, max_b, n_kb, fa, fb);
    if (S == MX_MMA_SLOW) {
        for (int i = 0; i < MX_MMA_BM * MX_MMA_BN; ++i) {
            mx_mma_exact_entry(i, fa, a_codes, a_scales, fb, b_codes, b_scales, out, tile, m,
                               n, n_kb);
        }
        return;
    }
    const int warps = MX_MMA_THREADS / 32;
    std::vector<float> acc((size_t)warps * 32 * MX_MMA_FM * MX_MMA_FN * 4, 0.0f);
    auto acc_at = [&](int w, int lane, int fm, int fn, int i) -> float& {
        return acc[((((size_t)w * 32 + lane) * MX_MMA_FM + fm) * MX_MMA_FN + fn) * 4 + i];
    };
    for (long long kb = 0; kb < n_kb; ++kb) {
        for (int t = 0; t < MX_MMA_THREADS; ++t) {
            MxStaged st;
            mx_mma_fetch(a_codes_b, a_scales_b, b_codes_b, b_scales_b, tile.row0, tile.col0, m,
                         n, n_kb, kb, t, st);
            mx_mma_put(st, table_a, table_b, tile_a.data(), tile_b.data(), part_a, part_b, S, t);
        }
        for (int w = 0; w < warps; ++w) {
            for (int fm = 0; fm < MX_MMA_FM; ++fm) {
                for (int fn = 0; fn < MX_MMA_FN; ++fn) {
                    const MxRowCol o = mx_mma_warp_tile(w, fm, fn);
                    float sum[32][4] = {};
                    for (int k0 = 0; k0 < MX_BLOCK_SIZE; k0 += 16) {
                        mx_u32 ra[32][4], rb[32][2];
                        for (int lane = 0; lane < 32; ++lane) {
                            mx_mma_load_a(tile_a.data(), lane, o.row, k0, ra[lane]);
                            mx_mma_load_b(tile_b.data(), lane, o.col, k0, rb[lane]);
                        }
                        float d[32][4];
                        model_mma(ra, rb, sum, d);
                        __builtin_memcpy(sum, d, sizeof sum);
                    }
                    for (int lane = 0; lane < 32; ++lane) {
                        for (int i = 0; i < 4; ++i) {
                            const MxRowCol p = mx_mma_frag_c(lane, i);
                            const mx_u32 f = mx_mma_factor_bits(part_a[o.row + p.row],
                                                                part_b[o.col + p.col]);
                            float& a = acc_at(w, lane, fm, fn, i);
                            a = __builtin_fmaf(sum[lane][i], mx_f32_from_bits(f), a);
                        }
                    }
                }
            }
        }
    }
    for (int w = 0; w < warps; ++w) {
        for (int lane = 0; lane < 32; ++lane) {
            for (int fm = 0; fm < MX_MMA_FM; ++fm) {
                for (int fn = 0; fn < MX_MMA_FN; ++fn) {
                    const MxRowCol o = mx_mma_warp_tile(w, fm, fn);
                    for (int i = 0; i < 4; ++i) {
                        const MxRowCol p = mx_mma_frag_c(lane, i);
                        const int r = o.row + p.row, c = o.col + p.col;
                        const long long row = tile.row0 + r, col = tile.col0 + c;
                        if (row >= m || col >= n) continue;
                        float a = acc_at(w, lane, fm, fn, i);
                        mx_u32 bits;
                        __builtin_memcpy(&bits, &a, sizeof bits);
                        out[(tile.batch * m + row) * n + col] =
                            (nan_a[r] || nan_b[c]) ? 0x7FC00000u : mx_f32_scale_down_bits(bits, S);
                    }
                }
            }
        }
    }
}

MxValue unpack_input(const void* in, int input_bits, long long i) {
    if (input_bits == 16) return mx_unpack_f16(static_cast<const unsigned short*>(in)[i]);
    if (input_bits == 32) return mx_unpack_f32(static_cast<const mx_u32*>(in)[i]);
    return mx_unpack_f64(static_cast<const mx_u64*>(in)[i]);
}

}  // namespace

extern "C" {

// Bits of the MXCSR flush-to-zero and denormals-are-zero flags, for the test to confirm
// that they were really set inside a call.
unsigned mx_host_ftz_flags(int ftz) {
    FlushToZero guard(ftz);
    return _mm_getcsr() & 0x8040u;
}

// Quantize n_blocks rows of MX_BLOCK_SIZE float16/32/64 values given as raw bits;
// block_ids (or null) number the rows for stochastic rounding.
void mx_host_quantize(const void* in, int input_bits, long long n_blocks, const MxFormat* f,
                      int rounding, int scale_mode, mx_u64 seed, const mx_u64* block_ids,
                      unsigned char* codes, unsigned char* scales, int ftz) {
    FlushToZero guard(ftz);
    for (long long b = 0; b < n_blocks; ++b) {
        MxValue v[MX_BLOCK_SIZE];
        mx_u64 key = 0;
        bool bad = false;
        for (int lane = 0; lane < MX_BLOCK_SIZE; ++lane) {
            v[lane] = unpack_input(in, input_bits, b * MX_BLOCK_SIZE + lane);
            const mx_u64 k = mx_magnitude_key(v[lane]);
            key = k > key ? k : key;
            bad = bad || v[lane].cls == MX_NONFINITE;
        }
        const int x = mx_shared_exponent(*f, key, scale_mode);
        for (int lane = 0; lane < MX_BLOCK_SIZE; ++lane) {
            const long long t = b * MX_BLOCK_SIZE + lane;
            const mx_u64 index = mx_random_index(block_ids, b, MX_BLOCK_SIZE, lane);
            codes[t] = bad ? 0 : (unsigned char)mx_encode(*f, v[lane], x, rounding, seed, index);
        }
        scales[b] = (unsigned char)(bad ? MX_SCALE_NAN_CODE : x + MX_SCALE_BIAS);
    }
}

// mx_block_quantize.cu block by block: the group reductions of the kernel become loops
// over the block's and each sub-block's lanes.  Codes are written as uint16.
void mx_host_block_quantize(const void* in, int input_bits, long long n_blocks,
                            const MxFormat* f, const MxBlockFormat* bf, int rounding,
                            int scale_mode, mx_u64 seed, const mx_u64* block_ids,
                            mx_u32 tensor_scale, unsigned short* codes, unsigned char* scales,
                            int ftz) {
    FlushToZero guard(ftz);
    const int size = bf->block_size;
    std::vector<MxValue> v(size);
    std::vector<mx_u64> key(size);
    for (long long b = 0; b < n_blocks; ++b) {
        mx_u64 amax = 0;
        bool bad = false;
        for (int lane = 0; lane < size; ++lane) {
            v[lane] = unpack_input(in, input_bits, b * size + lane);
            key[lane] = mx_magnitude_key(v[lane]);
            amax = key[lane] > amax ? key[lane] : amax;
            bad = bad || v[lane].cls == MX_NONFINITE;
        }
        unsigned scale;
        if (bf->scale_kind == MX_SCALE_KIND_UE4M3) {
            const MxTensorScale ts = mx_tensor_scale(tensor_scale);
            scale = mx_ue4m3_scale_code(*f, amax, ts);
            for (int lane = 0; lane < size; ++lane) {
                codes[b * size + lane] =
                    (unsigned short)mx_ue4m3_element_code(*f, v[lane], scale, ts, rounding);
            }
        } else {
            const int x = mx_shared_exponent(*f, amax, scale_mode);
            scale = (unsigned)(x + MX_SCALE_BIAS);
            const int sub = bf->sub_block_size ? bf->sub_block_size : 1;
            for (int lane = 0; lane < size; ++lane) {
                mx_u64 sub_max = 0;
                for (int j = lane - lane % sub; j < lane - lane % sub + sub; ++j) {
                    sub_max = key[j] > sub_max ? key[j] : sub_max;
                }
                const mx_u64 index = mx_random_index(block_ids, b, size, lane);
                codes[b * size + lane] = (unsigned short)mx_sub_block_code(
                    *f, *bf, v[lane], x, sub_max, scale_mode, rounding, seed, index);
            }
        }
        if (bad) {
            for (int lane = 0; lane < size; ++lane) codes[b * size + lane] = 0;
        }
        scales[b] = (unsigned char)(bad ? (unsigned)bf->scale_nan_code : scale);
    }
}

// mx_block_dequantize.cu: n uint16 codes to float32 (out_bits 32) or float64 bits.
void mx_host_block_dequantize(const unsigned short* codes, const unsigned char* scales,
                              long long n, const MxFormat* f, const MxBlockFormat* bf,
                              mx_u32 tensor_scale, int out_bits, void* out, int ftz) {
    FlushToZero guard(ftz);
    const MxTensorScale ts = mx_tensor_scale(tensor_scale);
    for (long long t = 0; t < n; ++t) {
        const unsigned s = scales[t / bf->block_size];
        if (out_bits == 32) {
            static_cast<mx_u32*>(out)[t] = mx_block_decode_f32_bits(*f, *bf, codes[t], s, ts);
        } else {
            static_cast<mx_u64*>(out)[t] = mx_block_decode_f64_bits(*f, *bf, codes[t], s, ts);
        }
    }
}

// mx_block_pack.cu: n_blocks blocks of uint16 codes to bytes and back.
void mx_host_block_pack(const unsigned short* codes, unsigned char* packed, long long n_blocks,
                        const MxFormat* f, const MxBlockFormat* bf) {
    const int bytes = bf->element_bytes + bf->sub_block_bytes;
    for (long long g = 0; g < n_blocks; ++g) {
        mx_pack_block(*f, *bf, codes + g * bf->block_size, packed + g * bytes);
    }
}

void mx_host_block_unpack(const unsigned char* packed, unsigned short* codes, long long n_blocks,
                          const MxFormat* f, const MxBlockFormat* bf) {
    const int bytes = bf->element_bytes + bf->sub_block_bytes;
    for (long long g = 0; g < n_blocks; ++g) {
        mx_unpack_block(*f, *bf, packed + g * bytes, codes + g * bf->block_size);
    }
}

// mx_matmul_block.cu one output at a time, on uint16 codes of any two block formats.
void mx_host_block_matmul(const unsigned short* a_codes, const unsigned char* a_scales,
                          const MxFormat* fa, const MxBlockFormat* ba, mx_u32 a_tensor_scale,
                          const unsigned short* b_codes, const unsigned char* b_scales,
                          const MxFormat* fb, const MxBlockFormat* bb, mx_u32 b_tensor_scale,
                          long long m, long long n, long long a_len, long long b_len,
                          long long k_len, mx_u32* out, int ftz) {
    FlushToZero guard(ftz);
    const MxTensorScale ta = mx_tensor_scale(a_tensor_scale), tb = mx_tensor_scale(b_tensor_scale);
    for (long long row = 0; row < m; ++row) {
        for (long long col = 0; col < n; ++col) {
            const double dot = mx_block_row_dot(
                *fa, *ba, a_codes + row * a_len, a_scales + row * (a_len / ba->block_size), ta,
                *fb, *bb, b_codes + col * b_len, b_scales + col * (b_len / bb->block_size), tb,
                k_len);
            out[row * n + col] = mx_f64_to_f32_bits(mx_f64_bits(dot));
        }
    }
}

// Dequantize n elements to float32 (out_bits 32) or float64 (out_bits 64) bits.
void mx_host_dequantize(const unsigned char* codes, const unsigned char* scales, long long n,
                        const MxFormat* f, int out_bits, void* out, int ftz) {
    FlushToZero guard(ftz);
    for (long long t = 0; t < n; ++t) {
        const unsigned s = scales[t / MX_BLOCK_SIZE];
        if (out_bits == 32) {
            static_cast<mx_u32*>(out)[t] = mx_decode_f32_bits(*f, codes[t], s);
        } else {
            static_cast<mx_u64*>(out)[t] = mx_decode_f64_bits(*f, codes[t], s);
        }
    }
}

void mx_host_pack(const unsigned char* codes, unsigned char* packed, long long n_groups,
                  const MxFormat* f) {
    for (long long g = 0; g < n_groups; ++g) {
        mx_pack_group(*f, codes + g * f->pack_elements, packed + g * f->pack_bytes);
    }
}

void mx_host_unpack(const unsigned char* packed, unsigned char* codes, long long n_groups,
                    const MxFormat* f) {
    for (long long g = 0; g < n_groups; ++g) {
        mx_unpack_group(*f, packed + g * f->pack_bytes, codes + g * f->pack_elements);
    }
}

// The simple matmul kernel's arithmetic, one output at a time (float32 result bits).
void mx_host_matmul(const unsigned char* a_codes, const unsigned char* a_scales,
                    const MxFormat* fa, const unsigned char* b_codes,
                    const unsigned char* b_scales, const MxFormat* fb, long long m, long long n,
                    long long n_kb, mx_u32* out, int ftz) {
    FlushToZero guard(ftz);
    for (long long row = 0; row < m; ++row) {
        for (long long col = 0; col < n; ++col) {
            const double dot = mx_row_dot(*fa, a_codes + row * n_kb * MX_BLOCK_SIZE,
                                          a_scales + row * n_kb, *fb,
                                          b_codes + col * n_kb * MX_BLOCK_SIZE,
                                          b_scales + col * n_kb, n_kb);
            out[row * n + col] = mx_f64_to_f32_bits(mx_f64_bits(dot));
        }
    }
}

void mx_host_f64_to_f32(const mx_u64* in, mx_u32* out, long long n, int ftz) {
    FlushToZero guard(ftz);
    for (long long i = 0; i < n; ++i) out[i] = mx_f64_to_f32_bits(in[i]);
}

// The fragment layout of mx_mma_tile.cuh: kind 0 = A (reg 0..3), 1 = B (reg 0..1),
// 2 = C (i 0..3, h ignored); row and column written to rc[0], rc[1].
void mx_host_mma_fragment(int kind, int lane, int reg, int h, int* rc) {
    const MxRowCol p = kind == 0   ? mx_mma_frag_a(lane, reg, h)
                       : kind == 1 ? mx_mma_frag_b(lane, reg, h)
                                   : mx_mma_frag_c(lane, reg);
    rc[0] = p.row;
    rc[1] = p.col;
}

// The 256 float16 bit patterns the mma kernel stages for the codes of format f.
void mx_host_decode_f16(const MxFormat* f, unsigned short* out) {
    for (int i = 0; i < 256; ++i) out[i] = mx_decode_f16_bits(*f, (unsigned)i);
}

void mx_host_scale_down(const mx_u32* in, const int* shifts, mx_u32* out, long long n, int ftz) {
    FlushToZero guard(ftz);
    for (long long i = 0; i < n; ++i) out[i] = mx_f32_scale_down_bits(in[i], shifts[i]);
}

int mx_host_tile_shift(int max_a_byte, int max_b_byte, long long n_kb, const MxFormat* fa,
                       const MxFormat* fb) {
    return mx_mma_tile_shift(max_a_byte, max_b_byte, n_kb, *fa, *fb);
}

// The whole mma kernel replayed on the host, thread block by thread block.
void mx_host_mma_matmul(const unsigned char* a_codes, const unsigned char* a_scales,
                        const MxFormat* fa, const unsigned char* b_codes,
                        const unsigned char* b_scales, const MxFormat* fb, long long batch,
                        long long m, long long n, long long n_kb, mx_u32* out, int ftz) {
    FlushToZero guard(ftz);
    const long long blocks = mx_mma_grid(batch, m, n);
    for (long long block = 0; block < blocks; ++block) {
        replay_mma_tile(*fa, a_codes, a_scales, *fb, b_codes, b_scales, out, block, m, n, n_kb);
    }
}

// The two-pass matmul's fold (mx_fold_bf16.cu) replayed thread by thread: packed != 0 runs
// mx_fold_bf16_packed (OCP bytes), else mx_fold_bf16_codes (unpacked codes).  Returns the
// flag the kernel would leave (1 if any block is uncovered).
int mx_host_fold(const MxFormat* f, const MxBlockFormat* b, int packed, const unsigned char* src,
                 const unsigned char* scales, unsigned short* out, long long rows,
                 long long n_kb, long long kb0, long long tile_kb, int shift, int min_byte,
                 int ftz) {
    FlushToZero guard(ftz);
    int flag = 0;
    for (long long t = 0; t < rows * tile_kb; ++t) {
        const bool uncovered =
            packed ? mx_fold_thread_packed(*f, *b, t, src, scales, out, n_kb, kb0, tile_kb,
                                           shift, min_byte)
                   : mx_fold_thread_codes(*f, *b, t, src, scales, out, n_kb, kb0, tile_kb,
                                          shift, min_byte);
        flag |= uncovered ? 1 : 0;
    }
    return flag;
}

// The two-pass epilogue (mx_two_pass_epilogue) over n float32 bit patterns, in place.
void mx_host_two_pass_epilogue(mx_u32* c, long long n, int shift, mx_u32 ts_a, mx_u32 ts_b,
                               int ftz) {
    FlushToZero guard(ftz);
    for (long long i = 0; i < n; ++i) c[i] = mx_two_pass_result_bits(c[i], shift, ts_a, ts_b);
}

// The fused packed quantize (mx_packed.cu) replayed block by block: input_bits 16 or 32.
void mx_host_quantize_packed(const void* in, int input_bits, long long n, const MxFormat* f,
                             int rounding, int scale_mode, mx_u64 seed, const mx_u64* block_ids,
                             unsigned char* packed, unsigned char* scales, int ftz) {
    FlushToZero guard(ftz);
    for (long long row = 0; row < n; ++row) {
        mx_quantize_packed_block(*f, static_cast<const unsigned char*>(in), input_bits, row,
                                 packed, scales, rounding, scale_mode, seed, block_ids);
    }
}

// The fused packed dequantize replayed block by block: out_bits 32 or 64.
void mx_host_dequantize_packed(const unsigned char* packed, const unsigned char* scales,
                               long long n, const MxFormat* f, int out_bits, void* out,
                               int ftz) {
    FlushToZero guard(ftz);
    for (long long row = 0; row < n; ++row) {
        mx_dequantize_packed_block(*f, packed, scales, row, static_cast<unsigned char*>(out),
                                   out_bits);
    }
}

// The general block formats' fused dequantize replayed block by block: out_bits 32 or 64.
void mx_host_block_dequantize_packed(const unsigned char* packed, const unsigned char* scales,
                                     long long n, const MxFormat* f, const MxBlockFormat* b,
                                     int out_bits, mx_u32 tensor_scale, void* out, int ftz) {
    FlushToZero guard(ftz);
    for (long long row = 0; row < n; ++row) {
        mx_block_dequantize_packed_block(*f, *b, packed, scales, row,
                                         static_cast<unsigned char*>(out), out_bits, tensor_scale);
    }
}

// The general block formats' fused quantize replayed block by block: input_bits 16/32/64.
void mx_host_block_quantize_packed(const void* in, int input_bits, long long n,
                                   const MxFormat* f, const MxBlockFormat* b, int rounding,
                                   int scale_mode, mx_u64 seed, const mx_u64* block_ids,
                                   mx_u32 tensor_scale, unsigned char* packed,
                                   unsigned char* scales, int ftz) {
    FlushToZero guard(ftz);
    for (long long row = 0; row < n; ++row) {
        mx_block_quantize_packed_block(*f, *b, static_cast<const unsigned char*>(in), input_bits,
                                       row, packed, scales, rounding, scale_mode, seed,
                                       block_ids, tensor_scale);
    }
}

}  // extern "C"

// Pack and unpack the codes of a general block format, one thread per block: the block's
// element bit stream, then its microexponents (see mx_pack_block in mx_block_arith.cuh).
#include "mx_block_arith.cuh"
#include "mx_index.cuh"

constexpr MxBlockFormat kBlockLayout = MX_FORMAT_BLOCK;
typedef MxCodeType<kBlockLayout.code_bytes>::type MxCode;

extern "C" __global__ void mx_block_pack(const MxCode* __restrict__ codes,
                                         unsigned char* __restrict__ packed, long long n_blocks) {
    const long long g = mx_thread_index();
    if (g >= n_blocks) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;
    mx_pack_block(kFormat, kBlock, codes + g * kBlock.block_size,
                  packed + g * (kBlock.element_bytes + kBlock.sub_block_bytes));
}

extern "C" __global__ void mx_block_unpack(const unsigned char* __restrict__ packed,
                                           MxCode* __restrict__ codes, long long n_blocks) {
    const long long g = mx_thread_index();
    if (g >= n_blocks) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;
    mx_unpack_block(kFormat, kBlock, packed + g * (kBlock.element_bytes + kBlock.sub_block_bytes),
                    codes + g * kBlock.block_size);
}

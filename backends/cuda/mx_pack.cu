// Pack and unpack element codes in the format's byte layout, one thread per group of
// pack_elements codes.  The format is the compile-time MxFormat MX_FORMAT.
#include "mx_arith.cuh"
#include "mx_index.cuh"

extern "C" __global__ void mx_pack(const unsigned char* __restrict__ codes,
                                   unsigned char* __restrict__ packed, long long n_groups) {
    const long long g = mx_thread_index();
    if (g >= n_groups) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    mx_pack_group(kFormat, codes + g * kFormat.pack_elements, packed + g * kFormat.pack_bytes);
}

extern "C" __global__ void mx_unpack(const unsigned char* __restrict__ packed,
                                     unsigned char* __restrict__ codes, long long n_groups) {
    const long long g = mx_thread_index();
    if (g >= n_groups) return;
    constexpr MxFormat kFormat = MX_FORMAT;
    mx_unpack_group(kFormat, packed + g * kFormat.pack_bytes, codes + g * kFormat.pack_elements);
}

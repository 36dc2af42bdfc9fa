// Vector moves and loop unrolling shared by the one-thread-per-block kernels (the two-pass
// fold, the packed quantize and dequantize) and their host builds.
#pragma once

#include "mx_arith.cuh"

// Full unrolling of per-block loops keeps a block's values in registers on the device.
#if defined(__CUDA_ARCH__)
#define MX_UNROLL _Pragma("unroll")
#else
#define MX_UNROLL
#endif

// Copies n bytes (n a multiple of 8; src and dst aligned to 16 bytes when n is a multiple
// of 16, else to 8) with 16-byte (else 8-byte) vector moves on the device.
MX_HD void mx_copy_bytes(unsigned char* dst, const unsigned char* src, int n) {
#if defined(__CUDA_ARCH__)
    if (n % 16 == 0) {
        MX_UNROLL
        for (int i = 0; i < n; i += 16) {
            *reinterpret_cast<uint4*>(dst + i) = *reinterpret_cast<const uint4*>(src + i);
        }
    } else {
        MX_UNROLL
        for (int i = 0; i < n; i += 8) {
            *reinterpret_cast<uint2*>(dst + i) = *reinterpret_cast<const uint2*>(src + i);
        }
    }
#else
    __builtin_memcpy(dst, src, (unsigned long)n);
#endif
}

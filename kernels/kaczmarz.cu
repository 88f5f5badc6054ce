// Fused regularised Kaczmarz sweep for MPI (PHYSICS.md §6), one cooperative launch per sweep.
//
// The numpy twin is mpisim.reco.kaczmarz.sweep_numpy; tests/test_gpu_kernels.py compares them.
//
// Layout: A (M, lda) complex64 row-major (rows = frequency x channel, columns = voxels);
// b (M, F) complex128; c (N, F) complex128; v (M, F) complex128; order (R,) int64 row sequence;
// inv_den (M,) float64 = 1 / (|a_k|^2 + lambda), 0 for rows to skip.
//
// Every thread owns VPT voxels (j = global thread id + t * total threads) and keeps their
// iterate for FB frames in registers for the whole sweep, so each row of A is read from memory
// exactly once per sweep and c never leaves the chip. Per row: partial dot products -> block
// reduction -> per-block partials in global memory (double-buffered) -> grid.sync() -> every
// block sums the partials, computes alpha for its frames, and updates its voxels.
// v_k is read by every block before the grid barrier and written by block 0 after it, so no
// block can see the new value early.

#include <cooperative_groups.h>
namespace cg = cooperative_groups;

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

template <int VPT, int FB>
__device__ void sweep(const float2* __restrict__ A, long long lda, int N,
                      const double2* __restrict__ b, int F, int f0, int nf,
                      const long long* __restrict__ order, int R,
                      const double* __restrict__ inv_den, double sqrt_lam,
                      double2* __restrict__ c, double2* __restrict__ v,
                      double2* __restrict__ partial, int enforce_real, int enforce_positive)
{
    cg::grid_group grid = cg::this_grid();
    const int tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5, nwarps = (blockDim.x + 31) >> 5;
    const long long nthreads = (long long)blockDim.x * gridDim.x;
    const long long gtid = (long long)blockIdx.x * blockDim.x + tid;

    __shared__ double red_x[32][FB], red_y[32][FB];
    __shared__ double alpha_x[FB], alpha_y[FB], vk_x[FB], vk_y[FB];

    double cr[VPT][FB], ci[VPT][FB];
#pragma unroll
    for (int t = 0; t < VPT; ++t) {
        long long j = gtid + t * nthreads;
#pragma unroll
        for (int f = 0; f < FB; ++f) {
            double2 z = make_double2(0.0, 0.0);
            if (j < N && f < nf) z = c[j * F + f0 + f];
            cr[t][f] = z.x; ci[t][f] = z.y;
        }
    }

    int buf = 0;
    for (int kk = 0; kk < R; ++kk) {
        const long long k = order[kk];
        const double id = inv_den[k];
        if (id == 0.0) continue;                       // same decision in every block
        const float2* row = A + k * lda;
        float2 s[VPT];
        double ax[FB], ay[FB];
#pragma unroll
        for (int f = 0; f < FB; ++f) { ax[f] = 0.0; ay[f] = 0.0; }
#pragma unroll
        for (int t = 0; t < VPT; ++t) {
            long long j = gtid + t * nthreads;
            s[t] = (j < N) ? row[j] : make_float2(0.f, 0.f);
            const double sr = s[t].x, si = s[t].y;
#pragma unroll
            for (int f = 0; f < FB; ++f) {             // plain (non-conjugated) product a_k . c
                ax[f] += sr * cr[t][f] - si * ci[t][f];
                ay[f] += sr * ci[t][f] + si * cr[t][f];
            }
        }
        if (tid < FB && tid < nf) {                    // read v_k before the barrier
            double2 vv = v[k * F + f0 + tid];
            vk_x[tid] = vv.x; vk_y[tid] = vv.y;
        }
#pragma unroll
        for (int f = 0; f < FB; ++f) {
            double x = warp_sum(ax[f]), y = warp_sum(ay[f]);
            if (lane == 0) { red_x[warp][f] = x; red_y[warp][f] = y; }
        }
        __syncthreads();
        if (warp == 0) {
#pragma unroll
            for (int f = 0; f < FB; ++f) {
                double x = lane < nwarps ? red_x[lane][f] : 0.0;
                double y = lane < nwarps ? red_y[lane][f] : 0.0;
                x = warp_sum(x); y = warp_sum(y);
                if (lane == 0) partial[((long long)buf * gridDim.x + blockIdx.x) * FB + f] = make_double2(x, y);
            }
        }
        grid.sync();
        if (warp == 0) {
#pragma unroll
            for (int f = 0; f < FB; ++f) {
                double x = 0.0, y = 0.0;
                for (int g = lane; g < gridDim.x; g += 32) {
                    double2 p = partial[((long long)buf * gridDim.x + g) * FB + f];
                    x += p.x; y += p.y;
                }
                x = warp_sum(x); y = warp_sum(y);
                if (lane == 0 && f < nf) {
                    double2 bk = b[k * F + f0 + f];
                    double alr = (bk.x - x - sqrt_lam * vk_x[f]) * id;
                    double ali = (bk.y - y - sqrt_lam * vk_y[f]) * id;
                    alpha_x[f] = alr; alpha_y[f] = ali;
                    if (blockIdx.x == 0)
                        v[k * F + f0 + f] = make_double2(vk_x[f] + sqrt_lam * alr, vk_y[f] + sqrt_lam * ali);
                } else if (lane == 0) {
                    alpha_x[f] = 0.0; alpha_y[f] = 0.0;
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int t = 0; t < VPT; ++t) {
            const double sr = s[t].x, si = s[t].y;
#pragma unroll
            for (int f = 0; f < FB; ++f) {             // c += alpha * conj(a_k)
                cr[t][f] += sr * alpha_x[f] + si * alpha_y[f];
                ci[t][f] += sr * alpha_y[f] - si * alpha_x[f];
            }
        }
        buf ^= 1;
        __syncthreads();
    }

#pragma unroll
    for (int t = 0; t < VPT; ++t) {
        long long j = gtid + t * nthreads;
        if (j >= N) continue;
#pragma unroll
        for (int f = 0; f < FB; ++f) {
            if (f >= nf) continue;
            double x = cr[t][f], y = ci[t][f];
            if (enforce_real) y = 0.0;
            if (enforce_positive && x < 0.0) x = 0.0;
            c[j * F + f0 + f] = make_double2(x, y);
        }
    }
}

#define KACZMARZ_KERNEL(VPT, FB)                                                                   \
extern "C" __global__ void kaczmarz_sweep_v##VPT##_f##FB(                                          \
    const float2* A, long long lda, int N, const double2* b, int F, int f0, int nf,                \
    const long long* order, int R, const double* inv_den, double sqrt_lam, double2* c,             \
    double2* v, double2* partial, int enforce_real, int enforce_positive)                          \
{                                                                                                  \
    sweep<VPT, FB>(A, lda, N, b, F, f0, nf, order, R, inv_den, sqrt_lam, c, v, partial,            \
                   enforce_real, enforce_positive);                                               \
}

KACZMARZ_KERNEL(1, 1)
KACZMARZ_KERNEL(2, 1)
KACZMARZ_KERNEL(4, 1)
KACZMARZ_KERNEL(8, 1)
KACZMARZ_KERNEL(1, 4)
KACZMARZ_KERNEL(2, 4)
KACZMARZ_KERNEL(4, 4)
KACZMARZ_KERNEL(1, 8)
KACZMARZ_KERNEL(2, 8)

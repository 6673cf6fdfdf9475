// Fused kernels for the trainer's ops (src/ops/), compiled to PTX by
// build.rs when the `cuda` feature is on, loaded by src/cuda.rs. Each is
// checked against candle's tensor ops on the device before its first use.
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T narrow(float x);
template <> __device__ __forceinline__ float narrow<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// out = silu(gate) * up, computed in f32, one read of each input and one
// write (the tensor ops take three passes and keep silu(gate)).
template <typename T>
__device__ void silu_mul_forward(const T* gate, const T* up, T* out, uint64_t n) {
    const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = widen(gate[i]);
        const float s = 1.0f / (1.0f + expf(-g));
        out[i] = narrow<T>(g * s * widen(up[i]));
    }
}

// With s = sigmoid(gate): d up = grad * gate * s into out[0..n], d gate =
// grad * up * s * (1 + gate * (1 - s)) into out[n..2n] (swiglu.rs's formulas).
template <typename T>
__device__ void silu_mul_backward(const T* gate, const T* up, const T* grad, T* out, uint64_t n) {
    const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = widen(gate[i]);
        const float u = widen(up[i]);
        const float d = widen(grad[i]);
        const float s = 1.0f / (1.0f + expf(-g));
        out[i] = narrow<T>(d * u * s * (1.0f + g * (1.0f - s)));
        out[n + i] = narrow<T>(d * g * s);
    }
}

extern "C" __global__ void silu_mul_forward_f32(const float* gate, const float* up, float* out,
                                                uint64_t n) {
    silu_mul_forward(gate, up, out, n);
}
extern "C" __global__ void silu_mul_forward_bf16(const __nv_bfloat16* gate,
                                                 const __nv_bfloat16* up, __nv_bfloat16* out,
                                                 uint64_t n) {
    silu_mul_forward(gate, up, out, n);
}
extern "C" __global__ void silu_mul_backward_f32(const float* gate, const float* up,
                                                 const float* grad, float* out, uint64_t n) {
    silu_mul_backward(gate, up, grad, out, n);
}
extern "C" __global__ void silu_mul_backward_bf16(const __nv_bfloat16* gate,
                                                  const __nv_bfloat16* up,
                                                  const __nv_bfloat16* grad, __nv_bfloat16* out,
                                                  uint64_t n) {
    silu_mul_backward(gate, up, grad, out, n);
}

// The sum of v over the block (blockDim.x a multiple of 32, at most 1024),
// returned to every thread.
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < blockDim.x / 32 ? partial[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    __syncthreads();  // `partial` is reused by the next call
    return v;
}

// RMSNorm of f32 rows, one block per row: y = x * rstd * w with rstd =
// 1 / sqrt(mean(x^2) + eps). Writes y into out[0 .. rows*hidden] and rstd
// into out[rows*hidden + row] (rms_norm.rs keeps it for the backward pass).
extern "C" __global__ void rms_norm_forward_f32(const float* x, const float* w, float* out,
                                                uint32_t rows, uint32_t hidden, float eps) {
    const uint64_t row = blockIdx.x;
    const float* xr = x + row * hidden;
    float sum = 0.0f;
    for (uint32_t j = threadIdx.x; j < hidden; j += blockDim.x) sum += xr[j] * xr[j];
    const float rstd = 1.0f / sqrtf(block_sum(sum) / hidden + eps);
    float* yr = out + row * hidden;
    for (uint32_t j = threadIdx.x; j < hidden; j += blockDim.x) yr[j] = xr[j] * rstd * w[j];
    if (threadIdx.x == 0) out[(uint64_t)rows * hidden + row] = rstd;
}

// Its backward pass, one block per row, with n = x * rstd and gw = grad * w:
// dx = rstd * (gw - n * mean(gw * n)) into out[0 .. rows*hidden], and the
// products grad * n (summed over rows by a matmul for d w) into
// out[rows*hidden ..].
extern "C" __global__ void rms_norm_backward_f32(const float* x, const float* w,
                                                 const float* grad, float* out, uint32_t rows,
                                                 uint32_t hidden, float eps) {
    const uint64_t row = blockIdx.x;
    const float* xr = x + row * hidden;
    const float* gr = grad + row * hidden;
    float squares = 0.0f;
    for (uint32_t j = threadIdx.x; j < hidden; j += blockDim.x) squares += xr[j] * xr[j];
    const float rstd = 1.0f / sqrtf(block_sum(squares) / hidden + eps);
    float dot = 0.0f;
    for (uint32_t j = threadIdx.x; j < hidden; j += blockDim.x) dot += gr[j] * w[j] * xr[j] * rstd;
    dot = block_sum(dot) / hidden;
    float* dx = out + row * hidden;
    float* products = out + (uint64_t)rows * hidden + row * hidden;
    for (uint32_t j = threadIdx.x; j < hidden; j += blockDim.x) {
        const float n = xr[j] * rstd;
        dx[j] = rstd * (gr[j] * w[j] - n * dot);
        products[j] = gr[j] * n;
    }
}

// The largest of v over the block (as block_sum), returned to every thread.
__device__ float block_max(float v) {
    __shared__ float partial[32];
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < blockDim.x / 32 ? partial[lane] : -INFINITY;
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    __syncthreads();
    return v;
}

// The loss's forward pass over a chunk of logits [rows, vocab] (in the
// matmul's dtype, read in f32), one block per row: the log-sum-exp into
// out[row] and the target's log-probability into out[rows + row].
template <typename T>
__device__ void log_softmax_pick(const T* logits, const uint32_t* targets, float* out,
                                 uint32_t rows, uint32_t vocab) {
    const uint64_t row = blockIdx.x;
    const T* lr = logits + row * vocab;
    float m = -INFINITY;
    for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, widen(lr[j]));
    m = block_max(m);
    float s = 0.0f;
    for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) s += expf(widen(lr[j]) - m);
    const float lse = logf(block_sum(s)) + m;
    if (threadIdx.x == 0) {
        const uint32_t target = targets[row];
        out[row] = lse;
        out[rows + row] = target < vocab ? widen(lr[target]) - lse : NAN;
    }
}

// Its backward pass, one block per row: d logits = grad * (onehot(target) -
// softmax(logits)), with the softmax from the saved log-sum-exp;
// lse_grad holds the log-sum-exps [rows] then the gradients [rows].
template <typename T>
__device__ void log_softmax_pick_backward(const T* logits, const uint32_t* targets,
                                          const float* lse_grad, T* out, uint32_t rows,
                                          uint32_t vocab) {
    const uint64_t row = blockIdx.x;
    const T* lr = logits + row * vocab;
    T* dr = out + row * vocab;
    const float l = lse_grad[row], g = lse_grad[rows + row];
    const uint32_t target = targets[row];
    for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float p = expf(widen(lr[j]) - l);
        dr[j] = narrow<T>(g * ((j == target ? 1.0f : 0.0f) - p));
    }
}

extern "C" __global__ void log_softmax_pick_f32(const float* logits, const uint32_t* targets,
                                                float* out, uint32_t rows, uint32_t vocab) {
    log_softmax_pick(logits, targets, out, rows, vocab);
}
extern "C" __global__ void log_softmax_pick_bf16(const __nv_bfloat16* logits,
                                                 const uint32_t* targets, float* out,
                                                 uint32_t rows, uint32_t vocab) {
    log_softmax_pick(logits, targets, out, rows, vocab);
}
extern "C" __global__ void log_softmax_pick_backward_f32(const float* logits,
                                                         const uint32_t* targets,
                                                         const float* lse_grad, float* out,
                                                         uint32_t rows, uint32_t vocab) {
    log_softmax_pick_backward(logits, targets, lse_grad, out, rows, vocab);
}
extern "C" __global__ void log_softmax_pick_backward_bf16(const __nv_bfloat16* logits,
                                                          const uint32_t* targets,
                                                          const float* lse_grad,
                                                          __nv_bfloat16* out, uint32_t rows,
                                                          uint32_t vocab) {
    log_softmax_pick_backward(logits, targets, lse_grad, out, rows, vocab);
}

// Rotary embeddings of x [.., t, d] with cos and sin [t, d] (each half of
// the last dimension the same angles, as rope.rs lays them out): out_j =
// x_j cos_j + r_j sin_j with r = [-x2, x1] (rotate_half). `sign` -1 rotates
// the other way: the backward pass (the rotation's transpose).
template <typename T>
__device__ void rotary(const T* x, const T* cos, const T* sin, T* out, uint64_t n, uint32_t t,
                       uint32_t d, float sign) {
    const uint32_t half = d / 2;
    const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const uint32_t j = i % d;
        const uint64_t table = ((i / d) % t) * d + j;
        const float rotated = j < half ? -widen(x[i + half]) : widen(x[i - half]);
        out[i] = narrow<T>(widen(x[i]) * widen(cos[table]) + sign * rotated * widen(sin[table]));
    }
}

extern "C" __global__ void rotary_f32(const float* x, const float* cos, const float* sin,
                                      float* out, uint64_t n, uint32_t t, uint32_t d,
                                      float sign) {
    rotary(x, cos, sin, out, n, t, d, sign);
}
extern "C" __global__ void rotary_bf16(const __nv_bfloat16* x, const __nv_bfloat16* cos,
                                       const __nv_bfloat16* sin, __nv_bfloat16* out, uint64_t n,
                                       uint32_t t, uint32_t d, float sign) {
    rotary(x, cos, sin, out, n, t, d, sign);
}

// The trainer's CUDA kernels, compiled to PTX by build.rs when the `cuda`
// feature is on, loaded by src/cuda.rs.
#include <stdint.h>

// AdamW on one f32 variable in one pass over memory: reads the weights, the
// gradient and both moments once, writes the weights and the moments once.
// The gradient is scaled by the clipping factor clip[0], which stays on the
// device so that the host never waits for the gradient norm. Same
// arithmetic, in the same order, as the CPU's fused update (optim.rs).
extern "C" __global__ void adamw_f32(
    float* __restrict__ theta, float* __restrict__ m, float* __restrict__ v,
    const float* __restrict__ g, const float* __restrict__ clip,
    float beta1, float beta2, float inv_bias1, float inv_bias2, float lr, float eps,
    float keep, uint64_t n) {
    const float c = clip[0];
    const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float gi = g[i] * c;
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        theta[i] = theta[i] * keep - lr * (mi * inv_bias1) / (sqrtf(vi * inv_bias2) + eps);
    }
}

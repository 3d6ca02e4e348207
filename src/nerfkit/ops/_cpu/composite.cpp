// Packed volume rendering (emission-absorption compositing) on the CPU (float32, OpenMP).
//
// Plain C ABI on raw contiguous buffers, called through ctypes from nerfkit/ops/composite.py.
// The definition is nerfkit/ops/_ref/composite.py: per ray (samples seg[r] .. seg[r+1]-1)
//   alpha_i = 1 - exp(-tau_i), tau_i = sigma_i delta_i, T_0 = 1, T_{i+1} = T_i (1 - alpha_i),
//   w_i = T_i alpha_i if T_i >= eps else 0,
//   opacity = sum w_i, rgb = sum w_i c_i, depth = sum w_i t_i.
// One fused pass per ray forward and one reverse pass backward, rays in parallel.
//
// Backward, with g_i = dL/dw_i + dL/dopacity + dL/drgb . c_i + dL/ddepth t_i (total weight gradient):
//   dL/dtau_i = [T_i >= eps] g_i T_{i+1} - sum_{j>i} (g_j w_j + dL/dT_j T_j),
//   dL/dc_i = w_i dL/drgb,  dL/dt_i = w_i dL/ddepth.

#include <omp.h>

#include <cmath>
#include <cstdint>

extern "C" {

// rgbs/t_mid/rgb/depth may be null (not rendered). seg: [n_rays + 1] sample offsets.
int nerfkit_composite_fwd(int64_t n_rays, const int64_t* seg, const float* sigmas, const float* deltas,
                          const float* rgbs, const float* t_mid, float eps, float* w, float* trans, float* rgb,
                          float* opacity, float* depth, int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 256)
  for (int64_t r = 0; r < n_rays; ++r) {
    float T = 1.0f, acc_o = 0.0f, acc_d = 0.0f, acc_c[3] = {0.0f, 0.0f, 0.0f};
    for (int64_t i = seg[r]; i < seg[r + 1]; ++i) {
      const float alpha = -std::expm1(-(sigmas[i] * deltas[i]));
      const float wi = T >= eps ? T * alpha : 0.0f;
      trans[i] = T;
      w[i] = wi;
      acc_o += wi;
      if (rgbs != nullptr) {
        acc_c[0] += wi * rgbs[3 * i];
        acc_c[1] += wi * rgbs[3 * i + 1];
        acc_c[2] += wi * rgbs[3 * i + 2];
      }
      if (t_mid != nullptr) acc_d += wi * t_mid[i];
      T *= 1.0f - alpha;
    }
    opacity[r] = acc_o;
    if (rgb != nullptr) {
      rgb[3 * r] = acc_c[0];
      rgb[3 * r + 1] = acc_c[1];
      rgb[3 * r + 2] = acc_c[2];
    }
    if (depth != nullptr) depth[r] = acc_d;
  }
  return 0;
}

// Gradient inputs g_* may be null (zero). Outputs: d_tau [M]; d_rgbs [M, 3] and d_t_mid [M] when non-null.
int nerfkit_composite_bwd(int64_t n_rays, const int64_t* seg, const float* sigmas, const float* deltas,
                          const float* rgbs, const float* t_mid, float eps, const float* w, const float* trans,
                          const float* g_w, const float* g_trans, const float* g_rgb, const float* g_opacity,
                          const float* g_depth, float* d_tau, float* d_rgbs, float* d_t_mid, int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 256)
  for (int64_t r = 0; r < n_rays; ++r) {
    const float go = g_opacity != nullptr ? g_opacity[r] : 0.0f;
    const float gd = g_depth != nullptr ? g_depth[r] : 0.0f;
    float gc[3] = {0.0f, 0.0f, 0.0f};
    if (g_rgb != nullptr) {
      gc[0] = g_rgb[3 * r];
      gc[1] = g_rgb[3 * r + 1];
      gc[2] = g_rgb[3 * r + 2];
    }
    float suffix = 0.0f;  // sum over later samples of (g_j w_j + dL/dT_j T_j)
    for (int64_t i = seg[r + 1] - 1; i >= seg[r]; --i) {
      float g = go;
      if (g_w != nullptr) g += g_w[i];
      if (rgbs != nullptr) g += gc[0] * rgbs[3 * i] + gc[1] * rgbs[3 * i + 1] + gc[2] * rgbs[3 * i + 2];
      if (t_mid != nullptr) g += gd * t_mid[i];
      const float T = trans[i];
      const float keep = std::exp(-(sigmas[i] * deltas[i]));  // 1 - alpha_i
      d_tau[i] = (T >= eps ? g * T * keep : 0.0f) - suffix;
      suffix += g * w[i];
      if (g_trans != nullptr) suffix += g_trans[i] * T;
      if (d_rgbs != nullptr) {
        d_rgbs[3 * i] = w[i] * gc[0];
        d_rgbs[3 * i + 1] = w[i] * gc[1];
        d_rgbs[3 * i + 2] = w[i] * gc[2];
      }
      if (d_t_mid != nullptr) d_t_mid[i] = w[i] * gd;
    }
  }
  return 0;
}

}  // extern "C"

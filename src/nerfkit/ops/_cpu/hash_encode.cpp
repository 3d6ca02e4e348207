// Multiresolution hash encoding on the CPU (float32, OpenMP).
//
// Plain C ABI on raw contiguous buffers, called from Python through ctypes
// (nerfkit/ops/hash_encode.py); no torch headers, so the build takes about a second.
// The definition (scaling, corner rows, hash, weight order) is the one in
// nerfkit/ops/_ref/hash_encode.py; keep the two in step.
//
// Shapes: x [N, 3], table [L, T, F], res [L] (int64), grad_table [L, T, F], grad_x [N, 3],
// all row-major and contiguous; out / grad_out hold element (point i, level l, feature f) at
// i * point_stride + l * level_stride + f: (L*F, F) for [N, L*F], (F, N*F) for [L, N, F].
//
// Layout of the work: one level at a time over a tile of points ("level-major"), so the
// level's slice of the table stays in cache (2.5x faster than point-major here). The
// workers are compiled for several x86-64 levels (target_clones, ~10% faster with AVX2)
// and the best one is picked at load time; the OpenMP regions stay in plain functions.
// Entry points return 0 on success, 1 on arguments they cannot handle.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NK_CLONES
#endif
#define NK_INLINE inline __attribute__((always_inline))

namespace {

constexpr uint32_t kPrime1 = 2654435761u;
constexpr uint32_t kPrime2 = 805459861u;
constexpr int64_t kTile = 2048;   // points per task of the forward / input backward
constexpr int kMaxFeatures = 64;  // largest F of the run-time-F path

enum RowMode { kDense = 0, kHashMask = 1, kHashMod = 2 };

struct Level {
  float scale;       // R_l
  int32_t max_cell;  // R_l - 1
  uint32_t side;     // R_l + 1 (vertices per axis)
  uint32_t table_size;
  int mode;          // RowMode
};

Level make_level(int64_t res, int64_t table_size) {
  Level lv;
  lv.scale = static_cast<float>(res);
  lv.max_cell = static_cast<int32_t>(res - 1);
  lv.side = static_cast<uint32_t>(res + 1);
  lv.table_size = static_cast<uint32_t>(table_size);
  const double side = static_cast<double>(res + 1);
  const bool pow2 = (table_size & (table_size - 1)) == 0;
  lv.mode = side * side * side <= static_cast<double>(table_size) ? kDense : (pow2 ? kHashMask : kHashMod);
  return lv;
}

// Corner rows, corner weights and fractions of one point at one level.
struct Cell {
  uint32_t row[8];  // corner id b = bx + 2 by + 4 bz
  float wt[8];
  float w[3];
};

// Clamp onto [0, 1]; NaN maps to 0 so no index can leave the table. (Ternaries, not
// fmin/fmax: those carry NaN rules that cost ~25% of the forward.)
NK_INLINE float clamp01(float v) { return v > 0.f ? (v < 1.f ? v : 1.f) : 0.f; }

template <int Mode>
NK_INLINE void locate(const float* p3, const Level lv, Cell& c) {
  uint32_t ci[3];
  float wl[3][2];
  for (int d = 0; d < 3; ++d) {
    const float pos = clamp01(p3[d]) * lv.scale;
    // pos >= 0, so truncation is floor (and much cheaper than std::floor on baseline x86-64)
    const int32_t k = std::min(static_cast<int32_t>(pos), lv.max_cell);
    ci[d] = static_cast<uint32_t>(k);
    c.w[d] = pos - static_cast<float>(k);
    wl[d][0] = 1.f - c.w[d];
    wl[d][1] = c.w[d];
  }
  const uint32_t side = lv.side, mask = lv.table_size - 1;
#pragma GCC unroll 8
  for (int b = 0; b < 8; ++b) {
    const uint32_t bx = b & 1, by = (b >> 1) & 1, bz = b >> 2;
    const uint32_t vx = ci[0] + bx, vy = ci[1] + by, vz = ci[2] + bz;
    if (Mode == kDense) {
      c.row[b] = vx + (vy + vz * side) * side;
    } else {
      const uint32_t h = vx ^ (vy * kPrime1) ^ (vz * kPrime2);  // uint32 wrap-around
      c.row[b] = Mode == kHashMask ? (h & mask) : h % lv.table_size;
    }
    // same product order as the reference: ((w_x * w_y) * w_z)
    c.wt[b] = wl[0][bx] * wl[1][by] * wl[2][bz];
  }
}

// ---- per-level workers (F = 0: feature count given at run time) ----

template <int F, int Mode>
NK_INLINE void forward_tile(const float* x, const float* tab, const Level lv, int64_t beg, int64_t end,
                            int64_t stride, int64_t nf_dyn, float* out) {
  const int64_t nf = F > 0 ? F : nf_dyn;
  Cell c;
  for (int64_t i = beg; i < end; ++i) {
    locate<Mode>(x + 3 * i, lv, c);
    float acc[F > 0 ? F : kMaxFeatures];
    for (int64_t f = 0; f < nf; ++f) acc[f] = 0.f;
    for (int b = 0; b < 8; ++b) {  // corners summed in order 0..7, as in the reference
      const float* feat = tab + static_cast<int64_t>(c.row[b]) * nf;
      for (int64_t f = 0; f < nf; ++f) acc[f] += c.wt[b] * feat[f];
    }
    float* o = out + i * stride;
    for (int64_t f = 0; f < nf; ++f) o[f] = acc[f];
  }
}

template <int F, int Mode>
NK_INLINE void backward_table_level(const float* x, const float* grad_out, const Level lv, int64_t n,
                                    int64_t stride, int64_t nf_dyn, float* gtab) {
  const int64_t nf = F > 0 ? F : nf_dyn;
  Cell c;
  for (int64_t i = 0; i < n; ++i) {
    locate<Mode>(x + 3 * i, lv, c);
    const float* g = grad_out + i * stride;
    for (int b = 0; b < 8; ++b) {
      float* dst = gtab + static_cast<int64_t>(c.row[b]) * nf;
      for (int64_t f = 0; f < nf; ++f) dst[f] += c.wt[b] * g[f];
    }
  }
}

template <int Mode>
NK_INLINE void backward_x_tile(const float* x, const float* tab, const float* grad_out, const Level lv,
                               int64_t beg, int64_t end, int64_t stride, int64_t nf, float* grad_x) {
  Cell c;
  for (int64_t i = beg; i < end; ++i) {
    locate<Mode>(x + 3 * i, lv, c);
    const float* g = grad_out + i * stride;
    float dot[8];  // <grad_out, corner feature>
    for (int b = 0; b < 8; ++b) {
      const float* feat = tab + static_cast<int64_t>(c.row[b]) * nf;
      float s = 0.f;
      for (int64_t f = 0; f < nf; ++f) s += g[f] * feat[f];
      dot[b] = s;
    }
    const float wx = c.w[0], wy = c.w[1], wz = c.w[2];
    const float ux = 1.f - wx, uy = 1.f - wy, uz = 1.f - wz;
    // d/dw_d of sum_b weight_b dot_b: differences along axis d, weighted by the other two axes
    const float gx = uy * uz * (dot[1] - dot[0]) + wy * uz * (dot[3] - dot[2]) + uy * wz * (dot[5] - dot[4]) +
                     wy * wz * (dot[7] - dot[6]);
    const float gy = ux * uz * (dot[2] - dot[0]) + wx * uz * (dot[3] - dot[1]) + ux * wz * (dot[6] - dot[4]) +
                     wx * wz * (dot[7] - dot[5]);
    const float gz = ux * uy * (dot[4] - dot[0]) + wx * uy * (dot[5] - dot[1]) + ux * wy * (dot[6] - dot[2]) +
                     wx * wy * (dot[7] - dot[3]);
    float* gxo = grad_x + 3 * i;
    gxo[0] += gx * lv.scale;
    gxo[1] += gy * lv.scale;
    gxo[2] += gz * lv.scale;
  }
}

// Dispatch on the level's row mode (uniform over the level) outside the point loop.
#define NK_BY_MODE(lv, CALL)                                   \
  do {                                                         \
    if ((lv).mode == kDense) { constexpr int M = kDense; CALL; } \
    else if ((lv).mode == kHashMask) { constexpr int M = kHashMask; CALL; } \
    else { constexpr int M = kHashMod; CALL; }                 \
  } while (0)

#define NK_FWD_ARGS const float *x, const float *tab, const Level lv, int64_t beg, int64_t end, int64_t stride, int64_t nf, float *out
NK_CLONES __attribute__((noinline)) void forward_tile_f2(NK_FWD_ARGS) { NK_BY_MODE(lv, (forward_tile<2, M>(x, tab, lv, beg, end, stride, 2, out))); }
NK_CLONES __attribute__((noinline)) void forward_tile_f4(NK_FWD_ARGS) { NK_BY_MODE(lv, (forward_tile<4, M>(x, tab, lv, beg, end, stride, 4, out))); }
NK_CLONES __attribute__((noinline)) void forward_tile_fn(NK_FWD_ARGS) { NK_BY_MODE(lv, (forward_tile<0, M>(x, tab, lv, beg, end, stride, nf, out))); }

#define NK_BWD_ARGS const float *x, const float *g, const Level lv, int64_t n, int64_t stride, int64_t nf, float *gtab
NK_CLONES __attribute__((noinline)) void backward_table_f2(NK_BWD_ARGS) { NK_BY_MODE(lv, (backward_table_level<2, M>(x, g, lv, n, stride, 2, gtab))); }
NK_CLONES __attribute__((noinline)) void backward_table_fn(NK_BWD_ARGS) { NK_BY_MODE(lv, (backward_table_level<0, M>(x, g, lv, n, stride, nf, gtab))); }

NK_CLONES __attribute__((noinline)) void backward_x_worker(const float* x, const float* tab, const float* g,
                                                           const Level lv, int64_t beg, int64_t end,
                                                           int64_t stride, int64_t nf, float* grad_x) {
  NK_BY_MODE(lv, (backward_x_tile<M>(x, tab, g, lv, beg, end, stride, nf, grad_x)));
}

}  // namespace

extern "C" {

int nerfkit_hash_encode_fwd(const float* x, const float* table, const int64_t* res, int64_t n,
                            int64_t n_levels, int64_t table_size, int64_t n_feat, float* out,
                            int64_t point_stride, int64_t level_stride, int nthreads) {
  if (table_size < 1 || table_size > (int64_t(1) << 31) || n_feat < 1 || n_feat > kMaxFeatures) return 1;
  const int64_t n_tiles = (n + kTile - 1) / kTile;
  const int64_t stride = point_stride;
  // Each thread owns a fixed range of point tiles (static schedule: the same split at every
  // level) and sweeps it level by level, so a thread works in one level's slice of the table
  // at a time and no two threads write the same rows of `out` (no false sharing).
#pragma omp parallel num_threads(nthreads)
  for (int64_t l = 0; l < n_levels; ++l) {
    const Level lv = make_level(res[l], table_size);
    const float* tab = table + l * table_size * n_feat;
    float* o = out + l * level_stride;
#pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t beg = t * kTile, end = (t + 1) * kTile < n ? (t + 1) * kTile : n;
      if (n_feat == 2) forward_tile_f2(x, tab, lv, beg, end, stride, 2, o);
      else if (n_feat == 4) forward_tile_f4(x, tab, lv, beg, end, stride, 4, o);
      else forward_tile_fn(x, tab, lv, beg, end, stride, n_feat, o);
    }
  }
  return 0;
}

int nerfkit_hash_encode_bwd_table(const float* x, const float* grad_out, const int64_t* res, int64_t n,
                                  int64_t n_levels, int64_t table_size, int64_t n_feat, int64_t point_stride,
                                  int64_t level_stride, float* grad_table, int nthreads) {
  if (table_size < 1 || table_size > (int64_t(1) << 31) || n_feat < 1) return 1;
  const int64_t stride = point_stride;
  // One level per task: a level's gradient slice is written by one thread only, so the
  // scatter-add needs no atomics. The slice is zeroed by the thread that fills it.
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
  for (int64_t l = 0; l < n_levels; ++l) {
    const Level lv = make_level(res[l], table_size);
    float* gtab = grad_table + l * table_size * n_feat;
    std::memset(gtab, 0, sizeof(float) * table_size * n_feat);
    if (n_feat == 2) backward_table_f2(x, grad_out + l * level_stride, lv, n, stride, 2, gtab);
    else backward_table_fn(x, grad_out + l * level_stride, lv, n, stride, n_feat, gtab);
  }
  return 0;
}

int nerfkit_hash_encode_bwd_x(const float* x, const float* table, const float* grad_out, const int64_t* res,
                              int64_t n, int64_t n_levels, int64_t table_size, int64_t n_feat,
                              int64_t point_stride, int64_t level_stride, float* grad_x, int nthreads) {
  if (table_size < 1 || table_size > (int64_t(1) << 31) || n_feat < 1) return 1;
  const int64_t n_tiles = (n + kTile - 1) / kTile;
  const int64_t stride = point_stride;
  std::memset(grad_x, 0, sizeof(float) * 3 * n);
  // As in the forward: each thread owns the same tiles of points at every level (static
  // schedule), so it alone accumulates their gradient over the levels and needs no barrier.
#pragma omp parallel num_threads(nthreads)
  for (int64_t l = 0; l < n_levels; ++l) {
    const Level lv = make_level(res[l], table_size);
    const float* tab = table + l * table_size * n_feat;
#pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t beg = t * kTile, end = (t + 1) * kTile < n ? (t + 1) * kTile : n;
      backward_x_worker(x, tab, grad_out + l * level_stride, lv, beg, end, stride, n_feat, grad_x);
    }
  }
  // The clamp onto the cube passes gradients only inside [0, 1] (as torch.clamp does).
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t i = 0; i < 3 * n; ++i)
    if (!(x[i] >= 0.f && x[i] <= 1.f)) grad_x[i] = 0.f;
  return 0;
}

}  // extern "C"

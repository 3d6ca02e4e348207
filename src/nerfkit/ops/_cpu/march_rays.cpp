// Ray marching through a multi-cascade occupancy bitfield on the CPU (float32, OpenMP).
//
// Plain C ABI on raw contiguous buffers, called through ctypes from nerfkit/ops/march_rays.py.
// The definition (cell lookup, global step grid, midpoint rule, per-ray cap) is the one in
// nerfkit/ops/_ref/march_rays.py and every float expression is evaluated in the same order, so
// the samples are bit-identical to the reference. Each ray is marched sequentially; empty space
// is skipped by jumping to the exit of the largest empty block (mip level 0..L of the bitfield)
// around the current cell, landing conservatively a little before it on the step grid; inside an
// occupied cell the following samples up to (a little before) the cell's exit are emitted without
// another lookup. Both shortcuts keep a margin far above float32 rounding, so they never change
// which samples are emitted.
//
// One pass into per-chunk buffers (nerfkit_march_rays_run), then one copy into the outputs
// (nerfkit_march_rays_take).

// No fused multiply-add (reference rounding). Set before the includes so that inline library
// functions share the attribute and still inline.
#pragma GCC optimize("fp-contract=off")

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int kMaxLevels = 16;

struct Grid {
  const uint8_t* bits;  // [C, R^3/8]
  const uint8_t* mips;  // levels 1..L, each [C, (R>>l)^3], one byte per block (0 = empty)
  int64_t n_cascades, res, n_levels;
  float centre[3], inv_half[3];
  double half[3];
  double min_cell;               // smallest cascade-0 cell side (world units)
  float pow2[32], inv_pow2[32];  // 2^c and 2^-c per cascade (exact)
  int64_t mip_at[kMaxLevels + 1];  // byte offset of each mip level
};

constexpr int64_t kChunk = 128;  // rays per work item

struct Sample {
  int64_t ray;
  float start, end;
};

struct Chunk {  // samples of consecutive rays, in order
  std::vector<Sample> samples;
};

struct Samples {
  std::vector<Chunk> chunks;
};

inline float floor_f(float f) {  // floorf without a libm call; exact for |f| < 2^31
  float t = (float)(int64_t)f;
  return t > f ? t - 1.0f : t;
}

inline int64_t upper_bound(const float* g, int64_t lo, int64_t n, float key) {
  // first index in [lo, n) with g[i] > key (n if none); g is sorted
  int64_t hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (g[mid] <= key) lo = mid + 1; else hi = mid;
  }
  return lo;
}

inline int64_t gallop(const float* g, int64_t from, int64_t n, float key) {
  // upper_bound searched by doubling from `from` (skips are usually short)
  int64_t step = 1, lo = from;
  while (lo + step < n && g[lo + step] <= key) { lo += step; step *= 2; }
  int64_t hi = lo + step < n ? lo + step + 1 : n;
  return upper_bound(g, lo, hi, key);
}

inline int64_t mip_offset(const Grid& gr, int64_t level) {  // byte offset of mip `level` (>= 1)
  int64_t off = 0;
  for (int64_t l = 1; l < level; ++l) { int64_t r = gr.res >> l; off += gr.n_cascades * r * r * r; }
  return off;
}

// Distance along the ray to the exit of the block of 2^level cells containing cell i of cascade c.
inline double block_exit(const Grid& gr, const float o[3], const float d[3], const double inv_d[3], int64_t c,
                         const int64_t i[3], int64_t level) {
  double t_exit = INFINITY;
  const double cell = 2.0 / (double)gr.res * (double)gr.pow2[c];  // cell size in q units
  for (int a = 0; a < 3; ++a) {
    if (d[a] == 0.0f) continue;
    int64_t b = (i[a] >> level) << level;
    int64_t edge = d[a] > 0.0f ? b + (int64_t(1) << level) : b;
    double q = (double)edge * cell - (double)gr.pow2[c];
    double world = (double)gr.centre[a] + q * gr.half[a];
    double t = (world - (double)o[a]) * inv_d[a];
    if (t < t_exit) t_exit = t;
  }
  return t_exit;
}

void march_one(const Grid& gr, const float* o, const float* d, float tn, float tf, float u, const float* g,
               int64_t K, int64_t max_samples, bool skip, int64_t ray, Chunk& out) {
  if (!(tf > tn)) return;
  const int64_t R = gr.res, R3 = R * R * R;
  const float half_r = (float)R * 0.5f;
  const float a_max = gr.pow2[gr.n_cascades - 1];
  double inv_d[3];
  for (int j = 0; j < 3; ++j) inv_d[j] = d[j] != 0.0f ? 1.0 / (double)d[j] : 0.0;
  int64_t k = upper_bound(g, 0, K, tn) - 2;
  if (k < 0) k = 0;
  int64_t n = 0;
  float inside_until = -INFINITY;  // midpoints before this lie in the occupied cell found last
  while (k + 2 < K && g[k] < tf && n < max_samples) {
    const float s0 = g[k] + u * (g[k + 1] - g[k]);
    const float s1 = g[k + 1] + u * (g[k + 2] - g[k + 1]);
    const float m = (s0 + s1) * 0.5f;
    if (m >= tf) break;
    if (m < tn) { ++k; continue; }
    if (m < inside_until) {  // same occupied cell as the previous sample: no lookup needed
      out.samples.push_back(Sample{ray, s0, s1});
      ++n;
      ++k;
      continue;
    }
    float q[3];
    float a = 0.0f;
    for (int j = 0; j < 3; ++j) {
      const float p = o[j] + m * d[j];
      q[j] = (p - gr.centre[j]) * gr.inv_half[j];
      const float aq = std::fabs(q[j]);
      a = aq > a ? aq : a;
    }
    if (!(a < a_max)) { ++k; continue; }  // outside every cascade (or NaN)
    int64_t c = 0;
    for (int64_t j = 0; j < gr.n_cascades; ++j) c += (a >= gr.pow2[j]) ? 1 : 0;
    const float scale = gr.inv_pow2[c];
    int64_t i[3];
    for (int j = 0; j < 3; ++j) {
      float f = floor_f((q[j] * scale + 1.0f) * half_r);
      i[j] = (int64_t)(f < 0.0f ? 0.0f : (f > (float)(R - 1) ? (float)(R - 1) : f));
    }
    const int64_t idx = c * R3 + (i[0] * R + i[1]) * R + i[2];
    const bool occupied = (gr.bits[idx >> 3] >> (idx & 7)) & 1;
    if (!occupied && !skip) { ++k; continue; }
    int64_t level = 0;  // for an empty cell: the coarsest empty block around it
    while (!occupied && level < gr.n_levels) {
      const int64_t l = level + 1, r = R >> l;
      const uint8_t* mip = gr.mips + gr.mip_at[l] + c * r * r * r;
      if (mip[((i[0] >> l) * r + (i[1] >> l)) * r + (i[2] >> l)] != 0) break;
      level = l;
    }
    // Conservative exit of the cell / block: the margin dwarfs the float32 rounding of the lookup,
    // so every midpoint before `target` is classified into this cell (block) by the reference too.
    const double t_exit = block_exit(gr, o, d, inv_d, c, i, level);
    const double margin = 1e-3 * gr.min_cell * (double)gr.pow2[c] +
                          1e-5 * (std::fabs(t_exit) + std::fabs((double)o[0]) + std::fabs((double)o[1]) +
                                  std::fabs((double)o[2]));
    const float target = (float)(t_exit - margin);
    if (occupied) {
      out.samples.push_back(Sample{ray, s0, s1});
      ++n;
      ++k;
      inside_until = target;
      continue;
    }
    // every k' with g[k'+2] <= target has m_k' < target: still inside the empty block
    int64_t kn = gallop(g, k, K, target) - 2;
    k = kn > k + 1 ? kn : k + 1;
  }
}

}  // namespace

extern "C" {

// Mip levels 1..n_levels of the bitfield, one byte per block: OR of its 8 children.
int nerfkit_occupancy_mips(const uint8_t* bits, int64_t n_cascades, int64_t res, int64_t n_levels, uint8_t* mips,
                           int n_threads) {
  Grid gr{};
  gr.n_cascades = n_cascades;
  gr.res = res;
  for (int64_t l = 1; l <= n_levels; ++l) {
    const int64_t r = res >> l, rc = r * 2;
    uint8_t* out = mips + mip_offset(gr, l);
    const uint8_t* prev = l > 1 ? mips + mip_offset(gr, l - 1) : nullptr;
    const int64_t n_out = n_cascades * r * r * r;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < n_out; ++b) {
      const int64_t c = b / (r * r * r), rem = b % (r * r * r);
      const int64_t x = rem / (r * r), y = (rem / r) % r, z = rem % r;
      uint8_t any = 0;
      for (int dx = 0; dx < 2; ++dx)
        for (int dy = 0; dy < 2; ++dy)
          for (int dz = 0; dz < 2; ++dz) {
            const int64_t child = ((2 * x + dx) * rc + (2 * y + dy)) * rc + (2 * z + dz);
            if (prev != nullptr) {
              any |= prev[c * rc * rc * rc + child];
            } else {
              const int64_t idx = c * rc * rc * rc + child;
              any |= (bits[idx >> 3] >> (idx & 7)) & 1;
            }
          }
      out[b] = any;
    }
  }
  return 0;
}

// Marches all rays into per-chunk buffers (one pass; chunks of consecutive rays, so the
// concatenation is sorted by ray). Returns a handle for nerfkit_march_rays_take, or null on error;
// *total receives the number of samples.
void* nerfkit_march_rays_run(int64_t n_rays, const float* origins, const float* dirs, const float* t_near,
                             const float* t_far, const float* jitter, const float* table, int64_t n_table,
                             const uint8_t* bits, const uint8_t* mips, int64_t n_cascades, int64_t res,
                             int64_t n_levels, int skip, const float* frame, int64_t max_samples, int64_t* total,
                             int n_threads) {
  Grid gr{};
  gr.bits = bits;
  gr.mips = mips;
  gr.n_cascades = n_cascades;
  gr.res = res;
  gr.n_levels = n_levels;
  for (int j = 0; j < 3; ++j) {
    gr.centre[j] = frame[j];
    gr.inv_half[j] = frame[3 + j];
    gr.half[j] = (double)frame[6 + j];
  }
  if (n_cascades < 1 || n_cascades > 31 || n_levels > kMaxLevels) return nullptr;
  for (int64_t l = 1; l <= n_levels; ++l) gr.mip_at[l] = mip_offset(gr, l);
  gr.min_cell = std::min(gr.half[0], std::min(gr.half[1], gr.half[2])) * 2.0 / (double)res;
  for (int c = 0; c < 32; ++c) { gr.pow2[c] = std::ldexp(1.0f, c); gr.inv_pow2[c] = std::ldexp(1.0f, -c); }
  const int64_t n_chunks = (n_rays + kChunk - 1) / kChunk;
  Samples* out = new Samples();
  out->chunks.resize(n_chunks);
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    Chunk& buf = out->chunks[ch];
    const int64_t hi = std::min(n_rays, (ch + 1) * kChunk);
    for (int64_t r = ch * kChunk; r < hi; ++r) {
      march_one(gr, origins + 3 * r, dirs + 3 * r, t_near[r], t_far[r], jitter[r], table, n_table, max_samples,
                skip != 0, r, buf);
    }
  }
  int64_t n = 0;
  for (const Chunk& c : out->chunks) n += (int64_t)c.samples.size();
  *total = n;
  return out;
}

// Copies the samples of a handle into the outputs [total] and frees it. A null output frees only.
int nerfkit_march_rays_take(void* handle, int64_t* ray_indices, float* t_starts, float* t_ends, int n_threads) {
  Samples* out = static_cast<Samples*>(handle);
  if (out == nullptr) return 1;
  if (ray_indices != nullptr) {
    const int64_t n_chunks = (int64_t)out->chunks.size();
    std::vector<int64_t> at(n_chunks + 1, 0);
    for (int64_t c = 0; c < n_chunks; ++c) at[c + 1] = at[c] + (int64_t)out->chunks[c].samples.size();
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t c = 0; c < n_chunks; ++c) {
      const std::vector<Sample>& b = out->chunks[c].samples;
      for (size_t i = 0; i < b.size(); ++i) {
        ray_indices[at[c] + i] = b[i].ray;
        t_starts[at[c] + i] = b[i].start;
        t_ends[at[c] + i] = b[i].end;
      }
    }
  }
  delete out;
  return 0;
}

}  // extern "C"

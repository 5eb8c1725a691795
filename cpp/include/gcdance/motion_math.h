// Rotation math and window stitching, mirroring python/gcdance/motion/rotation.py and sampling/stitching.py
// operation for operation (float64), so the engine's stitched output equals the reference's.
#pragma once

#include <cstdint>
#include <vector>

namespace gcdance {

// How a sequence of `frames` frames is covered by windows of `length` frames every `hop` frames
// (gcdance.sampling.stitching.plan_windows): 1 window if frames <= length, else 1 + ceil((F - L) / hop).
struct WindowPlan {
  int64_t frames = 0, length = 0, hop = 0;
  int64_t num_windows() const {
    return frames <= length ? 1 : 1 + (frames - length + hop - 1) / hop;
  }
  int64_t padded_frames() const { return length + (num_windows() - 1) * hop; }
};
WindowPlan PlanWindows(int64_t frames, int64_t length, int64_t hop);  // validates

// Source frame of padded frame `p` under numpy's "reflect" padding (edge for 1 frame).
int64_t ReflectIndex(int64_t p, int64_t frames);

// 6D (two matrix rows) -> row-major 3x3 by Gram-Schmidt.
void Rotation6dToMatrix(const double* d6, double* m);

// Stitches windows (W, L, dim) into (frames, dim): each window from its start, later windows
// over earlier ones (the sampler has blended the overlaps), then, with `orthonormalize`, the
// `num_joints` 6D blocks from `rot_start` re-encoded from their Gram-Schmidt matrices. The float windows are mapped to the raw
// representation on the fly, raw = x * scale[d] + shift[d] in double (scale/shift null: raw = x).
// `out` is a work buffer (resized to padded_frames * dim); the result is its first frames * dim.
void StitchWindows(const float* windows, const double* scale, const double* shift,
                   const WindowPlan& plan, int64_t dim, int64_t rot_start, int64_t num_joints,
                   bool orthonormalize, std::vector<double>* out);

}  // namespace gcdance

// Rotation math and window stitching, mirroring python/gcdance/rotation.py and stitching.py
// operation for operation (float64), so the engine's stitched output equals the reference's.
#pragma once

#include <cstdint>
#include <vector>

namespace gcdance {

// How a sequence of `frames` frames is covered by windows of `length` frames every `hop` frames
// (gcdance.stitching.plan_windows): 1 window if frames <= length, else 1 + ceil((F - L) / hop).
struct WindowPlan {
  int64_t frames = 0, length = 0, hop = 0;
  int64_t num_windows() const {
    return frames <= length ? 1 : 1 + (frames - length + hop - 1) / hop;
  }
  int64_t overlap() const { return length - hop; }
  int64_t padded_frames() const { return length + (num_windows() - 1) * hop; }
};
WindowPlan PlanWindows(int64_t frames, int64_t length, int64_t hop);  // validates

// Source frame of padded frame `p` under numpy's "reflect" padding (edge for 1 frame).
int64_t ReflectIndex(int64_t p, int64_t frames);

// 6D (two matrix rows) -> row-major 3x3 by Gram-Schmidt; matrix -> wxyz quaternion (w >= 0);
// quaternion -> matrix; shortest-path slerp of unit quaternions.
void Rotation6dToMatrix(const double* d6, double* m);
void MatrixToQuaternion(const double* m, double* q);
void QuaternionToMatrix(const double* q, double* m);
void Slerp(const double* q0, const double* q1, double t, double* out);

// Stitches windows (W, L, dim) into (frames, dim): window 0 whole, each later window's first
// `overlap` frames blended with weight (k + 1) / (overlap + 1); contacts/root linearly, the
// `num_joints` 6D blocks from `rot_start` slerped (when `slerp_rotations`), then every 6D block
// re-encoded from its Gram-Schmidt matrix. The float windows are mapped to the raw
// representation on the fly, raw = x * scale[d] + shift[d] in double (scale/shift null: raw = x).
// `out` is a work buffer (resized to padded_frames * dim); the result is its first frames * dim.
void StitchWindows(const float* windows, const double* scale, const double* shift,
                   const WindowPlan& plan, int64_t dim, int64_t rot_start, int64_t num_joints,
                   bool slerp_rotations, std::vector<double>* out);

}  // namespace gcdance

#include "gcdance/motion_math.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gcdance/runtime.h"

namespace gcdance {
namespace {

constexpr double kEpsNorm = 1e-12;

double Norm3(const double* v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

}  // namespace

WindowPlan PlanWindows(int64_t frames, int64_t length, int64_t hop) {
  if (frames < 1 || length < 1 || hop < 1) {
    throw InputError("window plan needs positive frames, length and hop; got frames=" +
                     std::to_string(frames) + ", length=" + std::to_string(length) +
                     ", hop=" + std::to_string(hop));
  }
  if (length > 2 * hop || hop > length) {
    throw InputError("hop=" + std::to_string(hop) + " must be between half the window length " +
                     "and the window length (" + std::to_string(length) + ")");
  }
  return WindowPlan{frames, length, hop};
}

int64_t ReflectIndex(int64_t p, int64_t frames) {
  if (p < frames) return p;
  if (frames == 1) return 0;
  const int64_t period = 2 * (frames - 1);
  const int64_t j = p % period;
  return j < frames ? j : period - j;
}

void Rotation6dToMatrix(const double* d6, double* m) {
  const double* a1 = d6;
  const double* a2 = d6 + 3;
  double b1[3], b2[3];
  const double n1 = std::max(Norm3(a1), kEpsNorm);
  for (int i = 0; i < 3; ++i) b1[i] = a1[i] / n1;
  const double dot = b1[0] * a2[0] + b1[1] * a2[1] + b1[2] * a2[2];
  for (int i = 0; i < 3; ++i) b2[i] = a2[i] - dot * b1[i];
  const double n2 = std::max(Norm3(b2), kEpsNorm);
  for (int i = 0; i < 3; ++i) b2[i] /= n2;
  m[0] = b1[0], m[1] = b1[1], m[2] = b1[2];
  m[3] = b2[0], m[4] = b2[1], m[5] = b2[2];
  m[6] = b1[1] * b2[2] - b1[2] * b2[1];
  m[7] = b1[2] * b2[0] - b1[0] * b2[2];
  m[8] = b1[0] * b2[1] - b1[1] * b2[0];
}

void StitchWindows(const float* windows, const double* scale, const double* shift,
                   const WindowPlan& plan, int64_t dim, int64_t rot_start, int64_t num_joints,
                   bool orthonormalize, std::vector<double>* out) {
  const int64_t L = plan.length, h = plan.hop, W = plan.num_windows();
  if (orthonormalize && (rot_start < 0 || rot_start + 6 * num_joints > dim)) {
    throw InputError("rotation blocks [" + std::to_string(rot_start) + ", " +
                     std::to_string(rot_start + 6 * num_joints) + ") exceed the motion's " +
                     std::to_string(dim) + " dims");
  }
  out->resize(static_cast<size_t>(plan.padded_frames() * dim));
  double* full = out->data();
  // Each window from its start, later windows over earlier ones: the sampler's handover has
  // already blended the overlaps.
  for (int64_t w = 0; w < W; ++w) {
    for (int64_t f = 0; f < L; ++f) {
      const float* src = windows + (w * L + f) * dim;
      double* dst = full + (w * h + f) * dim;
      for (int64_t d = 0; d < dim; ++d) {
        dst[d] = scale != nullptr ? double(src[d]) * scale[d] + shift[d] : double(src[d]);
      }
    }
  }
  if (!orthonormalize) return;
  double m[9];
  for (int64_t f = 0; f < plan.frames; ++f) {
    for (int64_t j = 0; j < num_joints; ++j) {
      double* block = full + f * dim + rot_start + 6 * j;
      Rotation6dToMatrix(block, m);
      std::copy(m, m + 6, block);
    }
  }
}

}  // namespace gcdance

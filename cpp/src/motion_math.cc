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
double Norm4(const double* v) {
  return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]);
}
double Sinc(double x) { return x == 0.0 ? 1.0 : std::sin(x) / x; }

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

void MatrixToQuaternion(const double* m, double* q) {
  const double m00 = m[0], m01 = m[1], m02 = m[2];
  const double m10 = m[3], m11 = m[4], m12 = m[5];
  const double m20 = m[6], m21 = m[7], m22 = m[8];
  const double four_sq[4] = {1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                             1 - m00 - m11 + m22};
  const double cand[4][4] = {{four_sq[0], m21 - m12, m02 - m20, m10 - m01},
                             {m21 - m12, four_sq[1], m01 + m10, m02 + m20},
                             {m02 - m20, m01 + m10, four_sq[2], m12 + m21},
                             {m10 - m01, m02 + m20, m12 + m21, four_sq[3]}};
  int best = 0;  // first maximum, as numpy's argmax
  for (int k = 1; k < 4; ++k) {
    if (four_sq[k] > four_sq[best]) best = k;
  }
  const double n = std::max(Norm4(cand[best]), kEpsNorm);
  const double sign = cand[best][0] / n < 0 ? -1.0 : 1.0;
  for (int k = 0; k < 4; ++k) q[k] = sign * cand[best][k] / n;
}

void QuaternionToMatrix(const double* quat, double* m) {
  const double n = std::max(Norm4(quat), kEpsNorm);
  const double w = quat[0] / n, x = quat[1] / n, y = quat[2] / n, z = quat[3] / n;
  const double xx = x * x, yy = y * y, zz = z * z;
  const double xy = x * y, xz = x * z, yz = y * z, wx = w * x, wy = w * y, wz = w * z;
  m[0] = 1 - 2 * (yy + zz), m[1] = 2 * (xy - wz), m[2] = 2 * (xz + wy);
  m[3] = 2 * (xy + wz), m[4] = 1 - 2 * (xx + zz), m[5] = 2 * (yz - wx);
  m[6] = 2 * (xz - wy), m[7] = 2 * (yz + wx), m[8] = 1 - 2 * (xx + yy);
}

void Slerp(const double* q0_in, const double* q1_in, double t, double* out) {
  double q0[4], q1[4], diff[4], sum[4];
  const double n0 = std::max(Norm4(q0_in), kEpsNorm), n1 = std::max(Norm4(q1_in), kEpsNorm);
  double dot = 0;
  for (int k = 0; k < 4; ++k) {
    q0[k] = q0_in[k] / n0;
    q1[k] = q1_in[k] / n1;
    dot += q0[k] * q1[k];
  }
  for (int k = 0; k < 4; ++k) {
    if (dot < 0) q1[k] = -q1[k];  // shortest path
    diff[k] = q0[k] - q1[k];
    sum[k] = q0[k] + q1[k];
  }
  const double omega = 2.0 * std::atan2(Norm4(diff), Norm4(sum));
  const double s = Sinc(omega);
  const double w0 = (1.0 - t) * Sinc((1.0 - t) * omega) / s;
  const double w1 = t * Sinc(t * omega) / s;
  for (int k = 0; k < 4; ++k) out[k] = w0 * q0[k] + w1 * q1[k];
  const double n = std::max(Norm4(out), kEpsNorm);
  for (int k = 0; k < 4; ++k) out[k] /= n;
}

void StitchWindows(const float* windows, const double* scale, const double* shift,
                   const WindowPlan& plan, int64_t dim, int64_t rot_start, int64_t num_joints,
                   bool slerp_rotations, std::vector<double>* out) {
  const int64_t L = plan.length, h = plan.hop, o = plan.overlap(), W = plan.num_windows();
  if (slerp_rotations && (rot_start < 0 || rot_start + 6 * num_joints > dim)) {
    throw InputError("rotation blocks [" + std::to_string(rot_start) + ", " +
                     std::to_string(rot_start + 6 * num_joints) + ") exceed the motion's " +
                     std::to_string(dim) + " dims");
  }
  auto raw_row = [&](int64_t w, int64_t f, double* dst) {
    const float* src = windows + (w * L + f) * dim;
    for (int64_t d = 0; d < dim; ++d) {
      dst[d] = scale != nullptr ? double(src[d]) * scale[d] + shift[d] : double(src[d]);
    }
  };
  out->resize(static_cast<size_t>(plan.padded_frames() * dim));
  double* full = out->data();
  std::vector<double> prev(static_cast<size_t>(dim)), next(static_cast<size_t>(dim));
  for (int64_t f = 0; f < L; ++f) raw_row(0, f, full + f * dim);
  double m0[9], m1[9], q0[4], q1[4], q[4], m[9];
  for (int64_t i = 1; i < W; ++i) {
    const int64_t s = i * h;
    for (int64_t k = 0; k < o; ++k) {
      const double alpha = (k + 1.0) / (o + 1.0);
      double* row = full + (s + k) * dim;
      raw_row(i, k, next.data());
      std::copy(row, row + dim, prev.begin());
      for (int64_t d = 0; d < dim; ++d) row[d] = (1.0 - alpha) * prev[d] + alpha * next[d];
      if (!slerp_rotations) continue;
      for (int64_t j = 0; j < num_joints; ++j) {
        const int64_t r = rot_start + 6 * j;
        Rotation6dToMatrix(prev.data() + r, m0);
        Rotation6dToMatrix(next.data() + r, m1);
        MatrixToQuaternion(m0, q0);
        MatrixToQuaternion(m1, q1);
        Slerp(q0, q1, alpha, q);
        QuaternionToMatrix(q, m);
        std::copy(m, m + 6, row + r);  // 6D = the first two rows
      }
    }
    for (int64_t k = o; k < L; ++k) raw_row(i, k, full + (s + k) * dim);
  }
  if (!slerp_rotations) return;
  for (int64_t f = 0; f < plan.frames; ++f) {
    for (int64_t j = 0; j < num_joints; ++j) {
      double* block = full + f * dim + rot_start + 6 * j;
      Rotation6dToMatrix(block, m);
      std::copy(m, m + 6, block);
    }
  }
}

}  // namespace gcdance

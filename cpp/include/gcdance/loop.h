// The step loop: the sampling state lives in the memory the provider computes in (GPU memory on
// CUDA and TensorRT, host memory on the CPU provider) and every step is two ONNX Runtime runs
// over preallocated, IoBinding-bound buffers: the denoiser, then the sampler step
// (guidance, clamp, root anchoring, DDIM, inpainting, window handover and the next
// network input). The host fills its upload buffers once per generation (the upload graph moves
// them to the provider) and receives the final windows once (the last step's x_next is bound to
// host memory): no host-device copy inside the loop.
//
// One buffer set, resized in place when the shape (windows, steps, noise slabs) changes.
// Memory: the noise of every step is uploaded up front, (S + 1) x W x L x D floats for z when
// eta > 0 and as much for zq when inpainting (about 225 MB each for 50 steps of a 60 s song).
#pragma once

#include <onnxruntime_cxx_api.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gcdance/session.h"

namespace gcdance {

class Model;

// A tensor allocated once by an allocator of the provider (device memory on a GPU).
class DeviceTensor {
 public:
  DeviceTensor(OrtAllocator* allocator, ONNXTensorElementDataType type,
               std::vector<int64_t> shape);
  Ort::Value& value() { return value_; }
  const std::vector<int64_t>& shape() const { return shape_; }

 private:
  std::vector<int64_t> shape_;
  Ort::Value value_{nullptr};
};

class Loop {
 public:
  explicit Loop(std::shared_ptr<Model> model);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Sizes the buffers for W windows, S steps, the noise slabs (slab 0 is zeros) and the rows of
  // a carry from an earlier run (1, unused, when there is none), allocating only what changes.
  void Reserve(int64_t windows, int64_t steps, int64_t z_slabs, int64_t zq_slabs,
               int64_t carry_rows);
  // The host tensor the generation fills for upload `name` (an input of the upload graph).
  HostTensor& host(const std::string& name);
  // Uploads, runs the steps and writes the final windows (W, L, dim) to `x_out`; with
  // `carry_x0_out` (steps, L, dim) and, anchored, `carry_anchors_out` (steps, 2, K), also what
  // a later run continuing the last window needs of every step (the sampler graph's carry).
  void Run(const std::function<bool(int64_t, int64_t)>& progress, float* x_out,
           float* carry_x0_out = nullptr, double* carry_anchors_out = nullptr);
  size_t allocations() const { return allocations_; }

 private:
  using Shape = std::array<int64_t, 5>;  // windows, steps, z slabs, zq slabs, carry rows
  struct CarryViews {
    Ort::Value x0{nullptr}, anchors{nullptr};
  };
  void BindCarry(Ort::IoBinding& binding, const CarryViews* views);

  DeviceTensor& Device(const std::string& name, ONNXTensorElementDataType type,
                       std::vector<int64_t> shape);
  Ort::Value& Bound(const std::string& name);
  void Bind();
  void RunBinding(Ort::IoBinding& binding, OrtModel& model);

  std::shared_ptr<Model> model_;
  std::unique_ptr<Ort::Allocator> device_allocator_;  // GPU providers; before the tensors
  OrtAllocator* allocator_ = nullptr;
  size_t allocations_ = 0;
  Shape shape_{-1, -1, -1, -1, -1};  // set once every buffer matches and is bound
  std::map<std::string, std::unique_ptr<HostTensor>> host_;
  std::map<std::string, std::unique_ptr<DeviceTensor>> device_;
  std::unique_ptr<HostTensor> x_host_;  // the last step's x_next
  std::unique_ptr<Ort::IoBinding> upload_, condition_, denoiser_, sampler_[2], last_;
  // CPU only: the denoiser on the conditional half of the batch, for schedules whose guidance
  // is 1 at every step (x0 = uncond + 1 * (cond - uncond) = cond): over views of the first W
  // rows of the batch's buffers, the unconditional half of x0_pair held at 0.
  std::unique_ptr<Ort::IoBinding> denoiser_cond_;
  std::vector<Ort::Value> cond_views_;
  bool GuidanceIsOne() const;
  Ort::RunOptions options_;
};

}  // namespace gcdance

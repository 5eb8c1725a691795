// The device loop: the sampling state lives in the memory the provider computes in (GPU memory
// on CUDA and TensorRT, host memory on the CPU provider) and every step is two ONNX Runtime runs
// over preallocated, IoBinding-bound buffers: the denoiser, then the update graph
// (gcdance.update_graph: guidance, clamp, root anchoring, DDIM, inpainting, window overlap and
// the next network input, in the host loop's operation order). The host uploads everything once
// per generation (the upload graph) and receives the final windows once (the last step's x_next
// is bound to host memory): no host-device copy inside the loop.
//
// With CUDA graphs (SessionConfig::cuda_graph, CUDA provider) the denoiser and the two ping-pong
// update bindings each get a graph id of their own per buffer set; the provider captures them
// after its warm-up runs and replays them. A capture replays fixed addresses, so each shape
// (windows, steps, noise slabs) gets a buffer set of its own, kept with its captures for the
// loop's lifetime (ONNX Runtime cannot free a capture): a song length seen again replays its
// graphs instead of capturing new ones. Ids are unique per Model, so Generators sharing a
// Model never replay each other's graphs; the provider cannot capture or replay from several
// threads at once, so such device loops take turns (Model::graph_mutex). Without CUDA graphs
// there is one buffer set, resized in place when the shape changes.
//
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

class DeviceLoop {
 public:
  explicit DeviceLoop(std::shared_ptr<Model> model);
  DeviceLoop(const DeviceLoop&) = delete;
  DeviceLoop& operator=(const DeviceLoop&) = delete;

  // Sizes every buffer for W windows, S steps and the noise slabs (slab 0 is zeros); allocates
  // only the buffers whose shape changes (and then binds everything again).
  void Reserve(int64_t windows, int64_t steps, int64_t z_slabs, int64_t zq_slabs);
  // The host tensor the generation fills for upload `name` (gcdance.update_graph.UPLOADS).
  HostTensor& host(const std::string& name);
  // Uploads, runs `steps` steps and writes the final windows (W, L, dim) to `x_out`.
  void Run(const std::function<bool(int64_t, int64_t)>& progress, float* x_out);
  size_t allocations() const { return allocations_; }

 private:
  using Shape = std::array<int64_t, 4>;  // windows, steps, z slabs, zq slabs
  // Every buffer and binding of one shape.
  struct Buffers {
    Shape shape{-1, -1, -1, -1};  // set once every buffer matches and is bound
    std::map<std::string, std::unique_ptr<HostTensor>> host;
    std::map<std::string, std::unique_ptr<DeviceTensor>> device;
    std::unique_ptr<HostTensor> x_host;  // the last step's x_next
    std::unique_ptr<Ort::IoBinding> upload, condition, denoiser, update[2], last;
    Ort::RunOptions plain, denoiser_options, update_options[2];
  };

  DeviceTensor& Device(Buffers& b, const std::string& name, ONNXTensorElementDataType type,
                       std::vector<int64_t> shape);
  void Size(Buffers& b, const Shape& shape);
  void BindAll(Buffers& b);
  void RunBinding(Ort::IoBinding& binding, OrtModel& model, Ort::RunOptions& options);

  std::shared_ptr<Model> model_;
  std::unique_ptr<Ort::Allocator> device_allocator_;  // GPU providers; before the tensors
  OrtAllocator* allocator_ = nullptr;
  size_t allocations_ = 0;
  std::map<Shape, std::unique_ptr<Buffers>> sets_;  // by shape with CUDA graphs, else one
  Buffers* current_ = nullptr;
};

}  // namespace gcdance

// The device loop: the sampling state lives in the memory the provider computes in (GPU memory
// on CUDA and TensorRT, host memory on the CPU provider) and every step is two ONNX Runtime runs
// over preallocated, IoBinding-bound buffers: the denoiser, then the update graph
// (gcdance.update_graph: guidance, clamp, root anchoring, DDIM, inpainting, window handover and
// the next network input, in the host loop's operation order). The host uploads everything once
// per generation (the upload graph) and receives the final windows once (the last step's x_next
// is bound to host memory): no host-device copy inside the loop.
//
// Buffer sets: the network's buffers and bindings (the denoiser, the condition graph) form one
// set per window count, the update graph's one per shape (windows, steps, noise slabs) over it;
// the host staging buffers are one set, resized in place. By default each is resized in place
// when the shape changes. With CUDA graphs (SessionConfig::cuda_graph, CUDA provider), or with
// `keep_shapes`, every set is kept: a capture replays the addresses it was captured with, so a
// song length seen again must find its buffers again (ONNX Runtime cannot free a capture). The
// denoiser and the two ping-pong update bindings each get a graph id of their own per set; ids
// are unique per Model, so Generators sharing a Model never replay each other's graphs. A kept
// set whose sizing or run fails is dropped (its ids are never replayed; a progress callback's
// exception or a cancel is not such a failure); an in-place set whose sizing failed is sized
// again next time. With CUDA graphs the progress callback runs while the Model's graph lock is
// held: it must not start another generation on the same Model (that would deadlock). The provider cannot
// capture or replay from several threads at once, and an allocation during another thread's
// capture breaks it, so device loops of a CUDA-graph Model allocate and run in turns
// (Model::graph_mutex).
//
// Memory: the noise of every step is uploaded up front, (S + 1) x W x L x D floats for z when
// eta > 0 and as much for zq when inpainting (about 225 MB each for 50 steps of a 60 s song),
// on the host once and in device memory per kept shape.
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
  // `keep_shapes`: keep every buffer set (always so with CUDA graphs; see above).
  explicit DeviceLoop(std::shared_ptr<Model> model, bool keep_shapes = false);
  DeviceLoop(const DeviceLoop&) = delete;
  DeviceLoop& operator=(const DeviceLoop&) = delete;

  // Sizes the buffers for W windows, S steps and the noise slabs (slab 0 is zeros): finds the
  // kept set of that shape, or resizes the current one (allocating only what changes).
  void Reserve(int64_t windows, int64_t steps, int64_t z_slabs, int64_t zq_slabs);
  // The host tensor the generation fills for upload `name` (gcdance.update_graph.UPLOADS).
  HostTensor& host(const std::string& name);
  // Uploads, runs `steps` steps and writes the final windows (W, L, dim) to `x_out`.
  void Run(const std::function<bool(int64_t, int64_t)>& progress, float* x_out);
  size_t allocations() const { return allocations_; }
  bool keep_shapes() const { return keep_; }
  size_t buffer_sets() const { return sets_.size(); }   // update-side sets held
  size_t network_sets() const { return nets_.size(); }  // network-side sets held

 private:
  using Shape = std::array<int64_t, 4>;  // windows, steps, z slabs, zq slabs
  using Tensors = std::map<std::string, std::unique_ptr<DeviceTensor>>;
  // The network's buffers and bindings for one window count.
  struct NetBuffers {
    int64_t windows = -1;  // set once every buffer matches and is bound
    uint64_t version = 0;  // bumped when it is sized again (its addresses may change)
    Tensors device;
    std::unique_ptr<Ort::IoBinding> condition, denoiser;
    Ort::RunOptions options;
  };
  // The update graph's buffers and bindings for one shape, over one NetBuffers.
  struct StepBuffers {
    Shape shape{-1, -1, -1, -1};  // set once every buffer matches and is bound
    NetBuffers* net = nullptr;
    uint64_t net_version = 0;
    Tensors device;
    std::unique_ptr<HostTensor> x_host;  // the last step's x_next
    std::unique_ptr<Ort::IoBinding> upload, update[2], last;
    Ort::RunOptions plain, options[2];
  };

  DeviceTensor& Device(Tensors& tensors, const std::string& name,
                       ONNXTensorElementDataType type, std::vector<int64_t> shape);
  void SizeHost(const Shape& shape);
  void SizeNet(NetBuffers& net, int64_t windows);
  void SizeSteps(StepBuffers& set, const Shape& shape, NetBuffers& net);
  void Forget(NetBuffers* net);  // drops a kept network set and the update sets over it
  void RunBinding(Ort::IoBinding& binding, OrtModel& model, Ort::RunOptions& options);

  std::shared_ptr<Model> model_;
  bool keep_ = false;
  std::unique_ptr<Ort::Allocator> device_allocator_;  // GPU providers; before the tensors
  OrtAllocator* allocator_ = nullptr;
  size_t allocations_ = 0;
  Shape host_shape_{-1, -1, -1, -1};
  std::map<std::string, std::unique_ptr<HostTensor>> host_;
  std::map<int64_t, std::unique_ptr<NetBuffers>> nets_;  // by window count when kept
  std::map<Shape, std::unique_ptr<StepBuffers>> sets_;   // by shape when kept
  StepBuffers* current_ = nullptr;
};

}  // namespace gcdance

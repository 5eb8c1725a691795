// An ONNX Runtime session whose inputs and outputs live in buffers the session owns. Buffers are
// allocated once per set of input shapes and reused: a call with the shapes of the previous call
// allocates nothing, it only copies the new inputs in and runs over the same IoBinding.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gcdance {

struct SessionConfig {
  std::string provider = "cpu";  // "cpu" | "cuda" | "tensorrt"
  int intra_op_threads = 0;      // 0 = ORT's default (one per physical core)
  int inter_op_threads = 1;
  bool allow_spinning = false;   // spinning lowers latency but burns a shared machine's cores
  int device_id = 0;
  std::map<std::string, std::string> provider_options;  // passed to the CUDA/TensorRT provider
  // CUDA graphs (CUDA provider only): the provider captures a Run over fixed device buffers
  // and replays it (enable_cuda_graph); see DeviceLoop.
  bool cuda_graph = false;
  std::map<std::string, std::string> session_entries;  // extra session config entries
  // ORT's CPU arena and memory patterns keep the largest set of intermediates ever seen; off
  // for small sessions whose intermediates should go back to the system after each run.
  bool cpu_arena = true;
};

struct TensorInfo {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;  // -1 for a dynamic dimension
};

// A host buffer with an Ort::Value viewing it (64-byte aligned for SIMD kernels).
class HostTensor {
 public:
  HostTensor(ONNXTensorElementDataType type, std::vector<int64_t> shape);
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;

  void* data() { return data_.get(); }
  const void* data() const { return data_.get(); }
  size_t bytes() const { return bytes_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  ONNXTensorElementDataType type() const { return type_; }
  Ort::Value& value() { return value_; }
  // Gives the tensor a new shape, reusing its memory when it is large enough (the contents are
  // then unspecified); returns true when it had to allocate.
  bool Reshape(std::vector<int64_t> shape);

 private:
  struct AlignedFree {
    void operator()(std::byte* p) const;
  };
  ONNXTensorElementDataType type_;
  std::vector<int64_t> shape_;
  size_t bytes_ = 0, capacity_ = 0;
  std::unique_ptr<std::byte[], AlignedFree> data_;
  Ort::Value value_{nullptr};
};

size_t ElementSize(ONNXTensorElementDataType type);
std::string TypeName(ONNXTensorElementDataType type);
std::string ShapeString(const std::vector<int64_t>& shape);

// An ONNX model loaded into one ORT session: weights are held once and `Run` is thread-safe, so
// one OrtModel serves any number of Bindings (one per thread or generator).
class OrtModel {
 public:
  OrtModel(const std::string& model_path, const SessionConfig& config);
  // From a serialized model in memory; `name` stands for the path in messages.
  OrtModel(const std::string& name, const std::string& model_bytes, const SessionConfig& config);
  OrtModel(const OrtModel&) = delete;
  OrtModel& operator=(const OrtModel&) = delete;

  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  const std::string& provider() const { return provider_; }
  const std::string& model_path() const { return model_path_; }
  int device_id() const { return device_id_; }
  bool cuda_graph() const { return cuda_graph_; }
  Ort::Session& session() { return session_; }
  // Index of the input/output called `name`; throws InputError naming the model's names.
  size_t input_index(const std::string& name) const;
  size_t output_index(const std::string& name) const;

 private:
  void Create(const SessionConfig& config, const std::string* model_bytes);

  std::string model_path_;
  std::string provider_;
  int device_id_ = 0;
  bool cuda_graph_ = false;
  Ort::Session session_{nullptr};
  std::vector<TensorInfo> inputs_, outputs_;
};

// Input and output buffers of one user of an OrtModel, bound with IoBinding. Buffers are
// allocated once per set of input shapes and reused. Not thread-safe: one Binding per thread.
class Binding {
 public:
  explicit Binding(std::shared_ptr<OrtModel> model);
  Binding(const Binding&) = delete;
  Binding& operator=(const Binding&) = delete;

  OrtModel& model() { return *model_; }
  // Makes the input buffers match `shapes` (one per input, in input order); checks ranks and
  // fixed dimensions. Allocates only when the shapes differ from the current ones.
  void Prepare(const std::vector<std::vector<int64_t>>& shapes);
  HostTensor& input(size_t i);
  // Runs over the bound buffers. The first run for a set of shapes lets ORT size the outputs,
  // then binds buffers of ours; later runs write into those same buffers.
  void Run();
  const HostTensor& output(size_t i) const;
  // Number of buffer allocations made so far (inputs and outputs): constant across calls with
  // unchanged shapes.
  size_t allocations() const { return allocations_; }

 private:
  void BindOutputsToOwnBuffers();

  std::shared_ptr<OrtModel> model_;
  Ort::MemoryInfo cpu_memory_{nullptr};
  std::unique_ptr<Ort::IoBinding> binding_;
  Ort::RunOptions run_options_;
  std::vector<std::unique_ptr<HostTensor>> input_buffers_, output_buffers_;
  bool outputs_bound_ = false;
  size_t allocations_ = 0;
};

// A model with one Binding behind a mutex: the general-purpose session exposed to Python.
class Session {
 public:
  Session(const std::string& model_path, const SessionConfig& config)
      : model_(std::make_shared<OrtModel>(model_path, config)), binding_(model_) {}

  OrtModel& model() { return *model_; }
  const OrtModel& model() const { return *model_; }
  Binding& binding() { return binding_; }
  std::mutex& mutex() { return mutex_; }

 private:
  std::shared_ptr<OrtModel> model_;
  Binding binding_;
  std::mutex mutex_;
};

}  // namespace gcdance

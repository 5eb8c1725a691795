// ONNX Runtime sessions (OrtModel) and host tensors (HostTensor) for the engine's loop.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
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
// one OrtModel serves any number of Generators.
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
  Ort::Session& session() { return session_; }
  // Index of the input/output called `name`; throws InputError naming the model's names.
  size_t input_index(const std::string& name) const;
  size_t output_index(const std::string& name) const;

 private:
  void Create(const SessionConfig& config, const std::string* model_bytes);

  std::string model_path_;
  std::string provider_;
  int device_id_ = 0;
  Ort::Session session_{nullptr};
  std::vector<TensorInfo> inputs_, outputs_;
};

}  // namespace gcdance

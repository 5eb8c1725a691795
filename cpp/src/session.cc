#include "gcdance/session.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

#include "gcdance/runtime.h"

namespace gcdance {
namespace {

constexpr std::align_val_t kAlignment{64};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool HasProvider(const std::string& name) {
  const auto available = AvailableProviders();
  return std::find(available.begin(), available.end(), name) != available.end();
}

std::string ProvidersString() {
  std::string out;
  for (const auto& p : AvailableProviders()) out += (out.empty() ? "" : ", ") + p;
  return out;
}

// Builds key/value arrays for the provider-options C API.
struct KeyValues {
  std::vector<std::string> keys, values;
  std::vector<const char*> key_ptrs, value_ptrs;
  explicit KeyValues(const std::map<std::string, std::string>& options) {
    for (const auto& [k, v] : options) {
      keys.push_back(k);
      values.push_back(v);
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      key_ptrs.push_back(keys[i].c_str());
      value_ptrs.push_back(values[i].c_str());
    }
  }
};

void AppendCuda(Ort::SessionOptions& so, const SessionConfig& config) {
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* options = nullptr;
  Ort::ThrowOnError(api.CreateCUDAProviderOptions(&options));
  std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)> guard(
      options, api.ReleaseCUDAProviderOptions);
  std::map<std::string, std::string> merged = {{"device_id", std::to_string(config.device_id)}};
  for (const auto& [k, v] : config.provider_options) {
    if (k.rfind("trt_", 0) != 0) merged[k] = v;
  }
  KeyValues kv(merged);
  Ort::ThrowOnError(api.UpdateCUDAProviderOptions(options, kv.key_ptrs.data(),
                                                  kv.value_ptrs.data(), kv.keys.size()));
  so.AppendExecutionProvider_CUDA_V2(*options);
}

void AppendTensorRT(Ort::SessionOptions& so, const SessionConfig& config) {
  const OrtApi& api = Ort::GetApi();
  OrtTensorRTProviderOptionsV2* options = nullptr;
  Ort::ThrowOnError(api.CreateTensorRTProviderOptions(&options));
  std::unique_ptr<OrtTensorRTProviderOptionsV2, decltype(api.ReleaseTensorRTProviderOptions)>
      guard(options, api.ReleaseTensorRTProviderOptions);
  std::map<std::string, std::string> merged = {{"device_id", std::to_string(config.device_id)}};
  for (const auto& [k, v] : config.provider_options) {
    if (k.rfind("trt_", 0) == 0) merged[k] = v;
  }
  KeyValues kv(merged);
  Ort::ThrowOnError(api.UpdateTensorRTProviderOptions(options, kv.key_ptrs.data(),
                                                      kv.value_ptrs.data(), kv.keys.size()));
  so.AppendExecutionProvider_TensorRT_V2(*options);
}

std::vector<TensorInfo> ReadInfos(Ort::Session& session, bool inputs) {
  Ort::AllocatorWithDefaultOptions allocator;
  const size_t n = inputs ? session.GetInputCount() : session.GetOutputCount();
  std::vector<TensorInfo> infos;
  for (size_t i = 0; i < n; ++i) {
    TensorInfo info;
    info.name = (inputs ? session.GetInputNameAllocated(i, allocator)
                        : session.GetOutputNameAllocated(i, allocator))
                    .get();
    Ort::TypeInfo type_info = inputs ? session.GetInputTypeInfo(i) : session.GetOutputTypeInfo(i);
    if (type_info.GetONNXType() != ONNX_TYPE_TENSOR) {
      throw Error((inputs ? "input '" : "output '") + info.name +
                  "' is not a tensor; gcdance sessions support tensor inputs and outputs only");
    }
    auto tensor_info = type_info.GetTensorTypeAndShapeInfo();
    info.type = tensor_info.GetElementType();
    info.shape = tensor_info.GetShape();
    ElementSize(info.type);  // throws for unsupported element types
    infos.push_back(std::move(info));
  }
  return infos;
}

}  // namespace

size_t ElementSize(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
      return 1;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return 8;
    default:
      throw Error("unsupported tensor element type " + TypeName(type) +
                  " (strings and complex numbers are not supported)");
  }
}

std::string TypeName(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return "uint16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return "uint32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return "uint64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return "string";
    default: return "type#" + std::to_string(static_cast<int>(type));
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "") << (shape[i] < 0 ? std::string("?") : std::to_string(shape[i]));
  }
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

void HostTensor::AlignedFree::operator()(std::byte* p) const { ::operator delete[](p, kAlignment); }

HostTensor::HostTensor(ONNXTensorElementDataType type, std::vector<int64_t> shape) : type_(type) {
  Reshape(std::move(shape));
}

bool HostTensor::Reshape(std::vector<int64_t> shape) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  const size_t bytes = count * ElementSize(type_);
  const bool grow = !data_ || bytes > capacity_;
  if (grow) {
    data_.reset(static_cast<std::byte*>(::operator new[](std::max<size_t>(bytes, 1), kAlignment)));
    capacity_ = bytes;
    std::memset(data_.get(), 0, bytes);
  }
  shape_ = std::move(shape);
  bytes_ = bytes;
  auto info = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  value_ = Ort::Value::CreateTensor(info, data_.get(), bytes_, shape_.data(), shape_.size(), type_);
  return grow;
}

OrtModel::OrtModel(const std::string& model_path, const SessionConfig& config)
    : model_path_(model_path) {
  if (!std::ifstream(model_path).good()) {
    throw InputError("model file not found or unreadable: '" + model_path + "'");
  }
  Create(config, nullptr);
}

OrtModel::OrtModel(const std::string& name, const std::string& model_bytes,
                   const SessionConfig& config)
    : model_path_(name) {
  if (model_bytes.empty()) throw InputError("the serialized model '" + name + "' is empty");
  Create(config, &model_bytes);
}

void OrtModel::Create(const SessionConfig& config, const std::string* model_bytes) {
  provider_ = Lower(config.provider);
  device_id_ = config.device_id;
  if (config.intra_op_threads < 0 || config.inter_op_threads < 0) {
    throw InputError("thread counts must be >= 0 (0 = ONNX Runtime's default); got intra_op=" +
                     std::to_string(config.intra_op_threads) +
                     ", inter_op=" + std::to_string(config.inter_op_threads));
  }
  Ort::Env& env = Env();
  Ort::SessionOptions so;
  so.SetIntraOpNumThreads(config.intra_op_threads);
  so.SetInterOpNumThreads(config.inter_op_threads);
  so.SetExecutionMode(ORT_SEQUENTIAL);
  so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  so.AddConfigEntry("session.intra_op.allow_spinning", config.allow_spinning ? "1" : "0");
  so.AddConfigEntry("session.inter_op.allow_spinning", config.allow_spinning ? "1" : "0");
  if (!config.cpu_arena) {
    so.DisableCpuMemArena();
    so.DisableMemPattern();
  }
  for (const auto& [key, value] : config.session_entries) {
    so.AddConfigEntry(key.c_str(), value.c_str());
  }

  static const std::map<std::string, std::string> kProviderNames = {
      {"cpu", "CPUExecutionProvider"},
      {"cuda", "CUDAExecutionProvider"},
      {"tensorrt", "TensorrtExecutionProvider"}};
  auto it = kProviderNames.find(provider_);
  if (it == kProviderNames.end()) {
    throw ProviderError("unknown provider '" + config.provider +
                        "': use 'cpu', 'cuda' or 'tensorrt'");
  }
  if (!HasProvider(it->second)) {
    throw ProviderError("provider '" + provider_ + "' (" + it->second +
                        ") is not available in ONNX Runtime " + RuntimeVersion() + " at " +
                        RuntimeLibraryPath() + " (available: " + ProvidersString() +
                        "); for GPUs install onnxruntime-gpu instead of onnxruntime");
  }
  if (config.device_id < 0) {
    throw InputError("device_id must be >= 0, got " + std::to_string(config.device_id));
  }
  if (auto d = config.provider_options.find("device_id"); d != config.provider_options.end()) {
    // One GPU per model: the sessions, the allocator and every provider follow
    // SessionConfig::device_id, so a second source of truth could split a model across GPUs.
    throw InputError("provider_options has device_id='" + d->second +
                     "': pass the GPU as device_id (gcdance.Generator(device_id=N)) instead");
  }
  for (const char* key : {"enable_cuda_graph", "trt_cuda_graph_enable"}) {
    // A capture replays fixed addresses, which the loop's in-place resizing would invalidate.
    if (config.provider_options.count(key) != 0) {
      throw InputError(std::string("provider_options has ") + key +
                       ": CUDA graphs are not supported by this engine (no GPU run has "
                       "measured them); remove the option");
    }
  }
  try {
    if (provider_ == "tensorrt") AppendTensorRT(so, config);
    if (provider_ == "tensorrt" || provider_ == "cuda") AppendCuda(so, config);
    if (model_bytes != nullptr) {
      session_ = Ort::Session(env, model_bytes->data(), model_bytes->size(), so);
    } else {
      session_ = Ort::Session(env, model_path_.c_str(), so);
    }
  } catch (const Ort::Exception& e) {
    throw Error("could not create an ONNX Runtime session for '" + model_path_ +
                "' on provider '" + provider_ + "': " + e.what());
  }
  inputs_ = ReadInfos(session_, true);
  outputs_ = ReadInfos(session_, false);
}

static size_t IndexOf(const std::vector<TensorInfo>& infos, const std::string& name,
                      const char* what, const std::string& model_path) {
  std::string names;
  for (size_t i = 0; i < infos.size(); ++i) {
    if (infos[i].name == name) return i;
    names += (i ? ", '" : "'") + infos[i].name + "'";
  }
  throw InputError("model '" + model_path + "' has no " + what + " '" + name + "' (its " + what +
                   "s: " + names + ")");
}

size_t OrtModel::input_index(const std::string& name) const {
  return IndexOf(inputs_, name, "input", model_path_);
}

size_t OrtModel::output_index(const std::string& name) const {
  return IndexOf(outputs_, name, "output", model_path_);
}

}  // namespace gcdance

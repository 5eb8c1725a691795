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
  // The CUDA provider captures graphs only when it runs the whole model (not behind TensorRT).
  if (config.cuda_graph && Lower(config.provider) == "cuda") merged["enable_cuda_graph"] = "1";
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
  cuda_graph_ = config.cuda_graph;
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
    // Captures replay fixed addresses: only the device loop's kept buffer sets allow them.
    if (config.provider_options.count(key) != 0) {
      throw InputError(std::string("provider_options has ") + key + "='" +
                       config.provider_options.at(key) +
                       "': CUDA graphs are the engine's cuda_graph=True (provider 'cuda', device "
                       "loop), which keeps the buffers a capture replays");
    }
  }
  if (cuda_graph_ && provider_ != "cuda") {
    // ONNX Runtime's TensorRT provider keeps one graph per session whatever gpu_graph_id says,
    // which would replay stale buffers after a reshape.
    throw InputError("CUDA graphs need the 'cuda' provider, not '" + provider_ + "'");
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

Binding::Binding(std::shared_ptr<OrtModel> model) : model_(std::move(model)) {
  cpu_memory_ = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  binding_ = std::make_unique<Ort::IoBinding>(model_->session());
  input_buffers_.resize(model_->inputs().size());
  output_buffers_.resize(model_->outputs().size());
}

HostTensor& Binding::input(size_t i) {
  if (!input_buffers_.at(i)) {
    throw Error("input '" + model_->inputs()[i].name + "' has no buffer yet: call Prepare() "
                "(or run once) first");
  }
  return *input_buffers_[i];
}

const HostTensor& Binding::output(size_t i) const {
  if (!output_buffers_.at(i)) {
    throw Error("output '" + model_->outputs()[i].name + "' has no buffer yet: run once first");
  }
  return *output_buffers_[i];
}

void Binding::Prepare(const std::vector<std::vector<int64_t>>& shapes) {
  const auto& inputs = model_->inputs();
  if (shapes.size() != inputs.size()) {
    throw InputError("model '" + model_->model_path() + "' takes " +
                     std::to_string(inputs.size()) + " inputs, got " +
                     std::to_string(shapes.size()));
  }
  // Validate every shape before replacing any buffer, so a rejected call changes nothing.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorInfo& info = inputs[i];
    const auto& shape = shapes[i];
    bool ok = shape.size() == info.shape.size();
    for (size_t d = 0; ok && d < shape.size(); ++d) {
      ok = shape[d] > 0 && (info.shape[d] < 0 || info.shape[d] == shape[d]);
    }
    if (!ok) {
      throw InputError("input '" + info.name + "' expects shape " + ShapeString(info.shape) +
                       " (? = any size >= 1), got " + ShapeString(shape));
    }
  }
  bool changed = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorInfo& info = inputs[i];
    const auto& shape = shapes[i];
    if (input_buffers_[i] && input_buffers_[i]->shape() == shape) continue;
    input_buffers_[i] = std::make_unique<HostTensor>(info.type, shape);
    ++allocations_;
    binding_->BindInput(info.name.c_str(), input_buffers_[i]->value());
    changed = true;
  }
  if (changed) outputs_bound_ = false;
}

void Binding::BindOutputsToOwnBuffers() {
  // First run for these shapes: ORT allocates the outputs, which tells us their shapes.
  const auto& outputs = model_->outputs();
  binding_->ClearBoundOutputs();
  for (const auto& info : outputs) binding_->BindOutput(info.name.c_str(), cpu_memory_);
  model_->session().Run(run_options_, *binding_);
  std::vector<Ort::Value> values = binding_->GetOutputValues();
  binding_->ClearBoundOutputs();
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto shape_info = values[i].GetTensorTypeAndShapeInfo();
    std::vector<int64_t> shape = shape_info.GetShape();
    if (!output_buffers_[i] || output_buffers_[i]->shape() != shape) {
      output_buffers_[i] = std::make_unique<HostTensor>(outputs[i].type, shape);
      ++allocations_;
    }
    std::memcpy(output_buffers_[i]->data(), values[i].GetTensorRawData(),
                output_buffers_[i]->bytes());
    binding_->BindOutput(outputs[i].name.c_str(), output_buffers_[i]->value());
  }
  outputs_bound_ = true;
}

void Binding::Run() {
  const auto& inputs = model_->inputs();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!input_buffers_[i]) {
      throw InputError("input '" + inputs[i].name + "' has no buffer: call Prepare() first");
    }
  }
  try {
    // On CPU the bound values view our buffers. A GPU provider copies a CPU input to the device
    // when it is bound, so the inputs are re-bound before every run to send their new contents.
    if (model_->provider() != "cpu") {
      for (size_t i = 0; i < inputs.size(); ++i) {
        binding_->BindInput(inputs[i].name.c_str(), input_buffers_[i]->value());
      }
    }
    if (!outputs_bound_) {
      BindOutputsToOwnBuffers();
    } else {
      model_->session().Run(run_options_, *binding_);
    }
  } catch (const Ort::Exception& e) {
    std::string shapes;
    for (size_t i = 0; i < inputs.size(); ++i) {
      shapes += (i ? ", " : "") + inputs[i].name + ShapeString(input_buffers_[i]->shape());
    }
    throw Error("ONNX Runtime failed running '" + model_->model_path() + "' with inputs " +
                shapes + ": " + e.what());
  }
}

}  // namespace gcdance

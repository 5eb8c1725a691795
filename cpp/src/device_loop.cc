#include "gcdance/device_loop.h"

#include <cstring>
#include <mutex>

#include "gcdance/generator.h"
#include "gcdance/runtime.h"

namespace gcdance {
namespace {

constexpr auto kFloat = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
constexpr auto kInt64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
constexpr auto kBool = ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;

// The upload graph's tensors (gcdance.update_graph.UPLOADS): name and element type.
const std::vector<std::pair<std::string, ONNXTensorElementDataType>>& Uploads() {
  static const std::vector<std::pair<std::string, ONNXTensorElementDataType>> kUploads = {
      {"x", kFloat},     {"anchors", kFloat},     {"step", kInt64},  {"x_in", kFloat},
      {"t", kFloat},     {"music", kFloat},       {"text", kFloat},  {"cond", kFloat},
      {"known", kFloat}, {"mask", kBool},         {"z", kFloat},     {"zq", kFloat},
      {"table", kFloat}, {"noise_index", kInt64}, {"prev_window", kInt64},
      {"head", kBool},   {"batch_zeros", kFloat}};
  return kUploads;
}

}  // namespace

DeviceTensor::DeviceTensor(OrtAllocator* allocator, ONNXTensorElementDataType type,
                           std::vector<int64_t> shape)
    : shape_(std::move(shape)) {
  value_ = Ort::Value::CreateTensor(allocator, shape_.data(), shape_.size(), type);
}

DeviceLoop::DeviceLoop(std::shared_ptr<Model> model) : model_(std::move(model)) {
  if (!model_->device_loop()) {
    throw InputError("this Model has no update graph: build it with "
                     "gcdance.update_graph (gcdance.Generator(loop='device') does)");
  }
  OrtModel& update = *model_->update();
  if (update.provider() == "cpu") {
    allocator_ = Ort::AllocatorWithDefaultOptions();
  } else {
    Ort::MemoryInfo info("Cuda", OrtDeviceAllocator, update.device_id(), OrtMemTypeDefault);
    device_allocator_ = std::make_unique<Ort::Allocator>(update.session(), info);
    allocator_ = *device_allocator_;
  }
}

HostTensor& DeviceLoop::host(const std::string& name) {
  if (current_ == nullptr) throw Error("no host upload buffer '" + name + "': call Reserve first");
  auto it = current_->host.find(name);
  if (it == current_->host.end()) {
    throw Error("no host upload buffer '" + name + "': call Reserve first");
  }
  return *it->second;
}

DeviceTensor& DeviceLoop::Device(Buffers& b, const std::string& name,
                                 ONNXTensorElementDataType type, std::vector<int64_t> shape) {
  auto& slot = b.device[name];
  if (!slot || slot->shape() != shape) {
    slot = std::make_unique<DeviceTensor>(allocator_, type, std::move(shape));
    ++allocations_;
  }
  return *slot;
}

void DeviceLoop::Reserve(int64_t W, int64_t S, int64_t z_slabs, int64_t zq_slabs) {
  const Shape shape{W, S, z_slabs, zq_slabs};
  if (current_ != nullptr && current_->shape == shape) return;
  // CUDA graphs replay the addresses they were captured with: a buffer set per shape, kept.
  auto& slot = sets_[model_->ort()->cuda_graph() ? shape : Shape{}];
  if (!slot) slot = std::make_unique<Buffers>();
  current_ = slot.get();
  if (current_->shape != shape) Size(*current_, shape);
}

void DeviceLoop::Size(Buffers& b, const Shape& shape) {
  const auto [W, S, z_slabs, zq_slabs] = shape;
  b.shape = Shape{-1, -1, -1, -1};  // set again only once every buffer matches
  const ModelConfig& c = model_->config();
  const int64_t L = c.window, D = c.dim, B = 2 * W;
  const int64_t K = std::max<int64_t>(int64_t(c.anchor_dims.size()), 1);  // 1: unused dummy
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"x", {W, L, D}},           {"anchors", {W, K}},
      {"step", {1}},              {"x_in", {B, L, D}},
      {"t", {B}},                 {"music", {B, L, c.music_dim}},
      {"text", {B, c.text_dim}},  {"cond", {B}},
      {"known", {W, L, D}},       {"mask", {W, L, D}},
      {"z", {z_slabs, W, L, D}},  {"zq", {zq_slabs, W, L, D}},
      {"table", {S + 1, kScheduleColumns}}, {"noise_index", {S + 1, 2}},
      {"prev_window", {W}},       {"head", {W, L, 1}},
      {"batch_zeros", {B}}};
  for (const auto& [name, type] : Uploads()) {
    const auto& dims = shapes.at(name);
    auto& slot = b.host[name];
    if (!slot || slot->shape() != dims) {
      slot = std::make_unique<HostTensor>(type, dims);
      ++allocations_;
    }
    Device(b, name, type, dims);
  }
  // Ping-pong state: "x"/"anchors"/"step" above are side A; B and the network's buffers here.
  Device(b, "x_b", kFloat, {W, L, D});
  Device(b, "anchors_b", kFloat, {W, K});
  Device(b, "step_b", kInt64, {1});
  Device(b, "x0_pair", kFloat, {B, L, D});
  if (model_->split()) Device(b, "cache", kFloat, {B, L, c.cache_dim});
  if (!b.x_host || b.x_host->shape() != std::vector<int64_t>{W, L, D}) {
    b.x_host = std::make_unique<HostTensor>(kFloat, std::vector<int64_t>{W, L, D});
    ++allocations_;
  }

  // Constants of the shape: cond_mask rows, the previous window of each window, the heads the
  // overlap constraint overwrites, zeros to broadcast t over the batch, and the zero noise slab.
  auto* cond = static_cast<float*>(b.host.at("cond")->data());
  for (int64_t r = 0; r < B; ++r) cond[r] = r < W ? 1.0f : 0.0f;
  auto* prev = static_cast<int64_t*>(b.host.at("prev_window")->data());
  for (int64_t w = 0; w < W; ++w) prev[w] = w == 0 ? 0 : w - 1;
  auto* head = static_cast<bool*>(b.host.at("head")->data());
  for (int64_t w = 0; w < W; ++w) {
    for (int64_t f = 0; f < L; ++f) head[w * L + f] = w > 0 && f < L - c.hop;
  }
  HostTensor& zeros = *b.host.at("batch_zeros");
  std::memset(zeros.data(), 0, zeros.bytes());

  b.shape = shape;  // BindAll reads the step count
  try {
    BindAll(b);
  } catch (...) {
    b.shape = Shape{-1, -1, -1, -1};
    throw;
  }
}

void DeviceLoop::BindAll(Buffers& b) {
  const ModelConfig& c = model_->config();
  auto dev = [&b](const std::string& name) -> Ort::Value& { return b.device.at(name)->value(); };
  const bool anchored = !c.anchor_dims.empty();
  const int64_t steps = b.shape[1];

  b.upload = std::make_unique<Ort::IoBinding>(model_->upload()->session());
  for (const auto& [name, type] : Uploads()) {
    b.upload->BindOutput(("to_" + name).c_str(), dev(name));
  }

  OrtModel& net = *model_->ort();
  const auto& in = net.inputs();
  b.denoiser = std::make_unique<Ort::IoBinding>(net.session());
  b.denoiser->BindInput(in[model_->ix].name.c_str(), dev("x_in"));
  b.denoiser->BindInput(in[model_->it].name.c_str(), dev("t"));
  b.denoiser->BindInput(in[model_->itext].name.c_str(), dev("text"));
  b.denoiser->BindInput(in[model_->icond].name.c_str(), dev("cond"));
  if (model_->split()) {
    OrtModel& cond_model = *model_->condition();
    const auto& cin = cond_model.inputs();
    b.condition = std::make_unique<Ort::IoBinding>(cond_model.session());
    b.condition->BindInput(cin[model_->c_music].name.c_str(), dev("music"));
    b.condition->BindInput(cin[model_->c_text].name.c_str(), dev("text"));
    b.condition->BindInput(cin[model_->c_cond].name.c_str(), dev("cond"));
    b.condition->BindOutput(cond_model.outputs()[model_->c_out].name.c_str(), dev("cache"));
    b.denoiser->BindInput(in[model_->icache].name.c_str(), dev("cache"));
  } else {
    b.condition.reset();
    b.denoiser->BindInput(in[model_->imusic].name.c_str(), dev("music"));
  }
  b.denoiser->BindOutput(net.outputs()[model_->ox0].name.c_str(), dev("x0_pair"));

  // Update p reads side p and writes side 1 - p (A = "x", B = "x_b"); the last step writes x
  // to the host.
  const std::string side[2][3] = {{"x", "anchors", "step"}, {"x_b", "anchors_b", "step_b"}};
  Ort::Session& update = model_->update()->session();
  auto bind_update = [&](int p, bool last) {
    auto u = std::make_unique<Ort::IoBinding>(update);
    u->BindInput("x", dev(side[p][0]));
    u->BindInput("x0_pair", dev("x0_pair"));
    if (anchored) u->BindInput("anchors", dev(side[p][1]));
    u->BindInput("step", dev(side[p][2]));
    for (const char* name : {"table", "noise_index", "z", "zq", "known", "mask", "prev_window",
                             "head", "batch_zeros"}) {
      u->BindInput(name, dev(name));
    }
    u->BindOutput("x_next", last ? b.x_host->value() : dev(side[1 - p][0]));
    if (anchored) u->BindOutput("anchors_next", dev(side[1 - p][1]));
    u->BindOutput("step_next", dev(side[1 - p][2]));
    u->BindOutput("x_in_next", dev("x_in"));
    u->BindOutput("t_next", dev("t"));
    return u;
  };
  b.update[0] = bind_update(0, false);
  b.update[1] = bind_update(1, false);
  b.last = bind_update(int((steps - 1) % 2), true);

  // CUDA graphs: one id per binding of this buffer set (sized once, never resized).
  b.denoiser_options = Ort::RunOptions();
  b.update_options[0] = Ort::RunOptions();
  b.update_options[1] = Ort::RunOptions();
  b.plain = Ort::RunOptions();
  if (net.cuda_graph()) {
    b.denoiser_options.AddConfigEntry("gpu_graph_id",
                                      std::to_string(model_->NextGraphId()).c_str());
  }
  if (model_->update()->cuda_graph()) {
    for (auto& options : b.update_options) {
      options.AddConfigEntry("gpu_graph_id", std::to_string(model_->NextGraphId()).c_str());
    }
    b.plain.AddConfigEntry("gpu_graph_id", "-1");  // the last step copies to the host: no capture
  }
}

void DeviceLoop::RunBinding(Ort::IoBinding& binding, OrtModel& model, Ort::RunOptions& options) {
  try {
    model.session().Run(options, binding);
  } catch (const Ort::Exception& e) {
    throw Error("ONNX Runtime failed running '" + model.model_path() + "' in the device loop (" +
                std::to_string(current_->shape[0]) + " windows, " +
                std::to_string(current_->shape[1]) + " steps): " + e.what());
  }
}

void DeviceLoop::Run(const std::function<bool(int64_t, int64_t)>& progress, float* x_out) {
  if (current_ == nullptr || current_->shape[0] < 1) throw Error("DeviceLoop::Run before Reserve");
  Buffers& b = *current_;
  const int64_t steps = b.shape[1];
  std::unique_lock<std::mutex> graphs;  // CUDA graphs: one device loop of the Model at a time
  if (model_->ort()->cuda_graph()) graphs = std::unique_lock<std::mutex>(model_->graph_mutex());
  // Host inputs are bound anew each generation: a GPU provider copies them when bound.
  for (const auto& [name, type] : Uploads()) {
    b.upload->BindInput(name.c_str(), b.host.at(name)->value());
  }
  Ort::RunOptions once;
  RunBinding(*b.upload, *model_->upload(), once);
  if (b.condition) RunBinding(*b.condition, *model_->condition(), once);
  OrtModel& net = *model_->ort();
  OrtModel& update = *model_->update();
  for (int64_t s = 0; s < steps; ++s) {
    RunBinding(*b.denoiser, net, b.denoiser_options);
    if (s + 1 == steps) {
      RunBinding(*b.last, update, b.plain);
      b.last->SynchronizeOutputs();
    } else {
      RunBinding(*b.update[s % 2], update, b.update_options[s % 2]);
    }
    if (progress && !progress(s + 1, steps)) {
      throw Error("generation cancelled after step " + std::to_string(s + 1) + " of " +
                  std::to_string(steps));
    }
  }
  std::memcpy(x_out, b.x_host->data(), b.x_host->bytes());
}

}  // namespace gcdance

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
  auto it = host_.find(name);
  if (it == host_.end()) throw Error("no host upload buffer '" + name + "': call Reserve first");
  return *it->second;
}

DeviceTensor& DeviceLoop::Device(const std::string& name, ONNXTensorElementDataType type,
                                 std::vector<int64_t> shape) {
  auto& slot = device_[name];
  if (!slot || slot->shape() != shape) {
    slot = std::make_unique<DeviceTensor>(allocator_, type, std::move(shape));
    ++allocations_;
  }
  return *slot;
}

void DeviceLoop::Reserve(int64_t W, int64_t S, int64_t z_slabs, int64_t zq_slabs) {
  if (W == windows_ && S == steps_ && z_slabs == z_slabs_ && zq_slabs == zq_slabs_) return;
  windows_ = -1;  // set again only once every buffer matches
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
    const auto& shape = shapes.at(name);
    auto& slot = host_[name];
    if (!slot || slot->shape() != shape) {
      slot = std::make_unique<HostTensor>(type, shape);
      ++allocations_;
    }
    Device(name, type, shape);
  }
  // Ping-pong state: "x"/"anchors"/"step" above are side A; B and the network's buffers here.
  Device("x_b", kFloat, {W, L, D});
  Device("anchors_b", kFloat, {W, K});
  Device("step_b", kInt64, {1});
  Device("x0_pair", kFloat, {B, L, D});
  if (model_->split()) Device("cache", kFloat, {B, L, c.cache_dim});
  if (!x_host_ || x_host_->shape() != std::vector<int64_t>{W, L, D}) {
    x_host_ = std::make_unique<HostTensor>(kFloat, std::vector<int64_t>{W, L, D});
    ++allocations_;
  }

  // Constants of the shape: cond_mask rows, the previous window of each window, the heads the
  // overlap constraint overwrites, zeros to broadcast t over the batch, and the zero noise slab.
  auto* cond = static_cast<float*>(host("cond").data());
  for (int64_t b = 0; b < B; ++b) cond[b] = b < W ? 1.0f : 0.0f;
  auto* prev = static_cast<int64_t*>(host("prev_window").data());
  for (int64_t w = 0; w < W; ++w) prev[w] = w == 0 ? 0 : w - 1;
  auto* head = static_cast<bool*>(host("head").data());
  for (int64_t w = 0; w < W; ++w) {
    for (int64_t f = 0; f < L; ++f) head[w * L + f] = w > 0 && f < L - c.hop;
  }
  std::memset(host("batch_zeros").data(), 0, host("batch_zeros").bytes());

  steps_ = S, z_slabs_ = z_slabs, zq_slabs_ = zq_slabs;
  BindAll(W);
  windows_ = W;
}

void DeviceLoop::BindAll(int64_t windows) {
  const ModelConfig& c = model_->config();
  auto dev = [this](const std::string& name) -> Ort::Value& { return device_.at(name)->value(); };
  const bool anchored = !c.anchor_dims.empty();

  upload_ = std::make_unique<Ort::IoBinding>(model_->upload()->session());
  for (const auto& [name, type] : Uploads()) {
    upload_->BindOutput(("to_" + name).c_str(), dev(name));
  }

  OrtModel& net = *model_->ort();
  const auto& in = net.inputs();
  denoiser_ = std::make_unique<Ort::IoBinding>(net.session());
  denoiser_->BindInput(in[model_->ix].name.c_str(), dev("x_in"));
  denoiser_->BindInput(in[model_->it].name.c_str(), dev("t"));
  denoiser_->BindInput(in[model_->itext].name.c_str(), dev("text"));
  denoiser_->BindInput(in[model_->icond].name.c_str(), dev("cond"));
  if (model_->split()) {
    OrtModel& cond_model = *model_->condition();
    const auto& cin = cond_model.inputs();
    condition_ = std::make_unique<Ort::IoBinding>(cond_model.session());
    condition_->BindInput(cin[model_->c_music].name.c_str(), dev("music"));
    condition_->BindInput(cin[model_->c_text].name.c_str(), dev("text"));
    condition_->BindInput(cin[model_->c_cond].name.c_str(), dev("cond"));
    condition_->BindOutput(cond_model.outputs()[model_->c_out].name.c_str(), dev("cache"));
    denoiser_->BindInput(in[model_->icache].name.c_str(), dev("cache"));
  } else {
    condition_.reset();
    denoiser_->BindInput(in[model_->imusic].name.c_str(), dev("music"));
  }
  denoiser_->BindOutput(net.outputs()[model_->ox0].name.c_str(), dev("x0_pair"));

  // Update p reads side p and writes side 1 - p (A = "x", B = "x_b"); the last step writes x
  // to the host.
  const std::string side[2][3] = {{"x", "anchors", "step"}, {"x_b", "anchors_b", "step_b"}};
  Ort::Session& update = model_->update()->session();
  auto bind_update = [&](int p, bool last) {
    auto b = std::make_unique<Ort::IoBinding>(update);
    b->BindInput("x", dev(side[p][0]));
    b->BindInput("x0_pair", dev("x0_pair"));
    if (anchored) b->BindInput("anchors", dev(side[p][1]));
    b->BindInput("step", dev(side[p][2]));
    for (const char* name : {"table", "noise_index", "z", "zq", "known", "mask", "prev_window",
                             "head", "batch_zeros"}) {
      b->BindInput(name, dev(name));
    }
    b->BindOutput("x_next", last ? x_host_->value() : dev(side[1 - p][0]));
    if (anchored) b->BindOutput("anchors_next", dev(side[1 - p][1]));
    b->BindOutput("step_next", dev(side[1 - p][2]));
    b->BindOutput("x_in_next", dev("x_in"));
    b->BindOutput("t_next", dev("t"));
    return b;
  };
  update_[0] = bind_update(0, false);
  update_[1] = bind_update(1, false);
  last_ = bind_update(int((steps_ - 1) % 2), true);

  // CUDA graphs: one id per binding and buffer set (the addresses a graph was captured with).
  // The denoiser's buffers depend on the window count only; the update's on steps and noise
  // slabs too. Captures live as long as the session: one per distinct shape this loop sees.
  if (windows != denoiser_windows_ || !net.cuda_graph()) {
    denoiser_options_ = Ort::RunOptions();
    if (net.cuda_graph()) {
      denoiser_options_.AddConfigEntry("gpu_graph_id",
                                       std::to_string(model_->NextGraphId()).c_str());
    }
    denoiser_windows_ = windows;
  }
  update_options_[0] = Ort::RunOptions();
  update_options_[1] = Ort::RunOptions();
  if (model_->update()->cuda_graph()) {
    for (auto& options : update_options_) {
      options.AddConfigEntry("gpu_graph_id", std::to_string(model_->NextGraphId()).c_str());
    }
    plain_ = Ort::RunOptions();
    plain_.AddConfigEntry("gpu_graph_id", "-1");  // the last step copies to the host: no capture
  }
}

void DeviceLoop::RunBinding(Ort::IoBinding& binding, OrtModel& model, Ort::RunOptions& options) {
  try {
    model.session().Run(options, binding);
  } catch (const Ort::Exception& e) {
    throw Error("ONNX Runtime failed running '" + model.model_path() + "' in the device loop (" +
                std::to_string(windows_) + " windows, " + std::to_string(steps_) +
                " steps): " + e.what());
  }
}

void DeviceLoop::Run(const std::function<bool(int64_t, int64_t)>& progress, float* x_out) {
  if (windows_ < 1) throw Error("DeviceLoop::Run before Reserve");
  std::unique_lock<std::mutex> graphs;  // CUDA graphs: one device loop of the Model at a time
  if (model_->ort()->cuda_graph()) graphs = std::unique_lock<std::mutex>(model_->graph_mutex());
  // Host inputs are bound anew each generation: a GPU provider copies them when bound.
  for (const auto& [name, type] : Uploads()) {
    upload_->BindInput(name.c_str(), host(name).value());
  }
  Ort::RunOptions once;
  RunBinding(*upload_, *model_->upload(), once);
  if (condition_) RunBinding(*condition_, *model_->condition(), once);
  OrtModel& net = *model_->ort();
  OrtModel& update = *model_->update();
  for (int64_t s = 0; s < steps_; ++s) {
    RunBinding(*denoiser_, net, denoiser_options_);
    if (s + 1 == steps_) {
      RunBinding(*last_, update, plain_);
      last_->SynchronizeOutputs();
    } else {
      RunBinding(*update_[s % 2], update, update_options_[s % 2]);
    }
    if (progress && !progress(s + 1, steps_)) {
      throw Error("generation cancelled after step " + std::to_string(s + 1) + " of " +
                  std::to_string(steps_));
    }
  }
  std::memcpy(x_out, x_host_->data(), x_host_->bytes());
}

}  // namespace gcdance

#include "gcdance/device_loop.h"

#include <cstring>
#include <exception>
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

DeviceLoop::DeviceLoop(std::shared_ptr<Model> model, bool keep_shapes)
    : model_(std::move(model)) {
  if (!model_->device_loop()) {
    throw InputError("this Model has no update graph: build it with "
                     "gcdance.update_graph (gcdance.Generator(loop='device') does)");
  }
  keep_ = keep_shapes || model_->ort()->cuda_graph();
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
  if (current_ == nullptr || it == host_.end()) {
    throw Error("no host upload buffer '" + name + "': call Reserve first");
  }
  return *it->second;
}

DeviceTensor& DeviceLoop::Device(Tensors& tensors, const std::string& name,
                                 ONNXTensorElementDataType type, std::vector<int64_t> shape) {
  auto& slot = tensors[name];
  if (!slot || slot->shape() != shape) {
    slot = std::make_unique<DeviceTensor>(allocator_, type, std::move(shape));
    ++allocations_;
  }
  return *slot;
}

void DeviceLoop::Reserve(int64_t W, int64_t S, int64_t z_slabs, int64_t zq_slabs) {
  const Shape shape{W, S, z_slabs, zq_slabs};
  // CUDA graphs: no allocation while another device loop of the Model captures.
  std::unique_lock<std::mutex> graphs;
  if (model_->ort()->cuda_graph()) graphs = std::unique_lock<std::mutex>(model_->graph_mutex());
  if (shape != host_shape_) current_ = nullptr;  // set again below, once all matches
  SizeHost(shape);
  if (current_ != nullptr && current_->shape == shape &&
      current_->net_version == current_->net->version && current_->net->windows == W) {
    return;
  }
  current_ = nullptr;
  auto& net_slot = nets_[keep_ ? W : 0];
  if (!net_slot) net_slot = std::make_unique<NetBuffers>();
  NetBuffers* net = net_slot.get();
  if (net->windows != W) {
    try {
      SizeNet(*net, W);
    } catch (...) {
      if (keep_) Forget(net);  // nothing kept half-sized (out of memory on a long song)
      throw;
    }
  }
  const Shape key = keep_ ? shape : Shape{};
  auto& set_slot = sets_[key];
  if (!set_slot) set_slot = std::make_unique<StepBuffers>();
  StepBuffers* set = set_slot.get();
  if (set->shape != shape || set->net != net || set->net_version != net->version) {
    try {
      SizeSteps(*set, shape, *net);
    } catch (...) {
      if (keep_) sets_.erase(key);
      throw;
    }
  }
  current_ = set;
}

void DeviceLoop::SizeHost(const Shape& shape) {
  if (shape == host_shape_) return;
  const auto [W, S, z_slabs, zq_slabs] = shape;
  host_shape_ = Shape{-1, -1, -1, -1};  // set again only once every buffer matches
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
    auto& slot = host_[name];
    if (!slot) {
      slot = std::make_unique<HostTensor>(type, dims);
      ++allocations_;
    } else if (slot->shape() != dims && slot->Reshape(dims)) {  // grows, never shrinks
      ++allocations_;
    }
  }
  // Constants of the shape: cond_mask rows, the previous window of each window, the heads the
  // window handover blends and zeros to broadcast t over the batch.
  auto* cond = static_cast<float*>(host_.at("cond")->data());
  for (int64_t r = 0; r < B; ++r) cond[r] = r < W ? 1.0f : 0.0f;
  auto* prev = static_cast<int64_t*>(host_.at("prev_window")->data());
  for (int64_t w = 0; w < W; ++w) prev[w] = w == 0 ? 0 : w - 1;
  auto* head = static_cast<bool*>(host_.at("head")->data());
  for (int64_t w = 0; w < W; ++w) {
    for (int64_t f = 0; f < L; ++f) head[w * L + f] = w > 0 && f < L - c.hop;
  }
  HostTensor& zeros = *host_.at("batch_zeros");
  std::memset(zeros.data(), 0, zeros.bytes());
  host_shape_ = shape;
}

void DeviceLoop::SizeNet(NetBuffers& net, int64_t W) {
  net.windows = -1;  // set again only once every buffer matches and is bound
  ++net.version;
  const ModelConfig& c = model_->config();
  const int64_t L = c.window, D = c.dim, B = 2 * W;
  Device(net.device, "x_in", kFloat, {B, L, D});
  Device(net.device, "t", kFloat, {B});
  Device(net.device, "music", kFloat, {B, L, c.music_dim});
  Device(net.device, "text", kFloat, {B, c.text_dim});
  Device(net.device, "cond", kFloat, {B});
  Device(net.device, "x0_pair", kFloat, {B, L, D});
  if (model_->split()) Device(net.device, "cache", kFloat, {B, L, c.cache_dim});
  auto dev = [&net](const char* name) -> Ort::Value& { return net.device.at(name)->value(); };

  OrtModel& model = *model_->ort();
  const auto& in = model.inputs();
  net.denoiser = std::make_unique<Ort::IoBinding>(model.session());
  net.denoiser->BindInput(in[model_->ix].name.c_str(), dev("x_in"));
  net.denoiser->BindInput(in[model_->it].name.c_str(), dev("t"));
  net.denoiser->BindInput(in[model_->itext].name.c_str(), dev("text"));
  net.denoiser->BindInput(in[model_->icond].name.c_str(), dev("cond"));
  if (model_->split()) {
    OrtModel& cond_model = *model_->condition();
    const auto& cin = cond_model.inputs();
    net.condition = std::make_unique<Ort::IoBinding>(cond_model.session());
    net.condition->BindInput(cin[model_->c_music].name.c_str(), dev("music"));
    net.condition->BindInput(cin[model_->c_text].name.c_str(), dev("text"));
    net.condition->BindInput(cin[model_->c_cond].name.c_str(), dev("cond"));
    net.condition->BindOutput(cond_model.outputs()[model_->c_out].name.c_str(), dev("cache"));
    net.denoiser->BindInput(in[model_->icache].name.c_str(), dev("cache"));
  } else {
    net.condition.reset();
    net.denoiser->BindInput(in[model_->imusic].name.c_str(), dev("music"));
  }
  net.denoiser->BindOutput(model.outputs()[model_->ox0].name.c_str(), dev("x0_pair"));
  net.options = Ort::RunOptions();
  if (model.cuda_graph()) {
    net.options.AddConfigEntry("gpu_graph_id", std::to_string(model_->NextGraphId()).c_str());
  }
  net.windows = W;
}

void DeviceLoop::SizeSteps(StepBuffers& set, const Shape& shape, NetBuffers& net) {
  const auto [W, S, z_slabs, zq_slabs] = shape;
  set.shape = Shape{-1, -1, -1, -1};  // set again only once every buffer matches and is bound
  set.net = nullptr;
  const ModelConfig& c = model_->config();
  const int64_t L = c.window, D = c.dim;
  const int64_t K = std::max<int64_t>(int64_t(c.anchor_dims.size()), 1);
  // Ping-pong state: side A ("x", "anchors", "step") is also what the upload writes.
  for (const char* name : {"x", "x_b", "known"}) Device(set.device, name, kFloat, {W, L, D});
  Device(set.device, "mask", kBool, {W, L, D});
  Device(set.device, "anchors", kFloat, {W, K});
  Device(set.device, "anchors_b", kFloat, {W, K});
  Device(set.device, "step", kInt64, {1});
  Device(set.device, "step_b", kInt64, {1});
  Device(set.device, "z", kFloat, {z_slabs, W, L, D});
  Device(set.device, "zq", kFloat, {zq_slabs, W, L, D});
  Device(set.device, "table", kFloat, {S + 1, kScheduleColumns});
  Device(set.device, "noise_index", kInt64, {S + 1, 2});
  Device(set.device, "prev_window", kInt64, {W});
  Device(set.device, "head", kBool, {W, L, 1});
  Device(set.device, "batch_zeros", kFloat, {2 * W});
  if (!set.x_host || set.x_host->shape() != std::vector<int64_t>{W, L, D}) {
    set.x_host = std::make_unique<HostTensor>(kFloat, std::vector<int64_t>{W, L, D});
    ++allocations_;
  }
  auto dev = [&](const std::string& name) -> Ort::Value& {
    auto it = set.device.find(name);
    return (it != set.device.end() ? it->second : net.device.at(name))->value();
  };

  set.upload = std::make_unique<Ort::IoBinding>(model_->upload()->session());
  for (const auto& [name, type] : Uploads()) {
    set.upload->BindOutput(("to_" + name).c_str(), dev(name));
  }
  // Update p reads side p and writes side 1 - p (A = "x", B = "x_b"); the last step writes x
  // to the host.
  const bool anchored = !c.anchor_dims.empty();
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
    u->BindOutput("x_next", last ? set.x_host->value() : dev(side[1 - p][0]));
    if (anchored) u->BindOutput("anchors_next", dev(side[1 - p][1]));
    u->BindOutput("step_next", dev(side[1 - p][2]));
    u->BindOutput("x_in_next", dev("x_in"));
    u->BindOutput("t_next", dev("t"));
    return u;
  };
  set.update[0] = bind_update(0, false);
  set.update[1] = bind_update(1, false);
  set.last = bind_update(int((S - 1) % 2), true);

  // CUDA graphs: an id per ping-pong binding of this set; the last step copies to the host.
  set.options[0] = Ort::RunOptions();
  set.options[1] = Ort::RunOptions();
  set.plain = Ort::RunOptions();
  if (model_->update()->cuda_graph()) {
    for (auto& options : set.options) {
      options.AddConfigEntry("gpu_graph_id", std::to_string(model_->NextGraphId()).c_str());
    }
    set.plain.AddConfigEntry("gpu_graph_id", "-1");
  }
  set.net = &net;
  set.net_version = net.version;
  set.shape = shape;
}

void DeviceLoop::Forget(NetBuffers* net) {
  current_ = nullptr;
  for (auto it = sets_.begin(); it != sets_.end();) {
    it = it->second->net == net ? sets_.erase(it) : std::next(it);
  }
  for (auto it = nets_.begin(); it != nets_.end();) {
    it = it->second.get() == net ? nets_.erase(it) : std::next(it);
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
  if (current_ == nullptr) throw Error("DeviceLoop::Run before Reserve");
  StepBuffers& set = *current_;
  NetBuffers& net = *set.net;
  const int64_t steps = set.shape[1];
  std::unique_lock<std::mutex> graphs;  // CUDA graphs: one device loop of the Model at a time
  if (model_->ort()->cuda_graph()) graphs = std::unique_lock<std::mutex>(model_->graph_mutex());
  int64_t done = 0;
  std::exception_ptr callback_error;  // the progress callback's own exception: not a failure
  try {
    // Host inputs are bound anew each generation: a GPU provider copies them when bound.
    for (const auto& [name, type] : Uploads()) {
      set.upload->BindInput(name.c_str(), host_.at(name)->value());
    }
    Ort::RunOptions once;
    RunBinding(*set.upload, *model_->upload(), once);
    if (net.condition) RunBinding(*net.condition, *model_->condition(), once);
    OrtModel& denoiser = *model_->ort();
    OrtModel& update = *model_->update();
    for (int64_t s = 0; s < steps; ++s) {
      RunBinding(*net.denoiser, denoiser, net.options);
      if (s + 1 == steps) {
        RunBinding(*set.last, update, set.plain);
        set.last->SynchronizeOutputs();
      } else {
        RunBinding(*set.update[s % 2], update, set.options[s % 2]);
      }
      done = s + 1;
      if (progress) {  // between runs: no capture is open, the buffers stay valid
        bool go_on = false;
        try {
          go_on = progress(done, steps);
        } catch (...) {
          callback_error = std::current_exception();
        }
        if (callback_error || !go_on) break;
      }
    }
  } catch (...) {
    // A failed capture or replay: never replay these graph ids again (the next generation of
    // this length sizes and captures a fresh set).
    if (keep_) Forget(&net);
    throw;
  }
  if (callback_error) std::rethrow_exception(callback_error);
  if (done < steps) {
    throw Error("generation cancelled after step " + std::to_string(done) + " of " +
                std::to_string(steps));
  }
  std::memcpy(x_out, set.x_host->data(), set.x_host->bytes());
}

}  // namespace gcdance

#include "gcdance/loop.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <functional>

#include "gcdance/generator.h"
#include "gcdance/runtime.h"

namespace gcdance {
namespace {

constexpr auto kFloat = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
constexpr auto kInt64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
constexpr auto kBool = ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
constexpr auto kDouble = ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE;

// Shapes of the upload graph's tensors for a shape (windows, steps, slabs) of a model.
std::map<std::string, std::vector<int64_t>> UploadShapes(const ModelConfig& c, int64_t W,
                                                         int64_t S, int64_t z_slabs,
                                                         int64_t zq_slabs, int64_t carry_rows,
                                                         int64_t columns) {
  const int64_t L = c.window, D = c.dim, B = 2 * W;
  const int64_t K = std::max<int64_t>(int64_t(c.anchor_dims.size()), 1);  // 1: unused dummy
  return {{"x", {W, L, D}},           {"x0_prev", {W, L, D}},
          {"anchors", {W, K}},
          {"step", {1}},              {"x_in", {B, L, D}},
          {"t", {B}},                 {"music", {B, L, c.music_dim}},
          {"text", {B, c.text_dim}},  {"cond", {B}},
          {"known", {W, L, D}},       {"mask", {W, L, D}},
          {"z", {z_slabs, W, L, D}},  {"zq", {zq_slabs, W, L, D}},
          {"table", {S + 1, columns}}, {"slab_index", {S + 1, 3}},
          {"prev_window", {W}},       {"head", {W, L, 1}},
          {"batch_zeros", {B}},       {"carried", {1}},
          {"carry_x0", {carry_rows, L, D}}, {"carry_anchors", {carry_rows, 2, K}}};
}

}  // namespace

DeviceTensor::DeviceTensor(OrtAllocator* allocator, ONNXTensorElementDataType type,
                           std::vector<int64_t> shape)
    : shape_(std::move(shape)) {
  value_ = Ort::Value::CreateTensor(allocator, shape_.data(), shape_.size(), type);
}

Loop::Loop(std::shared_ptr<Model> model) : model_(std::move(model)) {
  OrtModel& sampler = model_->sampler();
  if (sampler.provider() == "cpu") {
    allocator_ = Ort::AllocatorWithDefaultOptions();
  } else {
    Ort::MemoryInfo info("Cuda", OrtDeviceAllocator, sampler.device_id(), OrtMemTypeDefault);
    device_allocator_ = std::make_unique<Ort::Allocator>(sampler.session(), info);
    allocator_ = *device_allocator_;
  }
}

HostTensor& Loop::host(const std::string& name) {
  auto it = host_.find(name);
  if (shape_[0] < 0 || it == host_.end()) {
    throw Error("no host upload buffer '" + name + "': call Reserve first");
  }
  return *it->second;
}

DeviceTensor& Loop::Device(const std::string& name, ONNXTensorElementDataType type,
                           std::vector<int64_t> shape) {
  auto& slot = device_[name];
  if (!slot || slot->shape() != shape) {
    slot = std::make_unique<DeviceTensor>(allocator_, type, std::move(shape));
    ++allocations_;
  }
  return *slot;
}

Ort::Value& Loop::Bound(const std::string& name) { return device_.at(name)->value(); }

void Loop::Reserve(int64_t W, int64_t S, int64_t z_slabs, int64_t zq_slabs,
                   int64_t carry_rows) {
  const Shape shape{W, S, z_slabs, zq_slabs, carry_rows};
  if (shape == shape_) return;
  shape_ = Shape{-1, -1, -1, -1, -1};  // set again only once every buffer matches and is bound
  const ModelConfig& c = model_->config();
  const int64_t L = c.window, D = c.dim, B = 2 * W;
  const auto shapes = UploadShapes(c, W, S, z_slabs, zq_slabs, carry_rows,
                                   int64_t(c.schedule_columns.size()));
  // Host staging buffers and their device copies, one per upload graph input (its types).
  for (const auto& info : model_->upload().inputs()) {
    const auto& dims = shapes.at(info.name);  // Model checked the names
    auto& slot = host_[info.name];
    if (!slot) {
      slot = std::make_unique<HostTensor>(info.type, dims);
      ++allocations_;
    } else if (slot->shape() != dims && slot->Reshape(dims)) {  // grows, never shrinks
      ++allocations_;
    }
    Device(info.name, info.type, dims);
  }
  // Ping-pong state (side A is what the upload writes: x, x0_prev, anchors, step), the
  // denoiser's output and the cache.
  Device("x_b", kFloat, {W, L, D});
  Device("x0_prev_b", kFloat, {W, L, D});
  Device("anchors_b", kFloat, shapes.at("anchors"));
  Device("step_b", kInt64, {1});
  Device("x0_pair", kFloat, {B, L, D});
  Device("cache", kFloat, {B, L, c.cache_dim});
  // Where a run's carry goes when nobody collects it.
  Device("carry_x0_next", kFloat, {1, L, D});
  Device("carry_anchors_next", kDouble, {1, 2, shapes.at("carry_anchors")[2]});
  if (!x_host_ || x_host_->shape() != std::vector<int64_t>{W, L, D}) {
    x_host_ = std::make_unique<HostTensor>(kFloat, std::vector<int64_t>{W, L, D});
    ++allocations_;
  }
  // Constants of the shape: cond_mask rows (conditional half first), the window before each
  // window (index 0: the carry, then the windows), the heads the window handover blends
  // (window 0's is set per generation: it blends only with a carry) and zeros to broadcast t
  // over the batch.
  auto* cond = static_cast<float*>(host_.at("cond")->data());
  for (int64_t r = 0; r < B; ++r) cond[r] = r < W ? 1.0f : 0.0f;
  auto* prev = static_cast<int64_t*>(host_.at("prev_window")->data());
  for (int64_t w = 0; w < W; ++w) prev[w] = w;
  auto* head = static_cast<bool*>(host_.at("head")->data());
  for (int64_t w = 0; w < W; ++w) {
    for (int64_t f = 0; f < L; ++f) head[w * L + f] = w > 0 && f < L - c.hop;
  }
  HostTensor& zeros = *host_.at("batch_zeros");
  std::memset(zeros.data(), 0, zeros.bytes());
  shape_ = shape;
  try {
    Bind();
  } catch (...) {
    shape_ = Shape{-1, -1, -1, -1, -1};
    throw;
  }
}

void Loop::Bind() {
  const ModelConfig& c = model_->config();
  upload_ = std::make_unique<Ort::IoBinding>(model_->upload().session());
  for (const auto& info : model_->upload().inputs()) {
    upload_->BindOutput(("to_" + info.name).c_str(), Bound(info.name));
  }
  condition_ = std::make_unique<Ort::IoBinding>(model_->condition().session());
  condition_->BindInput("music", Bound("music"));
  condition_->BindInput("text_emb", Bound("text"));
  condition_->BindInput("cond_mask", Bound("cond"));
  condition_->BindOutput("cond_cache", Bound("cache"));
  // The denoiser over the given tensors (by buffer name): the whole batch, or views of it.
  auto bind_denoiser = [&](const std::function<Ort::Value&(const char*)>& tensor) {
    auto d = std::make_unique<Ort::IoBinding>(model_->denoiser().session());
    d->BindInput("x_t", tensor("x_in"));
    d->BindInput("t", tensor("t"));
    d->BindInput("text_emb", tensor("text"));
    d->BindInput("cond_mask", tensor("cond"));
    d->BindInput("cond_cache", tensor("cache"));
    d->BindOutput("x0", tensor("x0_pair"));
    return d;
  };
  denoiser_ = bind_denoiser([&](const char* name) -> Ort::Value& { return Bound(name); });
  denoiser_cond_.reset();
  cond_views_.clear();
  if (!device_allocator_) {  // host memory: views and the zeroed half need no device API
    const int64_t W = shape_[0];
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    cond_views_.reserve(6);  // the bindings keep their own references; no reallocation anyway
    auto half = [&](const char* name) -> Ort::Value& {
      Ort::Value& whole = Bound(name);
      auto info = whole.GetTensorTypeAndShapeInfo();
      std::vector<int64_t> dims = info.GetShape();  // (2W, ...): the conditional rows first
      const size_t bytes = info.GetElementCount() / 2 * ElementSize(info.GetElementType());
      dims[0] = W;
      cond_views_.push_back(Ort::Value::CreateTensor(cpu, whole.GetTensorMutableRawData(), bytes,
                                                     dims.data(), dims.size(),
                                                     info.GetElementType()));
      return cond_views_.back();
    };
    denoiser_cond_ = bind_denoiser(half);
  }
  // Update p reads side p and writes side 1 - p (A = "x", B = "x_b"); the last step writes x
  // to the host.
  const bool anchored = !c.anchor_dims.empty();
  const std::string side[2][4] = {{"x", "anchors", "step", "x0_prev"},
                                  {"x_b", "anchors_b", "step_b", "x0_prev_b"}};
  auto bind_sampler = [&](int p, bool last) {
    auto u = std::make_unique<Ort::IoBinding>(model_->sampler().session());
    u->BindInput("x", Bound(side[p][0]));
    u->BindInput("x0_pair", Bound("x0_pair"));
    u->BindInput("x0_prev", Bound(side[p][3]));
    if (anchored) u->BindInput("anchors", Bound(side[p][1]));
    u->BindInput("step", Bound(side[p][2]));
    for (const char* name : {"table", "slab_index", "z", "zq", "known", "mask", "prev_window",
                             "head", "batch_zeros", "carried", "carry_x0"}) {
      u->BindInput(name, Bound(name));
    }
    if (anchored) u->BindInput("carry_anchors", Bound("carry_anchors"));
    BindCarry(*u, nullptr);
    u->BindOutput("x_next", last ? x_host_->value() : Bound(side[1 - p][0]));
    u->BindOutput("x0_next", Bound(side[1 - p][3]));
    if (anchored) u->BindOutput("anchors_next", Bound(side[1 - p][1]));
    u->BindOutput("step_next", Bound(side[1 - p][2]));
    u->BindOutput("x_in_next", Bound("x_in"));
    u->BindOutput("t_next", Bound("t"));
    return u;
  };
  sampler_[0] = bind_sampler(0, false);
  sampler_[1] = bind_sampler(1, false);
  last_ = bind_sampler(int((shape_[1] - 1) % 2), true);
}

bool Loop::GuidanceIsOne() const {
  const HostTensor& table = *host_.at("table");
  const auto* rows = static_cast<const float*>(table.data());
  const int64_t columns = table.shape()[1], g = model_->column("guidance");
  for (int64_t r = 0; r < table.shape()[0]; ++r) {
    if (rows[r * columns + g] != 1.0f) return false;
  }
  return true;
}

void Loop::RunBinding(Ort::IoBinding& binding, OrtModel& model) {
  try {
    model.session().Run(options_, binding);
  } catch (const Ort::Exception& e) {
    throw Error("ONNX Runtime failed running '" + model.model_path() + "' (" +
                std::to_string(shape_[0]) + " windows, " + std::to_string(shape_[1]) +
                " steps): " + e.what());
  }
}

// The carry outputs of one sampler run: into this step's host views (see Run) or, when nobody
// collects them, into the device scratch.
void Loop::BindCarry(Ort::IoBinding& binding, const CarryViews* views) {
  const bool anchored = !model_->config().anchor_dims.empty();
  if (views == nullptr) {
    binding.BindOutput("carry_x0_next", Bound("carry_x0_next"));
    if (anchored) binding.BindOutput("carry_anchors_next", Bound("carry_anchors_next"));
    return;
  }
  binding.BindOutput("carry_x0_next", views->x0);
  if (anchored) binding.BindOutput("carry_anchors_next", views->anchors);
}

void Loop::Run(const std::function<bool(int64_t, int64_t)>& progress, float* x_out,
               float* carry_x0_out, double* carry_anchors_out) {
  if (shape_[0] < 0) throw Error("Loop::Run before Reserve");
  const int64_t steps = shape_[1];
  const ModelConfig& c = model_->config();
  const int64_t K = int64_t(c.anchor_dims.size());
  // Host views of each step's row of the collected carry (the provider copies into them).
  std::vector<CarryViews> views;
  if (carry_x0_out != nullptr) {
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    const std::array<int64_t, 3> x_shape{1, c.window, c.dim};
    const std::array<int64_t, 3> a_shape{1, 2, std::max<int64_t>(K, 1)};
    const size_t x_count = size_t(c.window * c.dim);
    for (int64_t s = 0; s < steps; ++s) {
      CarryViews v;
      v.x0 = Ort::Value::CreateTensor<float>(cpu, carry_x0_out + size_t(s) * x_count, x_count,
                                             x_shape.data(), x_shape.size());
      if (K > 0) {
        v.anchors = Ort::Value::CreateTensor<double>(cpu, carry_anchors_out + size_t(s * 2 * K),
                                                     size_t(2 * K), a_shape.data(),
                                                     a_shape.size());
      }
      views.push_back(std::move(v));
    }
  }
  // Host inputs are bound anew each generation: a GPU provider copies them when bound.
  for (const auto& info : model_->upload().inputs()) {
    upload_->BindInput(info.name.c_str(), host_.at(info.name)->value());
  }
  RunBinding(*upload_, model_->upload());
  RunBinding(*condition_, model_->condition());
  const bool cond_only = denoiser_cond_ && GuidanceIsOne();
  if (cond_only) {  // the unconditional half, never written: 0, so the step's x0 is cond's
    Ort::Value& pair = Bound("x0_pair");
    const size_t half = pair.GetTensorTypeAndShapeInfo().GetElementCount() / 2 * sizeof(float);
    std::memset(static_cast<char*>(pair.GetTensorMutableRawData()) + half, 0, half);
  }
  Ort::IoBinding& denoiser = cond_only ? *denoiser_cond_ : *denoiser_;
  for (int64_t s = 0; s < steps; ++s) {
    RunBinding(denoiser, model_->denoiser());
    Ort::IoBinding& step = s + 1 == steps ? *last_ : *sampler_[s % 2];
    if (!views.empty()) BindCarry(step, &views[size_t(s)]);
    RunBinding(step, model_->sampler());
    if (s + 1 == steps) step.SynchronizeOutputs();
    // The callback's own exception propagates as it is; false cancels.
    if (progress && !progress(s + 1, steps)) {
      throw Error("generation cancelled after step " + std::to_string(s + 1) + " of " +
                  std::to_string(steps));
    }
  }
  if (!views.empty()) {  // the next generation binds the scratch again
    for (auto* b : {sampler_[0].get(), sampler_[1].get(), last_.get()}) BindCarry(*b, nullptr);
  }
  std::memcpy(x_out, x_host_->data(), x_host_->bytes());
}

}  // namespace gcdance

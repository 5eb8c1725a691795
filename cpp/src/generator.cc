#include "gcdance/generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "gcdance/runtime.h"

namespace gcdance {
namespace {

std::string Num(int64_t v) { return std::to_string(v); }

// Rejects NaN/inf in a (rows, cols) array, naming the first offending row and column.
void RequireFinite(const float* data, int64_t rows, int64_t cols, const std::string& what,
                   const char* row_name) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(data[i])) {
      throw InputError(what + " contain NaN or inf (first at " + row_name + " " +
                       std::to_string(i / cols) + ", column " + std::to_string(i % cols) + ")");
    }
  }
}

// A graph's input or output `name` must exist with this rank, last dimension (> 0: fixed) and
// element type: the bundle's graphs are the engine's contract.
void Expect(const OrtModel& model, bool input, const std::string& name, size_t rank,
            int64_t last, ONNXTensorElementDataType type) {
  const auto& infos = input ? model.inputs() : model.outputs();
  const TensorInfo& info = infos[input ? model.input_index(name) : model.output_index(name)];
  const bool shape_ok = info.shape.size() == rank &&
                        (last <= 0 || info.shape.back() < 0 || info.shape.back() == last);
  if (!shape_ok || info.type != type) {
    throw Error("graph '" + model.model_path() + "' " + (input ? "input" : "output") + " '" +
                name + "' is " + TypeName(info.type) + " " + ShapeString(info.shape) +
                "; the engine needs " + TypeName(type) + " of rank " + Num(int64_t(rank)) +
                (last > 0 ? " with last dimension " + Num(last) : std::string()) +
                " (re-export the bundle with this gcdance)");
  }
}

// The names of a graph's inputs (or outputs) must be exactly `names`.
void ExpectNames(const OrtModel& model, bool input, std::set<std::string> names) {
  std::set<std::string> got;
  for (const auto& info : input ? model.inputs() : model.outputs()) got.insert(info.name);
  if (got != names) {
    std::string want, have;
    for (const auto& n : names) want += (want.empty() ? "" : ", ") + n;
    for (const auto& n : got) have += (have.empty() ? "" : ", ") + n;
    throw Error("graph '" + model.model_path() + "' has " + (input ? "inputs" : "outputs") +
                " {" + have + "}; the engine needs {" + want + "} (re-export the bundle with "
                "this gcdance)");
  }
}

// Music windows (reflect-padded past the song) into rows 0..W-1 of `out` (2W, L, music_dim),
// repeated in rows W..2W-1 for the unconditional half of the batch.
void FillMusic(const float* music, int64_t frames, int64_t W, const ModelConfig& c, float* out) {
  const size_t md = size_t(c.music_dim), L = size_t(c.window);
  for (int64_t w = 0; w < W; ++w) {
    for (size_t f = 0; f < L; ++f) {
      const int64_t src = ReflectIndex(w * c.hop + int64_t(f), frames);
      std::memcpy(out + (size_t(w) * L + f) * md, music + size_t(src) * md, md * sizeof(float));
    }
  }
  std::memcpy(out + size_t(W) * L * md, out, size_t(W) * L * md * sizeof(float));
}

}  // namespace

uint64_t StreamSeed(uint64_t seed, uint64_t block) {
  // SplitMix64's finalizer over seed + golden ratio x (block + 1): distinct, decorrelated
  // seeds for neighbouring blocks and seeds.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (block + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void NormalNoise::Fill(float* out, size_t n) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double kScale = 1.0 / 9007199254740992.0;  // 2^-53
  for (size_t i = 0; i < n; ++i) {
    if (has_spare_) {
      out[i] = static_cast<float>(spare_);
      has_spare_ = false;
      continue;
    }
    const double u1 = 1.0 - static_cast<double>(engine_() >> 11) * kScale;  // (0, 1]
    const double u2 = static_cast<double>(engine_() >> 11) * kScale;        // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    spare_ = r * std::sin(kTwoPi * u2);
    has_spare_ = true;
  }
}

Model::Model(ModelConfig config, const SessionConfig& session) : config_(std::move(config)) {
  const ModelConfig& c = config_;
  // Memory-safety guards only: the sampling rules are the bundle loader's
  // (gcdance.sampling.stitching.check_windows).
  if (c.dim < 1 || c.music_dim < 1 || c.text_dim < 1 || c.cache_dim < 1) {
    throw InputError("model config needs positive dim, music_dim, text_dim and cache_dim; got " +
                     Num(c.dim) + ", " + Num(c.music_dim) + ", " + Num(c.text_dim) + ", " +
                     Num(c.cache_dim));
  }
  PlanWindows(c.window, c.window, c.hop);  // window >= 1, 1 <= hop <= window
  if (c.anchor_dims.size() != c.anchor_zero.size()) {
    throw InputError("anchor_dims and anchor_zero differ in length");
  }
  for (const int64_t d : c.anchor_dims) {
    if (d < 0 || d >= c.dim) throw InputError("anchor dim " + Num(d) + " is outside the motion");
  }
  if (int64_t(c.norm_center.size()) != c.dim || int64_t(c.norm_half_range.size()) != c.dim) {
    throw InputError("normalizer center/half_range must have " + Num(c.dim) + " values");
  }
  if (c.rot_start < 0 || c.num_joints < 0 || c.rot_start + 6 * c.num_joints > c.dim) {
    throw InputError("rotation blocks exceed the motion's " + Num(c.dim) + " dims");
  }
  for (const char* name : {"timestep", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar", "sigma"}) {
    column(name);
  }

  denoiser_ = std::make_shared<OrtModel>(c.denoiser_path, session);
  // The graphs around the denoiser run once per generation or are light elementwise work: on
  // the denoiser's device (TensorRT: the CUDA provider). CPU fallback stays allowed: the CUDA
  // provider itself places shape arithmetic on the CPU, and with fallback disabled ONNX Runtime
  // refuses the session for that (seen on an H200 with onnxruntime-gpu 1.31). The price: an op
  // the CUDA provider lacks would also run on the CPU, with copies, instead of failing.
  SessionConfig light = session;
  light.provider = denoiser_->provider();  // lower-cased and checked
  if (light.provider == "tensorrt") light.provider = "cuda";
  light.cpu_arena = false;  // their intermediates go back to the system after each run
  condition_ = std::make_shared<OrtModel>(c.condition_path, light);
  if (light.provider == "cpu") {
    // A thread pool of its own would only compete with the denoiser's (spinning threads on a
    // shared core cost a third of a step).
    light.intra_op_threads = 1;
    light.allow_spinning = false;
  }
  sampler_ = std::make_shared<OrtModel>(c.sampler_path, light);
  upload_ = std::make_shared<OrtModel>(c.upload_path, light);
  CheckGraphs();
}

int64_t Model::column(const std::string& name) const {
  const auto& cols = config_.schedule_columns;
  const auto it = std::find(cols.begin(), cols.end(), name);
  if (it == cols.end()) {
    throw InputError("the schedule table has no column '" + name + "' (gcdance.sampling.schedule)");
  }
  return int64_t(it - cols.begin());
}

void Model::CheckGraphs() const {
  const ModelConfig& c = config_;
  constexpr auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  ExpectNames(*condition_, true, {"music", "text_emb", "cond_mask"});
  ExpectNames(*condition_, false, {"cond_cache"});
  Expect(*condition_, true, "music", 3, c.music_dim, f32);
  Expect(*condition_, true, "text_emb", 2, c.text_dim, f32);
  Expect(*condition_, true, "cond_mask", 1, 0, f32);
  Expect(*condition_, false, "cond_cache", 3, c.cache_dim, f32);
  ExpectNames(*denoiser_, true, {"x_t", "t", "text_emb", "cond_mask", "cond_cache"});
  ExpectNames(*denoiser_, false, {"x0"});
  Expect(*denoiser_, true, "x_t", 3, c.dim, f32);
  Expect(*denoiser_, true, "t", 1, 0, f32);
  Expect(*denoiser_, true, "text_emb", 2, c.text_dim, f32);
  Expect(*denoiser_, true, "cond_mask", 1, 0, f32);
  Expect(*denoiser_, true, "cond_cache", 3, c.cache_dim, f32);
  Expect(*denoiser_, false, "x0", 3, c.dim, f32);
  const bool anchored = !c.anchor_dims.empty();
  std::set<std::string> in = {"x",       "x0_pair",     "x0_prev", "step",    "table",
                              "slab_index", "z",         "zq",      "known",   "mask",
                              "prev_window", "head",     "batch_zeros", "carried", "carry_x0"};
  std::set<std::string> out = {"x_next",   "x0_next", "step_next", "x_in_next", "t_next",
                               "carry_x0_next"};
  if (anchored) {
    in.insert({"anchors", "carry_anchors"});
    out.insert({"anchors_next", "carry_anchors_next"});
  }
  ExpectNames(*sampler_, true, in);
  ExpectNames(*sampler_, false, out);
  Expect(*sampler_, true, "x", 3, c.dim, f32);
  // The window plan is baked into the sampler step: its window length must be this one.
  const auto& x_shape = sampler_->inputs()[sampler_->input_index("x")].shape;
  if (x_shape[1] != c.window) {
    throw Error("graph '" + sampler_->model_path() + "' was built for windows of " +
                Num(x_shape[1]) + " frames, the model's are " + Num(c.window) +
                " (re-export the bundle with this gcdance)");
  }
  Expect(*sampler_, true, "table", 2, int64_t(c.schedule_columns.size()), f32);
  if (anchored) {
    Expect(*sampler_, true, "anchors", 2, int64_t(c.anchor_dims.size()), f32);
  }
  // The upload graph: the engine writes each of these host buffers as this type and rank, so a
  // graph that declares another would make it write past them.
  constexpr auto i64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  constexpr auto b8 = ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
  constexpr auto f64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE;
  const std::map<std::string, std::pair<ONNXTensorElementDataType, size_t>> uploads = {
      {"x", {f32, 3}},     {"x0_prev", {f32, 3}}, {"anchors", {f32, 2}}, {"step", {i64, 1}},
      {"x_in", {f32, 3}},  {"t", {f32, 1}},       {"music", {f32, 3}},   {"text", {f32, 2}},
      {"cond", {f32, 1}},  {"known", {f32, 3}},   {"mask", {b8, 3}},     {"z", {f32, 4}},
      {"zq", {f32, 4}},    {"table", {f32, 2}},   {"slab_index", {i64, 2}},
      {"prev_window", {i64, 1}}, {"head", {b8, 3}}, {"batch_zeros", {f32, 1}},
      {"carried", {b8, 1}}, {"carry_x0", {f32, 3}}, {"carry_anchors", {f64, 3}}};
  std::set<std::string> names, to;
  for (const auto& [name, spec] : uploads) {
    names.insert(name);
    to.insert("to_" + name);
  }
  ExpectNames(*upload_, true, names);
  ExpectNames(*upload_, false, to);
  for (const auto& [name, spec] : uploads) {
    Expect(*upload_, true, name, spec.second, 0, spec.first);
    Expect(*upload_, false, "to_" + name, spec.second, 0, spec.first);
  }
  // The sampler step reads the same buffers: the same types and ranks.
  for (const auto& info : sampler_->inputs()) {
    const auto it = uploads.find(info.name);
    if (it != uploads.end()) Expect(*sampler_, true, info.name, it->second.second, 0,
                                    it->second.first);
  }
}

Generator::Generator(std::shared_ptr<Model> model) : model_(std::move(model)), loop_(model_) {}

WindowPlan Generator::Plan(int64_t frames) const {
  const ModelConfig& c = model_->config();
  return PlanWindows(frames, c.window, c.hop);
}

void Generator::Reserve(int64_t num_windows) {
  if (num_windows == num_windows_) return;
  num_windows_ = -1;  // set again only once every buffer matches
  const ModelConfig& c = model_->config();
  const size_t n = size_t(num_windows * c.window * c.dim);
  auto size = [&](auto* v, size_t count) {
    if (v->capacity() < count) ++allocations_;
    v->assign(count, 0);
  };
  size(&x_, n);
  size(&known_, n);
  size(&mask_, n);
  anchors_.assign(size_t(num_windows) * c.anchor_dims.size(), 0.0f);
  num_windows_ = num_windows;
}

// Reference step 4 before the first step: each window's start on the anchor dims, chained over
// windows, from the normalized zero (known values where the mask keeps them).
void Generator::InitialAnchors(bool masked) {
  const ModelConfig& c = model_->config();
  const int64_t W = num_windows_, L = c.window, D = c.dim;
  const size_t K = c.anchor_dims.size();
  auto r = [&](int64_t w, int64_t f, size_t k) {
    const size_t i = size_t((w * L + f) * D + c.anchor_dims[k]);
    return masked && mask_[i] ? known_[i] : c.anchor_zero[k];
  };
  for (size_t k = 0; k < K; ++k) {
    const float first = r(0, 0, k) - c.anchor_zero[k];
    anchors_[k] = first;
    double cumulative = 0.0;  // the sampler step accumulates in double, as torch's CPU cumsum
    for (int64_t w = 0; w + 1 < W; ++w) {
      cumulative += r(w, c.hop, k) - r(w, 0, k);
      anchors_[size_t(w + 1) * K + k] = first + static_cast<float>(cumulative);
    }
  }
}

void Generator::Upload(const GenerateRequest& req, bool masked) {
  const Model& m = *model_;
  const ModelConfig& c = m.config();
  const int64_t W = num_windows_, L = c.window, D = c.dim, S = req.steps;
  const int64_t C = int64_t(c.schedule_columns.size());
  const size_t n = x_.size(), K = c.anchor_dims.size();
  const bool injected = req.x_T != nullptr;
  const int64_t col_sigma = m.column("sigma"), col_t = m.column("timestep"),
                col_sab = m.column("sqrt_alpha_bar");
  auto sigma = [&](int64_t s) { return req.schedule[s * C + col_sigma]; };
  // Noise slabs: 0 is zeros; injected noise has one per step, seeded noise one per step that
  // draws it (sigma != 0), so that one seed gives one dance whatever the slab layout.
  int64_t z_slabs = 1;
  for (int64_t s = 0; s < S; ++s) z_slabs += injected || sigma(s) != 0.0f;
  const bool carried = req.carry_x0 != nullptr;
  loop_.Reserve(W, S, z_slabs, masked ? S + 1 : 1, carried ? S : 1);
  auto f32 = [&](const char* name) { return static_cast<float*>(loop_.host(name).data()); };
  auto i64 = [&](const char* name) { return static_cast<int64_t*>(loop_.host(name).data()); };

  FillMusic(req.music, req.frames, W, c, f32("music"));
  // Row r of the batch of two is window r % W: its own C_E when the request has one per window.
  float* text = f32("text");
  for (int64_t r = 0; r < 2 * W; ++r) {
    const float* row = req.text + (req.text_rows == 1 ? 0 : (r % W) * c.text_dim);
    std::memcpy(text + r * c.text_dim, row, size_t(c.text_dim) * sizeof(float));
  }
  bool* mask = static_cast<bool*>(loop_.host("mask").data());
  for (size_t i = 0; i < n; ++i) mask[i] = masked && mask_[i] != 0;
  std::memcpy(f32("known"), known_.data(), n * sizeof(float));
  float* table = f32("table");  // the last row repeated: step S - 1 reads "the next step" too
  std::memcpy(table, req.schedule, size_t(S * C) * sizeof(float));
  std::memcpy(table + S * C, req.schedule + (S - 1) * C, size_t(C) * sizeof(float));

  // The carry: window 0 blends its overlap with it (its head) and reads row s at step s.
  static_cast<bool*>(loop_.host("carried").data())[0] = carried;
  bool* head = static_cast<bool*>(loop_.host("head").data());
  for (int64_t f = 0; f < L; ++f) head[f] = carried && f < L - c.hop;
  const size_t carry_x0_n = size_t(L * D), carry_rows = carried ? size_t(S) : 1;
  if (carried) {
    std::memcpy(f32("carry_x0"), req.carry_x0, carry_rows * carry_x0_n * sizeof(float));
    if (K > 0) {
      std::memcpy(loop_.host("carry_anchors").data(), req.carry_anchors,
                  carry_rows * 2 * K * sizeof(double));
    }
  } else {
    std::memset(f32("carry_x0"), 0, loop_.host("carry_x0").bytes());
    std::memset(loop_.host("carry_anchors").data(), 0, loop_.host("carry_anchors").bytes());
  }

  float* z = f32("z");
  float* zq = f32("zq");
  int64_t* index = i64("slab_index");
  std::memset(z, 0, n * sizeof(float));
  std::memset(zq, 0, n * sizeof(float));
  std::fill(index, index + 3 * (S + 1), int64_t(0));
  int64_t next_z = 1;
  for (int64_t s = 0; s < S; ++s) {
    if (injected || sigma(s) != 0.0f) index[3 * s] = next_z++;
    if (masked) index[3 * s + 1] = s + 1;
    if (carried) index[3 * s + 2] = s;
  }
  const size_t per_window = size_t(L * D);
  if (injected) {
    std::memcpy(x_.data(), req.x_T, n * sizeof(float));
    for (int64_t s = 0; s < S; ++s) {
      if (index[3 * s] > 0) {
        std::memcpy(z + size_t(index[3 * s]) * n, req.z + size_t(s) * n, n * sizeof(float));
      }
      if (masked) std::memcpy(zq + size_t(s + 1) * n, req.zq + size_t(s) * n, n * sizeof(float));
    }
  } else {
    // One stream per hop-long block of the song (its x_T, then its z and zq step by step);
    // window w reads blocks w, w + 1, ..., so the frames two windows share get the same noise
    // in both. Their noisy states then differ only by what their predictions did; with a
    // stream per window the handover averaged two independent draws' motions on every overlap
    // (a pulse every hop, docs/seams.md).
    const int64_t H = c.hop, span = (L + H - 1) / H;  // blocks a window touches
    const size_t per_block = size_t(H * D);
    if (draw_.capacity() < per_block) ++allocations_;
    draw_.resize(per_block);
    // A block's draw into every window that covers it (window w holds block w + i at i * H).
    auto place = [&](int64_t b, float* slab) {
      for (int64_t i = 0; i < span; ++i) {
        const int64_t w = b - i, rows = std::min(H, L - i * H);
        if (w < 0 || w >= W) continue;
        std::memcpy(slab + size_t(w) * per_window + size_t(i * H * D), draw_.data(),
                    size_t(rows * D) * sizeof(float));
      }
    };
    for (int64_t b = 0; b < W + span - 1; ++b) {
      NormalNoise rng(StreamSeed(req.seed, uint64_t(req.first_window + b)));
      rng.Fill(draw_.data(), per_block);
      place(b, x_.data());
      for (int64_t s = 0; s < S; ++s) {
        if (index[3 * s] > 0) {
          rng.Fill(draw_.data(), per_block);
          place(b, z + size_t(index[3 * s]) * n);
        }
        if (masked) {
          rng.Fill(draw_.data(), per_block);
          place(b, zq + size_t(s + 1) * n);
        }
      }
    }
  }

  std::memcpy(f32("x"), x_.data(), n * sizeof(float));
  std::memset(f32("x0_prev"), 0, n * sizeof(float));  // no previous x0 before the first step
  std::memset(f32("anchors"), 0, loop_.host("anchors").bytes());
  if (K > 0) {
    InitialAnchors(masked);
    std::memcpy(f32("anchors"), anchors_.data(), anchors_.size() * sizeof(float));
  }
  i64("step")[0] = 0;
  // Step 0's network input: x with the window starts removed on the anchor dims, twice.
  float* x_in = f32("x_in");
  std::memcpy(x_in, x_.data(), n * sizeof(float));
  const float sab = req.schedule[col_sab];
  for (int64_t w = 0; w < W; ++w) {
    for (size_t k = 0; k < K; ++k) {
      const float shift = sab * anchors_[size_t(w) * K + k];
      float* p = x_in + size_t(w * L * D + c.anchor_dims[k]);
      for (int64_t f = 0; f < L; ++f) p[f * D] = p[f * D] - shift;
    }
  }
  std::memcpy(x_in + n, x_in, n * sizeof(float));
  std::fill(f32("t"), f32("t") + 2 * W, req.schedule[col_t]);
}

void Generator::Generate(const GenerateRequest& req, std::vector<float>* windows,
                         std::vector<float>* motion) {
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (!busy.owns_lock()) {
    throw InputError("this Generator is generating in another thread; create one Generator per "
                     "thread (they may share the Model)");
  }
  const ModelConfig& c = model_->config();
  const int64_t C = int64_t(c.schedule_columns.size());
  if (req.music == nullptr || req.text == nullptr || req.schedule == nullptr) {
    throw InputError("generate needs music features, a text embedding and a schedule table");
  }
  if (req.frames < 1) throw InputError("music has no frames; give at least one frame of features");
  if (req.steps < 1) throw InputError("the schedule table has no steps");
  if ((req.known == nullptr) != (req.mask == nullptr)) {
    throw InputError("inpainting needs both known motion and a mask (or neither)");
  }
  const bool masked = req.mask != nullptr;
  if (req.first_window < 0) {
    throw InputError("first_window must be >= 0, got " + Num(req.first_window));
  }
  const bool anchored = !c.anchor_dims.empty();
  if (req.carry_x0 != nullptr) {
    if (masked) throw InputError("a carry (streaming) cannot be combined with inpainting");
    if (req.first_window < 1) {
      throw InputError("a carry continues window first_window - 1: first_window must be >= 1");
    }
    if (anchored && req.carry_anchors == nullptr) {
      throw InputError("this model anchors the root: the carry needs its anchors too");
    }
  }
  if (req.carry_x0_out != nullptr && anchored && req.carry_anchors_out == nullptr) {
    throw InputError("this model anchors the root: collect the carry's anchors with its x0");
  }
  if ((req.x_T != nullptr && (req.z == nullptr || (masked && req.zq == nullptr))) ||
      (req.x_T == nullptr && (req.z != nullptr || req.zq != nullptr))) {
    throw InputError("injected noise needs x_T, z and (with a mask) zq together");
  }
  RequireFinite(req.music, req.frames, c.music_dim, "music features", "frame");
  RequireFinite(req.text, req.text_rows, c.text_dim, "the text embedding's values", "row");
  RequireFinite(req.schedule, req.steps, C, "the schedule table's rows", "step");
  const int64_t col = model_->column("sqrt_one_minus_alpha_bar");
  for (int64_t s = 0; s < req.steps; ++s) {
    const float v = req.schedule[s * C + col];
    if (!(v > 0.0f)) {
      throw InputError("schedule row " + Num(s) + " has sqrt(1 - alpha_bar) = " +
                       std::to_string(v) + "; it must be > 0");
    }
  }
  const WindowPlan plan = Plan(req.frames);
  const int64_t W = plan.num_windows(), L = c.window, D = c.dim, F = req.frames;
  if (req.text_rows != 1 && req.text_rows != W) {
    throw InputError("the text embeddings have " + Num(req.text_rows) + " rows; give one, or one "
                     "per window (" + Num(W) + " for " + Num(F) + " frames)");
  }
  Reserve(W);

  // Known motion and mask, zero-padded ("unknown") past the end.
  std::fill(known_.begin(), known_.end(), 0.0f);
  std::fill(mask_.begin(), mask_.end(), uint8_t(0));
  if (masked) {
    for (int64_t w = 0; w < W; ++w) {
      for (int64_t f = 0; f < L; ++f) {
        const int64_t p = w * c.hop + f;
        const size_t dst = size_t((w * L + f) * D);
        for (int64_t d = 0; d < D && p < F; ++d) {
          const bool keep = req.mask[size_t(p * D + d)] != 0;
          if (!keep) continue;
          const float v = req.known[size_t(p * D + d)];
          if (!std::isfinite(v)) {
            throw InputError("the known motion has NaN or inf at frame " + Num(p) + ", dim " +
                             Num(d) + " where the mask keeps it");
          }
          mask_[dst + size_t(d)] = 1;
          known_[dst + size_t(d)] = v;
        }
      }
    }
  }
  Upload(req, masked);
  loop_.Run(req.progress, x_.data(), req.carry_x0_out, req.carry_anchors_out);
  if (windows != nullptr) windows->assign(x_.begin(), x_.end());
  if (motion == nullptr) return;
  if (stitch_.capacity() < size_t(plan.padded_frames() * D)) ++allocations_;
  StitchWindows(x_.data(), c.norm_half_range.data(), c.norm_center.data(), plan, D, c.rot_start,
                c.num_joints, true, &stitch_);
  motion->resize(size_t(F * D));
  for (size_t i = 0; i < size_t(F * D); ++i) {
    const size_t d = i % size_t(D);
    (*motion)[i] = static_cast<float>((stitch_[i] - c.norm_center[d]) / c.norm_half_range[d]);
  }
}

}  // namespace gcdance

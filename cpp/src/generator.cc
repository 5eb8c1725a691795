#include "gcdance/generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// Writes `value` into element `i` of a tensor of any numeric element type.
void SetScalar(HostTensor& t, size_t i, double value) {
  void* p = t.data();
  switch (t.type()) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: static_cast<float*>(p)[i] = float(value); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: static_cast<double*>(p)[i] = value; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: static_cast<int64_t*>(p)[i] = int64_t(value); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: static_cast<int32_t*>(p)[i] = int32_t(value); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: static_cast<bool*>(p)[i] = value != 0.0; break;
    default:
      throw Error("unsupported element type " + TypeName(t.type()) +
                  " for a denoiser timestep or condition-mask input");
  }
}

void CheckInput(const TensorInfo& info, size_t rank, int64_t last, const std::string& role) {
  if (info.shape.size() != rank ||
      (last > 0 && info.shape.back() >= 0 && info.shape.back() != last)) {
    throw Error("denoiser input '" + info.name + "' (" + role + ") has shape " +
                ShapeString(info.shape) + "; the manifest implies rank " + std::to_string(rank) +
                (last > 0 ? " with last dimension " + Num(last) : std::string()));
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

// `rows` copies of one row of `cols` floats.
void FillRows(const float* row, int64_t cols, int64_t rows, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(out + size_t(r * cols), row, size_t(cols) * sizeof(float));
  }
}

}  // namespace

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

Model::Model(const std::string& onnx_path, ModelConfig config, const SessionConfig& session)
    : config_(std::move(config)) {
  const ModelConfig& c = config_;
  if (c.dim < 1 || c.music_dim < 1 || c.text_dim < 1) {
    throw InputError("model config needs positive dim, music_dim and text_dim; got dim=" +
                     Num(c.dim) + ", music_dim=" + Num(c.music_dim) +
                     ", text_dim=" + Num(c.text_dim));
  }
  PlanWindows(c.window, c.window, c.hop);  // validates window and hop
  if (c.anchor_dims.size() != c.anchor_zero.size()) {
    throw InputError("anchor_dims and anchor_zero differ in length (" +
                     Num(int64_t(c.anchor_dims.size())) + " vs " +
                     Num(int64_t(c.anchor_zero.size())) + ")");
  }
  for (size_t i = 0; i < c.anchor_dims.size(); ++i) {
    const int64_t d = c.anchor_dims[i];
    if (d < 0 || d >= c.dim) {
      throw InputError("anchor dim " + Num(d) + " is outside the motion's dims 0.." +
                       Num(c.dim - 1));
    }
    if (std::count(c.anchor_dims.begin(), c.anchor_dims.end(), d) > 1) {
      throw InputError("anchor dim " + Num(d) + " is listed twice");
    }
  }
  if (int64_t(c.handover.size()) != c.window - c.hop) {
    throw InputError("the handover weights must have window - hop = " + Num(c.window - c.hop) +
                     " values, got " + Num(int64_t(c.handover.size())));
  }
  for (const float beta : c.handover) {
    if (!(beta >= 0.0f && beta <= 1.0f)) {  // also refuses NaN
      throw InputError("handover weights must lie in [0, 1], got " + std::to_string(beta) +
                       " (gcdance.stitching.handover_weights)");
    }
  }
  if (!c.anchor_dims.empty() && c.hop >= c.window) {
    throw InputError("root anchoring chains overlapping windows: hop (" + Num(c.hop) +
                     ") must be smaller than the window (" + Num(c.window) + ")");
  }
  const bool has_norm = !c.norm_center.empty() || !c.norm_half_range.empty();
  if (has_norm) {
    if (int64_t(c.norm_center.size()) != c.dim || int64_t(c.norm_half_range.size()) != c.dim) {
      throw InputError("normalizer center/half_range must have " + Num(c.dim) + " values, got " +
                       Num(int64_t(c.norm_center.size())) + "/" +
                       Num(int64_t(c.norm_half_range.size())));
    }
    for (int64_t d = 0; d < c.dim; ++d) {
      if (!std::isfinite(c.norm_half_range[d]) || c.norm_half_range[d] == 0.0 ||
          !std::isfinite(c.norm_center[d])) {
        throw InputError("normalizer dim " + Num(d) + " is not finite or has zero range");
      }
    }
    if (c.rot_start < 0 || c.num_joints < 0 || c.rot_start + 6 * c.num_joints > c.dim) {
      throw InputError("rotation blocks [" + Num(c.rot_start) + ", " +
                       Num(c.rot_start + 6 * c.num_joints) + ") exceed the motion's " +
                       Num(c.dim) + " dims");
    }
  }
  const bool loop_graphs = !c.update_graph.empty();
  if (loop_graphs != !c.upload_graph.empty()) {
    throw InputError("the device loop needs both its update graph and its upload graph "
                     "(gcdance.update_graph), or neither");
  }
  if (session.cuda_graph && !loop_graphs) {
    throw InputError("CUDA graphs replay the device loop: give the model its update and upload "
                     "graphs (gcdance.Generator(loop='device', cuda_graph=True))");
  }
  try {
    ort_ = std::make_shared<OrtModel>(onnx_path, session);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    if (!session.cuda_graph) throw;
    throw Error(std::string(e.what()) + " (with CUDA graphs every node of the denoiser must run "
                "on the GPU; retry without cuda_graph)");
  }
  SessionConfig once = session;  // sessions run once per generation: never captured, and
  once.cuda_graph = false;        // not worth a TensorRT engine of their own
  if (ort_->provider() == "tensorrt") once.provider = "cuda";
  once.cpu_arena = false;         // its large output must not stay in an arena between runs
  const bool split = !c.condition_path.empty();
  if (split) {
    if (c.cache_dim < 1) {
      throw InputError("split graphs need a positive cache_dim, got " + Num(c.cache_dim));
    }
    condition_ = std::make_shared<OrtModel>(c.condition_path, once);
  }
  ix = ort_->input_index(c.input_x);
  it = ort_->input_index(c.input_t);
  itext = ort_->input_index(c.input_text);
  icond = ort_->input_index(c.input_cond);
  ox0 = ort_->output_index(c.output_x0);
  const auto& in = ort_->inputs();
  const std::string what = split ? "step graph" : "denoiser";
  if (in.size() != 5) {
    throw Error("the " + what + " '" + onnx_path + "' has " + Num(int64_t(in.size())) +
                " inputs; the engine feeds exactly x_t, t, text_emb, cond_mask and " +
                (split ? "cond_cache" : "music"));
  }
  CheckInput(in[ix], 3, c.dim, "noisy motion");
  CheckInput(in[it], 1, 0, "timestep");
  CheckInput(in[itext], 2, c.text_dim, "text embedding");
  CheckInput(in[icond], 1, 0, "condition mask");
  std::vector<size_t> floats = {ix, itext};
  if (split) {
    icache = ort_->input_index(c.input_cache);
    CheckInput(in[icache], 3, c.cache_dim, "condition cache");
    floats.push_back(icache);
    const auto& cin = condition_->inputs();
    if (cin.size() != 3) {
      throw Error("the condition graph '" + c.condition_path + "' has " +
                  Num(int64_t(cin.size())) + " inputs; expected music, text_emb, cond_mask");
    }
    c_music = condition_->input_index(c.input_music);
    c_text = condition_->input_index(c.input_text);
    c_cond = condition_->input_index(c.input_cond);
    c_out = condition_->output_index(c.output_cache);
    CheckInput(cin[c_music], 3, c.music_dim, "music features");
    CheckInput(cin[c_text], 2, c.text_dim, "text embedding");
    CheckInput(cin[c_cond], 1, 0, "condition mask");
    for (size_t i : {c_music, c_text}) {
      if (cin[i].type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        throw Error("condition graph input '" + cin[i].name + "' must be float32");
      }
    }
    if (condition_->outputs()[c_out].type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      throw Error("condition graph output '" + c.output_cache + "' must be float32");
    }
  } else {
    imusic = ort_->input_index(c.input_music);
    CheckInput(in[imusic], 3, c.music_dim, "music features");
    floats.push_back(imusic);
  }
  for (size_t i : floats) {
    if (in[i].type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      throw Error(what + " input '" + in[i].name + "' must be float32, it is " +
                  TypeName(in[i].type));
    }
  }
  if (ort_->outputs()[ox0].type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    throw Error(what + " output '" + c.output_x0 + "' must be float32");
  }
  if (loop_graphs) {
    for (size_t i : {it, icond}) {
      if (in[i].type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        throw Error("the device loop feeds the " + what + "'s '" + in[i].name +
                    "' as float32, but it is " + TypeName(in[i].type) +
                    "; use the host loop (loop='host')");
      }
    }
    // The update and upload graphs run on the CUDA provider beside a TensorRT denoiser, every
    // node on the GPU: a node ONNX Runtime would run on the CPU (and copy for) is an error.
    SessionConfig loop = session;
    if (ort_->provider() == "tensorrt") loop.provider = "cuda";
    if (ort_->provider() != "cpu") loop.session_entries["session.disable_cpu_ep_fallback"] = "1";
    // On the CPU the update is light elementwise work: a thread pool of its own would only
    // compete with the denoiser's (spinning threads on a shared core cost a third of a step).
    // Its intermediates go back to the system after each run instead of growing an arena.
    if (ort_->provider() == "cpu") {
      loop.intra_op_threads = 1;
      loop.allow_spinning = false;
      loop.cpu_arena = false;
    }
    try {
      update_ = std::make_shared<OrtModel>("<update graph>", c.update_graph, loop);
      loop.cuda_graph = false;
      upload_ = std::make_shared<OrtModel>("<upload graph>", c.upload_graph, loop);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (the device loop's graphs must run wholly on the '" +
                  loop.provider + "' provider; use the host loop, loop='host', meanwhile)");
    }
  }
}

Generator::Generator(std::shared_ptr<Model> model, bool device_loop, bool keep_shapes)
    : model_(std::move(model)), binding_(model_->ort()) {
  if (model_->ort()->cuda_graph() && !device_loop) {
    throw InputError("this Model replays CUDA graphs, which only the device loop's fixed "
                     "buffers allow: create the Generator with device_loop=True");
  }
  if (keep_shapes && !device_loop) {
    throw InputError("keep_shapes applies to the device loop's buffer sets: create the "
                     "Generator with device_loop=True");
  }
  if (device_loop) {
    device_ = std::make_unique<DeviceLoop>(model_, keep_shapes);
  } else if (model_->split()) {
    condition_ = std::make_unique<Binding>(model_->condition());
  }
}

WindowPlan Generator::Plan(int64_t frames) const {
  const ModelConfig& c = model_->config();
  return PlanWindows(frames, c.window, c.hop);
}

void Generator::Reserve(int64_t num_windows) {
  if (num_windows == num_windows_) return;
  num_windows_ = -1;  // set again only once every buffer matches
  const ModelConfig& c = model_->config();
  const int64_t W = num_windows, L = c.window, B = 2 * num_windows;
  const size_t n = size_t(W * L * c.dim);
  auto size = [&](auto* v, size_t count) {
    if (v->capacity() < count) ++allocations_;
    v->assign(count, 0);
  };
  size(&x_, n);
  size(&known_, n);
  size(&mask_, n);
  anchors_.assign(size_t(W) * c.anchor_dims.size(), 0.0f);
  if (device_) {  // the DeviceLoop holds the rest
    num_windows_ = num_windows;
    return;
  }
  for (auto* v : {&x0_, &noise_z_, &noise_zq_}) size(v, n);
  std::vector<std::vector<int64_t>> shapes(model_->ort()->inputs().size());
  shapes[model_->ix] = {B, L, c.dim};
  shapes[model_->it] = {B};
  shapes[model_->itext] = {B, c.text_dim};
  shapes[model_->icond] = {B};
  if (model_->split()) {
    shapes[model_->icache] = {B, L, c.cache_dim};
    std::vector<std::vector<int64_t>> cshapes(model_->condition()->inputs().size());
    cshapes[model_->c_music] = {B, L, c.music_dim};
    cshapes[model_->c_text] = {B, c.text_dim};
    cshapes[model_->c_cond] = {B};
    condition_->Prepare(cshapes);
    HostTensor& ccond = condition_->input(model_->c_cond);
    for (int64_t b = 0; b < B; ++b) SetScalar(ccond, size_t(b), b < W ? 1.0 : 0.0);
  } else {
    shapes[model_->imusic] = {B, L, c.music_dim};
  }
  binding_.Prepare(shapes);
  HostTensor& cond = binding_.input(model_->icond);
  for (int64_t b = 0; b < B; ++b) SetScalar(cond, size_t(b), b < W ? 1.0 : 0.0);
  num_windows_ = num_windows;  // W, as the buffers now are
}

// Step 4 of the reference (training.sampler.update_anchors): where each window starts on the
// anchor dims, chained over windows, from g = x0 + previous offset (`x0` (W, L, D) plus `add`
// (W, K)); without `x0`, g equals the normalized zero on the anchor dims (before the first
// step). Known values replace g where the mask keeps them.
void Generator::UpdateAnchors(const float* x0, const float* add, bool masked) {
  const ModelConfig& c = model_->config();
  const int64_t W = num_windows_, L = c.window, D = c.dim;
  const size_t K = c.anchor_dims.size();
  auto r = [&](int64_t w, int64_t f, size_t k) {
    const size_t i = size_t((w * L + f) * D + c.anchor_dims[k]);
    if (masked && mask_[i]) return known_[i];
    return x0 == nullptr ? c.anchor_zero[k] : x0[i] + add[size_t(w) * K + k];
  };
  for (size_t k = 0; k < K; ++k) {
    const float first = r(0, 0, k) - c.anchor_zero[k];
    anchors_[k] = first;
    double cumulative = 0.0;  // torch's CPU cumsum accumulates in double
    for (int64_t w = 0; w + 1 < W; ++w) {
      const float step = r(w, c.hop, k) - r(w, 0, k);
      cumulative += step;
      anchors_[size_t(w + 1) * K + k] = first + static_cast<float>(cumulative);
    }
  }
}

void Generator::NetworkInput(float sab, float* xin) const {
  const ModelConfig& c = model_->config();
  const int64_t W = num_windows_, L = c.window, D = c.dim;
  const size_t K = c.anchor_dims.size(), frame_dims = size_t(L * D);
  std::memcpy(xin, x_.data(), size_t(W) * frame_dims * sizeof(float));
  for (int64_t w = 0; w < W; ++w) {
    for (size_t k = 0; k < K; ++k) {
      const float shift = sab * anchors_[size_t(w) * K + k];
      float* p = xin + size_t(w) * frame_dims + size_t(c.anchor_dims[k]);
      for (int64_t f = 0; f < L; ++f) p[f * D] = p[f * D] - shift;
    }
  }
}

void Generator::Step(const float* coef, const float* z, const float* zq, bool masked) {
  const ModelConfig& c = model_->config();
  const int64_t W = num_windows_, L = c.window, D = c.dim;
  const size_t n = size_t(W * L * D), frame_dims = size_t(L * D);
  const size_t K = c.anchor_dims.size();
  const float sab = coef[kSqrtAlphaBar], s1mab = coef[kSqrtOneMinusAlphaBar];
  const float sab_prev = coef[kSqrtAlphaBarPrev], s1mab_prev = coef[kSqrtOneMinusAlphaBarPrev];
  const float sigma = coef[kSigma], eps_coef = coef[kEpsCoef], guidance = coef[kGuidance];

  // 0. The network's input, twice (conditional and unconditional halves), window-relative.
  float* xin = static_cast<float*>(binding_.input(model_->ix).data());
  NetworkInput(sab, xin);
  std::memcpy(xin + n, xin, n * sizeof(float));
  HostTensor& t = binding_.input(model_->it);
  for (int64_t b = 0; b < 2 * W; ++b) SetScalar(t, size_t(b), coef[kTimestep]);

  // 1. One forward over the batch of two.
  binding_.Run();
  const float* out = static_cast<const float*>(binding_.output(model_->ox0).data());

  // 2-3. Guidance and clamp.
  for (size_t i = 0; i < n; ++i) {
    const float cond = out[i], uncond = out[n + i];
    x0_[i] = std::clamp(uncond + guidance * (cond - uncond), -1.0f, 1.0f);
  }
  // 4. Root anchoring: new offset from g = x0 + previous offset, then x0 += new offset.
  if (K > 0) {
    scratch_.assign(anchors_.begin(), anchors_.end());
    UpdateAnchors(x0_.data(), scratch_.data(), masked);
    for (int64_t w = 0; w < W; ++w) {
      for (size_t k = 0; k < K; ++k) {
        const float a = anchors_[size_t(w) * K + k];
        float* p = x0_.data() + size_t(w) * frame_dims + size_t(c.anchor_dims[k]);
        for (int64_t f = 0; f < L; ++f) p[f * D] = p[f * D] + a;
      }
    }
  }
  // 4b. Window w + 1 takes its prediction of the overlap over from window w's (frames from hop
  // on are never blended themselves, so the order over windows does not matter).
  const int64_t o = L - c.hop;
  for (int64_t w = 0; w + 1 < W; ++w) {
    const float* prev = x0_.data() + size_t(w) * frame_dims + size_t(c.hop * D);
    float* own = x0_.data() + size_t(w + 1) * frame_dims;
    for (int64_t f = 0; f < o; ++f) {
      const float beta = c.handover[size_t(f)];
      for (int64_t d = 0; d < D; ++d) {
        const size_t i = size_t(f * D + d);
        own[i] = (1.0f - beta) * prev[i] + beta * own[i];
      }
    }
  }
  // 5-6. DDIM update (left to right, as the reference).
  for (size_t i = 0; i < n; ++i) {
    const float eps = (x_[i] - sab * x0_[i]) / s1mab;
    const float base = sab_prev * x0_[i] + eps_coef * eps;
    x_[i] = z != nullptr ? base + sigma * z[i] : base;
  }
  // 7. Inpainting (Eq. 15) as a select.
  if (masked) {
    for (size_t i = 0; i < n; ++i) {
      if (mask_[i]) x_[i] = sab_prev * known_[i] + s1mab_prev * zq[i];
    }
  }
}

void Generator::RunOnDevice(const GenerateRequest& req, bool masked) {
  const ModelConfig& c = model_->config();
  const int64_t W = num_windows_, S = req.steps, C = kScheduleColumns;
  const size_t n = x_.size(), K = c.anchor_dims.size();
  const bool injected = req.x_T != nullptr;
  auto sigma = [&](int64_t s) { return req.schedule[s * C + kSigma]; };
  // Noise slabs: 0 is zeros; injected noise has one per step, seeded noise one per step that
  // draws it (sigma != 0), in the host loop's order so that one seed gives one dance.
  int64_t z_slabs = 1;
  for (int64_t s = 0; s < S; ++s) z_slabs += injected || sigma(s) != 0.0f;
  device_->Reserve(W, S, z_slabs, masked ? S + 1 : 1);
  DeviceLoop& loop = *device_;
  auto f32 = [&](const char* name) { return static_cast<float*>(loop.host(name).data()); };
  auto i64 = [&](const char* name) { return static_cast<int64_t*>(loop.host(name).data()); };

  FillMusic(req.music, req.frames, W, c, f32("music"));
  FillRows(req.text, c.text_dim, 2 * W, f32("text"));
  bool* mask = static_cast<bool*>(loop.host("mask").data());
  for (size_t i = 0; i < n; ++i) mask[i] = masked && mask_[i] != 0;
  std::memcpy(f32("known"), known_.data(), n * sizeof(float));
  if (!masked) std::memset(f32("known"), 0, n * sizeof(float));
  float* table = f32("table");  // the last row repeated: step S - 1 reads "the next step" too
  std::memcpy(table, req.schedule, size_t(S * C) * sizeof(float));
  std::memcpy(table + S * C, req.schedule + (S - 1) * C, size_t(C) * sizeof(float));

  NormalNoise rng(req.seed);
  if (injected) {
    std::memcpy(x_.data(), req.x_T, n * sizeof(float));
  } else {
    rng.Fill(x_.data(), n);
  }
  float* z = f32("z");
  float* zq = f32("zq");
  int64_t* index = i64("noise_index");
  std::memset(z, 0, n * sizeof(float));
  std::memset(zq, 0, n * sizeof(float));
  std::fill(index, index + 2 * (S + 1), int64_t(0));
  int64_t next_z = 1;
  for (int64_t s = 0; s < S; ++s) {
    if (injected || sigma(s) != 0.0f) {
      float* slab = z + size_t(next_z) * n;
      if (injected) {
        std::memcpy(slab, req.z + size_t(s) * n, n * sizeof(float));
      } else {
        rng.Fill(slab, n);
      }
      index[2 * s] = next_z++;
    }
    if (masked) {
      float* slab = zq + size_t(s + 1) * n;
      if (injected) {
        std::memcpy(slab, req.zq + size_t(s) * n, n * sizeof(float));
      } else {
        rng.Fill(slab, n);
      }
      index[2 * s + 1] = s + 1;
    }
  }

  std::memcpy(f32("x"), x_.data(), n * sizeof(float));
  std::memset(f32("anchors"), 0, loop.host("anchors").bytes());
  if (K > 0) {
    UpdateAnchors(nullptr, nullptr, masked);  // offset before step 0
    std::memcpy(f32("anchors"), anchors_.data(), anchors_.size() * sizeof(float));
  }
  i64("step")[0] = 0;
  float* x_in = f32("x_in");
  NetworkInput(req.schedule[kSqrtAlphaBar], x_in);
  std::memcpy(x_in + n, x_in, n * sizeof(float));
  std::fill(f32("t"), f32("t") + 2 * W, req.schedule[kTimestep]);
  loop.Run(req.progress, x_.data());
}

void Generator::Generate(const GenerateRequest& req, std::vector<float>* windows,
                         std::vector<float>* motion) {
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (!busy.owns_lock()) {
    throw InputError("this Generator is generating in another thread; create one Generator per "
                     "thread (they may share the Model)");
  }
  const ModelConfig& c = model_->config();
  if (req.music == nullptr || req.text == nullptr || req.schedule == nullptr) {
    throw InputError("generate needs music features, a text embedding and a schedule table");
  }
  if (req.frames < 1) throw InputError("music has no frames; give at least one frame of features");
  if (req.steps < 1) throw InputError("the schedule table has no steps");
  if ((req.known == nullptr) != (req.mask == nullptr)) {
    throw InputError("inpainting needs both known motion and a mask (or neither)");
  }
  const bool masked = req.mask != nullptr;
  if ((req.x_T != nullptr && (req.z == nullptr || (masked && req.zq == nullptr))) ||
      (req.x_T == nullptr && (req.z != nullptr || req.zq != nullptr))) {
    throw InputError("injected noise needs x_T, z and (with a mask) zq together");
  }
  RequireFinite(req.music, req.frames, c.music_dim, "music features", "frame");
  RequireFinite(req.text, 1, c.text_dim, "the text embedding's values", "row");
  RequireFinite(req.schedule, req.steps, kScheduleColumns, "the schedule table's rows", "step");
  for (int64_t s = 0; s < req.steps; ++s) {
    const float v = req.schedule[s * kScheduleColumns + kSqrtOneMinusAlphaBar];
    if (!(v > 0.0f)) {
      throw InputError("schedule row " + Num(s) + " has sqrt(1 - alpha_bar) = " +
                       std::to_string(v) + "; it must be > 0 (is the table's column order "
                       "gcdance.schedule.TABLE_KEYS?)");
    }
  }
  const WindowPlan plan = Plan(req.frames);
  const int64_t W = plan.num_windows(), L = c.window, D = c.dim, F = req.frames;
  Reserve(W);
  const size_t n = size_t(W * L * D);

  // Known motion and mask, zero-padded ("unknown") past the end.
  if (masked) {
    for (int64_t w = 0; w < W; ++w) {
      for (int64_t f = 0; f < L; ++f) {
        const int64_t p = w * c.hop + f;
        const size_t dst = size_t((w * L + f) * D);
        for (int64_t d = 0; d < D; ++d) {
          const bool keep = p < F && req.mask[size_t(p * D + d)] != 0;
          mask_[dst + size_t(d)] = keep;
          known_[dst + size_t(d)] = keep ? req.known[size_t(p * D + d)] : 0.0f;
          if (keep && !std::isfinite(known_[dst + size_t(d)])) {
            throw InputError("the known motion has NaN or inf at frame " + Num(p) + ", dim " +
                             Num(d) + " where the mask keeps it");
          }
        }
      }
    }
  }
  if (device_) {
    RunOnDevice(req, masked);
  } else {
    // Music (reflect-padded) and text, identical in both halves of the batch.
    Binding& music_binding = model_->split() ? *condition_ : binding_;
    FillMusic(req.music, F, W, c,
              static_cast<float*>(
                  music_binding.input(model_->split() ? model_->c_music : model_->imusic).data()));
    float* text = static_cast<float*>(binding_.input(model_->itext).data());
    FillRows(req.text, c.text_dim, 2 * W, text);
    if (model_->split()) {
      // The step-invariant cache, once per generation: condition(music, text, cond_mask).
      std::memcpy(condition_->input(model_->c_text).data(), text,
                  size_t(2 * W * c.text_dim) * sizeof(float));
      condition_->Run();
      const HostTensor& cache = condition_->output(model_->c_out);
      HostTensor& cache_in = binding_.input(model_->icache);
      if (cache.bytes() != cache_in.bytes()) {
        throw Error("the condition graph returned " + ShapeString(cache.shape()) +
                    ", the step graph takes " + ShapeString(cache_in.shape()));
      }
      std::memcpy(cache_in.data(), cache.data(), cache.bytes());
    }

    NormalNoise rng(req.seed);
    if (req.x_T != nullptr) {
      std::memcpy(x_.data(), req.x_T, n * sizeof(float));
    } else {
      rng.Fill(x_.data(), n);
    }
    if (!c.anchor_dims.empty()) UpdateAnchors(nullptr, nullptr, masked);  // offset before step 0

    for (int64_t s = 0; s < req.steps; ++s) {
      const float* coef = req.schedule + s * kScheduleColumns;
      const float* z = nullptr;
      const float* zq = nullptr;
      if (req.x_T != nullptr) {
        z = req.z + size_t(s) * n;
        zq = masked ? req.zq + size_t(s) * n : nullptr;
      } else {
        if (coef[kSigma] != 0.0f) {
          rng.Fill(noise_z_.data(), n);
          z = noise_z_.data();
        }
        if (masked) {
          rng.Fill(noise_zq_.data(), n);
          zq = noise_zq_.data();
        }
      }
      Step(coef, z, zq, masked);
      if (req.progress && !req.progress(s + 1, req.steps)) {
        throw Error("generation cancelled after step " + Num(s + 1) + " of " + Num(req.steps));
      }
    }
  }
  if (windows != nullptr) windows->assign(x_.begin(), x_.end());
  if (motion == nullptr) return;
  const bool has_norm = !c.norm_center.empty();
  if (stitch_.capacity() < size_t(plan.padded_frames() * D)) ++allocations_;
  StitchWindows(x_.data(), has_norm ? c.norm_half_range.data() : nullptr,
                has_norm ? c.norm_center.data() : nullptr, plan, D, c.rot_start, c.num_joints,
                has_norm, &stitch_);
  motion->resize(size_t(F * D));
  for (size_t i = 0; i < size_t(F * D); ++i) {
    const size_t d = i % size_t(D);
    const double v = has_norm ? (stitch_[i] - c.norm_center[d]) / c.norm_half_range[d]
                              : stitch_[i];
    (*motion)[i] = static_cast<float>(v);
  }
}

}  // namespace gcdance

// The sampling engine: a Model (the denoiser session and the configuration read from the model
// bundle's manifest) and Generators (preallocated state and the DDIM step loop). The step order is
// the reference sampler's (training/sampler.py, module docstring), operation for operation.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "gcdance/device_loop.h"
#include "gcdance/motion_math.h"
#include "gcdance/session.h"

namespace gcdance {

// What the engine needs from the bundle manifest (filled by gcdance.bundle in Python).
struct ModelConfig {
  int64_t dim = 0;        // motion dims (319 FineDance, 151 AIST++)
  int64_t music_dim = 0;  // per-frame music features
  int64_t text_dim = 0;   // genre control embedding C_E
  int64_t window = 120;   // frames per window (4 s)
  int64_t hop = 60;       // frames between window starts (2 s)
  // Denoiser I/O names: forward(x_t, t, music, text_emb, cond_mask) -> x0.
  std::string input_x = "x_t", input_t = "t", input_music = "music", input_text = "text_emb",
              input_cond = "cond_mask", output_x0 = "x0";
  // Split graphs (optional): `condition_path` computes the step-invariant per-frame cache once
  // per generation, condition(music, text_emb, cond_mask) -> cond_cache (B, N, cache_dim); the
  // main graph is then the step graph step(x_t, t, text_emb, cond_mask, cond_cache) -> x0.
  std::string condition_path;
  int64_t cache_dim = 0;
  std::string input_cache = "cond_cache", output_cache = "cond_cache";
  // Root anchoring: dims the training windows made relative to their first frame and the
  // normalized value of a raw 0 on them (empty: off).
  std::vector<int64_t> anchor_dims;
  std::vector<float> anchor_zero;
  // Window handover (reference step 4b): the later window's weight on each of the window - hop
  // overlapping frames (gcdance.stitching.handover_weights).
  std::vector<float> handover;
  // Normalizer (x_norm = (x - center) / half_range); empty: stitch linearly in normalized space.
  std::vector<double> norm_center, norm_half_range;
  int64_t rot_start = 7;    // first 6D rotation dim
  int64_t num_joints = 52;  // number of 6D blocks
  // Device loop (optional): the serialized update and upload graphs of gcdance.update_graph,
  // built for this configuration. Both or neither.
  std::string update_graph, upload_graph;
};

class Model {
 public:
  Model(const std::string& onnx_path, ModelConfig config, const SessionConfig& session);
  const ModelConfig& config() const { return config_; }
  const std::shared_ptr<OrtModel>& ort() const { return ort_; }
  const std::shared_ptr<OrtModel>& condition() const { return condition_; }  // null: one graph
  bool split() const { return condition_ != nullptr; }
  // Device loop sessions (null without the graphs): on the CUDA provider for GPU models.
  const std::shared_ptr<OrtModel>& update() const { return update_; }
  const std::shared_ptr<OrtModel>& upload() const { return upload_; }
  bool device_loop() const { return update_ != nullptr; }
  int64_t NextGraphId() { return ++graph_ids_; }  // CUDA graph ids, unique per Model
  // The CUDA provider cannot capture or replay graphs of one session from several threads at
  // once: device loops with CUDA graphs hold this while they run.
  std::mutex& graph_mutex() { return graph_mutex_; }
  // Input positions in the main graph: x_t, t, text_emb, cond_mask, and music (one graph) or
  // cond_cache (split); output x0. In the condition graph: music, text_emb, cond_mask -> cache.
  size_t ix = 0, it = 0, imusic = 0, itext = 0, icond = 0, icache = 0, ox0 = 0;
  size_t c_music = 0, c_text = 0, c_cond = 0, c_out = 0;

 private:
  ModelConfig config_;
  std::shared_ptr<OrtModel> ort_, condition_, update_, upload_;
  std::atomic<int64_t> graph_ids_{0};
  std::mutex graph_mutex_;
};

// Columns of the schedule table (gcdance.schedule.TABLE_KEYS), one row per step.
enum ScheduleColumn : int {
  kTimestep, kTimestepPrev, kSqrtAlphaBar, kSqrtOneMinusAlphaBar, kSqrtAlphaBarPrev,
  kSqrtOneMinusAlphaBarPrev, kSigma, kEpsCoef, kGuidance, kScheduleColumns
};

struct GenerateRequest {
  const float* music = nullptr;     // (frames, music_dim), normalized as the model expects
  int64_t frames = 0;
  const float* text = nullptr;      // (text_dim,)
  const float* schedule = nullptr;  // (steps, kScheduleColumns)
  int64_t steps = 0;
  const float* known = nullptr;     // (frames, dim) normalized; with `mask`, inpainting
  const uint8_t* mask = nullptr;    // (frames, dim), 1 = keep `known`
  uint64_t seed = 0;
  // Injected noise (parity tests): x_T (W, L, dim), z and zq (steps, W, L, dim). When x_T is
  // given, z (and zq with a mask) must be too; otherwise all noise comes from `seed`.
  const float* x_T = nullptr;
  const float* z = nullptr;
  const float* zq = nullptr;
  // Called after every step with (step, steps); returning false cancels the generation.
  std::function<bool(int64_t, int64_t)> progress;
};

// Seeded standard normal noise (mt19937_64 + Box-Muller in double). Same seed, same sequence,
// on every platform (std::normal_distribution is implementation-defined, so it is not used).
// The engine's stream is its own (parity with the reference uses injected noise): x_T, then per
// step z when sigma != 0 (z is not drawn where it would be multiplied by 0) and zq with a mask.
class NormalNoise {
 public:
  explicit NormalNoise(uint64_t seed) : engine_(seed) {}
  void Fill(float* out, size_t n);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Generates with one Model. Buffers are sized once per number of windows and reused. One
// Generator serves one thread at a time (a second concurrent call is refused with an error);
// use one per thread: they may share the Model. With `device_loop` the steps run in a
// DeviceLoop (state in the provider's memory), otherwise in C++ on the host.
class Generator {
 public:
  // `keep_shapes` (device loop): keep a buffer set per shape instead of resizing one (always so
  // with CUDA graphs; DeviceLoop).
  explicit Generator(std::shared_ptr<Model> model, bool device_loop = false,
                     bool keep_shapes = false);
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  const Model& model() const { return *model_; }
  bool device_loop() const { return device_ != nullptr; }
  const DeviceLoop* device() const { return device_.get(); }

  // Runs the whole loop. `windows` (optional) receives the final x0 windows (W, L, dim) and
  // `motion` the stitched sequence (frames, dim), both normalized.
  void Generate(const GenerateRequest& request, std::vector<float>* windows,
                std::vector<float>* motion);
  WindowPlan Plan(int64_t frames) const;
  // Buffer allocations so far (engine vectors and ORT bindings).
  size_t allocations() const {
    return allocations_ + binding_.allocations() + (condition_ ? condition_->allocations() : 0) +
           (device_ ? device_->allocations() : 0);
  }

 private:
  void Reserve(int64_t num_windows);
  void Step(const float* c, const float* z, const float* zq, bool masked);
  void UpdateAnchors(const float* x0, const float* add, bool masked);
  // Step 0: the network input (x with the window starts removed on the anchor dims), (W, L, D).
  void NetworkInput(float sqrt_alpha_bar, float* x_in) const;
  // The device loop's generation: uploads, steps, and the final windows into x_.
  void RunOnDevice(const GenerateRequest& req, bool masked);

  std::shared_ptr<Model> model_;
  Binding binding_;
  std::unique_ptr<Binding> condition_;  // split graphs only
  std::unique_ptr<DeviceLoop> device_;  // device loop only
  std::mutex busy_;
  int64_t num_windows_ = -1;
  size_t allocations_ = 0;
  // (W, L, D) state, guided x0, known motion and mask; (W, K) anchors; per-step noise.
  std::vector<float> x_, x0_, known_, noise_z_, noise_zq_, anchors_, scratch_;
  std::vector<uint8_t> mask_;
  std::vector<double> stitch_;  // stitching work buffer (raw representation, float64)
};

}  // namespace gcdance

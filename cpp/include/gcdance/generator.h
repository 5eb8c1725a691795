// The sampling engine: a Model (the bundle's four graphs in ONNX Runtime sessions, and the
// configuration read from the bundle's manifest) and Generators (one sampling state each, run by
// the one step loop of gcdance::Loop). The sampler step's math lives in the bundle's
// sampler_step.onnx (export/sampler_graph.py), written at export time from the PyTorch
// reference's step (training/sampler.py); the engine only moves buffers and calls the graphs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "gcdance/loop.h"
#include "gcdance/motion_math.h"
#include "gcdance/session.h"

namespace gcdance {

// What the engine needs from the bundle manifest (filled by gcdance.engine.generator in Python).
struct ModelConfig {
  int64_t dim = 0;        // motion dims (319 FineDance, 151 AIST++)
  int64_t music_dim = 0;  // per-frame music features
  int64_t text_dim = 0;   // genre control embedding C_E
  int64_t cache_dim = 0;  // per-frame width of the condition graph's cache
  int64_t window = 120;   // frames per window (4 s)
  int64_t hop = 60;       // frames between window starts (2 s)
  // Root anchoring: dims the training windows made relative to their first frame and the
  // normalized value of a raw 0 on them (empty: off). The engine needs them for the state
  // before the first step; the sampler step carries them for every step.
  std::vector<int64_t> anchor_dims;
  std::vector<float> anchor_zero;
  // Normalizer (x_norm = (x - center) / half_range), for stitching in the raw representation.
  std::vector<double> norm_center, norm_half_range;
  int64_t rot_start = 7;    // first 6D rotation dim
  int64_t num_joints = 52;  // number of 6D blocks
  // Names of the schedule table's columns, in order (the manifest's, gcdance.sampling.schedule).
  std::vector<std::string> schedule_columns;
  // The bundle's graphs (see Model).
  std::string condition_path, denoiser_path, sampler_path, upload_path;
};

// The four graphs of a bundle, each in one ONNX Runtime session shared by every Generator:
//   condition(music, text_emb, cond_mask) -> cond_cache      once per generation
//   denoiser(x_t, t, text_emb, cond_mask, cond_cache) -> x0  once per step
//   sampler(x, x0_pair, ...) -> x_next, ...                  the sampler step, once per step
//   upload(<name>) -> to_<name>                              host -> provider memory, once
// The denoiser runs on the chosen provider; the others on the same device (TensorRT: CUDA).
class Model {
 public:
  Model(ModelConfig config, const SessionConfig& session);
  const ModelConfig& config() const { return config_; }
  OrtModel& condition() const { return *condition_; }
  OrtModel& denoiser() const { return *denoiser_; }
  OrtModel& sampler() const { return *sampler_; }
  OrtModel& upload() const { return *upload_; }
  const std::string& provider() const { return denoiser_->provider(); }
  // Index of a schedule column by name (throws when the bundle's table lacks it).
  int64_t column(const std::string& name) const;

 private:
  void CheckGraphs() const;

  ModelConfig config_;
  std::shared_ptr<OrtModel> condition_, denoiser_, sampler_, upload_;
};

struct GenerateRequest {
  const float* music = nullptr;     // (frames, music_dim), as the model expects
  int64_t frames = 0;
  const float* text = nullptr;      // (text_rows, text_dim): one C_E, or one per window
  int64_t text_rows = 1;            // 1, or the number of windows (a prompt schedule)
  const float* schedule = nullptr;  // (steps, schedule columns)
  int64_t steps = 0;
  const float* known = nullptr;     // (frames, dim) normalized; with `mask`, inpainting
  const uint8_t* mask = nullptr;    // (frames, dim), 1 = keep `known`
  uint64_t seed = 0;
  // Streaming: the song's index of this request's window 0 (window w draws its noise from
  // stream first_window + w of the seed), and the carry of an earlier request whose last
  // window is window first_window - 1: carry_x0 (steps, L, dim) and, with root anchoring,
  // carry_anchors (steps, 2, K) float64 (the chain of window starts: its first start and its
  // sum of window steps), as that request's carry_*_out received them. Not with a mask.
  int64_t first_window = 0;
  const float* carry_x0 = nullptr;
  const double* carry_anchors = nullptr;
  // Receive this request's carry when set (same shapes).
  float* carry_x0_out = nullptr;
  double* carry_anchors_out = nullptr;
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
// Every hop-long block of a song has its own stream, seeded with StreamSeed(seed, block): its
// x_T, then per step its z when sigma != 0 (z is not drawn where it would be multiplied by 0)
// and its zq with a mask; a window's noise is that of the blocks it covers, so overlapping
// windows share the noise of their shared frames. A block's noise does not depend on how many
// windows a request has (streaming generates a few at a time).
uint64_t StreamSeed(uint64_t seed, uint64_t block);

class NormalNoise {
 public:
  explicit NormalNoise(uint64_t seed) : engine_(seed) {}
  void Fill(float* out, size_t n);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Generates with one Model: prepares a request's windows and noise, runs the Loop, stitches.
// One Generator serves one thread at a time (a second concurrent call is refused with an
// error); use one per thread: they may share the Model.
class Generator {
 public:
  explicit Generator(std::shared_ptr<Model> model);
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  const Model& model() const { return *model_; }
  // Runs the whole loop. `windows` (optional) receives the final x0 windows (W, L, dim) and
  // `motion` the stitched sequence (frames, dim), both normalized.
  void Generate(const GenerateRequest& request, std::vector<float>* windows,
                std::vector<float>* motion);
  WindowPlan Plan(int64_t frames) const;
  // Buffer allocations so far (engine vectors and ORT tensors).
  size_t allocations() const { return allocations_ + loop_.allocations(); }

 private:
  void Reserve(int64_t num_windows);
  // The anchors before the first step (reference step 4 with x0 = the normalized zero).
  void InitialAnchors(bool masked);
  void Upload(const GenerateRequest& req, bool masked);

  std::shared_ptr<Model> model_;
  Loop loop_;
  std::mutex busy_;
  int64_t num_windows_ = -1;
  size_t allocations_ = 0;
  // (W, L, D) state and known motion, mask; (W, K) anchors.
  std::vector<float> x_, known_, anchors_, draw_;
  std::vector<uint8_t> mask_;
  std::vector<double> stitch_;  // stitching work buffer (raw representation, float64)
};

}  // namespace gcdance

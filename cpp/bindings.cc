// Thin pybind11 layer over the engine core. Errors become gcdance.errors exceptions; the GIL is
// released while the engine samples.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "gcdance/generator.h"
#include "gcdance/runtime.h"
#include "gcdance/session.h"

namespace py = pybind11;
using gcdance::SessionConfig;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// `value` as a float32 array, or an InputError naming it (not pybind's RuntimeError).
FloatArray AsFloats(const py::object& value, const std::string& what) {
  try {
    return value.cast<FloatArray>();
  } catch (const py::cast_error&) {
    throw gcdance::InputError(what + " must be an array of numbers, got " +
                              std::string(py::str(py::type::of(value).attr("__name__"))));
  }
}

// Checks that `array` has exactly `shape` (-1 = any) and returns a pointer to its data.
const float* Checked(const FloatArray& array, const std::vector<int64_t>& shape,
                     const std::string& what) {
  bool ok = array.ndim() == py::ssize_t(shape.size());
  for (size_t d = 0; ok && d < shape.size(); ++d) {
    ok = shape[d] < 0 || array.shape(py::ssize_t(d)) == shape[d];
  }
  if (!ok) {
    std::vector<int64_t> got(array.shape(), array.shape() + array.ndim());
    throw gcdance::InputError(what + " must have shape " + gcdance::ShapeString(shape) +
                              ", got " + gcdance::ShapeString(got));
  }
  return array.data();
}

py::array_t<float> ToNumpy(const std::vector<float>& data, std::vector<py::ssize_t> shape) {
  py::array_t<float> out(shape);
  std::memcpy(out.mutable_data(), data.data(), data.size() * sizeof(float));
  return out;
}

// Generator.generate: arrays in, (motion, windows) out; the GIL is released while sampling.
py::tuple Generate(gcdance::Generator& generator,
                   const FloatArray& music, const FloatArray& text, const FloatArray& schedule,
                   uint64_t seed, const py::object& known, const py::object& mask,
                   const py::object& x_T, const py::object& z, const py::object& zq,
                   const py::object& progress, bool return_windows, int64_t first_window,
                   const py::object& carry, bool return_carry) {
  const gcdance::ModelConfig& c = generator.model().config();
  gcdance::GenerateRequest req;
  req.music = Checked(music, {-1, c.music_dim}, "music");
  req.frames = music.shape(0);
  if (text.ndim() == 2) {  // one C_E per window (a prompt schedule)
    req.text = Checked(text, {-1, c.text_dim}, "text_emb");
    req.text_rows = text.shape(0);
  } else {
    req.text = Checked(text, {c.text_dim}, "text_emb");
  }
  req.schedule = Checked(schedule, {-1, int64_t(c.schedule_columns.size())}, "schedule");
  req.steps = schedule.shape(0);
  req.seed = seed;
  if (req.frames < 1) {
    throw gcdance::InputError("music has no frames; give at least one frame of features");
  }
  const auto plan = generator.Plan(req.frames);
  const int64_t W = plan.num_windows();
  FloatArray known_a, xt_a, z_a, zq_a;
  py::array_t<uint8_t, py::array::c_style> mask_a;
  if (!known.is_none()) {
    known_a = AsFloats(known, "known");
    req.known = Checked(known_a, {req.frames, c.dim}, "known");
  }
  if (!mask.is_none()) {
    py::array given = py::array::ensure(mask);
    const std::string kind = given ? std::string(py::str(given.dtype())) : "not an array";
    if (kind != "bool" && kind != "uint8") {
      throw gcdance::InputError("mask must be a bool or uint8 array, got " + kind);
    }
    mask_a = py::array_t<uint8_t, py::array::c_style>::ensure(
        kind == "bool" ? given.attr("view")("uint8") : given);
    std::vector<int64_t> got(mask_a.shape(), mask_a.shape() + mask_a.ndim());
    if (got != std::vector<int64_t>{req.frames, c.dim}) {
      throw gcdance::InputError("mask must have shape " +
                                gcdance::ShapeString({req.frames, c.dim}) + ", got " +
                                gcdance::ShapeString(got));
    }
    req.mask = mask_a.data();
  }
  if (!x_T.is_none()) {
    xt_a = AsFloats(x_T, "x_T");
    req.x_T = Checked(xt_a, {W, c.window, c.dim}, "x_T");
  }
  if (!z.is_none()) {
    z_a = AsFloats(z, "z");
    req.z = Checked(z_a, {req.steps, W, c.window, c.dim}, "z");
  }
  if (!zq.is_none()) {
    zq_a = AsFloats(zq, "zq");
    req.zq = Checked(zq_a, {req.steps, W, c.window, c.dim}, "zq");
  }
  // Streaming: the carry of the request before, as (x0 (steps, L, dim), anchors (steps, 2, K)
  // float64) (anchors None for a model without root anchoring).
  req.first_window = first_window;
  const int64_t K = int64_t(c.anchor_dims.size());
  FloatArray carry_x0_a;
  py::array_t<double, py::array::c_style | py::array::forcecast> carry_anchors_a;
  if (!carry.is_none()) {
    py::tuple pair;
    try {
      pair = carry.cast<py::tuple>();
    } catch (const py::cast_error&) {
      throw gcdance::InputError("carry must be the (x0, anchors) pair an earlier generate "
                                "returned with return_carry=True");
    }
    if (pair.size() != 2) {
      throw gcdance::InputError("carry must be the (x0, anchors) pair an earlier generate "
                                "returned with return_carry=True");
    }
    carry_x0_a = AsFloats(pair[0], "carry x0");
    req.carry_x0 = Checked(carry_x0_a, {req.steps, c.window, c.dim}, "carry x0");
    if (K > 0) {
      try {
        carry_anchors_a = pair[1].cast<decltype(carry_anchors_a)>();
      } catch (const py::cast_error&) {
        throw gcdance::InputError("carry anchors must be an array of numbers");
      }
      std::vector<int64_t> got(carry_anchors_a.shape(),
                               carry_anchors_a.shape() + carry_anchors_a.ndim());
      if (got != std::vector<int64_t>{req.steps, 2, K}) {
        throw gcdance::InputError("carry anchors must have shape " +
                                  gcdance::ShapeString({req.steps, 2, K}) + ", got " +
                                  gcdance::ShapeString(got));
      }
      req.carry_anchors = carry_anchors_a.data();
    }
  }
  std::vector<float> carry_x0_out;
  std::vector<double> carry_anchors_out;
  if (return_carry) {
    carry_x0_out.resize(size_t(req.steps * c.window * c.dim));
    carry_anchors_out.resize(size_t(req.steps * 2 * std::max<int64_t>(K, 1)));
    req.carry_x0_out = carry_x0_out.data();
    req.carry_anchors_out = K > 0 ? carry_anchors_out.data() : nullptr;
  }
  if (!progress.is_none()) {
    req.progress = [&progress](int64_t step, int64_t steps) {
      py::gil_scoped_acquire acquire;
      py::object keep_going = progress(step, steps);
      return keep_going.is_none() || keep_going.cast<bool>();
    };
  }
  std::vector<float> motion, windows;
  {
    py::gil_scoped_release release;
    generator.Generate(req, return_windows ? &windows : nullptr, &motion);
  }
  py::object windows_out = py::none();
  if (return_windows) windows_out = ToNumpy(windows, {W, c.window, c.dim});
  if (!return_carry) return py::make_tuple(ToNumpy(motion, {req.frames, c.dim}), windows_out);
  py::object anchors_out = py::none();
  if (K > 0) {
    py::array_t<double> a({py::ssize_t(req.steps), py::ssize_t(2), py::ssize_t(K)});
    std::memcpy(a.mutable_data(), carry_anchors_out.data(), size_t(req.steps * 2 * K) * sizeof(double));
    anchors_out = a;
  }
  return py::make_tuple(ToNumpy(motion, {req.frames, c.dim}), windows_out,
                        py::make_tuple(ToNumpy(carry_x0_out, {req.steps, c.window, c.dim}),
                                       anchors_out));
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
  m.doc() = "gcdance native engine (ONNX Runtime, loaded at run time)";
  m.attr("__version__") = GCDANCE_VERSION;
  m.attr("HEADERS_API_VERSION") = GCDANCE_ORT_HEADERS_API;

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    auto raise = [](const char* type, const char* what) {
      py::object cls = py::module_::import("gcdance.errors").attr(type);
      PyErr_SetString(cls.ptr(), what);
    };
    try {
      std::rethrow_exception(p);
    } catch (const gcdance::InputError& e) {
      raise("InputError", e.what());
    } catch (const gcdance::ProviderError& e) {
      raise("ProviderError", e.what());
    } catch (const gcdance::Error& e) {
      raise("EngineError", e.what());
    } catch (const Ort::Exception& e) {
      raise("EngineError", e.what());
    }
  });

  m.def("init_runtime", &gcdance::InitRuntime, py::arg("library_path") = "",
        py::arg("path_first") = false, py::call_guard<py::gil_scoped_release>(),
        "Load ONNX Runtime (idempotent). `library_path` is the wheel's libonnxruntime; "
        "`path_first` prefers it over a libonnxruntime.so.1 already loaded.");
  m.def("runtime_ready", &gcdance::RuntimeReady);
  m.def("runtime_version", &gcdance::RuntimeVersion);
  m.def("runtime_library", &gcdance::RuntimeLibraryPath);
  m.def("available_providers", &gcdance::AvailableProviders);

  py::class_<gcdance::ModelConfig>(m, "ModelConfig", "What the engine reads from a manifest.")
      .def(py::init<>())
      .def_readwrite("dim", &gcdance::ModelConfig::dim)
      .def_readwrite("music_dim", &gcdance::ModelConfig::music_dim)
      .def_readwrite("text_dim", &gcdance::ModelConfig::text_dim)
      .def_readwrite("cache_dim", &gcdance::ModelConfig::cache_dim)
      .def_readwrite("window", &gcdance::ModelConfig::window)
      .def_readwrite("hop", &gcdance::ModelConfig::hop)
      .def_readwrite("anchor_dims", &gcdance::ModelConfig::anchor_dims)
      .def_readwrite("anchor_zero", &gcdance::ModelConfig::anchor_zero)
      .def_readwrite("norm_center", &gcdance::ModelConfig::norm_center)
      .def_readwrite("norm_half_range", &gcdance::ModelConfig::norm_half_range)
      .def_readwrite("rot_start", &gcdance::ModelConfig::rot_start)
      .def_readwrite("num_joints", &gcdance::ModelConfig::num_joints)
      .def_readwrite("schedule_columns", &gcdance::ModelConfig::schedule_columns)
      .def_readwrite("condition_path", &gcdance::ModelConfig::condition_path)
      .def_readwrite("denoiser_path", &gcdance::ModelConfig::denoiser_path)
      .def_readwrite("sampler_path", &gcdance::ModelConfig::sampler_path)
      .def_readwrite("upload_path", &gcdance::ModelConfig::upload_path);

  py::class_<gcdance::Model, std::shared_ptr<gcdance::Model>>(
      m, "Model", "The bundle's graphs in ONNX Runtime sessions; shared by Generators.")
      .def(py::init([](const gcdance::ModelConfig& config, const std::string& provider,
                       int intra_op_threads, bool allow_spinning, int device_id,
                       std::map<std::string, std::string> provider_options) {
             SessionConfig session;
             session.provider = provider;
             session.intra_op_threads = intra_op_threads;
             session.allow_spinning = allow_spinning;
             session.device_id = device_id;
             session.provider_options = std::move(provider_options);
             py::gil_scoped_release release;
             return std::make_shared<gcdance::Model>(config, session);
           }),
           py::arg("config"), py::arg("provider") = "cpu", py::arg("intra_op_threads") = 0,
           py::arg("allow_spinning") = false, py::arg("device_id") = 0,
           py::arg("provider_options") = std::map<std::string, std::string>{})
      .def_property_readonly("provider", &gcdance::Model::provider)
      .def_property_readonly("config", &gcdance::Model::config);

  py::class_<gcdance::Generator>(
      m, "Generator",
      "A sampling state over a Model; one per thread (they may share the Model).")
      .def(py::init<std::shared_ptr<gcdance::Model>>(), py::arg("model"))
      .def("generate", &Generate, py::arg("music"), py::arg("text_emb"), py::arg("schedule"),
          py::arg("seed") = 0, py::arg("known") = py::none(), py::arg("mask") = py::none(),
          py::arg("x_T") = py::none(), py::arg("z") = py::none(), py::arg("zq") = py::none(),
          py::arg("progress") = py::none(), py::arg("return_windows") = true,
          py::arg("first_window") = 0, py::arg("carry") = py::none(),
          py::arg("return_carry") = false,
          "Sample a whole song: returns (motion (frames, dim), windows (W, window, dim) or "
          "None), normalized; with return_carry also the carry (x0, anchors) that a request "
          "for the windows after these takes as `carry` (with first_window = this one's "
          "first_window + W).")
      .def("num_windows", [](const gcdance::Generator& g, int64_t frames) {
        return g.Plan(frames).num_windows();
      })
      .def_property_readonly("allocations", &gcdance::Generator::allocations);
}

// Thin pybind11 layer over the engine core. Errors become gcdance.errors exceptions; the GIL is
// released while a session copies inputs and runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <mutex>

#include "gcdance/generator.h"
#include "gcdance/runtime.h"
#include "gcdance/session.h"

namespace py = pybind11;
using gcdance::HostTensor;
using gcdance::Session;
using gcdance::SessionConfig;
using gcdance::TensorInfo;

namespace {

// numpy dtype name of an ONNX element type (those numpy can hold).
std::string NumpyDtype(ONNXTensorElementDataType type) {
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16) {
    throw gcdance::InputError("bfloat16 tensors cannot be exchanged with numpy");
  }
  return gcdance::TypeName(type);  // "float32", "int64", "bool", ... are numpy names too
}

py::object ShapeToPython(const std::vector<int64_t>& shape) {
  py::list out;
  for (int64_t d : shape) out.append(d < 0 ? py::none() : py::object(py::int_(d)));
  return std::move(out);
}

py::list InfosToPython(const std::vector<TensorInfo>& infos) {
  py::list out;
  for (const auto& info : infos) {
    py::dict d;
    d["name"] = info.name;
    d["dtype"] = gcdance::TypeName(info.type);
    d["shape"] = ShapeToPython(info.shape);
    out.append(d);
  }
  return out;
}

std::string Names(const std::vector<TensorInfo>& infos) {
  std::string out;
  for (const auto& info : infos) out += (out.empty() ? "'" : ", '") + info.name + "'";
  return out;
}

py::dict Run(Session& session, const py::dict& feeds) {
  const auto& inputs = session.model().inputs();
  for (const auto& item : feeds) {
    const std::string name = py::str(item.first);
    bool known = false;
    for (const auto& info : inputs) known = known || info.name == name;
    if (!known) {
      throw gcdance::InputError("unknown input '" + name + "'; the model's inputs are " +
                                Names(inputs));
    }
  }
  std::vector<py::array> arrays;
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& info : inputs) {
    if (!feeds.contains(info.name)) {
      throw gcdance::InputError("missing input '" + info.name + "'; the model's inputs are " +
                                Names(inputs));
    }
    py::array array = py::array::ensure(feeds[info.name.c_str()], py::array::c_style);
    if (!array) {
      throw gcdance::InputError("input '" + info.name + "' is not convertible to a numpy array");
    }
    const std::string want = NumpyDtype(info.type);
    const std::string got = py::str(array.dtype());
    if (got != want) {
      throw gcdance::InputError("input '" + info.name + "' must be " + want + ", got " + got +
                                " (convert with .astype(numpy." + want + "))");
    }
    shapes.emplace_back(array.shape(), array.shape() + array.ndim());
    arrays.push_back(std::move(array));
  }

  py::dict result;
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(session.mutex());
  gcdance::Binding& binding = session.binding();
  binding.Prepare(shapes);
  for (size_t i = 0; i < arrays.size(); ++i) {
    HostTensor& buffer = binding.input(i);
    std::memcpy(buffer.data(), arrays[i].data(), buffer.bytes());
  }
  binding.Run();
  py::gil_scoped_acquire acquire;
  const auto& outputs = session.model().outputs();
  for (size_t i = 0; i < outputs.size(); ++i) {
    const HostTensor& buffer = binding.output(i);
    py::array out(py::dtype(NumpyDtype(buffer.type())), buffer.shape());
    std::memcpy(out.mutable_data(), buffer.data(), buffer.bytes());
    result[outputs[i].name.c_str()] = std::move(out);
  }
  return result;
}

uintptr_t BufferAddress(Session& session, const std::string& name) {
  // Every path takes the session mutex with the GIL released (Run holds the mutex while it
  // re-acquires the GIL): taking it while holding the GIL could deadlock.
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(session.mutex());
  const auto& model = session.model();
  for (size_t i = 0; i < model.inputs().size(); ++i) {
    if (model.inputs()[i].name == name) {
      return reinterpret_cast<uintptr_t>(session.binding().input(i).data());
    }
  }
  for (size_t i = 0; i < model.outputs().size(); ++i) {
    if (model.outputs()[i].name == name) {
      return reinterpret_cast<uintptr_t>(session.binding().output(i).data());
    }
  }
  throw gcdance::InputError("no input or output named '" + name + "'");
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

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
                   const py::object& progress, bool return_windows) {
  const gcdance::ModelConfig& c = generator.model().config();
  gcdance::GenerateRequest req;
  req.music = Checked(music, {-1, c.music_dim}, "music");
  req.frames = music.shape(0);
  req.text = Checked(text, {c.text_dim}, "text_emb");
  req.schedule = Checked(schedule, {-1, gcdance::kScheduleColumns}, "schedule");
  req.steps = schedule.shape(0);
  req.seed = seed;
  const auto plan = generator.Plan(req.frames);
  const int64_t W = plan.num_windows();
  FloatArray known_a, xt_a, z_a, zq_a;
  py::array_t<uint8_t, py::array::c_style> mask_a;
  if (!known.is_none()) {
    known_a = known.cast<FloatArray>();
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
    xt_a = x_T.cast<FloatArray>();
    req.x_T = Checked(xt_a, {W, c.window, c.dim}, "x_T");
  }
  if (!z.is_none()) {
    z_a = z.cast<FloatArray>();
    req.z = Checked(z_a, {req.steps, W, c.window, c.dim}, "z");
  }
  if (!zq.is_none()) {
    zq_a = zq.cast<FloatArray>();
    req.zq = Checked(zq_a, {req.steps, W, c.window, c.dim}, "zq");
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
  return py::make_tuple(ToNumpy(motion, {req.frames, c.dim}), windows_out);
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

  py::class_<Session>(m, "Session",
                      "An ONNX model with preallocated, reused input/output buffers (IoBinding).")
      .def(py::init([](const std::string& path, const std::string& provider, int intra_op_threads,
                       int inter_op_threads, bool allow_spinning, int device_id,
                       std::map<std::string, std::string> provider_options) {
             SessionConfig config;
             config.provider = provider;
             config.intra_op_threads = intra_op_threads;
             config.inter_op_threads = inter_op_threads;
             config.allow_spinning = allow_spinning;
             config.device_id = device_id;
             config.provider_options = std::move(provider_options);
             py::gil_scoped_release release;
             return std::make_unique<Session>(path, config);
           }),
           py::arg("path"), py::arg("provider") = "cpu", py::arg("intra_op_threads") = 0,
           py::arg("inter_op_threads") = 1, py::arg("allow_spinning") = false,
           py::arg("device_id") = 0,
           py::arg("provider_options") = std::map<std::string, std::string>{})
      .def_property_readonly("inputs",
                             [](const Session& s) { return InfosToPython(s.model().inputs()); })
      .def_property_readonly("outputs",
                             [](const Session& s) { return InfosToPython(s.model().outputs()); })
      .def_property_readonly("provider", [](const Session& s) { return s.model().provider(); })
      .def_property_readonly("model_path",
                             [](const Session& s) { return s.model().model_path(); })
      .def_property_readonly("allocations",
                             [](Session& s) { return s.binding().allocations(); },
                             "Buffer allocations so far; unchanged by calls with the same shapes.")
      .def("run", &Run, py::arg("feeds"),
           "Copy `feeds` (name -> array) into the bound buffers, run, return copies of the outputs.")
      .def("buffer_address", &BufferAddress, py::arg("name"),
           "Address of the buffer bound to an input or output (to check reuse).");

  py::class_<gcdance::ModelConfig>(m, "ModelConfig", "What the engine reads from a manifest.")
      .def(py::init<>())
      .def_readwrite("dim", &gcdance::ModelConfig::dim)
      .def_readwrite("music_dim", &gcdance::ModelConfig::music_dim)
      .def_readwrite("text_dim", &gcdance::ModelConfig::text_dim)
      .def_readwrite("window", &gcdance::ModelConfig::window)
      .def_readwrite("hop", &gcdance::ModelConfig::hop)
      .def_readwrite("input_x", &gcdance::ModelConfig::input_x)
      .def_readwrite("input_t", &gcdance::ModelConfig::input_t)
      .def_readwrite("input_music", &gcdance::ModelConfig::input_music)
      .def_readwrite("input_text", &gcdance::ModelConfig::input_text)
      .def_readwrite("input_cond", &gcdance::ModelConfig::input_cond)
      .def_readwrite("output_x0", &gcdance::ModelConfig::output_x0)
      .def_readwrite("condition_path", &gcdance::ModelConfig::condition_path)
      .def_readwrite("cache_dim", &gcdance::ModelConfig::cache_dim)
      .def_readwrite("input_cache", &gcdance::ModelConfig::input_cache)
      .def_readwrite("output_cache", &gcdance::ModelConfig::output_cache)
      .def_readwrite("anchor_dims", &gcdance::ModelConfig::anchor_dims)
      .def_readwrite("anchor_zero", &gcdance::ModelConfig::anchor_zero)
      .def_readwrite("handover", &gcdance::ModelConfig::handover)
      .def_readwrite("norm_center", &gcdance::ModelConfig::norm_center)
      .def_readwrite("norm_half_range", &gcdance::ModelConfig::norm_half_range)
      .def_readwrite("rot_start", &gcdance::ModelConfig::rot_start)
      .def_readwrite("num_joints", &gcdance::ModelConfig::num_joints)
      .def_property(
          "update_graph",
          [](const gcdance::ModelConfig& c) { return py::bytes(c.update_graph); },
          [](gcdance::ModelConfig& c, const py::bytes& b) { c.update_graph = std::string(b); },
          "Serialized update graph of the device loop (gcdance.update_graph)")
      .def_property(
          "upload_graph",
          [](const gcdance::ModelConfig& c) { return py::bytes(c.upload_graph); },
          [](gcdance::ModelConfig& c, const py::bytes& b) { c.upload_graph = std::string(b); },
          "Serialized upload graph of the device loop (gcdance.update_graph)");

  py::class_<gcdance::Model, std::shared_ptr<gcdance::Model>>(
      m, "Model", "The denoiser session and its configuration; shared by Generators.")
      .def(py::init([](const std::string& path, const gcdance::ModelConfig& config,
                       const std::string& provider, int intra_op_threads, bool allow_spinning,
                       int device_id, std::map<std::string, std::string> provider_options,
                       bool cuda_graph) {
             SessionConfig session;
             session.provider = provider;
             session.cuda_graph = cuda_graph;
             session.intra_op_threads = intra_op_threads;
             session.allow_spinning = allow_spinning;
             session.device_id = device_id;
             session.provider_options = std::move(provider_options);
             py::gil_scoped_release release;
             return std::make_shared<gcdance::Model>(path, config, session);
           }),
           py::arg("path"), py::arg("config"), py::arg("provider") = "cpu",
           py::arg("intra_op_threads") = 0, py::arg("allow_spinning") = false,
           py::arg("device_id") = 0,
           py::arg("provider_options") = std::map<std::string, std::string>{},
           py::arg("cuda_graph") = false)
      .def_property_readonly("provider", [](const gcdance::Model& m) { return m.ort()->provider(); })
      .def_property_readonly("device_loop", &gcdance::Model::device_loop,
                             "True when the model has the device loop's graphs")
      .def_property_readonly("split", &gcdance::Model::split,
                             "True when a condition graph computes the step-invariant cache")
      .def_property_readonly("config", &gcdance::Model::config);

  py::class_<gcdance::Generator>(
      m, "Generator",
      "Preallocated sampling state over a Model; one per thread (they may share the Model).")
      .def(py::init([](std::shared_ptr<gcdance::Model> model, bool device_loop,
                       bool keep_shapes) {
             return std::make_unique<gcdance::Generator>(std::move(model), device_loop,
                                                         keep_shapes);
           }),
           py::arg("model"), py::arg("device_loop") = false, py::arg("keep_shapes") = false,
           "keep_shapes (device loop): keep a buffer set per shape instead of resizing one "
           "(always so with CUDA graphs).")
      .def_property_readonly("device_loop", &gcdance::Generator::device_loop)
      .def_property_readonly(
          "keep_shapes", [](const gcdance::Generator& g) {
            return g.device() != nullptr && g.device()->keep_shapes();
          })
      .def_property_readonly(
          "buffer_sets",
          [](const gcdance::Generator& g) {
            const gcdance::DeviceLoop* d = g.device();
            return py::make_tuple(d ? d->network_sets() : 0, d ? d->buffer_sets() : 0);
          },
          "(network sets, update sets) the device loop holds (one each unless shapes are kept).")
      .def("generate", &Generate, py::arg("music"), py::arg("text_emb"), py::arg("schedule"),
          py::arg("seed") = 0, py::arg("known") = py::none(), py::arg("mask") = py::none(),
          py::arg("x_T") = py::none(), py::arg("z") = py::none(), py::arg("zq") = py::none(),
          py::arg("progress") = py::none(), py::arg("return_windows") = true,
          "Sample a whole song: returns (motion (frames, dim), windows (W, window, dim) or "
          "None), normalized.")
      .def("num_windows", [](const gcdance::Generator& g, int64_t frames) {
        return g.Plan(frames).num_windows();
      })
      .def_property_readonly("allocations", &gcdance::Generator::allocations);
}

// Thin pybind11 layer over the engine core. Errors become gcdance.errors exceptions; the GIL is
// released while a session copies inputs and runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <mutex>

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
  const auto& inputs = session.inputs();
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
  session.Prepare(shapes);
  for (size_t i = 0; i < arrays.size(); ++i) {
    HostTensor& buffer = session.input(i);
    std::memcpy(buffer.data(), arrays[i].data(), buffer.bytes());
  }
  session.Run();
  py::gil_scoped_acquire acquire;
  const auto& outputs = session.outputs();
  for (size_t i = 0; i < outputs.size(); ++i) {
    const HostTensor& buffer = session.output(i);
    py::array out(py::dtype(NumpyDtype(buffer.type())), buffer.shape());
    std::memcpy(out.mutable_data(), buffer.data(), buffer.bytes());
    result[outputs[i].name.c_str()] = std::move(out);
  }
  return result;
}

uintptr_t BufferAddress(Session& session, const std::string& name) {
  std::lock_guard<std::mutex> lock(session.mutex());
  for (size_t i = 0; i < session.inputs().size(); ++i) {
    if (session.inputs()[i].name == name) {
      return reinterpret_cast<uintptr_t>(session.input(i).data());
    }
  }
  for (size_t i = 0; i < session.outputs().size(); ++i) {
    if (session.outputs()[i].name == name) {
      return reinterpret_cast<uintptr_t>(session.output(i).data());
    }
  }
  throw gcdance::InputError("no input or output named '" + name + "'");
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
        py::call_guard<py::gil_scoped_release>(),
        "Load ONNX Runtime (idempotent). `library_path` is the wheel's libonnxruntime.");
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
      .def_property_readonly("inputs", [](const Session& s) { return InfosToPython(s.inputs()); })
      .def_property_readonly("outputs", [](const Session& s) { return InfosToPython(s.outputs()); })
      .def_property_readonly("provider", &Session::provider)
      .def_property_readonly("model_path", &Session::model_path)
      .def_property_readonly("allocations", &Session::allocations,
                             "Buffer allocations so far; unchanged by calls with the same shapes.")
      .def("run", &Run, py::arg("feeds"),
           "Copy `feeds` (name -> array) into the bound buffers, run, return copies of the outputs.")
      .def("buffer_address", &BufferAddress, py::arg("name"),
           "Address of the buffer bound to an input or output (to check reuse).");
}

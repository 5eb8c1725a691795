// ONNX Runtime loading: the library is dlopen'ed at run time (never linked), so that the Python
// wheel's libonnxruntime (and, with onnxruntime-gpu, its CUDA/TensorRT providers) is the one the
// engine uses. Headers of an older API version work with a newer runtime.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace gcdance {

// Errors thrown by the engine; the Python layer maps them onto gcdance.errors.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class InputError : public Error {  // bad argument: shape, dtype, name, value
 public:
  using Error::Error;
};
class ProviderError : public Error {  // unknown or unavailable execution provider
 public:
  using Error::Error;
};

// Loads ONNX Runtime once per process. Order (as onnxruntime-genai does): a libonnxruntime.so.1
// already in the process, then `library_path` (the wheel's library, found by Python), then the
// dynamic loader's search path; with `path_first` (a user's explicit override) `library_path`
// comes first. Thread-safe and idempotent; throws Error naming every place tried.
void InitRuntime(const std::string& library_path, bool path_first = false);
bool RuntimeReady();
const std::string& RuntimeLibraryPath();
std::string RuntimeVersion();
int HeadersApiVersion();
std::vector<std::string> AvailableProviders();

// The process-wide ORT environment (created on first use after InitRuntime).
Ort::Env& Env();

}  // namespace gcdance

#include "gcdance/runtime.h"

#include <dlfcn.h>

#include <mutex>
#include <sstream>

namespace gcdance {
namespace {

std::mutex g_mutex;
bool g_ready = false;
std::string g_library_path;
const OrtApiBase* g_api_base = nullptr;

std::string LoadedPath(void* handle, const char* symbol) {
  Dl_info info{};
  void* sym = dlsym(handle, symbol);
  if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "";
}

}  // namespace

void InitRuntime(const std::string& library_path, bool path_first) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_ready) return;

  std::ostringstream tried;
  void* handle = nullptr;
  auto try_path = [&]() {
    if (handle != nullptr || library_path.empty()) return;
    handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) tried << "  " << library_path << ": " << dlerror() << "\n";
  };
  if (path_first) try_path();
  if (handle == nullptr) {
    handle = dlopen("libonnxruntime.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (handle == nullptr) tried << "  already loaded libonnxruntime.so.1: no\n";
  }
  try_path();
  if (handle == nullptr) {
    handle = dlopen("libonnxruntime.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) tried << "  libonnxruntime.so.1 on the loader path: " << dlerror() << "\n";
  }
  if (handle == nullptr) {
    throw Error("could not load the ONNX Runtime library. Tried:\n" + tried.str() +
                "Install it with `pip install onnxruntime` (or onnxruntime-gpu, never both).");
  }
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto get_base = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (get_base == nullptr) {
    const std::string loaded = LoadedPath(handle, "dlopen");
    throw Error("the library loaded for ONNX Runtime (" +
                (loaded.empty() ? library_path : loaded) +
                ") does not export OrtGetApiBase: it is not a usable libonnxruntime");
  }
  const OrtApiBase* base = get_base();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    throw Error(std::string("ONNX Runtime ") + base->GetVersionString() +
                " is older than the headers gcdance was built with (API version " +
                std::to_string(ORT_API_VERSION) + "); upgrade with `pip install -U onnxruntime`");
  }
  Ort::InitApi(api);
  g_api_base = base;
  g_library_path = LoadedPath(handle, "OrtGetApiBase");
  if (g_library_path.empty()) g_library_path = library_path;
  g_ready = true;  // the handle is never closed: ORT does not support being unloaded
}

bool RuntimeReady() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_ready;
}

static void RequireReady() {
  if (!RuntimeReady()) {
    throw Error("ONNX Runtime is not loaded: call gcdance._engine.init_runtime(path) first "
                "(gcdance.engine does this for you)");
  }
}

const std::string& RuntimeLibraryPath() {
  RequireReady();
  return g_library_path;
}

std::string RuntimeVersion() {
  RequireReady();
  return g_api_base->GetVersionString();
}

int HeadersApiVersion() { return ORT_API_VERSION; }

std::vector<std::string> AvailableProviders() {
  RequireReady();
  return Ort::GetAvailableProviders();
}

Ort::Env& Env() {
  RequireReady();
  // Created once, thread-safely, after the API is initialised; deliberately never destroyed, so
  // no ORT call runs during static destruction at exit, after ORT's own globals may be gone.
  static Ort::Env* env = new Ort::Env(ORT_LOGGING_LEVEL_WARNING, "gcdance");
  return *env;
}

}  // namespace gcdance

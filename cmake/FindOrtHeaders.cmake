# Locates ONNX Runtime's C/C++ headers (only the headers: the runtime library is loaded at run
# time from the installed onnxruntime / onnxruntime-gpu wheel). Sets ORT_INCLUDE_DIR to the
# directory that holds onnxruntime_cxx_api.h. Order:
#   1. GCDANCE_ORT_ROOT (CMake variable or environment variable): an ONNX Runtime release
#      directory, or any prefix with the headers under include/ or include/onnxruntime/.
#      When it is given and holds no headers, configuration stops (no silent fallback).
#   2. A system install (/usr, /usr/local, CMAKE_PREFIX_PATH), unless GCDANCE_ORT_SEARCH_SYSTEM=OFF.
#   3. Debian's libonnxruntime-dev, unpacked into GCDANCE_ORT_CACHE by tools/fetch_ort_headers.sh
#      (Debian only; from Debian 13 on a Debian 12 machine), unless GCDANCE_ORT_FETCH=OFF.

option(GCDANCE_ORT_SEARCH_SYSTEM "Look for ONNX Runtime headers in system locations" ON)
option(GCDANCE_ORT_FETCH "Fetch Debian's libonnxruntime-dev headers when none are found" ON)
if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_gcdance_cache_base "$ENV{XDG_CACHE_HOME}")
elseif(DEFINED ENV{HOME} AND IS_DIRECTORY "$ENV{HOME}")
  set(_gcdance_cache_base "$ENV{HOME}/.cache")
else()
  set(_gcdance_cache_base "${CMAKE_BINARY_DIR}")  # no usable home (containers): the build dir
endif()
set(GCDANCE_ORT_CACHE "${_gcdance_cache_base}/gcdance/onnxruntime-headers" CACHE PATH
    "Where tools/fetch_ort_headers.sh unpacks Debian's libonnxruntime-dev")

set(_gcdance_ort_help "ONNX Runtime C/C++ headers (onnxruntime_cxx_api.h) were not found.
gcdance needs only the headers at build time; the runtime library comes from the onnxruntime wheel.
Provide them in one of these ways:
  1. Name an ONNX Runtime release directory (from the project's GitHub releases, e.g.
     onnxruntime-linux-x64-1.21.0): GCDANCE_ORT_ROOT=/path/to/onnxruntime pip install .
     (or -DGCDANCE_ORT_ROOT=/path when running CMake yourself).
  2. Install them system-wide, e.g. on Debian 13+: apt-get install libonnxruntime-dev.
  3. On Debian 12 or newer, let the build fetch Debian's libonnxruntime-dev headers with
     tools/fetch_ort_headers.sh (on by default: GCDANCE_ORT_FETCH=ON; needs apt and the network
     to the machine's configured Debian mirror).")

function(_gcdance_find_in_prefix out prefix)
  unset(_hdr CACHE)
  find_path(_hdr onnxruntime_cxx_api.h
            PATHS "${prefix}"
            PATH_SUFFIXES include/onnxruntime include include/onnxruntime/core/session onnxruntime .
            NO_DEFAULT_PATH)
  set(${out} "${_hdr}" PARENT_SCOPE)
  unset(_hdr CACHE)
endfunction()

set(ORT_INCLUDE_DIR "")
set(ORT_HEADERS_SOURCE "")
if(NOT GCDANCE_ORT_ROOT AND DEFINED ENV{GCDANCE_ORT_ROOT})
  set(GCDANCE_ORT_ROOT "$ENV{GCDANCE_ORT_ROOT}")
endif()

if(GCDANCE_ORT_ROOT)
  _gcdance_find_in_prefix(ORT_INCLUDE_DIR "${GCDANCE_ORT_ROOT}")
  if(NOT ORT_INCLUDE_DIR)
    message(FATAL_ERROR "GCDANCE_ORT_ROOT=${GCDANCE_ORT_ROOT} holds no onnxruntime_cxx_api.h "
                        "(looked in include/, include/onnxruntime/ and the directory itself).\n"
                        "${_gcdance_ort_help}")
  endif()
  set(ORT_HEADERS_SOURCE "GCDANCE_ORT_ROOT")
endif()

if(NOT ORT_INCLUDE_DIR AND GCDANCE_ORT_SEARCH_SYSTEM)
  unset(_sys_hdr CACHE)
  find_path(_sys_hdr onnxruntime_cxx_api.h
            PATH_SUFFIXES onnxruntime include/onnxruntime onnxruntime/core/session)
  if(_sys_hdr)
    set(ORT_INCLUDE_DIR "${_sys_hdr}")
    set(ORT_HEADERS_SOURCE "system")
  endif()
  unset(_sys_hdr CACHE)
endif()

if(NOT ORT_INCLUDE_DIR AND GCDANCE_ORT_FETCH)
  _gcdance_find_in_prefix(ORT_INCLUDE_DIR "${GCDANCE_ORT_CACHE}/usr")
  if(NOT ORT_INCLUDE_DIR)
    message(STATUS "gcdance: fetching Debian's libonnxruntime-dev headers into ${GCDANCE_ORT_CACHE}")
    execute_process(
      COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/../tools/fetch_ort_headers.sh" "${GCDANCE_ORT_CACHE}"
      RESULT_VARIABLE _fetch_rc OUTPUT_VARIABLE _fetch_out ERROR_VARIABLE _fetch_err
      TIMEOUT 300)
    if(_fetch_rc EQUAL 0)
      _gcdance_find_in_prefix(ORT_INCLUDE_DIR "${GCDANCE_ORT_CACHE}/usr")
    else()
      message(STATUS "gcdance: fetching the headers failed (${_fetch_rc}):\n${_fetch_err}")
    endif()
  endif()
  if(ORT_INCLUDE_DIR)
    set(ORT_HEADERS_SOURCE "Debian libonnxruntime-dev (fetched)")
  endif()
endif()

if(NOT ORT_INCLUDE_DIR)
  message(FATAL_ERROR "${_gcdance_ort_help}")
endif()

file(STRINGS "${ORT_INCLUDE_DIR}/onnxruntime_c_api.h" _api_line REGEX "^#define ORT_API_VERSION [0-9]+")
string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" ORT_HEADERS_API_VERSION "${_api_line}")
if(NOT ORT_HEADERS_API_VERSION MATCHES "^[0-9]+$")
  message(FATAL_ERROR "${ORT_INCLUDE_DIR}/onnxruntime_c_api.h defines no ORT_API_VERSION: these "
                      "are not ONNX Runtime's C API headers.\n${_gcdance_ort_help}")
endif()
message(STATUS "gcdance: ONNX Runtime headers (API ${ORT_HEADERS_API_VERSION}) from "
               "${ORT_HEADERS_SOURCE}: ${ORT_INCLUDE_DIR}")

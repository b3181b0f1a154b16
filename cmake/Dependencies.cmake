# Finds the project's dependencies and gives each one target name, whatever the installed version
# calls it (yaml-cpp 0.7: `yaml-cpp`; 0.8: `yaml-cpp::yaml-cpp`). A prefix with an unpacked offline
# bundle (scripts/offline-bundle.sh) is searched when SHARDPLAN_DEPS_PREFIX is set.
if(SHARDPLAN_DEPS_PREFIX)
  list(PREPEND CMAKE_PREFIX_PATH ${SHARDPLAN_DEPS_PREFIX}/usr ${SHARDPLAN_DEPS_PREFIX}/usr/lib/x86_64-linux-gnu/cmake)
  list(PREPEND CMAKE_INCLUDE_PATH ${SHARDPLAN_DEPS_PREFIX}/usr/include)
  list(PREPEND CMAKE_LIBRARY_PATH ${SHARDPLAN_DEPS_PREFIX}/usr/lib/x86_64-linux-gnu)
  # The bundle's shared libraries are found at run time through the build tree's RPATH.
  set(CMAKE_BUILD_RPATH ${SHARDPLAN_DEPS_PREFIX}/usr/lib/x86_64-linux-gnu
      ${SHARDPLAN_DEPS_PREFIX}/usr/lib/x86_64-linux-gnu/graphviz)
  # NOTE: an old-style DT_RPATH, not DT_RUNPATH: RUNPATH does not apply to the libraries' own
  # dependencies (libgvc -> libcdt), which then fail to load without LD_LIBRARY_PATH.
  add_link_options(LINKER:--disable-new-dtags)
endif()

find_package(yaml-cpp REQUIRED)
if(TARGET yaml-cpp::yaml-cpp)
  set(SHARDPLAN_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(SHARDPLAN_YAML_TARGET yaml-cpp)
endif()

find_package(nlohmann_json 3.9 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 QUIET)

# valijson is header-only; Debian ships no CMake config for it.
find_path(VALIJSON_INCLUDE_DIR valijson/schema.hpp REQUIRED)
add_library(valijson_headers INTERFACE)
target_include_directories(valijson_headers SYSTEM INTERFACE ${VALIJSON_INCLUDE_DIR})
# Without exceptions valijson aborts on a bad schema; every user gets the same definition (ODR).
target_compile_definitions(valijson_headers INTERFACE VALIJSON_USE_EXCEPTIONS=1)

if(NOT CLI11_FOUND)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()

# Graphviz, in-process: the layout and core plugins are linked in and loaded with
# gvContextPlugins, so rendering needs no installed plugin configuration.
find_path(GRAPHVIZ_INCLUDE_DIR graphviz/gvc.h REQUIRED)
find_library(GVC_LIBRARY gvc REQUIRED)
find_library(CGRAPH_LIBRARY cgraph REQUIRED)
find_library(CDT_LIBRARY cdt REQUIRED)
find_library(GVPLUGIN_CORE_LIBRARY gvplugin_core PATH_SUFFIXES graphviz REQUIRED)
find_library(GVPLUGIN_DOT_LIBRARY gvplugin_dot_layout PATH_SUFFIXES graphviz REQUIRED)
option(SHARDPLAN_PNG "PNG output through Graphviz's cairo/pango plugin (needs cairo on the host)" ON)
if(SHARDPLAN_PNG)
  find_library(GVPLUGIN_CAIRO_LIBRARY gvplugin_pango PATH_SUFFIXES graphviz)
endif()
add_library(graphviz_gvc INTERFACE)
target_include_directories(graphviz_gvc SYSTEM INTERFACE ${GRAPHVIZ_INCLUDE_DIR})
target_link_libraries(graphviz_gvc INTERFACE ${GVPLUGIN_DOT_LIBRARY} ${GVPLUGIN_CORE_LIBRARY}
  ${GVC_LIBRARY} ${CGRAPH_LIBRARY} ${CDT_LIBRARY})
if(GVPLUGIN_CAIRO_LIBRARY)
  target_link_libraries(graphviz_gvc INTERFACE ${GVPLUGIN_CAIRO_LIBRARY})
  target_compile_definitions(graphviz_gvc INTERFACE SHARDPLAN_HAVE_CAIRO=1)
endif()

if(SHARDPLAN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# libtorch, for the executor and the models' forward only (the planner never links it): pip's
# torch 2.11 (a CUDA build) of the interpreter SHARDPLAN_PYTHON: the project's .venv, which
# scripts/setup.sh makes, else python3 on PATH (a GPU host's system torch). Found here, at the top,
# so its imported targets are visible in every folder (models/, executor/, tests/).
set(SHARDPLAN_TORCH_VERSION 2.11.0 CACHE STRING "The torch version the build requires")
if(SHARDPLAN_BUILD_EXECUTOR)
  if(NOT SHARDPLAN_PYTHON)
    if(EXISTS ${PROJECT_SOURCE_DIR}/.venv/bin/python3)
      set(SHARDPLAN_PYTHON ${PROJECT_SOURCE_DIR}/.venv/bin/python3)
    else()
      find_program(SHARDPLAN_PYTHON python3 REQUIRED)
    endif()
  endif()
  execute_process(COMMAND ${SHARDPLAN_PYTHON} -c
      "import torch, torch.utils; print(torch.__version__.split('+')[0]); print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE torch_probe OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE torch_probe_failed)
  if(torch_probe_failed)
    message(FATAL_ERROR "${SHARDPLAN_PYTHON} cannot import torch: run scripts/setup.sh (it installs torch "
      "${SHARDPLAN_TORCH_VERSION} into .venv), or pass -DSHARDPLAN_PYTHON=an interpreter that has it")
  endif()
  string(REPLACE "\n" ";" torch_probe "${torch_probe}")
  list(GET torch_probe 0 SHARDPLAN_FOUND_TORCH_VERSION)
  list(GET torch_probe 1 torch_prefix)
  if(NOT SHARDPLAN_FOUND_TORCH_VERSION VERSION_EQUAL SHARDPLAN_TORCH_VERSION)
    message(FATAL_ERROR "${SHARDPLAN_PYTHON} has torch ${SHARDPLAN_FOUND_TORCH_VERSION}; this project builds "
      "against ${SHARDPLAN_TORCH_VERSION} (the GPU hosts' version): run scripts/setup.sh")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH ${torch_prefix})
  # A CUDA libtorch enables CUDA (nvcc) itself and takes the GPU architectures from
  # TORCH_CUDA_ARCH_LIST (variable or environment); the executor's kernels (models/layers/cuda/)
  # are built for Ampere and Hopper unless it says otherwise.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0" CACHE STRING "GPU architectures of the executor's CUDA kernels")
  endif()
  find_package(Torch REQUIRED)
  message(STATUS "Torch ${SHARDPLAN_FOUND_TORCH_VERSION} from ${SHARDPLAN_PYTHON}, CUDA ${CUDAToolkit_VERSION}")
endif()
if(SHARDPLAN_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# embed_text(TARGET FILE NAME): compiles FILE's text into TARGET as `const char* const NAME`.
function(embed_text target input name)
  set(output ${CMAKE_CURRENT_BINARY_DIR}/embedded_${name}.cc)
  add_custom_command(OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DNAME=${name}
            -P ${PROJECT_SOURCE_DIR}/cmake/EmbedText.cmake
    DEPENDS ${input} ${PROJECT_SOURCE_DIR}/cmake/EmbedText.cmake
    COMMENT "Embedding ${input}")
  target_sources(${target} PRIVATE ${output})
endfunction()

//! Everything specific to the llama.cpp version placer models, in one place.
//! Reference: the llama.cpp tree vendored in the PyPI sdist llama-cpp-python 0.3.36.

/// The llama.cpp source placer's rules were read from and its runs were measured with.
pub const REFERENCE_SOURCE: &str = "llama-cpp-python 0.3.36 sdist (vendor/llama.cpp)";

/// `ggml/src/ggml-cuda/common.cuh: MATRIX_ROW_PADDING`.
pub const CUDA_MATRIX_ROW_PADDING: u64 = 512;
/// `ggml-cuda.cu: ggml_backend_cuda_buffer_type_get_alignment`.
pub const CUDA_ALIGNMENT: u64 = 128;
/// `ggml-backend.cpp: TENSOR_ALIGNMENT` (CPU, CUDA_Host).
pub const CPU_ALIGNMENT: u64 = 32;
/// `src/llama-context.cpp`: n_ctx is padded to a multiple of 256.
pub const N_CTX_PAD: u64 = 256;
/// `ggml-cuda.cu: ggml_backend_cuda_device_offload_op`: batch ≥ 32 → CPU weights run on GPU 0.
pub const OP_OFFLOAD_MIN_BATCH: u32 = 32;
/// llama-server `-np` auto.
pub const SERVER_AUTO_PARALLEL: u32 = 4;
/// `common/common.h: LLM_FFN_EXPS_REGEX` (--cpu-moe).
pub const FFN_EXPS_REGEX: &str = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps";
/// `--fit-target` default, MiB (`common/common.h: fit_params_target`).
pub const FIT_TARGET_MIB: u64 = 1024;
/// `common/common.h: LLM_FFN_DENSE_REGEX` (--n-cpu-ffn).
pub const FFN_DENSE_REGEX: &str = r"\.ffn_(up|down|gate)\.";
/// `LLAMA_MAX_SEQ` (`src/llama-cparams.h`): `llama_context` refuses `n_seq_max` above it.
pub const MAX_SEQ: u32 = 256;

/// `llama_max_devices()` (`src/llama.cpp`, `LLAMA_MAX_DEVICES` = 16): `-ts` must have fewer entries.
pub const MAX_DEVICES: usize = 16;
/// Build of the reference tree. The sdist has no git metadata, so its CMake leaves
/// `LLAMA_BUILD_NUMBER` at `cmake/build-info.cmake`'s default `BUILD_NUMBER 0`; the tree is
/// llama.cpp commit 0c1e57098 (llama-cpp-python CHANGELOG 0.3.36) with ggml 0.25.3
/// (`ggml/CMakeLists.txt: GGML_VERSION_MAJOR/MINOR/PATCH`).
pub const LLAMA_BUILD_NUMBER: u32 = 0;
pub const LLAMA_COMMIT: &str = "0c1e57098";
pub const GGML_VERSION: &str = "0.25.3";
/// `GGML_SCHED_MAX_COPIES` (ggml/CMakeLists.txt default 4): input copies kept with pipeline
/// parallelism (`ggml-backend.cpp: ggml_backend_sched_split_graph`).
pub const SCHED_MAX_COPIES: u64 = 4;
/// `llama_kv_cache_iswa`: SWA cache is padded to 256 cells as well.
pub const SWA_PAD: u64 = 256;

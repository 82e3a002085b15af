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
/// `--fit-target` default, MiB.
pub const FIT_TARGET_MIB: u64 = 1024;

//! The integration suite: one test binary (one link of the crate and HiGHS), a module per
//! topic. Shared helpers live in the `*_support` and `known_gaps` modules.

mod anatomy_support;
mod files_support;
mod fixture;
mod gguf_support;
mod known_gaps;

mod anatomy_archs;
mod calibrate_fit;
mod calibrate_heldout;
mod calibrate_oom;
mod catalog_sizes;
mod check_cli;
mod emit_roundtrip;
mod files_bounded;
mod files_calibrate;
mod files_concurrent;
mod files_kill;
mod files_modelsconf;
mod files_targets;
mod files_walk;
mod fitsim_runs;
mod gguf_python_crosscheck;
mod gguf_reader_errors;
mod gguf_reader_props;
mod gguf_reader_summary;
mod inspect_table;
mod layering;
mod logs_fixtures;
mod logs_mangled;
mod logs_real;
mod memory_launch;
mod memory_qwen3moe;
mod memory_reference_runs;
mod memory_rules;
mod memory_speed;
mod solve_load_mode;
mod solve_vs_fit;
mod solver_corpus;
mod solver_scale;
mod speed_splits;
mod synth_roundtrip;
mod synth_tables;
mod testbed_solve;

//! `placer synth`: the exact tensor table llama.cpp's loader expects for an architecture and
//! a quantization, written header-only or full-size with random valid weights.
//! OWNER: anatomy helper.

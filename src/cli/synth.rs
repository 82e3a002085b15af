//! `placer synth MODEL -o FILE`: write a GGUF with the exact tensor table llama.cpp expects.
//!
//! MODEL is a catalog id (models/<id>.toml) or the path of a TOML file in the catalog's format.
//! Without `--header-only` the file is full-size with random valid weights, streamed to disk.

use crate::catalog;
use crate::gguf::{self, TensorData, WriteOptions};
use crate::synth::{self, Quant};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Catalog id (e.g. glm-q8) or path to a catalog-format .toml.
    pub model: String,
    /// File type; defaults to the catalog entry's (F16, BF16, Q8_0, Q4_K_M, Q5_K_M, Q6_K, MXFP4_MOE).
    #[arg(long)]
    pub quant: Option<String>,
    /// Write only the header (no tensor data); `placer.file_size` records the full size.
    #[arg(long)]
    pub header_only: bool,
    /// Header only with the tokenizer arrays stripped: what models/headers/<id>.gguf holds.
    /// With no -o, writes models/headers/<id>.gguf.
    #[arg(long)]
    pub snapshot: bool,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Catalog directory (default: $PLACER_MODELS, ./models, or the repo's models/).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.models_dir.clone().unwrap_or_else(catalog::models_dir);
    let entry = if args.model.ends_with(".toml") {
        catalog::entry_from_file(Path::new(&args.model))?
    } else {
        catalog::entry(&args.model, &dir)?
    };
    let quant = match &args.quant {
        None => None,
        Some(q) => Some(Quant::parse(q).with_context(|| {
            let all: Vec<_> = Quant::ALL.iter().map(|q| q.name()).collect();
            format!("unknown --quant '{q}' (choose one of {})", all.join(", "))
        })?),
    };
    let output = match (&args.output, args.snapshot) {
        (Some(o), _) => o.clone(),
        (None, true) => catalog::snapshot_path(&entry.id, &dir),
        (None, false) => bail!("say where to write the file: -o FILE"),
    };
    let model = entry.synthesize(quant, &dir)?;
    let full_size = gguf::gguf_file_size(&model.metadata, &model.tensors, gguf::DEFAULT_ALIGNMENT)?;
    let (metadata, data) = if args.snapshot {
        (synth::snapshot_metadata(&model.metadata), TensorData::None)
    } else if args.header_only {
        (model.metadata.clone(), TensorData::None)
    } else {
        (
            model.metadata.clone(),
            TensorData::Random { seed: args.seed },
        )
    };
    let opts = WriteOptions {
        data,
        full_file_size: Some(full_size),
        ..WriteOptions::default()
    };
    let start = Instant::now();
    let bar = progress_bar(args.quiet || data == TensorData::None, full_size);
    gguf::write_gguf_with_progress(
        &output,
        &metadata,
        &model.tensors,
        &opts,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .with_context(|| format!("writing {}", output.display()))?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let written = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        out,
        "{}: {} {} — {} tensors, tensor data {} bytes, full file {} bytes",
        output.display(),
        entry.id,
        quant.unwrap_or(entry.quant),
        model.tensors.len(),
        model.tensors.iter().map(|t| t.nbytes).sum::<u64>(),
        full_size
    );
    let _ = writeln!(
        out,
        "wrote {written} bytes in {secs:.2} s ({:.2} GB/s)",
        written as f64 / secs.max(1e-9) / 1e9
    );
    Ok(())
}

fn progress_bar(hidden: bool, total: u64) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

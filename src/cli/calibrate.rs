//! `placer calibrate`. Stub until implemented.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("placer calibrate is not implemented yet")
}

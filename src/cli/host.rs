//! `placer host`. Stub until implemented.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("placer host is not implemented yet")
}

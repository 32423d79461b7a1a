//! `tasker bench`: placeholder replaced below.
use clap::Args;
use tasker_engine::config::TaskerConfig;
#[derive(Args)]
pub struct BenchArgs {}
pub async fn run(_args: BenchArgs, _config: &TaskerConfig) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}

//! `dev`: the glue to [`crate::dev::demo`], which only the default `demo` feature builds.

use std::path::Path;

#[cfg(feature = "demo")]
pub async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    crate::dev::demo::run(config, crate::shutdown::signal()).await
}

#[cfg(not(feature = "demo"))]
pub async fn run(_config: Option<&Path>) -> anyhow::Result<()> {
    anyhow::bail!("this build has no demo (built with --no-default-features); build with the default `demo` feature to use `dev`")
}

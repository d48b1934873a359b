//! Demo dumps: realistic, seeded My Cloud Home dumps for the demo, the tests and benchmarks.
//! (Being written; see the module docs once done.)

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SizeMix {
    Demo,
    Small,
    Real,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Content {
    Full,
    Tiny,
    None,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSpec {
    pub seed: u64,
    pub files: u64,
    pub users: u32,
    pub size_mix: SizeMix,
    pub content: Content,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DemoManifest {
    pub files: u64,
    pub folders: u64,
    pub bytes: u64,
}

pub fn generate(_dump_root: &Path, _spec: &DemoSpec) -> anyhow::Result<DemoManifest> {
    anyhow::bail!("demo generator not written yet")
}

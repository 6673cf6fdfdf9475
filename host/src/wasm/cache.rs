//! On-disk cache of compiled components, so that a second start does not
//! run Cranelift again.
//!
//! An entry is keyed by the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version and settings), and stored with the
//! SHA-256 of the compiled bytes: a damaged entry is detected, dropped and
//! rebuilt. Entries are written to a temporary file and renamed into place,
//! so concurrent processes never see half an entry. Like the binary itself,
//! the cache directory must only be writable by its user: compiled code is
//! trusted when its checksum matches.

use anyhow::Result;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// `$LEAFE_CACHE_DIR`, else `$XDG_CACHE_HOME/leafe`, else `~/.cache/leafe`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("LEAFE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("leafe")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/leafe")))
}

/// Where a component came from: compiled now or loaded from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
}

#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: PathBuf) -> Self {
        CompileCache { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, engine: &Engine, component_sha: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir
            .join(format!("{component_sha}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled component for `bytes`, from the cache when possible.
    /// Cache trouble (unreadable, damaged, unwritable) only costs a compile.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        component_sha: &str,
    ) -> Result<(Component, Origin)> {
        let path = self.entry(engine, component_sha);
        if let Some(component) = self.load(engine, &path) {
            return Ok((component, Origin::Cached));
        }
        let component = compile(engine, bytes)?;
        if let Ok(compiled) = component.serialize() {
            let _ = self.store(&path, &compiled);
        }
        Ok((component, Origin::Compiled))
    }

    fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let data = std::fs::read(path).ok()?;
        let (body, sum) = data.split_at_checked(data.len().checked_sub(64)?)?;
        if crate::util::hash::sha256_hex(body).as_bytes() != sum {
            let _ = std::fs::remove_file(path);
            return None;
        }
        // SAFETY: the bytes are what `Component::serialize` wrote for this
        // engine configuration (checked by the checksum and by wasmtime's own
        // header checks), in the user's own cache directory.
        unsafe { Component::deserialize(engine, body) }.ok()
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut data = compiled.to_vec();
        data.extend_from_slice(crate::util::hash::sha256_hex(compiled).as_bytes());
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, path)
    }
}

/// Compile without the cache.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("cannot compile the component: {e}"))
}

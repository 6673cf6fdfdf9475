//! On-disk cache of compiled components, so that a second start does not
//! run Cranelift again.
//!
//! An entry is keyed by the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version and settings). Beside it, a small
//! `.sum` file holds the SHA-256 of the compiled bytes and the file state
//! (length, modification time, inode) in which they were last checked. A
//! process whose entry is still in that state maps the file into memory
//! without reading it (the interpreter's entry is ~50 MB: reading and
//! hashing it every start cost most of a one-shot `exec`); any other state
//! (written, touched, replaced) means a full check first, and a damaged
//! entry is dropped and rebuilt. Files are written to temporary names and
//! renamed into place, so concurrent processes never see half of one. Like
//! the binary itself, the cache directory must only be writable by its
//! user: compiled code is trusted when its checksum matches.

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

    /// Whether an entry for the component exists (it may still be found
    /// damaged and rebuilt).
    pub fn has(&self, engine: &Engine, component_sha: &str) -> bool {
        let path = self.entry(engine, component_sha);
        path.exists() && path.with_extension("sum").exists()
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
        let sum_path = path.with_extension("sum");
        let sum = std::fs::read_to_string(&sum_path).ok()?;
        let (checksum, checked_state) = sum.split_once('\n')?;
        let state = file_state(path)?;
        if checked_state.trim() != state {
            let data = std::fs::read(path).ok()?;
            if crate::util::hash::sha256_hex(&data) != checksum {
                let _ = std::fs::remove_file(path);
                let _ = std::fs::remove_file(&sum_path);
                return None;
            }
            // Checked in this state: later starts map it without reading.
            let _ = write_renamed(&sum_path, format!("{checksum}\n{state}\n").as_bytes());
        }
        // SAFETY: the file is what `Component::serialize` wrote for this
        // engine configuration (its checksum matched in exactly this file
        // state, and wasmtime checks its own header), in the user's own cache
        // directory; entries are replaced by rename, never written in place.
        unsafe { Component::deserialize_file(engine, path) }.ok()
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_renamed(path, compiled)?;
        let state = file_state(path).ok_or_else(|| std::io::Error::other("entry vanished"))?;
        let sum = format!("{}\n{state}\n", crate::util::hash::sha256_hex(compiled));
        write_renamed(&path.with_extension("sum"), sum.as_bytes())
    }
}

/// `bytes` to a temporary file renamed to `path`.
fn write_renamed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What changes when a file is written or replaced: its length,
/// modification time and inode.
fn file_state(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    Some(format!("{} {modified} {inode}", meta.len()))
}

/// Compile without the cache.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("cannot compile the component: {e}"))
}

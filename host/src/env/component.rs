//! An environment component: where it comes from (a built-in name, a
//! built-in with data, a file), its bytes, and the compiled, linked form
//! that instances are made from.

use super::bindings::EnvPre;
use super::contract::EnvInfo;
use super::runtime::Runtime;
use crate::wasm::cache::Origin;
use crate::wasm::guest::{DATA_DIR, GuestSetup, GuestState};
use anyhow::{Context, Result, anyhow, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;

/// Where a component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Builtin(String),
    /// A built-in that reads a dataset, with the file or directory to read.
    BuiltinWithData(String, PathBuf),
    File(PathBuf),
}

impl Source {
    /// `NAME` of a built-in, `NAME:PATH` of a built-in that reads data
    /// (e.g. `codecontests:test.jsonl`), or a path (anything with a `/` or
    /// ending in `.wasm`).
    pub fn parse(spec: &str) -> Result<Source> {
        if let Some((name, data)) = spec.split_once(':')
            && let Some(builtin) = leafe_builtins::find(name)
        {
            if builtin.data.is_none() {
                bail!("environment '{name}' reads no data: use --env {name}");
            }
            return Ok(Source::BuiltinWithData(
                name.to_string(),
                PathBuf::from(data),
            ));
        }
        if spec.contains('/') || spec.contains('\\') || spec.ends_with(".wasm") {
            return Ok(Source::File(PathBuf::from(spec)));
        }
        if leafe_builtins::get(spec).is_some() {
            return Ok(Source::Builtin(spec.to_string()));
        }
        bail!(
            "unknown environment '{spec}' (built-in: {}; or give the path of a .wasm component)",
            leafe_builtins::names().join(", ")
        )
    }

    /// How the source is written in logs and on the command line.
    pub fn spec(&self) -> String {
        match self {
            Source::Builtin(name) => name.clone(),
            Source::BuiltinWithData(name, data) => format!("{name}:{}", data.display()),
            Source::File(path) => path.display().to_string(),
        }
    }
}

/// A compiled, checked environment component, ready to instantiate.
pub struct EnvComponent {
    pub runtime: Arc<Runtime>,
    pub source: Source,
    pub sha256: String,
    pub info: EnvInfo,
    pub pre: EnvPre<GuestState>,
    /// Arguments and data directory every instance is started with.
    pub setup: GuestSetup,
    /// Whether it imports `leafe:env/sandbox` (runs Python programs): its
    /// observations then depend on the sandbox component too.
    pub uses_sandbox: bool,
    /// Whether compiling was needed, and how long loading took.
    pub origin: Origin,
    pub load_time: Duration,
}

const WASM_MAGIC: &[u8] = b"\0asm";

pub(crate) fn read_source(source: &Source) -> Result<std::borrow::Cow<'static, [u8]>> {
    match source {
        Source::Builtin(name) | Source::BuiltinWithData(name, _) => leafe_builtins::get(name)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| anyhow!("unknown built-in environment '{name}'")),
        Source::File(path) => std::fs::read(path)
            .map(std::borrow::Cow::Owned)
            .with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Reject what is not a component before wasmtime gives a less direct error.
pub(crate) fn check_is_component(bytes: &[u8], what: &str) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        bail!("{what} is not a WebAssembly file");
    }
    if bytes[6..8] != [1, 0] {
        bail!(
            "{what} is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

impl EnvComponent {
    /// A new store for one instance of this component.
    pub fn new_store(&self, seed: u64) -> std::io::Result<Store<GuestState>> {
        let limits = self.runtime.limits;
        let state = GuestState::build(seed, limits.output_bytes, limits.memory_bytes, &self.setup)?;
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        crate::wasm::guest::enforce_wall_clock(&mut store);
        Ok(store)
    }

    /// The sha256 of the Python sandbox component its programs run in, if
    /// it runs programs (two builds of the interpreter component differ: see
    /// the README's "Safety and determinism").
    pub fn sandbox_sha256(&self) -> Option<&'static str> {
        self.uses_sandbox.then_some(leafe_builtins::PYTHON_SHA256)
    }
}

struct DataFiles {
    is_dir: bool,
}

/// Check what `NAME:PATH` gives before the component sees it: a `.jsonl`
/// file or a directory with some, whose lines start as `spec` says (the
/// first line of each file is checked; the component reports later ones).
fn data_files(path: &std::path::Path, spec: &leafe_builtins::DataSpec) -> Result<DataFiles> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("the directory holds no .jsonl files");
        }
        files
    } else {
        if path.extension().is_none_or(|x| x != "jsonl") {
            bail!("not a .jsonl file");
        }
        vec![path.to_path_buf()]
    };
    for file in &files {
        use std::io::BufRead;
        let reader = std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
        );
        let mut first = String::new();
        for line in reader.lines() {
            first = line.with_context(|| format!("cannot read {} as text", file.display()))?;
            if !first.trim().is_empty() {
                break;
            }
        }
        let value: serde_json::Value = serde_json::from_str(&first)
            .map_err(|e| anyhow!("{} line 1 is not JSON ({e})", file.display()))?;
        let missing: Vec<&str> = spec
            .keys
            .iter()
            .copied()
            .filter(|k| value.get(k).is_none())
            .collect();
        if !missing.is_empty() {
            bail!("{} line 1 has no {}", file.display(), missing.join(", "));
        }
    }
    Ok(DataFiles {
        is_dir: meta.is_dir(),
    })
}

/// The WASI arguments and data directory of `source`'s instances.
pub(crate) fn guest_setup(source: &Source) -> Result<GuestSetup> {
    let (name, data) = match source {
        Source::File(_) => return Ok(GuestSetup::default()),
        Source::Builtin(name) => (name, None),
        Source::BuiltinWithData(name, data) => (name, Some(data)),
    };
    let builtin = leafe_builtins::find(name)
        .ok_or_else(|| anyhow!("unknown built-in environment '{name}'"))?;
    let mut args: Vec<String> = std::iter::once(builtin.name)
        .chain(builtin.args.iter().copied())
        .map(str::to_string)
        .collect();
    let mut data_dir = None;
    if let Some(data) = data {
        let spec = builtin
            .data
            .as_ref()
            .ok_or_else(|| anyhow!("environment '{name}' reads no data"))?;
        let files = data_files(data, spec)
            .with_context(|| format!("{name}:{}: expected {}", data.display(), spec.expected))?;
        let data = data
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", data.display()))?;
        if files.is_dir {
            args.push(DATA_DIR.to_string());
            data_dir = Some(data);
        } else {
            let file = data.file_name().map(|f| f.to_string_lossy().into_owned());
            let (Some(file), Some(dir)) = (file, data.parent()) else {
                bail!("{} is not a data file", data.display());
            };
            args.push(format!("{DATA_DIR}/{file}"));
            data_dir = Some(dir.to_path_buf());
        }
    }
    Ok(GuestSetup {
        args,
        stdin: Vec::new(),
        data_dir,
    })
}

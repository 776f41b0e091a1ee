//! One wasmtime `Engine` per test process, and each module compiled and linked once
//! (`InstancePre`), however many `Host`s a test creates. Compiled code is also cached on disk
//! under `<target>/wasmtime-cache`, so separate test binaries do not recompile the filter.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, Context as _, Result};
use wasmtime::{Cache, CacheConfig, Config, Engine, InstancePre, Linker, Module, OptLevel};

use crate::imports;
use crate::state::VmState;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Path(PathBuf),
    Bytes(u64, usize),
}

/// `HARNESS_FUEL` is set: every VM counts the Wasm instructions it runs ([`crate::Host::fuel_used`]).
pub(crate) fn fuel_metered() -> bool {
    std::env::var_os("HARNESS_FUEL").is_some()
}

fn engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            // Tests run the module briefly: compile fast rather than produce fast code
            // (this crate's cranelift is usually built without optimisation).
            config.cranelift_opt_level(OptLevel::None);
            // Wasm instructions counted (wasmtime's fuel) when asked: the speed probe's steady
            // figure on a shared machine, where times move by tens of percent.
            config.consume_fuel(fuel_metered());
            let mut cache = CacheConfig::new();
            cache.with_directory(crate::target_dir().join("wasmtime-cache"));
            // A cache that cannot start only costs compile time.
            config.cache(Cache::new(cache).ok());
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow!("cannot create the wasmtime engine: {e}"))
}

fn load(key: Key, compile: impl FnOnce(&Engine) -> Result<Module>) -> Result<InstancePre<VmState>> {
    static MODULES: OnceLock<Mutex<HashMap<Key, InstancePre<VmState>>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| anyhow!("module cache poisoned by a panic in another test thread"))?;
    if let Some(pre) = modules.get(&key) {
        return Ok(pre.clone());
    }
    let engine = engine()?;
    let module = compile(engine)?;
    let pre = link(engine, &module)?;
    modules.insert(key, pre.clone());
    Ok(pre)
}

fn link(engine: &Engine, module: &Module) -> wasmtime::Result<InstancePre<VmState>> {
    let mut linker: Linker<VmState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut VmState| &mut state.wasi)?;
    imports::add_to_linker(&mut linker)?;
    // Anything else the module imports (gRPC calls, ...) traps loudly if it is ever called.
    linker.define_unknown_imports_as_traps(module)?;
    linker.instantiate_pre(module)
}

pub(crate) fn load_file(path: &Path) -> Result<InstancePre<VmState>> {
    let path = path
        .canonicalize()
        .with_context(|| format!("cannot open {}", path.display()))?;
    load(Key::Path(path.clone()), |engine| {
        Module::from_file(engine, &path)
            .map_err(|e| anyhow!("cannot compile {}: {e:?}", path.display()))
    })
}

pub(crate) fn load_bytes(bytes: &[u8]) -> Result<InstancePre<VmState>> {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    load(Key::Bytes(hasher.finish(), bytes.len()), |engine| {
        Module::new(engine, bytes).map_err(|e| anyhow!("cannot compile the module: {e:?}"))
    })
}

//! Accepting a rule: size and format checks, refusal of any import but the interface's own
//! `log` and `begin-context`, conversion of a wit-bindgen core module into a component, compilation, and the
//! check that it exports the rule interface. All of this happens at upload, never on the
//! request path.

use std::time::{Duration, Instant};

use wasmparser::Parser;
use wasmtime::component::Component;

use super::Sandbox;
use super::bindings::{EncodedPolicyPre, PolicyPre};
use super::host::{BEGIN_IMPORT, HostState, LOG_IMPORT};

/// The interface's own type definitions, which a component imports as (empty) instances: the
/// types of 1.0.0, 1.1.0 and 1.2.0 (the same), and the declared parameters' types of 1.1.0
/// and 1.2.0 (the same).
const TYPE_IMPORTS: [&str; 5] = [
    "pricing:policy/types@1.0.0",
    "pricing:policy/types@1.1.0",
    "pricing:policy/types@1.2.0",
    "pricing:policy/params@1.1.0",
    "pricing:policy/params@1.2.0",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the module is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the upload is not a WebAssembly module or component")]
    NotWasm,
    #[error(
        "the module imports `{0}`; rules may import only the interface's `log` and `begin-context` (no WASI, clock, network or files)"
    )]
    ForbiddenImport(String),
    #[error("the module does not implement the pricing:policy interface (1.0.0, 1.1.0 or 1.2.0): {0}")]
    NoInterface(String),
    #[error("the module is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error("the rule's declared parameters cannot be used: {0}")]
    BadParams(String),
}

impl UploadError {
    /// A stable snake_case name for the reason, for API error details.
    pub fn kind(&self) -> &'static str {
        match self {
            UploadError::TooLarge { .. } => "too_large",
            UploadError::NotWasm => "not_wasm",
            UploadError::ForbiddenImport(_) => "forbidden_import",
            UploadError::NoInterface(_) => "no_interface",
            UploadError::Invalid(_) => "invalid",
            UploadError::BadParams(_) => "bad_params_schema",
        }
    }
}

/// A compiled rule ready to instantiate (cheap to clone).
#[derive(Clone)]
pub struct PreparedRule {
    pub(super) pre: PolicyPre<HostState>,
    /// The batch-in-one-buffer entry point, when the rule exports it (1.2.0): every context
    /// goes through it then.
    pub(super) encoded: Option<EncodedPolicyPre<HostState>>,
    /// Whether the rule imports `begin-context`, so a batch call can be split by context.
    pub(super) marks_contexts: bool,
    /// Set once a batch call of this rule failed outside any context (bad marks, a trap or
    /// spin before the first mark or after the last): its batches are not tried again, so the
    /// fallback to one call per context is paid once per prepared version, not per batch.
    pub(super) batch_unusable: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PreparedRule {
    /// Whether the rule marks its contexts (rules built with an SDK from before the mark do
    /// not, and are evaluated one context per call).
    pub fn marks_contexts(&self) -> bool {
        self.marks_contexts
    }

    /// Whether contexts reach it in one buffer (`evaluate-encoded`, a rule built for 1.2.0).
    pub fn takes_encoded_batches(&self) -> bool {
        self.encoded.is_some()
    }

    /// The same rule called as a 1.1.0 rule is (`evaluate`, `evaluate-batch`), for the
    /// benchmark and the tests that hold the two entry points to each other.
    pub fn lowered(&self) -> PreparedRule {
        PreparedRule { encoded: None, batch_unusable: Default::default(), ..self.clone() }
    }

    /// Whether its batch calls are still tried (see `sandbox::batch`).
    pub fn batch_usable(&self) -> bool {
        !self.batch_unusable.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The result of accepting an upload.
pub struct CompiledRule {
    /// The rule as a component (what is stored, and recompiled from if ever needed).
    pub component: Vec<u8>,
    /// Native code for this engine, so a restart loads the rule without compiling it again.
    pub artifact: Vec<u8>,
    pub compile_time: Duration,
    pub rule: PreparedRule,
    /// The parameters the rule declares (1.1.0), if it declares them.
    pub schema: Option<crate::domain::params::ParamsSchema>,
}

impl Sandbox {
    pub fn compile(&self, upload: &[u8]) -> Result<CompiledRule, UploadError> {
        let limit = self.settings.max_module_bytes;
        if upload.len() > limit {
            return Err(UploadError::TooLarge { size: upload.len(), limit });
        }
        let started = Instant::now();
        let component_bytes = if Parser::is_component(upload) {
            upload.to_vec()
        } else if Parser::is_core_wasm(upload) {
            check_core_imports(upload)?;
            wit_component::ComponentEncoder::default()
                .module(upload)
                .and_then(|encoder| encoder.validate(true).encode())
                .map_err(|e| UploadError::NoInterface(format!("{e:#}")))?
        } else {
            return Err(UploadError::NotWasm);
        };
        let component =
            Component::new(&self.engine, &component_bytes).map_err(|e| UploadError::Invalid(format!("{e:#}")))?;
        let rule = self.prepare(&component)?;
        let schema = self.read_schema(&component, &rule)?;
        let artifact = component.serialize().map_err(|e| UploadError::Invalid(format!("{e:#}")))?;
        Ok(CompiledRule { component: component_bytes, artifact, compile_time: started.elapsed(), rule, schema })
    }

    /// Loads a stored rule: from its artifact when this engine can run it, else by compiling
    /// its component again (after an upgrade of the service, say).
    pub fn load(&self, artifact: &[u8], component: &[u8]) -> Result<PreparedRule, UploadError> {
        self.load_or_recompile(artifact, component).map(|(rule, _)| rule)
    }

    /// [`Self::load`], also giving the new artifact when the stored one was unusable and the
    /// rule was compiled again (so that the caller can keep it, and the next start loads it).
    pub fn load_or_recompile(
        &self,
        artifact: &[u8],
        component: &[u8],
    ) -> Result<(PreparedRule, Option<Vec<u8>>), UploadError> {
        // SAFETY: artifacts are produced by `Component::serialize` in `compile` and kept in the
        // service's own store, which the service trusts as it trusts its own binary; wasmtime
        // checks that the artifact was made by this version and configuration of the engine.
        let loaded = unsafe { Component::deserialize(&self.engine, artifact) };
        let (component, recompiled) = match loaded {
            Ok(component) => (component, None),
            Err(e) => {
                tracing::info!(error = %e, "stored rule artifact not usable by this engine; recompiling");
                let component =
                    Component::new(&self.engine, component).map_err(|e| UploadError::Invalid(format!("{e:#}")))?;
                let artifact = component.serialize().map_err(|e| UploadError::Invalid(format!("{e:#}")))?;
                (component, Some(artifact))
            }
        };
        Ok((self.prepare(&component)?, recompiled))
    }

    fn prepare(&self, component: &Component) -> Result<PreparedRule, UploadError> {
        let imports: Vec<String> =
            component.component_type().imports(&self.engine).map(|(name, _)| name.to_owned()).collect();
        if let Some(name) =
            imports.iter().find(|name| !(is_function_import(name) || TYPE_IMPORTS.contains(&name.as_str())))
        {
            return Err(UploadError::ForbiddenImport(name.clone()));
        }
        let marks_contexts = imports.iter().any(|name| name == BEGIN_IMPORT);
        let instance_pre =
            self.linker.instantiate_pre(component).map_err(|e| UploadError::NoInterface(format!("{e:#}")))?;
        let pre = PolicyPre::new(instance_pre.clone()).map_err(|e| UploadError::NoInterface(format!("{e:#}")))?;
        // A rule without the export is one of 1.0.0 or 1.1.0; one whose export has another
        // type is refused rather than silently run the old way.
        let encoded = match exports_encoded(component, &self.engine) {
            false => None,
            true => Some(EncodedPolicyPre::new(instance_pre).map_err(|e| UploadError::NoInterface(format!("{e:#}")))?),
        };
        Ok(PreparedRule { pre, encoded, marks_contexts, batch_unusable: Default::default() })
    }
}

/// The export that makes a component a 1.2.0 rule.
const ENCODED_EXPORT: &str = "evaluate-encoded";

fn exports_encoded(component: &Component, engine: &wasmtime::Engine) -> bool {
    component.component_type().exports(engine).any(|(name, _)| name == ENCODED_EXPORT)
}

fn is_function_import(name: &str) -> bool {
    name == LOG_IMPORT || name == BEGIN_IMPORT
}

/// A core module may import only the world's functions (which wit-bindgen puts under `$root`).
fn check_core_imports(module: &[u8]) -> Result<(), UploadError> {
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(|e| UploadError::Invalid(e.to_string()))?;
        if let wasmparser::Payload::ImportSection(reader) = payload {
            for import in reader.into_imports() {
                let import = import.map_err(|e| UploadError::Invalid(e.to_string()))?;
                if !(import.module == "$root" && [LOG_IMPORT, BEGIN_IMPORT].contains(&import.name)) {
                    return Err(UploadError::ForbiddenImport(format!("{}::{}", import.module, import.name)));
                }
            }
        }
    }
    Ok(())
}

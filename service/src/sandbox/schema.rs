//! Reading a rule's declared parameters (`params-schema`, `pricing:policy@1.1.0`) at upload:
//! one call on a fresh instance, with one evaluation's fuel, deadline and memory, so a hostile
//! declaration costs what one hostile evaluation would. The answer is checked like any other
//! guest output ([`ParamsSchema::check`]); a rule that traps or declares nonsense is refused.

use wasmtime::component::Component;

use super::bindings::{self, ParamKind, TypedPolicyPre};
use super::run::{Phase, classify};
use super::{PreparedRule, Sandbox, UploadError};
use crate::domain::params::{self, ParamSpec, ParamsSchema};

/// The export that makes a component a 1.1.0 rule with declared parameters.
pub(super) const SCHEMA_EXPORT: &str = "params-schema";

impl Sandbox {
    /// The parameters `rule` declares: `None` for a rule without the export (1.0.0) or one that
    /// answers `none` (untyped).
    pub(super) fn read_schema(
        &self,
        component: &Component,
        rule: &PreparedRule,
    ) -> Result<Option<ParamsSchema>, UploadError> {
        let exports_schema = component.component_type().exports(&self.engine).any(|(name, _)| name == SCHEMA_EXPORT);
        if !exports_schema {
            return Ok(None);
        }
        let refused = |why: String| UploadError::BadParams(why);
        let typed = TypedPolicyPre::new(rule.pre.instance_pre().clone()).map_err(|e| refused(format!("{e:#}")))?;
        let allowance = self.allowance(1);
        let mut store = self.new_store(self.settings.log_bytes);
        store.set_fuel(allowance.fuel).expect("fuel is enabled on the engine");
        store.set_epoch_deadline(allowance.ticks);
        let answer = typed.instantiate(&mut store).and_then(|policy| policy.call_params_schema(&mut store));
        let specs = match answer {
            Ok(None) => return Ok(None),
            Ok(Some(specs)) => specs,
            Err(e) => {
                let error = classify(e, &store, allowance.fuel, self.settings.deadline_ms, Phase::Call);
                return Err(refused(format!("`params-schema` failed: {error}")));
            }
        };
        ParamsSchema::check(specs.into_iter().map(from_guest).collect()).map(Some).map_err(refused)
    }
}

fn from_guest(spec: bindings::ParamSpec) -> ParamSpec {
    let bounds = |b: bindings::Bounds| params::Bounds { min: b.min, max: b.max };
    let kind = match spec.kind {
        ParamKind::Integer(b) => params::ParamKind::Integer { bounds: bounds(b) },
        ParamKind::Money(b) => params::ParamKind::Money { bounds: bounds(b) },
        ParamKind::Bps(b) => params::ParamKind::Bps { bounds: bounds(b) },
        ParamKind::Boolean => params::ParamKind::Boolean,
        ParamKind::Text(max_bytes) => params::ParamKind::Text { max_bytes },
        ParamKind::OneOf(values) => params::ParamKind::OneOf { values },
    };
    let default = spec.default.map(|value| match value {
        bindings::Value::Text(s) => serde_json::Value::String(s),
        bindings::Value::Boolean(b) => serde_json::Value::Bool(b),
        // A whole number stays an integer in JSON (so it checks as one); a fraction is kept
        // as it is and refused by the check as no value of a whole-number kind.
        bindings::Value::Number(n) if n.fract() == 0.0 && n.abs() <= params::MAX_EXACT_WHOLE as f64 => {
            serde_json::Value::from(n as i64)
        }
        bindings::Value::Number(n) => serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into),
    });
    ParamSpec { name: spec.name, kind, default, optional: spec.optional, description: spec.description }
}

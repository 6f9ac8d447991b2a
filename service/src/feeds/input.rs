//! The signals a feed sends, as it sends them, and their checks: competitor observations and
//! demand events, the same JSON over HTTP (a batch, or one entry per NDJSON line) and over
//! JetStream (an entry or a batch per message). Every entry of a batch is checked before any
//! is stored, and a batch with a bad entry is refused whole.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::PricingSettings;
use crate::domain::{Currency, Invalid, MAX_AMOUNT_MINOR, Money, Sku};
use crate::store::{DemandEvent, DemandKind, Observation};

/// How far in the future a signal's time may be (clock skew between feed and service).
const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// How old a signal may be: older ones can no longer reach any rule (demand windows end at 30
/// days, an offer that old is long stale), and far-off times are mistakes.
const MAX_AGE_DAYS: i64 = 366;
/// Entries a batch body may hold at all, checked while it is parsed: a body cannot make the
/// service build a huge list only to refuse it afterwards (`pricing.max_signal_batch` is then
/// checked, and may be lower).
pub const MAX_PARSED_BATCH: usize = 100_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationInput {
    /// The feed's id for this observation: the same id again is the same observation.
    #[schema(min_length = 1, max_length = 128)]
    pub id: String,
    #[schema(value_type = Sku)]
    pub sku: String,
    #[schema(min_length = 1, max_length = 128)]
    pub competitor: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub price_minor: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub in_stock: bool,
    /// Within the last 366 days, and at most 5 minutes ahead of the service's clock.
    pub observed_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationBatch {
    /// 1 to `pricing.max_signal_batch` (10000 by default); a body of more than 100000 is not
    /// read to its end.
    #[serde(deserialize_with = "bounded")]
    #[schema(min_items = 1, max_items = 100_000)]
    pub observations: Vec<ObservationInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandInput {
    /// The feed's id for this event: the same id again is the same event.
    #[schema(min_length = 1, max_length = 128)]
    pub id: String,
    #[schema(value_type = Sku)]
    pub sku: String,
    pub kind: DemandKind,
    /// Views, add-to-carts or units sold; for `inventory`, the stock level.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub quantity: i64,
    /// Within the last 366 days, and at most 5 minutes ahead of the service's clock.
    pub occurred_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandBatch {
    /// 1 to `pricing.max_signal_batch` (10000 by default); a body of more than 100000 is not
    /// read to its end.
    #[serde(deserialize_with = "bounded")]
    #[schema(min_items = 1, max_items = 100_000)]
    pub events: Vec<DemandInput>,
}

fn check_batch(len: usize, field: &str, settings: &PricingSettings) -> Result<(), Invalid> {
    if len == 0 || len > settings.max_signal_batch {
        return Err(Invalid::one(
            field,
            format!("a batch holds 1 to {} entries, got {len}", settings.max_signal_batch),
        ));
    }
    Ok(())
}

fn check_id(id: &str, field: String, invalid: &mut Invalid) {
    if !(1..=128).contains(&id.chars().count()) {
        invalid.push(field, "ids are 1 to 128 characters");
    } else if id.chars().any(char::is_control) {
        invalid.push(field, "ids hold no control characters");
    }
}

fn check_name(name: &str, field: String, invalid: &mut Invalid) {
    if !(1..=128).contains(&name.chars().count()) {
        invalid.push(field, "1 to 128 characters");
    } else if name.chars().any(char::is_control) {
        invalid.push(field, "holds no control characters");
    }
}

fn check_time(at: DateTime<Utc>, field: String, invalid: &mut Invalid) {
    let now = Utc::now();
    if at > now + Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        invalid.push(field, "is in the future");
    } else if at < now - Duration::days(MAX_AGE_DAYS) {
        invalid.push(field, format!("is more than {MAX_AGE_DAYS} days old"));
    }
}

/// A list that stops being read past [`MAX_PARSED_BATCH`] entries.
fn bounded<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_PARSED_BATCH} entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_PARSED_BATCH {
                    return Err(serde::de::Error::custom(format!("a batch holds at most {MAX_PARSED_BATCH} entries")));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded(std::marker::PhantomData))
}

/// Observations the merchant vouches for although they are implausible.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// At most 1000 (SKU, competitor) pairs: their stored (latest) observations.
    #[schema(max_items = 1000)]
    pub observations: Vec<ConfirmedObservation>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedObservation {
    #[schema(value_type = Sku)]
    pub sku: String,
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")]
    pub competitor: String,
}

/// The most pairs one confirmation holds.
pub const MAX_CONFIRMATIONS: usize = 1_000;

impl Confirmation {
    /// The (SKU, competitor) pairs, or every problem with them.
    pub fn check(self) -> Result<Vec<(Sku, String)>, Invalid> {
        let mut invalid = Invalid::new();
        if self.observations.len() > MAX_CONFIRMATIONS {
            invalid.push("observations", format!("at most {MAX_CONFIRMATIONS}"));
            return Err(invalid);
        }
        let mut pairs = Vec::new();
        for (i, o) in self.observations.into_iter().enumerate() {
            check_name(&o.competitor, format!("observations[{i}].competitor"), &mut invalid);
            match Sku::parse(&o.sku) {
                Ok(sku) => pairs.push((sku, o.competitor)),
                Err(e) => invalid.push(format!("observations[{i}].sku"), e.to_string()),
            }
        }
        invalid.or_ok(|| pairs)
    }
}

impl ObservationInput {
    /// The observation, or what is wrong with it (every problem, each under `field(name)`).
    pub fn check(self, field: impl Fn(&str) -> String, invalid: &mut Invalid) -> Option<Observation> {
        check_id(&self.id, field("id"), invalid);
        check_time(self.observed_at, field("observed_at"), invalid);
        check_name(&self.competitor, field("competitor"), invalid);
        if !(1..=MAX_AMOUNT_MINOR).contains(&self.price_minor) {
            invalid.push(field("price_minor"), format!("must be between 1 and {MAX_AMOUNT_MINOR}"));
        }
        let sku = Sku::parse(&self.sku).map_err(|e| invalid.push(field("sku"), e.to_string())).ok();
        let currency = Currency::parse(&self.currency).map_err(|e| invalid.push(field("currency"), e.to_string())).ok();
        Some(Observation {
            id: self.id,
            sku: sku?,
            competitor: self.competitor,
            price: Money::new(self.price_minor, currency?),
            in_stock: self.in_stock,
            observed_at: self.observed_at,
        })
    }
}

impl DemandInput {
    /// The event, or what is wrong with it (every problem, each under `field(name)`).
    pub fn check(self, field: impl Fn(&str) -> String, invalid: &mut Invalid) -> Option<DemandEvent> {
        check_id(&self.id, field("id"), invalid);
        check_time(self.occurred_at, field("occurred_at"), invalid);
        if !(0..=1_000_000_000).contains(&self.quantity) {
            invalid.push(field("quantity"), "must be between 0 and 1000000000");
        }
        let sku = Sku::parse(&self.sku).map_err(|err| invalid.push(field("sku"), err.to_string())).ok()?;
        Some(DemandEvent { id: self.id, sku, kind: self.kind, quantity: self.quantity, occurred_at: self.occurred_at })
    }
}

/// Checks every entry of a JSON batch before any is stored (every problem at once).
fn check_all<I, S>(
    batch: Vec<I>,
    name: &str,
    settings: &PricingSettings,
    check: impl Fn(I, &dyn Fn(&str) -> String, &mut Invalid) -> Option<S>,
) -> Result<Vec<S>, Invalid> {
    check_batch(batch.len(), name, settings)?;
    let mut invalid = Invalid::new();
    let mut checked = Vec::with_capacity(batch.len());
    for (i, entry) in batch.into_iter().enumerate() {
        let field = |field: &str| format!("{name}[{i}].{field}");
        checked.extend(check(entry, &field, &mut invalid));
    }
    invalid.or_ok(|| checked)
}

impl ObservationBatch {
    /// The observations, every entry checked before any is stored (every problem at once).
    pub fn into_observations(self, settings: &PricingSettings) -> Result<Vec<Observation>, Invalid> {
        check_all(self.observations, "observations", settings, |o, field, invalid| o.check(field, invalid))
    }
}

impl DemandBatch {
    /// The demand events, every entry checked before any is stored (every problem at once).
    pub fn into_events(self, settings: &PricingSettings) -> Result<Vec<DemandEvent>, Invalid> {
        check_all(self.events, "events", settings, |e, field, invalid| e.check(field, invalid))
    }
}

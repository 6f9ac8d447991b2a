//! Price events to merchants' webhooks: each enabled webhook is an outbox channel of its own
//! (its cursor starts at the merchant's chain head when it is made), delivered as a `POST` of
//! `{"webhook_id", "events": [PriceEvent...]}` (up to `webhooks.batch` events, in chain order)
//! with the headers
//!
//! - `Pricing-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`
//!   (a receiver recomputes it, compares in constant time, and refuses an old `t` to stop
//!   replays);
//! - `Pricing-Webhook-Id`, and `Pricing-Delivery-Attempt` (1 for a batch's first try).
//!
//! Any `2xx` answer within `webhooks.timeout_ms` is a delivery; anything else (an error status,
//! a redirect, which is not followed, a timeout, a refused connection) is a failure: the batch
//! is tried again after a backoff (`webhooks.retry_base_ms` doubled each time, at most
//! `webhooks.retry_max_secs`), and after `webhooks.max_failures` failures in a row the webhook
//! is disabled with the reason (`POST /v1/webhooks/{id}/enable` resumes it where it stopped:
//! the outbox kept its events). Every attempt is logged (`GET /v1/webhooks/{id}/deliveries`).
//!
//! Addresses: unless `webhooks.allow_private_addresses` is set, a webhook must be `https` and
//! its host must not be or resolve to a loopback, private, link-local or otherwise internal
//! address; the check is made at every connection by the client's resolver, so a name that
//! later resolves elsewhere gains nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde::Serialize;

use super::{Channel, PriceEvent, owner_id, publish_cursor};
use crate::config::WebhookSettings;
use crate::domain::MerchantId;
use crate::metrics::Metrics;
use crate::store::outbox::PriceChange;
use crate::store::webhooks::{Delivery, Webhook};
use crate::store::{Store, now};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How often due webhooks are looked for.
const POLL: Duration = Duration::from_millis(200);

/// The `Pricing-Signature` header's value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new webhook secret: 32 random bytes, hex, prefixed so that it is recognisable in a leak.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!("whsec_{}", hex::encode(bytes))
}

/// Whether an address is one a webhook may not reach (unless private addresses are allowed).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Checks a webhook URL as given by a merchant: why it is refused, if it is.
pub fn check_url(text: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    if text.len() > 2048 {
        return Err("at most 2048 characters".into());
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("must be https".into()),
        other => return Err(format!("`{other}` is not a webhook scheme: use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the signature authenticates deliveries".into());
    }
    let host = url.host_str().ok_or("must name a host")?;
    if !allow_private {
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        // Other names that resolve to internal addresses are refused by the resolver.
        if literal.is_some_and(is_internal) || host.eq_ignore_ascii_case("localhost") {
            return Err("must not point at a loopback, private or internal address".into());
        }
    }
    Ok(url)
}

/// Resolves names as the system does, and refuses internal addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of deliveries.
pub fn client(settings: &WebhookSettings) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pricing-webhooks/", env!("CARGO_PKG_VERSION")));
    if !settings.allow_private_addresses {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().expect("the webhook client builds")
}

#[derive(Serialize)]
struct Body<'a> {
    webhook_id: String,
    events: &'a [PriceEvent],
}

/// One webhook, as a channel.
struct Endpoint<'a> {
    hook: Webhook,
    channel: String,
    client: &'a reqwest::Client,
    store: &'a Store,
    settings: &'a WebhookSettings,
    metrics: &'a Metrics,
}

impl Endpoint<'_> {
    /// Sends one batch; the status code when one came back, and why it failed if it did.
    async fn send(&self, events: &[PriceEvent]) -> (Option<i64>, Result<(), String>) {
        if let Err(why) = check_url(&self.hook.url, self.settings.allow_private_addresses) {
            return (None, Err(format!("the URL is refused: {why}")));
        }
        let body =
            serde_json::to_vec(&Body { webhook_id: self.hook.id.to_string(), events }).expect("events serialize");
        let t = now().timestamp();
        let sent = self
            .client
            .post(&self.hook.url)
            .header("content-type", "application/json")
            .header("pricing-signature", signature(&self.hook.secret, t, &body))
            .header("pricing-webhook-id", self.hook.id.to_string())
            .header("pricing-delivery-attempt", (self.hook.failures + 1).to_string())
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => (Some(i64::from(answer.status().as_u16())), Ok(())),
            Ok(answer) => (Some(i64::from(answer.status().as_u16())), Err(format!("answered {}", answer.status()))),
            Err(e) if e.is_timeout() => (None, Err(format!("no answer within {} ms", self.settings.timeout_ms))),
            Err(e) => (None, Err(error_chain(&e))),
        }
    }

    fn retry_at(&self) -> chrono::DateTime<chrono::Utc> {
        let doublings = self.hook.failures.clamp(0, 20) as u32;
        let wait_ms =
            self.settings.retry_base_ms.saturating_mul(1 << doublings).min(self.settings.retry_max_secs * 1000);
        now() + chrono::Duration::milliseconds(wait_ms as i64)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Channel for Endpoint<'_> {
    fn name(&self) -> &str {
        &self.channel
    }

    async fn deliver(&mut self, _: MerchantId, changes: &[PriceChange]) -> Result<usize, String> {
        let events: Vec<PriceEvent> = changes.iter().map(PriceEvent::from).collect();
        let started = Instant::now();
        let attempt_at = now();
        let (status_code, outcome) = self.send(&events).await;
        let delivery = Delivery {
            attempt_at,
            attempt: self.hook.failures + 1,
            first_seq: changes.first().map_or(0, |c| c.seq),
            last_seq: changes.last().map_or(0, |c| c.seq),
            events: changes.len() as i64,
            status_code,
            error: outcome.as_ref().err().cloned(),
            duration_ms: started.elapsed().as_millis() as i64,
            delivered: outcome.is_ok(),
        };
        if outcome.is_err() {
            self.metrics.record_webhook_failure();
        }
        match self.store.record_delivery(&self.hook, &delivery, self.retry_at(), self.settings.max_failures).await {
            Ok(now_stored) => {
                if now_stored.disabled_at.is_some() {
                    tracing::warn!(webhook_id = %self.hook.id, merchant_id = %self.hook.merchant,
                        reason = now_stored.disabled_reason.as_deref().unwrap_or(""), "webhook disabled");
                }
                self.hook = now_stored;
            }
            Err(e) => tracing::warn!(webhook_id = %self.hook.id, error = %e, "a webhook delivery could not be logged"),
        }
        outcome.map(|()| changes.len())
    }
}

/// Delivers in the background until the store is closed.
pub fn start(settings: WebhookSettings, store: Store, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let owner = owner_id();
        let client = client(&settings);
        while !store.is_closed() {
            let mut busy = false;
            match store.due_webhooks(now()).await {
                Ok(hooks) => {
                    let mut behind = 0;
                    for hook in hooks {
                        let channel = hook.channel();
                        let merchant = hook.merchant;
                        let mut endpoint = Endpoint {
                            hook,
                            channel,
                            client: &client,
                            store: &store,
                            settings: &settings,
                            metrics: &metrics,
                        };
                        match publish_cursor(&store, &mut endpoint, &owner, merchant, settings.batch.max(1)).await {
                            Ok(pass) => {
                                metrics.record_price_events("webhooks", pass.published as u64);
                                busy |= pass.published > 0 && pass.behind > 0;
                                behind += pass.behind;
                            }
                            Err(e) => tracing::warn!(error = %e, "reading a webhook's outbox failed; trying again"),
                        }
                    }
                    metrics.set_outbox_depth("webhooks", behind);
                }
                Err(e) => tracing::warn!(error = %e, "listing due webhooks failed; trying again"),
            }
            if !busy {
                tokio::time::sleep(POLL).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        let a = signature("whsec_x", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1=") && a.len() == "t=1700000000,v1=".len() + 64, "{a}");
        assert_ne!(a, signature("whsec_x", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("whsec_x", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("whsec_y", 1_700_000_000, b"{}"));
    }

    #[test]
    fn internal_addresses_and_other_schemes_are_refused() {
        for bad in [
            "http://example.com/hook",
            "ftp://example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://[::ffff:192.168.0.1]/hook",
            "https://localhost/hook",
            "https://user:pw@example.com/hook",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }
}

//! The review page at `/ui` and its assets (`/ui/app.js`, `/ui/app.css`, `/ui/favicon.svg`),
//! compiled into the binary from `service/ui/`, so the page needs nothing at run time but this
//! service: no network, no CDN, no build step.
//!
//! Decisions written down here:
//! - Plain HTML, CSS and vanilla JavaScript, with the chart drawn as inline SVG: one chart and
//!   one table do not justify a framework, a bundler, or a toolchain that would have to be
//!   downloaded to build the service.
//! - The page itself is public (it holds no data); the data comes from the JSON API, called by
//!   the page with the key the user gives, under the API's own roles (auditor or merchant).
//! - The key may be passed as `/ui#key=...&sku=...`: a URL fragment never reaches the server, so
//!   the key is neither logged nor sent as a referrer. The page moves it to the tab's session
//!   storage at once and drops it from the address bar.
//! - A Content-Security-Policy allows this origin only (scripts, styles, fetches, images) and no
//!   inline script, so that a merchant's text shown in the page (explanations, tags) cannot run.
//! - `Cache-Control: no-cache` with an ETag: the assets change when the binary does, under the
//!   same URLs, so a browser revalidates each time and gets a 304 while they are unchanged.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use super::extract::resource;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset { body: include_str!("../../ui/index.html"), content_type: "text/html; charset=utf-8" };
const APP_JS: Asset = Asset { body: include_str!("../../ui/app.js"), content_type: "text/javascript; charset=utf-8" };
const APP_CSS: Asset = Asset { body: include_str!("../../ui/app.css"), content_type: "text/css; charset=utf-8" };
const FAVICON: Asset = Asset { body: include_str!("../../ui/favicon.svg"), content_type: "image/svg+xml" };

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/ui").get(index))
        .service(resource("/ui/").get(to_index))
        .service(resource("/ui/app.js").get(app_js))
        .service(resource("/ui/app.css").get(app_css))
        .service(resource("/ui/favicon.svg").get(favicon));
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &INDEX)
}

async fn app_js(req: HttpRequest) -> HttpResponse {
    serve(&req, &APP_JS)
}

async fn app_css(req: HttpRequest) -> HttpResponse {
    serve(&req, &APP_CSS)
}

async fn favicon(req: HttpRequest) -> HttpResponse {
    serve(&req, &FAVICON)
}

/// `/ui/` is a likely typo for the page; the browser keeps the fragment across the redirect.
async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/ui")).finish()
}

fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    // Hashing a few kilobytes per request is cheaper than anything worth caching for a page
    // that a handful of auditors open.
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(asset.body.as_bytes())[..12]));
    let unchanged = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').map(|tag| tag.trim().trim_start_matches("W/")).any(|tag| tag == etag || tag == "*")
    });
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if unchanged { response.finish() } else { response.content_type(asset.content_type).body(asset.body) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    /// A space-separated list of codes the page's script declares as `const NAME = '...'`.
    fn script_list(name: &str) -> Vec<&'static str> {
        let marker = format!("const {name} = '");
        let start = APP_JS.body.find(&marker).unwrap_or_else(|| panic!("app.js declares {name}")) + marker.len();
        let rest = &APP_JS.body[start..];
        rest[..rest.find('\'').expect("the list ends")].split(' ').collect()
    }

    /// The page formats money itself, so its exponents must be the service's: every code of
    /// three letters is tried against both tables.
    #[test]
    fn the_page_formats_every_currency_with_the_services_exponent() {
        let (zero, three) = (script_list("ZERO_DECIMALS"), script_list("THREE_DECIMALS"));
        let letters = b'A'..=b'Z';
        for code in letters.clone().flat_map(|a| {
            let letters = letters.clone();
            letters.clone().flat_map(move |b| letters.clone().map(move |c| String::from_utf8(vec![a, b, c]).unwrap()))
        }) {
            let on_page =
                [(&zero, 0), (&three, 3)].iter().find(|(list, _)| list.contains(&code.as_str())).map(|(_, e)| *e);
            match Currency::parse(&code) {
                Ok(currency) => assert_eq!(currency.exponent(), on_page.unwrap_or(2), "{code}"),
                Err(_) => assert_eq!(on_page, None, "the page lists {code}, which the service does not know"),
            }
        }
    }

    /// Every asset the page links to is one this module serves, and none is from elsewhere.
    #[test]
    fn the_page_links_only_to_its_own_assets() {
        for link in INDEX.body.split(['"', '\'']).filter(|part| part.starts_with('/') || part.contains("://")) {
            assert!(["/ui/app.js", "/ui/app.css", "/ui/favicon.svg"].contains(&link), "{link}");
        }
    }
}

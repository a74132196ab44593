//! `instapipe routes`: the routes of `ROUTING_CONFIG` and their signing secrets, each route's in
//! a Secrets Manager secret of its own (`<ROUTE_SECRET_PREFIX><source>/<tenant>`, see
//! `instapipe_core::route_secrets`). A secret is never printed, except a generated one, once.
//! Secrets are shown by fingerprint (the first 8 hex digits of their SHA-256), which is also
//! how `remove` names the one to drop at the end of a rotation.

use std::io::{BufRead, Write};

use instapipe_core::route_secrets::{self, MAX_SECRETS, RouteSecretDocument, RouteSecretId};
use instapipe_core::routing::{RouteSource, shop_tenant, site_tenant};
use instapipe_core::secrets::{WebhookSecrets, webhook_keys};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{CliError, Ctx, Result};
use crate::args::{RouteSecretCommand, RoutesCommand};

/// The tenant as `ROUTING_CONFIG` would match it: a shop in lowercase, a site without its
/// scheme (`https://blog.example.com/` → `blog.example.com`), a space or event source as given.
pub fn tenant(source: RouteSource, given: &str) -> Result<String> {
    let given = given.trim();
    if given.is_empty() {
        return Err(CliError("the route's tenant (shop, site, space or event source) is empty".into()));
    }
    Ok(match source {
        RouteSource::Shopify => shop_tenant(given),
        RouteSource::Wordpress if given.contains("://") => site_tenant(given),
        RouteSource::Wordpress => site_tenant(&format!("https://{given}")),
        RouteSource::Contentful | RouteSource::Eventbridge => given.to_string(),
    })
}

pub fn source(name: &str) -> Result<RouteSource> {
    RouteSource::parse(name).ok_or_else(|| CliError(format!("unknown source {name:?}: shopify, contentful, wordpress or eventbridge")))
}

/// One route's standing, as `routes list` shows it.
#[derive(Debug, Serialize)]
pub struct RouteRow {
    pub route: String,
    pub source: &'static str,
    pub tenant: String,
    pub accounts: Vec<String>,
    pub secret_name: String,
    /// `own` (its secrets verify it, and nothing else does), `shared` (the source's single secret
    /// of the webhook-secrets secret verifies it: migrate), `unsigned` (an EventBridge route
    /// without secrets: events are trusted by IAM), `none` (nothing verifies it: 401).
    pub verified_by: &'static str,
    pub fingerprints: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RoutesJson {
    pub routes: Vec<RouteRow>,
}

#[derive(Debug, Serialize)]
pub struct SecretsJson {
    pub source: &'static str,
    pub tenant: String,
    pub secret_name: String,
    pub fingerprints: Vec<String>,
    /// Only when instapipe generated the secret: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
    /// Whether a route of ROUTING_CONFIG names this tenant.
    pub routed: bool,
}

pub async fn run(ctx: &Ctx, command: RoutesCommand, stdin: &mut dyn BufRead, text: &mut dyn Write, json: Option<&mut dyn Write>) -> Result<u8> {
    match command {
        RoutesCommand::List => {
            let rows = list(ctx, text).await?;
            if let Some(out) = json {
                crate::output::write_json(out, &RoutesJson { routes: rows })?;
            }
        }
        RoutesCommand::Secret(command) => {
            let done = secret(ctx, command, stdin, text).await?;
            if let Some(out) = json {
                crate::output::write_json(out, &done)?;
            }
        }
    }
    Ok(0)
}

/// Every route of `ROUTING_CONFIG` with what verifies it.
pub async fn list(ctx: &Ctx, out: &mut dyn Write) -> Result<Vec<RouteRow>> {
    let settings = &ctx.config.ingest;
    let prefix = &settings.route_secret_prefix;
    // Unreadable or absent: no shared secret to report.
    let shared = WebhookSecrets::read(&ctx.clients.secrets, &settings.webhook_secrets_name).await.unwrap_or_default();
    let shared_key = |source: RouteSource| match source {
        RouteSource::Shopify => Some(webhook_keys::SHOPIFY),
        RouteSource::Contentful => Some(webhook_keys::CONTENTFUL),
        RouteSource::Wordpress => Some(webhook_keys::WORDPRESS),
        RouteSource::Eventbridge => None,
    };
    let mut rows = Vec::new();
    for route in settings.routing.routes() {
        let id = RouteSecretId::new(route.source, route.tenant.clone());
        let own = route_secrets::read_document(&ctx.clients.secrets, prefix, &id).await?;
        let verified_by = match (&own, shared_key(route.source).and_then(|k| shared.get(k))) {
            (Some(_), _) => "own",
            (None, Some(_)) => "shared",
            (None, None) if route.source == RouteSource::Eventbridge => "unsigned",
            (None, None) => "none",
        };
        rows.push(RouteRow {
            route: route.name.clone(),
            source: route.source.as_str(),
            tenant: route.tenant.clone(),
            accounts: route.accounts.clone(),
            secret_name: id.secret_name(prefix),
            verified_by,
            fingerprints: own.map(|d| d.fingerprints()).unwrap_or_default(),
        });
    }
    if rows.is_empty() {
        writeln!(out, "ROUTING_CONFIG has no routes")?;
    }
    for row in &rows {
        let secrets = match row.verified_by {
            "own" => format!("own secrets {}", row.fingerprints.join(" ")),
            "shared" => "the shared secret (migrate: instapipe routes secret set)".to_string(),
            "unsigned" => "unsigned events (migrate: instapipe routes secret set)".to_string(),
            _ => "NO SECRET: every request answers 401".to_string(),
        };
        writeln!(out, "{}  accounts {}  {}  [{}]", row.route, row.accounts.join(","), secrets, row.secret_name)?;
    }
    Ok(rows)
}

/// Reads a secret from `--secret` (`-`: stdin), or generates one when none is given.
fn new_secret(source: RouteSource, given: Option<&str>, stdin: &mut dyn BufRead) -> Result<(SecretString, bool)> {
    let secret = match given {
        Some("-") => {
            let mut line = String::new();
            stdin.read_line(&mut line).map_err(|e| CliError(format!("cannot read the secret from stdin: {e}")))?;
            SecretString::from(line.trim().to_string())
        }
        Some(value) => SecretString::from(value.trim().to_string()),
        None => {
            let generated = route_secrets::generate(source).ok_or_else(|| {
                CliError("Shopify makes the app's client secret: pass it with --secret - (read from stdin)".into())
            })?;
            return Ok((generated, true));
        }
    };
    route_secrets::check_secret(source, secret.expose_secret())?;
    Ok((secret, false))
}

pub async fn secret(ctx: &Ctx, command: RouteSecretCommand, stdin: &mut dyn BufRead, out: &mut dyn Write) -> Result<SecretsJson> {
    let settings = &ctx.config.ingest;
    let prefix = &settings.route_secret_prefix;
    let client = &ctx.clients.secrets;
    let (route, given_secret, action) = match &command {
        RouteSecretCommand::Set(args) => (&args.route, args.secret.as_deref(), "set"),
        RouteSecretCommand::Add(args) => (&args.route, args.secret.as_deref(), "add"),
        RouteSecretCommand::Remove { route, .. } => (route, None, "remove"),
    };
    let source = source(&route.source)?;
    let id = RouteSecretId::new(source, tenant(source, &route.tenant)?);
    let name = id.secret_name(prefix);
    let routed = settings.routing.tenant(source, &id.tenant).is_some();
    let mut document = route_secrets::read_document(client, prefix, &id).await?.unwrap_or_default();
    let mut generated = None;
    match &command {
        RouteSecretCommand::Set(_) | RouteSecretCommand::Add(_) => {
            let (secret, was_generated) = new_secret(source, given_secret, stdin)?;
            let value = secret.expose_secret().to_string();
            if action == "set" {
                document.secrets.clear();
            } else if document.secrets.contains(&value) {
                return Err(CliError(format!("{id} already has this secret ({})", RouteSecretDocument::fingerprint(&value))));
            } else if document.secrets.len() >= MAX_SECRETS {
                return Err(CliError(format!("{id} has {MAX_SECRETS} secrets already: remove one first (routes secret remove)")));
            }
            document.secrets.push(value.clone());
            if was_generated {
                generated = Some(value);
            }
        }
        RouteSecretCommand::Remove { fingerprint, .. } => {
            let before = document.secrets.len();
            document.secrets.retain(|s| RouteSecretDocument::fingerprint(s) != fingerprint.trim());
            if document.secrets.len() == before {
                return Err(CliError(format!("{id} has no secret with fingerprint {fingerprint} (see instapipe routes list)")));
            }
            if document.secrets.is_empty() {
                return Err(CliError(format!(
                    "that is {id}'s last secret: removing it would refuse every request; add the new one first (routes secret add)"
                )));
            }
        }
    }
    route_secrets::write_document(client, prefix, &id, &document).await?;
    let fingerprints = document.fingerprints();
    writeln!(out, "{id}: {} secret(s) in {name}: {}", fingerprints.len(), fingerprints.join(" "))?;
    if let Some(secret) = &generated {
        writeln!(out, "New secret (shown once; give it to the sender, it is not printed again):\n{secret}")?;
    }
    if !routed {
        writeln!(out, "Note: no route of ROUTING_CONFIG names {id} (yet); its secrets verify nothing until one does.")?;
    }
    if fingerprints.len() > 1 {
        writeln!(out, "Every secret listed verifies {id}; when its sender uses the new one, remove the old: instapipe routes secret remove {} {} --fingerprint <old>", source.as_str(), id.tenant)?;
    }
    writeln!(
        out,
        "Running functions read it within {} s (their cache; sooner for a request their cached secrets refuse).",
        settings.route_secret_cache.as_secs()
    )?;
    Ok(SecretsJson { source: source.as_str(), tenant: id.tenant, secret_name: name, fingerprints, generated_secret: generated, routed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_normalised_as_the_routing_matches_them() {
        assert_eq!(tenant(RouteSource::Shopify, " Shop-A.myshopify.com ").unwrap(), "shop-a.myshopify.com");
        assert_eq!(tenant(RouteSource::Wordpress, "https://Blog.example.com/news/").unwrap(), "blog.example.com/news");
        assert_eq!(tenant(RouteSource::Wordpress, "blog.example.com").unwrap(), "blog.example.com");
        assert_eq!(tenant(RouteSource::Contentful, "space1").unwrap(), "space1");
        assert!(tenant(RouteSource::Eventbridge, " ").is_err());
        assert!(source("tiktok").is_err());
    }

    #[test]
    fn secrets_come_from_stdin_or_are_generated_and_bad_ones_are_refused_without_echo() {
        let (secret, generated) = new_secret(RouteSource::Wordpress, None, &mut std::io::empty()).unwrap();
        assert!(generated && secret.expose_secret().starts_with("whsec_"));
        let (secret, generated) = new_secret(RouteSource::Shopify, Some("-"), &mut "shpss_from_stdin\n".as_bytes()).unwrap();
        assert!(!generated);
        assert_eq!(secret.expose_secret(), "shpss_from_stdin");
        assert!(new_secret(RouteSource::Shopify, None, &mut std::io::empty()).is_err(), "Shopify's secret comes from Shopify");
        let err = new_secret(RouteSource::Contentful, Some("-"), &mut "too-short-to-be-it\n".as_bytes()).unwrap_err().to_string();
        assert!(!err.contains("too-short"), "{err}");
    }
}

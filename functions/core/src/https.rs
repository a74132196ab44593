//! Every HTTP client instapipe makes (Graph API, media checks, status webhooks, OAuth, Contentful,
//! and the AWS SDK through `aws_http`) starts here: reqwest over rustls with the `ring`
//! crypto provider, the smallest one (issue 14: the bootstrap carries no aws-lc).

use std::sync::Once;

/// A reqwest client builder whose TLS uses `ring`.
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: Once = Once::new();
    // reqwest takes the process's default provider; another one installed first (a test binary
    // linking aws-lc) is kept.
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

//! `instapipe accounts connect`: log in with Meta in a browser and store the account, in one step.
//! The OAuth work is `instapipe_core::oauth`'s (the public function's `/oauth/*` routes use it
//! too); this module adds the loopback callback (127.0.0.1, for the duration of the login), the
//! random `state`, and the storing, through the one path `accounts add` takes.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::Html;
use instapipe_core::account::LoginFlavour;
use instapipe_core::handlers::reauth::register_account;
use instapipe_core::oauth::{self, CallbackParams, ConnectError, OAuthApp, OAuthClient, OAuthHosts, Page};
use instapipe_core::secrets::AppCredentials;
use secrecy::SecretString;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::accounts::login_name;
use super::{CliError, Ctx, Result, when};

/// The path of the loopback callback: the redirect URI is `http://127.0.0.1:PORT/callback`.
pub const CALLBACK_PATH: &str = "/callback";

pub struct ConnectRequest {
    pub login: LoginFlavour,
    /// `--app-id`; else the flavour's `*_APP_ID` variable, else the Meta app secret's.
    pub app_id: Option<String>,
    /// Given on stdin (`--app-secret-stdin`); else the Meta app secret's.
    pub app_secret: Option<SecretString>,
    /// 0: any free port (Meta must accept the redirect URI: register it, or pass a fixed port).
    pub port: u16,
    /// Facebook Login: the Page whose Instagram account to connect (needed with several).
    pub page: Option<String>,
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct ConnectedAccount {
    pub account_id: String,
    pub username: Option<String>,
    pub login: LoginFlavour,
    pub token_expires_at: Option<OffsetDateTime>,
    pub page: Option<Page>,
    pub resumed: usize,
}

/// One request to the callback: its query, and where to send the page the browser shows.
type Arrival = (CallbackParams, oneshot::Sender<String>);

/// Prints the authorize URL on `prompt` (and hands it to `open`: a browser), waits for the
/// redirect on the loopback callback, checks its state, connects, stores the account and its
/// token as `accounts add` does and writes who was connected on `out`.
pub async fn connect(
    ctx: &Ctx,
    request: ConnectRequest,
    open: &(dyn Fn(&str) + Sync),
    prompt: &mut (dyn Write + Send),
    out: &mut dyn Write,
) -> Result<ConnectedAccount> {
    let ConnectRequest { login, app_id, app_secret, port, page, timeout } = request;
    let settings = &ctx.config.ingest.connect;
    let app_id = app_id.or_else(|| settings.app_id(login));
    // The Meta app secret is read only when the flags and the environment leave something out.
    let stored = if app_id.is_none() || app_secret.is_none() {
        let name = &settings.meta_app_secret_name;
        match AppCredentials::read(&ctx.clients.secrets, name).await {
            Ok(stored) => Some(stored),
            Err(e) => return Err(CliError(format!("the Meta app secret {name} could not be read ({e}); give the app id (--app-id) and the secret (--app-secret-stdin), or store them there"))),
        }
    } else {
        None
    };
    let app = OAuthApp::resolve(login, app_id, app_secret, stored.as_ref()).map_err(connect_error)?;
    let client = OAuthClient::new(OAuthHosts::from_override(settings.oauth_base_url.as_deref()), settings.graph.clone())?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| CliError(format!("cannot listen on 127.0.0.1:{port} for the callback: {e}")))?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
    let (arrivals, mut arrived) = mpsc::channel::<Arrival>(4);
    let router = axum::Router::new()
        .route(CALLBACK_PATH, axum::routing::get(arrive))
        .with_state(Arc::new(Mutex::new(Some(arrivals))));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(async { drop(stopped.await) }).await;
    });

    let state = oauth::random_state();
    let url = client.authorize_url(&app, &redirect_uri, &state);
    writeln!(prompt, "Log in with {} and allow instapipe to publish; open this page in a browser:\n\n  {url}\n", oauth::flavour_name(login))?;
    writeln!(prompt, "Waiting for the login to come back to {redirect_uri} (Meta must list it under the app's Valid OAuth Redirect URIs) ...")?;
    open(&url);

    let outcome = tokio::time::timeout(timeout, async {
        loop {
            let Some((params, reply)) = arrived.recv().await else {
                return Err(CliError("the callback server stopped".into()));
            };
            // A redirect without this login's state is not ours (a stale tab, another program):
            // it is turned away and the wait goes on.
            if !params.state.as_deref().is_some_and(|got| oauth::same_state(&state, got)) {
                let _ = reply.send(page_html("Not this login", &ConnectError::State.to_string()));
                writeln!(prompt, "A callback without this login's state was turned away; still waiting ...")?;
                continue;
            }
            let result = finish(ctx, &client, &app, &redirect_uri, &params, page.as_deref()).await;
            let html = match &result {
                Ok(c) => page_html("Connected", &format!("Instagram account {} is connected to instapipe. You can close this tab.", c.account_id)),
                Err(e) => page_html("Not connected", &e.0),
            };
            let _ = reply.send(html);
            return result;
        }
    })
    .await;
    let _ = stop.send(());
    let _ = server.await;
    let connected = outcome.map_err(|_| {
        CliError(format!("no login came back within {} s; nothing was stored. Run the command again (--timeout gives more time)", timeout.as_secs()))
    })??;
    writeln!(
        out,
        "connected Instagram account {}{} ({} login{}); token in Secrets Manager under {}{}; token expires {}",
        connected.account_id,
        connected.username.as_deref().map(|u| format!(" @{u}")).unwrap_or_default(),
        login_name(connected.login),
        connected.page.as_ref().map(|p| format!(", Page {} {}", p.id, p.name)).unwrap_or_default(),
        ctx.config.account_secret_prefix(),
        connected.account_id,
        connected.token_expires_at.map_or_else(|| "never (a Page token)".to_string(), when),
    )?;
    writeln!(out, "{} waiting destination(s) resumed", connected.resumed)?;
    Ok(connected)
}

/// The code, the tokens, the account: stored only when everything worked.
async fn finish(
    ctx: &Ctx,
    client: &OAuthClient,
    app: &OAuthApp,
    redirect_uri: &str,
    params: &CallbackParams,
    page: Option<&str>,
) -> Result<ConnectedAccount> {
    let code = params.code().map_err(connect_error)?;
    let connected = client.connect(app, redirect_uri, &code, page).await.map_err(connect_error)?;
    let vault = ctx.token_refresh()?.tokens;
    let resumed =
        register_account(&ctx.pipeline()?, vault.as_ref(), &connected.account_id, connected.login, &connected.token, connected.expires_at).await?;
    Ok(ConnectedAccount {
        account_id: connected.account_id,
        username: connected.username,
        login: connected.login,
        token_expires_at: connected.expires_at,
        page: connected.page,
        resumed,
    })
}

fn connect_error(err: ConnectError) -> CliError {
    CliError(err.to_string())
}

async fn arrive(State(arrivals): State<Arc<Mutex<Option<mpsc::Sender<Arrival>>>>>, RawQuery(query): RawQuery) -> Html<String> {
    let params = CallbackParams::from_query(query.as_deref().unwrap_or(""));
    let sender = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(sender) = sender else { return Html(page_html("Not connected", "this login is over")) };
    let (reply, answer) = oneshot::channel();
    if sender.send((params, reply)).await.is_err() {
        return Html(page_html("Not connected", "this login is over"));
    }
    Html(answer.await.unwrap_or_else(|_| page_html("Not connected", "this login is over")))
}

fn page_html(title: &str, text: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!("<!doctype html><meta charset=utf-8><title>instapipe: {0}</title><h1>{0}</h1><p>{1}</p>", escape(title), escape(text))
}

/// Opens the URL with `$BROWSER` when it is set (a terminal without one just shows the URL).
pub fn open_with_browser_var(url: &str) {
    let Some(browser) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) else { return };
    let started = std::process::Command::new(&browser).arg(url).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn();
    if let Err(e) = started {
        eprintln!("could not start $BROWSER ({}): {e}; open the page yourself", browser.to_string_lossy());
    }
}

//! `graph-sim`: runs the Graph API simulator on 127.0.0.1 until killed.
//! Settings come from the `GRAPH_SIM_*` variables (see `SimConfig::from_env`), plus
//! `GRAPH_SIM_PORT` (default 4000) and `GRAPH_SIM_ACCOUNTS="id:token,id2:token2"`.

use std::process::ExitCode;

use graph_sim::{SimConfig, spawn};
use tracing_subscriber::EnvFilter;

const DEFAULT_PORT: u16 = 4000;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let settings = SimConfig::from_env().and_then(|config| Ok((config, port()?, accounts()?)));
    let (config, port, accounts) = match settings {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("graph-sim: {message}");
            return ExitCode::from(2);
        }
    };

    let (sim, url) = match spawn(config, port).await {
        Ok(spawned) => spawned,
        Err(err) => {
            eprintln!("graph-sim: cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    for (ig_user_id, token) in &accounts {
        sim.set_token(ig_user_id, token);
    }
    println!("graph-sim listening on {url}");

    // The server runs in its own task; stay alive until interrupted (SIGTERM ends the process).
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    ExitCode::SUCCESS
}

fn port() -> Result<u16, String> {
    match std::env::var("GRAPH_SIM_PORT")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => Ok(DEFAULT_PORT),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("GRAPH_SIM_PORT: expected a port number, got {v:?}")),
    }
}

/// `id:token,id2:token2` → pairs; tokens themselves never appear in error messages.
fn accounts() -> Result<Vec<(String, String)>, String> {
    let Ok(text) = std::env::var("GRAPH_SIM_ACCOUNTS") else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(index, entry)| match entry.split_once(':') {
            Some((id, token)) if !id.trim().is_empty() && !token.trim().is_empty() => {
                Ok((id.trim().to_string(), token.trim().to_string()))
            }
            _ => Err(format!(
                "GRAPH_SIM_ACCOUNTS: entry {} is not of the form id:token",
                index + 1
            )),
        })
        .collect()
}

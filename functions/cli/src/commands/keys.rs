//! `instapipe keys create | list | revoke`: the posts API's keys and their scopes. A key is
//! shown once, when it is made; the table holds only its SHA-256.

use std::io::Write;

use instapipe_core::store::api_keys::{self, Access, Accounts, ApiKey, DynamoApiKeys, Scope};
use serde::Serialize;
use time::OffsetDateTime;

use super::{CliError, Ctx, Result, when, when_opt};

const MAX_NAME_CHARS: usize = 100;

fn store(ctx: &Ctx) -> DynamoApiKeys {
    DynamoApiKeys::new(ctx.clients.dynamodb.clone(), ctx.config.table_name())
}

/// What a new key may do.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    /// None: every account (an admin key).
    pub accounts: Option<Vec<String>>,
    pub read_only: bool,
}

/// A key just made: the key itself (shown this once) and what was stored.
pub struct Created {
    pub key: String,
    pub stored: ApiKey,
}

/// Makes a key, stores its hash and scope, and prints the key once.
pub async fn create(ctx: &Ctx, new: NewKey, out: &mut dyn Write) -> Result<Created> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(CliError(format!("--name must be 1 to {MAX_NAME_CHARS} characters, without control characters")));
    }
    let accounts = match &new.accounts {
        None => Accounts::All,
        Some(list) if list.is_empty() => return Err(CliError("give --accounts (comma-separated) or --all-accounts".into())),
        Some(list) => {
            for account in list {
                super::accounts::check_account_id(account)?;
            }
            Accounts::Only(list.iter().cloned().collect())
        }
    };
    let keys = store(ctx);
    // Revoking names a key by its name: keep names distinct.
    if keys.list().await?.iter().any(|k| k.name == name) {
        return Err(CliError(format!("a key named {name:?} exists already; choose another name, or revoke it first")));
    }
    let access = if new.read_only { Access::ReadOnly } else { Access::ReadWrite };
    let key = api_keys::generate();
    let stored = ApiKey::new(api_keys::hash(&key), name, Scope { accounts, access }, OffsetDateTime::now_utc());
    keys.create(&stored).await?;
    if let Accounts::Only(list) = &stored.scope.accounts {
        let store = ctx.store();
        for account in list {
            if store.get_account(account).await?.is_none() {
                writeln!(out, "note: account {account} is not registered yet (`instapipe accounts add`); posts to it are refused until it is")?;
            }
        }
    }
    writeln!(out, "key {} ({}) created: {}", stored.id(), stored.name, stored.scope.describe())?;
    writeln!(out, "{key}")?;
    writeln!(out, "Store it now: it is not shown again (only its SHA-256 is kept).")?;
    Ok(Created { key, stored })
}

/// Every key: id, name, scope, when it was made and last used.
pub async fn list(ctx: &Ctx, out: &mut dyn Write) -> Result<Vec<ApiKey>> {
    let keys = store(ctx).list().await?;
    writeln!(out, "{:<12} {:<24} {:<40} {:<20} LAST USED", "ID", "NAME", "SCOPE", "CREATED")?;
    for k in &keys {
        let scope = if k.legacy { format!("{} (registered before scopes)", k.scope.describe()) } else { k.scope.describe() };
        writeln!(out, "{:<12} {:<24} {:<40} {:<20} {}", k.id(), k.name, scope, when_opt(k.created_at), when_opt(k.last_used_at))?;
    }
    if keys.is_empty() {
        writeln!(out, "(none)")?;
    }
    Ok(keys)
}

/// Revokes the key with this id or name: it is refused (401) from the next request on.
pub async fn revoke(ctx: &Ctx, id_or_name: &str, out: &mut dyn Write) -> Result<ApiKey> {
    let keys = store(ctx);
    let all = keys.list().await?;
    let by_id: Vec<&ApiKey> = all.iter().filter(|k| k.id() == id_or_name).collect();
    let matching = if by_id.is_empty() { all.iter().filter(|k| k.name == id_or_name).collect() } else { by_id };
    let key = match matching.as_slice() {
        [key] => (*key).clone(),
        [] => return Err(CliError(format!("no key has the id or name {id_or_name:?} (`instapipe keys list`)"))),
        _ => return Err(CliError(format!("several keys are named {id_or_name:?}: revoke one by its id (`instapipe keys list`)"))),
    };
    if !keys.revoke(&key.hash).await? {
        return Err(CliError(format!("key {} was revoked meanwhile", key.id())));
    }
    writeln!(out, "key {} ({}) revoked", key.id(), key.name)?;
    Ok(key)
}

// --output json ------------------------------------------------------------------------------

#[derive(Serialize)]
pub struct KeyJson {
    pub id: String,
    pub name: String,
    /// The accounts it may post to and read; null: every account.
    pub accounts: Option<Vec<String>>,
    /// `read_write` or `read_only`
    pub access: &'static str,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Registered before keys had scopes: full access.
    pub legacy: bool,
}

impl From<&ApiKey> for KeyJson {
    fn from(k: &ApiKey) -> KeyJson {
        KeyJson {
            id: k.id().to_string(),
            name: k.name.clone(),
            accounts: match &k.scope.accounts {
                Accounts::All => None,
                Accounts::Only(list) => Some(list.iter().cloned().collect()),
            },
            access: k.scope.access.as_str(),
            created_at: k.created_at.map(when),
            last_used_at: k.last_used_at.map(when),
            legacy: k.legacy,
        }
    }
}

/// `keys create`: the key itself, once, and what it may do.
#[derive(Serialize)]
pub struct CreatedJson {
    pub key: String,
    #[serde(flatten)]
    pub stored: KeyJson,
}

#[derive(Serialize)]
pub struct KeysJson {
    pub keys: Vec<KeyJson>,
}

#[derive(Serialize)]
pub struct RevokedJson {
    pub revoked: KeyJson,
}

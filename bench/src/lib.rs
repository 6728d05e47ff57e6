//! What the benchmark programs share: a user signed in with a role of chosen permissions, and
//! the process's memory figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark support: fail loudly

use depot_app::AppContext;
use depot_app::ClientInfo;
use depot_app::users::NewUser;
use depot_domain::Actor;

const PASSWORD: &str = "a long and unguessable passphrase 42";
const SETUP: Actor = Actor::System("bench");

/// Creates a role holding `permissions` and a user `email` in it, signs the user in over HTTP
/// at `base` (`http://host:port`) and returns the access token.
pub async fn sign_in(
    ctx: &AppContext,
    client: &reqwest::Client,
    base: &str,
    email: &str,
    permissions: &[&str],
) -> anyhow::Result<String> {
    let local = ClientInfo::default();
    let fail = |e: depot_domain::AppError| anyhow::anyhow!("{e:?}");
    let role = ctx
        .roles()
        .create(
            SETUP,
            format!("bench-{}", email.split('@').next().unwrap_or("user")),
            String::new(),
            permissions.iter().map(|p| (*p).to_owned()).collect(),
            false,
            &local,
        )
        .await
        .map_err(fail)?;
    ctx.users()
        .create(
            SETUP,
            NewUser {
                email: email.into(),
                display_name: "Bench".into(),
                phone: None,
                password: Some(PASSWORD.into()),
                roles: vec![role.name],
            },
            &local,
        )
        .await
        .map_err(fail)?;
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    Ok(login["access_token"].as_str().expect("token").to_owned())
}

/// A `kB` line of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The process's peak resident memory so far (`VmHWM`), MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// The process's resident memory now (`VmRSS`), MiB.
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

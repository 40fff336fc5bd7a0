//! The real `dure` signed in through the real test OpenID provider, with an access token for
//! each named user: what the meetings and messaging tests start from.

use std::collections::HashMap;

use crate::idp::{IdpOptions, SCOPES, TestIdp, free_port};
use crate::rt_client::{Auth, RtClient};
use crate::server::{Dure, temp_dir};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct SignedIn {
    pub idp: TestIdp,
    pub dure: Dure,
    /// `http://127.0.0.1:PORT`, also the public URL.
    pub base: String,
    /// Access tokens by login name.
    pub tokens: HashMap<String, String>,
    pub dir: tempfile::TempDir,
}

impl SignedIn {
    /// Starts the provider and `dure` (with `extra` flags) and signs `users` in.
    pub async fn start(users: &[&str], extra: &[&str]) -> Result<SignedIn, BoxError> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let idp = TestIdp::start(IdpOptions::for_dure(&base)).await?;
        let dir = temp_dir()?;
        let mut flags: Vec<String> = idp.dure_flags();
        flags.extend(
            ["--public-url", &base, "--oidc-scopes", SCOPES]
                .iter()
                .chain(extra)
                .map(|s| (*s).to_owned()),
        );
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let dure = Dure::start_on(
            &dir.path().join("data"),
            &format!("127.0.0.1:{port}"),
            &args,
        )
        .await?;
        let mut tokens = HashMap::new();
        for u in users {
            tokens.insert((*u).to_owned(), idp.access_token(u).await?.access_token);
        }
        Ok(SignedIn {
            idp,
            dure,
            base,
            tokens,
            dir,
        })
    }

    pub fn auth(&self, user: &str) -> Auth {
        Auth::Bearer(self.tokens[user].clone())
    }

    /// A new device of `user`: a realtime socket after hello.
    pub async fn device(&self, user: &str) -> Result<RtClient, BoxError> {
        RtClient::connect(&self.base, &self.auth(user)).await
    }
}

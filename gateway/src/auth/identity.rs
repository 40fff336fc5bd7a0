//! Who is asking: the identity every route and socket works with, whatever signed it in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A signed-in person (or the one local user in local mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's stable subject (`sub`); `local` in local mode.
    pub id: String,
    pub name: String,
    /// Only an address the provider says it verified (`email_verified: true`): people are
    /// found by it to share documents with, and an unverified claim is anyone's to make.
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub admin: bool,
}

impl Identity {
    /// The single user of local mode: owns and administers everything.
    pub fn local() -> Self {
        Identity {
            id: "local".into(),
            name: "Local user".into(),
            email: None,
            groups: Vec::new(),
            admin: true,
        }
    }

    /// Builds an identity from token or userinfo claims. `groups_claim` may name a nested
    /// claim with dots (`realm_access.roles`, as Keycloak puts roles).
    pub fn from_claims(
        sub: &str,
        claims: &serde_json::Map<String, Value>,
        groups_claim: &str,
        admin_group: Option<&str>,
    ) -> Self {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        // Some providers (Cognito) send the flag as a string.
        let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || claims
                .get("email_verified")
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let email = text("email")
            .filter(|_| verified)
            .filter(|e| !e.trim().is_empty());
        let name = text("name")
            .or_else(|| text("preferred_username"))
            .or_else(|| email.clone())
            .unwrap_or_else(|| sub.to_owned());
        let mut node = claims.get(groups_claim);
        if node.is_none() && groups_claim.contains('.') {
            let mut parts = groups_claim.split('.');
            node = parts.next().and_then(|first| claims.get(first));
            for part in parts {
                node = node.and_then(|n| n.get(part));
            }
        }
        let mut groups: Vec<String> = match node {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        groups.sort();
        groups.dedup();
        let admin = admin_group.is_some_and(|g| groups.iter().any(|m| m == g));
        Identity {
            id: sub.to_owned(),
            name,
            email,
            groups,
            admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_from_flat_and_nested_claims() {
        let claims = serde_json::json!({
            "name": "Alice", "email": "a@x", "email_verified": true, "groups": ["b", "a", "a"],
            "realm_access": {"roles": ["admins"]}
        });
        let map = claims.as_object().cloned().unwrap_or_default();
        let id = Identity::from_claims("s1", &map, "groups", Some("a"));
        assert_eq!(id.groups, vec!["a", "b"]);
        assert!(id.admin);
        let id = Identity::from_claims("s1", &map, "realm_access.roles", Some("a"));
        assert_eq!(id.groups, vec!["admins"]);
        assert!(!id.admin);
        let id = Identity::from_claims("s2", &serde_json::Map::new(), "groups", None);
        assert_eq!(id.name, "s2");
        assert!(id.groups.is_empty());
    }

    #[test]
    fn email_only_when_verified() {
        let with = |verified: serde_json::Value| {
            let mut claims = serde_json::json!({"email": "a@example.gov"});
            if !verified.is_null() {
                claims["email_verified"] = verified;
            }
            let map = claims.as_object().cloned().unwrap_or_default();
            Identity::from_claims("s", &map, "groups", None).email
        };
        assert_eq!(
            with(serde_json::json!(true)).as_deref(),
            Some("a@example.gov")
        );
        assert_eq!(
            with(serde_json::json!("true")).as_deref(),
            Some("a@example.gov")
        );
        assert_eq!(with(serde_json::json!(false)), None);
        assert_eq!(with(serde_json::json!("false")), None);
        assert_eq!(with(serde_json::Value::Null), None, "no flag: unverified");
    }
}

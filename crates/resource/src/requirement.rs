//! What a route requires of a valid token beyond its validity.

use crate::error::{AuthError, Rejection};
use crate::principal::Principal;

/// The scope that asks the issuer for a role (Tessera's and ZITADEL's).
const ROLE_SCOPE_PREFIX: &str = "urn:zitadel:iam:org:project:role:";

/// One requirement of a route: a scope, a role (optionally in a given project), or
/// an audience. A route with several requires them all.
///
/// A missing scope or role is 403 `insufficient_scope` (naming the scope, or for a
/// role the scope `urn:zitadel:iam:org:project:role:{role}` that asks for it); a
/// missing audience is 401 `invalid_token`, since the token is not meant for this
/// API at all (RFC 9068 §4).
///
/// ```
/// use tessera_resource::Requirement;
///
/// let read = Requirement::scope("orders:read");
/// let admin = Requirement::role_in("admin", "231542671830777876");
/// # let _ = (read, admin);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Scope(String),
    Role { role: String, project: Option<String> },
    Audience(String),
}

impl Requirement {
    /// The token must have been granted `scope`.
    pub fn scope(scope: impl Into<String>) -> Self {
        Requirement(Kind::Scope(scope.into()))
    }

    /// The token must hold `role` (in any project of its audience).
    pub fn role(role: impl Into<String>) -> Self {
        Requirement(Kind::Role { role: role.into(), project: None })
    }

    /// The token must hold `role` in `project` (see [`Principal::has_role_in`]).
    pub fn role_in(role: impl Into<String>, project: impl Into<String>) -> Self {
        Requirement(Kind::Role { role: role.into(), project: Some(project.into()) })
    }

    /// The token's audience must hold `audience`.
    pub fn audience(audience: impl Into<String>) -> Self {
        Requirement(Kind::Audience(audience.into()))
    }

    /// Checks `principal`: `Ok` when it meets the requirement, otherwise the error
    /// to answer with.
    pub fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        match &self.0 {
            Kind::Scope(scope) if !principal.has_scope(scope) => {
                Err(AuthError::InsufficientScope { scope: scope.clone() })
            }
            Kind::Role { role, project } => {
                let held = match project {
                    Some(project) => principal.has_role_in(role, project),
                    None => principal.has_role(role),
                };
                if held {
                    Ok(())
                } else {
                    Err(AuthError::InsufficientScope {
                        scope: format!("{ROLE_SCOPE_PREFIX}{role}"),
                    })
                }
            }
            Kind::Audience(audience) if !principal.has_audience(audience) => {
                Err(AuthError::InvalidToken(Rejection::Audience))
            }
            _ => Ok(()),
        }
    }
}

/// Checks every requirement in order; the first unmet one decides the error.
pub(crate) fn check_all(
    requirements: &[Requirement],
    principal: &Principal,
) -> Result<(), AuthError> {
    requirements.iter().try_for_each(|r| r.check(principal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Claims, TokenKind};

    fn principal() -> Principal {
        let claims: Claims = serde_json::from_str(
            r#"{"sub":"1","client_id":"c","aud":["orders"],"scope":"openid orders:read",
                "urn:zitadel:iam:org:project:roles":{"reader":{"9":"acme"}}}"#,
        )
        .expect("claims");
        Principal::from_claims(claims, TokenKind::Jwt).expect("principal")
    }

    #[test]
    fn requirements_pass_or_name_what_is_missing() {
        let p = principal();
        for ok in [
            Requirement::scope("orders:read"),
            Requirement::role("reader"),
            Requirement::role_in("reader", "orders"),
            Requirement::audience("orders"),
        ] {
            assert_eq!(ok.check(&p), Ok(()), "{ok:?}");
        }
        assert_eq!(
            Requirement::scope("orders:write").check(&p),
            Err(AuthError::InsufficientScope { scope: "orders:write".into() })
        );
        assert_eq!(
            Requirement::role("writer").check(&p),
            Err(AuthError::InsufficientScope {
                scope: "urn:zitadel:iam:org:project:role:writer".into()
            })
        );
        assert!(Requirement::role_in("reader", "billing").check(&p).is_err());
        assert_eq!(
            Requirement::audience("billing").check(&p),
            Err(AuthError::InvalidToken(Rejection::Audience))
        );
        let all = [Requirement::scope("openid"), Requirement::scope("x"), Requirement::role("y")];
        assert_eq!(check_all(&all, &p), Err(AuthError::InsufficientScope { scope: "x".into() }));
    }
}

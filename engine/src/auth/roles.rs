//! Roles (`[auth] viewers, operators, admins`): who may see, who may operate, who may manage.
//!
//! Each list holds principals: an email address (`alice@example.com`), a group of the identity
//! provider (`group:patch-admins`, from the OIDC `groups_claim`), or a role of the runbooks
//! (`role:cab`: every address any loaded runbook lists under `roles: cab`). A person's role is
//! the highest list that names them: admin > operator > viewer. Viewers see the dashboard and
//! runs; operators also trigger, cancel and settle interrupted steps; admins also manage
//! tokens and sessions. The local operator ([`super::LOCAL_OPERATOR`]) is always an admin.
//! Someone no list names holds no role and cannot sign in (an approver still decides through
//! the links in their emails, which need no session).

use serde::Serialize;

/// What a signed-in person may do; each role may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One entry of a role list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An email address, lower case.
    Address(String),
    /// `group:NAME`: a group the identity provider says the person is in.
    Group(String),
    /// `role:NAME`: the addresses of a runbook role of that name.
    RunbookRole(String),
}

impl Principal {
    /// Reads `alice@example.com`, `group:NAME` or `role:NAME`.
    pub fn parse(text: &str) -> Result<Principal, String> {
        let text = text.trim();
        if let Some(group) = text.strip_prefix("group:") {
            return non_empty(group).map(|g| Principal::Group(g.to_string()));
        }
        if let Some(role) = text.strip_prefix("role:") {
            return non_empty(role).map(|r| Principal::RunbookRole(r.to_string()));
        }
        super::normalize_email(text)
            .map(Principal::Address)
            .ok_or_else(|| format!("`{text}` is not an email address, `group:NAME` or `role:NAME`"))
    }

    fn names(
        &self,
        email: &str,
        groups: &[String],
        in_runbook_role: &dyn Fn(&str) -> bool,
    ) -> bool {
        match self {
            Principal::Address(address) => address == email,
            Principal::Group(group) => groups.iter().any(|g| g == group),
            Principal::RunbookRole(role) => in_runbook_role(role),
        }
    }
}

fn non_empty(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        Err("a `group:` or `role:` entry needs a name after the colon".into())
    } else {
        Ok(name)
    }
}

/// The three role lists of `[auth]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub viewers: Vec<Principal>,
    pub operators: Vec<Principal>,
    pub admins: Vec<Principal>,
}

impl Roles {
    /// The highest role that names `email` (lower case) with `groups`; `in_runbook_role(name)`
    /// says whether the address is in a runbook role of that name. The local operator is an
    /// admin.
    pub fn role_of(
        &self,
        email: &str,
        groups: &[String],
        in_runbook_role: &dyn Fn(&str) -> bool,
    ) -> Option<Role> {
        if email == super::LOCAL_OPERATOR {
            return Some(Role::Admin);
        }
        let named =
            |list: &[Principal]| list.iter().any(|p| p.names(email, groups, in_runbook_role));
        [
            (&self.admins, Role::Admin),
            (&self.operators, Role::Operator),
            (&self.viewers, Role::Viewer),
        ]
        .into_iter()
        .find(|(list, _)| named(list))
        .map(|(_, role)| role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        let parse = |items: &[&str]| items.iter().map(|i| Principal::parse(i).unwrap()).collect();
        Roles {
            viewers: parse(&["role:cab", "auditor@example.com"]),
            operators: parse(&["group:patch-ops", "Ops@Example.com"]),
            admins: parse(&["admin@example.com"]),
        }
    }

    #[test]
    fn the_highest_list_naming_a_person_wins() {
        let cab = |role: &str| role == "cab";
        let nobody = |_: &str| false;
        let r = roles();
        assert_eq!(
            r.role_of("admin@example.com", &[], &nobody),
            Some(Role::Admin)
        );
        assert_eq!(
            r.role_of("ops@example.com", &[], &nobody),
            Some(Role::Operator)
        );
        assert_eq!(
            r.role_of("x@example.com", &["patch-ops".into()], &nobody),
            Some(Role::Operator)
        );
        assert_eq!(r.role_of("x@example.com", &[], &cab), Some(Role::Viewer));
        assert_eq!(r.role_of("x@example.com", &[], &nobody), None);
        assert_eq!(r.role_of("local", &[], &nobody), Some(Role::Admin));
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(Principal::parse("group:").is_err());
        let err = Principal::parse("cab").unwrap_err();
        assert!(err.contains("`cab`"), "{err}");
    }
}

//! Who may use clerk's web pages and API: users with a role and a
//! password, API tokens, browser sessions. Only hashes of passwords,
//! tokens and session ids are stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a person or a token may do; each role may do what the ones before
/// it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads jobs, reviews and bots.
    Viewer,
    /// Also claims, corrects, approves, rejects and postpones reviews.
    Reviewer,
    /// Also retries, cancels and runs jobs, and pauses bots.
    Operator,
    /// Also manages users and tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Reviewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}`; expected viewer, reviewer, operator or admin")
            })
    }
}

/// A person who signs in with a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The groups a bot's `review_by` may name.
    pub groups: Vec<String>,
    pub created_at: i64,
    pub created_by: String,
}

/// A token a script presents as `Authorization: Bearer …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    pub created_by: String,
    pub last_used_at: Option<i64>,
}

/// A signed-in browser: its user, and the token every form and
/// state-changing request must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub expires_at: i64,
}

/// The names in a `review_by` that a person with this role and these
/// groups answers to: the roles their role includes, and their groups.
pub fn answers_to(role: Role, groups: &[String]) -> Vec<String> {
    Role::ALL
        .into_iter()
        .filter(|r| role.allows(*r))
        .map(|r| r.as_str().to_string())
        .chain(groups.iter().cloned())
        .collect()
}

/// Whether a person with this role and these groups may work a review
/// that names `review_by` (nobody named: anyone who may review). Admins
/// may work every review.
pub fn may_work(role: Role, groups: &[String], review_by: &[String]) -> bool {
    if !role.allows(Role::Reviewer) {
        return false;
    }
    if review_by.is_empty() || role == Role::Admin {
        return true;
    }
    let names = answers_to(role, groups);
    review_by.iter().any(|who| names.contains(who))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_below_them() {
        assert!(Role::Admin.allows(Role::Reviewer));
        assert!(Role::Operator.allows(Role::Reviewer));
        assert!(Role::Reviewer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Reviewer));
        assert!(!Role::Reviewer.allows(Role::Operator));
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn reviews_go_to_the_roles_and_groups_they_name() {
        let ap = vec!["ap".to_string()];
        let by = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(may_work(Role::Reviewer, &[], &[]));
        assert!(!may_work(Role::Viewer, &ap, &by(&["ap"])));
        assert!(may_work(Role::Reviewer, &ap, &by(&["ap"])));
        assert!(!may_work(Role::Reviewer, &[], &by(&["ap"])));
        assert!(!may_work(Role::Reviewer, &[], &by(&["operator"])));
        assert!(may_work(Role::Operator, &[], &by(&["operator"])));
        assert!(may_work(Role::Operator, &[], &by(&["reviewer"])));
        assert!(may_work(Role::Admin, &[], &by(&["controllers"])));
        assert!(may_work(Role::Reviewer, &ap, &by(&["controllers", "ap"])));
    }
}

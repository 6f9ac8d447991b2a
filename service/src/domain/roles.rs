//! Roles a key can hold. A key holds one or more; each endpoint names the roles it admits.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The operator: creates merchants and their keys. Sees no merchant's catalogue.
    Admin,
    /// The merchant's own staff and tools: products, rules, guardrails.
    Merchant,
    /// Cost, competitor and demand feeds.
    Feed,
    /// Checkout's price lookups.
    Checkout,
    /// Read-only access to the decision history.
    Auditor,
    /// Decides on proposals (held price changes): reads and approves or rejects them, and
    /// nothing else. `merchant` keys may decide on them too.
    Approver,
}

impl Role {
    pub const ALL: [Role; 6] = [Role::Admin, Role::Merchant, Role::Feed, Role::Checkout, Role::Auditor, Role::Approver];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Merchant => "merchant",
            Role::Feed => "feed",
            Role::Checkout => "checkout",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of roles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

impl Roles {
    pub fn of(roles: &[Role]) -> Self {
        Self(roles.iter().fold(0, |bits, r| bits | r.bit()))
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn intersects(self, other: Roles) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// Storage form: role names joined by commas, in a fixed order.
    pub fn to_text(self) -> String {
        self.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn from_text(text: &str) -> Option<Self> {
        text.split(',').map(Role::parse).collect::<Option<Vec<_>>>().map(|roles| Roles::of(&roles))
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_storage_text() {
        let roles = Roles::of(&[Role::Checkout, Role::Merchant]);
        assert_eq!(roles.to_text(), "merchant,checkout");
        assert_eq!(Roles::from_text("merchant,checkout"), Some(roles));
        assert_eq!(Roles::from_text("merchant,root"), None);
        assert!(roles.contains(Role::Merchant) && !roles.contains(Role::Admin));
    }
}

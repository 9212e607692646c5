//! Access tokens and lists of them (RFC 3341 §3): `service:operation`,
//! where service `all` means every service, `core` the relaying mesh, and
//! operation `all` every operation, `none` no operation at all.

use std::fmt;

use super::AccessError;

/// The token for sending data through the relaying mesh (RFC 3341 §3).
pub const CORE_DATA: &str = "core:data";

/// One `service:operation` token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Action {
    service: String,
    operation: String,
}

impl Action {
    /// Parses `service:operation`: both parts non-empty XML name characters
    /// (the attribute is `NMTOKENS`), exactly one colon.
    pub fn parse(token: &str) -> Result<Self, AccessError> {
        let invalid = |reason| AccessError::Actions {
            value: token.to_owned(),
            reason,
        };
        let (service, operation) = token
            .split_once(':')
            .ok_or_else(|| invalid("an action is service:operation"))?;
        if service.is_empty() || operation.is_empty() {
            return Err(invalid("empty service or operation"));
        }
        if operation.contains(':') {
            return Err(invalid("more than one colon in an action"));
        }
        if !token.chars().all(is_name_char) {
            return Err(invalid("not an XML name token"));
        }
        Ok(Self {
            service: service.to_owned(),
            operation: operation.to_owned(),
        })
    }

    /// The service part (`core`, `access`, `presence`, `all`, …).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The operation part (`data`, `query`, `all`, `none`, …).
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// True if holding this token grants `wanted`: services and operations
    /// equal or `all`; `none` grants nothing.
    pub fn grants(&self, wanted: &Self) -> bool {
        self.operation != "none"
            && (self.service == "all" || self.service == wanted.service)
            && (self.operation == "all" || self.operation == wanted.operation)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.operation)
    }
}

/// XML `NameChar` (XML 1.0 5th ed. §2.3), the characters of an `NMTOKEN`.
fn is_name_char(c: char) -> bool {
    matches!(c,
        ':' | '_' | '-' | '.' | '0'..='9' | 'A'..='Z' | 'a'..='z'
        | '\u{B7}' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{37D}'
        | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{203F}'..='\u{2040}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// A non-empty list of actions, the `actions` attribute (`NMTOKENS`),
/// kept in order without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actions(Vec<Action>);

impl Actions {
    /// Parses a white-space separated list of at least one action.
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let mut actions = Vec::new();
        for token in text
            .split([' ', '\t', '\r', '\n'])
            .filter(|t| !t.is_empty())
        {
            let action = Action::parse(token)?;
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
        if actions.is_empty() {
            return Err(AccessError::Actions {
                value: text.to_owned(),
                reason: "no action",
            });
        }
        Ok(Self(actions))
    }

    /// `all:all`.
    pub fn all() -> Self {
        Self(vec![Action {
            service: "all".into(),
            operation: "all".into(),
        }])
    }

    /// `all:none`: nothing at all.
    pub fn none() -> Self {
        Self(vec![Action {
            service: "all".into(),
            operation: "none".into(),
        }])
    }

    /// `core:data`.
    pub fn core_data() -> Self {
        Self::parse(CORE_DATA).expect("constant")
    }

    /// The actions in order.
    pub fn iter(&self) -> impl Iterator<Item = &Action> {
        self.0.iter()
    }

    /// True if some token grants `wanted`.
    pub fn grants(&self, wanted: &Action) -> bool {
        self.0.iter().any(|held| held.grants(wanted))
    }

    /// True if every action of `wanted` is granted (RFC 3341 §4.2 step 5).
    /// A wanted `x:none` asks for nothing and is always granted.
    pub fn grants_all(&self, wanted: &Self) -> bool {
        wanted
            .iter()
            .all(|action| action.operation == "none" || self.grants(action))
    }

    /// True if these actions grant nothing (only `…:none` tokens).
    pub fn is_none(&self) -> bool {
        self.0.iter().all(|a| a.operation == "none")
    }

    /// These actions plus `action` (dropping `…:none` tokens, which would
    /// be meaningless next to a granted one).
    pub fn with(&self, action: &Action) -> Self {
        let mut actions: Vec<Action> = self
            .0
            .iter()
            .filter(|a| a.operation != "none")
            .cloned()
            .collect();
        if !actions.contains(action) {
            actions.push(action.clone());
        }
        Self(actions)
    }

    /// These actions without the exact token `action`; `all:none` if none
    /// is left. (A broader token such as `all:all` is kept: the caller
    /// decides how to narrow it.)
    pub fn without(&self, action: &Action) -> Self {
        let actions: Vec<Action> = self.0.iter().filter(|a| *a != action).cloned().collect();
        if actions.is_empty() || actions.iter().all(|a| a.operation == "none") {
            Self::none()
        } else {
            Self(
                actions
                    .into_iter()
                    .filter(|a| a.operation != "none")
                    .collect(),
            )
        }
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, action) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            action.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> Action {
        Action::parse(text).unwrap()
    }

    #[test]
    fn tokens_and_wildcards() {
        let all = Actions::all();
        let none = Actions::none();
        let data = Actions::core_data();
        let rfc = Actions::parse("core:data presence:subscribe presence:watch").unwrap();
        assert!(all.grants(&a("core:data")) && all.grants(&a("access:set")));
        assert!(!none.grants(&a("core:data")) && none.is_none());
        assert!(data.grants(&a("core:data")) && !data.grants(&a("presence:watch")));
        assert!(rfc.grants_all(&Actions::parse("core:data presence:subscribe").unwrap()));
        assert!(!rfc.grants_all(&Actions::parse("core:data access:get").unwrap()));
        assert!(
            Actions::parse("presence:all")
                .unwrap()
                .grants(&a("presence:publish"))
        );
        assert!(
            Actions::parse("all:query")
                .unwrap()
                .grants(&a("access:query"))
        );
        assert_eq!(
            rfc.to_string(),
            "core:data presence:subscribe presence:watch"
        );
    }

    #[test]
    fn edits() {
        let none = Actions::none();
        let data = none.with(&a("core:data"));
        assert_eq!(data.to_string(), "core:data");
        assert_eq!(data.without(&a("core:data")).to_string(), "all:none");
        let two = Actions::parse("core:data presence:watch core:data").unwrap();
        assert_eq!(two.to_string(), "core:data presence:watch");
        assert_eq!(two.without(&a("core:data")).to_string(), "presence:watch");
    }

    #[test]
    fn refuses_malformed_tokens() {
        for bad in [
            "",
            "  ",
            "core",
            ":data",
            "core:",
            "a:b:c",
            "core:data ta",
            "co<re:data",
        ] {
            assert!(Actions::parse(bad).is_err(), "{bad:?}");
        }
    }
}

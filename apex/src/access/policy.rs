//! Choosing the access entry that applies (RFC 3341 §3, §3.1): the
//! owner's explicit entries plus the default entries, the best match for
//! an address, and what it grants.
//!
//! The defaults for owner `local@domain` (§3), each overridden by an
//! explicit entry with the same actor:
//!
//! ```text
//! actor='local@domain'  actions='all:all'
//! actor='apex=*@domain' actions='all:all'
//! actor='apex=*@*'      actions='core:data'
//! actor='*@*'           actions='all:none'
//! ```
//!
//! A site may add `core:data` defaults of its own (`site_data`: e.g. `*@*`
//! lets everyone send data unless the owner blocks them); each is merged
//! into the RFC default with the same actor, or added as a default.

use crate::address::Endpoint;

use super::{Action, Actions, Actor, MatchRank};

/// An actor and what it may do: an explicit entry or a default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The actor pattern.
    pub actor: Actor,
    /// The actions granted.
    pub actions: Actions,
}

/// Where a selected rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An entry the owner (or an admin) set.
    Explicit,
    /// A default entry (RFC 3341 §3, or the site's `core:data` defaults).
    Default,
}

/// The rule that applies to an address, and how it matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selection {
    /// The rule.
    pub rule: Rule,
    /// Explicit or default.
    pub source: Source,
    /// How well its actor matched.
    pub rank: MatchRank,
}

/// The default rules of `owner`: RFC 3341 §3's four, with the site's
/// `core:data` actors merged in.
pub fn default_rules(owner: &Endpoint, site_data: &[Actor]) -> Vec<Rule> {
    let mut rules = vec![
        Rule {
            actor: Actor::exact(owner),
            actions: Actions::all(),
        },
        Rule {
            actor: Actor::services(Some(owner.domain())),
            actions: Actions::all(),
        },
        Rule {
            actor: Actor::services(None),
            actions: Actions::core_data(),
        },
        Rule {
            actor: Actor::anyone(),
            actions: Actions::none(),
        },
    ];
    let data = Action::parse(super::CORE_DATA).expect("constant");
    for actor in site_data {
        match rules.iter_mut().find(|r| r.actor.key() == actor.key()) {
            Some(rule) => rule.actions = rule.actions.with(&data),
            None => rules.push(Rule {
                actor: actor.clone(),
                actions: Actions::core_data(),
            }),
        }
    }
    rules
}

/// The rule of `owner` that applies to `address` (RFC 3341 §3.1): among
/// the explicit rules and the defaults they do not override, the best
/// match by [`MatchRank`]; on equal rank an explicit rule wins, then the
/// smaller actor key (so the choice never depends on storage order).
/// Every address matches some default (`*@*` or `apex=*@*`), so there is
/// always a selection.
pub fn select(
    owner: &Endpoint,
    explicit: &[Rule],
    site_data: &[Actor],
    address: &Endpoint,
) -> Selection {
    let defaults = default_rules(owner, site_data);
    let explicit_keys: Vec<String> = explicit.iter().map(|r| r.actor.key()).collect();
    let candidates = explicit.iter().map(|rule| (rule, Source::Explicit)).chain(
        defaults
            .iter()
            .filter(|rule| !explicit_keys.contains(&rule.actor.key()))
            .map(|rule| (rule, Source::Default)),
    );
    let mut best: Option<Selection> = None;
    for (rule, source) in candidates {
        let Some(rank) = rule.actor.matches(address) else {
            continue;
        };
        let better = match &best {
            None => true,
            Some(current) => {
                let order = |s: Source| u8::from(s == Source::Default);
                (rank, order(source), rule.actor.key())
                    < (
                        current.rank,
                        order(current.source),
                        current.rule.actor.key(),
                    )
            }
        };
        if better {
            best = Some(Selection {
                rule: rule.clone(),
                source,
                rank,
            });
        }
    }
    best.unwrap_or_else(|| Selection {
        // Unreachable for addresses that parse (see above); deny if it were.
        rule: Rule {
            actor: Actor::anyone(),
            actions: Actions::none(),
        },
        source: Source::Default,
        rank: MatchRank {
            domain: usize::MAX,
            local: usize::MAX,
        },
    })
}

/// True if `address` may perform `action` on `owner`'s behalf.
pub fn permits(
    owner: &Endpoint,
    explicit: &[Rule],
    site_data: &[Actor],
    address: &Endpoint,
    action: &Action,
) -> bool {
    select(owner, explicit, site_data, address)
        .rule
        .actions
        .grants(action)
}

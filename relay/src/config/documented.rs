//! Every key the parser accepts is documented in imxpd.toml(5), and the
//! page documents no key the parser refuses.
//!
//! The accepted keys come from the parser's own definitions ([`File`] and
//! its sections): [`Probe`] is a serde deserializer that feeds [`File`]'s
//! `Deserialize` implementation nothing but questions and records the field
//! names it is asked for, so a key added to `file.rs` is seen here without
//! a list to keep.
//!
//! The documented keys come from `man/imxpd.toml.5`: a section is a
//! subsection heading `.SS "[name]"`, a key is a tagged paragraph whose tag
//! line is `.B key` (optionally followed by more words) inside it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::file::File;

/// What a dotted key of `imxpd.toml` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A table with fixed keys (a section such as `[relay]`).
    Table,
    /// A table whose keys the operator chooses (`[routes]`).
    FreeTable,
    /// A value.
    Value,
}

type Keys = RefCell<BTreeMap<String, Kind>>;

/// Asks a `Deserialize` implementation for its fields: every struct gets
/// each of its fields offered once, every value the emptiest one of the
/// type it asks for.
struct Probe<'a> {
    path: String,
    keys: &'a Keys,
}

impl Probe<'_> {
    fn mark(&self, kind: Kind) {
        if !self.path.is_empty() {
            self.keys.borrow_mut().insert(self.path.clone(), kind);
        }
    }
}

type Error = de::value::Error;

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.mark(Kind::Value);
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Error;

    leaf! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
        deserialize_unit => visit_unit(),
        deserialize_identifier => visit_str(""),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "{}: a self-describing value; give it a type the probe can ask about",
            self.path
        )))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // One element, probed under the same key: an array of values stays
        // a value, an array of tables (`[[gateway]]`) is a section.
        self.mark(Kind::Value);
        visitor.visit_seq(OneElement { probe: Some(self) })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.mark(Kind::FreeTable);
        visitor.visit_map(Nothing)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.mark(Kind::Table);
        visitor.visit_map(Fields {
            fields: fields.iter(),
            current: None,
            path: self.path,
            keys: self.keys,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "{}: an enum; teach the probe to offer one of its variants",
            self.path
        )))
    }
}

/// An empty sequence or table.
struct Nothing;

/// A sequence of one element, probed under the sequence's own key.
struct OneElement<'a> {
    probe: Option<Probe<'a>>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.probe.take().map(|p| seed.deserialize(p)).transpose()
    }
}

impl<'de> SeqAccess<'de> for Nothing {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _: T,
    ) -> Result<Option<T::Value>, Error> {
        Ok(None)
    }
}

impl<'de> MapAccess<'de> for Nothing {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, Error> {
        Ok(None)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<T::Value, Error> {
        Err(de::Error::custom("no value"))
    }
}

/// A struct's fields, each offered once, each value probed in turn.
struct Fields<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    path: String,
    keys: &'a Keys,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(field);
        seed.deserialize(de::value::StrDeserializer::<Error>::new(field))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let field = self.current.take().unwrap_or_default();
        let path = if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        };
        seed.deserialize(Probe {
            path,
            keys: self.keys,
        })
    }
}

/// The keys the parser accepts, with what each holds.
fn accepted() -> BTreeMap<String, Kind> {
    let keys = Keys::default();
    File::deserialize(Probe {
        path: String::new(),
        keys: &keys,
    })
    .unwrap_or_else(|e| panic!("probing the parser's keys (relay/src/config/file.rs): {e}"));
    keys.into_inner()
}

fn page() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../man/imxpd.toml.5")
}

/// The sections and keys `man/imxpd.toml.5` documents, as dotted keys.
fn documented(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut tagged = false;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if let Some(heading) = line
            .strip_prefix(".SS ")
            .or_else(|| line.strip_prefix(".SH "))
        {
            let heading = heading.trim().trim_matches('"');
            // `[name]`, or `[[name]]` for an array of tables.
            section = heading
                .strip_prefix("[[")
                .and_then(|h| h.strip_suffix("]]"))
                .or_else(|| heading.strip_prefix('[').and_then(|h| h.strip_suffix(']')))
                .map(str::to_owned);
            if let Some(section) = &section {
                out.insert(section.clone(), number);
            }
            tagged = false;
        } else if line.starts_with(".TP") {
            tagged = true;
        } else if tagged {
            tagged = false;
            if let (Some(section), Some(tag)) = (&section, line.strip_prefix(".B ")) {
                let key = tag.split_whitespace().next().unwrap_or_default();
                out.insert(format!("{section}.{key}"), number);
            }
        }
    }
    out
}

#[test]
fn every_accepted_key_is_documented_and_no_other() {
    let accepted = accepted();
    assert!(accepted.contains_key("relay.domains"), "{accepted:?}");
    assert_eq!(accepted.get("routes"), Some(&Kind::FreeTable));
    let text =
        std::fs::read_to_string(page()).unwrap_or_else(|e| panic!("{}: {e}", page().display()));
    let documented = documented(&text);
    let mut problems = Vec::new();
    for (key, kind) in &accepted {
        if documented.contains_key(key) {
            continue;
        }
        let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
        problems.push(match kind {
            Kind::Table | Kind::FreeTable => format!(
                "the parser accepts the section [{key}] (relay/src/config/file.rs), but \
                 man/imxpd.toml.5 does not document it: add a subsection `.SS \"[{key}]\"` \
                 under CONFIGURATION KEYS"
            ),
            Kind::Value => format!(
                "the parser accepts the key `{key}` (relay/src/config/file.rs), but \
                 man/imxpd.toml.5 does not document it: add `.TP` and `.B {name}` (then its \
                 type, default, unit, meaning and an example) under `.SS \"[{section}]\"`"
            ),
        });
    }
    for (key, line) in &documented {
        if !accepted.contains_key(key) {
            problems.push(format!(
                "man/imxpd.toml.5:{line} documents `{key}`, which the parser does not accept \
                 (relay/src/config/file.rs): remove it or correct its name"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_probe_sees_sections_values_and_free_tables() {
    let accepted = accepted();
    assert_eq!(accepted.get("limits"), Some(&Kind::Table));
    assert_eq!(accepted.get("limits.window"), Some(&Kind::Value));
    assert_eq!(accepted.get("tls.cert"), Some(&Kind::Value));
    assert_eq!(accepted.get("access.default_data"), Some(&Kind::Value));
    assert_eq!(accepted.get("gateway"), Some(&Kind::Table));
    assert_eq!(accepted.get("gateway.secret_file"), Some(&Kind::Value));
    let sample = ".SS \"[relay]\"\n.TP\n.B domains\ntext\n.TP\n.BI x\n.SH FILES\n.TP\n.B y\n";
    let documented = documented(sample);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        ["relay", "relay.domains"]
    );
}

//! [`Name`]: an interned action id or channel name, copied without a reference count.
//!
//! Every candidate of every decision carries its action id and channel. As `Arc<str>`
//! clones of the catalog's names, each decision bumped and dropped the same fifteen
//! shared counts about two hundred times, and with two threads deciding at once those
//! counts' cache lines moved between the cores on nearly every bump. A `Name` is a
//! `&'static str`: copying it writes nothing shared.
//!
//! Names are interned once per distinct string for the life of the process: the
//! catalog's ids when an engine is built (reloads of the same catalog add nothing) and
//! the names of decision-log records read back. Client input (events, outcomes,
//! requests) never becomes a `Name`, so the set stays as small as the catalogs.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An interned name; see the module docs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(&'static str);

fn names() -> &'static Mutex<HashSet<&'static str>> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(HashSet::new()))
}

impl Name {
    /// The interned copy of `s` (made on first sight).
    pub fn new(s: &str) -> Name {
        let mut set = names().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&known) = set.get(s) {
            return Name(known);
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        set.insert(leaked);
        Name(leaked)
    }

    /// A name that is already `'static` (the channel names), without interning.
    pub const fn from_static(s: &'static str) -> Name {
        Name(s)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Name::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_intern_to_one_address() {
        let a = Name::new("cart_reminder");
        let b = Name::new(&String::from("cart_reminder"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Name::new("win_back"));
        assert_eq!(a, "cart_reminder");
        assert_eq!(a.to_string(), "cart_reminder");
        assert_eq!(format!("{a:?}"), "\"cart_reminder\"");
    }

    #[test]
    fn names_round_trip_through_json() {
        let n = Name::new("sms");
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"sms\"");
        let back: Name = serde_json::from_str(&json).unwrap();
        assert!(std::ptr::eq(back.as_str(), n.as_str()));
        // escapes decode before interning
        let esc: Name = serde_json::from_str("\"a\\u0062c\"").unwrap();
        assert_eq!(esc, "abc");
        assert!(serde_json::from_str::<Name>("3").is_err());
    }
}

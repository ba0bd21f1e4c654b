//! What erasing a person needs from every domain: the strings that identify them (emails, phone
//! numbers, names), found and replaced wherever a copy of them was kept inside other records —
//! another person's notification, the event log. Each domain removes its own rows about the
//! person itself; this finds the copies nobody indexed.

use redb::ReadableTable;
use serde_json::Value;

use super::error::AppResult;

/// What an erased string becomes.
pub const ERASED: &str = "[deleted]";

/// Strings shorter than this are not searched for: a two-letter name would match everywhere.
const NEEDLE_CHARS_MIN: usize = 3;

/// The strings that identify an erased person.
#[derive(Debug, Clone, Default)]
pub struct Needles(Vec<String>);

impl Needles {
    pub fn new(strings: impl IntoIterator<Item = String>) -> Needles {
        let mut v: Vec<String> = strings
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| s.chars().count() >= NEEDLE_CHARS_MIN)
            .collect();
        // Longest first, so a name inside an email is not replaced before the email is.
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v.dedup();
        Needles(v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any needle appears in `bytes` (a stored record: MessagePack keeps strings as
    /// UTF-8 bytes, so a byte search finds them without decoding).
    pub fn in_bytes(&self, bytes: &[u8]) -> bool {
        self.0
            .iter()
            .any(|n| memchr::memmem::find(bytes, n.as_bytes()).is_some())
    }

    /// Replaces every needle in `text`; whether anything changed.
    pub fn scrub_str(&self, text: &mut String) -> bool {
        let mut changed = false;
        for n in &self.0 {
            if text.contains(n.as_str()) {
                *text = text.replace(n.as_str(), ERASED);
                changed = true;
            }
        }
        changed
    }

    /// Replaces every needle in every string (and object key) of `value`; whether anything
    /// changed. The shape stays, so a typed payload still decodes.
    pub fn scrub_json(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => self.scrub_str(s),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.scrub_json(v) | changed),
            Value::Object(map) => {
                let mut changed = false;
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    let mut new_key = k.clone();
                    if self.scrub_str(&mut new_key) {
                        let v = map.remove(&k).unwrap_or(Value::Null);
                        map.insert(new_key, v);
                        changed = true;
                    }
                }
                for v in map.values_mut() {
                    changed |= self.scrub_json(v);
                }
                changed
            }
            _ => false,
        }
    }
}

/// Rows of a table keyed by time-ordered ids (new rows come last) whose stored value
/// `matches`, after the key `after`: found with a read off the writer, then — for the rows
/// added since — once more in the write, from the last key the read saw, which is a short
/// tail. Returns the matching keys and the last key looked at.
pub fn matching_rows(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    after: Option<&str>,
    matches: impl Fn(&[u8]) -> AppResult<bool>,
) -> AppResult<(Vec<String>, Option<String>)> {
    let mut keys = Vec::new();
    let mut last = after.map(str::to_owned);
    let rows = match after {
        Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
        None => t.iter()?,
    };
    for row in rows {
        let (k, v) = row?;
        if matches(v.value())? {
            keys.push(k.value().to_owned());
        }
        last = Some(k.value().to_owned());
    }
    Ok((keys, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn needles_are_replaced_in_every_string_and_short_ones_are_ignored() {
        let n = Needles::new(["Zelda".to_owned(), "zelda@example.com".into(), "Al".into()]);
        let mut v = json!({"title": "Zelda sent you a gift", "to": ["zelda@example.com"],
                           "n": 3, "other": "Al is here"});
        assert!(n.scrub_json(&mut v));
        assert_eq!(
            v,
            json!({"title": "[deleted] sent you a gift", "to": ["[deleted]"], "n": 3,
                   "other": "Al is here"})
        );
        assert!(!n.scrub_json(&mut v), "nothing left to replace");
        assert!(n.in_bytes(b"xx Zelda xx"));
        assert!(!n.in_bytes(b"Al"));
    }
}

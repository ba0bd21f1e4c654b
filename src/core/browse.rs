//! Reading any table as JSON, for the admins' table browser (`GET /v1/admin/tables/{name}`):
//! keys and values decoded by their declared types (MessagePack records by their field names),
//! paged by the raw bytes of the last key, without knowing any domain's types.

use serde_json::Value;

/// A stored key or value type that can be shown as JSON.
pub trait Json: redb::Value {
    fn json(v: &Self::SelfType<'_>) -> Value;
}

impl Json for &'static str {
    fn json(v: &Self::SelfType<'_>) -> Value {
        Value::String((*v).to_owned())
    }
}

/// Records are MessagePack with named fields; bytes that are not are never shown (they could
/// hold anything, unredacted), only their length.
impl Json for &'static [u8] {
    fn json(v: &Self::SelfType<'_>) -> Value {
        rmp_serde::from_slice::<Value>(v)
            .unwrap_or_else(|_| serde_json::json!({"$undecodable": v.len()}))
    }
}

impl Json for () {
    fn json(_: &Self::SelfType<'_>) -> Value {
        Value::Null
    }
}

macro_rules! json_numbers {
    ($($t:ty),*) => {$(
        impl Json for $t {
            fn json(v: &Self::SelfType<'_>) -> Value {
                Value::from(*v)
            }
        }
    )*};
}
json_numbers!(u32, u64, i64, bool);

impl<A: Json, B: Json> Json for (A, B) {
    fn json(v: &Self::SelfType<'_>) -> Value {
        Value::Array(vec![A::json(&v.0), B::json(&v.1)])
    }
}

impl<A: Json, B: Json, C: Json> Json for (A, B, C) {
    fn json(v: &Self::SelfType<'_>) -> Value {
        Value::Array(vec![A::json(&v.0), B::json(&v.1), C::json(&v.2)])
    }
}

/// Takes one row: the key's stored bytes (the paging position), the key and the value as JSON.
/// Returns whether to go on.
pub type JsonRowVisitor<'a> = dyn FnMut(&[u8], Value, Value) -> bool + 'a;

/// Field names whose values are never shown, whatever the table: credentials and what
/// unlocks them (a push send's `address` is a device token; an unsubscribe URL carries a
/// signed token that acts for its person).
pub const REDACTED_FIELDS: [&str; 7] = [
    "password_hash",
    "code_hash",
    "secret_hash",
    "successor_sealed",
    "token",
    "address",
    "unsubscribe_url",
];

/// Whether a field of this name is redacted.
pub fn is_redacted(name: &str) -> bool {
    REDACTED_FIELDS.contains(&name) || name.contains("secret")
}

/// Replaces every redacted field, at any depth, with `"[redacted]"`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                if is_redacted(k) {
                    *field = Value::String("[redacted]".into());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The value at a dotted path (`state`, `decision.by`, `0` for an array's first item).
pub fn at_path<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Whether a JSON value reads as `text` (strings as they are, numbers, booleans and null as
/// written in JSON).
pub fn reads_as(v: &Value, text: &str) -> bool {
    match v {
        Value::String(s) => s == text,
        // Numbers, booleans and null as JSON writes them.
        other => {
            let written = other.to_string();
            written == text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_paths_reach_fields() {
        let mut v = json!({"id": "u1", "password_hash": "x", "inner": [{"device_secret": "s", "token": "t", "ok": 1}]});
        redact(&mut v);
        assert_eq!(v["password_hash"], "[redacted]");
        assert_eq!(v["inner"][0]["device_secret"], "[redacted]");
        assert_eq!(v["inner"][0]["token"], "[redacted]");
        assert_eq!(v["inner"][0]["ok"], 1);
        assert_eq!(at_path(&v, "inner.0.ok"), Some(&json!(1)));
        assert!(
            reads_as(&json!(1), "1")
                && reads_as(&json!("a"), "a")
                && reads_as(&Value::Null, "null")
        );
        assert!(!reads_as(&json!("1"), "2"));
    }
}

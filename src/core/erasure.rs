//! What erasing a person needs from every domain. Each domain erases its own rows and the
//! typed fields of its own events; these are the shared pieces: what an erased text becomes,
//! how a record is found to mention the person, and how a large table is searched with a read
//! off the writer and then, in the write, only along the short tail added since.

use redb::ReadableTable;

use super::error::AppResult;

/// What an erased string becomes.
pub const ERASED: &str = "[deleted]";

/// Whether a stored record mentions `id` (an account id: a UUID, so a byte search cannot
/// match anything else).
pub fn mentions(bytes: &[u8], id: &str) -> bool {
    memchr::memmem::find(bytes, id.as_bytes()).is_some()
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

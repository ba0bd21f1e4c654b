//! Paging: one implementation behind every list, whatever its parameter is called on the wire
//! (`before`, `cursor`, `after`, `afterSeq` stay as they were). A list pages by one of three
//! positions — a sequence number, a time with a tie-breaking id, or an id — and a client passes
//! back what the server issued (`nextBefore`, `nextCursor`, `nextAfterSeq`) without reading it.

use super::error::{AppError, AppResult};

/// Where the next page of a list starts (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// A sequence number (journal entries, messages in a conversation, the event log).
    Seq(u64),
    /// A time in unix ms and the id that breaks ties (newest-first lists by activity).
    Time(i64, String),
    /// An id in the list's own order (time-ordered UUIDv7 ids, user ids).
    Id(String),
}

impl Cursor {
    /// The wire form: `<seq>`, `<ms>:<id>` or `<id>`.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Seq(seq) => seq.to_string(),
            Cursor::Time(ms, id) => format!("{ms}:{id}"),
            Cursor::Id(id) => id.clone(),
        }
    }

    /// A sequence cursor as issued; `validation_failed` otherwise.
    pub fn seq(raw: Option<String>) -> AppResult<Option<u64>> {
        raw.map(|c| c.parse::<u64>().map_err(|_| not_ours()))
            .transpose()
    }

    /// A `<ms>:<id>` cursor as issued; `validation_failed` otherwise.
    pub fn time(raw: Option<String>) -> AppResult<Option<(i64, String)>> {
        raw.map(|c| {
            c.split_once(':')
                .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
                .ok_or_else(not_ours)
        })
        .transpose()
    }
}

fn not_ours() -> AppError {
    AppError::validation("cursor is not one we issued")
}

/// The cursor of the next page: the last item's position when the page is full (a shorter
/// page is the last one).
pub fn next_page<T>(items: &[T], limit: usize, at: impl Fn(&T) -> Cursor) -> Option<String> {
    (items.len() >= limit && limit > 0)
        .then(|| items.last().map(|last| at(last).encode()))
        .flatten()
}

/// A page size from a `limit` parameter: `default` when absent, `validation_failed` outside
/// 1–`max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> AppResult<usize> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(AppError::validation(format!("limit must be 1–{max}")));
    }
    Ok(limit as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write_and_refuse_the_rest() {
        let t = Cursor::Time(1_700_000_000_000, "0190-abc".into());
        assert_eq!(
            Cursor::time(Some(t.encode())).unwrap(),
            Some((1_700_000_000_000, "0190-abc".into()))
        );
        assert_eq!(
            Cursor::seq(Some(Cursor::Seq(42).encode())).unwrap(),
            Some(42)
        );
        assert_eq!(Cursor::seq(None).unwrap(), None);
        assert!(Cursor::seq(Some("4x".into())).is_err());
        assert!(Cursor::time(Some("no-colon".into())).is_err());
        assert!(Cursor::time(Some("x:y".into())).is_err());
        let items = [1u64, 2, 3];
        assert_eq!(next_page(&items, 3, |i| Cursor::Seq(*i)), Some("3".into()));
        assert_eq!(next_page(&items, 4, |i| Cursor::Seq(*i)), None);
        assert!(page_limit(Some(0), 10, 100).is_err());
        assert!(page_limit(Some(101), 10, 100).is_err());
        assert_eq!(page_limit(None, 10, 100).unwrap(), 10);
    }
}

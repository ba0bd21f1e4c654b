//! Bounded text: a value that was checked once, where it entered, against the limits its type
//! names, so no function after the route counts characters again.

use super::error::{AppError, AppResult};

/// Text with surrounding whitespace trimmed, `MIN`–`MAX` characters (Unicode scalar values).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    /// Trims `raw` and checks its length; the error names `field`.
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let t = raw.trim();
        let n = t.chars().count();
        if n < MIN || n > MAX {
            return Err(AppError::validation(format!(
                "{field} must be {MIN}–{MAX} characters"
            )));
        }
        Ok(Text(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<const MIN: usize, const MAX: usize> std::ops::Deref for Text<MIN, MAX> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters() {
        type Reason = Text<1, 3>;
        assert_eq!(Reason::parse("reason", "  ab ").unwrap().as_str(), "ab");
        assert_eq!(Reason::parse("reason", "ééé").unwrap().as_str(), "ééé");
        let e = Reason::parse("reason", "abcd").unwrap_err();
        assert_eq!(e.detail, "reason must be 1–3 characters");
        assert!(Reason::parse("reason", "   ").is_err());
    }
}

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

/// Characters that draw nothing or reorder the text around them, so a name made with them can
/// pass for another or for nothing: bidirectional controls and marks, zero-width characters,
/// the byte-order mark, soft hyphens, fillers, tag characters and non-characters. (Variation
/// selectors are not among them: `❤️` needs one.)
pub fn is_invisible(c: char) -> bool {
    let u = c as u32;
    matches!(
        u,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F
            | 0x1160
            | 0x17B4
            | 0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
            | 0xFDD0..=0xFDEF
    ) || u & 0xFFFE == 0xFFFE
}

/// Code points with no meaning yet (unassigned in the Unicode version of the tables) or a
/// private one (private use): each font shows them differently, if at all, so they are no
/// part of a name.
pub fn is_unassigned(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::Unassigned | GeneralCategory::PrivateUse
    )
}

/// Whether `s` has at least one character that shows (not space, control or invisible).
pub fn has_visible(s: &str) -> bool {
    s.chars()
        .any(|c| !c.is_whitespace() && !c.is_control() && !is_invisible(c))
}

/// `s` in Unicode Normalization Form C, so the same text is stored (and compared) one way.
pub fn nfc(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_known() {
        for c in [
            '\u{202E}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{FFFF}',
            '\u{2066}',
        ] {
            assert!(is_invisible(c), "{:X}", c as u32);
        }
        assert!(!has_visible("\u{200B}\u{200C} \u{FEFF}"));
        assert!(has_visible("\u{200B}a"));
        assert!(!is_invisible('é') && !is_invisible('中') && !is_invisible('\u{FE0F}'));
        assert_eq!(nfc("e\u{301}"), "\u{e9}");
    }

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

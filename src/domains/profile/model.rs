//! Profile records and the validating types of their fields.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::core::error::{AppError, AppResult};

pub const DISPLAY_NAME_CHARS_MAX: usize = 40;
pub const BIO_CHARS_MAX: usize = 500;
pub const LANGUAGES_MAX: usize = 10;
pub const AGE_MIN: i32 = 18;
/// Older than this is taken for a typo.
pub const AGE_MAX: i32 = 120;
pub const PAYOUT_ACCOUNT_CHARS_MAX: usize = 200;
pub const HOLDER_NAME_CHARS_MAX: usize = 100;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Gender {
    Female,
    Male,
    Other,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, poem_openapi::Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum KycStatus {
    #[default]
    None,
    Pending,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum PayoutMethod {
    BankTransfer,
    Paypal,
    Payoneer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayoutDetails {
    pub method: PayoutMethod,
    /// IBAN, PayPal email or Payoneer id, as the method needs.
    pub account: String,
    pub holder_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileRecord {
    #[serde(default)]
    pub display_name: Option<String>,
    /// ISO date `YYYY-MM-DD`.
    #[serde(default)]
    pub birth_date: Option<String>,
    #[serde(default)]
    pub gender: Option<Gender>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default)]
    pub avatar_media_id: Option<String>,
    /// The profile's photos, in the owner's order (media ids of their public photos).
    #[serde(default)]
    pub photo_media_ids: Vec<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub kyc_status: KycStatus,
    #[serde(default)]
    pub payout: Option<PayoutDetails>,
    #[serde(default)]
    pub updated_at_ms: i64,
    /// The owner keeps their profile out of the gallery (they can still be found and called
    /// by those who know them).
    #[serde(default)]
    pub hidden_from_gallery: bool,
}

fn no_control(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\n')
}

/// 1–40 characters after trimming and NFC, no control characters, nothing invisible,
/// direction-changing, unassigned or private-use, and at least one character that shows.
pub fn parse_display_name(raw: &str) -> AppResult<String> {
    let normal = crate::core::text::nfc(raw);
    let s = normal.trim();
    let n = s.chars().count();
    if n == 0 || n > DISPLAY_NAME_CHARS_MAX || s.contains('\n') || !no_control(s) {
        return Err(AppError::validation(format!(
            "displayName must be 1–{DISPLAY_NAME_CHARS_MAX} characters without control characters"
        )));
    }
    if s.chars().any(crate::core::text::is_invisible) || !crate::core::text::has_visible(s) {
        return Err(AppError::validation(
            "displayName must show something and hold no invisible or direction-changing characters",
        ));
    }
    if s.chars().any(crate::core::text::is_unassigned) {
        return Err(AppError::validation(
            "displayName must hold no unassigned or private-use characters",
        ));
    }
    Ok(s.to_owned())
}

pub fn parse_bio(raw: &str) -> AppResult<String> {
    let s = raw.trim();
    if s.chars().count() > BIO_CHARS_MAX || !no_control(s) {
        return Err(AppError::validation(format!(
            "bio must be at most {BIO_CHARS_MAX} characters"
        )));
    }
    Ok(s.to_owned())
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> AppResult<Date> {
    let bad = || AppError::validation(format!("birthDate `{raw}` is not a date like 1990-04-21"));
    let mut parts = raw.splitn(3, '-');
    let (y, m, d) = (parts.next(), parts.next(), parts.next());
    let (Some(y), Some(m), Some(d)) = (y, m, d) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    let d: u8 = d.parse().map_err(|_| bad())?;
    let month = Month::try_from(m).map_err(|_| bad())?;
    Date::from_calendar_date(y, month, d).map_err(|_| bad())
}

/// Whole years between `birth` and `today`.
pub fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// A birth date that makes the person an adult (18+) today.
pub fn parse_birth_date(raw: &str, today: Date) -> AppResult<String> {
    let birth = parse_date(raw)?;
    let age = age_on(birth, today);
    if birth > today || age > AGE_MAX {
        return Err(AppError::validation(format!(
            "birthDate `{raw}` is not plausible"
        )));
    }
    if age < AGE_MIN {
        return Err(AppError::validation(format!(
            "users must be at least {AGE_MIN} years old"
        )));
    }
    Ok(raw.to_owned())
}

/// ISO 3166-1 alpha-2, upper case.
pub fn parse_country(raw: &str) -> AppResult<String> {
    let s = raw.trim().to_ascii_uppercase();
    if s.len() == 2 && ISO_3166_ALPHA2.split(' ').any(|c| c == s) {
        Ok(s)
    } else {
        Err(AppError::validation(format!(
            "country `{raw}` is not an ISO 3166-1 alpha-2 code"
        )))
    }
}

/// BCP 47 language tags, well-formed, at most ten, duplicates removed.
pub fn parse_languages(raw: &[String]) -> AppResult<Vec<String>> {
    if raw.len() > LANGUAGES_MAX {
        return Err(AppError::validation(format!(
            "at most {LANGUAGES_MAX} languages"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for tag in raw {
        let parsed = language_tags::LanguageTag::parse(tag)
            .ok()
            .filter(|t| t.is_valid() && t.primary_language() != "x" && tag.len() <= 35)
            .ok_or_else(|| AppError::validation(format!("language `{tag}` is not a BCP 47 tag")))?;
        let canonical = parsed
            .canonicalize()
            .map(|t| t.to_string())
            .unwrap_or_else(|_| tag.clone());
        if !out.iter().any(|t| t.eq_ignore_ascii_case(&canonical)) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// E.164: `+` and 8–15 digits.
pub fn parse_phone(raw: &str) -> AppResult<String> {
    let s: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = s.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(s)
    } else {
        Err(AppError::validation(format!(
            "phone `{raw}` is not an E.164 number like +14155550123"
        )))
    }
}

pub fn parse_payout(
    method: PayoutMethod,
    account: &str,
    holder_name: &str,
) -> AppResult<PayoutDetails> {
    let account = account.trim();
    let holder = holder_name.trim();
    if account.is_empty()
        || account.chars().count() > PAYOUT_ACCOUNT_CHARS_MAX
        || !no_control(account)
    {
        return Err(AppError::validation(format!(
            "payoutDetails.account must be 1–{PAYOUT_ACCOUNT_CHARS_MAX} characters"
        )));
    }
    if holder.is_empty() || holder.chars().count() > HOLDER_NAME_CHARS_MAX || !no_control(holder) {
        return Err(AppError::validation(format!(
            "payoutDetails.holderName must be 1–{HOLDER_NAME_CHARS_MAX} characters"
        )));
    }
    Ok(PayoutDetails {
        method,
        account: account.to_owned(),
        holder_name: holder.to_owned(),
    })
}

/// Every officially assigned ISO 3166-1 alpha-2 code.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH \
BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR \
GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR \
KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV \
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE \
RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL \
TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_country_list_is_complete() {
        assert_eq!(ISO_3166_ALPHA2.split(' ').count(), 249);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_names_are_accepted_exactly_when_trimmed_length_fits(raw in "\\PC{0,50}") {
            use crate::core::text::{has_visible, is_invisible, is_unassigned, nfc};
            let normal = nfc(&raw);
            let trimmed = normal.trim();
            let n = trimmed.chars().count();
            let ok = (1..=DISPLAY_NAME_CHARS_MAX).contains(&n)
                && !trimmed.chars().any(is_invisible)
                && !trimmed.chars().any(is_unassigned)
                && has_visible(trimmed);
            match parse_display_name(&raw) {
                Ok(name) => {
                    prop_assert!(ok);
                    prop_assert_eq!(&name, trimmed);
                    prop_assert_eq!(parse_display_name(&name).unwrap(), name);
                }
                Err(e) => prop_assert!(!ok || trimmed.chars().any(char::is_control), "{}", e),
            }
        }

        #[test]
        fn names_with_an_invisible_or_reordering_character_are_refused(
            before in "[a-z]{0,5}",
            hidden in prop::sample::select(vec!['\u{202E}', '\u{200B}', '\u{200D}', '\u{FEFF}', '\u{2066}', '\u{E0041}', '\u{FFFE}', '\u{00AD}']),
            after in "[a-z]{0,5}",
        ) {
            let raw = format!("{before}{hidden}{after}");
            prop_assert!(parse_display_name(&raw).is_err());
        }

        #[test]
        fn names_with_an_unassigned_or_private_use_character_are_refused(
            before in "[a-z]{1,5}",
            code in prop_oneof![0x0378u32..0x037A, 0x2FE0u32..0x2FF0, 0xE000u32..0xF900, 0xF0000u32..0xFFFFE],
            after in "[a-z]{0,5}",
        ) {
            let hidden = char::from_u32(code).unwrap();
            prop_assert!(crate::core::text::is_unassigned(hidden), "U+{:04X}", code);
            let raw = format!("{before}{hidden}{after}");
            prop_assert!(parse_display_name(&raw).is_err());
            let plain = format!("{before}{after}");
            prop_assert!(parse_display_name(&plain).is_ok());
        }

        #[test]
        fn countries_are_two_known_letters_and_parsing_is_idempotent(raw in "[a-zA-Z]{0,3}") {
            if let Ok(c) = parse_country(&raw) {
                prop_assert_eq!(c.len(), 2);
                prop_assert!(c.chars().all(|ch| ch.is_ascii_uppercase()));
                prop_assert_eq!(parse_country(&c).unwrap(), c);
            } else {
                prop_assert!(raw.len() != 2 || !ISO_3166_ALPHA2.split(' ').any(|k| k.eq_ignore_ascii_case(&raw)));
            }
        }

        #[test]
        fn phones_are_plus_and_digits(raw in "[+0-9 ()-]{0,20}") {
            if let Ok(p) = parse_phone(&raw) {
                prop_assert!(p.starts_with('+'));
                prop_assert!(p[1..].chars().all(|c| c.is_ascii_digit()));
                prop_assert!((9..=16).contains(&p.len()));
            }
        }

        #[test]
        fn languages_are_bounded_deduplicated_and_stable(
            tags in proptest::collection::vec(
                proptest::sample::select(vec!["en", "de", "de-DE", "fr-CA", "pt-BR", "zh-Hant", "es-419", "uk", "tr", "ar", "EN"]),
                0..12,
            ).prop_map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>())
        ) {
            match parse_languages(&tags) {
                Ok(list) => {
                    prop_assert!(tags.len() <= LANGUAGES_MAX);
                    prop_assert!(list.len() <= tags.len());
                    prop_assert_eq!(parse_languages(&list).unwrap(), list);
                }
                Err(_) => prop_assert!(tags.len() > LANGUAGES_MAX),
            }
        }

        #[test]
        fn junk_language_tags_are_refused(junk in "[0-9!@# _]{1,8}") {
            prop_assert!(parse_languages(&[junk]).is_err());
        }

        #[test]
        fn adults_only(y in 1900i32..2030, m in 1u8..=12, d in 1u8..=28) {
            let today = Date::from_calendar_date(2026, Month::March, 1).unwrap();
            let raw = format!("{y:04}-{m:02}-{d:02}");
            let birth = parse_date(&raw).unwrap();
            let age = age_on(birth, today);
            let ok = birth <= today && (AGE_MIN..=AGE_MAX).contains(&age);
            prop_assert_eq!(parse_birth_date(&raw, today).is_ok(), ok);
        }
    }
}

/// Photos a profile shows, at most.
pub const PROFILE_PHOTOS_MAX: usize = 9;

impl ProfileRecord {
    /// Every media id the profile names: the avatar, then the photos.
    pub fn media_ids(&self) -> Vec<String> {
        self.avatar_media_id
            .iter()
            .chain(self.photo_media_ids.iter())
            .cloned()
            .collect()
    }
}

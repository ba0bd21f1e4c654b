//! Tariffs: schedules of checkpoints for the payer and the earner of a call.

use serde::{Deserialize, Serialize};

use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};

/// Checkpoints one schedule may have.
pub const CHECKPOINTS_MAX: usize = 50;
/// Longest call a schedule may describe, in seconds (a day).
pub const SECONDS_MAX: u32 = 86_400;
/// Largest amount of one checkpoint.
pub const COINS_MAX: i64 = 1_000_000;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CallKind {
    Direct,
    Roulette,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Direct => "direct",
            CallKind::Roulette => "roulette",
        }
    }
}

/// Which side of the call pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Side {
    Caller,
    Callee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Seconds after the call connected; 0 is "on connect".
    pub at_seconds: u32,
    pub coins: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    pub every_seconds: u32,
    pub coins: i64,
}

/// Checkpoints, then a rule that repeats after the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Schedule {
    pub checkpoints: Vec<Checkpoint>,
    #[serde(default)]
    pub repeat: Option<Repeat>,
}

impl Schedule {
    pub fn validate(&self, which: &str) -> AppResult<()> {
        let bad = |why: String| AppError::validation(format!("{which}: {why}"));
        if self.checkpoints.len() > CHECKPOINTS_MAX {
            return Err(bad(format!("at most {CHECKPOINTS_MAX} checkpoints")));
        }
        for pair in self.checkpoints.windows(2) {
            if pair[1].at_seconds <= pair[0].at_seconds {
                return Err(bad(
                    "checkpoints must be sorted by atSeconds, without repeats".into(),
                ));
            }
        }
        for c in &self.checkpoints {
            if c.at_seconds > SECONDS_MAX {
                return Err(bad(format!("atSeconds is at most {SECONDS_MAX}")));
            }
            if !(0..=COINS_MAX).contains(&c.coins) {
                return Err(bad(format!("coins must be 0–{COINS_MAX}")));
            }
        }
        if let Some(r) = &self.repeat {
            if r.every_seconds == 0 || r.every_seconds > SECONDS_MAX {
                return Err(bad(format!("repeat.everySeconds must be 1–{SECONDS_MAX}")));
            }
            if !(0..=COINS_MAX).contains(&r.coins) {
                return Err(bad(format!("repeat.coins must be 0–{COINS_MAX}")));
            }
        }
        Ok(())
    }

    /// Where the repeat rule starts counting: the last checkpoint, or the connect.
    fn repeat_origin(&self) -> u64 {
        self.checkpoints
            .last()
            .map_or(0, |c| u64::from(c.at_seconds))
    }

    /// Everything due for a call that lasted `seconds`: every checkpoint it reached, and every
    /// full repeat period after the last one.
    pub fn total_at(&self, seconds: u64) -> i64 {
        let fixed: i64 = self
            .checkpoints
            .iter()
            .filter(|c| u64::from(c.at_seconds) <= seconds)
            .map(|c| c.coins)
            .sum();
        let repeated = match &self.repeat {
            Some(r) if seconds >= self.repeat_origin() => {
                ((seconds - self.repeat_origin()) / u64::from(r.every_seconds)) as i64 * r.coins
            }
            _ => 0,
        };
        fixed + repeated
    }

    /// The first charge strictly after `after` seconds: (at, coins).
    pub fn next_after(&self, after: Option<u64>) -> Option<(u64, i64)> {
        let beyond = |at: u64| after.is_none_or(|a| at > a);
        if let Some(c) = self
            .checkpoints
            .iter()
            .find(|c| beyond(u64::from(c.at_seconds)))
        {
            return Some((u64::from(c.at_seconds), c.coins));
        }
        let r = self.repeat?;
        let origin = self.repeat_origin();
        let every = u64::from(r.every_seconds);
        let k = match after {
            Some(a) if a >= origin => (a - origin) / every + 1,
            _ => 1,
        };
        Some((origin + k * every, r.coins))
    }
}

/// Who a tariff applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Scope {
    /// Everyone with these roles.
    Default,
    /// Calls with this streamer.
    Streamer(String),
    /// Calls with a streamer carrying this cohort tag.
    Cohort(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    pub id: String,
    pub version: u32,
    pub name: String,
    pub kind: CallKind,
    pub caller_role: Role,
    pub callee_role: Role,
    pub payer: Side,
    pub scope: Scope,
    pub payer_schedule: Schedule,
    pub earner_schedule: Schedule,
    pub active: bool,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

/// The seed's roulette tariff: the payer pays 9 on connect, 60 at 20 s, 60 at 60 s, then 60
/// every further 60 s; the earner gets 30 at 20 s, 30 at 60 s, then 30 every further 60 s.
pub fn seed_schedules() -> (Schedule, Schedule) {
    let cp = |at_seconds, coins| Checkpoint { at_seconds, coins };
    (
        Schedule {
            checkpoints: vec![cp(0, 9), cp(20, 60), cp(60, 60)],
            repeat: Some(Repeat {
                every_seconds: 60,
                coins: 60,
            }),
        },
        Schedule {
            checkpoints: vec![cp(20, 30), cp(60, 30)],
            repeat: Some(Repeat {
                every_seconds: 60,
                coins: 30,
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_seed_tariff_bills_exactly_as_written() {
        let (payer, earner) = seed_schedules();
        for (seconds, cost, earned) in [
            (0, 9, 0),
            (19, 9, 0),
            (20, 69, 30),
            (59, 69, 30),
            (60, 129, 60),
            (119, 129, 60),
            (120, 189, 90),
            (125, 189, 90),
            (180, 249, 120),
        ] {
            assert_eq!(
                (payer.total_at(seconds), earner.total_at(seconds)),
                (cost, earned),
                "{seconds} s"
            );
        }
        assert_eq!(payer.next_after(None), Some((0, 9)));
        assert_eq!(payer.next_after(Some(0)), Some((20, 60)));
        assert_eq!(payer.next_after(Some(60)), Some((120, 60)));
        assert_eq!(payer.next_after(Some(130)), Some((180, 60)));
        assert_eq!(earner.next_after(None), Some((20, 30)));
    }

    fn schedule() -> impl Strategy<Value = Schedule> {
        (
            proptest::collection::btree_map(0u32..600, 0i64..100, 0..6),
            proptest::option::of((1u32..120, 0i64..100)),
        )
            .prop_map(|(cps, rep)| Schedule {
                checkpoints: cps
                    .into_iter()
                    .map(|(at_seconds, coins)| Checkpoint { at_seconds, coins })
                    .collect(),
                repeat: rep.map(|(every_seconds, coins)| Repeat {
                    every_seconds,
                    coins,
                }),
            })
    }

    proptest! {
        #[test]
        fn walking_the_checkpoints_adds_up_to_the_total(s in schedule(), seconds in 0u64..2000) {
            prop_assert!(s.validate("s").is_ok());
            let mut due = 0;
            let mut at = None;
            while let Some((t, coins)) = s.next_after(at) {
                if t > seconds { break; }
                due += coins;
                at = Some(t);
            }
            prop_assert_eq!(due, s.total_at(seconds));
            prop_assert!(s.total_at(seconds) <= s.total_at(seconds + 1), "never decreases");
        }
    }
}

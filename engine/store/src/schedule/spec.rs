//! A schedule's cron expression in its time zone, and which ticks are due.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Most missed ticks a `catch_up` schedule fires after downtime: the latest
/// ones; older ones are skipped.
pub const MAX_CATCH_UP: usize = 100;

/// What a schedule does with the ticks it missed (every orchestrator down).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire only the latest missed tick, then go on.
    #[default]
    Skip,
    /// Fire each missed tick (the latest [`MAX_CATCH_UP`] at most).
    CatchUp,
}

impl CatchUp {
    /// The name stored in `tasker.schedules.catch_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::CatchUp => "catch_up",
        }
    }

    /// The policy named `s` (`skip`, `catch_up`).
    pub fn parse(s: &str) -> Option<CatchUp> {
        match s {
            "skip" => Some(CatchUp::Skip),
            "catch_up" => Some(CatchUp::CatchUp),
            _ => None,
        }
    }
}

/// A parsed cron expression and time zone.
#[derive(Debug, Clone)]
pub struct Spec {
    cron: Cron,
    tz: chrono_tz::Tz,
}

impl Spec {
    /// Parses `cron` (5 fields, or 6 with seconds first) and the IANA time
    /// zone `timezone`; a refusal is [`StoreError::InvalidRequest`] naming
    /// `cron` or `timezone`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Spec, StoreError> {
        let invalid = |field: &str, reason: String| StoreError::InvalidRequest {
            field: field.into(),
            reason,
        };
        if cron.len() > 200 {
            return Err(invalid("cron", "is longer than 200 bytes".into()));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|e| invalid("cron", format!("'{cron}' is not a cron expression: {e}")))?;
        let tz: chrono_tz::Tz = timezone.parse().map_err(|_| {
            invalid(
                "timezone",
                format!("'{timezone}' is not an IANA time zone (e.g. Europe/Paris, UTC)"),
            )
        })?;
        Ok(Spec { cron: parsed, tz })
    }

    /// The first tick strictly after `t`, `None` if there is none.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The latest tick at or before `t`, `None` if there is none.
    fn latest_at_or_before(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), inclusive)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The ticks to fire at `now` for a schedule due at `next_fire_at`, in
    /// order, and its next `next_fire_at` (the first tick after `now`).
    /// Nothing is due while `next_fire_at` is after `now`. Of the ticks in
    /// `[next_fire_at, now]`, `skip` fires the latest, `catch_up` each, the
    /// latest [`MAX_CATCH_UP`] at most. Bounded work whatever the downtime:
    /// the ticks are walked back from `now`.
    pub fn due(
        &self,
        next_fire_at: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: CatchUp,
    ) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
        if next_fire_at > now {
            return (Vec::new(), Some(next_fire_at));
        }
        let most = match policy {
            CatchUp::Skip => 1,
            CatchUp::CatchUp => MAX_CATCH_UP,
        };
        let mut ticks = Vec::new();
        let mut at = self.latest_at_or_before(now, true);
        while let Some(t) = at {
            if t < next_fire_at || ticks.len() == most {
                break;
            }
            ticks.push(t);
            at = self.latest_at_or_before(t, false);
        }
        ticks.reverse();
        (ticks, self.next_after(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn field_of(e: StoreError) -> String {
        match e {
            StoreError::InvalidRequest { field, .. } => field,
            other => panic!("not an invalid request: {other}"),
        }
    }

    #[test]
    fn bad_cron_and_timezone_are_refused_naming_the_field() {
        assert_eq!(
            field_of(Spec::parse("not cron", "UTC").unwrap_err()),
            "cron"
        );
        assert_eq!(
            field_of(Spec::parse("61 * * * *", "UTC").unwrap_err()),
            "cron"
        );
        assert_eq!(field_of(Spec::parse("* * *", "UTC").unwrap_err()), "cron");
        assert_eq!(
            field_of(Spec::parse("*/5 * * * *", "Mars/Olympus").unwrap_err()),
            "timezone"
        );
        assert_eq!(
            field_of(Spec::parse("*/5 * * * *", "").unwrap_err()),
            "timezone"
        );
        assert!(Spec::parse("*/5 * * * *", "Europe/Paris").is_ok());
        assert!(
            Spec::parse("* * * * * *", "UTC").is_ok(),
            "six fields: seconds"
        );
    }

    #[test]
    fn ticks_follow_the_time_zone() {
        // 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer.
        let spec = Spec::parse("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            spec.next_after(utc("2026-01-10T12:00:00Z")),
            Some(utc("2026-01-11T08:00:00Z"))
        );
        assert_eq!(
            spec.next_after(utc("2026-07-10T12:00:00Z")),
            Some(utc("2026-07-11T07:00:00Z"))
        );
        let every_second = Spec::parse("* * * * * *", "UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            every_second.next_after(t),
            Some(t + chrono::Duration::seconds(1))
        );
    }

    #[test]
    fn nothing_is_due_before_next_fire_at() {
        let spec = Spec::parse("*/5 * * * *", "UTC").unwrap();
        let next = utc("2026-01-01T00:05:00Z");
        let (ticks, after) = spec.due(next, utc("2026-01-01T00:04:59Z"), CatchUp::CatchUp);
        assert!(ticks.is_empty());
        assert_eq!(after, Some(next));
    }

    #[test]
    fn on_time_both_policies_fire_the_one_tick() {
        let spec = Spec::parse("*/5 * * * *", "UTC").unwrap();
        let next = utc("2026-01-01T00:05:00Z");
        let now = utc("2026-01-01T00:05:00.300Z");
        for policy in [CatchUp::Skip, CatchUp::CatchUp] {
            let (ticks, after) = spec.due(next, now, policy);
            assert_eq!(ticks, vec![next]);
            assert_eq!(after, Some(utc("2026-01-01T00:10:00Z")));
        }
    }

    #[test]
    fn after_downtime_skip_fires_the_latest_tick_and_catch_up_each() {
        // Down from 00:05 to 00:31: ticks 00:05 .. 00:30 (6) were missed.
        let spec = Spec::parse("*/5 * * * *", "UTC").unwrap();
        let next = utc("2026-01-01T00:05:00Z");
        let now = utc("2026-01-01T00:31:00Z");
        let (skip, after) = spec.due(next, now, CatchUp::Skip);
        assert_eq!(skip, vec![utc("2026-01-01T00:30:00Z")]);
        assert_eq!(after, Some(utc("2026-01-01T00:35:00Z")));
        let (each, after) = spec.due(next, now, CatchUp::CatchUp);
        let expected: Vec<_> = (1..=6)
            .map(|i| next + chrono::Duration::minutes(5 * (i - 1)))
            .collect();
        assert_eq!(each, expected);
        assert_eq!(after, Some(utc("2026-01-01T00:35:00Z")));
    }

    #[test]
    fn catch_up_is_capped_to_the_latest_ticks() {
        // A day down with a tick a minute: 1,440 missed, the last 100 fire.
        let spec = Spec::parse("* * * * *", "UTC").unwrap();
        let next = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-01-02T00:00:30Z");
        let (ticks, after) = spec.due(next, now, CatchUp::CatchUp);
        assert_eq!(ticks.len(), MAX_CATCH_UP);
        assert_eq!(ticks.last(), Some(&utc("2026-01-02T00:00:00Z")));
        assert_eq!(ticks[0], utc("2026-01-01T22:21:00Z"));
        assert!(ticks.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(after, Some(utc("2026-01-02T00:01:00Z")));
    }

    #[test]
    fn catch_up_policy_names_round_trip() {
        for p in [CatchUp::Skip, CatchUp::CatchUp] {
            assert_eq!(CatchUp::parse(p.as_str()), Some(p));
        }
        assert_eq!(CatchUp::parse("sometimes"), None);
    }
}

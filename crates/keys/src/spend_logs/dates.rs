//! The dates of the spend routes: LiteLLM's `start_date`/`end_date` (`YYYY-MM-DD`, also
//! `YYYY-MM-DD HH:MM:SS` and RFC 3339), all UTC, and day numbers written out as dates.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use vaultgate_core::{Error, Result};

use super::store::DAY_MS;

/// Which end of a range a date is: a bare day as `end_date` covers that whole day.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Start,
    End,
}

/// Unix milliseconds of a date parameter: the start of a bare day, or the day after it for
/// `End::End` (ranges are `[start, end)`), or the exact time given.
pub(crate) fn parse(name: &str, text: &str, end: End) -> Result<i64> {
    let text = text.trim();
    let day = format_description!("[year]-[month]-[day]");
    let with_time = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let ms = |t: OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    let parsed = if let Ok(date) = Date::parse(text, day) {
        let start = ms(date.midnight().assume_utc());
        match end {
            End::Start => start,
            End::End => start.and_then(|s| s.checked_add(DAY_MS)),
        }
    } else if let Ok(t) = PrimitiveDateTime::parse(text, with_time) {
        ms(t.assume_utc())
    } else if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        ms(t)
    } else {
        None
    };
    parsed.ok_or_else(|| {
        Error::bad_param(
            name,
            format!("{name} must be a date like 2024-05-10 (or 2024-05-10 13:00:00), got {text:?}"),
        )
    })
}

/// The optional `[start_date, end_date)` of a request, checked to be in order.
pub(crate) fn range(start: Option<&str>, end: Option<&str>) -> Result<(Option<i64>, Option<i64>)> {
    let from = start
        .map(|s| parse("start_date", s, End::Start))
        .transpose()?;
    let to = end.map(|e| parse("end_date", e, End::End)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(Error::bad_param(
            "end_date",
            "end_date must not be before start_date",
        ));
    }
    Ok((from, to))
}

/// Both dates, as routes that need them say (LiteLLM's message).
pub(crate) fn required(start: Option<&str>, end: Option<&str>) -> Result<(i64, i64)> {
    match range(start, end)? {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(Error::bad_request("Please provide start_date and end_date")),
    }
}

/// `YYYY-MM-DD` of a day number (days since the unix epoch, UTC).
pub(crate) fn day_text(day: i64) -> String {
    OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "1970-01-01".into())
}

/// The day number of a time in unix milliseconds.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates_parse_as_utc_ranges() {
        let start = parse("start_date", "2024-05-10", End::Start).unwrap();
        assert_eq!(start, 1_715_299_200_000);
        assert_eq!(
            parse("end_date", "2024-05-10", End::End).unwrap(),
            start + DAY_MS
        );
        assert_eq!(
            parse("start_date", "2024-05-10 01:00:00", End::Start).unwrap(),
            start + 3_600_000
        );
        assert_eq!(
            parse("start_date", "2024-05-10T00:00:01Z", End::Start).unwrap(),
            start + 1_000
        );
        assert_eq!(day_text(day_of(start)), "2024-05-10");
        for bad in ["", "yesterday", "2024-13-01", "10/05/2024"] {
            let error = parse("start_date", bad, End::Start).unwrap_err();
            assert!(error.to_string().contains("start_date"), "{bad}");
        }
        assert!(range(Some("2024-05-11"), Some("2024-05-10")).is_err());
        assert!(range(Some("2024-05-10"), Some("2024-05-10")).is_ok());
        assert!(required(Some("2024-05-10"), None).is_err());
    }
}

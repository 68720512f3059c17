//! Reading one LiteLLM row (a JSON object, as PostgreSQL's `to_jsonb` renders it: arrays for
//! `text[]`, objects for `jsonb`, ISO 8601 for timestamps) field by field, with errors that
//! name the table, the row and the column.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vaultgate_core::{Error, Result};

/// One row of a LiteLLM table.
pub struct Row<'a> {
    pub table: &'static str,
    pub fields: &'a Map<String, Value>,
}

impl Row<'_> {
    fn get(&self, column: &str) -> Option<&Value> {
        self.fields.get(column).filter(|v| !v.is_null())
    }

    /// A text column; an empty string counts as none.
    pub fn text(&self, column: &str) -> Option<String> {
        self.get(column)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    }

    /// A text column every row has (a primary key).
    pub fn required(&self, column: &str) -> Result<String> {
        self.text(column).ok_or_else(|| {
            Error::Database(format!(
                "LiteLLM table {}: a row without {column}: {}",
                self.table,
                self.describe()
            ))
        })
    }

    pub fn float(&self, column: &str) -> Option<f64> {
        self.get(column).and_then(Value::as_f64)
    }

    /// A count or limit; negative values count as none.
    pub fn count(&self, column: &str) -> Option<u64> {
        let value = self.get(column)?;
        value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        })
    }

    pub fn flag(&self, column: &str) -> bool {
        self.get(column).and_then(Value::as_bool).unwrap_or(false)
    }

    /// A `text[]` column (or a JSON list of strings).
    pub fn list(&self, column: &str) -> Vec<String> {
        self.get(column)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A JSON object column (`{}` when null or not an object).
    pub fn object(&self, column: &str) -> Map<String, Value> {
        self.get(column)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// A timestamp column as unix milliseconds.
    pub fn time(&self, column: &str) -> Result<Option<i64>> {
        let Some(value) = self.get(column) else {
            return Ok(None);
        };
        value
            .as_str()
            .and_then(parse_time)
            .map(Some)
            .ok_or_else(|| {
                Error::Database(format!(
                    "LiteLLM table {}, {}: column {column} holds {value}, which is not a time",
                    self.table,
                    self.describe()
                ))
            })
    }

    /// Whether a column LiteLLM has and vaultgate does not is set to anything but its default.
    pub fn is_set(&self, column: &str) -> bool {
        match self.get(column) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::Null) => false,
        }
    }

    /// The row's identifying columns, for messages (no secret columns exist in what is read).
    fn describe(&self) -> String {
        [
            "token",
            "team_id",
            "user_id",
            "organization_id",
            "budget_id",
        ]
        .iter()
        .find_map(|c| self.text(c).map(|v| format!("{c} {v}")))
        .unwrap_or_else(|| "a row".into())
    }
}

/// `2024-05-01T12:00:00.123` (timestamp, UTC as Prisma writes it) or with an offset
/// (timestamptz).
pub fn parse_time(text: &str) -> Option<i64> {
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339))
        .ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn times_as_postgres_renders_them() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5"), Some(1_500));
        assert_eq!(parse_time("1970-01-01T00:00:01"), Some(1_000));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_time("infinity"), None);
    }

    #[test]
    fn fields() {
        let fields = json!({"a": "", "b": "x", "n": 5, "neg": -1, "f": 2.5, "l": ["x", 1, "y"],
                            "o": {"k": 1}, "t": "2024-01-01T00:00:00", "bad": "soon", "z": null})
        .as_object()
        .cloned()
        .unwrap();
        let row = Row {
            table: "T",
            fields: &fields,
        };
        assert_eq!(row.text("a"), None);
        assert_eq!(row.text("b").as_deref(), Some("x"));
        assert_eq!(row.count("n"), Some(5));
        assert_eq!(row.count("neg"), None);
        assert_eq!(row.float("f"), Some(2.5));
        assert_eq!(row.list("l"), ["x", "y"]);
        assert_eq!(row.object("o").len(), 1);
        assert_eq!(row.object("z").len(), 0);
        assert_eq!(row.time("t").unwrap(), Some(1_704_067_200_000));
        assert!(row.time("bad").unwrap_err().to_string().contains("bad"));
        assert!(row.is_set("o") && !row.is_set("z") && !row.is_set("a"));
    }
}

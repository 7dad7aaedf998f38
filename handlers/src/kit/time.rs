//! Timestamps as every handler writes them.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a timestamp the way every handler writes `processed_at`,
/// `archived_at` and the like: RFC 3339, UTC, millisecond precision, `Z`
/// suffix (`2024-05-01T12:00:00.000Z`).
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn utc_with_milliseconds_and_z() {
        let now = Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(timestamp(now), "2024-05-01T12:00:00.000Z");
    }
}

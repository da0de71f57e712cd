//! ISO 8601 date-times for the text encodings, without a calendar crate: KMIP needs only
//! proleptic Gregorian dates with a numeric offset or `Z`.

use thiserror::Error;

/// Text that is not an ISO 8601 date-time this codec reads.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("not an ISO 8601 date-time: {0:?}")]
pub struct BadDate(pub String);

// Howard Hinnant's days-from-civil and its inverse.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parse to microseconds since the epoch. Accepts `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`.
pub fn parse_micros(s: &str) -> Result<i64, BadDate> {
    let bad = || BadDate(s.to_owned());
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, BadDate> {
        let t = s.get(r).ok_or_else(bad)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return Err(bad());
        }
        let digits = &frac[..n];
        let padded = format!("{digits:0<6}");
        micros = padded[..6].parse().map_err(|_| bad())?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let o = &rest[1..];
            if o.len() != 5 || o.as_bytes()[2] != b':' {
                return Err(bad());
            }
            let oh: i64 = o[..2].parse().map_err(|_| bad())?;
            let om: i64 = o[3..].parse().map_err(|_| bad())?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Ok(secs * 1_000_000 + micros)
}

/// Parse to whole seconds since the epoch; a fractional part is an error.
pub fn parse_secs(s: &str) -> Result<i64, BadDate> {
    let m = parse_micros(s)?;
    if m % 1_000_000 != 0 {
        return Err(BadDate(s.to_owned()));
    }
    Ok(m / 1_000_000)
}

/// Seconds since the epoch as ISO 8601 in UTC, as KMIP XML and JSON write a Date-Time.
pub fn format_secs(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Microseconds since the epoch as ISO 8601 in UTC, as KMIP XML and JSON write a Date-Time
/// Extended.
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let base = format_secs(secs);
    format!("{}.{frac:06}+00:00", &base[..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            0i64,
            6,
            946_684_800,
            -86_400,
            1_700_000_000,
            253_402_300_799,
        ] {
            assert_eq!(
                parse_secs(&format_secs(s)).unwrap(),
                s,
                "{}",
                format_secs(s)
            );
        }
        assert_eq!(format_secs(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            parse_secs("2000-01-01T00:00:00+10:00").unwrap(),
            946_648_800
        );
        assert_eq!(parse_secs("2000-01-01T00:00:00Z").unwrap(), 946_684_800);
        assert_eq!(parse_micros("1970-01-01T00:00:01.5Z").unwrap(), 1_500_000);
        assert_eq!(format_micros(1_500_001), "1970-01-01T00:00:01.500001+00:00");
        assert_eq!(parse_micros(&format_micros(-1)).unwrap(), -1);
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "2000-01-01",
            "2000-13-01T00:00:00Z",
            "2000-01-01T00:00:00+1000",
            "$NOW",
            "2000-01-01T00:00:00.Z",
            "２000-01-01T00:00:00Z",
        ] {
            assert!(parse_micros(s).is_err(), "{s}");
        }
        assert!(parse_secs("1970-01-01T00:00:01.5Z").is_err());
    }
}

//! Events in canonical form, as the ingest API and the SDK write them, decoded with the verdict of
//! `streams.wire.decode` on every record this module takes: it takes a subset of what the contract
//! accepts (see `parse`), and leaves everything else (invalid records, other spellings of valid ones)
//! to the Python path, which gives the contract's verdict and its reasons.

use crate::json::{Number, Reader};
use std::borrow::Cow;

const NAME_MAX: usize = 64;
const SHORT_TEXT_MAX: usize = 128;
const TEXT_MAX: usize = 4000;
const PARTICIPANT_ID_MAX: usize = 128;
const PROPERTIES_MAX: usize = 16;
/// Times are taken from 1970 to 2200: their microseconds since the epoch are below 2^53, so the
/// processor's float arithmetic on them (`datetime.timestamp()`) is reproduced exactly.
const FIRST_YEAR: i64 = 1970;
const LAST_YEAR: i64 = 2200;
const EXACT_INT: u64 = 1 << 53;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Exposure,
    Usage,
    Feedback,
    Consent,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exposure => "exposure",
            Kind::Usage => "usage",
            Kind::Feedback => "feedback",
            Kind::Consent => "consent",
        }
    }
}

/// An event's payload, its strings borrowed from the record where they hold no escape.
#[derive(Debug, Clone)]
pub enum Payload<'a> {
    Exposure {
        experiment: &'a str,
        variant: &'a str,
    },
    Usage {
        action: &'a str,
        value: Option<f64>,
        properties: Vec<(&'a str, Cow<'a, str>)>,
    },
    Feedback {
        kind: &'a str,
        score: Option<f64>,
        sus: Option<f64>,
        text: Option<Cow<'a, str>>,
        target: Option<Cow<'a, str>>,
        experiment: Option<&'a str>,
    },
    Consent {
        granted: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The event id's 128 bits, and as written (canonical, lower case).
    pub id: u128,
    pub id_text: &'a str,
    pub pilot: &'a str,
    pub participant: Cow<'a, str>,
    /// Microseconds since the epoch (UTC), POSIX seconds as `datetime.timestamp()` gives them, and
    /// milliseconds as the processor takes them (`int(seconds * 1000)`).
    pub micros: i64,
    pub seconds: f64,
    pub ms: i64,
    pub kind: Kind,
    pub payload: Payload<'a>,
}

/// `^[A-Za-z0-9][A-Za-z0-9_.:\-]*$`, 1 to 64 characters (experiments, variants, actions, property names).
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= NAME_MAX
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

/// `^[a-z0-9][a-z0-9\-]*$`, 1 to 64 characters (pilot keys).
pub fn is_pilot_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= NAME_MAX
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

fn at_most(s: &str, chars: usize) -> bool {
    s.len() <= chars || s.chars().count() <= chars
}

/// The 128 bits of a UUID written canonically in lower case (8-4-4-4-12 hex digits).
fn uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut halves = [0u64; 2];
    let mut n = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'-' => continue,
            _ => return None,
        };
        halves[n / 16] = (halves[n / 16] << 4) | d as u64;
        n += 1;
    }
    Some(((halves[0] as u128) << 64) | halves[1] as u128)
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days from 1970-01-01 to the date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)`, a subset of
/// RFC 3339 that msgspec and the contract read alike (more digits, other separators and offsets are
/// left to the Python path).
pub fn time_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year)
        || !(1..=12).contains(&month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let month_days = [31, if leap(year) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let mut i = 19;
    let mut fraction: i64 = 0;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let n = end - start;
        if n == 0 || n > 6 {
            return None;
        }
        fraction = digits(&b[start..end])? * 10_i64.pow((6 - n) as u32);
        i = end;
    }
    let offset_minutes = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 || (*sign == b'-' && h == 0 && m == 0) {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    let micros = seconds * 1_000_000 + fraction;
    if !(0..(EXACT_INT as i64)).contains(&micros) {
        return None;
    }
    Some(micros)
}

fn check_feedback(
    kind: &str,
    score: Option<f64>,
    answers: &Option<Vec<i64>>,
    text: &Option<Cow<str>>,
    target: &Option<Cow<str>>,
) -> Option<()> {
    match kind {
        "rating" => {
            let s = score?;
            // Scores in halves only: their bucket (`f"{score:g}"`) is written below as Python does.
            if !(1.0..=5.0).contains(&s) || (s * 2.0).fract() != 0.0 {
                return None;
            }
        }
        "nps" => {
            let s = score?;
            if !(0.0..=10.0).contains(&s) || s.fract() != 0.0 {
                return None;
            }
        }
        "sus" => {
            let a = answers.as_ref()?;
            if a.len() != 10 || a.iter().any(|x| !(1..=5).contains(x)) {
                return None;
            }
        }
        "comment" | "idea" => {
            // Non-empty once stripped: a text with an ASCII letter or digit is, for Python's `strip`
            // too (whose whitespace is not quite Unicode's); any other is left to the Python path.
            let t = text.as_ref()?;
            if !t.bytes().any(|c| c.is_ascii_alphanumeric()) {
                return None;
            }
        }
        "vote" => {
            let t = target.as_ref()?;
            if t.is_empty() {
                return None;
            }
            if let Some(s) = score {
                if s != 1.0 && s != -1.0 {
                    return None;
                }
            }
        }
        _ => return None,
    }
    Some(())
}

fn sus_score(answers: &[i64]) -> f64 {
    let mut total: i64 = 0;
    for (i, a) in answers.iter().enumerate() {
        total += if i % 2 == 0 { a - 1 } else { 5 - a };
    }
    total as f64 * 2.5
}

/// A float field: a JSON number, integers only while a float holds them exactly (as msgspec reads them).
fn float(n: Number) -> Option<f64> {
    match n {
        Number::Int(v) if v.unsigned_abs() <= EXACT_INT => Some(v as f64),
        Number::Int(_) => None,
        Number::Float(v) => Some(v),
    }
}

/// A field that may be null: None for null, Some(the value) otherwise.
fn nullable<'a, T>(r: &mut Reader<'a>, read: impl FnOnce(&mut Reader<'a>) -> Option<T>) -> Option<Option<T>> {
    if r.null() {
        Some(None)
    } else {
        read(r).map(Some)
    }
}

/// Keeps a field's value, refusing a field read twice (msgspec and pydantic would keep the last: left
/// to them).
fn put<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

fn payload<'a>(r: &mut Reader<'a>, kind: Kind) -> Option<Payload<'a>> {
    match kind {
        Kind::Exposure => {
            let (mut experiment, mut variant) = (None, None);
            r.object(|r, key| match key {
                "experiment" => put(&mut experiment, r.raw_str()?),
                "variant" => put(&mut variant, r.raw_str()?),
                _ => None,
            })?;
            let (experiment, variant) = (experiment?, variant?);
            if !is_name(experiment) || !is_name(variant) {
                return None;
            }
            Some(Payload::Exposure { experiment, variant })
        }
        Kind::Usage => {
            let (mut action, mut value, mut session, mut properties) = (None, None, None, None);
            r.object(|r, key| match key {
                "action" => put(&mut action, r.raw_str()?),
                "value" => put(&mut value, nullable(r, |r| float(r.number()?))?),
                "session_id" => put(&mut session, nullable(r, |r| r.string())?),
                "properties" => {
                    let mut read: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
                    r.object(|r, name| {
                        let v = r.string()?;
                        if read.iter().any(|(k, _)| *k == name) || !is_name(name) || !at_most(&v, SHORT_TEXT_MAX) {
                            return None;
                        }
                        read.push((name, v));
                        Some(())
                    })?;
                    put(&mut properties, read)
                }
                _ => None,
            })?;
            let (action, properties) = (action?, properties.unwrap_or_default());
            if !is_name(action)
                || properties.len() > PROPERTIES_MAX
                || session.flatten().is_some_and(|s| !at_most(&s, SHORT_TEXT_MAX))
            {
                return None;
            }
            Some(Payload::Usage { action, value: value.flatten(), properties })
        }
        Kind::Feedback => {
            let (mut kind, mut score, mut answers, mut text, mut target, mut experiment) =
                (None, None, None, None, None, None);
            r.object(|r, key| match key {
                "kind" => put(&mut kind, r.raw_str()?),
                "score" => put(&mut score, nullable(r, |r| float(r.number()?))?),
                "answers" => put(&mut answers, nullable(r, |r| r.integers())?),
                "text" => put(&mut text, nullable(r, |r| r.string())?),
                "target" => put(&mut target, nullable(r, |r| r.string())?),
                "experiment" => put(&mut experiment, nullable(r, |r| r.raw_str())?),
                _ => None,
            })?;
            let kind = kind?;
            let (score, answers, text, target, experiment) =
                (score.flatten(), answers.flatten(), text.flatten(), target.flatten(), experiment.flatten());
            if text.as_ref().is_some_and(|t| !at_most(t, TEXT_MAX)) || experiment.is_some_and(|e| !is_name(e)) {
                return None;
            }
            check_feedback(kind, score, &answers, &text, &target)?;
            let sus = match (&answers, kind) {
                (Some(a), "sus") if !a.is_empty() => Some(sus_score(a)),
                _ => None,
            };
            Some(Payload::Feedback { kind, score, sus, text, target, experiment })
        }
        Kind::Consent => {
            let (mut granted, mut scope) = (None, None);
            r.object(|r, key| match key {
                "granted" => put(&mut granted, r.boolean()?),
                "scope" => put(&mut scope, r.string()?),
                _ => None,
            })?;
            if scope.is_some_and(|s| !at_most(&s, SHORT_TEXT_MAX)) {
                return None;
            }
            Some(Payload::Consent { granted: granted? })
        }
    }
}

/// Returns the event of a record when this module takes it (see the module's doc), else None.
pub fn parse(data: &[u8]) -> Option<Event<'_>> {
    // `wire.decode` sends a record holding a `\u` escape to the contract; so does this module.
    if memchr::memmem::find(data, b"\\u").is_some() {
        return None;
    }
    let mut r = Reader::new(data)?;
    let (mut event_id, mut kind, mut pilot, mut participant, mut occurred_at) = (None, None, None, None, None);
    let (mut received_at, mut source, mut schema_version) = (None, None, None);
    // The payload is read once its type is known; when it comes first, skipped (its place kept) and
    // read after.
    let (mut body, mut later) = (None, None);
    r.object(|r, key| match key {
        "event_id" => put(&mut event_id, r.raw_str()?),
        "type" => {
            let read = match r.raw_str()? {
                "exposure" => Kind::Exposure,
                "usage" => Kind::Usage,
                "feedback" => Kind::Feedback,
                "consent" => Kind::Consent,
                _ => return None,
            };
            put(&mut kind, read)
        }
        "pilot_id" => put(&mut pilot, r.raw_str()?),
        "participant_id" => put(&mut participant, r.string()?),
        "occurred_at" => put(&mut occurred_at, r.raw_str()?),
        "received_at" => put(&mut received_at, nullable(r, |r| r.raw_str())?),
        "source" => put(&mut source, r.string()?),
        "schema_version" => put(&mut schema_version, r.number()?),
        "payload" if body.is_none() && later.is_none() => match kind {
            Some(k) => put(&mut body, payload(r, k)?),
            None => {
                later = Some(r.position());
                r.skip_value()
            }
        },
        _ => None,
    })?;
    r.end()?;
    let kind = kind?;
    let body = match (body, later) {
        (Some(b), _) => b,
        (None, Some(at)) => payload(&mut r.at(at), kind)?,
        (None, None) => return None,
    };
    if let Some(t) = received_at.flatten() {
        time_micros(t)?;
    }
    let (event_id, pilot, participant) = (event_id?, pilot?, participant?);
    if !matches!(schema_version, None | Some(Number::Int(1)))
        || !is_pilot_key(pilot)
        || participant.is_empty()
        || !at_most(&participant, PARTICIPANT_ID_MAX)
        || source.as_ref().is_some_and(|s| !at_most(s, SHORT_TEXT_MAX))
    {
        return None;
    }
    let id = uuid(event_id)?;
    let micros = time_micros(occurred_at?)?;
    let seconds = micros as f64 / 1e6;
    Some(Event {
        id,
        id_text: event_id,
        pilot,
        participant,
        micros,
        seconds,
        ms: (seconds * 1000.0) as i64,
        kind,
        payload: body,
    })
}

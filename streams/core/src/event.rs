//! Events in canonical form, as the ingest API and the SDK write them, decoded with the verdict of
//! `streams.wire.decode` on every record this module takes: it takes a subset of what the contract
//! accepts (see `parse`), and leaves everything else (invalid records, other spellings of valid ones)
//! to the Python path, which gives the contract's verdict and its reasons.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

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

/// A JSON number read as a float: integers only while a float holds them exactly.
struct Num(f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                if v.is_finite() {
                    Ok(Num(v))
                } else {
                    Err(E::custom("not finite"))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                if v <= EXACT_INT {
                    Ok(Num(v as f64))
                } else {
                    Err(E::custom("integer beyond 2^53"))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                if v.unsigned_abs() <= EXACT_INT {
                    Ok(Num(v as f64))
                } else {
                    Err(E::custom("integer beyond 2^53"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Properties in their order, refused when a name comes twice.
#[derive(Default)]
struct Props<'a>(Vec<(&'a str, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Props<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Props<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Props<'a>, M::Error> {
                let mut out: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
                while let Some(k) = map.next_key::<&'de str>()? {
                    let v: Cow<'de, str> = map.next_value::<Text<'de>>()?.0;
                    if out.iter().any(|(name, _)| *name == k) {
                        return Err(de::Error::custom("a property twice"));
                    }
                    out.push((k, v));
                }
                Ok(Props(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A string, borrowed from the record when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

fn default_source() -> Text<'static> {
    Text(Cow::Borrowed("unknown"))
}

fn default_scope() -> Text<'static> {
    Text(Cow::Borrowed("usage"))
}

fn one() -> u8 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    pilot_id: &'a str,
    #[serde(borrow)]
    participant_id: Text<'a>,
    occurred_at: &'a str,
    #[serde(default, borrow)]
    received_at: Option<&'a str>,
    #[serde(default = "default_source", borrow)]
    source: Text<'a>,
    #[serde(default = "one")]
    schema_version: u8,
    #[serde(borrow)]
    payload: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExposureP<'a> {
    experiment: &'a str,
    variant: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageP<'a> {
    action: &'a str,
    #[serde(default)]
    value: Option<Num>,
    #[serde(default, borrow)]
    session_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    properties: Props<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackP<'a> {
    kind: &'a str,
    #[serde(default)]
    score: Option<Num>,
    #[serde(default)]
    answers: Option<Vec<i64>>,
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    target: Option<Text<'a>>,
    #[serde(default, borrow)]
    experiment: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentP<'a> {
    granted: bool,
    #[serde(default = "default_scope", borrow)]
    scope: Text<'a>,
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
    text: &Option<Text>,
    target: &Option<Text>,
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
            if !t.0.bytes().any(|c| c.is_ascii_alphanumeric()) {
                return None;
            }
        }
        "vote" => {
            let t = target.as_ref()?;
            if t.0.is_empty() {
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

/// Returns the event of a record when this module takes it (see the module's doc), else None.
pub fn parse(data: &[u8]) -> Option<Event<'_>> {
    // `wire.decode` sends a record holding a `\u` escape to the contract; so does this module.
    if memchr::memmem::find(data, b"\\u").is_some() {
        return None;
    }
    let env: Envelope = serde_json::from_slice(data).ok()?;
    if env.schema_version != 1
        || !is_pilot_key(env.pilot_id)
        || env.participant_id.0.is_empty()
        || !at_most(&env.participant_id.0, PARTICIPANT_ID_MAX)
        || !at_most(&env.source.0, SHORT_TEXT_MAX)
    {
        return None;
    }
    let id = uuid(env.event_id)?;
    let micros = time_micros(env.occurred_at)?;
    if let Some(r) = env.received_at {
        time_micros(r)?;
    }
    let raw = env.payload.get();
    let (kind, payload) = match env.kind {
        "exposure" => {
            let p: ExposureP = serde_json::from_str(raw).ok()?;
            if !is_name(p.experiment) || !is_name(p.variant) {
                return None;
            }
            (Kind::Exposure, Payload::Exposure { experiment: p.experiment, variant: p.variant })
        }
        "usage" => {
            let p: UsageP = serde_json::from_str(raw).ok()?;
            if !is_name(p.action) || p.properties.0.len() > PROPERTIES_MAX {
                return None;
            }
            if let Some(s) = &p.session_id {
                if !at_most(&s.0, SHORT_TEXT_MAX) {
                    return None;
                }
            }
            let mut properties = Vec::with_capacity(p.properties.0.len());
            for (k, v) in p.properties.0 {
                if !is_name(k) || !at_most(&v, SHORT_TEXT_MAX) {
                    return None;
                }
                properties.push((k, v));
            }
            (Kind::Usage, Payload::Usage { action: p.action, value: p.value.map(|n| n.0), properties })
        }
        "feedback" => {
            let p: FeedbackP = serde_json::from_str(raw).ok()?;
            let score = p.score.map(|n| n.0);
            if let Some(t) = &p.text {
                if !at_most(&t.0, TEXT_MAX) {
                    return None;
                }
            }
            if let Some(e) = p.experiment {
                if !is_name(e) {
                    return None;
                }
            }
            check_feedback(p.kind, score, &p.answers, &p.text, &p.target)?;
            let sus = match (&p.answers, p.kind) {
                (Some(a), "sus") if !a.is_empty() => Some(sus_score(a)),
                _ => None,
            };
            (
                Kind::Feedback,
                Payload::Feedback {
                    kind: p.kind,
                    score,
                    sus,
                    text: p.text.map(|t| t.0),
                    target: p.target.map(|t| t.0),
                    experiment: p.experiment,
                },
            )
        }
        "consent" => {
            let p: ConsentP = serde_json::from_str(raw).ok()?;
            if !at_most(&p.scope.0, SHORT_TEXT_MAX) {
                return None;
            }
            (Kind::Consent, Payload::Consent { granted: p.granted })
        }
        _ => return None,
    };
    let seconds = micros as f64 / 1e6;
    Some(Event {
        id,
        id_text: env.event_id,
        pilot: env.pilot_id,
        participant: env.participant_id.0,
        micros,
        seconds,
        ms: (seconds * 1000.0) as i64,
        kind,
        payload,
    })
}

//! A participant's state, as `streams.processor.ParticipantState` and `experiments.attribution.PilotLog`
//! keep it, read from and written to the same JSON (the faust table's value): written byte for byte
//! as orjson writes the Python objects, so either path reads what the other wrote.

use crate::contrib::{kind_index, KINDS};
use rustc_hash::FxHashSet;
use serde_json::{Map, Value};
use std::io::Write;

/// (ms, kind, score, sus score, target idea, experiment); the kind as its index in `KINDS`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackItem {
    pub ms: i64,
    pub kind: u8,
    pub score: Option<f64>,
    pub sus: Option<f64>,
    pub target: Option<String>,
    pub experiment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    pub consent: Vec<(i64, bool)>,
    /// In the order the experiments were first exposed (a dict's order in Python).
    pub exposures: Vec<(String, Vec<(i64, String)>)>,
    pub usage: Vec<(i64, String, Option<f64>)>,
    pub feedback: Vec<FeedbackItem>,
    pub properties: Vec<(String, (i64, String))>,
    pub seen: FxHashSet<u64>,
}

/// At most this many exposures of one experiment are kept (`attribution.MAX_EXPOSURES`).
const MAX_EXPOSURES: usize = 8;

fn usage_order(item: &(i64, String, Option<f64>)) -> (i64, &str, f64) {
    (item.0, item.1.as_str(), item.2.unwrap_or(-1e308))
}

fn cmp_usage(a: &(i64, String, Option<f64>), b: &(i64, String, Option<f64>)) -> std::cmp::Ordering {
    let (x, y) = (usage_order(a), usage_order(b));
    x.0.cmp(&y.0).then_with(|| x.1.cmp(y.1)).then_with(|| x.2.partial_cmp(&y.2).unwrap_or(std::cmp::Ordering::Equal))
}

impl Log {
    pub fn exposures_of(&self, experiment: &str) -> Option<&Vec<(i64, String)>> {
        self.exposures.iter().find(|(k, _)| k == experiment).map(|(_, v)| v)
    }

    pub fn add_consent(&mut self, ms: i64, granted: bool) {
        let item = (ms, granted);
        let at = self.consent.partition_point(|x| *x <= item);
        self.consent.insert(at, item);
    }

    pub fn add_exposure(&mut self, experiment: &str, ms: i64, variant: &str) {
        let items = match self.exposures.iter().position(|(k, _)| k == experiment) {
            Some(i) => &mut self.exposures[i].1,
            None => {
                self.exposures.push((experiment.to_owned(), Vec::new()));
                &mut self.exposures.last_mut().expect("just pushed").1
            }
        };
        let at = items.partition_point(|(t, v)| (*t, v.as_str()) <= (ms, variant));
        items.insert(at, (ms, variant.to_owned()));
        if items.len() > MAX_EXPOSURES {
            let last = items.len() - 1;
            items.drain(MAX_EXPOSURES - 1..last);
        }
    }

    pub fn add_usage<S: AsRef<str>>(&mut self, ms: i64, action: &str, value: Option<f64>, properties: &[(&str, S)]) {
        let item = (ms, action.to_owned(), value);
        let usage = &mut self.usage;
        let append = match usage.last() {
            None => true,
            Some(last) => last.0 < ms || cmp_usage(last, &item) != std::cmp::Ordering::Greater,
        };
        if append {
            usage.push(item);
        } else {
            let at = usage.partition_point(|x| cmp_usage(x, &item) != std::cmp::Ordering::Greater);
            usage.insert(at, item);
        }
        for (name, val) in properties {
            let val = val.as_ref();
            match self.properties.iter_mut().find(|(k, _)| k == name) {
                None => self.properties.push(((*name).to_owned(), (ms, val.to_owned()))),
                Some((_, old)) => {
                    if ms < old.0 || (ms == old.0 && val < old.1.as_str()) {
                        *old = (ms, val.to_owned());
                    }
                }
            }
        }
    }

    pub fn add_feedback(&mut self, item: FeedbackItem) {
        self.feedback.push(item);
        // A stable sort by (ms, kind, target or "", score or -1e308), as `PilotLog.add_feedback`.
        self.feedback.sort_by(|a, b| {
            a.ms.cmp(&b.ms)
                .then_with(|| KINDS[a.kind as usize].cmp(KINDS[b.kind as usize]))
                .then_with(|| a.target.as_deref().unwrap_or("").cmp(b.target.as_deref().unwrap_or("")))
                .then_with(|| {
                    let (x, y) = (a.score.unwrap_or(-1e308), b.score.unwrap_or(-1e308));
                    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                })
        });
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub partition: i64,
    /// In the order the pilots were first seen (a dict's order in Python).
    pub logs: Vec<(String, Log)>,
    pub erased_ms: Option<i64>,
}

impl State {
    pub fn log(&self, pilot: &str) -> Option<&Log> {
        self.logs.iter().find(|(k, _)| k == pilot).map(|(_, l)| l)
    }

    pub fn log_mut(&mut self, pilot: &str) -> &mut Log {
        match self.logs.iter().position(|(k, _)| k == pilot) {
            Some(i) => &mut self.logs[i].1,
            None => {
                self.logs.push((pilot.to_owned(), Log::default()));
                &mut self.logs.last_mut().expect("just pushed").1
            }
        }
    }
}

// --- reading ----------------------------------------------------------------------------------

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn float(v: &Value) -> Option<f64> {
    if v.is_f64() {
        v.as_f64()
    } else {
        None
    }
}

fn opt_float(v: &Value) -> Option<Option<f64>> {
    if v.is_null() {
        Some(None)
    } else {
        float(v).map(Some)
    }
}

fn opt_str(v: &Value) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        _ => None,
    }
}

fn array(v: &Value, len: usize) -> Option<&Vec<Value>> {
    v.as_array().filter(|a| a.len() == len)
}

fn hex_key(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn read_log(doc: &Map<String, Value>) -> Option<Log> {
    let mut log = Log::default();
    for (field, v) in doc {
        match field.as_str() {
            "c" => {
                for item in v.as_array()? {
                    let a = array(item, 2)?;
                    let g = int(&a[1])?;
                    log.consent.push((int(&a[0])?, g != 0));
                }
            }
            "x" => {
                for (exp, items) in v.as_object()? {
                    let mut list = Vec::new();
                    for item in items.as_array()? {
                        let a = array(item, 2)?;
                        list.push((int(&a[0])?, a[1].as_str()?.to_owned()));
                    }
                    log.exposures.push((exp.clone(), list));
                }
            }
            "u" => {
                for item in v.as_array()? {
                    let a = array(item, 3)?;
                    log.usage.push((int(&a[0])?, a[1].as_str()?.to_owned(), opt_float(&a[2])?));
                }
            }
            "f" => {
                for item in v.as_array()? {
                    let a = array(item, 6)?;
                    let kind = a[1].as_str()?;
                    if !KINDS.contains(&kind) {
                        return None;
                    }
                    let score = opt_float(&a[2])?;
                    // Buckets are written for the scores the decoder takes only.
                    match (kind, score) {
                        ("rating", Some(s)) if !(1.0..=5.0).contains(&s) || (s * 2.0).fract() != 0.0 => return None,
                        ("nps", Some(s)) if !(0.0..=10.0).contains(&s) || s.fract() != 0.0 => return None,
                        _ => {}
                    }
                    log.feedback.push(FeedbackItem {
                        ms: int(&a[0])?,
                        kind: kind_index(kind),
                        score,
                        sus: opt_float(&a[3])?,
                        target: opt_str(&a[4])?,
                        experiment: opt_str(&a[5])?,
                    });
                }
            }
            "s" => {
                for (name, item) in v.as_object()? {
                    let a = array(item, 2)?;
                    log.properties.push((name.clone(), (int(&a[0])?, a[1].as_str()?.to_owned())));
                }
            }
            "k" => {
                for key in v.as_array()? {
                    log.seen.insert(hex_key(key.as_str()?)?);
                }
            }
            // Keys of logs written before `event_key` ("i") are left to the Python path.
            _ => return None,
        }
    }
    Some(log)
}

/// Returns the state the JSON holds, or None when it holds anything this module leaves to Python.
pub fn read(data: &[u8]) -> Option<State> {
    let doc: Value = serde_json::from_slice(data).ok()?;
    let doc = doc.as_object()?;
    let mut state = State { partition: int(doc.get("p")?)?, ..State::default() };
    for (field, v) in doc {
        match field.as_str() {
            "p" => {}
            "l" => {
                for (pilot, log) in v.as_object()? {
                    state.logs.push((pilot.clone(), read_log(log.as_object()?)?));
                }
            }
            "e" => state.erased_ms = Some(int(v)?),
            _ => return None,
        }
    }
    Some(state)
}

// --- writing ----------------------------------------------------------------------------------

fn w_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a string is always written");
}

fn w_float(out: &mut Vec<u8>, v: f64) {
    serde_json::to_writer(&mut *out, &v).expect("a finite float is always written");
}

fn w_opt_float(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(x) => w_float(out, x),
        None => out.extend_from_slice(b"null"),
    }
}

fn w_opt_str(out: &mut Vec<u8>, v: &Option<String>) {
    match v {
        Some(s) => w_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn w_int(out: &mut Vec<u8>, v: i64) {
    write!(out, "{v}").expect("writing to a Vec");
}

/// Writes `[ms, "text"]` (an exposure's time and variant, a segment value's time and value).
fn w_timed(out: &mut Vec<u8>, ms: i64, text: &str) {
    out.push(b'[');
    w_int(out, ms);
    out.push(b',');
    w_str(out, text);
    out.push(b']');
}

/// Writes `[item, item, ...]`, each item by `each`.
fn w_list<T>(out: &mut Vec<u8>, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Vec<u8>, T)) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

/// Writes `{"key": value, ...}`, each value by `each`.
fn w_object<'a, T: 'a>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = &'a (String, T)>,
    mut each: impl FnMut(&mut Vec<u8>, &T),
) {
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        w_str(out, key);
        out.push(b':');
        each(out, value);
    }
    out.push(b'}');
}

fn w_log(out: &mut Vec<u8>, log: &Log) {
    out.push(b'{');
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, name: &[u8]| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(name);
        out.extend_from_slice(b"\":");
    };
    if !log.consent.is_empty() {
        field(out, b"c");
        w_list(out, &log.consent, |out, (t, g)| {
            out.push(b'[');
            w_int(out, *t);
            out.extend_from_slice(if *g { b",1]" } else { b",0]" });
        });
    }
    if !log.exposures.is_empty() {
        field(out, b"x");
        w_object(out, &log.exposures, |out, items| w_list(out, items, |out, (t, v)| w_timed(out, *t, v)));
    }
    if !log.usage.is_empty() {
        field(out, b"u");
        w_list(out, &log.usage, |out, (t, a, v)| {
            out.push(b'[');
            w_int(out, *t);
            out.push(b',');
            w_str(out, a);
            out.push(b',');
            w_opt_float(out, *v);
            out.push(b']');
        });
    }
    if !log.feedback.is_empty() {
        field(out, b"f");
        w_list(out, &log.feedback, |out, f| {
            out.push(b'[');
            w_int(out, f.ms);
            out.push(b',');
            w_str(out, KINDS[f.kind as usize]);
            out.push(b',');
            w_opt_float(out, f.score);
            out.push(b',');
            w_opt_float(out, f.sus);
            out.push(b',');
            w_opt_str(out, &f.target);
            out.push(b',');
            w_opt_str(out, &f.experiment);
            out.push(b']');
        });
    }
    if !log.properties.is_empty() {
        field(out, b"s");
        w_object(out, &log.properties, |out, (t, v)| w_timed(out, *t, v));
    }
    if !log.seen.is_empty() {
        field(out, b"k");
        let mut keys: Vec<u64> = log.seen.iter().copied().collect();
        keys.sort_unstable();
        w_list(out, keys, |out, k| write!(out, "\"{k:016x}\"").expect("writing to a Vec"));
    }
    out.push(b'}');
}

/// The state as `ParticipantState.to_bytes` writes it.
pub fn write(state: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"p\":");
    w_int(&mut out, state.partition);
    out.extend_from_slice(b",\"l\":");
    w_object(&mut out, &state.logs, w_log);
    if let Some(e) = state.erased_ms {
        out.extend_from_slice(b",\"e\":");
        w_int(&mut out, e);
    }
    out.push(b'}');
    out
}

//! What one participant contributes to every figure of a pilot: `experiments.attribution.contributions`,
//! the same semantics (see that module's doc), the same figures and the same float arithmetic. Names
//! in keys are indices into the registry (`Pilot`), segments indices into the core's `Segments`.

use crate::state::Log;
use rustc_hash::FxHashMap;

pub const DAY_MS: i64 = 86_400_000;
pub const ANY_ACTION: &str = "*";
pub const UNITS: &str = "$units";
pub const RATIO: i64 = 1;
pub const COVARIATE: i64 = 2;

/// `attribution.MetricPlan`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub key: String,
    pub shape: i64,
    pub once: bool,
    pub action: String,
    pub by_count: bool,
    pub start: i64,
    pub end: i64,
    pub denominator: String,
    pub denominator_count: bool,
    pub covariate: i64,
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub key: String,
    pub counts: bool,
    pub stopped_at_ms: Option<i64>,
    pub variants: Vec<String>,
    pub metrics: Vec<Plan>,
}

#[derive(Debug, Clone)]
pub struct Pilot {
    pub key: String,
    pub collected_by_service: bool,
    pub segments: Vec<String>,
    pub key_action: Option<String>,
    /// Every experiment of the pilot, in the registry's order (drafts too: events may name them).
    pub experiments: Vec<Experiment>,
}

impl Pilot {
    pub fn experiment(&self, key: &str) -> Option<usize> {
        self.experiments.iter().position(|e| e.key == key)
    }
}

/// The feedback kinds, in `FeedbackKind`'s order.
pub const KINDS: [&str; 6] = ["rating", "nps", "sus", "comment", "idea", "vote"];

pub fn kind_index(kind: &str) -> u8 {
    KINDS.iter().position(|k| *k == kind).expect("a kind the decoder or the state reader checked") as u8
}

/// A feedback figure's bucket (`attribution._bucket`, or "count").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Count,
    Score,
    Promoter,
    Passive,
    Detractor,
    /// A rating, in halves (2 = "1", 3 = "1.5", ... 10 = "5").
    Rating(u8),
}

impl Bucket {
    pub fn text(self) -> String {
        match self {
            Bucket::Count => "count".to_owned(),
            Bucket::Score => "score".to_owned(),
            Bucket::Promoter => "promoter".to_owned(),
            Bucket::Passive => "passive".to_owned(),
            Bucket::Detractor => "detractor".to_owned(),
            // `f"{value:g}"`
            Bucket::Rating(halves) if halves % 2 == 0 => format!("{}", halves / 2),
            Bucket::Rating(halves) => format!("{}.5", halves / 2),
        }
    }
}

/// A figure's key, without the pilot and the segment (`attribution.Key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// ("a", experiment, metric, variant): metric 0 is "$units", m + 1 the experiment's metric m.
    A(u16, u16, u16),
    /// ("x", experiment, metric, variant, day of first exposure), not segmented: metrics as for A.
    X(u16, u16, u16, i64),
    /// ("d", day)
    D(i64),
    /// ("r", cohort day, week index)
    R(i64, i64),
    /// ("f", experiment, variant, kind, bucket), not segmented: experiment and variant 0 are "" (all),
    /// e + 1 the pilot's experiment e, v + 1 its variant v.
    F(u16, u16, u8, Bucket),
    /// ("f", "", "", "vote", target idea)
    Vote(Box<str>),
}

impl Key {
    pub fn segmented(&self) -> bool {
        matches!(self, Key::A(..) | Key::D(_) | Key::R(..))
    }

    /// How many sums the figure has.
    pub fn width(&self) -> usize {
        match self {
            Key::A(..) | Key::X(..) => 6,
            Key::R(..) => 1,
            _ => 3,
        }
    }
}

pub type Vector = [f64; 6];

/// Segment texts ("" and "name:value") as numbers, for the life of the core.
#[derive(Debug, Default)]
pub struct Segments {
    pub texts: Vec<String>,
    ids: FxHashMap<String, u32>,
    buffer: String,
}

impl Segments {
    pub fn new() -> Segments {
        let mut s = Segments::default();
        s.texts.push(String::new());
        s.ids.insert(String::new(), 0);
        s
    }

    fn id(&mut self, name: &str, value: &str) -> u32 {
        self.buffer.clear();
        self.buffer.push_str(name);
        self.buffer.push(':');
        self.buffer.push_str(value);
        if let Some(&id) = self.ids.get(self.buffer.as_str()) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(self.buffer.clone());
        self.ids.insert(self.buffer.clone(), id);
        id
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contributions {
    pub figures: FxHashMap<Key, Vector>,
    pub segments: Vec<u32>,
}

pub struct Consent {
    always: bool,
    times: Vec<i64>,
    granted: Vec<bool>,
}

impl Consent {
    pub fn new(events: &[(i64, bool)], collected_by_service: bool) -> Consent {
        let mut times: Vec<i64> = Vec::with_capacity(events.len());
        let mut granted: Vec<bool> = Vec::with_capacity(events.len());
        for &(t, g) in events {
            if times.last() == Some(&t) {
                let last = granted.len() - 1;
                granted[last] = granted[last] && g;
            } else {
                times.push(t);
                granted.push(g);
            }
        }
        Consent { always: collected_by_service, times, granted }
    }

    pub fn at(&self, ms: i64) -> bool {
        if self.always {
            return true;
        }
        let i = self.times.partition_point(|&t| t <= ms);
        i > 0 && self.granted[i - 1]
    }
}

type Usage<'a> = Vec<&'a (i64, String, Option<f64>)>;

fn window(usage: &Usage, times: &[i64], start: i64, end: i64, action: &str, once: bool, count: bool) -> f64 {
    if end <= start {
        return 0.0;
    }
    let lo = times.partition_point(|&t| t < start);
    let hi = lo + times[lo..].partition_point(|&t| t < end);
    if lo == hi {
        return 0.0;
    }
    if action == ANY_ACTION && (once || count) {
        return if once { 1.0 } else { (hi - lo) as f64 };
    }
    let mut total = 0.0;
    for item in &usage[lo..hi] {
        if action == item.1 || action == ANY_ACTION {
            if once {
                return 1.0;
            }
            total += if count { 1.0 } else { item.2.unwrap_or(0.0) };
        }
    }
    total
}

fn metric_vector(plan: &Plan, usage: &Usage, times: &[i64], t0: i64, stop: Option<i64>) -> Vector {
    let mut end = plan.end + t0;
    if let Some(s) = stop {
        if s < end {
            end = s;
        }
    }
    let x = window(usage, times, t0 + plan.start, end, &plan.action, plan.once, plan.by_count);
    if plan.shape == RATIO {
        let d = window(usage, times, t0, end, &plan.denominator, false, plan.denominator_count);
        return [1.0, x, x * x, d, d * d, x * d];
    }
    if plan.shape == COVARIATE {
        let pre_end = match stop {
            Some(s) if t0 >= s => s,
            _ => t0,
        };
        let pre = window(usage, times, t0 - plan.covariate, pre_end, &plan.action, plan.once, plan.by_count);
        return [1.0, x, x * x, pre, pre * pre, x * pre];
    }
    [1.0, x, x * x, 0.0, 0.0, 0.0]
}

/// The bucket of a rating, NPS or SUS value (`attribution._bucket`), for the values the decoder and
/// the state reader take.
fn bucket(kind: u8, value: f64) -> Bucket {
    match KINDS[kind as usize] {
        "nps" => {
            let score = value as i64;
            if score >= 9 {
                Bucket::Promoter
            } else if score >= 7 {
                Bucket::Passive
            } else {
                Bucket::Detractor
            }
        }
        "rating" => Bucket::Rating((value * 2.0) as u8),
        _ => Bucket::Score,
    }
}

fn add(out: &mut FxHashMap<Key, Vector>, key: Key, vec: Vector) {
    match out.get_mut(&key) {
        None => {
            out.insert(key, vec);
        }
        Some(old) => {
            for (a, b) in old.iter_mut().zip(vec) {
                *a += b;
            }
        }
    }
}

pub fn contributions(log: &Log, pilot: &Pilot, segments: &mut Segments) -> Contributions {
    let mut out: FxHashMap<Key, Vector> = FxHashMap::default();
    let consent = Consent::new(&log.consent, pilot.collected_by_service);
    let usage: Usage = log.usage.iter().filter(|u| consent.at(u.0)).collect();
    let times: Vec<i64> = usage.iter().map(|u| u.0).collect();
    let mut segs = vec![0u32];
    for name in &pilot.segments {
        if let Some((_, (_, value))) = log.properties.iter().find(|(k, _)| k == name) {
            segs.push(segments.id(name, value));
        }
    }

    // (experiment, variant) of each counted first exposure, as indices.
    let mut variants: Vec<(u16, u16)> = Vec::new();
    for (e, exp) in pilot.experiments.iter().enumerate().filter(|(_, e)| e.counts) {
        let stop = exp.stopped_at_ms;
        let first = log.exposures_of(&exp.key).and_then(|items| {
            items.iter().find_map(|(t, v)| {
                if stop.is_none_or(|s| *t < s) && consent.at(*t) {
                    exp.variants.iter().position(|x| x == v).map(|i| (*t, i as u16))
                } else {
                    None
                }
            })
        });
        let Some((t0, variant)) = first else { continue };
        let e = e as u16;
        variants.push((e, variant));
        let exposed_day = t0.div_euclid(DAY_MS);
        out.insert(Key::A(e, 0, variant), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        out.insert(Key::X(e, 0, variant, exposed_day), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        for (m, plan) in exp.metrics.iter().enumerate() {
            let vector = metric_vector(plan, &usage, &times, t0, stop);
            out.insert(Key::A(e, m as u16 + 1, variant), vector);
            out.insert(Key::X(e, m as u16 + 1, variant, exposed_day), vector);
        }
    }

    if !usage.is_empty() {
        let mut days: Vec<i64> = Vec::new();
        for &ms in &times {
            let d = ms.div_euclid(DAY_MS);
            if days.last() != Some(&d) {
                days.push(d);
            }
        }
        let first_day = days[0];
        let activated = match pilot.key_action.as_deref() {
            Some(key_action) if !key_action.is_empty() => {
                usage.iter().find(|u| u.1 == key_action).map(|u| u.0.div_euclid(DAY_MS))
            }
            _ => None,
        };
        let cohort = first_day - (first_day + 3).rem_euclid(7);
        let mut last_week = -1;
        for &d in &days {
            let activated_now = if activated == Some(d) { 1.0 } else { 0.0 };
            out.insert(Key::D(d), [1.0, if d == first_day { 1.0 } else { 0.0 }, activated_now, 0.0, 0.0, 0.0]);
            let w = (d - cohort).div_euclid(7);
            if w != last_week {
                out.insert(Key::R(cohort, w), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
                last_week = w;
            }
        }
    }

    if !log.feedback.is_empty() {
        feedback(&mut out, log, &consent, &variants);
    }
    Contributions { figures: out, segments: segs }
}

fn feedback(out: &mut FxHashMap<Key, Vector>, log: &Log, consent: &Consent, variants: &[(u16, u16)]) {
    // By kind (`KINDS`): the latest counted rating, NPS and SUS value, and the comments and ideas.
    let mut latest: [Option<f64>; 6] = [None; 6];
    let mut counts: [i64; 6] = [0; 6];
    // In the order Python's dict keeps them: a target's first vote.
    let mut votes: Vec<(&str, f64)> = Vec::new();
    for f in &log.feedback {
        if !consent.at(f.ms) {
            continue;
        }
        let kind = f.kind as usize;
        match (KINDS[kind], f.score, f.sus, f.target.as_deref()) {
            ("rating" | "nps", Some(score), _, _) => latest[kind] = Some(score),
            ("sus", _, Some(sus), _) => latest[kind] = Some(sus),
            ("comment" | "idea", ..) => counts[kind] += 1,
            ("vote", score, _, Some(target)) if !target.is_empty() => {
                let value = score.unwrap_or(1.0);
                match votes.iter_mut().find(|(t, _)| *t == target) {
                    Some(slot) => slot.1 = value,
                    None => votes.push((target, value)),
                }
            }
            _ => {}
        }
    }
    let mut scopes: Vec<(u16, u16)> = vec![(0, 0)];
    scopes.extend(variants.iter().map(|(e, v)| (e + 1, v + 1)));
    for (kind, value) in latest.iter().enumerate() {
        let Some(value) = *value else { continue };
        let b = bucket(kind as u8, value);
        for &(exp, variant) in &scopes {
            add(out, Key::F(exp, variant, kind as u8, b), [1.0, value, value * value, 0.0, 0.0, 0.0]);
        }
    }
    for (kind, n) in counts.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        for &(exp, variant) in &scopes {
            add(out, Key::F(exp, variant, kind as u8, Bucket::Count), [*n as f64, 0.0, 0.0, 0.0, 0.0, 0.0]);
        }
    }
    for (target, value) in votes {
        add(out, Key::Vote(target.into()), [1.0, value, value * value, 0.0, 0.0, 0.0]);
    }
}

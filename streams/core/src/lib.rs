//! The stream processor's fast path (`rhizome_core`), called by `streams.processor.Processor` for each
//! chunk of a batch's participants.
//!
//! For a participant whose records of the chunk are all events in canonical form (`event::parse`)
//! that the processor would apply or recognise as duplicates, this module does what
//! `Processor.process` does: reads the state (or keeps it parsed between batches, as `LiveStates`),
//! applies the events in event-time order, counts the changed pilots' contributions anew
//! (`contrib::contributions`) and returns the change of the aggregates, the new state (as JSON bytes
//! equal to Python's), the citizens' texts and the events' times. Every other participant (a record
//! that is invalid, spelled otherwise, an erasure request, or an event the processor would refuse:
//! unknown pilot or experiment, late, from the future; a state holding what this module does not
//! read) is returned to the Python path untouched, which gives the exact same verdicts with reasons.

mod contrib;
mod event;
mod json;
mod state;

use contrib::{contributions, kind_index, Contributions, Experiment, Key, Pilot, Plan, Segments, KINDS, UNITS};
use event::{Event, Kind, Payload};
use lru::LruCache;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use rustc_hash::FxHashMap;
use state::{FeedbackItem, State};
use std::collections::HashMap;
use std::num::NonZeroUsize;

type PlanTuple = (String, i64, bool, String, bool, i64, i64, String, bool, i64);
type ExperimentTuple = (String, bool, Option<i64>, Vec<String>, Vec<PlanTuple>);
type PilotTuple = (String, bool, Vec<String>, Option<String>, Vec<ExperimentTuple>);

/// Each changed pilot's contributions (by the pilot's index in the registry of the time).
type Counted = Vec<(u16, Contributions)>;

/// A participant's state kept parsed, beside the bytes object the table's store held for it.
struct Kept {
    raw: Py<PyBytes>,
    state: State,
    /// The contributions of each pilot's log as last counted, under the registry of `generation`.
    counted: Counted,
    generation: u64,
}

/// A figure's change, keyed as the aggregates key it: (partition, pilot, key, segment).
type Where = (i64, u16, Key, u32);
/// A citizen's text: (event id, pilot, participant, kind, text, UTC microseconds, [(experiment, variant)]).
type TextRow = (String, String, String, &'static str, String, i64, Vec<(String, String)>);

/// A participant's new state: where its key is in the chunk, the key, its partition, the state's JSON,
/// and the state with its contributions (kept parsed).
struct Changed {
    index: usize,
    key: Vec<u8>,
    partition: i64,
    bytes: Vec<u8>,
    state: State,
    counted: Counted,
}

#[derive(Default)]
struct Chunk {
    fallback: Vec<usize>,
    changed: Vec<Changed>,
    deltas: FxHashMap<Where, [f64; 6]>,
    texts: Vec<TextRow>,
    applied: i64,
    duplicates: i64,
    arriving: Vec<(i64, Kind, i64)>,
}

#[pyclass(module = "rhizome_core")]
struct Core {
    pilots: Vec<Pilot>,
    digest: String,
    generation: u64,
    segments: Segments,
    kept: LruCache<Vec<u8>, Kept>,
}

fn fold(id: u128) -> u64 {
    ((id >> 64) as u64) ^ (id as u64)
}

fn queue(chunk: &mut Chunk, partition: i64, pilot: u16, key: &Key, segments: &[u32], vec: &[f64; 6], sign: f64) {
    let mut put = |seg: u32| {
        let slot = chunk.deltas.entry((partition, pilot, key.clone(), seg)).or_insert([0.0; 6]);
        for (a, b) in slot.iter_mut().zip(vec) {
            *a += sign * b;
        }
    };
    if key.segmented() {
        for &seg in segments {
            put(seg);
        }
    } else {
        put(u32::MAX);
    }
}

/// `Aggregates.change`: the figures whose amount changed, each under the participant's segments.
fn change(chunk: &mut Chunk, partition: i64, pilot: u16, old: &Contributions, new: &Contributions) {
    if old.segments == new.segments {
        for (key, now) in &new.figures {
            match old.figures.get(key) {
                None => queue(chunk, partition, pilot, key, &new.segments, now, 1.0),
                Some(prev) if prev != now => {
                    let mut diff = [0.0; 6];
                    for i in 0..6 {
                        diff[i] = now[i] - prev[i];
                    }
                    queue(chunk, partition, pilot, key, &new.segments, &diff, 1.0);
                }
                Some(_) => {}
            }
        }
        for (key, prev) in &old.figures {
            if !new.figures.contains_key(key) {
                queue(chunk, partition, pilot, key, &new.segments, prev, -1.0);
            }
        }
    } else {
        for (key, now) in &new.figures {
            queue(chunk, partition, pilot, key, &new.segments, now, 1.0);
        }
        for (key, prev) in &old.figures {
            queue(chunk, partition, pilot, key, &old.segments, prev, -1.0);
        }
    }
}

/// The refusals `Processor._apply` would make, or an event naming what the registry lacks: the
/// participant then goes to the Python path (which may also reload the registry).
fn refused(pilots: &[Pilot], e: &Event, horizon: f64, watermarks: &HashMap<String, i64>, grace_ms: i64) -> bool {
    let Some(pilot) = pilots.iter().find(|p| p.key == e.pilot) else { return true };
    let watermark = watermarks.get(e.kind.name()).copied().unwrap_or(0);
    if e.ms as f64 > horizon || (watermark != 0 && e.ms < watermark - grace_ms) {
        return true;
    }
    match &e.payload {
        Payload::Exposure { experiment, variant } => match pilot.experiment(experiment) {
            None => true,
            Some(exp) => !pilot.experiments[exp].variants.iter().any(|v| v == variant),
        },
        Payload::Feedback { experiment: Some(experiment), .. } => pilot.experiment(experiment).is_none(),
        _ => false,
    }
}

impl Core {
    fn pilot_index(&self, key: &str) -> u16 {
        self.pilots.iter().position(|p| p.key == key).expect("checked by `refused`") as u16
    }

    /// `Processor._keep_text`.
    fn keep_text(&self, chunk: &mut Chunk, state: &State, pilot: u16, e: &Event) {
        let Payload::Feedback { kind, text: Some(text), .. } = &e.payload else { return };
        let kind = KINDS[kind_index(kind) as usize];
        if !(kind == "comment" || kind == "idea") || text.is_empty() {
            return;
        }
        let p = &self.pilots[pilot as usize];
        let Some(log) = state.log(&p.key) else { return };
        if !contrib::Consent::new(&log.consent, p.collected_by_service).at(e.ms) {
            return;
        }
        let variants = log
            .exposures
            .iter()
            .filter(|(exp, items)| !items.is_empty() && p.experiment(exp).is_some())
            .map(|(exp, items)| (exp.clone(), items[0].1.clone()))
            .collect();
        let row = (
            e.id_text.to_owned(),
            p.key.clone(),
            e.participant.to_string(),
            kind,
            text.to_string(),
            e.micros,
            variants,
        );
        chunk.texts.push(row);
    }

    /// `Processor.process` for one participant whose events all passed `refused`.
    fn apply(
        &mut self,
        chunk: &mut Chunk,
        partition: i64,
        state: &mut State,
        counted: &mut Counted,
        mut events: Vec<Event>,
    ) -> bool {
        state.partition = partition;
        // Event-time order; ties keep their order (a stable sort).
        events.sort_by(|a, b| a.seconds.partial_cmp(&b.seconds).unwrap_or(std::cmp::Ordering::Equal));
        let mut changed_pilots: Vec<(u16, Contributions)> = Vec::new();
        let mut changed = false;
        for e in &events {
            let ms = e.ms;
            if state.erased_ms.is_some_and(|erased| ms <= erased) {
                chunk.duplicates += 1;
                continue;
            }
            let pilot = self.pilot_index(e.pilot);
            let p = &self.pilots[pilot as usize];
            let seen_as = fold(e.id);
            if let Some(log) = state.log(&p.key) {
                if log.seen.contains(&seen_as) {
                    chunk.duplicates += 1;
                    if e.kind == Kind::Feedback {
                        self.keep_text(chunk, state, pilot, e);
                    }
                    continue;
                }
            }
            if !changed_pilots.iter().any(|(i, _)| *i == pilot) {
                let before = match state.log(&p.key) {
                    None => Contributions::default(),
                    Some(log) => match counted.iter().find(|(i, _)| *i == pilot) {
                        Some((_, c)) => c.clone(),
                        None => contributions(log, p, &mut self.segments),
                    },
                };
                changed_pilots.push((pilot, before));
            }
            let p = &self.pilots[pilot as usize];
            let log = state.log_mut(&p.key);
            log.seen.insert(seen_as);
            match &e.payload {
                Payload::Usage { action, value, properties } => log.add_usage(ms, action, *value, properties),
                Payload::Exposure { experiment, variant } => log.add_exposure(experiment, ms, variant),
                Payload::Consent { granted } => log.add_consent(ms, *granted),
                Payload::Feedback { kind, score, sus, target, experiment, .. } => {
                    log.add_feedback(FeedbackItem {
                        ms,
                        kind: kind_index(kind),
                        score: *score,
                        sus: *sus,
                        target: target.as_ref().map(|t| t.to_string()),
                        experiment: experiment.map(str::to_owned),
                    });
                    self.keep_text(chunk, state, pilot, e);
                }
            }
            match chunk.arriving.iter_mut().find(|(part, kind, _)| *part == partition && *kind == e.kind) {
                Some(slot) => slot.2 = slot.2.max(ms),
                None => chunk.arriving.push((partition, e.kind, ms)),
            }
            chunk.applied += 1;
            changed = true;
        }
        for (pilot, old) in changed_pilots {
            let p = &self.pilots[pilot as usize];
            let new = match state.log(&p.key) {
                Some(log) => contributions(log, p, &mut self.segments),
                None => Contributions::default(),
            };
            change(chunk, partition, pilot, &old, &new);
            match counted.iter_mut().find(|(i, _)| *i == pilot) {
                Some(slot) => slot.1 = new,
                None => counted.push((pilot, new)),
            }
        }
        changed
    }

    /// The aggregates' key of a figure: (pilot, kind, names..., segment).
    fn key_tuple<'py>(&self, py: Python<'py>, pilot: u16, key: &Key, seg: u32) -> PyResult<Bound<'py, PyTuple>> {
        let p = &self.pilots[pilot as usize];
        let seg = if seg == u32::MAX { None } else { Some(self.segments.texts[seg as usize].as_str()) };
        let tuple = match key {
            Key::A(e, m, v) => {
                let exp = &p.experiments[*e as usize];
                let metric = if *m == 0 { UNITS } else { exp.metrics[*m as usize - 1].key.as_str() };
                (p.key.as_str(), "a", exp.key.as_str(), metric, exp.variants[*v as usize].as_str(), seg)
                    .into_pyobject(py)?
            }
            Key::X(e, m, v, day) => {
                let exp = &p.experiments[*e as usize];
                let metric = if *m == 0 { UNITS } else { exp.metrics[*m as usize - 1].key.as_str() };
                (p.key.as_str(), "x", exp.key.as_str(), metric, exp.variants[*v as usize].as_str(), *day)
                    .into_pyobject(py)?
            }
            Key::D(day) => (p.key.as_str(), "d", *day, seg).into_pyobject(py)?,
            Key::R(cohort, week) => (p.key.as_str(), "r", *cohort, *week, seg).into_pyobject(py)?,
            Key::F(e, v, kind, bucket) => {
                let (exp, variant) = if *e == 0 {
                    ("", "")
                } else {
                    let exp = &p.experiments[*e as usize - 1];
                    (exp.key.as_str(), if *v == 0 { "" } else { exp.variants[*v as usize - 1].as_str() })
                };
                (p.key.as_str(), "f", exp, variant, KINDS[*kind as usize], bucket.text()).into_pyobject(py)?
            }
            Key::Vote(target) => (p.key.as_str(), "f", "", "", "vote", &**target).into_pyobject(py)?,
        };
        Ok(tuple)
    }
}

fn plan(t: PlanTuple) -> Plan {
    let (key, shape, once, action, by_count, start, end, denominator, denominator_count, covariate) = t;
    Plan { key, shape, once, action, by_count, start, end, denominator, denominator_count, covariate }
}

#[pymethods]
impl Core {
    /// `limit`: how many participants' states are kept parsed between batches.
    #[new]
    fn new(limit: usize) -> PyResult<Self> {
        let limit = NonZeroUsize::new(limit).ok_or_else(|| PyValueError::new_err("limit must be positive"))?;
        Ok(Core {
            pilots: Vec::new(),
            digest: String::new(),
            generation: 0,
            segments: Segments::new(),
            kept: LruCache::new(limit),
        })
    }

    /// The registry's digest this core counts under ("" before `set_registry`).
    #[getter]
    fn digest(&self) -> &str {
        &self.digest
    }

    /// Counts under a new registry (see `streams.processor.core_registry` for the tuples).
    fn set_registry(&mut self, digest: String, pilots: Vec<PilotTuple>) {
        self.pilots = pilots
            .into_iter()
            .map(|(key, collected_by_service, segments, key_action, experiments)| Pilot {
                key,
                collected_by_service,
                segments,
                key_action,
                experiments: experiments
                    .into_iter()
                    .map(|(key, counts, stopped_at_ms, variants, metrics)| Experiment {
                        key,
                        counts,
                        stopped_at_ms,
                        variants,
                        metrics: metrics.into_iter().map(plan).collect(),
                    })
                    .collect(),
            })
            .collect();
        self.digest = digest;
        self.generation += 1;
    }

    /// Forgets every state kept parsed.
    fn clear(&mut self) {
        self.kept.clear();
    }

    /// Applies the records of the participants `keys` (`groups[key]`: their `Incoming` records) that
    /// this module takes; `states` is the table's store (read only here). `horizon` and `watermarks`
    /// (partition -> event type -> ms) are `Processor._apply`'s. Returns (keys left to the Python
    /// path, [(key, partition, new state bytes)], [(partition, aggregate key, change)], texts as
    /// (event id, pilot, participant, kind, text, UTC microseconds, [(experiment, variant)]), applied,
    /// duplicates, [(partition, event type, newest ms)]).
    #[allow(clippy::too_many_arguments)]
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        groups: &Bound<'py, PyDict>,
        keys: &Bound<'py, PyList>,
        states: &Bound<'py, PyDict>,
        erasure_topic: &str,
        horizon: f64,
        watermarks: HashMap<i64, HashMap<String, i64>>,
        grace_ms: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut chunk = Chunk::default();
        let no_watermarks = HashMap::new();
        let key_objs: Vec<Bound<'py, PyAny>> = keys.iter().collect();
        let mut values: Vec<Bound<'py, PyBytes>> = Vec::new();
        for (index, key_obj) in key_objs.iter().enumerate() {
            let raw = states.get_item(key_obj)?.map(|r| r.downcast_into::<PyBytes>()).transpose()?;
            let key: Vec<u8> = key_obj.downcast::<PyBytes>()?.as_bytes().to_vec();
            let records = groups.get_item(key_obj)?.ok_or_else(|| PyValueError::new_err("a key without records"))?;
            let records = records.downcast::<PyList>()?;
            // The records' values, held while their events borrow from them.
            values.clear();
            let mut partition = 0;
            let mut taken = true;
            for (i, rec) in records.iter().enumerate() {
                if i == 0 {
                    partition = rec.getattr(intern!(py, "partition"))?.extract::<i64>()?;
                }
                let value = rec.getattr(intern!(py, "value"))?;
                let topic = rec.getattr(intern!(py, "topic"))?;
                match value.downcast_into::<PyBytes>() {
                    Ok(bytes) if topic.extract::<&str>()? != erasure_topic => values.push(bytes),
                    _ => {
                        taken = false;
                        break;
                    }
                }
            }
            let mut events = Vec::with_capacity(values.len());
            if taken {
                for value in &values {
                    match event::parse(value.as_bytes()) {
                        Some(e) => events.push(e),
                        None => {
                            taken = false;
                            break;
                        }
                    }
                }
            }
            let marks = watermarks.get(&partition).unwrap_or(&no_watermarks);
            if !taken || events.iter().any(|e| refused(&self.pilots, e, horizon, marks, grace_ms)) {
                self.kept.pop(&key);
                chunk.fallback.push(index);
                continue;
            }
            let kept = self.kept.pop(&key);
            let (mut state, mut counted) = match (&raw, kept) {
                (None, _) => (State::default(), Vec::new()),
                (Some(r), Some(k)) if k.raw.bind(py).is(r) => {
                    let counted = if k.generation == self.generation { k.counted } else { Vec::new() };
                    (k.state, counted)
                }
                (Some(r), _) => match state::read(r.as_bytes()) {
                    Some(s) => (s, Vec::new()),
                    None => {
                        chunk.fallback.push(index);
                        continue;
                    }
                },
            };
            if self.apply(&mut chunk, partition, &mut state, &mut counted, events) {
                let bytes = state::write(&state);
                chunk.changed.push(Changed { index, key, partition, bytes, state, counted });
            }
        }

        let fallback: Vec<Bound<'py, PyAny>> = chunk.fallback.iter().map(|&i| key_objs[i].clone()).collect();
        let mut changed: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(chunk.changed.len());
        for Changed { index, key, partition, bytes, state, counted } in chunk.changed.drain(..) {
            let value = PyBytes::new(py, &bytes);
            self.kept.put(key, Kept { raw: value.clone().unbind(), state, counted, generation: self.generation });
            let key_obj = key_objs[index].clone();
            changed.push(PyTuple::new(py, [key_obj, partition.into_pyobject(py)?.into_any(), value.into_any()])?);
        }
        let mut deltas: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(chunk.deltas.len());
        for ((partition, pilot, key, seg), vec) in chunk.deltas.drain() {
            let k = self.key_tuple(py, pilot, &key, seg)?;
            deltas.push((partition, k, vec[..key.width()].to_vec()).into_pyobject(py)?);
        }
        let texts = std::mem::take(&mut chunk.texts);
        let arriving: Vec<(i64, &str, i64)> =
            chunk.arriving.iter().map(|(partition, kind, ms)| (*partition, kind.name(), *ms)).collect();
        (fallback, changed, deltas, texts, chunk.applied, chunk.duplicates, arriving).into_pyobject(py)
    }
}

/// The event a record holds, as the core decodes it, or None when it leaves the record to the Python
/// path (for tests): (event id as an int, pilot, participant, UTC microseconds, ms, type, payload),
/// the payload as (experiment, variant), (action, value, [(name, value)]), (kind, score, sus score,
/// text, target, experiment) or (granted,).
#[pyfunction]
fn decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(e) = event::parse(data) else { return Ok(None) };
    let payload = match &e.payload {
        Payload::Exposure { experiment, variant } => (*experiment, *variant).into_pyobject(py)?,
        Payload::Usage { action, value, properties } => {
            let props: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (*k, v.as_ref())).collect();
            (*action, *value, props).into_pyobject(py)?
        }
        Payload::Feedback { kind, score, sus, text, target, experiment } => {
            (*kind, *score, *sus, text.as_deref(), target.as_deref(), *experiment).into_pyobject(py)?
        }
        Payload::Consent { granted } => (*granted,).into_pyobject(py)?,
    };
    let row = (e.id, e.pilot, e.participant.as_ref(), e.micros, e.ms, e.kind.name(), payload);
    Ok(Some(row.into_pyobject(py)?))
}

#[pymodule]
fn rhizome_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    Ok(())
}

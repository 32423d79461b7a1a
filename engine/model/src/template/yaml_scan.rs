//! The YAML pass of [`super::limits`]: [`scan_yaml`] reads the events of
//! libyaml (through `unsafe-libyaml`, the parser `serde_yaml_ng` uses) and stops
//! at the first limit exceeded, counting depth, aliases and what they expand
//! to without expanding anything.

use std::collections::HashMap;
use std::ffi::CStr;
use std::mem::MaybeUninit;

use unsafe_libyaml as yaml_unsafe;

use super::limits::{exceeded, key, TemplateLimits, VALUE_COST};
use super::TemplateError;

/// What [`scan_yaml`] found in a text within the limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct YamlShape {
    /// Deepest nesting of collections.
    pub depth: usize,
    /// Alias uses.
    pub aliases: usize,
    /// Expanded size, as [`TemplateLimits::max_expanded_bytes`] counts it.
    pub expanded_bytes: usize,
}

/// A libyaml parser over borrowed text, freed on drop. Boxed because libyaml
/// keeps a pointer to the parser inside it once its input is set.
struct Parser<'a> {
    sys: Box<MaybeUninit<yaml_unsafe::yaml_parser_t>>,
    _input: &'a [u8],
}

/// One event, deleted on drop.
struct Event(MaybeUninit<yaml_unsafe::yaml_event_t>);

impl Event {
    fn get(&self) -> &yaml_unsafe::yaml_event_t {
        // SAFETY: an `Event` exists only after `yaml_parser_parse` succeeded
        // and so initialized it.
        unsafe { self.0.assume_init_ref() }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: initialized (see `get`) and deleted only here.
        unsafe { yaml_unsafe::yaml_event_delete(self.0.as_mut_ptr()) }
    }
}

impl<'a> Parser<'a> {
    /// `None` when libyaml cannot allocate its buffers.
    fn new(input: &'a [u8]) -> Option<Parser<'a>> {
        let mut sys = Box::new(MaybeUninit::<yaml_unsafe::yaml_parser_t>::uninit());
        let ptr = sys.as_mut_ptr();
        // SAFETY: `ptr` points to a live, heap-pinned parser struct that
        // `yaml_parser_initialize` fills in; `input` outlives the parser (the
        // lifetime `'a`), and the parser is deleted before the box is freed.
        unsafe {
            if !yaml_unsafe::yaml_parser_initialize(ptr).ok {
                return None;
            }
            yaml_unsafe::yaml_parser_set_encoding(ptr, yaml_unsafe::YAML_UTF8_ENCODING);
            yaml_unsafe::yaml_parser_set_input_string(ptr, input.as_ptr(), input.len() as u64);
        }
        Some(Parser { sys, _input: input })
    }

    /// The next event; `None` on a syntax error (`serde_yaml_ng`, running the
    /// same parser, reports it with its location).
    fn next(&mut self) -> Option<Event> {
        let mut event = MaybeUninit::<yaml_unsafe::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized in `new`; `event` is written by
        // `yaml_parser_parse` when it succeeds and only then wrapped.
        unsafe {
            // After a failure or the stream's end the caller stops calling.
            if !yaml_unsafe::yaml_parser_parse(self.sys.as_mut_ptr(), event.as_mut_ptr()).ok {
                return None;
            }
        }
        Some(Event(event))
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new` (a `Parser` exists only then).
        unsafe { yaml_unsafe::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

/// The anchor name of a node or alias, if it has one.
///
/// # Safety
/// `ptr` is null or a NUL-terminated string owned by a live event.
unsafe fn anchor(ptr: *const u8) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: as the caller promises.
    Some(unsafe { CStr::from_ptr(ptr.cast()) }.to_bytes().to_vec())
}

/// A collection being read: its expanded size so far, the levels below it so
/// far (aliases counted as what they name) and its anchor.
struct Open {
    size: usize,
    height: usize,
    anchor: Option<Vec<u8>>,
}

/// A complete value: its expanded size and levels (0 for a scalar, 1 for a
/// collection of scalars), as an alias to it counts them.
#[derive(Clone, Copy)]
struct Done {
    size: usize,
    height: usize,
}

fn too_deep(limits: &TemplateLimits, mark: &yaml_unsafe::yaml_mark_t) -> TemplateError {
    exceeded(
        key::MAX_DEPTH,
        limits.max_depth,
        format!("template nests deeper than allowed {}", at(mark)),
    )
}

fn at(mark: &yaml_unsafe::yaml_mark_t) -> String {
    format!("at line {}, column {}", mark.line + 1, mark.column + 1)
}

/// Reads the YAML events of `text` and stops at the first limit exceeded:
/// `max_bytes`, `max_depth`, `max_aliases`, `max_expanded_bytes`. Syntax
/// errors are left to the deserializer (same parser, same error, with its
/// location). Time and memory are linear in the text, whatever its aliases.
pub fn scan_yaml(text: &str, limits: &TemplateLimits) -> Result<YamlShape, TemplateError> {
    limits.check_size(text.len())?;
    let mut shape = YamlShape::default();
    let Some(mut parser) = Parser::new(text.as_bytes()) else {
        return Ok(shape);
    };
    let mut open: Vec<Open> = Vec::new();
    let mut anchors: HashMap<Vec<u8>, Done> = HashMap::new();
    while let Some(event) = parser.next() {
        let e = event.get();
        // A value that is complete, and its anchor to remember.
        let done: Option<(Done, Option<Vec<u8>>)> = match e.type_ {
            yaml_unsafe::YAML_STREAM_END_EVENT | yaml_unsafe::YAML_NO_EVENT => break,
            yaml_unsafe::YAML_DOCUMENT_START_EVENT => {
                anchors.clear();
                None
            }
            yaml_unsafe::YAML_SEQUENCE_START_EVENT | yaml_unsafe::YAML_MAPPING_START_EVENT => {
                if open.len() >= limits.max_depth {
                    return Err(too_deep(limits, &e.start_mark));
                }
                // SAFETY: the union member of this event type; the anchor
                // string lives as long as the event.
                let name = unsafe {
                    if e.type_ == yaml_unsafe::YAML_SEQUENCE_START_EVENT {
                        anchor(e.data.sequence_start.anchor)
                    } else {
                        anchor(e.data.mapping_start.anchor)
                    }
                };
                open.push(Open {
                    size: VALUE_COST,
                    height: 1,
                    anchor: name,
                });
                shape.depth = shape.depth.max(open.len());
                shape.expanded_bytes = shape.expanded_bytes.saturating_add(VALUE_COST);
                None
            }
            yaml_unsafe::YAML_SEQUENCE_END_EVENT | yaml_unsafe::YAML_MAPPING_END_EVENT => {
                open.pop().map(|o| {
                    (
                        Done {
                            size: o.size,
                            height: o.height,
                        },
                        o.anchor,
                    )
                })
            }
            yaml_unsafe::YAML_SCALAR_EVENT => {
                // SAFETY: the union member of this event type.
                let (len, name) =
                    unsafe { (e.data.scalar.length as usize, anchor(e.data.scalar.anchor)) };
                let size = VALUE_COST.saturating_add(len);
                shape.expanded_bytes = shape.expanded_bytes.saturating_add(size);
                Some((Done { size, height: 0 }, name))
            }
            yaml_unsafe::YAML_ALIAS_EVENT => {
                shape.aliases += 1;
                if shape.aliases > limits.max_aliases {
                    return Err(exceeded(
                        key::MAX_ALIASES,
                        limits.max_aliases,
                        format!(
                            "template uses too many YAML aliases (one too many {})",
                            at(&e.start_mark)
                        ),
                    ));
                }
                // SAFETY: the union member of this event type.
                let name = unsafe { anchor(e.data.alias.anchor) };
                // An unknown (or still open) anchor is the deserializer's error.
                let named = name
                    .and_then(|n| anchors.get(&n).copied())
                    .unwrap_or(Done { size: 0, height: 0 });
                if open.len() + named.height > limits.max_depth {
                    return Err(too_deep(limits, &e.start_mark));
                }
                shape.depth = shape.depth.max(open.len() + named.height);
                shape.expanded_bytes = shape.expanded_bytes.saturating_add(named.size);
                Some((named, None))
            }
            _ => None,
        };
        if shape.expanded_bytes > limits.max_expanded_bytes {
            return Err(exceeded(
                key::MAX_EXPANDED_BYTES,
                limits.max_expanded_bytes,
                format!(
                    "template grows too large with its YAML aliases replaced (past the limit {})",
                    at(&e.start_mark)
                ),
            ));
        }
        if let Some((value, name)) = done {
            if let Some(parent) = open.last_mut() {
                parent.size = parent.size.saturating_add(value.size);
                parent.height = parent.height.max(value.height + 1);
            }
            if let Some(name) = name {
                anchors.insert(name, value);
            }
        }
    }
    Ok(shape)
}

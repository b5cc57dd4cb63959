//! YAML with positions: a located tree and a serde deserializer over it.
//!
//! Loading is two stages. [`parse`] reads text with `serde-saphyr` (pure Rust, budgets
//! against alias bombs and deep nesting) into a [`Node`] tree where every key and value
//! remembers its line and column. [`from_node`] then deserializes typed values from that tree;
//! its errors carry the location of the innermost node that failed and the path to it, which
//! is what lets validation point at the offending key or value and recover to find more.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};

/// A 1-based line and column in a source file; `0:0` means unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value with the place it was written. Equality, ordering and hashing look at the value only.
#[derive(Debug, Clone, Default)]
pub struct Located<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Located<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Located { value, loc }
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Located<T> {}
impl<T: Hash> Hash for Located<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}
impl<T: PartialOrd> PartialOrd for Located<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for Located<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl Borrow<str> for Located<String> {
    fn borrow(&self) -> &str {
        &self.value
    }
}
impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// The newtype name [`NodeDeserializer`] recognises to hand out a node's location.
const LOCATED_MARKER: &str = "$patchday::Located";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(LOCATED_MARKER, LocatedVisitor(std::marker::PhantomData))
    }
}

struct LocatedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    /// From our own tree: `(line, column, value)`.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let missing = || de::Error::custom("internal: located value without its parts");
        let line: u32 = seq.next_element()?.ok_or_else(missing)?;
        let column: u32 = seq.next_element()?.ok_or_else(missing)?;
        let value: T = seq.next_element()?.ok_or_else(missing)?;
        Ok(Located::new(value, Loc { line, column }))
    }

    /// From `serde-saphyr`: ask for its span wrapper. Elsewhere the location is unknown.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let loc = Loc {
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX),
        };
        Ok(Located::new(spanned.value, loc))
    }
}

/// A YAML node with its location.
pub type Node = Located<Value>;

/// The value of a YAML node. Mappings keep their entries in file order, duplicates included,
/// so that validation can report every duplicate key.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text, if it is one (numbers and booleans as written in canonical form).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The value for `key` in a mapping (the first, if the key is duplicated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node a path leads to; `None` when the path leaves the tree.
    pub fn at_path(&self, path: &[PathSeg]) -> Option<&Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let next = match (self, first) {
            (Value::Map(_), PathSeg::Key(k)) => self.get(k),
            (Value::Seq(items), PathSeg::Index(i)) => items.get(*i),
            _ => None,
        }?;
        next.value.at_path(rest)
    }
}

impl Node {
    /// Converts to JSON, dropping locations (mapping keys become strings; the last duplicate wins).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.as_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The location of the node a path leads to, or of the deepest node on the way.
    pub fn loc_at(&self, path: &[PathSeg]) -> Loc {
        let Some((first, rest)) = path.split_first() else {
            return self.loc;
        };
        let next = match (&self.value, first) {
            (Value::Map(_), PathSeg::Key(k)) => self.value.get(k),
            (Value::Seq(items), PathSeg::Index(i)) => items.get(*i),
            _ => None,
        };
        next.map_or(self.loc, |n| n.loc_at(rest))
    }

    /// The location of the key of the entry a path leads to (the value's, for list items).
    pub fn key_loc_at(&self, path: &[PathSeg]) -> Loc {
        let Some((last, parents)) = path.split_last() else {
            return self.loc;
        };
        let parent = parents
            .iter()
            .try_fold(self, |node, seg| match (&node.value, seg) {
                (Value::Map(_), PathSeg::Key(k)) => node.value.get(k),
                (Value::Seq(items), PathSeg::Index(i)) => items.get(*i),
                _ => None,
            });
        match (parent.map(|p| &p.value), last) {
            (Some(Value::Map(entries)), PathSeg::Key(k)) => entries
                .iter()
                .find(|(key, _)| key.value.as_text().as_deref() == Some(k))
                .map_or(self.loc_at(path), |(key, _)| key.loc),
            _ => self.loc_at(path),
        }
    }

    /// Every string scalar below this node with its path, in file order.
    pub fn strings(&self) -> Vec<(Vec<PathSeg>, &Located<Value>)> {
        let mut out = Vec::new();
        self.collect_strings(&mut Vec::new(), &mut out);
        out
    }

    fn collect_strings<'a>(
        &'a self,
        path: &mut Vec<PathSeg>,
        out: &mut Vec<(Vec<PathSeg>, &'a Node)>,
    ) {
        match &self.value {
            Value::Str(_) => out.push((path.clone(), self)),
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    item.collect_strings(path, out);
                    path.pop();
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    path.push(PathSeg::Key(k.value.as_text().unwrap_or_default()));
                    v.collect_strings(path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

impl JsonSchema for Value {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Inputs".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "type": "object" })
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Node::new(self.clone(), Loc::default())
            .to_json()
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// Limits on a runbook or inventory file, so hostile YAML fails fast and small.
///
/// The node budget grows with the input: a file may hold [`Limits::base_nodes`] nodes plus one
/// for every [`Limits::BYTES_PER_NODE`] bytes of its text (aliases expanded and counted as often
/// as they are used). Plain YAML cannot hold more nodes than that (even `[a,b,c]` spends two bytes
/// a node, and real inventories ten or more), so an honest file of any accepted size fits while a
/// small file that expands through aliases is stopped after a bounded amount of work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted file.
    pub max_bytes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Nodes (scalars, mappings, sequences) any file may hold, before the allowance per byte.
    pub base_nodes: usize,
    /// Most alias references (`*name`).
    pub max_aliases: usize,
    /// Most YAML events replayed by aliases in all (what an alias bomb multiplies).
    pub max_replayed_events: usize,
}

impl Limits {
    /// The budgets for runbooks and inventories (documented in the README).
    pub const RUNBOOK: Limits = Limits {
        max_bytes: 4 * 1024 * 1024,
        max_depth: 32,
        base_nodes: 250_000,
        max_aliases: 1_000,
        max_replayed_events: 20_000,
    };

    /// Inventories are larger than runbooks: 100,000 hosts with a few variables each take about
    /// 12 MB of YAML.
    pub const INVENTORY: Limits = Limits {
        max_bytes: 32 * 1024 * 1024,
        ..Limits::RUNBOOK
    };

    /// The input bytes that earn one node beyond [`Limits::base_nodes`].
    pub const BYTES_PER_NODE: usize = 4;

    /// The most nodes a text of `bytes` bytes may expand to.
    pub fn max_nodes(&self, bytes: usize) -> usize {
        self.base_nodes + bytes / Self::BYTES_PER_NODE
    }
}

/// Why a YAML text could not be read into a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub loc: Loc,
    pub message: String,
}

/// Reads YAML text into a located tree, within `limits`.
pub fn parse(text: &str, limits: Limits) -> Result<Node, ParseError> {
    if text.len() > limits.max_bytes {
        return Err(ParseError {
            loc: Loc { line: 1, column: 1 },
            message: format!(
                "the file is {} bytes; such files are limited to {} bytes",
                text.len(),
                limits.max_bytes
            ),
        });
    }
    if text.trim().is_empty() {
        return Err(ParseError {
            loc: Loc { line: 1, column: 1 },
            message: "the file is empty".to_string(),
        });
    }
    let options = saphyr_options(limits, text.len());
    serde_saphyr::from_str_with_options::<Node>(text, options)
        .map_err(|e| parse_error(e, limits, text.len()))
}

/// Deserializes `T` straight from YAML text, without the located tree, within `limits`:
/// `None` when anything is wrong (a duplicate key included), so that [`parse`] and
/// [`from_node`] read it again and report every problem with its place. For large files that
/// are usually right (an inventory of 100,000 hosts), whose tree costs many times the file.
/// Values carry their locations ([`Located`] takes them from `serde-saphyr`'s spans).
pub fn from_str_when_valid<T: serde::de::DeserializeOwned>(
    text: &str,
    limits: Limits,
) -> Option<T> {
    let blank = |line: &str| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    };
    // Empty (or only comments): the tree refuses it; straight, it would be a default value.
    if text.len() > limits.max_bytes || text.lines().all(blank) {
        return None;
    }
    let mut options = saphyr_options(limits, text.len());
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    serde_saphyr::from_str_with_options::<T>(text, options).ok()
}

fn saphyr_options(limits: Limits, bytes: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_nodes = limits.max_nodes(bytes);
    // A mapping or sequence is two events (start, end), a scalar one.
    budget.max_events = 2 * budget.max_nodes;
    budget.max_aliases = limits.max_aliases;
    budget.max_total_scalar_bytes = limits.max_bytes;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.max_replayed_events;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.strict_booleans = true;
    options
}

fn parse_error(err: serde_saphyr::Error, limits: Limits, bytes: usize) -> ParseError {
    let loc = err
        .location()
        .map(|l| Loc {
            line: u32::try_from(l.line()).unwrap_or(0),
            column: u32::try_from(l.column()).unwrap_or(0),
        })
        .unwrap_or_default();
    let mut message = budget_message(&first_line(&err.to_string()), limits, bytes);
    if message == "recursion limit exceeded" {
        message = format!("the file nests deeper than {} levels", limits.max_depth);
    }
    ParseError { loc, message }
}

/// serde-saphyr reports a breached budget as `budget breached: Nodes { nodes: 400001 }`;
/// say what the limit protects against instead.
fn budget_message(message: &str, limits: Limits, bytes: usize) -> String {
    let Some(what) = message.strip_prefix("budget breached: ") else {
        return message.to_string();
    };
    let kind = what.split([' ', '{', '(']).next().unwrap_or(what);
    match kind {
        "Nodes" => format!(
            "the file expands to more than {} YAML nodes (aliases counted as often as they are used): is it an alias bomb?",
            limits.max_nodes(bytes)
        ),
        "Depth" => format!("the file nests deeper than {} levels", limits.max_depth),
        "Aliases" => format!("the file uses more than {} aliases", limits.max_aliases),
        "Documents" => "a runbook file holds one YAML document".to_string(),
        _ => format!("the file exceeds a size limit ({what})"),
    }
}

/// serde-saphyr renders its own snippet after the first line; we render ours.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text).trim();
    strip_location_suffix(line).to_string()
}

/// Drops the `error: line N column M: ` prefix and ` at line N column M` suffix serde-saphyr
/// adds: our diagnostics carry the location themselves.
fn strip_location_suffix(line: &str) -> &str {
    let mut text = line.strip_prefix("error: ").unwrap_or(line);
    if let Some(rest) = text.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
    {
        text = after;
    }
    match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// One step of a path into a tree: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl fmt::Display for PathSeg {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PathSeg::Key(k) => f.write_str(k),
            PathSeg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Formats a path as `steps.patch.retry.attempts` / `needs[2]`.
pub fn path_text(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        if matches!(seg, PathSeg::Key(_)) && !out.is_empty() {
            out.push('.');
        }
        out.push_str(&seg.to_string());
    }
    out
}

/// A deserialization error located at the innermost node that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeError {
    pub message: String,
    /// Location of the failing node; `None` until the deserializer attaches it.
    pub loc: Option<Loc>,
    /// Path from the root to the failing node.
    pub path: Vec<PathSeg>,
    /// Set for "missing field" errors: the name of the missing field.
    pub missing_field: Option<String>,
}

impl DeError {
    fn within(mut self, seg: PathSeg, loc: Loc) -> Self {
        self.loc.get_or_insert(loc);
        self.path.insert(0, seg);
        self
    }

    fn at(mut self, loc: Loc) -> Self {
        self.loc.get_or_insert(loc);
        self
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            loc: None,
            path: Vec::new(),
            missing_field: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            missing_field: Some(field.to_string()),
            ..Self::custom(format_args!("missing field `{field}`"))
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown field `{field}`");
        match nearest(field, expected.iter().copied()) {
            Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
            None if !expected.is_empty() => {
                message.push_str(&format!("; expected one of {}", quoted_list(expected)))
            }
            None => {}
        }
        Self::custom(message)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown value `{variant}`");
        match nearest(variant, expected.iter().copied()) {
            Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
            None => message.push_str(&format!("; expected one of {}", quoted_list(expected))),
        }
        Self::custom(message)
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        let exp = match exp.to_string().as_str() {
            "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" => {
                "a whole number".to_string()
            }
            other => other.to_string(),
        };
        Self::custom(format_args!(
            "expected {exp}, found {}",
            unexpected_text(&unexp)
        ))
    }
}

fn unexpected_text(unexp: &de::Unexpected) -> String {
    match unexp {
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Unit => "null".into(),
        other => other.to_string(),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Deserializes a typed value from a located tree.
pub fn from_node<'de, T: Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer { node }).map_err(|e| e.at(node.loc))
}

/// A serde deserializer over a [`Node`]. Scalars are coerced to strings where a string is
/// wanted (`vm: 101`), as YAML authors expect.
#[derive(Clone, Copy)]
pub struct NodeDeserializer<'de> {
    node: &'de Node,
}

impl<'de> NodeDeserializer<'de> {
    fn fail(&self, exp: &dyn de::Expected) -> DeError {
        let unexp = match &self.node.value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Int(i) => de::Unexpected::Signed(*i),
            Value::Float(f) => de::Unexpected::Float(*f),
            Value::Str(s) => de::Unexpected::Str(s),
            Value::Seq(_) => de::Unexpected::Seq,
            Value::Map(_) => de::Unexpected::Map,
        };
        <DeError as de::Error>::invalid_type(unexp, exp).at(self.node.loc)
    }
}

impl<'de> Deserializer<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let loc = self.node.loc;
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(NodeSeq { items, index: 0 }),
            Value::Map(entries) => visitor.visit_map(NodeMap {
                entries,
                index: 0,
                pending: None,
            }),
        };
        result.map_err(|e| e.at(loc))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            other => match other.as_text() {
                Some(text) => visitor.visit_string(text),
                None => Err(self.fail(&visitor)),
            },
        }
        .map_err(|e| e.at(self.node.loc))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == LOCATED_MARKER {
            return visitor.visit_seq(LocatedParts {
                node: self.node,
                part: 0,
            });
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(NodeEnum {
                key: &entries[0].0,
                value: &entries[0].1,
            }),
            _ => Err(self.fail(&visitor)),
        }
        .map_err(|e| e.at(self.node.loc))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// Structs and maps come only from mappings (serde would also take a list for a struct).
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(_) => self.deserialize_any(visitor),
            _ => Err(self.fail(&"a mapping")),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.fail(&visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit_struct seq tuple tuple_struct identifier ignored_any
    }
}

/// Feeds `(line, column, value)` to [`LocatedVisitor`].
struct LocatedParts<'de> {
    node: &'de Node,
    part: u8,
}

impl<'de> SeqAccess<'de> for LocatedParts<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        self.part += 1;
        match self.part {
            1 => seed
                .deserialize(self.node.loc.line.into_deserializer())
                .map(Some),
            2 => seed
                .deserialize(self.node.loc.column.into_deserializer())
                .map(Some),
            3 => seed
                .deserialize(NodeDeserializer { node: self.node })
                .map(Some),
            _ => Ok(None),
        }
    }
}

struct NodeSeq<'de> {
    items: &'de [Node],
    index: usize,
}

impl<'de> SeqAccess<'de> for NodeSeq<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(NodeDeserializer { node })
            .map(Some)
            .map_err(|e| e.within(PathSeg::Index(index), node.loc))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct NodeMap<'de> {
    entries: &'de [(Node, Node)],
    index: usize,
    pending: Option<(&'de Node, &'de Node)>,
}

fn key_seg(key: &Node) -> PathSeg {
    PathSeg::Key(key.value.as_text().unwrap_or_default())
}

impl<'de> MapAccess<'de> for NodeMap<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        self.index += 1;
        self.pending = Some((key, value));
        seed.deserialize(NodeDeserializer { node: key })
            .map(Some)
            .map_err(|e| e.within(key_seg(key), key.loc))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("internal: value asked before key"));
        };
        seed.deserialize(NodeDeserializer { node: value })
            .map_err(|e| e.within(key_seg(key), value.loc))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}

struct NodeEnum<'de> {
    key: &'de Node,
    value: &'de Node,
}

impl<'de> EnumAccess<'de> for NodeEnum<'de> {
    type Error = DeError;
    type Variant = NodeDeserializer<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let variant = seed.deserialize(NodeDeserializer { node: self.key })?;
        Ok((variant, NodeDeserializer { node: self.value }))
    }
}

impl<'de> VariantAccess<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Deserialize::deserialize(self)
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }
}

/// Every key written more than once in a mapping: (the repeated key, where it was first written).
pub fn duplicate_keys(root: &Node) -> Vec<(&Node, Loc)> {
    let mut out = Vec::new();
    walk_duplicates(root, &mut out);
    out
}

fn walk_duplicates<'a>(node: &'a Node, out: &mut Vec<(&'a Node, Loc)>) {
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|n| walk_duplicates(n, out)),
        Value::Map(entries) => {
            let mut first_seen: std::collections::HashMap<String, Loc> =
                std::collections::HashMap::with_capacity(entries.len());
            for (key, value) in entries {
                let text = key.value.as_text().unwrap_or_default();
                match first_seen.get(&text) {
                    Some(first) => out.push((key, *first)),
                    None => {
                        first_seen.insert(text, key.loc);
                    }
                }
                walk_duplicates(value, out);
            }
        }
        _ => {}
    }
}

/// Removes the entry or item a path leads to. Returns false when the path does not exist.
pub fn remove_at(node: &mut Node, path: &[PathSeg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = node;
    for seg in parents {
        let next = match (&mut cur.value, seg) {
            (Value::Map(entries), PathSeg::Key(k)) => entries
                .iter_mut()
                .find(|(key, _)| key.value.as_text().as_deref() == Some(k))
                .map(|(_, v)| v),
            (Value::Seq(items), PathSeg::Index(i)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (&mut cur.value, last) {
        (Value::Map(entries), PathSeg::Key(k)) => {
            let before = entries.len();
            entries.retain(|(key, _)| key.value.as_text().as_deref() != Some(k));
            entries.len() != before
        }
        (Value::Seq(items), PathSeg::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        group: Located<String>,
        #[serde(default)]
        batch: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Located<String>,
        each: Inner,
    }

    #[test]
    fn values_remember_their_line_and_column() {
        let node = parse("name: x\neach:\n  group: web\n", Limits::RUNBOOK).unwrap();
        let outer: Outer = from_node(&node).unwrap();
        assert_eq!(outer.each.batch, None);
        assert_eq!(outer.name.loc, Loc { line: 1, column: 7 });
        assert_eq!(
            outer.each.group.loc,
            Loc {
                line: 3,
                column: 10
            }
        );
    }

    #[test]
    fn errors_point_at_the_innermost_node_and_suggest_a_name() {
        let node = parse("name: x\neach:\n  grop: web\n", Limits::RUNBOOK).unwrap();
        let err = from_node::<Outer>(&node).unwrap_err();
        assert_eq!(err.loc, Some(Loc { line: 3, column: 3 }));
        assert_eq!(
            err.path,
            vec![PathSeg::Key("each".into()), PathSeg::Key("grop".into())]
        );
        assert!(
            err.message.contains("did you mean `group`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_errors_name_what_was_found() {
        let node = parse(
            "name: x\neach: { group: web, batch: [1] }\n",
            Limits::RUNBOOK,
        )
        .unwrap();
        let err = from_node::<Outer>(&node).unwrap_err();
        assert_eq!(
            err.path,
            vec![PathSeg::Key("each".into()), PathSeg::Key("batch".into())]
        );
        assert!(err.message.contains("found a list"), "{}", err.message);
    }

    #[test]
    fn duplicate_keys_are_kept_and_found() {
        let node = parse("a: 1\nb: 2\na: 3\n", Limits::RUNBOOK).unwrap();
        let dups = duplicate_keys(&node);
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].0.loc.line, 3);
        assert_eq!(dups[0].1.line, 1);
    }

    #[test]
    fn budgets_stop_alias_bombs_and_deep_nesting() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        assert!(parse(bomb, Limits::RUNBOOK).is_err());
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep, Limits::RUNBOOK).is_err());
    }

    #[test]
    fn the_node_budget_grows_with_the_input() {
        // 2,000 hosts with four variables each, and a group listing them all: about 24,000
        // nodes, far past a base budget of 1,000, in about 170 KB.
        let mut text = String::from("hosts:\n");
        for i in 0..2_000 {
            text.push_str(&format!(
                "  h{i:06}: {{ address: 10.0.{}.{}, vm: vm-{i}, os: linux, criticality: normal }}\n",
                i / 256,
                i % 256
            ));
        }
        text.push_str("groups:\n  all:\n");
        for i in 0..2_000 {
            text.push_str(&format!("    - h{i:06}\n"));
        }
        let small_base = Limits {
            base_nodes: 1_000,
            ..Limits::INVENTORY
        };
        let node = parse(&text, small_base).unwrap();
        assert_eq!(node.to_json()["hosts"].as_object().unwrap().len(), 2_000);
        // Without the allowance per byte the same text would be refused.
        assert!(small_base.max_nodes(0) < 24_000);
        let (inventory, runbook) = (Limits::INVENTORY.max_bytes, Limits::RUNBOOK.max_bytes);
        assert!(inventory >= 8 * runbook);
    }

    #[test]
    fn a_file_too_large_for_a_runbook_is_refused_before_parsing() {
        let text = format!("a: \"{}\"\n", "x".repeat(Limits::RUNBOOK.max_bytes));
        let err = parse(&text, Limits::RUNBOOK).unwrap_err();
        assert!(err.message.contains("limited to 4194304 bytes"), "{err}");
    }

    #[test]
    fn a_small_file_cannot_expand_past_its_allowance() {
        // 300 aliases of a 1,000-element list: 300,000 nodes from 5 KB.
        let mut text = format!("a: &a [{}]\nb: [", vec!["x"; 1_000].join(", "));
        text.push_str(&vec!["*a"; 300].join(", "));
        text.push_str("]\n");
        let limits = Limits {
            max_replayed_events: usize::MAX,
            ..Limits::INVENTORY
        };
        let err = parse(&text, limits).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn remove_at_drops_one_entry() {
        let mut node = parse("a: {b: 1, c: 2}\n", Limits::RUNBOOK).unwrap();
        assert!(remove_at(
            &mut node,
            &[PathSeg::Key("a".into()), PathSeg::Key("b".into())]
        ));
        assert_eq!(node.to_json(), serde_json::json!({ "a": { "c": 2 } }));
    }
}

//! Ansible's INI inventory format, read natively.
//!
//! Supported (as Ansible's `ini` plugin reads it): `[group]` sections of host lines
//! (`pattern key=value ...`, shell-style quoting, `#` comments, ranges, `name:PORT`), hosts
//! before any section (ungrouped), `[group:vars]` (`key=value`), `[group:children]`, and
//! values read as Python literals the way Ansible does (`22` is a number, `True` a boolean,
//! `"a b"` a string, `[1, 2]` a list; anything else is the text as written). Python literals
//! this reader does not know (sets, complex numbers, byte or raw strings, triple quotes) are
//! errors naming the line, as are the mistakes Ansible refuses (an unknown section type, a
//! `:vars` or `:children` section naming a group that is never defined).

use indexmap::IndexMap;
use serde_json::Value;

use super::AnsibleInventory;
use super::pattern;
use crate::yaml::Loc;

/// An error at a line of the file.
pub type LineError = (Loc, String);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hosts,
    Vars,
    Children,
}

/// A section or child name seen before its group was defined, as Ansible tracks it.
struct Pending {
    loc: Loc,
    vars_only: bool,
    parents: Vec<String>,
}

/// Reads an INI inventory; every error found, each with its line.
pub fn parse(text: &str) -> Result<AnsibleInventory, Vec<LineError>> {
    let mut inventory = AnsibleInventory::default();
    let mut errors = Vec::new();
    let mut pending: IndexMap<String, Pending> = IndexMap::new();
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    for (index, raw) in text.lines().enumerate() {
        let loc = Loc {
            line: index as u32 + 1,
            column: 1,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && section_end(line) {
            match section(line) {
                Ok((name, kind)) => {
                    (group, state) = (name, kind);
                    open_section(&mut inventory, &mut pending, &group, state, loc);
                }
                Err(e) => errors.push((loc, e)),
            }
            continue;
        }
        let result = match state {
            State::Hosts => host_line(&mut inventory, &group, line, loc),
            State::Vars => var_line(&mut inventory, &group, line),
            State::Children => child_line(&mut inventory, &mut pending, &group, line, loc),
        };
        if let Err(e) = result {
            errors.push((loc, e));
        }
    }
    for (name, p) in pending {
        let message = if p.vars_only {
            format!("section [{name}:vars] is for a group that is never defined")
        } else {
            format!(
                "section [{}:children] names group `{name}`, which is never defined",
                p.parents.last().map(String::as_str).unwrap_or("?")
            )
        };
        errors.push((p.loc, message));
    }
    if errors.is_empty() {
        Ok(inventory)
    } else {
        errors.sort_by_key(|(loc, _)| *loc);
        Err(errors)
    }
}

/// Whether a line starting with `[` is a section header (ends with `]`, maybe a comment).
fn section_end(line: &str) -> bool {
    let before_comment = line.split('#').next().unwrap_or(line).trim_end();
    before_comment.ends_with(']')
}

/// `[name]`, `[name:vars]`, `[name:children]`.
fn section(line: &str) -> Result<(String, State), String> {
    let head = line.split('#').next().unwrap_or(line).trim_end();
    let inner = &head[1..head.len() - 1];
    let (name, kind) = match inner.split_once(':') {
        Some((name, kind)) => (name, Some(kind)),
        None => (inner, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains(']') {
        return Err(format!(
            "invalid section `{head}`: write [group], [group:vars] or [group:children], without spaces"
        ));
    }
    let state = match kind {
        None | Some("hosts") => State::Hosts,
        Some("vars") => State::Vars,
        Some("children") => State::Children,
        Some(other) => {
            return Err(format!(
                "section `{head}` has unknown type `{other}`: use :vars or :children"
            ));
        }
    };
    Ok((name.to_string(), state))
}

fn open_section(
    inventory: &mut AnsibleInventory,
    pending: &mut IndexMap<String, Pending>,
    group: &str,
    state: State,
    loc: Loc,
) {
    if !inventory.has_group(group) {
        if state == State::Vars && !pending.contains_key(group) {
            pending.insert(
                group.to_string(),
                Pending {
                    loc,
                    vars_only: true,
                    parents: Vec::new(),
                },
            );
        }
        inventory.add_group(group, loc);
    }
    if state != State::Vars
        && let Some(p) = pending.shift_remove(group)
        && !p.vars_only
    {
        add_pending_children(inventory, pending, group, p.parents);
    }
}

fn add_pending_children(
    inventory: &mut AnsibleInventory,
    pending: &mut IndexMap<String, Pending>,
    group: &str,
    parents: Vec<String>,
) {
    for parent in parents {
        let _ = inventory.add_child(&parent, group);
        if let Some(p) = pending.get(&parent).filter(|p| !p.vars_only) {
            let grand = p.parents.clone();
            pending.shift_remove(&parent);
            add_pending_children(inventory, pending, &parent, grand);
        }
    }
}

fn host_line(
    inventory: &mut AnsibleInventory,
    group: &str,
    line: &str,
    loc: Loc,
) -> Result<(), String> {
    let tokens = shell_words(line)?;
    let Some((first, rest)) = tokens.split_first() else {
        return Ok(());
    };
    if first == "---" {
        return Err("`---` starts a YAML document: name YAML inventories .yaml or .yml".into());
    }
    let (hosts, port) = pattern::expand(first)?;
    pattern::within_budget(inventory.host_count(), hosts.len())?;
    let mut vars = IndexMap::new();
    for token in rest {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("expected key=value after the host name, got `{token}`"))?;
        vars.insert(key.to_string(), python_value(value)?);
    }
    for host in hosts {
        inventory.add_host(group, &host, port, vars.clone(), loc);
    }
    Ok(())
}

fn var_line(inventory: &mut AnsibleInventory, group: &str, line: &str) -> Result<(), String> {
    let (key, value) = line
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got `{line}`"))?;
    inventory.set_group_var(group, key.trim(), python_value(value.trim())?)
}

fn child_line(
    inventory: &mut AnsibleInventory,
    pending: &mut IndexMap<String, Pending>,
    group: &str,
    line: &str,
    loc: Loc,
) -> Result<(), String> {
    let name = line.split('#').next().unwrap_or(line).trim();
    if name.is_empty()
        || name.contains(':')
        || name.contains(']')
        || name.contains(char::is_whitespace)
    {
        return Err(format!("expected a group name, got `{line}`"));
    }
    if inventory.has_group(name) {
        return inventory.add_child(group, name);
    }
    let entry = pending.entry(name.to_string()).or_insert(Pending {
        loc,
        vars_only: false,
        parents: Vec::new(),
    });
    entry.vars_only = false;
    entry.parents.push(group.to_string());
    Ok(())
}

/// Splits a host line as Python's `shlex.split(line, comments=True)`: whitespace separates,
/// quotes group, a backslash escapes, an unquoted `#` starts a comment.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('\\' | '"' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err("no closing quotation".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => word.push(e),
                    None => return Err("no escaped character".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A value as Ansible's `ast.literal_eval` reads it: a Python literal becomes its value, any
/// other text stays text. Literals outside the subset are errors.
pub fn python_value(text: &str) -> Result<Value, String> {
    let mut parser = Literal {
        text: text.trim_start_matches([' ', '\t']),
        at: 0,
    };
    match parser.whole() {
        Ok(value) => Ok(value),
        Err(Fail::NotLiteral) => Ok(Value::String(text.to_string())),
        Err(Fail::Unsupported(what)) => Err(format!(
            "`{text}` is a Python literal outside the native subset ({what}); quote it as text, \
             or read this inventory with `--ansible-inventory`"
        )),
    }
}

enum Fail {
    /// Not a Python literal: the text is the value.
    NotLiteral,
    /// A literal Python reads but this reader does not.
    Unsupported(&'static str),
}

/// A small reader of Python literals: numbers, strings, True/False/None, lists, tuples, dicts.
struct Literal<'a> {
    text: &'a str,
    at: usize,
}

impl Literal<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// One literal and nothing after it but space or a comment.
    fn whole(&mut self) -> Result<Value, Fail> {
        let value = self.value()?;
        self.skip_space();
        if self.rest().is_empty() || self.rest().starts_with('#') {
            Ok(value)
        } else {
            Err(Fail::NotLiteral)
        }
    }

    fn value(&mut self) -> Result<Value, Fail> {
        self.skip_space();
        let rest = self.rest();
        let first = rest.chars().next().ok_or(Fail::NotLiteral)?;
        match first {
            '\'' | '"' => self.string(),
            '[' => self.sequence('[', ']'),
            '(' => self.sequence('(', ')'),
            '{' => self.dict(),
            '-' | '+' | '.' | '0'..='9' => self.number(),
            c if c.is_alphabetic() || c == '_' => self.name(),
            _ => Err(Fail::NotLiteral),
        }
    }

    fn name(&mut self) -> Result<Value, Fail> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        let after = &rest[len..];
        if matches!(word, "r" | "b" | "u" | "rb" | "br" | "R" | "B" | "U")
            && (after.starts_with('\'') || after.starts_with('"'))
        {
            return Err(Fail::Unsupported("a prefixed string"));
        }
        let value = match word {
            "True" => Value::Bool(true),
            "False" => Value::Bool(false),
            "None" => Value::Null,
            _ => return Err(Fail::NotLiteral),
        };
        self.at += len;
        Ok(value)
    }

    fn number(&mut self) -> Result<Value, Fail> {
        let mut negative = false;
        loop {
            self.skip_space();
            match self.rest().chars().next() {
                Some('-') => {
                    negative = !negative;
                    self.at += 1;
                }
                Some('+') => self.at += 1,
                _ => break,
            }
        }
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let mut token = &rest[..len];
        // An exponent's sign: `1e-3`.
        if (token.ends_with('e') || token.ends_with('E'))
            && !token.starts_with("0x")
            && rest[len..].starts_with(['-', '+'])
        {
            let more = rest[len + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - len - 1);
            token = &rest[..len + 1 + more];
        }
        let value = number_value(token)?;
        self.at += token.len();
        Ok(match (negative, value) {
            (false, v) => v,
            (true, Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::from(-i),
                (None, Some(f)) => {
                    serde_json::Number::from_f64(-f).map_or(Value::Null, Value::Number)
                }
                _ => return Err(Fail::NotLiteral),
            },
            _ => return Err(Fail::NotLiteral),
        })
    }

    fn string(&mut self) -> Result<Value, Fail> {
        let quote = self.rest().chars().next().ok_or(Fail::NotLiteral)?;
        if self.rest().starts_with(&format!("{quote}{quote}{quote}")) {
            return Err(Fail::Unsupported("a triple-quoted string"));
        }
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        let end = loop {
            let Some((i, c)) = chars.next() else {
                return Err(Fail::NotLiteral);
            };
            match c {
                c if c == quote => break i,
                '\\' => {
                    let (_, e) = chars.next().ok_or(Fail::NotLiteral)?;
                    match e {
                        '\\' | '\'' | '"' => out.push(e),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0'..='7' | 'x' | 'u' | 'U' | 'N' | 'a' | 'b' | 'f' | 'v' => {
                            return Err(Fail::Unsupported(
                                "a string escape other than \\n \\t \\r \\\\ \\' \\\"",
                            ));
                        }
                        '\n' => {}
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                '\n' => return Err(Fail::NotLiteral),
                c => out.push(c),
            }
        };
        self.at += end + 1;
        self.skip_space();
        if self.rest().starts_with(['\'', '"']) {
            return Err(Fail::Unsupported("adjacent strings"));
        }
        Ok(Value::String(out))
    }

    fn sequence(&mut self, open: char, close: char) -> Result<Value, Fail> {
        self.eat(open);
        let mut items = Vec::new();
        let mut commas = 0;
        loop {
            if self.eat(close) {
                break;
            }
            items.push(self.value()?);
            if self.eat(',') {
                commas += 1;
                continue;
            }
            if self.eat(close) {
                break;
            }
            return Err(Fail::NotLiteral);
        }
        // `(5)` is just 5; `(5,)` a tuple.
        if open == '(' && items.len() == 1 && commas == 0 {
            return Ok(items.remove(0));
        }
        Ok(Value::Array(items))
    }

    fn dict(&mut self) -> Result<Value, Fail> {
        self.eat('{');
        let mut map = serde_json::Map::new();
        loop {
            if self.eat('}') {
                break;
            }
            let key = self.value()?;
            if !self.eat(':') {
                self.skip_space();
                return Err(if self.rest().starts_with([',', '}']) {
                    Fail::Unsupported("a set")
                } else {
                    Fail::NotLiteral
                });
            }
            let Value::String(key) = key else {
                return Err(Fail::Unsupported("a dict key that is not a string"));
            };
            let value = self.value()?;
            map.insert(key, value);
            if self.eat(',') {
                continue;
            }
            if self.eat('}') {
                break;
            }
            return Err(Fail::NotLiteral);
        }
        Ok(Value::Object(map))
    }
}

/// A Python number token (`42`, `0x1f`, `1_000`, `2.5`, `1e3`); `07` is not one.
fn number_value(token: &str) -> Result<Value, Fail> {
    if token.ends_with(['j', 'J']) {
        return Err(Fail::Unsupported("a complex number"));
    }
    let lower = token.to_ascii_lowercase();
    let radix = |prefix: &str, radix: u32| -> Option<Result<Value, Fail>> {
        let digits = lower.strip_prefix(prefix)?.replace('_', "");
        Some(
            i64::from_str_radix(&digits, radix)
                .map(Value::from)
                .map_err(|_| Fail::NotLiteral),
        )
    };
    if let Some(v) = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
    {
        return v;
    }
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.chars().all(|c| c.is_ascii_digit() || c == '_')
    };
    if plain(&lower) {
        let digits = lower.replace('_', "");
        if digits.len() > 1 && digits.starts_with('0') && digits.chars().any(|c| c != '0') {
            return Err(Fail::NotLiteral);
        }
        return digits
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| Fail::Unsupported("an integer beyond 64 bits"));
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        plain(e)
    });
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok = (int.is_empty() || plain(int))
        && (frac.is_empty() || plain(frac))
        && !(int.is_empty() && frac.is_empty())
        && (mantissa.contains('.') || exponent.is_some());
    if !(mantissa_ok && exponent_ok) {
        return Err(Fail::NotLiteral);
    }
    lower
        .replace('_', "")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or(Fail::NotLiteral)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_python_literals() {
        let v = |t: &str| python_value(t).unwrap();
        assert_eq!(v("22"), json!(22));
        assert_eq!(v("-3"), json!(-3));
        assert_eq!(v("0x10"), json!(16));
        assert_eq!(v("1_000"), json!(1000));
        assert_eq!(v("2.5"), json!(2.5));
        assert_eq!(v("1e3"), json!(1000.0));
        assert_eq!(v("07"), json!("07"));
        assert_eq!(v("True"), json!(true));
        assert_eq!(v("true"), json!("true"));
        assert_eq!(v("None"), json!(null));
        assert_eq!(v("'a b'"), json!("a b"));
        assert_eq!(v("\"x\\ny\""), json!("x\ny"));
        assert_eq!(v("[1, 'two', (3,)]"), json!([1, "two", [3]]));
        assert_eq!(v("{'a': [1], 'b': None}"), json!({ "a": [1], "b": null }));
        assert_eq!(v("22 # port"), json!(22));
        assert_eq!(v("hello world"), json!("hello world"));
        assert_eq!(v("1+2"), json!("1+2"));
        assert_eq!(v("[1, 2"), json!("[1, 2"));
        assert_eq!(v("/usr/bin/python3"), json!("/usr/bin/python3"));
        for unsupported in ["{1, 2}", "1j", "b'x'", "'''x'''", "'a' 'b'", "'\\x41'"] {
            assert!(python_value(unsupported).is_err(), "{unsupported}");
        }
    }

    #[test]
    fn host_lines_split_like_shlex() {
        assert_eq!(
            shell_words(r#"web1 a="x y" b='q "r"' c=d\ e # comment"#).unwrap(),
            vec!["web1", "a=x y", "b=q \"r\"", "c=d e"]
        );
        assert!(shell_words("web1 a='open").is_err());
    }

    #[test]
    fn sections_groups_children_and_errors_with_lines() {
        let inv = parse(
            "lonely\n[web]\nweb[1:2] http_port=80\n[db]\ndb1:2222\n\
             [prod:children]\nweb\ndb\n[prod:vars]\nenv='production'\n",
        )
        .unwrap()
        .into_inventory()
        .unwrap();
        let names =
            |g: &str| -> Vec<String> { inv.groups[g].iter().map(|h| h.value.clone()).collect() };
        assert_eq!(names("prod"), vec!["web1", "web2", "db1"]);
        assert_eq!(names("ungrouped"), vec!["lonely"]);
        assert_eq!(inv.hosts["db1"].port, Some(2222));
        assert_eq!(inv.hosts["web2"].vars["env"], "production");
        assert_eq!(inv.hosts["web2"].vars["http_port"], 80);

        let errors =
            parse("[web]\nw1 novalue\n[web:bogus]\n[ghost:vars]\nx=1\n[p:children]\nnever\n")
                .unwrap_err();
        let lines: Vec<u32> = errors.iter().map(|(l, _)| l.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 7], "{errors:?}");
    }
}

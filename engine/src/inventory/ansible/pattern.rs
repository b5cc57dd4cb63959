//! Host patterns as the INI and YAML inventories write them: `name`, `name:PORT`, and ranges
//! (`web[01:20]`, `db-[a:f]`, `node[1:10:2]`, several in one name), expanded as Ansible's
//! `expand_hostname_range` does. IPv6 addresses and bracketed `[host]:port` forms are outside
//! the native subset.

/// Most hosts one pattern may expand to (a typo such as `[1:1000000]` fails fast).
pub const MAX_EXPANSION: usize = 100_000;

/// Most host entries one inventory may define, ranges expanded (a file of many wide ranges
/// fails fast instead of filling memory).
pub const MAX_HOSTS: usize = 250_000;

/// Refuses adding `more` host entries to `already` once past [`MAX_HOSTS`].
pub fn within_budget(already: usize, more: usize) -> Result<(), String> {
    if already.saturating_add(more) > MAX_HOSTS {
        return Err(format!(
            "the inventory defines more than {MAX_HOSTS} hosts, the native reader's limit"
        ));
    }
    Ok(())
}

/// The host names a pattern stands for, and the port it gives them.
pub fn expand(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err("empty host name".into());
    }
    if pattern.starts_with('[') {
        return Err(format!(
            "`{pattern}`: bracketed addresses ([host]:port, IPv6) are outside the native subset; \
             read this inventory with `--ansible-inventory`"
        ));
    }
    let (name, port) = split_port(pattern)?;
    if name.contains(':') && !name.contains('[') {
        return Err(format!(
            "`{pattern}`: IPv6 addresses are outside the native subset; give the host a name and \
             its address in `ansible_host`"
        ));
    }
    let mut out = Vec::new();
    expand_ranges(name, &mut out)?;
    Ok((out, port))
}

/// `name:PORT` → (name, port); a colon inside a range is not a port.
fn split_port(pattern: &str) -> Result<(&str, Option<u16>), String> {
    let Some((name, port)) = pattern.rsplit_once(':') else {
        return Ok((pattern, None));
    };
    if port.contains(']') || name.is_empty() {
        return Ok((pattern, None));
    }
    if port.is_empty() {
        return Err(format!(
            "`{pattern}`: a host name may not end with `:` (it introduces a port)"
        ));
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Ok((pattern, None));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{pattern}`: {port} is not a port (1-65535)"))?;
    Ok((name, Some(port)))
}

/// Expands the first `[begin:end(:step)]` of `name`, then the rest of each result.
fn expand_ranges(name: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = name.find('[') else {
        out.push(name.to_string());
        return Ok(());
    };
    let close = name[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("`{name}`: a range `[` without `]`"))?;
    let (head, range, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    let (begin, end, step) = match bounds.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => {
            return Err(format!(
                "`{name}`: a host range is [begin:end] or [begin:end:step]"
            ));
        }
    };
    let begin = if begin.is_empty() { "0" } else { begin };
    if end.is_empty() {
        return Err(format!("`{name}`: a host range needs an end"));
    }
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{name}`: the range step `{step}` is not a positive number"))?;
    for value in range_values(name, begin, end, step)? {
        if out.len() >= MAX_EXPANSION {
            return Err(format!(
                "`{name}` expands to more than {MAX_EXPANSION} hosts"
            ));
        }
        expand_ranges(&format!("{head}{value}{tail}"), out)?;
    }
    Ok(())
}

/// The values of one range: letters (`a:f`), or numbers padded to the begin's width when it
/// starts with 0 (`01:20`).
fn range_values(name: &str, begin: &str, end: &str, step: usize) -> Result<Vec<String>, String> {
    let letter = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    if let (Some(b), Some(e)) = (letter(begin), letter(end)) {
        const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let (i, j) = (LETTERS.find(b).unwrap_or(0), LETTERS.find(e).unwrap_or(0));
        if i > j {
            return Err(format!("`{name}`: a host range must have begin <= end"));
        }
        return Ok(LETTERS[i..=j]
            .chars()
            .step_by(step)
            .map(String::from)
            .collect());
    }
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("`{name}`: `{s}` is neither a number nor a letter"))
    };
    let (b, e) = (number(begin)?, number(end)?);
    let width = (begin.len() > 1 && begin.starts_with('0')).then_some(begin.len());
    if let Some(w) = width
        && w != end.len()
    {
        return Err(format!(
            "`{name}`: a zero-padded range needs begin and end of equal length"
        ));
    }
    if e.saturating_sub(b) / step as u64 >= MAX_EXPANSION as u64 {
        return Err(format!(
            "`{name}` expands to more than {MAX_EXPANSION} hosts"
        ));
    }
    Ok((b..=e)
        .step_by(step)
        .map(|n| match width {
            Some(w) => format!("{n:0w$}"),
            None => n.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &str) -> Vec<String> {
        expand(p).unwrap().0
    }

    #[test]
    fn ranges_expand_like_ansible() {
        assert_eq!(names("web[01:03]"), vec!["web01", "web02", "web03"]);
        assert_eq!(names("db-[a:c]"), vec!["db-a", "db-b", "db-c"]);
        assert_eq!(names("n[1:10:4]"), vec!["n1", "n5", "n9"]);
        assert_eq!(names("r[1:2]x[a:b]").len(), 4);
    }

    #[test]
    fn ports_and_errors() {
        assert_eq!(
            expand("web1:2222").unwrap(),
            (vec!["web1".to_string()], Some(2222))
        );
        assert_eq!(expand("web[1:2]:22").unwrap().1, Some(22));
        assert!(expand("web1:").is_err());
        assert!(expand("web1:99999").is_err());
        assert!(expand("fe80::1").is_err());
        assert!(expand("w[01:3]").is_err());
        assert!(expand("w[1:100000000]").is_err());
        assert!(within_budget(MAX_HOSTS - 1, 1).is_ok());
        assert!(within_budget(MAX_HOSTS, 1).is_err());
    }
}

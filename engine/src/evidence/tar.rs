//! The evidence pack's archive: POSIX ustar (the format `tar` reads everywhere) with regular
//! files only, written and read without a dependency. Reading is bounded: names are checked
//! (no absolute paths, no `..`, no duplicates), sizes must fit the input, and anything but a
//! regular file is refused.

use std::collections::BTreeMap;

const BLOCK: usize = 512;

/// An archive of `files` (names of at most 100 bytes), mode 0644, the given mtime.
pub fn write(files: &[(String, Vec<u8>)], mtime: i64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        if name.len() > 100 || name.is_empty() {
            return Err(format!(
                "`{name}`: a name in the pack must be 1 to 100 bytes"
            ));
        }
        let mut header = [0u8; BLOCK];
        header[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], bytes.len() as u64);
        octal(&mut header[136..148], mtime.max(0) as u64);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
        octal(&mut header[148..155], sum);
        header[155] = b' ';
        out.extend_from_slice(&header);
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

/// `value` in octal, zero-padded, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The files of an archive, by name.
pub fn read(archive: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let mut at = 0;
    while at + BLOCK <= archive.len() {
        let header = &archive[at..at + BLOCK];
        if header.iter().all(|&b| b == 0) {
            return Ok(files);
        }
        let stored = parse_octal(&header[148..156]).ok_or("a header's checksum is not octal")?;
        let mut blank = header.to_vec();
        blank[148..156].copy_from_slice(b"        ");
        if blank.iter().map(|&b| u64::from(b)).sum::<u64>() != stored {
            return Err(format!("the header at byte {at} is damaged (checksum)"));
        }
        let end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&header[..end])
            .map_err(|_| format!("the name at byte {at} is not UTF-8"))?
            .to_string();
        if !matches!(header[156], b'0' | 0) {
            return Err(format!("`{name}` is not a regular file"));
        }
        if name.starts_with('/') || name.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(format!("`{name}`: not a plain relative path"));
        }
        let size = parse_octal(&header[124..136]).ok_or("a size is not octal")? as usize;
        let start = at + BLOCK;
        let data = archive
            .get(start..start.saturating_add(size))
            .ok_or_else(|| format!("`{name}` is cut short"))?;
        if files.insert(name.clone(), data.to_vec()).is_some() {
            return Err(format!("`{name}` appears twice"));
        }
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
    Err("the archive ends without its end blocks (cut short?)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_the_system_tar_reads_them() {
        let files = vec![
            ("MANIFEST".to_string(), b"hello\n".to_vec()),
            ("runbook/monthly.yaml".to_string(), vec![b'x'; 1500]),
            ("empty".to_string(), Vec::new()),
        ];
        let archive = write(&files, 1_796_000_000).unwrap();
        assert_eq!(archive.len() % BLOCK, 0);
        let back = read(&archive).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back["runbook/monthly.yaml"], vec![b'x'; 1500]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.tar");
        std::fs::write(&path, &archive).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "MANIFEST\nrunbook/monthly.yaml\nempty\n"
        );
    }

    #[test]
    fn damaged_and_hostile_archives_are_refused() {
        let archive = write(&[("a".to_string(), b"1".to_vec())], 0).unwrap();
        let mut damaged = archive.clone();
        damaged[0] = b'b';
        assert!(read(&damaged).unwrap_err().contains("checksum"));
        assert!(read(&archive[..BLOCK + 10]).is_err());
        let evil = write(&[("../etc/x".to_string(), b"1".to_vec())], 0).unwrap();
        assert!(read(&evil).unwrap_err().contains("relative"));
        let twice = write(&[("a".into(), vec![]), ("a".into(), vec![])], 0).unwrap();
        assert!(read(&twice).unwrap_err().contains("twice"));
        assert!(write(&[("x".repeat(101), vec![])], 0).is_err());
    }
}

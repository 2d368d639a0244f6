//! Structural ELF check run before `dlopen`.
//!
//! glibc maps a library's segments as its headers describe them; a file cut
//! short (a copy still in progress, a failed upload) makes it touch pages
//! past the end of the file and the host dies of SIGBUS inside `dlopen`. So
//! before loading, the bytes about to be loaded are checked: an ELF shared
//! object for this machine, whose program headers, section headers and
//! loadable segments all lie inside the file.

/// Why a file is not a loadable shared object for this host.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a loadable shared library: {0}")]
pub struct ElfError(String);

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const EHDR64_SIZE: usize = 64;
const PHDR64_SIZE: u64 = 56;
const SHDR64_SIZE: u64 = 64;

#[cfg(target_arch = "x86_64")]
const HOST_MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const HOST_MACHINE: u16 = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const HOST_MACHINE: u16 = 0;

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(raw)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(raw)
}

fn fail<T>(reason: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(reason.into()))
}

/// Checks that `bytes` is a complete 64-bit little-endian ELF shared object
/// for this machine.
pub fn check(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.is_empty() {
        return fail("the file is empty");
    }
    if bytes.len() < EHDR64_SIZE || &bytes[..4] != ELF_MAGIC {
        return fail("the file is not an ELF object");
    }
    if bytes[4] != ELFCLASS64 || bytes[5] != ELFDATA2LSB {
        return fail("the file is not a 64-bit little-endian ELF object");
    }
    if u16_at(bytes, 16) != ET_DYN {
        return fail("the ELF object is not a shared library (ET_DYN)");
    }
    let machine = u16_at(bytes, 18);
    if machine != HOST_MACHINE {
        return fail(format!(
            "the library is built for ELF machine {machine}, this host is {HOST_MACHINE}"
        ));
    }
    let length = bytes.len() as u64;
    let table_fits = |offset: u64, count: u64, entry: u64, expected: u64, what: &str| {
        if count == 0 {
            return Ok(());
        }
        if entry != expected {
            return fail(format!(
                "{what} entries are {entry} bytes, expected {expected}"
            ));
        }
        match count
            .checked_mul(entry)
            .and_then(|size| size.checked_add(offset))
        {
            Some(end) if end <= length => Ok(()),
            _ => fail(format!(
                "{what} table ends past the end of the file ({length} bytes): truncated?"
            )),
        }
    };
    let ph_offset = u64_at(bytes, 32);
    let ph_entry = u64::from(u16_at(bytes, 54));
    let ph_count = u64::from(u16_at(bytes, 56));
    let sh_offset = u64_at(bytes, 40);
    let sh_entry = u64::from(u16_at(bytes, 58));
    let sh_count = u64::from(u16_at(bytes, 60));
    if ph_count == 0 {
        return fail("the library has no program headers");
    }
    table_fits(ph_offset, ph_count, ph_entry, PHDR64_SIZE, "program header")?;
    table_fits(sh_offset, sh_count, sh_entry, SHDR64_SIZE, "section header")?;
    let mut loadable = 0;
    for index in 0..ph_count {
        // In bounds: the whole table was checked above.
        let at = (ph_offset + index * PHDR64_SIZE) as usize;
        let kind = u32_at(bytes, at);
        if kind != PT_LOAD && kind != PT_DYNAMIC {
            continue;
        }
        loadable += u32::from(kind == PT_LOAD);
        let offset = u64_at(bytes, at + 8);
        let file_size = u64_at(bytes, at + 32);
        let memory_size = u64_at(bytes, at + 40);
        if kind == PT_LOAD && file_size > memory_size {
            return fail(format!("segment {index} is larger on disk than in memory"));
        }
        match offset.checked_add(file_size) {
            Some(end) if end <= length => {}
            _ => {
                return fail(format!(
                    "segment {index} ends past the end of the file ({length} bytes): truncated?"
                ))
            }
        }
    }
    if loadable == 0 {
        return fail("the library has no loadable segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself: Rust builds position-independent executables,
    /// which are ET_DYN objects with the same layout rules as libraries.
    fn real_object() -> Vec<u8> {
        std::fs::read(std::env::current_exe().expect("exe")).expect("read exe")
    }

    #[test]
    fn a_complete_shared_object_passes() {
        assert_eq!(check(&real_object()), Ok(()));
    }

    #[test]
    fn truncated_objects_are_refused_wherever_the_cut_is() {
        let object = real_object();
        for fraction in [0.001, 0.01, 0.1, 0.5, 0.9, 0.999] {
            let cut = (object.len() as f64 * fraction) as usize;
            let error = check(&object[..cut]).expect_err("truncated must fail");
            assert!(error.to_string().contains("not a loadable"), "{error}");
        }
    }

    #[test]
    fn garbage_and_empty_files_are_refused_with_a_reason() {
        assert_eq!(check(b""), fail("the file is empty"));
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(check(&garbage), fail("the file is not an ELF object"));
        let mut not_a_library = real_object();
        not_a_library[16] = 2; // ET_EXEC
        assert!(check(&not_a_library).is_err());
        let mut other_machine = real_object();
        other_machine[18] = 0x28; // ARM
        other_machine[19] = 0;
        assert!(check(&other_machine)
            .expect_err("foreign machine")
            .to_string()
            .contains("machine"));
    }
}

//! Names for addresses in modules that are gone. Once a module is unloaded
//! the kernel prints its addresses as bare hex; kcycle recorded where the
//! module's sections were at load, and looks the offset up in the module's
//! `.ko` on the host (its ELF symbol table: kcycle's kernels carry no DWARF).
//!
//! [`lookup`] is pure; [`KoSymbols`] reads `.ko` files once each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Names an address in a module, given where its sections were loaded.
pub trait Symbolizer {
    /// `func+0x12/0x40`, or `None` when the module or symbol is unknown.
    fn symbolize(
        &self,
        module: &str,
        sections: &BTreeMap<String, u64>,
        address: u64,
    ) -> Option<String>;
}

/// A symbolizer that knows nothing (tests, runs without module files).
pub struct NoSymbols;

impl Symbolizer for NoSymbols {
    fn symbolize(&self, _: &str, _: &BTreeMap<String, u64>, _: u64) -> Option<String> {
        None
    }
}

/// A function of a module: its section, offset in that section and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub section: String,
    pub offset: u64,
    pub size: u64,
    pub name: String,
}

/// The function containing `address`: the loaded section with the highest
/// base at or below it, then the symbol covering the offset there.
pub fn lookup(
    symbols: &[Symbol],
    sections: &BTreeMap<String, u64>,
    address: u64,
) -> Option<String> {
    let (section, base) = sections
        .iter()
        .filter(|(_, &base)| base <= address)
        .max_by_key(|(_, &base)| base)?;
    let offset = address - base;
    let symbol = symbols
        .iter()
        .filter(|s| &s.section == section && s.offset <= offset)
        .filter(|s| s.size == 0 || offset < s.offset + s.size)
        .max_by_key(|s| s.offset)?;
    let name = rustc_demangle::demangle(&symbol.name).to_string();
    Some(format!(
        "{name}+{:#x}/{:#x}",
        offset - symbol.offset,
        symbol.size
    ))
}

/// The function and data symbols of an ELF relocatable object (a `.ko`), plus one
/// `[<section>]` symbol spanning each allocated section: an address no symbol covers (a
/// string literal, an anonymous constant) is still known to be the module's.
pub fn read_symbols(data: &[u8]) -> Result<Vec<Symbol>, object::Error> {
    let file = object::File::parse(data)?;
    let mut out = Vec::new();
    for section in file.sections() {
        let (Ok(name), size) = (section.name(), section.size()) else {
            continue;
        };
        let allocated = matches!(
            section.flags(),
            object::SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0
        );
        if allocated && size > 0 && !name.is_empty() {
            out.push(Symbol {
                section: name.to_string(),
                offset: 0,
                size,
                name: format!("[{name}]"),
            });
        }
    }
    for symbol in file.symbols() {
        // Functions, and the objects a freed timer or work item lives in.
        if !matches!(symbol.kind(), SymbolKind::Text | SymbolKind::Data) {
            continue;
        }
        let (Some(index), Ok(name)) = (symbol.section_index(), symbol.name()) else {
            continue;
        };
        let Ok(section) = file
            .section_by_index(index)
            .and_then(|s| s.name().map(str::to_string))
        else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        out.push(Symbol {
            section,
            offset: symbol.address(),
            size: symbol.size(),
            name: name.to_string(),
        });
    }
    Ok(out)
}

/// Symbols from `.ko` files found under some directories (the kernel's
/// modules tree, `--module` files), parsed on first use.
pub struct KoSymbols {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
    cache: Mutex<BTreeMap<String, Option<Vec<Symbol>>>>,
}

impl KoSymbols {
    pub fn new(dirs: Vec<PathBuf>, files: Vec<PathBuf>) -> KoSymbols {
        KoSymbols {
            dirs,
            files,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    fn find(&self, module: &str) -> Option<PathBuf> {
        let matches = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
                .is_some_and(|n| n.replace('-', "_") == module)
        };
        if let Some(file) = self.files.iter().find(|f| matches(f)) {
            return Some(file.clone());
        }
        let mut pending: Vec<PathBuf> = self.dirs.clone();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => pending.push(path),
                    Ok(_) if matches(&path) => return Some(path),
                    _ => {}
                }
            }
        }
        None
    }
}

impl Symbolizer for KoSymbols {
    fn symbolize(
        &self,
        module: &str,
        sections: &BTreeMap<String, u64>,
        address: u64,
    ) -> Option<String> {
        let mut cache = self.cache.lock().ok()?;
        let symbols = cache.entry(module.to_string()).or_insert_with(|| {
            let path = self.find(module)?;
            read_symbols(&std::fs::read(path).ok()?).ok()
        });
        lookup(symbols.as_ref()?, sections, address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_resolve_in_their_section() {
        let symbols = vec![
            Symbol {
                section: ".text".into(),
                offset: 0,
                size: 0x30,
                name: "probe".into(),
            },
            Symbol {
                section: ".text".into(),
                offset: 0x30,
                size: 0x40,
                name: "timer_fn".into(),
            },
            Symbol {
                section: ".exit.text".into(),
                offset: 0,
                size: 0x20,
                name: "cleanup_module".into(),
            },
        ];
        let sections: BTreeMap<String, u64> = [
            (".text".to_string(), 0xffffffffc0201000),
            (".exit.text".to_string(), 0xffffffffc0205000),
        ]
        .into();
        assert_eq!(
            lookup(&symbols, &sections, 0xffffffffc0201042).as_deref(),
            Some("timer_fn+0x12/0x40")
        );
        assert_eq!(
            lookup(&symbols, &sections, 0xffffffffc0205004).as_deref(),
            Some("cleanup_module+0x4/0x20")
        );
        assert_eq!(lookup(&symbols, &sections, 0xffffffffc0201080), None);
        assert_eq!(lookup(&symbols, &sections, 0xffffffffc0200000), None);
    }

    #[test]
    fn reads_function_symbols_of_an_elf_object() {
        // The test binary itself is an ELF file with text symbols.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let symbols = read_symbols(&exe).unwrap();
        assert!(symbols.iter().any(|s| s.section == ".text" && s.size > 0));
        // Every allocated section spans itself, for addresses no symbol covers.
        let rodata = symbols.iter().find(|s| s.name == "[.rodata]").unwrap();
        assert_eq!((rodata.section.as_str(), rodata.offset), (".rodata", 0));
        assert!(rodata.size > 0);
    }

    #[test]
    fn a_symbol_wins_over_its_section_and_the_section_bounds_the_rest() {
        let symbols = vec![
            Symbol {
                section: ".rodata".into(),
                offset: 0,
                size: 0x100,
                name: "[.rodata]".into(),
            },
            Symbol {
                section: ".rodata".into(),
                offset: 0x40,
                size: 0x10,
                name: "OPS".into(),
            },
        ];
        let sections: BTreeMap<String, u64> = [(".rodata".to_string(), 0xffffffffc0300000)].into();
        let at = |a| lookup(&symbols, &sections, a);
        assert_eq!(at(0xffffffffc0300044).as_deref(), Some("OPS+0x4/0x10"));
        assert_eq!(
            at(0xffffffffc030006d).as_deref(),
            Some("[.rodata]+0x6d/0x100")
        );
        assert_eq!(at(0xffffffffc0300100), None);
    }
}

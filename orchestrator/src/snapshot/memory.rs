//! Memory counters read at every snapshot, for per-cycle trends: a leak that
//! no namespace shows (kmalloc without free) still grows these.

use std::collections::BTreeMap;

use super::SlabCaches;

/// The /proc/meminfo fields kept (kB): where kernel allocations show.
pub const MEMINFO_FIELDS: [&str; 7] = [
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "VmallocUsed",
    "Percpu",
    "KernelStack",
    "PageTables",
];

/// Counter name to value: `meminfo:<Field>` in kB and `slab:<cache>` in active objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    pub fn new(meminfo: &str, slab: &SlabCaches) -> Counters {
        let mut map = BTreeMap::new();
        for line in meminfo.lines() {
            let Some((field, rest)) = line.split_once(':') else {
                continue;
            };
            if !MEMINFO_FIELDS.contains(&field.trim()) {
                continue;
            }
            if let Some(Ok(kb)) = rest.split_whitespace().next().map(str::parse::<u64>) {
                map.insert(format!("meminfo:{}", field.trim()), kb);
            }
        }
        for name in slab.names() {
            if let Some(n) = slab.get(name).and_then(|c| c.active_objects) {
                map.insert(format!("slab:{name}"), n);
            }
        }
        Counters(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_kernel_memory_fields_and_cache_objects() {
        let slab = SlabCaches::parse(
            "kmalloc-512\n",
            "kmalloc-512 40 64 512 16 2 : tunables 0 0 0 : slabdata 4 4 0\n",
        );
        let c = Counters::new(
            "MemTotal: 100 kB\nSlab:   2048 kB\nSUnreclaim: 1024 kB\nbogus\n",
            &slab,
        );
        assert_eq!(
            c.0.into_iter().collect::<Vec<_>>(),
            [
                ("meminfo:SUnreclaim".to_string(), 1024),
                ("meminfo:Slab".to_string(), 2048),
                ("slab:kmalloc-512".to_string(), 40)
            ]
        );
    }
}

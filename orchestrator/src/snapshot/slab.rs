//! Slab caches by name, from /sys/kernel/slab (every cache and merged alias)
//! and /proc/slabinfo (object counts of caches that are not merged).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlabCache {
    pub name: String,
    /// From /proc/slabinfo; `None` for merged aliases, which slabinfo does not list.
    pub active_objects: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlabCaches {
    caches: BTreeMap<String, SlabCache>,
}

impl SlabCaches {
    /// `names`: `ls -1 /sys/kernel/slab`; `slabinfo`: `cat /proc/slabinfo`.
    /// Either may be empty. Sysfs entries starting with ':' are SLUB's
    /// internal ids for merged caches, not cache names, and are skipped.
    pub fn parse(names: &str, slabinfo: &str) -> SlabCaches {
        let mut caches = BTreeMap::new();
        for name in names.lines().map(str::trim) {
            if !name.is_empty() && !name.starts_with(':') {
                caches.insert(
                    name.to_string(),
                    SlabCache {
                        name: name.to_string(),
                        active_objects: None,
                    },
                );
            }
        }
        for line in slabinfo.lines() {
            if line.starts_with("slabinfo") || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(name), Some(active)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(active) = active.parse() else { continue };
            caches
                .entry(name.to_string())
                .or_insert_with(|| SlabCache {
                    name: name.to_string(),
                    active_objects: None,
                })
                .active_objects = Some(active);
        }
        SlabCaches { caches }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.caches.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&SlabCache> {
        self.caches.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// Caches present now that were not present in `before`: after an unload,
    /// these are the caches the module created and did not destroy.
    pub fn appeared_since<'a>(&'a self, before: &'a SlabCaches) -> Vec<&'a SlabCache> {
        self.caches
            .values()
            .filter(|cache| !before.caches.contains_key(&cache.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appeared_caches_are_the_leak() {
        let before = SlabCaches::parse("kmalloc-64\n:0000064\n", "");
        let after = SlabCaches::parse(
            "kmalloc-64\nrust_i915_request\nrust_i915_vma\n:0000128\n",
            "rust_i915_vma 3 32 128 32 1 : tunables 0 0 0 : slabdata 1 1 0\n",
        );
        let leaked: Vec<_> = after
            .appeared_since(&before)
            .into_iter()
            .map(|c| (c.name.as_str(), c.active_objects))
            .collect();
        assert_eq!(
            leaked,
            [("rust_i915_request", None), ("rust_i915_vma", Some(3))]
        );
        assert!(before.appeared_since(&after).is_empty());
    }
}

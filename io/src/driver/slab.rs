//! Connections by key: a vector of entries and a list of free keys. A key is known only
//! once the entry is in (`insert` returns it), so nothing has to guess which key the
//! next entry will get.

/// The store.
pub struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
    /// The most entries held at once since [`Slab::compact`].
    peak: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            peak: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its key.
    pub fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        self.peak = self.peak.max(self.len);
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(value);
                key
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    /// Takes out the entry of `key`, if there is one; its key may then be given out again.
    pub fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        self.len -= 1;
        Some(value)
    }

    pub fn get(&self, key: usize) -> Option<&T> {
        self.entries.get(key)?.as_ref()
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.entries.get_mut(key)?.as_mut()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The most entries held at once since the last [`Slab::compact`].
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Gives back the memory of free entries past the last one in use (after a burst of
    /// connections, the vector would otherwise keep room for all of them for good).
    pub fn compact(&mut self) {
        let used = self
            .entries
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        self.entries.truncate(used);
        self.entries.shrink_to_fit();
        self.free.retain(|&k| k < used);
        self.free.shrink_to_fit();
        self.peak = self.len;
    }

    /// The entries with their keys.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(k, e)| Some((k, e.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn keys_are_reused_only_once_free() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_ne!(a, b);
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!((s.remove(a), s.get(a)), (None, None));
        let c = s.insert("c");
        assert_eq!((c, s.get(c), s.get(b)), (a, Some(&"c"), Some(&"b")));
        assert_eq!(s.iter().map(|(_, v)| *v).collect::<Vec<_>>(), ["c", "b"]);
        assert_eq!(s.remove(99), None);
    }

    #[test]
    fn compacting_keeps_the_entries_and_their_keys() {
        let mut s = Slab::default();
        let keys: Vec<usize> = (0..100).map(|i| s.insert(i)).collect();
        assert_eq!((s.len(), s.peak()), (100, 100));
        for &k in &keys[3..] {
            s.remove(k);
        }
        s.remove(keys[1]);
        s.compact();
        assert_eq!((s.len(), s.peak()), (2, 2));
        assert_eq!((s.get(keys[0]), s.get(keys[2])), (Some(&0), Some(&2)));
        // The one free key left below the last entry is given out first, then new ones.
        assert_eq!(s.insert(7), keys[1]);
        assert_eq!(s.insert(8), 3);
        assert_eq!(s.iter().count(), 4);
    }
}

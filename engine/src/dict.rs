//! A chained hash table keyed by byte strings, with Redis's SCAN cursor.
//!
//! Why hand-rolled rather than `hashbrown`: SCAN promises that a key present
//! for the whole iteration is returned at least once, even if the table grows
//! or shrinks between calls. Redis keeps that promise with power-of-two bucket
//! arrays, chaining, and a reverse-binary cursor (see `dictScan` in dict.c);
//! open addressing moves entries between probe slots on resize, which breaks
//! it. Iteration order depends only on the hash seed, which comes from the
//! engine's seed, so replies and traces are deterministic.
//!
//! Unlike Redis, resizing is done in one step rather than incrementally; the
//! cursor guarantee holds either way. (Incremental rehashing is a latency
//! improvement left for later.)

use rand_core::RngCore;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Smallest bucket array.
const MIN_BUCKETS: usize = 4;

struct Node<V> {
    key: Key,
    value: V,
    next: Option<Box<Node<V>>>,
}

/// Keys this long or shorter live inside the node.
const INLINE_KEY: usize = 22;

/// A dict key: short keys inline, long ones boxed. 24 bytes either way,
/// and most keys, fields and members are short: storing them in the node
/// saves an allocation (16 bytes or more) and a cache miss per lookup,
/// while the keyspace node stays in jemalloc's 80-byte class and a set
/// member's node in the 32-byte class.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl Key {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(b) => b,
        }
    }

    /// The key as a boxed slice (allocating for an inline key).
    pub fn into_boxed(self) -> Box<[u8]> {
        match self {
            Key::Heap(b) => b,
            k => Box::from(k.as_bytes()),
        }
    }

    fn inline(s: &[u8]) -> Option<Key> {
        (s.len() <= INLINE_KEY).then(|| {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..s.len()].copy_from_slice(s);
            Key::Inline {
                len: s.len() as u8,
                bytes,
            }
        })
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&[u8]> for Key {
    fn from(s: &[u8]) -> Key {
        Key::inline(s).unwrap_or_else(|| Key::Heap(Box::from(s)))
    }
}

impl From<Box<[u8]>> for Key {
    fn from(b: Box<[u8]>) -> Key {
        Key::inline(&b).unwrap_or(Key::Heap(b))
    }
}

impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Key {
        Key::inline(&v).unwrap_or_else(|| Key::Heap(v.into_boxed_slice()))
    }
}

impl From<&bytes::Bytes> for Key {
    fn from(b: &bytes::Bytes) -> Key {
        Key::from(&b[..])
    }
}

impl From<&Vec<u8>> for Key {
    fn from(v: &Vec<u8>) -> Key {
        Key::from(&v[..])
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(s: &[u8; N]) -> Key {
        Key::from(&s[..])
    }
}

/// Hash table from byte-string keys to `V`.
pub struct Dict<V> {
    buckets: Vec<Option<Box<Node<V>>>>,
    len: usize,
    k0: u64,
    k1: u64,
    /// Set while a snapshot walks the table: shrinking would make the walk
    /// visit buckets twice, growing does not.
    shrink_paused: bool,
}

impl<V> Dict<V> {
    /// A table hashing with SipHash-1-3 under the given key (as Redis does,
    /// seeded from the engine's seed instead of /dev/urandom).
    pub fn new(seed: [u64; 2]) -> Dict<V> {
        let mut buckets = Vec::new();
        buckets.resize_with(MIN_BUCKETS, || None);
        Dict {
            buckets,
            len: 0,
            k0: seed[0],
            k1: seed[1],
            shrink_paused: false,
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(key);
        h.finish()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let idx = self.hash(key) as usize & self.mask();
        let mut cur = self.buckets[idx].as_deref();
        while let Some(n) = cur {
            if n.key.as_bytes() == key {
                return Some(&n.value);
            }
            cur = n.next.as_deref();
        }
        None
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let idx = self.hash(key) as usize & self.mask();
        let mut cur = self.buckets[idx].as_deref_mut();
        while let Some(n) = cur {
            if n.key.as_bytes() == key {
                return Some(&mut n.value);
            }
            cur = n.next.as_deref_mut();
        }
        None
    }

    /// The stored key equal to `key`.
    pub fn get_key(&self, key: &[u8]) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let idx = self.hash(key) as usize & self.mask();
        let mut cur = self.buckets[idx].as_deref();
        while let Some(n) = cur {
            if n.key.as_bytes() == key {
                return Some(&n.key[..]);
            }
            cur = n.next.as_deref();
        }
        None
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the previous value. Takes the key as
    /// anything that converts into a boxed slice without copying when it
    /// can (`Vec<u8>`, a uniquely owned `Bytes` via [`boxed`]).
    pub fn insert(&mut self, key: impl Into<Key>, value: V) -> Option<V> {
        let key: Key = key.into();
        // One hash for the search and the insertion.
        let h = self.hash(&key) as usize;
        if self.len > 0 {
            let idx = h & self.mask();
            let mut cur = self.buckets[idx].as_deref_mut();
            while let Some(n) = cur {
                if n.key.as_bytes() == key.as_bytes() {
                    return Some(std::mem::replace(&mut n.value, value));
                }
                cur = n.next.as_deref_mut();
            }
        }
        self.grow_if_needed();
        let idx = h & self.mask();
        // New entries go to the head of the chain, as in Redis.
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Node { key, value, next }));
        self.len += 1;
        None
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.remove_entry(key).map(|(_, v)| v)
    }

    pub fn remove_entry(&mut self, key: &[u8]) -> Option<(Key, V)> {
        if self.len == 0 {
            return None;
        }
        let idx = self.hash(key) as usize & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(n) if n.key.as_bytes() == key => {
                    let mut node = link.take()?;
                    *link = node.next.take();
                    self.len -= 1;
                    self.shrink_if_needed();
                    return Some((node.key, node.value));
                }
                Some(n) => link = &mut n.next,
            }
        }
    }

    pub fn clear(&mut self) {
        // Drop chains iteratively so a long chain cannot overflow the stack.
        for b in &mut self.buckets {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
        self.buckets.truncate(MIN_BUCKETS);
        self.buckets.shrink_to_fit();
        self.len = 0;
    }

    /// Makes room for `n` entries in one step (RDB loading knows the size).
    pub fn reserve(&mut self, n: usize) {
        if n > self.buckets.len() {
            self.resize(n.next_power_of_two());
        }
    }

    fn grow_if_needed(&mut self) {
        // Load factor 1 and doubling, like Redis when no fork is in progress.
        if self.len + 1 > self.buckets.len() {
            self.resize((self.len + 1).next_power_of_two());
        }
    }

    fn shrink_if_needed(&mut self) {
        // Redis shrinks below 10% fill (HASHTABLE_MIN_FILL).
        let n = self.buckets.len();
        if !self.shrink_paused && n > MIN_BUCKETS && self.len * 10 < n {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, new_size: usize) {
        debug_assert!(new_size.is_power_of_two() && new_size >= self.len);
        let mut fresh: Vec<Option<Box<Node<V>>>> = Vec::new();
        fresh.resize_with(new_size, || None);
        let old = std::mem::replace(&mut self.buckets, fresh);
        let mask = new_size - 1;
        for mut head in old {
            while let Some(mut n) = head {
                head = n.next.take();
                let idx = self.hash(&n.key) as usize & mask;
                n.next = self.buckets[idx].take();
                self.buckets[idx] = Some(n);
            }
        }
    }

    /// Visits the entries of the bucket at `cursor` and returns the next
    /// cursor (0 when the iteration is complete). This is Redis's reverse
    /// binary increment: the high bits are incremented first, so buckets
    /// visited before a resize map onto buckets visited after it.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(n) = cur {
            f(&n.key[..], &n.value);
            cur = n.next.as_deref();
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Pauses (or resumes) shrinking, so that a [`Dict::scan`] walk visits
    /// every bucket exactly once and [`Dict::scan_visited`] stays exact.
    pub fn set_shrink_paused(&mut self, paused: bool) {
        self.shrink_paused = paused;
        if !paused && self.len > 0 {
            self.shrink_if_needed();
        }
    }

    /// True if a scan whose next cursor is `cursor` has already visited the
    /// bucket `key` hashes to. Buckets are visited in increasing order of
    /// their reversed index, which growth preserves.
    pub fn scan_visited(&self, key: &[u8], cursor: u64) -> bool {
        let mask = self.mask() as u64;
        let idx = self.hash(key) & mask;
        (idx | !mask).reverse_bits() < (cursor | !mask).reverse_bits()
    }

    /// A uniformly chosen bucket, then a uniformly chosen entry in its chain
    /// (Redis's `dictGetRandomKey`, with the same small bias).
    pub fn random_entry(&self, rng: &mut impl RngCore) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask() as u64;
        loop {
            let idx = (rng.next_u64() & mask) as usize;
            if let Some(head) = self.buckets[idx].as_deref() {
                let mut chain_len = 0;
                let mut cur = Some(head);
                while let Some(n) = cur {
                    chain_len += 1;
                    cur = n.next.as_deref();
                }
                let mut pick = (rng.next_u64() % chain_len) as usize;
                let mut cur = head;
                while pick > 0 {
                    cur = cur.next.as_deref()?;
                    pick -= 1;
                }
                return Some((&cur.key[..], &cur.value));
            }
        }
    }

    /// Up to `count` entries from consecutive buckets starting at a random
    /// one (Redis's `dictGetSomeKeys`, used by eviction sampling): cheaper
    /// than `count` random lookups, at most `count * 10` buckets visited,
    /// and a run of empty buckets jumps elsewhere.
    pub fn sample(&self, rng: &mut impl RngCore, count: usize, mut f: impl FnMut(&[u8], &V)) {
        if self.len == 0 || count == 0 {
            return;
        }
        let count = count.min(self.len);
        let mask = self.mask();
        let mut idx = rng.next_u64() as usize & mask;
        let (mut taken, mut empty_run) = (0usize, 0usize);
        for _ in 0..count * 10 {
            match self.buckets[idx].as_deref() {
                None => {
                    empty_run += 1;
                    if empty_run >= 5 && empty_run > count {
                        idx = rng.next_u64() as usize & mask;
                        empty_run = 0;
                        continue;
                    }
                }
                Some(mut n) => {
                    empty_run = 0;
                    loop {
                        f(&n.key[..], &n.value);
                        taken += 1;
                        if taken == count {
                            return;
                        }
                        match n.next.as_deref() {
                            Some(next) => n = next,
                            None => break,
                        }
                    }
                }
            }
            idx = (idx + 1) & mask;
        }
    }

    /// Number of buckets (memory accounting: one pointer each).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Iterates in bucket order (deterministic for a given seed and history).
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            buckets: &self.buckets,
            idx: 0,
            cur: None,
        }
    }
}

/// Converts a `Bytes` into a dict key: inline when short, else without
/// copying when it is the only handle to a buffer that came from a `Vec`
/// (as parsed arguments are).
pub fn boxed(b: bytes::Bytes) -> Key {
    Key::inline(&b).unwrap_or_else(|| Key::Heap(Vec::from(b).into_boxed_slice()))
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        self.clear();
    }
}

pub struct Iter<'a, V> {
    buckets: &'a [Option<Box<Node<V>>>],
    idx: usize,
    cur: Option<&'a Node<V>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(n) = self.cur {
                self.cur = n.next.as_deref();
                return Some((&n.key[..], &n.value));
            }
            if self.idx >= self.buckets.len() {
                return None;
            }
            self.cur = self.buckets[self.idx].as_deref();
            self.idx += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rand_chacha::rand_core::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new([1, 2]);
        for i in 0..1000 {
            assert!(d.insert(format!("k{i}").into_bytes(), i).is_none());
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.get(b"k500"), Some(&500));
        assert_eq!(d.insert(b"k500".to_vec(), 7), Some(500));
        for i in 0..990 {
            assert!(d.remove(format!("k{i}").as_bytes()).is_some());
        }
        assert_eq!(d.len(), 10);
        assert!(d.buckets.len() <= 64, "shrinks: {}", d.buckets.len());
        assert_eq!(d.iter().count(), 10);
    }

    /// SCAN's guarantee: keys present from start to end are all returned even
    /// when the table grows and shrinks between calls.
    #[test]
    fn scan_survives_resizes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..20 {
            let mut d = Dict::new([round, 99]);
            let stable: Vec<Bytes> = (0..200).map(|i| Bytes::from(format!("s{i}"))).collect();
            for k in &stable {
                d.insert(k.to_vec(), ());
            }
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut extra = 0u64;
            loop {
                cursor = d.scan(cursor, |k, _| {
                    seen.insert(Bytes::copy_from_slice(k));
                });
                // Churn: grow a lot or shrink a lot.
                if rng.next_u32() % 2 == 0 {
                    for _ in 0..(rng.next_u32() % 500) {
                        d.insert(format!("x{extra}").into_bytes(), ());
                        extra += 1;
                    }
                } else {
                    let keys: Vec<Vec<u8>> = d
                        .iter()
                        .map(|(k, _)| k.to_vec())
                        .filter(|k| k[0] == b'x')
                        .collect();
                    for k in keys {
                        d.remove(&k);
                    }
                }
                if cursor == 0 {
                    break;
                }
            }
            for k in &stable {
                assert!(seen.contains(k), "round {round}: missed {k:?}");
            }
        }
    }
}

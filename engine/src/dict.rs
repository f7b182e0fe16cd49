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
//! Resizing is incremental, as in Redis (see [`Dict`]); the cursor
//! guarantee holds through it.

use rand_core::RngCore;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Smallest bucket array.
const MIN_BUCKETS: usize = 4;

struct Node<V, K> {
    key: K,
    value: V,
    next: Link<V, K>,
}

/// A chain: a bucket's first node, or a node's successor.
type Link<V, K> = Option<Box<Node<V, K>>>;

/// Keys this long or shorter live inside the node.
const INLINE_KEY: usize = 22;

/// A collection's dict key (hash fields and values, set members): short
/// keys inline, long ones boxed. 24 bytes either way, and most fields and
/// members are short: storing them in the node saves an allocation (16
/// bytes or more) and a cache miss per lookup, while a set member's node
/// stays in the 32-byte class. The keyspace uses [`ShortKey`].
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

/// What a [`Dict`] can key on: a byte string built from a slice (copied)
/// or a boxed slice (kept as it is when too long to store inline).
pub trait DictKey:
    std::ops::Deref<Target = [u8]> + for<'a> From<&'a [u8]> + From<Box<[u8]>> + From<Vec<u8>>
{
    /// Keys this long or shorter live inside the key value itself, with
    /// no allocation of their own.
    const INLINE: usize;

    /// True if this key's bytes are `q` (chain walks compare with this).
    #[inline]
    fn matches(&self, q: &[u8]) -> bool {
        &self[..] == q
    }
}

impl DictKey for Key {
    const INLINE: usize = INLINE_KEY;
}

/// A 16-byte key for the keyspace and its expires table: inline up to 15
/// bytes, else a pointer and a length (an owned `Box<[u8]>` taken apart).
///
/// Why not [`Key`] (24 bytes): a keyspace node is key + entry (40) + next
/// (8), and an expires node key + i64 + next. With 24-byte keys they fill
/// 72 and 40 bytes, so jemalloc serves them from its 80 and 48 classes;
/// with 16-byte keys they fill 64 and 32 bytes exactly. That is 32 bytes
/// less per key with a TTL, which brings our cost per key down to Redis's
/// (dictEntry, robj and key sds, plus an expires dictEntry sharing the
/// sds). Collections keep [`Key`]: their nodes stay in the same classes
/// either way and 16..22-byte fields would need an allocation.
///
/// Hand-rolled (a union, `unsafe`): a Rust enum of an inline array and a
/// `Box<[u8]>` needs a separate tag and is 24 bytes, and the small-string
/// crates are 24 bytes too or keep a header in the allocation. The tag
/// byte is the length word's most significant byte, which no real length
/// (below 2^56) uses: `0x80 | len` inline, else a 7-bit fragment of the
/// key (see `ShortKey::fragment`).
pub struct ShortKey(ShortRepr);

#[derive(Clone, Copy)]
#[repr(C)]
union ShortRepr {
    /// Inline: the bytes at `SHORT_DATA`, and `0x80 | len` at `SHORT_TAG`.
    inline: [u8; 16],
    heap: HeapParts,
}

/// An owned `Box<[u8]>` of more than [`SHORT_INLINE`] bytes, taken apart.
/// The length word's most significant byte is at `SHORT_TAG`.
#[cfg(target_endian = "little")]
#[derive(Clone, Copy)]
#[repr(C)]
struct HeapParts {
    ptr: *mut u8,
    len: usize,
}

#[cfg(target_endian = "big")]
#[derive(Clone, Copy)]
#[repr(C)]
struct HeapParts {
    len: usize,
    ptr: *mut u8,
}

const SHORT_INLINE: usize = 15;
/// Where a heap key keeps a fragment of itself in its tag byte (the length
/// word's top byte, which a length below 2^56 leaves free): 64-bit
/// little-endian targets. Elsewhere the tag byte stays 0.
const FRAGMENT: bool = cfg!(all(target_endian = "little", target_pointer_width = "64"));
/// The bits of the length word that are the length.
const LEN_MASK: usize = if FRAGMENT {
    usize::MAX >> 8
} else {
    usize::MAX
};
#[cfg(target_endian = "little")]
const SHORT_TAG: usize = 15;
#[cfg(target_endian = "little")]
const SHORT_DATA: usize = 0;
#[cfg(target_endian = "big")]
const SHORT_TAG: usize = 0;
#[cfg(target_endian = "big")]
const SHORT_DATA: usize = 1;

// SAFETY: a ShortKey owns its heap bytes exclusively, as a Box<[u8]> does
// (no sharing, no interior mutability), so it may move between threads and
// be shared by reference like one.
unsafe impl Send for ShortKey {}
unsafe impl Sync for ShortKey {}

impl ShortKey {
    #[inline]
    fn tag(&self) -> u8 {
        // SAFETY: all 16 bytes are initialized in either form (a heap key
        // starts from zeroed bytes), and byte SHORT_TAG is either the tag
        // or a byte of the length, an integer: reading it as u8 is sound.
        unsafe { self.0.inline[SHORT_TAG] }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let tag = self.tag();
        if tag & 0x80 != 0 {
            let len = (tag & 0x7f) as usize;
            // SAFETY: inline form (tag bit set): the array is the active
            // field and len <= SHORT_INLINE keeps the range inside it.
            unsafe { &self.0.inline[SHORT_DATA..SHORT_DATA + len] }
        } else {
            // SAFETY: heap form: ptr/len came from Box::into_raw of a live
            // boxed slice this key owns, freed only in Drop.
            unsafe { std::slice::from_raw_parts(self.0.heap.ptr, self.0.heap.len & LEN_MASK) }
        }
    }

    fn inline(s: &[u8]) -> ShortKey {
        debug_assert!(s.len() <= SHORT_INLINE);
        let mut bytes = [0u8; 16];
        bytes[SHORT_DATA..SHORT_DATA + s.len()].copy_from_slice(s);
        bytes[SHORT_TAG] = 0x80 | s.len() as u8;
        ShortKey(ShortRepr { inline: bytes })
    }

    fn heap(b: Box<[u8]>) -> ShortKey {
        debug_assert!(b.len() > SHORT_INLINE);
        let len = b.len();
        let ptr = Box::into_raw(b) as *mut u8;
        // Zeroed first: on targets where the parts are narrower than 16
        // bytes, the tag byte must still read as "heap".
        let mut repr = ShortRepr { inline: [0; 16] };
        repr.heap = HeapParts { ptr, len };
        if FRAGMENT {
            // No allocation reaches 2^56 bytes (64 PiB): the top byte of
            // the length is free for the fragment.
            assert!(len <= LEN_MASK, "key of {len} bytes");
            // SAFETY: byte SHORT_TAG is the top byte of `len`, an integer
            // (zero here); writing it leaves the pointer untouched.
            unsafe {
                repr.inline[SHORT_TAG] = Self::fragment(&*std::ptr::slice_from_raw_parts(ptr, len))
            };
        }
        ShortKey(repr)
    }

    /// A heap key's tag byte: the low 7 bits of its last byte (bit 7 clear
    /// marks the heap form). Keys that share a length mostly differ there
    /// (`key:000000012345`), so a chain walk tells most mismatches from
    /// the node alone, without reading the key's allocation (a cache miss).
    #[inline]
    fn fragment(bytes: &[u8]) -> u8 {
        bytes.last().map_or(0, |b| b & 0x7f)
    }
}

impl Drop for ShortKey {
    fn drop(&mut self) {
        if self.tag() & 0x80 == 0 {
            // SAFETY: heap form: rebuilds the Box<[u8]> taken apart in
            // `heap`, exactly once (the key is being dropped).
            unsafe {
                let HeapParts { ptr, len } = self.0.heap;
                let len = len & LEN_MASK;
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)));
            }
        }
    }
}

impl Clone for ShortKey {
    fn clone(&self) -> ShortKey {
        ShortKey::from(self.as_bytes())
    }
}

impl std::ops::Deref for ShortKey {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for ShortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&[u8]> for ShortKey {
    fn from(s: &[u8]) -> ShortKey {
        if s.len() <= SHORT_INLINE {
            ShortKey::inline(s)
        } else {
            ShortKey::heap(Box::from(s))
        }
    }
}

impl From<Box<[u8]>> for ShortKey {
    fn from(b: Box<[u8]>) -> ShortKey {
        if b.len() <= SHORT_INLINE {
            ShortKey::inline(&b)
        } else {
            ShortKey::heap(b)
        }
    }
}

impl From<Vec<u8>> for ShortKey {
    fn from(v: Vec<u8>) -> ShortKey {
        if v.len() <= SHORT_INLINE {
            ShortKey::inline(&v)
        } else {
            ShortKey::heap(v.into_boxed_slice())
        }
    }
}

impl DictKey for ShortKey {
    const INLINE: usize = SHORT_INLINE;

    #[inline]
    fn matches(&self, q: &[u8]) -> bool {
        let tag = self.tag();
        if tag & 0x80 != 0 {
            return self.as_bytes() == q;
        }
        // SAFETY: heap form (tag bit clear); the parts are the live box's.
        let HeapParts { ptr, len } = unsafe { self.0.heap };
        let len = len & LEN_MASK;
        if len != q.len() || (FRAGMENT && Self::fragment(q) != tag) {
            return false;
        }
        // SAFETY: as in `as_bytes`.
        unsafe { std::slice::from_raw_parts(ptr, len) == q }
    }
}

/// Hash table from byte-string keys to `V`.
///
/// Resizing is incremental, as in Redis: a resize allocates the new bucket
/// array and moves one old bucket per write (plus a budget per tick, see
/// [`Dict::rehash_steps`]), so growing a table of millions of keys never
/// stalls the event loop. While a rehash is under way, lookups search both
/// arrays and insertions go to the new one.
pub struct Dict<V, K: DictKey = Key> {
    /// The table; during a rehash, the old one being emptied.
    buckets: Vec<Link<V, K>>,
    /// During a rehash, the new table (empty otherwise).
    next: Vec<Link<V, K>>,
    /// During a rehash, the first bucket of `buckets` not yet moved.
    rehash_idx: usize,
    len: usize,
    k0: u64,
    k1: u64,
    /// Set while a snapshot walks the table: shrinking would make the walk
    /// visit buckets twice, growing does not.
    shrink_paused: bool,
}

/// Entries per bucket past which a table grows even when its memory
/// budget says no (HASHTABLE_MAX_LOAD_FACTOR, 1.618), as a fraction.
pub const MAX_LOAD_FACTOR: (usize, usize) = (1618, 1000);

/// Tables this small are resized in one step: cheaper than bookkeeping.
const REHASH_AT_ONCE: usize = 64;
/// Buckets moved per insertion or removal during a rehash. More than one,
/// so a rehash always ends before the table fills up again.
const REHASH_PER_WRITE: usize = 2;

impl<V, K: DictKey> Dict<V, K> {
    /// A table hashing with SipHash-1-3 under the given key (as Redis does,
    /// seeded from the engine's seed instead of /dev/urandom).
    pub fn new(seed: [u64; 2]) -> Dict<V, K> {
        let mut buckets = Vec::new();
        buckets.resize_with(MIN_BUCKETS, || None);
        Dict {
            buckets,
            next: Vec::new(),
            rehash_idx: 0,
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

    /// True while entries are moving from `buckets` to `next`.
    #[inline]
    pub fn is_rehashing(&self) -> bool {
        !self.next.is_empty()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chain heads a key with hash `h` may be in: its bucket in the
    /// table and, during a rehash, in the new table (a moved bucket of the
    /// old table is empty, so searching it costs one branch).
    #[inline]
    fn heads(&self, h: u64) -> [Option<&Node<V, K>>; 2] {
        let h = h as usize;
        let first = self.buckets[h & (self.buckets.len() - 1)].as_deref();
        let second = if self.next.is_empty() {
            None
        } else {
            self.next[h & (self.next.len() - 1)].as_deref()
        };
        [first, second]
    }

    fn find(&self, key: &[u8]) -> Option<&Node<V, K>> {
        if self.len == 0 {
            return None;
        }
        for head in self.heads(self.hash(key)) {
            let mut cur = head;
            while let Some(n) = cur {
                if n.key.matches(key) {
                    return Some(n);
                }
                cur = n.next.as_deref();
            }
        }
        None
    }

    fn find_mut(&mut self, key: &[u8], h: u64) -> Option<&mut Node<V, K>> {
        let h = h as usize;
        let mask = self.buckets.len() - 1;
        let in_first = {
            let mut cur = self.buckets[h & mask].as_deref();
            let mut found = false;
            while let Some(n) = cur {
                if n.key.matches(key) {
                    found = true;
                    break;
                }
                cur = n.next.as_deref();
            }
            found
        };
        let table = if in_first {
            &mut self.buckets[h & mask]
        } else if self.next.is_empty() {
            return None;
        } else {
            let m = self.next.len() - 1;
            &mut self.next[h & m]
        };
        let mut cur = table.as_deref_mut();
        while let Some(n) = cur {
            if n.key.matches(key) {
                return Some(n);
            }
            cur = n.next.as_deref_mut();
        }
        None
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.find(key).map(|n| &n.value)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key);
        self.find_mut(key, h).map(|n| &mut n.value)
    }

    /// The stored key equal to `key`.
    pub fn get_key(&self, key: &[u8]) -> Option<&[u8]> {
        self.find(key).map(|n| &n.key[..])
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Inserts or replaces; returns the previous value. Takes the key as
    /// anything that converts into a boxed slice without copying when it
    /// can (`Vec<u8>`, a uniquely owned `Bytes` via [`boxed`]).
    pub fn insert(&mut self, key: impl Into<K>, value: V) -> Option<V> {
        self.insert_within(key, value, u64::MAX)
    }

    /// [`Dict::insert`], where growing the bucket array may take at most
    /// `budget` bytes unless the table is overfull. This is Redis's
    /// `dictExpandAllowed` for the keyspace: a table whose growth would
    /// take memory past `maxmemory` stays at its size (chains get longer)
    /// until it holds [`MAX_LOAD_FACTOR`] entries per bucket, rather than
    /// evicting keys to pay for buckets.
    pub fn insert_within(&mut self, key: impl Into<K>, value: V, budget: u64) -> Option<V> {
        let key: K = key.into();
        self.rehash_steps(REHASH_PER_WRITE);
        // One hash for the search and the insertion.
        let h = self.hash(&key);
        if self.len > 0 {
            if let Some(n) = self.find_mut(&key, h) {
                return Some(std::mem::replace(&mut n.value, value));
            }
        }
        self.link_new(h, key, value, budget);
        None
    }

    /// [`Dict::insert_within`] that builds the stored key only when `key`
    /// is new: overwriting an existing key (SET on a hot key) then costs no
    /// allocation for a key too long to live inline.
    pub fn insert_with_within(
        &mut self,
        key: &[u8],
        make: impl FnOnce() -> K,
        value: V,
        budget: u64,
    ) -> Option<V> {
        self.rehash_steps(REHASH_PER_WRITE);
        let h = self.hash(key);
        if self.len > 0 {
            if let Some(n) = self.find_mut(key, h) {
                return Some(std::mem::replace(&mut n.value, value));
            }
        }
        let key = make();
        self.link_new(h, key, value, budget);
        None
    }

    /// Links a new entry whose key hashes to `h` (known absent).
    fn link_new(&mut self, h: u64, key: K, value: V, budget: u64) {
        self.grow_if_needed(budget);
        // New entries go to the head of the chain, as in Redis, and to the
        // new table during a rehash.
        let table = if self.next.is_empty() {
            &mut self.buckets
        } else {
            &mut self.next
        };
        let idx = h as usize & (table.len() - 1);
        let next = table[idx].take();
        table[idx] = Some(Box::new(Node { key, value, next }));
        self.len += 1;
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.remove_entry(key).map(|(_, v)| v)
    }

    pub fn remove_entry(&mut self, key: &[u8]) -> Option<(K, V)> {
        if self.len == 0 {
            return None;
        }
        self.rehash_steps(REHASH_PER_WRITE);
        let h = self.hash(key) as usize;
        let mask = self.buckets.len() - 1;
        let found = Self::unlink(&mut self.buckets[h & mask], key).or_else(|| {
            if self.next.is_empty() {
                None
            } else {
                let m = self.next.len() - 1;
                Self::unlink(&mut self.next[h & m], key)
            }
        });
        let node = found?;
        self.len -= 1;
        self.shrink_if_needed();
        Some((node.key, node.value))
    }

    /// Takes the node holding `key` out of the chain at `link`.
    fn unlink(mut link: &mut Link<V, K>, key: &[u8]) -> Link<V, K> {
        loop {
            match link {
                None => return None,
                Some(n) if n.key.matches(key) => {
                    let mut node = link.take()?;
                    *link = node.next.take();
                    return Some(node);
                }
                Some(n) => link = &mut n.next,
            }
        }
    }

    pub fn clear(&mut self) {
        // Drop chains iteratively so a long chain cannot overflow the stack.
        for b in self.buckets.iter_mut().chain(self.next.iter_mut()) {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
        self.buckets.truncate(MIN_BUCKETS);
        self.buckets.shrink_to_fit();
        self.next = Vec::new();
        self.rehash_idx = 0;
        self.len = 0;
    }

    /// Makes room for `n` entries in one step (RDB loading knows the size).
    pub fn reserve(&mut self, n: usize) {
        self.finish_rehash();
        if n > self.buckets.len() {
            self.resize_now(n.next_power_of_two());
        }
    }

    fn grow_if_needed(&mut self, budget: u64) {
        // Load factor 1 and doubling, like Redis when no fork is in progress.
        if !self.is_rehashing() && self.len + 1 > self.buckets.len() {
            let size = (self.len + 1).next_power_of_two();
            let bytes = (size * std::mem::size_of::<Link<V, K>>()) as u64;
            let (num, den) = MAX_LOAD_FACTOR;
            if bytes > budget && self.len * den <= self.buckets.len() * num {
                return;
            }
            self.start_resize(size);
        }
    }

    fn shrink_if_needed(&mut self) {
        // Redis shrinks below 10% fill (HASHTABLE_MIN_FILL).
        let n = self.buckets.len();
        if !self.shrink_paused && !self.is_rehashing() && n > MIN_BUCKETS && self.len * 10 < n {
            self.start_resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn start_resize(&mut self, new_size: usize) {
        debug_assert!(!self.is_rehashing());
        // (Buggify: small tables too are rehashed step by step.)
        let at_once = crate::buggify::shrink(REHASH_AT_ONCE, 1);
        if new_size <= at_once && self.buckets.len() <= at_once {
            self.resize_now(new_size);
            return;
        }
        let mut fresh: Vec<Link<V, K>> = Vec::new();
        fresh.resize_with(new_size, || None);
        self.next = fresh;
        self.rehash_idx = 0;
    }

    fn resize_now(&mut self, new_size: usize) {
        debug_assert!(!self.is_rehashing());
        debug_assert!(new_size.is_power_of_two() && new_size >= self.len);
        let mut fresh: Vec<Link<V, K>> = Vec::new();
        fresh.resize_with(new_size, || None);
        self.next = fresh;
        self.rehash_idx = 0;
        self.finish_rehash();
    }

    fn finish_rehash(&mut self) {
        while self.is_rehashing() {
            self.rehash_steps(usize::MAX);
        }
    }

    /// Moves up to `n` non-empty buckets to the new table (visiting at most
    /// ten times as many empty ones, as Redis's `dictRehash`); returns true
    /// while the rehash is unfinished. The node calls this on every tick
    /// with a budget, so an idle table finishes its rehash too.
    pub fn rehash_steps(&mut self, n: usize) -> bool {
        if !self.is_rehashing() {
            return false;
        }
        let mut moved = 0;
        let mut empty_visits = n.saturating_mul(10);
        let mask = self.next.len() - 1;
        while moved < n && self.rehash_idx < self.buckets.len() {
            let mut head = self.buckets[self.rehash_idx].take();
            self.rehash_idx += 1;
            if head.is_none() {
                empty_visits -= 1;
                if empty_visits == 0 {
                    break;
                }
                continue;
            }
            while let Some(mut node) = head {
                head = node.next.take();
                let idx = self.hash(&node.key) as usize & mask;
                node.next = self.next[idx].take();
                self.next[idx] = Some(node);
            }
            moved += 1;
        }
        if self.rehash_idx >= self.buckets.len() {
            self.buckets = std::mem::take(&mut self.next);
            self.rehash_idx = 0;
            return false;
        }
        true
    }

    /// The mask SCAN cursors follow: the smaller table's during a rehash
    /// (Redis's `dictScan` visits a bucket of the smaller table together
    /// with all its expansions in the larger one).
    fn scan_mask(&self) -> u64 {
        let m0 = self.buckets.len() - 1;
        if self.next.is_empty() {
            m0 as u64
        } else {
            m0.min(self.next.len() - 1) as u64
        }
    }

    /// Visits the entries of the bucket at `cursor` and returns the next
    /// cursor (0 when the iteration is complete). This is Redis's reverse
    /// binary increment: the high bits are incremented first, so buckets
    /// visited before a resize map onto buckets visited after it. During a
    /// rehash, the bucket of the smaller table and all its expansions in
    /// the larger one are visited together.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let mut emit = |head: Option<&Node<V, K>>| {
            let mut cur = head;
            while let Some(n) = cur {
                f(&n.key[..], &n.value);
                cur = n.next.as_deref();
            }
        };
        let rev_incr =
            |v: u64, mask: u64| (v | !mask).reverse_bits().wrapping_add(1).reverse_bits();
        if self.next.is_empty() {
            let mask = (self.buckets.len() - 1) as u64;
            emit(self.buckets[(cursor & mask) as usize].as_deref());
            return rev_incr(cursor, mask);
        }
        let (small, large) = if self.buckets.len() <= self.next.len() {
            (&self.buckets, &self.next)
        } else {
            (&self.next, &self.buckets)
        };
        let (m0, m1) = ((small.len() - 1) as u64, (large.len() - 1) as u64);
        let mut v = cursor;
        emit(small[(v & m0) as usize].as_deref());
        loop {
            emit(large[(v & m1) as usize].as_deref());
            v = rev_incr(v, m1);
            if v & (m0 ^ m1) == 0 {
                break;
            }
        }
        v
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
    /// their reversed index under the scan mask, which growth (in one step
    /// or incrementally) preserves.
    pub fn scan_visited(&self, key: &[u8], cursor: u64) -> bool {
        let mask = self.scan_mask();
        let idx = self.hash(key) & mask;
        (idx | !mask).reverse_bits() < (cursor | !mask).reverse_bits()
    }

    /// Bucket `i` of the combined table: the old buckets not yet moved,
    /// then the new table.
    fn combined(&self, i: usize) -> Option<&Node<V, K>> {
        let live = self.buckets.len() - self.rehash_idx;
        if i < live {
            self.buckets[self.rehash_idx + i].as_deref()
        } else {
            self.next.get(i - live).and_then(|b| b.as_deref())
        }
    }

    fn combined_len(&self) -> usize {
        self.buckets.len() - self.rehash_idx + self.next.len()
    }

    /// A uniformly chosen bucket, then a uniformly chosen entry in its chain
    /// (Redis's `dictGetRandomKey`, with the same small bias).
    pub fn random_entry(&self, rng: &mut impl RngCore) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let slots = self.combined_len() as u64;
        loop {
            let idx = (rng.next_u64() % slots) as usize;
            if let Some(head) = self.combined(idx) {
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
        let slots = self.combined_len();
        let mut idx = (rng.next_u64() % slots as u64) as usize;
        let (mut taken, mut empty_run) = (0usize, 0usize);
        for _ in 0..count * 10 {
            match self.combined(idx) {
                None => {
                    empty_run += 1;
                    if empty_run >= 5 && empty_run > count {
                        idx = (rng.next_u64() % slots as u64) as usize;
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
            idx = (idx + 1) % slots;
        }
    }

    /// Number of buckets (memory accounting: one pointer each).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len() + self.next.len()
    }

    /// A hint for bulk insertion (loading a file), changing nothing: starts
    /// fetching the bucket `key` falls in, or with `chain` (a few keys
    /// later, once the bucket has arrived) the bucket's first node. The
    /// lookup that follows then finds both in cache: the two cache misses
    /// per key were most of a 1M-key load.
    pub fn prefetch(&self, key: &[u8], chain: bool) {
        let table = if self.next.is_empty() {
            &self.buckets
        } else {
            &self.next
        };
        if table.is_empty() {
            return;
        }
        let slot = &table[self.hash(key) as usize & (table.len() - 1)];
        if !chain {
            prefetch_line(slot as *const Link<V, K> as *const u8);
        } else if let Some(n) = slot.as_deref() {
            prefetch_line(&n.key as *const K as *const u8);
        }
    }

    /// Iterates in bucket order (deterministic for a given seed and history).
    pub fn iter(&self) -> Iter<'_, V, K> {
        Iter {
            tables: [&self.buckets, &self.next],
            table: 0,
            idx: 0,
            cur: None,
        }
    }
}

/// Asks the CPU to bring the cache line at `p` in (see [`Dict::prefetch`]).
#[inline]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, reads nothing into the
    // program and writes nothing, whatever the address (and `p` points into
    // a live allocation anyway). SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Converts a `Bytes` into a dict key: inline when short, else without
/// copying when it is the only handle to a buffer that came from a `Vec`
/// (as parsed arguments are).
pub fn boxed<K: DictKey>(b: bytes::Bytes) -> K {
    if b.len() <= K::INLINE {
        K::from(&b[..])
    } else {
        K::from(Vec::from(b))
    }
}

impl<V, K: DictKey> Drop for Dict<V, K> {
    fn drop(&mut self) {
        self.clear();
    }
}

pub struct Iter<'a, V, K: DictKey = Key> {
    tables: [&'a [Link<V, K>]; 2],
    table: usize,
    idx: usize,
    cur: Option<&'a Node<V, K>>,
}

impl<'a, V, K: DictKey> Iterator for Iter<'a, V, K> {
    type Item = (&'a [u8], &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(n) = self.cur {
                self.cur = n.next.as_deref();
                return Some((&n.key[..], &n.value));
            }
            let buckets = self.tables.get(self.table)?;
            if self.idx >= buckets.len() {
                self.table += 1;
                self.idx = 0;
                continue;
            }
            self.cur = buckets[self.idx].as_deref();
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

    /// ShortKey keeps every length's bytes, in both forms, through clone
    /// and drop, and is 16 bytes, so the keyspace and expires nodes fill
    /// jemalloc's 64 and 32 classes (memory.rs charges those).
    #[test]
    fn short_keys() {
        assert_eq!(std::mem::size_of::<ShortKey>(), 16);
        assert_eq!(std::mem::size_of::<Node<i64, ShortKey>>(), 32);
        assert_eq!(std::mem::size_of::<Node<crate::db::Entry, ShortKey>>(), 64);
        for len in 0..100usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8 | 0x80).collect();
            let forms = [
                ShortKey::from(&bytes[..]),
                ShortKey::from(bytes.clone()),
                ShortKey::from(bytes.clone().into_boxed_slice()),
                boxed::<ShortKey>(Bytes::from(bytes.clone())),
            ];
            for k in forms {
                assert_eq!(&k[..], &bytes[..], "len {len}");
                assert!(k.matches(&bytes), "len {len}");
                if len > 0 {
                    let mut other = bytes.clone();
                    other[len - 1] ^= 1;
                    assert!(!k.matches(&other), "last byte differs, len {len}");
                    other[len - 1] ^= 0x81;
                    assert!(!k.matches(&other), "bit 7 differs, len {len}");
                    other[len - 1] ^= 0x80;
                    other[0] ^= 1;
                    assert!(!k.matches(&other), "first byte differs, len {len}");
                }
                assert!(!k.matches(&bytes[..len.saturating_sub(1)]) || len == 0);
                let mut longer = bytes.clone();
                longer.push(bytes.last().copied().unwrap_or(0));
                assert!(!k.matches(&longer), "longer, len {len}");
                let c = k.clone();
                drop(k);
                assert_eq!(&c[..], &bytes[..], "clone, len {len}");
            }
        }
        let mut d: Dict<u32, ShortKey> = Dict::new([5, 6]);
        for i in 0..2000u32 {
            let k = format!("{i:0>width$}", width = (i % 40) as usize);
            assert!(d.insert(k.as_bytes(), i).is_none());
        }
        for i in 0..2000u32 {
            let k = format!("{i:0>width$}", width = (i % 40) as usize);
            assert_eq!(d.get(k.as_bytes()), Some(&i));
            if i % 2 == 0 {
                assert_eq!(d.remove(k.as_bytes()), Some(i));
            }
        }
        assert_eq!(d.len(), 1000);
    }

    /// Redis's dictExpandAllowed: without the budget for a larger bucket
    /// array, a table stays at its size up to 1.618 entries per bucket,
    /// then grows anyway; with it, it grows at one entry per bucket.
    #[test]
    fn growth_waits_for_budget_up_to_max_load_factor() {
        let mut d: Dict<u32, ShortKey> = Dict::new([7, 8]);
        for i in 0..1024u32 {
            d.insert_within(format!("k{i}").as_bytes(), i, u64::MAX);
        }
        d.finish_rehash();
        assert_eq!(d.bucket_count(), 1024);
        // 2048 buckets of 8 bytes = 16 KiB: one byte short of it.
        let short = 2048 * 8 - 1;
        let mut i = 1024u32;
        while i < 1657 {
            d.insert_within(format!("k{i}").as_bytes(), i, short);
            assert_eq!(d.bucket_count(), 1024, "{i} entries");
            i += 1;
        }
        // 1657 entries in 1024 buckets is past 1.618: it grows.
        d.insert_within(format!("k{i}").as_bytes(), i, short);
        assert!(d.bucket_count() > 1024);
        d.finish_rehash();
        assert_eq!(d.bucket_count(), 2048);
        for j in 0..=i {
            assert_eq!(d.get(format!("k{j}").as_bytes()), Some(&j));
        }
        // With the budget, a full table grows at the next insertion.
        let mut e: Dict<u32, ShortKey> = Dict::new([7, 8]);
        for i in 0..1025u32 {
            e.insert_within(format!("k{i}").as_bytes(), i, 2048 * 8);
        }
        e.finish_rehash();
        assert_eq!(e.bucket_count(), 2048);
    }

    #[test]
    fn insert_get_remove() {
        let mut d: Dict<i32> = Dict::new([1, 2]);
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
        d.finish_rehash();
        assert!(d.buckets.len() <= 64, "shrinks: {}", d.buckets.len());
        assert_eq!(d.iter().count(), 10);
    }

    /// Random inserts, replacements and removals across many resizes (so
    /// most operations happen mid-rehash) agree with a BTreeMap, and the
    /// tick budget finishes a rehash nobody writes to.
    #[test]
    fn incremental_rehash_agrees_with_a_model() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut d: Dict<u64> = Dict::new([3, 4]);
        let mut model = std::collections::BTreeMap::new();
        let mut saw_rehash = 0;
        for step in 0..60_000u64 {
            let k = format!("k{}", rng.next_u32() % 20_000).into_bytes();
            // Grow for the first half, then mostly shrink.
            let grow = step < 30_000;
            match rng.next_u32() % 4 {
                0 | 1 if grow => assert_eq!(d.insert(k.clone(), step), model.insert(k, step)),
                0 => assert_eq!(d.insert(k.clone(), step), model.insert(k, step)),
                2 => assert_eq!(d.remove(&k), model.remove(&k)),
                _ => assert_eq!(d.get(&k), model.get(&k)),
            }
            saw_rehash += d.is_rehashing() as u32;
            assert_eq!(d.len(), model.len());
        }
        assert!(saw_rehash > 1000, "rehashes were exercised: {saw_rehash}");
        let mut all: Vec<(Vec<u8>, u64)> = d.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
        all.sort();
        let want: Vec<(Vec<u8>, u64)> = model.into_iter().collect();
        assert_eq!(all, want);
        while d.rehash_steps(100) {}
        assert!(!d.is_rehashing());
    }

    /// What BGSAVE relies on: while a walk goes on and the table grows
    /// (incrementally), `scan_visited` is true exactly for the keys the
    /// walk has already emitted, and no key is emitted twice.
    #[test]
    fn scan_visited_is_exact_through_growth() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for round in 0..5u64 {
            let mut d: Dict<()> = Dict::new([round, 1]);
            let original: Vec<Vec<u8>> = (0..600).map(|i| format!("o{i}").into_bytes()).collect();
            for k in &original {
                d.insert(k.clone(), ());
            }
            d.set_shrink_paused(true);
            let mut emitted = BTreeSet::new();
            let mut cursor = 0;
            let mut extra = 0;
            loop {
                cursor = d.scan(cursor, |k, _| {
                    if k[0] == b'o' {
                        assert!(emitted.insert(k.to_vec()), "emitted twice: {k:?}");
                    }
                });
                for _ in 0..(rng.next_u32() % 12) {
                    d.insert(format!("x{extra}").into_bytes(), ());
                    extra += 1;
                }
                if cursor == 0 {
                    break;
                }
                for k in original.iter().step_by(5) {
                    assert_eq!(
                        d.scan_visited(k, cursor),
                        emitted.contains(k),
                        "round {round}, cursor {cursor}, rehashing {}",
                        d.is_rehashing()
                    );
                }
            }
            assert_eq!(emitted.len(), original.len());
        }
    }

    /// SCAN's guarantee: keys present from start to end are all returned even
    /// when the table grows and shrinks between calls.
    #[test]
    fn scan_survives_resizes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..20 {
            let mut d: Dict<()> = Dict::new([round, 99]);
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

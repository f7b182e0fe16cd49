//! List commands (Redis's `t_list.c`): pushes and pops at both ends, ranges,
//! LPOS, LMOVE, LMPOP, and the blocking forms BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH and BLMPOP.
//!
//! A list is a `VecDeque` of elements: O(1) at both ends, O(1) indexing.
//! Redis 7.0 reports every list as `quicklist`, whatever its size, and so do
//! we. (A packed representation to match quicklist's memory use is future
//! work.)

use crate::command::Handler;
use crate::db::{Entry, Value};
use crate::node::{Ctx, TimeoutReply};
use bytes::Bytes;
use std::collections::VecDeque;

/// A list value.
#[derive(Debug, Clone, Default)]
pub struct List {
    items: VecDeque<Bytes>,
}

impl List {
    /// OBJECT ENCODING's name: Redis 7.0 lists are always quicklists.
    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The elements, head first.
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.items.iter()
    }

    fn push(&mut self, end: End, v: Bytes) {
        match end {
            End::Left => self.items.push_front(v),
            End::Right => self.items.push_back(v),
        }
    }

    fn pop(&mut self, end: End) -> Option<Bytes> {
        match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        }
    }
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "lpush" => lpush,
        "rpush" => rpush,
        "lpushx" => lpushx,
        "rpushx" => rpushx,
        "lpop" => lpop,
        "rpop" => rpop,
        "llen" => llen,
        "lrange" => lrange,
        "lindex" => lindex,
        "lset" => lset,
        "linsert" => linsert,
        "lrem" => lrem,
        "ltrim" => ltrim,
        "lpos" => lpos,
        "lmove" => lmove,
        "rpoplpush" => rpoplpush,
        "lmpop" => lmpop,
        "blpop" => blpop,
        "brpop" => brpop,
        "blmove" => blmove,
        "brpoplpush" => brpoplpush,
        "blmpop" => blmpop,
        _ => return None,
    })
}

/// Finds the list at `key` for a write command. `Err` after a WRONGTYPE
/// reply.
fn list_for_write<'a>(cx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    let db = cx.client.db;
    let lru = cx.lru_now();
    let now_ms = cx.now_ms();
    let d = &mut cx.node.dbs[db];
    if d.expire_if_needed(key, now_ms) {
        cx.node.stats.expired_keys += 1;
    }
    let is_list = match cx.node.dbs[db].keys.get(key) {
        None => return Ok(None),
        Some(e) => matches!(e.value, Value::List(_)),
    };
    if !is_list {
        cx.wrongtype();
        return Err(());
    }
    match cx.node.dbs[db].keys.get_mut(key) {
        Some(Entry {
            value: Value::List(l),
            lru_s,
        }) => {
            *lru_s = lru;
            Ok(Some(l))
        }
        _ => Ok(None),
    }
}

/// Finds the list at `key` for a read command (hit/miss statistics).
/// `Err` after a WRONGTYPE reply.
fn list_for_read<'a>(cx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    let db = cx.client.db;
    match cx.node.lookup_read(db, key) {
        None => Ok(None),
        Some(Entry {
            value: Value::List(_),
            ..
        }) => match cx.node.dbs[db].keys.get_mut(key) {
            Some(Entry {
                value: Value::List(l),
                ..
            }) => Ok(Some(l)),
            _ => Ok(None),
        },
        Some(_) => {
            cx.wrongtype();
            Err(())
        }
    }
}

/// Deletes `key` if its list became empty (Redis never keeps empty lists).
fn delete_if_empty(cx: &mut Ctx, key: &[u8]) {
    let empty = matches!(
        cx.db().keys.get(key),
        Some(Entry { value: Value::List(l), .. }) if l.is_empty()
    );
    if empty {
        cx.delete_key(key);
    }
}

/// Parses LEFT|RIGHT (Redis's `getListPositionFromObjectOrReply`).
fn parse_end(cx: &mut Ctx, i: usize) -> Option<End> {
    if cx.arg_is(i, "left") {
        Some(End::Left)
    } else if cx.arg_is(i, "right") {
        Some(End::Right)
    } else {
        cx.syntax_error();
        None
    }
}

/// Parses a count in [min, i64::MAX] with Redis's custom message.
fn parse_ranged(cx: &mut Ctx, i: usize, min: i64, msg: &str) -> Option<i64> {
    match crate::resp::parse_i64(&cx.argv[i]) {
        Some(n) if n >= min => Some(n),
        _ => {
            cx.error(msg);
            None
        }
    }
}

pub fn lpush(cx: &mut Ctx) {
    push_generic(cx, End::Left, false);
}

pub fn rpush(cx: &mut Ctx) {
    push_generic(cx, End::Right, false);
}

pub fn lpushx(cx: &mut Ctx) {
    push_generic(cx, End::Left, true);
}

pub fn rpushx(cx: &mut Ctx) {
    push_generic(cx, End::Right, true);
}

/// LPUSH/RPUSH key element [element ...]; the X forms only push to an
/// existing list.
fn push_generic(cx: &mut Ctx, end: End, only_existing: bool) {
    let key = cx.argv[1].clone();
    let exists = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(l) => l.is_some(),
    };
    if !exists {
        if only_existing {
            return cx.out().int(0);
        }
        let lru = cx.lru_now();
        cx.db().set(key.clone(), Value::List(List::default()), lru);
    }
    let n = cx.argv.len() - 2;
    let elements: Vec<Bytes> = cx.argv[2..].to_vec();
    let len = match list_for_write(cx, &key) {
        Ok(Some(l)) => {
            for e in elements {
                l.push(end, e);
            }
            l.len()
        }
        _ => return,
    };
    cx.dirty(n as u64);
    cx.signal_ready(&key);
    cx.out().int(len as i64);
}

pub fn lpop(cx: &mut Ctx) {
    pop_generic(cx, End::Left);
}

pub fn rpop(cx: &mut Ctx) {
    pop_generic(cx, End::Right);
}

/// LPOP/RPOP key [count]
fn pop_generic(cx: &mut Ctx, end: End) {
    if cx.argv.len() > 3 {
        let msg = format!(
            "ERR wrong number of arguments for '{}' command",
            cx.cmd.name
        );
        return cx.error(&msg);
    }
    let count = if cx.argv.len() == 3 {
        match parse_ranged(cx, 2, 0, "ERR value is out of range, must be positive") {
            Some(n) => Some(n as usize),
            None => return,
        }
    } else {
        None
    };
    let key = cx.argv[1].clone();
    let popped: Vec<Bytes> = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => {
            return match count {
                Some(_) => cx.out().null_array(),
                None => cx.out().null(),
            }
        }
        Ok(Some(l)) => {
            let n = count.unwrap_or(1).min(l.len());
            (0..n).filter_map(|_| l.pop(end)).collect()
        }
    };
    let out = &mut cx.client.reply;
    match count {
        None => match popped.first() {
            Some(v) => out.bulk(v),
            None => out.null(),
        },
        Some(_) => {
            out.array(popped.len());
            for v in &popped {
                out.bulk(v);
            }
        }
    }
    if !popped.is_empty() {
        cx.dirty(popped.len() as u64);
        delete_if_empty(cx, &key);
    }
}

/// LLEN key
pub fn llen(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match list_for_read(cx, &key) {
        Err(()) => {}
        Ok(l) => {
            let n = l.map_or(0, |l| l.len()) as i64;
            cx.out().int(n);
        }
    }
}

/// Normalises LRANGE/LTRIM-style indexes; `None` means an empty range.
fn clamp_range(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize))
}

/// LRANGE key start stop
pub fn lrange(cx: &mut Ctx) {
    let Some(start) = cx.parse_int(2) else { return };
    let Some(end) = cx.parse_int(3) else { return };
    let key = cx.argv[1].clone();
    let db = cx.client.db;
    let list = match cx.node.lookup_read(db, &key) {
        None => return cx.out().array(0),
        Some(Entry {
            value: Value::List(l),
            ..
        }) => l,
        Some(_) => return cx.wrongtype(),
    };
    let out = &mut cx.client.reply;
    match clamp_range(start, end, list.len() as i64) {
        None => out.array(0),
        Some((s, e)) => {
            out.array(e - s + 1);
            for v in list.items.range(s..=e) {
                out.bulk(v);
            }
        }
    }
}

/// LINDEX key index (the key is looked up before the index is parsed).
pub fn lindex(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let len = match list_for_read(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().null(),
        Ok(Some(l)) => l.len() as i64,
    };
    let Some(index) = cx.parse_int(2) else { return };
    let i = if index < 0 { len + index } else { index };
    let db = cx.client.db;
    let value = match cx.node.dbs[db].keys.get(&key) {
        Some(Entry {
            value: Value::List(l),
            ..
        }) if (0..len).contains(&i) => l.items.get(i as usize).cloned(),
        _ => None,
    };
    match value {
        Some(v) => cx.out().bulk(&v),
        None => cx.out().null(),
    }
}

/// LSET key index element
pub fn lset(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.error("ERR no such key"),
        Ok(Some(_)) => {}
    }
    let Some(index) = cx.parse_int(2) else { return };
    let value = cx.argv[3].clone();
    let ok = match list_for_write(cx, &key) {
        Ok(Some(l)) => {
            let len = l.len() as i64;
            let i = if index < 0 { len + index } else { index };
            if (0..len).contains(&i) {
                l.items[i as usize] = value;
                true
            } else {
                false
            }
        }
        _ => return,
    };
    if ok {
        cx.dirty(1);
        cx.out().ok();
    } else {
        cx.error("ERR index out of range");
    }
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(cx: &mut Ctx) {
    let after = if cx.arg_is(2, "after") {
        true
    } else if cx.arg_is(2, "before") {
        false
    } else {
        return cx.syntax_error();
    };
    let (key, pivot, value) = (cx.argv[1].clone(), cx.argv[3].clone(), cx.argv[4].clone());
    let len = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().int(0),
        Ok(Some(l)) => match l.items.iter().position(|x| *x == pivot) {
            None => return cx.out().int(-1),
            Some(i) => {
                l.items.insert(if after { i + 1 } else { i }, value);
                l.len()
            }
        },
    };
    cx.dirty(1);
    cx.out().int(len as i64);
}

/// LREM key count element: count > 0 from the head, < 0 from the tail, 0 all.
pub fn lrem(cx: &mut Ctx) {
    let Some(count) = cx.parse_int(2) else { return };
    let (key, target) = (cx.argv[1].clone(), cx.argv[3].clone());
    let removed = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().int(0),
        Ok(Some(l)) => {
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            let mut removed = 0;
            if count >= 0 {
                let mut i = 0;
                while i < l.items.len() && removed < limit {
                    if l.items[i] == target {
                        l.items.remove(i);
                        removed += 1;
                    } else {
                        i += 1;
                    }
                }
            } else {
                let mut i = l.items.len();
                while i > 0 && removed < limit {
                    i -= 1;
                    if l.items[i] == target {
                        l.items.remove(i);
                        removed += 1;
                    }
                }
            }
            removed
        }
    };
    if removed > 0 {
        cx.dirty(removed as u64);
        delete_if_empty(cx, &key);
    }
    cx.out().int(removed as i64);
}

/// LTRIM key start stop
pub fn ltrim(cx: &mut Ctx) {
    let Some(start) = cx.parse_int(2) else { return };
    let Some(end) = cx.parse_int(3) else { return };
    let key = cx.argv[1].clone();
    let removed = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().ok(),
        Ok(Some(l)) => {
            let before = l.len();
            match clamp_range(start, end, before as i64) {
                None => l.items.clear(),
                Some((s, e)) => {
                    l.items.truncate(e + 1);
                    l.items.drain(..s);
                }
            }
            before - l.len()
        }
    };
    cx.dirty(removed as u64);
    delete_if_empty(cx, &key);
    cx.out().ok();
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(cx: &mut Ctx) {
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < cx.argv.len() {
        let more = j + 1 < cx.argv.len();
        if cx.arg_is(j, "RANK") && more {
            j += 1;
            let Some(r) = cx.parse_int(j) else { return };
            if r == 0 {
                return cx.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
            }
            if r == i64::MIN {
                return cx.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
            }
            rank = r;
        } else if cx.arg_is(j, "COUNT") && more {
            j += 1;
            let Some(n) = parse_ranged(cx, j, 0, "ERR COUNT can't be negative") else {
                return;
            };
            count = n;
        } else if cx.arg_is(j, "MAXLEN") && more {
            j += 1;
            let Some(n) = parse_ranged(cx, j, 0, "ERR MAXLEN can't be negative") else {
                return;
            };
            maxlen = n;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    let from_tail = rank < 0;
    let rank = rank.unsigned_abs();
    let (key, target) = (cx.argv[1].clone(), cx.argv[2].clone());
    let list = match list_for_read(cx, &key) {
        Err(()) => return,
        Ok(None) => {
            return if count != -1 {
                cx.out().array(0)
            } else {
                cx.out().null()
            }
        }
        Ok(Some(l)) => l.clone(),
    };
    let len = list.len();
    let mut found: Vec<i64> = vec![];
    let mut matches: u64 = 0;
    for idx in 0..len {
        if maxlen != 0 && idx as i64 >= maxlen {
            break;
        }
        let pos = if from_tail { len - 1 - idx } else { idx };
        if list.items[pos] == target {
            matches += 1;
            if matches >= rank {
                found.push(pos as i64);
                if count == -1 || (count != 0 && matches - rank + 1 >= count as u64) {
                    break;
                }
            }
        }
    }
    let out = cx.out();
    if count != -1 {
        out.array(found.len());
        for p in found {
            out.int(p);
        }
    } else {
        match found.first() {
            Some(&p) => out.int(p),
            None => out.null(),
        }
    }
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(cx: &mut Ctx) {
    let Some(from) = parse_end(cx, 3) else { return };
    let Some(to) = parse_end(cx, 4) else { return };
    lmove_generic(cx, from, to);
}

/// RPOPLPUSH source destination
pub fn rpoplpush(cx: &mut Ctx) {
    lmove_generic(cx, End::Right, End::Left);
}

/// Pops from argv[1] and pushes to argv[2] (`lmoveGenericCommand`).
fn lmove_generic(cx: &mut Ctx, from: End, to: End) {
    let (src, dst) = (cx.argv[1].clone(), cx.argv[2].clone());
    match list_for_write(cx, &src) {
        Err(()) => return,
        Ok(None) => return cx.out().null(),
        Ok(Some(l)) if l.is_empty() => return cx.out().null(),
        Ok(Some(_)) => {}
    }
    let dst_exists = match list_for_write(cx, &dst) {
        Err(()) => return,
        Ok(l) => l.is_some(),
    };
    let Ok(Some(l)) = list_for_write(cx, &src) else {
        return;
    };
    let Some(value) = l.pop(from) else { return };
    if !dst_exists {
        let lru = cx.lru_now();
        cx.db().set(dst.clone(), Value::List(List::default()), lru);
    }
    if let Ok(Some(d)) = list_for_write(cx, &dst) {
        d.push(to, value.clone());
    }
    cx.signal_ready(&dst);
    cx.out().bulk(&value);
    cx.dirty(1);
    delete_if_empty(cx, &src);
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(cx: &mut Ctx) {
    mpop_generic(cx, 1, false);
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn blmpop(cx: &mut Ctx) {
    mpop_generic(cx, 2, true);
}

/// `lmpopGenericCommand`: parses numkeys, the end and COUNT, then pops a
/// range from the first non-empty list.
fn mpop_generic(cx: &mut Ctx, numkeys_idx: usize, blocking: bool) {
    let Some(numkeys) = parse_ranged(cx, numkeys_idx, 1, "ERR numkeys should be greater than 0")
    else {
        return;
    };
    let where_idx = (numkeys_idx as u64)
        .saturating_add(numkeys as u64)
        .saturating_add(1);
    if where_idx >= cx.argv.len() as u64 {
        return cx.syntax_error();
    }
    let where_idx = where_idx as usize;
    let Some(end) = parse_end(cx, where_idx) else {
        return;
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < cx.argv.len() {
        let more = j + 1 < cx.argv.len();
        if count == -1 && cx.arg_is(j, "COUNT") && more {
            j += 1;
            let Some(n) = parse_ranged(cx, j, 1, "ERR count should be greater than 0") else {
                return;
            };
            count = n;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    let count = if count == -1 { 1 } else { count as usize };
    let keys: Vec<Bytes> = cx.argv[numkeys_idx + 1..where_idx].to_vec();
    if blocking {
        let Some(deadline) = cx.parse_timeout(1) else {
            return;
        };
        blocking_pop(cx, &keys, end, Some(count), deadline);
    } else {
        for key in &keys {
            match list_for_write(cx, key) {
                Err(()) => return,
                Ok(Some(l)) if !l.is_empty() => return pop_range_with_key(cx, key, end, count),
                Ok(_) => {}
            }
        }
        cx.out().null_array();
    }
}

/// Pops up to `count` elements and replies `[key, [elements...]]`.
fn pop_range_with_key(cx: &mut Ctx, key: &Bytes, end: End, count: usize) {
    let popped: Vec<Bytes> = match list_for_write(cx, key) {
        Ok(Some(l)) => {
            let n = count.min(l.len());
            (0..n).filter_map(|_| l.pop(end)).collect()
        }
        _ => return,
    };
    let out = &mut cx.client.reply;
    out.array(2);
    out.bulk(key);
    out.array(popped.len());
    for v in &popped {
        out.bulk(v);
    }
    cx.dirty(popped.len() as u64);
    delete_if_empty(cx, key);
}

/// BLPOP key [key ...] timeout
pub fn blpop(cx: &mut Ctx) {
    bpop(cx, End::Left);
}

/// BRPOP key [key ...] timeout
pub fn brpop(cx: &mut Ctx) {
    bpop(cx, End::Right);
}

fn bpop(cx: &mut Ctx, end: End) {
    let last = cx.argv.len() - 1;
    let Some(deadline) = cx.parse_timeout(last) else {
        return;
    };
    let keys: Vec<Bytes> = cx.argv[1..last].to_vec();
    blocking_pop(cx, &keys, end, None, deadline);
}

/// `blockingPopGenericCommand`: serve from the first non-empty list, or
/// block on all of them. `count` is `Some` for BLMPOP's nested reply.
fn blocking_pop(
    cx: &mut Ctx,
    keys: &[Bytes],
    end: End,
    count: Option<usize>,
    deadline: Option<crate::node::Time>,
) {
    for key in keys {
        match list_for_write(cx, key) {
            Err(()) => return,
            Ok(Some(l)) if !l.is_empty() => {
                if let Some(n) = count {
                    return pop_range_with_key(cx, key, end, n);
                }
                let Some(v) = l.pop(end) else { return };
                let out = &mut cx.client.reply;
                out.array(2);
                out.bulk(key);
                out.bulk(&v);
                cx.dirty(1);
                delete_if_empty(cx, key);
                return;
            }
            Ok(_) => {}
        }
    }
    cx.block(keys.to_vec(), deadline, TimeoutReply::NullArray);
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
pub fn blmove(cx: &mut Ctx) {
    let Some(from) = parse_end(cx, 3) else { return };
    let Some(to) = parse_end(cx, 4) else { return };
    let Some(deadline) = cx.parse_timeout(5) else {
        return;
    };
    blmove_generic(cx, from, to, deadline);
}

/// BRPOPLPUSH source destination timeout
pub fn brpoplpush(cx: &mut Ctx) {
    let Some(deadline) = cx.parse_timeout(3) else {
        return;
    };
    blmove_generic(cx, End::Right, End::Left, deadline);
}

fn blmove_generic(cx: &mut Ctx, from: End, to: End, deadline: Option<crate::node::Time>) {
    let src = cx.argv[1].clone();
    match list_for_write(cx, &src) {
        Err(()) => {}
        Ok(Some(l)) if !l.is_empty() => lmove_generic(cx, from, to),
        Ok(_) => cx.block(vec![src], deadline, TimeoutReply::NullArray),
    }
}

#[cfg(test)]
mod tests {
    use super::clamp_range;

    #[test]
    fn ranges_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(-1, -1, 3), Some((2, 2)));
        assert_eq!(clamp_range(0, 0, 0), None);
    }
}

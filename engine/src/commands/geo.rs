//! Geo commands (Redis's `geo.c`, `geohash.c`, `geohash_helper.c`): points
//! are members of a sorted set whose score is a 52-bit interleaved geohash.
//!
//! The arithmetic follows Redis step by step (same operations in the same
//! order, the same libm functions), so scores, decoded positions, distances
//! and the search boxes are bit-for-bit Redis's. Result ordering too: a full
//! sort is stable like glibc's `qsort` (a merge sort), and a partial sort
//! (COUNT) is a port of Redis's `pqsort`, whose order among equal distances
//! differs.

use super::{zread, zwrite, AddFlags, AddOutcome, Limits, ScoreRange, ZSet, NOT_FLOAT};
use crate::command::Handler;
use crate::db::Value;
use crate::node::Ctx;
use crate::notify::{GENERIC, ZSET};
use bytes::Bytes;

const GEO_STEP_MAX: u8 = 26;
const GEO_LAT_MIN: f64 = -85.05112878;
const GEO_LAT_MAX: f64 = 85.05112878;
const GEO_LONG_MIN: f64 = -180.0;
const GEO_LONG_MAX: f64 = 180.0;
/// Earth's quadratic mean radius for WGS-84, as Redis has it.
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

// ---------------------------------------------------------------------------
// geohash.c
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct HashBits {
    bits: u64,
    step: u8,
}

impl HashBits {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Range {
    min: f64,
    max: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Area {
    longitude: Range,
    latitude: Range,
}

const WGS84_LONG: Range = Range {
    min: GEO_LONG_MIN,
    max: GEO_LONG_MAX,
};
const WGS84_LAT: Range = Range {
    min: GEO_LAT_MIN,
    max: GEO_LAT_MAX,
};

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = xlo as u64;
    let mut y = ylo as u64;
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// `geohashEncode`; None where Redis returns 0.
fn encode(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(GEO_LONG_MIN..=GEO_LONG_MAX).contains(&longitude)
        || !(GEO_LAT_MIN..=GEO_LAT_MAX).contains(&latitude)
    {
        return None;
    }
    if latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let mut lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min);
    let mut long_offset = (longitude - long_range.min) / (long_range.max - long_range.min);
    lat_offset *= (1u64 << step) as f64;
    long_offset *= (1u64 << step) as f64;
    Some(HashBits {
        bits: interleave64(lat_offset as u32, long_offset as u32),
        step,
    })
}

/// `geohashDecode`.
fn decode(long_range: Range, lat_range: Range, hash: HashBits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let step = hash.step as u32;
    let hash_sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = hash_sep as u32;
    let ilono = (hash_sep >> 32) as u32;
    let div = (1u64 << step) as f64;
    Some(Area {
        latitude: Range {
            min: lat_range.min + (ilato as f64 * 1.0 / div) * lat_scale,
            max: lat_range.min + (ilato.wrapping_add(1) as f64 * 1.0 / div) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (ilono as f64 * 1.0 / div) * long_scale,
            max: long_range.min + (ilono.wrapping_add(1) as f64 * 1.0 / div) * long_scale,
        },
    })
}

fn area_center(area: &Area) -> [f64; 2] {
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(GEO_LONG_MIN, GEO_LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(GEO_LAT_MIN, GEO_LAT_MAX);
    [lon, lat]
}

/// C's `(uint64_t)d` as GCC compiles it on x86-64 (`cvttsd2si`, with the
/// 2^63 adjustment): out-of-range values give what Redis's binary gets,
/// e.g. -1 becomes all ones, which decodes to the far corner.
fn c_double_to_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let cvtt = |v: f64| -> u64 {
        if v.is_nan() || !(-TWO63..TWO63).contains(&v) {
            1 << 63
        } else {
            v as i64 as u64
        }
    };
    if x >= TWO63 {
        cvtt(x - TWO63) ^ (1 << 63)
    } else {
        cvtt(x)
    }
}

/// Redis's `decodeGeohash`: the (longitude, latitude) a score stands for.
fn decode_score(score: f64) -> Option<[f64; 2]> {
    let hash = HashBits {
        bits: c_double_to_u64(score),
        step: GEO_STEP_MAX,
    };
    decode(WGS84_LONG, WGS84_LAT, hash).map(|a| area_center(&a))
}

fn move_x(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> (64 - hash.step as u32 * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> (64 - hash.step as u32 * 2);
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> (64 - hash.step as u32 * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> (64 - hash.step as u32 * 2);
    hash.bits = x | y;
}

#[derive(Debug, Clone, Copy, Default)]
struct Neighbors {
    north: HashBits,
    east: HashBits,
    west: HashBits,
    south: HashBits,
    north_east: HashBits,
    south_east: HashBits,
    north_west: HashBits,
    south_west: HashBits,
}

fn neighbors(hash: &HashBits) -> Neighbors {
    let moved = |dx: i8, dy: i8| {
        let mut h = *hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    };
    Neighbors {
        east: moved(1, 0),
        west: moved(-1, 0),
        south: moved(0, -1),
        north: moved(0, 1),
        north_west: moved(-1, 1),
        north_east: moved(1, 1),
        south_east: moved(1, -1),
        south_west: moved(-1, -1),
    }
}

// ---------------------------------------------------------------------------
// geohash_helper.c
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum ShapeKind {
    Circle { radius: f64 },
    Box { width: f64, height: f64 },
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    kind: ShapeKind,
    xy: [f64; 2],
    /// Meters per unit.
    conversion: f64,
}

fn estimate_steps_by_radius(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// `geohashBoundingBox`: [min lon, min lat, max lon, max lat].
fn bounding_box(shape: &Shape) -> [f64; 4] {
    let [longitude, latitude] = shape.xy;
    let (height, width) = match shape.kind {
        ShapeKind::Circle { radius } => (shape.conversion * radius, shape.conversion * radius),
        ShapeKind::Box { width, height } => (
            shape.conversion * (height / 2.0),
            shape.conversion * (width / 2.0),
        ),
    };
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
    let southern = latitude < 0.0;
    [
        if southern {
            longitude - long_delta_bottom
        } else {
            longitude - long_delta_top
        },
        latitude - lat_delta,
        if southern {
            longitude + long_delta_bottom
        } else {
            longitude + long_delta_top
        },
        latitude + lat_delta,
    ]
}

struct SearchAreas {
    hash: HashBits,
    neighbors: Neighbors,
}

/// `geohashCalculateAreasByShapeWGS84`: the center box and its 8
/// neighbours (some zeroed) covering the shape.
fn calculate_areas(shape: &Shape) -> SearchAreas {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(shape);
    let [longitude, latitude] = shape.xy;
    let mut radius_meters = match shape.kind {
        ShapeKind::Circle { radius } => radius,
        ShapeKind::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    };
    radius_meters *= shape.conversion;
    let mut steps = estimate_steps_by_radius(radius_meters, latitude);
    let enc = |steps: u8| {
        encode(WGS84_LONG, WGS84_LAT, longitude, latitude, steps).unwrap_or(HashBits {
            bits: 0,
            step: steps,
        })
    };
    let dec = |h: HashBits| decode(WGS84_LONG, WGS84_LAT, h).unwrap_or_default();
    let mut hash = enc(steps);
    let mut nb = neighbors(&hash);
    let mut area = dec(hash);
    let decrease_step = {
        let north = dec(nb.north);
        let south = dec(nb.south);
        let east = dec(nb.east);
        let west = dec(nb.west);
        north.latitude.max < max_lat
            || south.latitude.min > min_lat
            || east.longitude.max < max_lon
            || west.longitude.min > min_lon
    };
    if steps > 1 && decrease_step {
        steps -= 1;
        hash = enc(steps);
        nb = neighbors(&hash);
        area = dec(hash);
    }
    if steps >= 2 {
        let zero = HashBits::default();
        if area.latitude.min < min_lat {
            nb.south = zero;
            nb.south_west = zero;
            nb.south_east = zero;
        }
        if area.latitude.max > max_lat {
            nb.north = zero;
            nb.north_east = zero;
            nb.north_west = zero;
        }
        if area.longitude.min < min_lon {
            nb.west = zero;
            nb.south_west = zero;
            nb.north_west = zero;
        }
        if area.longitude.max > max_lon {
            nb.east = zero;
            nb.south_east = zero;
            nb.north_east = zero;
        }
    }
    SearchAreas {
        hash,
        neighbors: nb,
    }
}

fn align52(hash: HashBits) -> u64 {
    hash.bits << (52 - hash.step as u32 * 2)
}

/// Haversine great-circle distance in meters.
fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lat1r = deg_rad(lat1d);
    let lon1r = deg_rad(lon1d);
    let lat2r = deg_rad(lat2d);
    let lon2r = deg_rad(lon2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let v = ((lon2r - lon1r) / 2.0).sin();
    2.0 * EARTH_RADIUS_IN_METERS * (u * u + lat1r.cos() * lat2r.cos() * v * v).sqrt().asin()
}

/// `geohashGetDistanceIfInRectangle`.
fn distance_if_in_rectangle(
    width_m: f64,
    height_m: f64,
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
) -> Option<f64> {
    let lon_distance = distance(x2, y2, x1, y2);
    let lat_distance = distance(x2, y2, x2, y1);
    if lon_distance > width_m / 2.0 || lat_distance > height_m / 2.0 {
        return None;
    }
    Some(distance(x1, y1, x2, y2))
}

// ---------------------------------------------------------------------------
// geo.c: search
// ---------------------------------------------------------------------------

struct GeoPoint<'a> {
    longitude: f64,
    latitude: f64,
    dist: f64,
    score: f64,
    member: &'a [u8],
}

/// `geoAppendIfWithinShape`.
fn within_shape(shape: &Shape, score: f64) -> Option<(f64, [f64; 2])> {
    let xy = decode_score(score)?;
    let dist = match shape.kind {
        ShapeKind::Circle { radius } => {
            let d = distance(shape.xy[0], shape.xy[1], xy[0], xy[1]);
            if d > radius * shape.conversion {
                return None;
            }
            d
        }
        ShapeKind::Box { width, height } => distance_if_in_rectangle(
            width * shape.conversion,
            height * shape.conversion,
            shape.xy[0],
            shape.xy[1],
            xy[0],
            xy[1],
        )?,
    };
    Some((dist, xy))
}

/// `membersOfAllNeighbors`: the points of the 9 boxes that fall in the
/// shape, box by box in Redis's order. `limit` 0 is unlimited (ANY COUNT n
/// stops at n).
fn search<'a>(z: &'a ZSet, areas: &SearchAreas, shape: &Shape, limit: usize) -> Vec<GeoPoint<'a>> {
    let n = &areas.neighbors;
    let boxes = [
        areas.hash,
        n.north,
        n.south,
        n.east,
        n.west,
        n.north_east,
        n.north_west,
        n.south_east,
        n.south_west,
    ];
    let mut out = Vec::new();
    let mut last_processed = 0usize;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() {
            continue;
        }
        if last_processed != 0 && *b == boxes[last_processed] {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        let min = align52(*b);
        let max = align52(HashBits {
            bits: b.bits.wrapping_add(1),
            step: b.step,
        });
        let range = ScoreRange {
            min: min as f64,
            max: max as f64,
            minex: false,
            maxex: true,
        };
        if let Some(first) = z.first_in_range(&range) {
            for (score, member) in z.iter_from(first, false) {
                if !range.lte_max(score) {
                    break;
                }
                if let Some((dist, xy)) = within_shape(shape, score) {
                    out.push(GeoPoint {
                        longitude: xy[0],
                        latitude: xy[1],
                        dist,
                        score,
                        member,
                    });
                }
                if !out.is_empty() && limit != 0 && out.len() >= limit {
                    break;
                }
            }
        }
        last_processed = i;
    }
    out
}

/// Redis's `pqsort` (NetBSD qsort sorting only what covers `lrange..=rrange`),
/// ported over element indices so that ties come out in Redis's order.
fn pqsort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, lrange: usize, rrange: usize) {
    pqsort_rec(v, 0, v.len(), cmp, lrange, rrange);
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> i32) -> usize {
    if cmp(&v[a], &v[b]) < 0 {
        if cmp(&v[b], &v[c]) < 0 {
            b
        } else if cmp(&v[a], &v[c]) < 0 {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) > 0 {
        b
    } else if cmp(&v[a], &v[c]) < 0 {
        a
    } else {
        c
    }
}

fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

fn pqsort_rec<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: &impl Fn(&T, &T) -> i32,
    lrange: usize,
    rrange: usize,
) {
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]) > 0 {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let mut pa = a + 1;
        let mut pb = a + 1;
        // pc and pd may step just below `a + 1`; keep them as i64.
        let mut pc = (a + n - 1) as i64;
        let mut pd = (a + n - 1) as i64;
        loop {
            while pb as i64 <= pc {
                let r = cmp(&v[pb], &v[a]);
                if r > 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as i64 <= pc {
                let r = cmp(&v[pc as usize], &v[a]);
                if r < 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as i64 > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = ((pd - pc) as usize).min(pn - pd as usize - 1);
        vecswap(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 {
            let (l, rr) = (a, a + r - 1);
            if !((lrange < l && rrange < l) || (lrange > rr && rrange > rr)) {
                pqsort_rec(v, a, r, cmp, lrange, rrange);
            }
        }
        let r = (pd - pc) as usize;
        if r > 1 {
            a = pn - r;
            n = r;
            let (l, rr) = (a, a + r - 1);
            if !((lrange < l && rrange < l) || (lrange > rr && rrange > rr)) {
                continue;
            }
        }
        return;
    }
}

// ---------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------

/// `extractLongLatOrReply`.
fn parse_lonlat(cx: &mut Ctx, i: usize) -> Option<[f64; 2]> {
    let lon = super::parse_score(cx, i, NOT_FLOAT)?;
    let lat = super::parse_score(cx, i + 1, NOT_FLOAT)?;
    if !(GEO_LONG_MIN..=GEO_LONG_MAX).contains(&lon) || !(GEO_LAT_MIN..=GEO_LAT_MAX).contains(&lat)
    {
        let msg = format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}");
        cx.error(&msg);
        return None;
    }
    Some([lon, lat])
}

/// `extractUnitOrReply`: meters per unit.
fn parse_unit(cx: &mut Ctx, i: usize) -> Option<f64> {
    let u = &cx.argv[i];
    let v = if u.eq_ignore_ascii_case(b"m") {
        1.0
    } else if u.eq_ignore_ascii_case(b"km") {
        1000.0
    } else if u.eq_ignore_ascii_case(b"ft") {
        0.3048
    } else if u.eq_ignore_ascii_case(b"mi") {
        1609.34
    } else {
        cx.error("ERR unsupported unit provided. please use M, KM, FT, MI");
        return None;
    };
    Some(v)
}

/// `extractDistanceOrReply`: (radius, conversion).
fn parse_distance(cx: &mut Ctx, i: usize) -> Option<(f64, f64)> {
    let d = super::parse_score(cx, i, "ERR need numeric radius")?;
    if d < 0.0 {
        cx.error("ERR radius cannot be negative");
        return None;
    }
    let conv = parse_unit(cx, i + 1)?;
    Some((d, conv))
}

/// `extractBoxOrReply`: (width, height, conversion).
fn parse_box(cx: &mut Ctx, i: usize) -> Option<(f64, f64, f64)> {
    let w = super::parse_score(cx, i, "ERR need numeric width")?;
    let h = super::parse_score(cx, i + 1, "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        cx.error("ERR height or width cannot be negative");
        return None;
    }
    let conv = parse_unit(cx, i + 2)?;
    Some((w, h, conv))
}

/// The zset at `key`, already looked up (no statistics, no expiry).
fn peek<'a>(node: &'a crate::node::Node, db: usize, key: &[u8]) -> Option<&'a ZSet> {
    match node.dbs[db].keys.get(key) {
        Some(crate::db::Entry {
            value: Value::ZSet(z),
            ..
        }) => Some(z),
        _ => None,
    }
}

/// The position of `member` in `z` (`longLatFromMember`).
fn member_pos(z: &ZSet, member: &[u8]) -> Option<[f64; 2]> {
    decode_score(z.score(member)?)
}

/// `addReplyDoubleDistance`: "%.4f" as a bulk string.
fn reply_distance(out: &mut crate::resp::ReplyBuf, d: f64) {
    out.bulk(format!("{d:.4}").as_bytes());
}

/// `addReplyHumanLongDouble`: "%.17Lf" with trailing zeros removed; a bulk
/// string in RESP2, a double in RESP3.
fn human_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

fn reply_human(out: &mut crate::resp::ReplyBuf, d: f64) {
    let s = human_double(d);
    if out.resp3 {
        out.buf.extend_from_slice(b",");
        out.buf.extend_from_slice(s.as_bytes());
        out.buf.extend_from_slice(b"\r\n");
    } else {
        out.bulk(s.as_bytes());
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]
pub fn geoadd(cx: &mut Ctx) {
    let argv = cx.argv;
    let mut f = AddFlags::default();
    let mut ch = false;
    let mut idx = 2;
    while idx < argv.len() {
        let a = &argv[idx];
        if a.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if a.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if a.eq_ignore_ascii_case(b"ch") {
            ch = true;
        } else {
            break;
        }
        idx += 1;
    }
    if !(argv.len() - idx).is_multiple_of(3) || (f.xx && f.nx) {
        return cx.syntax_error();
    }
    let elements = (argv.len() - idx) / 3;
    let mut pairs: Vec<(f64, &[u8])> = Vec::with_capacity(elements);
    for i in 0..elements {
        let at = idx + i * 3;
        let Some([lon, lat]) = parse_lonlat(cx, at) else {
            return;
        };
        let hash = encode(WGS84_LONG, WGS84_LAT, lon, lat, GEO_STEP_MAX).unwrap_or_default();
        pairs.push((align52(hash) as f64, &argv[at + 2]));
    }
    if pairs.is_empty() {
        return cx.syntax_error();
    }
    let key = &argv[1];
    let lim = Limits::of(cx.node);
    let db = cx.client.db;
    let exists = match zwrite(cx.node, db, key) {
        Err(()) => return cx.wrongtype(),
        Ok(z) => z.is_some(),
    };
    let (mut added, mut updated) = (0i64, 0i64);
    if exists || !f.xx {
        if !exists {
            let z = ZSet::new_for(pairs[0].1.len(), lim);
            let lru = cx.lru_now();
            cx.db().set(key.clone(), Value::ZSet(z), lru);
        }
        let Ok(Some(z)) = zwrite(cx.node, db, key) else {
            return;
        };
        for (score, m) in &pairs {
            match z.add(*score, m, f, lim) {
                AddOutcome::Added(_) => added += 1,
                AddOutcome::Updated(_) => updated += 1,
                _ => {}
            }
        }
        if added > 0 {
            cx.signal_ready(key);
        }
    }
    cx.dirty((added + updated) as u64);
    cx.out().int(if ch { added + updated } else { added });
    // GEOADD runs as ZADD in Redis: its event is "zadd".
    if added + updated > 0 {
        cx.notify(ZSET, "zadd", key);
    }
}

/// GEODIST key member1 member2 [unit]
pub fn geodist(cx: &mut Ctx) {
    let argv = cx.argv;
    let mut to_meter = 1.0;
    if argv.len() == 5 {
        let Some(u) = parse_unit(cx, 4) else { return };
        to_meter = u;
    } else if argv.len() > 5 {
        return cx.syntax_error();
    }
    let db = cx.client.db;
    match zread(cx.node, db, &argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(None) => cx.client.reply.null(),
        Ok(Some(z)) => {
            let (Some(s1), Some(s2)) = (z.score(&argv[2]), z.score(&argv[3])) else {
                return cx.client.reply.null();
            };
            match (decode_score(s1), decode_score(s2)) {
                (Some(a), Some(b)) => reply_distance(
                    &mut cx.client.reply,
                    distance(a[0], a[1], b[0], b[1]) / to_meter,
                ),
                _ => cx.client.reply.null(),
            }
        }
    }
}

/// GEOHASH key member [member ...]
pub fn geohash(cx: &mut Ctx) {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let argv = cx.argv;
    let db = cx.client.db;
    let z = match zread(cx.node, db, &argv[1]) {
        Err(()) => return cx.wrongtype(),
        Ok(z) => z,
    };
    let out = &mut cx.client.reply;
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        let Some(xy) = z.as_ref().and_then(|z| z.score(m)).and_then(decode_score) else {
            out.null();
            continue;
        };
        let long = Range {
            min: -180.0,
            max: 180.0,
        };
        let lat = Range {
            min: -90.0,
            max: 90.0,
        };
        let hash = encode(long, lat, xy[0], xy[1], 26).unwrap_or_default();
        let mut buf = [0u8; 11];
        for (i, c) in buf.iter_mut().enumerate() {
            let idx = if i == 10 {
                0
            } else {
                (hash.bits >> (52 - (i + 1) * 5)) & 0x1f
            };
            *c = ALPHABET[idx as usize];
        }
        out.bulk(&buf);
    }
}

/// GEOPOS key member [member ...]
pub fn geopos(cx: &mut Ctx) {
    let argv = cx.argv;
    let db = cx.client.db;
    let z = match zread(cx.node, db, &argv[1]) {
        Err(()) => return cx.wrongtype(),
        Ok(z) => z,
    };
    let out = &mut cx.client.reply;
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        match z.as_ref().and_then(|z| member_pos(z, m)) {
            None => out.null_array(),
            Some(xy) => {
                out.array(2);
                reply_human(out, xy[0]);
                reply_human(out, xy[1]);
            }
        }
    }
}

const RADIUS_COORDS: u32 = 1;
const RADIUS_MEMBER: u32 = 2;
const RADIUS_NOSTORE: u32 = 4;
const GEOSEARCH: u32 = 8;
const GEOSEARCHSTORE: u32 = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// Redis's `georadiusGeneric`: GEORADIUS[BYMEMBER][_RO], GEOSEARCH[STORE].
fn georadius_generic(cx: &mut Ctx, src_idx: usize, flags: u32) {
    let argv = cx.argv;
    let db = cx.client.db;
    let src = &argv[src_idx];
    let exists = match zread(cx.node, db, src) {
        Err(()) => return cx.wrongtype(),
        Ok(z) => z.is_some(),
    };
    let mut storekey: Option<&Bytes> = None;
    let mut storedist = false;
    let mut xy = [0.0f64; 2];
    let mut kind = ShapeKind::Circle { radius: 0.0 };
    let mut conversion = 0.0;
    let base_args;
    if flags & RADIUS_COORDS != 0 {
        base_args = 6;
        let Some(p) = parse_lonlat(cx, 2) else { return };
        xy = p;
        let Some((r, c)) = parse_distance(cx, 4) else {
            return;
        };
        kind = ShapeKind::Circle { radius: r };
        conversion = c;
    } else if flags & RADIUS_MEMBER != 0 && !exists {
        base_args = 5;
    } else if flags & RADIUS_MEMBER != 0 {
        base_args = 5;
        let pos = peek(cx.node, db, src).and_then(|z| member_pos(z, &argv[2]));
        let Some(p) = pos else {
            return cx.error("ERR could not decode requested zset member");
        };
        xy = p;
        let Some((r, c)) = parse_distance(cx, 3) else {
            return;
        };
        kind = ShapeKind::Circle { radius: r };
        conversion = c;
    } else {
        // GEOSEARCH / GEOSEARCHSTORE
        if flags & GEOSEARCHSTORE != 0 {
            base_args = 3;
            storekey = Some(&argv[1]);
        } else {
            base_args = 2;
        }
    }
    let (mut withdist, mut withhash, mut withcoords) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let remaining = argv.len().saturating_sub(base_args);
    let mut i = 0;
    while i < remaining {
        let at = base_args + i;
        let is = |name: &str| argv[at].eq_ignore_ascii_case(name.as_bytes());
        let search = flags & GEOSEARCH != 0;
        let nostore = flags & RADIUS_NOSTORE != 0;
        if is("withdist") {
            withdist = true;
        } else if is("withhash") {
            withhash = true;
        } else if is("withcoord") {
            withcoords = true;
        } else if is("any") {
            any = true;
        } else if is("asc") {
            sort = Sort::Asc;
        } else if is("desc") {
            sort = Sort::Desc;
        } else if is("count") && i + 1 < remaining {
            let Some(c) = cx.parse_int(at + 1) else {
                return;
            };
            if c <= 0 {
                return cx.error("ERR COUNT must be > 0");
            }
            count = c;
            i += 1;
        } else if is("store") && i + 1 < remaining && !nostore && !search {
            storekey = Some(&argv[at + 1]);
            storedist = false;
            i += 1;
        } else if is("storedist") && i + 1 < remaining && !nostore && !search {
            storekey = Some(&argv[at + 1]);
            storedist = true;
            i += 1;
        } else if is("storedist") && search && flags & GEOSEARCHSTORE != 0 {
            storedist = true;
        } else if is("frommember") && i + 1 < remaining && search && !fromloc {
            if exists {
                let pos = peek(cx.node, db, src).and_then(|z| member_pos(z, &argv[at + 1]));
                let Some(p) = pos else {
                    return cx.error("ERR could not decode requested zset member");
                };
                xy = p;
            }
            frommember = true;
            i += 1;
        } else if is("fromlonlat") && i + 2 < remaining && search && !frommember {
            let Some(p) = parse_lonlat(cx, at + 1) else {
                return;
            };
            xy = p;
            fromloc = true;
            i += 2;
        } else if is("byradius") && i + 2 < remaining && search && !bybox {
            let Some((r, c)) = parse_distance(cx, at + 1) else {
                return;
            };
            kind = ShapeKind::Circle { radius: r };
            conversion = c;
            byradius = true;
            i += 2;
        } else if is("bybox") && i + 3 < remaining && search && !byradius {
            let Some((w, h, c)) = parse_box(cx, at + 1) else {
                return;
            };
            kind = ShapeKind::Box {
                width: w,
                height: h,
            };
            conversion = c;
            bybox = true;
            i += 3;
        } else {
            return cx.syntax_error();
        }
        i += 1;
    }
    if storekey.is_some() && (withdist || withhash || withcoords) {
        let which = if flags & GEOSEARCHSTORE != 0 {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        let msg =
            format!("ERR {which} is not compatible with WITHDIST, WITHHASH and WITHCOORD options");
        return cx.error(&msg);
    }
    if flags & GEOSEARCH != 0 && !(frommember || fromloc) {
        let mut msg = b"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for ".to_vec();
        msg.extend_from_slice(&argv[0]);
        cx.node.count_error("ERR");
        cx.client.reply.error_bytes(&msg);
        return;
    }
    if flags & GEOSEARCH != 0 && !(byradius || bybox) {
        let mut msg = b"ERR exactly one of BYRADIUS and BYBOX can be specified for ".to_vec();
        msg.extend_from_slice(&argv[0]);
        cx.node.count_error("ERR");
        cx.client.reply.error_bytes(&msg);
        return;
    }
    if any && count == 0 {
        return cx.error("ERR the ANY argument requires COUNT argument");
    }
    if !exists {
        match storekey {
            Some(dst) => {
                if cx.delete_key(dst) {
                    cx.dirty(1);
                    cx.notify(GENERIC, "del", dst);
                }
                cx.out().int(0);
            }
            None => cx.out().array(0),
        }
        return;
    }
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape {
        kind,
        xy,
        conversion,
    };
    let areas = calculate_areas(&shape);
    let lim = Limits::of(cx.node);
    let Some(z) = peek(cx.node, db, src) else {
        return;
    };
    let limit = if any { count as usize } else { 0 };
    let mut points = search(z, &areas, &shape, limit);
    if points.is_empty() && storekey.is_none() {
        return cx.client.reply.array(0);
    }
    let result_length = points.len();
    let returned = if count == 0 || (result_length as i64) < count {
        result_length
    } else {
        count as usize
    };
    if sort != Sort::None {
        let asc = |a: &GeoPoint, b: &GeoPoint| -> i32 {
            if a.dist > b.dist {
                1
            } else if a.dist == b.dist {
                0
            } else {
                -1
            }
        };
        let cmp = |a: &GeoPoint, b: &GeoPoint| -> i32 {
            if sort == Sort::Asc {
                asc(a, b)
            } else {
                -asc(a, b)
            }
        };
        if returned == result_length {
            // glibc's qsort is a stable merge sort.
            points.sort_by(|a, b| cmp(a, b).cmp(&0));
        } else {
            pqsort(&mut points, &cmp, 0, returned - 1);
        }
    }
    for p in points.iter_mut() {
        p.dist /= conversion;
    }
    points.truncate(returned);
    match storekey {
        None => {
            let out = &mut cx.client.reply;
            let option_length = withdist as usize + withcoords as usize + withhash as usize;
            out.array(returned);
            for p in &points {
                if option_length > 0 {
                    out.array(option_length + 1);
                }
                out.bulk(p.member);
                if withdist {
                    reply_distance(out, p.dist);
                }
                if withhash {
                    out.int(p.score as i64);
                }
                if withcoords {
                    out.array(2);
                    reply_human(out, p.longitude);
                    reply_human(out, p.latitude);
                }
            }
        }
        Some(dst) => {
            let mut items: Vec<(f64, &[u8])> = points
                .iter()
                .map(|p| (if storedist { p.dist } else { p.score }, p.member))
                .collect();
            items.sort_by(super::cmp_items);
            items.dedup_by(|a, b| a.1 == b.1);
            let stored = if items.is_empty() {
                None
            } else {
                Some(ZSet::from_sorted(&items, lim))
            };
            match stored {
                Some(zs) => {
                    let lru = cx.lru_now();
                    let _ = cx.lookup_write(dst);
                    cx.db().set(dst.clone(), Value::ZSet(zs), lru);
                    cx.signal_ready(dst);
                    cx.dirty(returned as u64);
                    let event = if flags & GEOSEARCH != 0 {
                        "geosearchstore"
                    } else {
                        "georadiusstore"
                    };
                    cx.notify(ZSET, event, dst);
                }
                None => {
                    if cx.delete_key(dst) {
                        cx.dirty(1);
                        cx.notify(GENERIC, "del", dst);
                    }
                }
            }
            cx.out().int(returned as i64);
        }
    }
}

pub fn georadius(cx: &mut Ctx) {
    georadius_generic(cx, 1, RADIUS_COORDS);
}

pub fn georadiusbymember(cx: &mut Ctx) {
    georadius_generic(cx, 1, RADIUS_MEMBER);
}

pub fn georadius_ro(cx: &mut Ctx) {
    georadius_generic(cx, 1, RADIUS_COORDS | RADIUS_NOSTORE);
}

pub fn georadiusbymember_ro(cx: &mut Ctx) {
    georadius_generic(cx, 1, RADIUS_MEMBER | RADIUS_NOSTORE);
}

pub fn geosearch(cx: &mut Ctx) {
    georadius_generic(cx, 1, GEOSEARCH);
}

pub fn geosearchstore(cx: &mut Ctx) {
    georadius_generic(cx, 2, GEOSEARCH | GEOSEARCHSTORE);
}

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "geoadd" => geoadd,
        "geodist" => geodist,
        "geohash" => geohash,
        "geopos" => geopos,
        "georadius" => georadius,
        "georadius_ro" => georadius_ro,
        "georadiusbymember" => georadiusbymember,
        "georadiusbymember_ro" => georadiusbymember_ro,
        "geosearch" => geosearch,
        "geosearchstore" => geosearchstore,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for (x, y) in [(0u32, 0u32), (1, 2), (0x3ffffff, 0x1234567), (u32::MAX, 7)] {
            let i = interleave64(x, y);
            let d = deinterleave64(i);
            assert_eq!((d as u32, (d >> 32) as u32), (x, y));
        }
    }

    #[test]
    fn scores_match_redis() {
        // GEOADD g 13.361389 38.115556 a -> 3479099956230698 in Redis.
        let h =
            encode(WGS84_LONG, WGS84_LAT, 13.361389, 38.115556, GEO_STEP_MAX).unwrap_or_default();
        assert_eq!(align52(h), 3479099956230698);
        let xy = decode_score(3479099956230698.0).unwrap_or_default();
        assert_eq!(human_double(xy[0]), "13.36138933897018433");
        assert_eq!(human_double(xy[1]), "38.11555639549629859");
    }

    #[test]
    fn pqsort_sorts_the_requested_prefix() {
        let mut v: Vec<i32> = (0..200).map(|i| (i * 7919) % 101).collect();
        let cmp = |a: &i32, b: &i32| (a > b) as i32 - (a < b) as i32;
        pqsort(&mut v, &cmp, 0, 9);
        let mut all: Vec<i32> = (0..200).map(|i| (i * 7919) % 101).collect();
        all.sort();
        assert_eq!(&v[..10], &all[..10]);
    }
}

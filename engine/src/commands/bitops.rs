//! Bitmap commands (Redis's `bitops.c`): SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP, BITFIELD, BITFIELD_RO.

use crate::node::Ctx;

pub fn setbit(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}
pub fn getbit(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}
pub fn bitcount(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}
pub fn bitpos(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}
pub fn bitop(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}
pub fn bitfield(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}
pub fn bitfield_ro(cx: &mut Ctx) {
    let _ = cx;
    unimplemented!()
}

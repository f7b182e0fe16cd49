//! Temporary: replaced by the full Redis number module.
pub fn fmt_double_17g(d: f64) -> String {
    format!("{d}")
}
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}
#[derive(Clone, Copy)]
pub struct LongDouble(f64);
impl LongDouble {
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        parse_f64(s).map(LongDouble)
    }
    pub fn from_i64(v: i64) -> LongDouble {
        LongDouble(v as f64)
    }
    pub fn add(self, o: LongDouble) -> LongDouble {
        LongDouble(self.0 + o.0)
    }
    pub fn is_finite(&self) -> bool {
        self.0.is_finite()
    }
    pub fn to_redis_string(&self) -> String {
        format!("{}", self.0)
    }
}

//! The RDB format (version 10, as Redis 7.0 writes it) and the DUMP payload.
//!
//! - [`RdbWriter`] serialises a dataset incrementally: the caller writes a
//!   header, functions, databases and keys, drains bytes with
//!   [`RdbWriter::take_chunk`] whenever it likes, and ends with
//!   [`RdbWriter::finish`]. The CRC-64 runs over every byte written.
//! - [`load`] parses a whole file (versions 1 to 10) and hands each item to a
//!   sink in file order.
//! - [`dump_payload`] / [`restore_payload`] are DUMP's and RESTORE's
//!   serialisation: one value, the RDB version and a CRC-64.
//!
//! Values are written with the encodings Redis 7.0 uses for the same
//! representation, so DUMP output is byte-identical to Redis's for the same
//! value and encoding (hash tables excepted: their order is the table's, as
//! in Redis, where it depends on a per-process seed). Loaded values get the
//! encoding Redis gives them after loading (thresholds from the `Config`).
//!
//! The reader treats its input as hostile: lengths are checked against the
//! bytes that remain before anything is allocated, every compact encoding
//! (listpack, ziplist, zipmap, intset) is validated in full before use, and
//! every error is an [`RdbError`], never a panic.
//!
//! Files: `write.rs` (writer, value encodings), `read.rs` (parser),
//! `listpack.rs`, `ziplist.rs` (ziplist and zipmap), `intset.rs`, `lzf.rs`.

mod intset;
pub(crate) mod listpack;
mod lzf;
mod read;
mod write;
mod ziplist;

pub use read::{load, load_with_rng};
pub use write::{AccessInfo, RdbWriter};

use crate::config::Config;
use crate::db::Value;
use rand_core::RngCore;

/// The RDB version written (Redis 7.0's).
pub const RDB_VERSION: u32 = 10;

// Value types (the byte before a key).
pub const RDB_TYPE_STRING: u8 = 0;
pub const RDB_TYPE_LIST: u8 = 1;
pub const RDB_TYPE_SET: u8 = 2;
pub const RDB_TYPE_ZSET: u8 = 3;
pub const RDB_TYPE_HASH: u8 = 4;
pub const RDB_TYPE_ZSET_2: u8 = 5;
pub const RDB_TYPE_MODULE: u8 = 6;
pub const RDB_TYPE_MODULE_2: u8 = 7;
pub const RDB_TYPE_HASH_ZIPMAP: u8 = 9;
pub const RDB_TYPE_LIST_ZIPLIST: u8 = 10;
pub const RDB_TYPE_SET_INTSET: u8 = 11;
pub const RDB_TYPE_ZSET_ZIPLIST: u8 = 12;
pub const RDB_TYPE_HASH_ZIPLIST: u8 = 13;
pub const RDB_TYPE_LIST_QUICKLIST: u8 = 14;
pub const RDB_TYPE_STREAM_LISTPACKS: u8 = 15;
pub const RDB_TYPE_HASH_LISTPACK: u8 = 16;
pub const RDB_TYPE_ZSET_LISTPACK: u8 = 17;
pub const RDB_TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const RDB_TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// Redis 7.2's stream encoding (type 19 plus each consumer's active
/// time): read, never written. Redis 7.0 writes type 19.
pub const RDB_TYPE_STREAM_LISTPACKS_3: u8 = 21;

// Opcodes (bytes that are not value types).
pub const RDB_OPCODE_FUNCTION2: u8 = 245;
/// The pre-release (7.0 RC) function format, refused as Redis refuses it.
pub const RDB_OPCODE_FUNCTION: u8 = 246;
pub const RDB_OPCODE_MODULE_AUX: u8 = 247;
pub const RDB_OPCODE_IDLE: u8 = 248;
pub const RDB_OPCODE_FREQ: u8 = 249;
pub const RDB_OPCODE_AUX: u8 = 250;
pub const RDB_OPCODE_RESIZEDB: u8 = 251;
pub const RDB_OPCODE_EXPIRETIME_MS: u8 = 252;
pub const RDB_OPCODE_EXPIRETIME: u8 = 253;
pub const RDB_OPCODE_SELECTDB: u8 = 254;
pub const RDB_OPCODE_EOF: u8 = 255;

/// Quicklist node containers (`QUICKLIST_NODE_CONTAINER_*`).
const QUICKLIST_NODE_CONTAINER_PLAIN: u64 = 1;
const QUICKLIST_NODE_CONTAINER_PACKED: u64 = 2;

/// A failed load, with a human-readable reason (Redis's wording where it
/// has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbError(pub String);

impl std::fmt::Display for RdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RdbError {}

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, RdbError> {
    Err(RdbError(msg.into()))
}

/// The value of an AUX field in the header.
#[derive(Debug, Clone, Copy)]
pub enum AuxValue<'a> {
    Str(&'a [u8]),
    /// Written as its decimal string (integer-encoded when short), as
    /// Redis's `rdbSaveAuxFieldStrInt`.
    Int(i64),
}

/// One thing found in an RDB file, in file order.
#[derive(Debug)]
pub enum Loaded {
    /// A header field (`redis-ver`, `ctime`...); integer-encoded values are
    /// given as their decimal string.
    Aux { key: Vec<u8>, value: Vec<u8> },
    /// A function library's source (FUNCTION LOAD's argument).
    Function { code: Vec<u8> },
    /// A key. `expire_ms` is absolute unix milliseconds; the loader has no
    /// clock, so keys already expired are passed on and the caller decides
    /// (a master skips them). `idle_s` / `freq` are the LRU idle time and
    /// LFU counter when the file has them (saved under an LRU / LFU policy).
    Key {
        db: usize,
        key: bytes::Bytes,
        value: Value,
        expire_ms: Option<i64>,
        idle_s: Option<u64>,
        freq: Option<u8>,
    },
}

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// Encoding thresholds for the loaded values, and `databases`.
    pub config: &'a Config,
    /// `rdbchecksum`: verify the trailing CRC-64 (a zero CRC means "saved
    /// without checksum" and is accepted, as in Redis).
    pub check_checksum: bool,
    /// `sanitize-dump-payload`. The loader always validates every encoding
    /// in full (duplicates, order, lengths) because the engine's own
    /// structures rely on it, so this changes nothing today; it is kept so
    /// the caller states its policy.
    pub sanitize: bool,
}

/// Redis's CRC-64 (Jones polynomial, reflected, as `crc64.c`), computed
/// incrementally.
#[derive(Clone)]
pub struct Crc64 {
    digest: crc::Digest<'static, u64, crc::Table<16>>,
}

static CRC64_REDIS: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

impl Default for Crc64 {
    fn default() -> Crc64 {
        Crc64::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

impl Crc64 {
    pub fn new() -> Crc64 {
        Crc64 {
            digest: CRC64_REDIS.digest(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The CRC of everything so far (the digest goes on).
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }

    /// One-shot CRC of `bytes`.
    pub fn checksum(bytes: &[u8]) -> u64 {
        CRC64_REDIS.checksum(bytes)
    }
}

/// Writing parameters a value's serialisation depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteOpts {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it
    /// saves at least 4 bytes.
    pub compress: bool,
    /// `list-max-listpack-size`: how quicklist nodes are filled.
    pub list_fill: i64,
    /// `list-compress-depth`: nodes this far from both ends are kept
    /// LZF-compressed by Redis, and saved so.
    pub list_compress_depth: i64,
}

impl WriteOpts {
    fn from_config(config: &Config, compress: bool) -> WriteOpts {
        WriteOpts {
            compress,
            list_fill: config.list_max_listpack_size,
            list_compress_depth: config.list_compress_depth,
        }
    }
}

/// `rdbcompression` as the config states it. Config does not carry the
/// parameter yet; Redis's default is on.
fn rdb_compression(_config: &Config) -> bool {
    true
}

/// DUMP's payload: the value's type and serialisation, the RDB version (2
/// bytes LE) and the CRC-64 of all that (8 bytes LE), as Redis 7.0's
/// `createDumpPayload`.
pub fn dump_payload(value: &Value, config: &Config) -> Vec<u8> {
    let opts = WriteOpts::from_config(config, rdb_compression(config));
    let mut out = Vec::new();
    let mut lzf = lzf::Compressor::default();
    write::write_object_type(&mut out, value);
    write::write_object(&mut out, value, &opts, &mut lzf);
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = Crc64::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Redis's `verifyDumpPayload`: at least the 10-byte footer, a version this
/// server can read, and a matching CRC-64.
pub fn verify_payload(payload: &[u8]) -> Result<(), RdbError> {
    const MSG: &str = "DUMP payload version or checksum are wrong";
    if payload.len() < 10 {
        return err(MSG);
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if u32::from(version) > RDB_VERSION {
        return err(MSG);
    }
    let crc = Crc64::checksum(&payload[..payload.len() - 8]);
    if crc.to_le_bytes() != footer[2..10] {
        return err(MSG);
    }
    Ok(())
}

/// RESTORE's decoding: [`verify_payload`], then the value, which must use
/// the whole payload. Errors other than the footer's read "Bad data format"
/// at the command level. Hash tables get a fixed seed; the RESTORE command
/// uses [`restore_payload_with_rng`] with the node's RNG.
pub fn restore_payload(payload: &[u8], opts: &LoadOptions) -> Result<Value, RdbError> {
    let mut rng = read::fixed_rng();
    restore_payload_with_rng(payload, opts, &mut rng)
}

/// [`restore_payload`], seeding hash tables from `rng`.
pub fn restore_payload_with_rng(
    payload: &[u8],
    opts: &LoadOptions,
    rng: &mut impl RngCore,
) -> Result<Value, RdbError> {
    verify_payload(payload)?;
    read::read_payload_value(&payload[..payload.len() - 10], opts, rng)
}

/// FUNCTION DUMP's payload (Redis's `functionDumpCommand`): each
/// library as `RDB_OPCODE_FUNCTION2` and its code (as `rdbSaveFunctions`
/// writes them), the RDB version (2 bytes LE) and the CRC-64 (8 bytes LE).
pub fn function_dump_payload(codes: &[bytes::Bytes], compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lzf = lzf::Compressor::default();
    for code in codes {
        out.push(RDB_OPCODE_FUNCTION2);
        write::write_string(&mut out, code, compress, &mut lzf);
    }
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = Crc64::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// FUNCTION RESTORE's decoding: the payload's footer checked as
/// [`verify_payload`] does, then the libraries' codes in payload order.
/// Errors are Redis's texts without the `ERR ` prefix.
pub fn function_restore_codes(payload: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if verify_payload(payload).is_err() {
        return Err("payload version or checksum are wrong");
    }
    read::function_records(payload)
}

#[cfg(test)]
mod tests;

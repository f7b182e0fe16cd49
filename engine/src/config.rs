//! Server configuration: Redis's parameter names, defaults and value syntax.
//!
//! One table ([`PARAMS`]) serves the config file, command-line arguments,
//! `CONFIG GET` and `CONFIG SET`. Values that only the driver uses (port,
//! bind) live here too, so the shim reads its settings from the same place.

/// Typed configuration. Defaults are Redis 7.0's.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: i64,
    pub bind: Vec<String>,
    pub requirepass: Option<Vec<u8>>,
    pub databases: usize,
    pub hz: i64,
    pub maxclients: i64,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: i64,
    pub timeout: i64,
    pub tcp_keepalive: i64,
    pub active_expire_effort: i64,
    pub maxmemory: i64,
    pub maxmemory_policy: String,
    /// `notify-keyspace-events` as class bits (notify.rs); 0 is off.
    pub notify_keyspace_events: u32,
    /// Most keys the client-tracking table remembers (0: no limit).
    pub tracking_table_max_keys: i64,
    pub save: String,
    pub appendonly: bool,
    pub dir: String,
    pub dbfilename: String,
    pub loglevel: String,
    pub logfile: String,
    pub daemonize: bool,
    pub protected_mode: bool,
    pub tcp_backlog: i64,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub lfu_log_factor: i64,
    pub lfu_decay_time: i64,
    pub maxmemory_samples: i64,
    pub unixsocket: String,
    /// ACL: the users file (`aclfile`), `user` lines of the config file
    /// (each split in words, name first), ACL LOG length, and whether new
    /// users get all channels (`acl-pubsub-default allchannels`).
    pub aclfile: String,
    /// Unix socket permissions, octal text as in redis.conf ("700"); "0"
    /// leaves the umask's.
    pub unixsocketperm: String,
    /// TLS (performed by the shim; the engine sees plaintext).
    pub tls_port: i64,
    pub tls_cert_file: String,
    pub tls_key_file: String,
    pub tls_ca_cert_file: String,
    pub tls_ca_cert_dir: String,
    pub tls_auth_clients: String,
    /// `off` or `cn`: authenticate a TLS client as the ACL user its
    /// certificate's subject CN names (Redis 8.6's option; 7.0 has none).
    pub tls_auth_clients_user: String,
    pub tls_protocols: String,
    pub tls_ciphers: String,
    pub tls_ciphersuites: String,
    pub tls_prefer_server_ciphers: bool,
    /// Reserved until replication and cluster exist.
    pub tls_replication: bool,
    pub tls_cluster: bool,
    pub acl_users: Vec<Vec<Vec<u8>>>,
    pub acllog_max_len: i64,
    pub acl_pubsub_default: String,
    pub pidfile: String,
    pub enable_debug_command: String,
    /// Eviction and observability (issue 10).
    pub maxmemory_eviction_tenacity: i64,
    /// Kept for CONFIG GET/SET: "0", a byte count or a percentage of
    /// maxmemory. Client eviction itself is not implemented.
    pub maxmemory_clients: String,
    /// `client-output-buffer-limit`, in CONFIG GET's form (see
    /// [`crate::limits`]).
    pub client_output_buffer_limit: String,
    /// `rename-command old new` lines: (old, new) in lowercase; an empty
    /// new name disables the command.
    pub rename_commands: Vec<(String, String)>,
    /// Reserved for replication: the credentials a replica would use.
    pub masterauth: String,
    pub masteruser: String,
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub replica_lazy_flush: bool,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: i64,
    pub latency_monitor_threshold: i64,
    pub latency_tracking: bool,
    pub latency_tracking_info_percentiles: String,
    /// Compact-encoding thresholds of the collection types.
    pub list_max_listpack_size: i64,
    pub list_compress_depth: i64,
    pub hash_max_listpack_entries: i64,
    pub hash_max_listpack_value: i64,
    pub set_max_intset_entries: i64,
    pub zset_max_listpack_entries: i64,
    pub zset_max_listpack_value: i64,
    /// A stream node (one listpack) is closed when it reaches this many
    /// bytes or this many entries, live and deleted (0: no limit).
    pub stream_node_max_bytes: i64,
    pub stream_node_max_entries: i64,
    /// Sparse HyperLogLogs are promoted to dense beyond this size.
    pub hll_sparse_max_bytes: i64,
    /// Persistence (RDB and AOF).
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub sanitize_dump_payload: String,
    pub appendfilename: String,
    pub appenddirname: String,
    pub appendfsync: String,
    pub aof_load_truncated: bool,
    pub aof_use_rdb_preamble: bool,
    pub aof_timestamp_enabled: bool,
    pub auto_aof_rewrite_percentage: i64,
    pub auto_aof_rewrite_min_size: i64,
    pub no_appendfsync_on_rewrite: bool,
    /// Milliseconds a script may run before other clients get `-BUSY` and
    /// SCRIPT KILL is accepted (alias `lua-time-limit`).
    pub busy_reply_threshold: i64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            requirepass: None,
            databases: 16,
            hz: 10,
            maxclients: 10000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            timeout: 0,
            tcp_keepalive: 300,
            active_expire_effort: 1,
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            notify_keyspace_events: 0,
            tracking_table_max_keys: 1_000_000,
            save: "3600 1 300 100 60 10000".into(),
            appendonly: false,
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            loglevel: "notice".into(),
            logfile: "".into(),
            daemonize: false,
            protected_mode: true,
            tcp_backlog: 511,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            maxmemory_samples: 5,
            unixsocket: "".into(),
            aclfile: "".into(),
            unixsocketperm: "0".into(),
            tls_port: 0,
            tls_cert_file: "".into(),
            tls_key_file: "".into(),
            tls_ca_cert_file: "".into(),
            tls_ca_cert_dir: "".into(),
            tls_auth_clients: "yes".into(),
            tls_auth_clients_user: "off".into(),
            tls_protocols: "".into(),
            tls_ciphers: "".into(),
            tls_ciphersuites: "".into(),
            tls_prefer_server_ciphers: false,
            tls_replication: false,
            tls_cluster: false,
            acl_users: Vec::new(),
            acllog_max_len: 128,
            acl_pubsub_default: "resetchannels".into(),
            pidfile: "".into(),
            enable_debug_command: "no".into(),
            maxmemory_eviction_tenacity: 10,
            maxmemory_clients: "0".into(),
            client_output_buffer_limit: crate::limits::DEFAULT_OBUF_LIMITS.into(),
            rename_commands: Vec::new(),
            masterauth: "".into(),
            masteruser: "".into(),
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            replica_lazy_flush: false,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            latency_tracking: true,
            latency_tracking_info_percentiles: "50 99 99.9".into(),
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
            hll_sparse_max_bytes: 3000,
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            sanitize_dump_payload: "no".into(),
            appendfilename: "appendonly.aof".into(),
            appenddirname: "appendonlydir".into(),
            appendfsync: "everysec".into(),
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            aof_timestamp_enabled: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            no_appendfsync_on_rewrite: false,
            busy_reply_threshold: 5000,
        }
    }
}

/// How a parameter's value is written and parsed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer within bounds.
    Int {
        min: i64,
        max: i64,
    },
    /// A byte count with optional k/kb/m/mb/g/gb units.
    Memory {
        min: i64,
        max: i64,
    },
    Bool,
    /// Free text.
    Text,
    /// One of the given words.
    Enum(&'static [&'static str]),
    /// Free text checked by a parser; the text it returns is stored.
    Checked(fn(&str, &Config) -> Result<String, String>),
    /// Checked and made canonical by a function (or its error text).
    Custom(fn(&str) -> Result<String, String>),
}

/// Whether CONFIG SET may change the parameter at run time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mutable {
    Yes,
    /// Only at start-up (config file / arguments): CONFIG SET says so.
    Immutable,
}

struct Param {
    name: &'static str,
    kind: Kind,
    mutable: Mutable,
    get: fn(&Config) -> String,
    set: fn(&mut Config, String),
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

macro_rules! p_int {
    ($name:literal, $field:ident, $min:expr, $max:expr, $m:ident) => {
        Param {
            name: $name,
            kind: Kind::Int {
                min: $min,
                max: $max,
            },
            mutable: Mutable::$m,
            get: |c| c.$field.to_string(),
            set: |c, v| c.$field = v.parse().unwrap_or(c.$field),
        }
    };
}
macro_rules! p_mem {
    ($name:literal, $field:ident, $min:expr, $max:expr) => {
        Param {
            name: $name,
            kind: Kind::Memory {
                min: $min,
                max: $max,
            },
            mutable: Mutable::Yes,
            get: |c| c.$field.to_string(),
            set: |c, v| c.$field = v.parse().unwrap_or(c.$field),
        }
    };
}
macro_rules! p_bool {
    ($name:literal, $field:ident, $m:ident) => {
        Param {
            name: $name,
            kind: Kind::Bool,
            mutable: Mutable::$m,
            get: |c| yes_no(c.$field),
            set: |c, v| c.$field = v == "yes",
        }
    };
}
macro_rules! p_text {
    ($name:literal, $field:ident, $kind:expr, $m:ident) => {
        Param {
            name: $name,
            kind: $kind,
            mutable: Mutable::$m,
            get: |c| c.$field.clone(),
            set: |c, v| c.$field = v,
        }
    };
}

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

static PARAMS: &[Param] = &[
    p_int!("port", port, 0, 65535, Yes),
    Param {
        name: "bind",
        kind: Kind::Text,
        mutable: Mutable::Yes,
        get: |c| c.bind.join(" "),
        set: |c, v| c.bind = v.split_whitespace().map(String::from).collect(),
    },
    Param {
        name: "requirepass",
        kind: Kind::Text,
        mutable: Mutable::Yes,
        get: |c| String::from_utf8_lossy(c.requirepass.as_deref().unwrap_or_default()).into(),
        set: |c, v| {
            c.requirepass = if v.is_empty() {
                None
            } else {
                Some(v.into_bytes())
            }
        },
    },
    Param {
        name: "databases",
        kind: Kind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        mutable: Mutable::Immutable,
        get: |c| c.databases.to_string(),
        set: |c, v| c.databases = v.parse().unwrap_or(c.databases),
    },
    p_int!("hz", hz, 0, i32::MAX as i64, Yes),
    p_int!("maxclients", maxclients, 1, u32::MAX as i64, Yes),
    p_int!(
        "busy-reply-threshold",
        busy_reply_threshold,
        0,
        i64::MAX,
        Yes
    ),
    p_mem!(
        "proto-max-bulk-len",
        proto_max_bulk_len,
        1024 * 1024,
        i64::MAX
    ),
    p_mem!(
        "client-query-buffer-limit",
        client_query_buffer_limit,
        1024 * 1024,
        i64::MAX
    ),
    p_int!("timeout", timeout, 0, i32::MAX as i64, Yes),
    p_int!("tcp-keepalive", tcp_keepalive, 0, i32::MAX as i64, Yes),
    p_int!("active-expire-effort", active_expire_effort, 1, 10, Yes),
    p_int!(
        "tracking-table-max-keys",
        tracking_table_max_keys,
        0,
        i64::MAX,
        Yes
    ),
    p_mem!("maxmemory", maxmemory, 0, i64::MAX),
    p_text!(
        "maxmemory-policy",
        maxmemory_policy,
        Kind::Enum(POLICIES),
        Yes
    ),
    p_int!(
        "maxmemory-samples",
        maxmemory_samples,
        1,
        i32::MAX as i64,
        Yes
    ),
    p_text!("save", save, Kind::Text, Yes),
    Param {
        name: "notify-keyspace-events",
        kind: Kind::Custom(crate::notify::config_value),
        mutable: Mutable::Yes,
        get: |c| crate::notify::flags_to_string(c.notify_keyspace_events),
        set: |c, v| {
            c.notify_keyspace_events = crate::notify::parse_flags(v.as_bytes()).unwrap_or(0)
        },
    },
    p_bool!("appendonly", appendonly, Yes),
    p_text!("dir", dir, Kind::Text, Yes),
    p_text!("dbfilename", dbfilename, Kind::Text, Yes),
    p_bool!("rdbcompression", rdbcompression, Yes),
    p_bool!("rdbchecksum", rdbchecksum, Immutable),
    p_bool!(
        "stop-writes-on-bgsave-error",
        stop_writes_on_bgsave_error,
        Yes
    ),
    p_text!(
        "sanitize-dump-payload",
        sanitize_dump_payload,
        Kind::Enum(&["no", "yes", "clients"]),
        Yes
    ),
    p_text!("appendfilename", appendfilename, Kind::Text, Immutable),
    p_text!("appenddirname", appenddirname, Kind::Text, Immutable),
    p_text!(
        "appendfsync",
        appendfsync,
        Kind::Enum(&["always", "everysec", "no"]),
        Yes
    ),
    p_bool!("aof-load-truncated", aof_load_truncated, Yes),
    p_bool!("aof-use-rdb-preamble", aof_use_rdb_preamble, Yes),
    p_bool!("aof-timestamp-enabled", aof_timestamp_enabled, Yes),
    p_int!(
        "auto-aof-rewrite-percentage",
        auto_aof_rewrite_percentage,
        0,
        i32::MAX as i64,
        Yes
    ),
    p_mem!(
        "auto-aof-rewrite-min-size",
        auto_aof_rewrite_min_size,
        0,
        i64::MAX
    ),
    p_bool!("no-appendfsync-on-rewrite", no_appendfsync_on_rewrite, Yes),
    p_text!("loglevel", loglevel, Kind::Enum(LOGLEVELS), Yes),
    p_text!("logfile", logfile, Kind::Text, Immutable),
    p_bool!("daemonize", daemonize, Immutable),
    p_bool!("protected-mode", protected_mode, Yes),
    p_int!("tcp-backlog", tcp_backlog, 0, i32::MAX as i64, Immutable),
    p_bool!("lazyfree-lazy-user-del", lazyfree_lazy_user_del, Yes),
    p_bool!("lazyfree-lazy-user-flush", lazyfree_lazy_user_flush, Yes),
    p_int!("lfu-log-factor", lfu_log_factor, 0, i32::MAX as i64, Yes),
    p_int!("lfu-decay-time", lfu_decay_time, 0, i32::MAX as i64, Yes),
    p_text!("unixsocket", unixsocket, Kind::Text, Immutable),
    p_text!("aclfile", aclfile, Kind::Text, Immutable),
    p_text!("masterauth", masterauth, Kind::Text, Yes),
    p_text!("masteruser", masteruser, Kind::Text, Yes),
    p_text!("unixsocketperm", unixsocketperm, Kind::Text, Immutable),
    // The listeners and certificates are read once at start-up by the shim
    // (Redis can change them at run time).
    p_int!("tls-port", tls_port, 0, 65535, Immutable),
    p_text!("tls-cert-file", tls_cert_file, Kind::Text, Immutable),
    p_text!("tls-key-file", tls_key_file, Kind::Text, Immutable),
    p_text!("tls-ca-cert-file", tls_ca_cert_file, Kind::Text, Immutable),
    p_text!("tls-ca-cert-dir", tls_ca_cert_dir, Kind::Text, Immutable),
    p_text!(
        "tls-auth-clients",
        tls_auth_clients,
        Kind::Enum(&["no", "yes", "optional"]),
        Immutable
    ),
    p_text!(
        "tls-auth-clients-user",
        tls_auth_clients_user,
        Kind::Enum(&["off", "cn"]),
        Yes
    ),
    p_text!("tls-protocols", tls_protocols, Kind::Text, Immutable),
    p_text!("tls-ciphers", tls_ciphers, Kind::Text, Immutable),
    p_text!("tls-ciphersuites", tls_ciphersuites, Kind::Text, Immutable),
    p_bool!(
        "tls-prefer-server-ciphers",
        tls_prefer_server_ciphers,
        Immutable
    ),
    p_bool!("tls-replication", tls_replication, Immutable),
    p_bool!("tls-cluster", tls_cluster, Immutable),
    p_int!("acllog-max-len", acllog_max_len, 0, i64::MAX, Yes),
    p_text!(
        "acl-pubsub-default",
        acl_pubsub_default,
        Kind::Enum(&["allchannels", "resetchannels"]),
        Yes
    ),
    p_text!("pidfile", pidfile, Kind::Text, Immutable),
    p_text!(
        "enable-debug-command",
        enable_debug_command,
        Kind::Enum(&["yes", "no", "local"]),
        Immutable
    ),
    p_int!(
        "maxmemory-eviction-tenacity",
        maxmemory_eviction_tenacity,
        0,
        100,
        Yes
    ),
    p_text!(
        "maxmemory-clients",
        maxmemory_clients,
        Kind::Custom(crate::evict::canonical_maxmemory_clients),
        Yes
    ),
    p_text!(
        "client-output-buffer-limit",
        client_output_buffer_limit,
        // Classes not named keep their limits, as in Redis.
        Kind::Checked(|v, c| {
            let base =
                crate::limits::parse_obuf_limits(&c.client_output_buffer_limit, Default::default())
                    .unwrap_or_default();
            crate::limits::parse_obuf_limits(v, base).map(|l| crate::limits::format_obuf_limits(&l))
        }),
        Yes
    ),
    p_bool!("lazyfree-lazy-eviction", lazyfree_lazy_eviction, Yes),
    p_bool!("lazyfree-lazy-expire", lazyfree_lazy_expire, Yes),
    p_bool!("lazyfree-lazy-server-del", lazyfree_lazy_server_del, Yes),
    p_bool!("replica-lazy-flush", replica_lazy_flush, Yes),
    p_int!(
        "slowlog-log-slower-than",
        slowlog_log_slower_than,
        -1,
        i64::MAX,
        Yes
    ),
    p_int!("slowlog-max-len", slowlog_max_len, 0, i64::MAX, Yes),
    p_int!(
        "latency-monitor-threshold",
        latency_monitor_threshold,
        0,
        i64::MAX,
        Yes
    ),
    p_bool!("latency-tracking", latency_tracking, Yes),
    p_text!(
        "latency-tracking-info-percentiles",
        latency_tracking_info_percentiles,
        Kind::Text,
        Yes
    ),
    p_int!(
        "list-max-listpack-size",
        list_max_listpack_size,
        i32::MIN as i64,
        i32::MAX as i64,
        Yes
    ),
    p_int!(
        "list-compress-depth",
        list_compress_depth,
        0,
        i32::MAX as i64,
        Yes
    ),
    p_int!(
        "hash-max-listpack-entries",
        hash_max_listpack_entries,
        0,
        i64::MAX,
        Yes
    ),
    p_int!(
        "hash-max-listpack-value",
        hash_max_listpack_value,
        0,
        i64::MAX,
        Yes
    ),
    p_int!(
        "set-max-intset-entries",
        set_max_intset_entries,
        0,
        i64::MAX,
        Yes
    ),
    p_int!(
        "zset-max-listpack-entries",
        zset_max_listpack_entries,
        0,
        i64::MAX,
        Yes
    ),
    p_int!(
        "zset-max-listpack-value",
        zset_max_listpack_value,
        0,
        i64::MAX,
        Yes
    ),
    p_mem!("hll-sparse-max-bytes", hll_sparse_max_bytes, 0, i64::MAX),
    p_mem!("stream-node-max-bytes", stream_node_max_bytes, 0, i64::MAX),
    p_int!(
        "stream-node-max-entries",
        stream_node_max_entries,
        0,
        i64::MAX,
        Yes
    ),
];

/// Memory parameters Redis keeps unsigned (ULongLong/SizeT configs).
const UNSIGNED_MEMORY: &[&str] = &["maxmemory", "hll-sparse-max-bytes", "stream-node-max-bytes"];

/// Old names Redis 7.0 still accepts (ziplist became listpack).
const ALIASES: &[(&str, &str)] = &[
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("lua-time-limit", "busy-reply-threshold"),
];

/// The canonical name of a parameter, resolving aliases.
fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, real)| real)
}

/// Parses Redis's memory notation: "1gb", "100mb", "10k", "5" (bytes).
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1i64 << 30),
        ("g", 1_000_000_000),
        ("mb", 1 << 20),
        ("m", 1_000_000),
        ("kb", 1 << 10),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, mul)| lower.strip_suffix(suffix).map(|n| (n, *mul)))
    .unwrap_or((lower.as_str(), 1));
    let n: i64 = crate::resp::parse_i64(num.as_bytes())?;
    n.checked_mul(mul)
}

/// Why a parameter could not be set.
#[derive(Debug, PartialEq)]
pub enum SetError {
    /// No such parameter.
    Unknown,
    /// Only settable at start-up.
    Immutable,
    /// The value is invalid; the text is Redis's reason.
    Invalid(String),
}

impl Config {
    /// Every parameter name, in table order, then the aliases.
    pub fn names() -> impl Iterator<Item = &'static str> {
        PARAMS
            .iter()
            .map(|p| p.name)
            .chain(ALIASES.iter().map(|(a, _)| *a))
    }

    /// The current value of a parameter, as CONFIG GET shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = canonical(name);
        PARAMS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| (p.get)(self))
    }

    /// Sets a parameter from its textual value. `startup` allows immutable
    /// parameters (config file, command line).
    pub fn set(&mut self, name: &str, value: &str, startup: bool) -> Result<(), SetError> {
        let name = canonical(name);
        let p = PARAMS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .ok_or(SetError::Unknown)?;
        if p.mutable == Mutable::Immutable && !startup {
            return Err(SetError::Immutable);
        }
        let canonical = match p.kind {
            Kind::Int { min, max } => {
                let n: i64 = value.parse().map_err(|_| {
                    SetError::Invalid("argument couldn't be parsed into an integer".into())
                })?;
                check_bounds(n, min, max)?;
                n.to_string()
            }
            // Redis parses unsigned memory parameters with memtoull,
            // which refuses a sign before any bounds check.
            Kind::Memory { .. } if UNSIGNED_MEMORY.contains(&p.name) && value.starts_with('-') => {
                return Err(SetError::Invalid("argument must be a memory value".into()));
            }
            Kind::Memory { min, max } => {
                let n = parse_memory(value)
                    .ok_or_else(|| SetError::Invalid("argument must be a memory value".into()))?;
                check_bounds(n, min, max)?;
                n.to_string()
            }
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                "yes" => "yes".into(),
                "no" => "no".into(),
                _ => return Err(SetError::Invalid("argument must be 'yes' or 'no'".into())),
            },
            Kind::Enum(words) => {
                let lower = value.to_ascii_lowercase();
                if !words.contains(&lower.as_str()) {
                    return Err(SetError::Invalid(
                        "argument(s) must be one of the following: ".to_string()
                            + &words.join(", "),
                    ));
                }
                lower
            }
            Kind::Text => value.to_string(),
            Kind::Checked(check) => check(value, self).map_err(SetError::Invalid)?,
            Kind::Custom(check) => check(value).map_err(SetError::Invalid)?,
        };
        (p.set)(self, canonical);
        Ok(())
    }
}

fn check_bounds(n: i64, min: i64, max: i64) -> Result<(), SetError> {
    if n < min || n > max {
        Err(SetError::Invalid(format!(
            "argument must be between {min} and {max} inclusive"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("512mb"), Some(512 << 20));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn set_and_get_round_trip() {
        let mut c = Config::default();
        c.set("hz", "50", false).unwrap();
        assert_eq!(c.get("HZ").as_deref(), Some("50"));
        assert_eq!(c.set("databases", "3", false), Err(SetError::Immutable));
        assert!(matches!(
            c.set("hz", "abc", false),
            Err(SetError::Invalid(_))
        ));
        c.set("maxmemory", "1mb", false).unwrap();
        assert_eq!(c.maxmemory, 1 << 20);
    }
}

//! redis-server style start-up arguments: an optional config file first,
//! then `--name value [value ...]` pairs, both in redis.conf syntax.

use bytes::Bytes;
use cinnabar_engine::config::SetError;
use cinnabar_engine::resp::split_args;
use cinnabar_engine::Config;

/// Builds the configuration from the command line. Returns it with the
/// config file's path (empty if none).
pub fn load(argv: &[String]) -> Result<(Config, String), String> {
    let mut text = String::new();
    let mut file = String::new();
    let mut rest = argv;
    if let Some(first) = argv.first() {
        if first == "-h" || first == "--help" {
            println!(
                "Usage: cinnabar-server [/path/to/redis.conf] [options]\n\
                 \n\
                 Examples:\n\
                 \x20      cinnabar-server                      (127.0.0.1:6379, built-in defaults)\n\
                 \x20      cinnabar-server /etc/redis/6379.conf\n\
                 \x20      cinnabar-server --port 7777\n\
                 \x20      cinnabar-server /etc/myredis.conf --loglevel verbose --requirepass secret"
            );
            std::process::exit(0);
        }
        if first == "-v" || first == "--version" {
            println!(
                "Cinnabar server v={} (Redis {} compatible)",
                cinnabar_engine::CINNABAR_VERSION,
                cinnabar_engine::REDIS_VERSION
            );
            std::process::exit(0);
        }
        if !first.starts_with("--") {
            file = first.clone();
            text = std::fs::read_to_string(first)
                .map_err(|e| format!("Fatal error, can't open config file '{first}': {e}"))?;
            text.push('\n');
            rest = &argv[1..];
        }
    }
    // "--port 7000 --save 900 1" becomes the lines "port 7000" and "save 900 1".
    for a in rest {
        if let Some(name) = a.strip_prefix("--") {
            text.push('\n');
            text.push_str(name);
        } else {
            text.push(' ');
            text.push_str(&quote(a));
        }
    }
    let mut config = Config::default();
    apply(&mut config, &text)?;
    Ok((config, file))
}

/// Quotes an argument so split_args gives it back unchanged.
fn quote(a: &str) -> String {
    let mut s = String::from("\"");
    for c in a.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Applies redis.conf-format text. Unknown directives are warned about and
/// skipped, so a Redis config file with features we lack still starts.
pub fn apply(config: &mut Config, text: &str) -> Result<(), String> {
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words: Vec<Bytes> = vec![];
        if !split_args(line.as_bytes(), &mut words) {
            return Err(format!(
                "line {}: Unbalanced quotes in configuration line",
                lineno + 1
            ));
        }
        let Some((name, values)) = words.split_first() else {
            continue;
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if name == "rename-command" {
            // Checked against the command table now, applied by dispatch.
            let [from, to] = values else {
                return Err(format!(">>> '{line}'\nwrong number of arguments"));
            };
            let from = String::from_utf8_lossy(from).to_ascii_lowercase();
            let to = String::from_utf8_lossy(to).to_ascii_lowercase();
            let table = cinnabar_engine::command::Table::get();
            if table.lookup(from.as_bytes()).is_none() {
                return Err(format!(">>> '{line}'\nNo such command in rename-command"));
            }
            if !to.is_empty() && table.lookup(to.as_bytes()).is_some() {
                return Err(format!(">>> '{line}'\nTarget command name already exists"));
            }
            config.rename_commands.push((from, to));
            continue;
        }
        if name == "user" {
            // ACL users: applied (and validated) when the node is built.
            config
                .acl_users
                .push(values.iter().map(|v| v.to_vec()).collect());
            continue;
        }
        let value = values
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        match config.set(&name, &value, true) {
            Ok(()) => {}
            Err(SetError::Unknown) => {
                tracing::warn!("ignoring unsupported config directive '{name}'");
            }
            Err(SetError::Invalid(why)) => {
                return Err(format!(">>> '{line}'\n{why}"));
            }
            // Start-up may set immutable parameters; this cannot happen.
            Err(SetError::Immutable) => return Err(format!(">>> '{line}'\nimmutable")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_values() {
        let argv: Vec<String> = [
            "--port",
            "7000",
            "--save",
            "900",
            "1",
            "--requirepass",
            "a b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (c, file) = load(&argv).unwrap();
        assert_eq!(file, "");
        assert_eq!(c.port, 7000);
        assert_eq!(c.save, "900 1");
        assert_eq!(c.requirepass.as_deref(), Some(&b"a b"[..]));
    }

    #[test]
    fn bad_value_is_an_error() {
        let argv: Vec<String> = ["--port", "x"].iter().map(|s| s.to_string()).collect();
        assert!(load(&argv).is_err());
    }
}

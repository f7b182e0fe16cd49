//! Blocking list commands with several clients, against genuine Redis 7.0:
//! who is served first, what each client receives, and timeouts.
//!
//! Each scenario is a script of steps run on both servers; every reply
//! (or the absence of one within a short wait) is compared.

use cinnabar_tests::{show, Conn, Server};
use std::time::Duration;

/// One step: client index and command, or a check that a client got
/// something (or nothing yet).
enum Step {
    /// Send without reading (the client may block).
    Send(usize, &'static str),
    /// Send and read the reply.
    Cmd(usize, &'static str),
    /// Read whatever the client has within a short wait.
    Expect(usize),
    /// Send and read the reply without logging it (HELLO: ids differ).
    Quiet(usize, &'static str),
    Sleep(u64),
}

use Step::*;

fn run(server: &Server, clients: usize, steps: &[Step]) -> Vec<String> {
    let mut conns: Vec<Conn> = (0..clients).map(|_| server.connect()).collect();
    let ids: Vec<String> = conns.iter_mut().map(|c| c.id()).collect();
    conns[0].cmd_str(&["FLUSHALL"]);
    let mut log = vec![];
    for s in steps {
        match s {
            Send(i, line) => {
                let args: Vec<&str> = line.split(' ').collect();
                let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                conns[*i].send(&v);
                // The server must register the client as blocked before the
                // next client acts, so arrival order is the script's order.
                server.wait_blocked(&ids[*i]);
            }
            Cmd(i, line) => {
                let args: Vec<&str> = line.split(' ').collect();
                let r = conns[*i].cmd_str(&args);
                log.push(format!("{i} {line} -> {}", show(&r)));
            }
            Quiet(i, line) => {
                let args: Vec<&str> = line.split(' ').collect();
                conns[*i].cmd_str(&args);
            }
            Expect(i) => {
                let r = conns[*i].try_reply(Duration::from_millis(150));
                log.push(format!(
                    "{i} got {}",
                    r.map_or("nothing".to_string(), |b| show(&b))
                ));
            }
            Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
    log
}

fn compare(clients: usize, steps: &[Step]) {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let r = run(&redis, clients, steps);
    let c = run(&ours, clients, steps);
    assert_eq!(r, c, "\nredis:    {r:#?}\ncinnabar: {c:#?}");
}

#[test]
fn first_blocked_first_served() {
    compare(
        4,
        &[
            Send(0, "BLPOP k 0"),
            Send(1, "BLPOP k 0"),
            Send(2, "BRPOP k other 0"),
            Cmd(3, "RPUSH k a b"),
            Expect(0),
            Expect(1),
            Expect(2),
            Cmd(3, "LPUSH other c"),
            Expect(2),
            Cmd(3, "EXISTS k other"),
        ],
    );
}

#[test]
fn blmove_chains_wake_the_next_waiter() {
    compare(
        3,
        &[
            Send(0, "BLMOVE src dst LEFT RIGHT 0"),
            Send(1, "BLPOP dst 0"),
            Cmd(2, "LPUSH src x y"),
            Expect(0),
            Expect(1),
            Cmd(2, "LRANGE src 0 -1"),
            Cmd(2, "LRANGE dst 0 -1"),
        ],
    );
}

#[test]
fn blmpop_and_multi_key_order() {
    compare(
        3,
        &[
            Send(0, "BLMPOP 0 2 a b RIGHT COUNT 2"),
            Send(1, "BLPOP b a 0"),
            Cmd(2, "RPUSH b 1 2 3"),
            Expect(0),
            Expect(1),
            Cmd(2, "LRANGE b 0 -1"),
        ],
    );
}

#[test]
fn timeouts_and_unblock() {
    compare(
        3,
        &[
            // Long enough that a slow machine cannot see the timeout early.
            Send(0, "BLPOP k 1"),
            Expect(0),
            Sleep(1000),
            Expect(0),
            Send(1, "BRPOP k 0"),
            Cmd(2, "CLIENT UNBLOCK 999 TIMEOUT"),
            Cmd(2, "CLIENT UNBLOCK notanid"),
        ],
    );
}

/// CLIENT UNBLOCK by id: ids differ between servers, so look them up.
#[test]
fn client_unblock_timeout_and_error() {
    let check = |server: &Server| -> Vec<String> {
        let mut a = server.connect();
        let mut b = server.connect();
        let id = a.id();
        let mut out = vec![];
        a.send(&[b"BLPOP", b"k", b"0"]);
        server.wait_blocked(&id);
        out.push(show(&b.cmd_str(&["CLIENT", "UNBLOCK", &id, "ERROR"])));
        out.push(show(&a.read_reply().unwrap_or_default()));
        a.send(&[b"BLMOVE", b"k", b"d", b"LEFT", b"LEFT", b"0"]);
        server.wait_blocked(&id);
        out.push(show(&b.cmd_str(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"])));
        out.push(show(&a.read_reply().unwrap_or_default()));
        out.push(show(&b.cmd_str(&["CLIENT", "UNBLOCK", &id])));
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_eq!(check(&redis), check(&ours));
}

#[test]
fn pipelined_commands_after_a_blocking_one_wait_for_it() {
    let check = |server: &Server| -> Vec<String> {
        let mut a = server.connect();
        let mut b = server.connect();
        a.send_raw(b"BLPOP k 0\r\nPING\r\nLLEN k\r\n");
        std::thread::sleep(Duration::from_millis(50));
        let mut out = vec![format!(
            "{:?}",
            a.try_reply(Duration::from_millis(100)).map(|r| show(&r))
        )];
        out.push(show(&b.cmd_str(&["RPUSH", "k", "v", "w"])));
        for _ in 0..3 {
            out.push(show(&a.read_reply().unwrap_or_default()));
        }
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_eq!(check(&redis), check(&ours));
}

#[test]
fn disconnected_waiter_does_not_swallow_data() {
    let check = |server: &Server| -> Vec<String> {
        let mut a = server.connect();
        let mut b = server.connect();
        let mut c = server.connect();
        let (ida, idb) = (a.id(), b.id());
        a.send(&[b"BLPOP", b"k", b"0"]);
        server.wait_blocked(&ida);
        b.send(&[b"BLPOP", b"k", b"0"]);
        server.wait_blocked(&idb);
        drop(a);
        server.wait_gone(&ida);
        let mut out = vec![show(&c.cmd_str(&["RPUSH", "k", "v1", "v2"]))];
        out.push(show(&b.read_reply().unwrap_or_default()));
        out.push(show(&c.cmd_str(&["LRANGE", "k", "0", "-1"])));
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_eq!(check(&redis), check(&ours));
}

#[test]
fn keys_arriving_by_rename_move_copy_and_swapdb_wake_waiters() {
    compare(
        5,
        &[
            Send(0, "BLPOP dst 0"),
            Cmd(4, "RPUSH src a"),
            Cmd(4, "RENAME src dst"),
            Expect(0),
            Send(1, "BLPOP c 0"),
            Cmd(4, "RPUSH orig b"),
            Cmd(4, "COPY orig c"),
            Expect(1),
            Send(2, "BZPOPMIN z 0"),
            Cmd(4, "SELECT 1"),
            Cmd(4, "ZADD z 1 m"),
            Cmd(4, "MOVE z 0"),
            Expect(2),
            Send(3, "BLPOP s 0"),
            Cmd(4, "RPUSH s x"),
            Cmd(4, "SWAPDB 0 1"),
            Expect(3),
        ],
    );
}

#[test]
fn blocking_commands_inside_multi_do_not_block() {
    compare(
        2,
        &[
            Cmd(0, "MULTI"),
            Cmd(0, "BLPOP k 0"),
            Cmd(0, "BRPOP k 1"),
            Cmd(0, "BLMOVE k d LEFT RIGHT 0"),
            Cmd(0, "BRPOPLPUSH k d 0"),
            Cmd(0, "BLMPOP 0 1 k LEFT"),
            Cmd(0, "BZPOPMIN z 0"),
            Cmd(0, "BZPOPMAX z 0"),
            Cmd(0, "BZMPOP 0 1 z MIN"),
            Cmd(0, "RPUSH k a b"),
            Cmd(0, "ZADD z 1 m 2 n"),
            Cmd(0, "BLPOP k 0"),
            Cmd(0, "BLMPOP 0 1 k RIGHT COUNT 5"),
            Cmd(0, "BZPOPMAX z 0"),
            Cmd(0, "BZMPOP 0 1 z MIN COUNT 3"),
            Cmd(0, "EXEC"),
            Cmd(1, "EXISTS k z d"),
        ],
    );
}

/// A key filled and emptied again within one MULTI/EXEC or script serves
/// nobody; filled by it, the waiters are served after the whole block.
#[test]
fn waiters_are_served_after_the_whole_exec_or_script() {
    compare(
        4,
        &[
            Send(0, "BLPOP k 0"),
            Cmd(3, "MULTI"),
            Cmd(3, "RPUSH k a"),
            Cmd(3, "LPOP k"),
            Cmd(3, "EXEC"),
            Expect(0),
            Cmd(
                3,
                "EVAL redis.call('rpush',KEYS[1],'x');return(redis.call('lpop',KEYS[1])) 1 k",
            ),
            Expect(0),
            // Filled by the transaction: served once EXEC has run all of
            // it, so the LLEN inside sees both elements.
            Send(1, "BLPOP k 0"),
            Cmd(3, "MULTI"),
            Cmd(3, "RPUSH k a b"),
            Cmd(3, "LLEN k"),
            Cmd(3, "EXEC"),
            Expect(0),
            Expect(1),
            Cmd(3, "LLEN k"),
            Send(0, "BZPOPMIN z 0"),
            Cmd(
                3,
                "EVAL redis.call('zadd',KEYS[1],1,'a');return(redis.call('zcard',KEYS[1])) 1 z",
            ),
            Expect(0),
            Cmd(3, "EXISTS z"),
            // Replaced by another type before the block ends: the waiter
            // keeps waiting, then is served by a later push.
            Send(2, "BLPOP k 0"),
            Cmd(3, "MULTI"),
            Cmd(3, "RPUSH k a"),
            Cmd(3, "DEL k"),
            Cmd(3, "SET k v"),
            Cmd(3, "EXEC"),
            Expect(2),
            Cmd(3, "DEL k"),
            Cmd(3, "RPUSH k c"),
            Expect(2),
        ],
    );
}

/// Keys made ready by one EXEC are served in the order they became ready;
/// BLMOVE's push wakes the next waiter in the same round. The order shows
/// in the destination list.
#[test]
fn wake_order_across_several_keys_and_clients() {
    compare(
        6,
        &[
            Send(0, "BLMOVE k1 out LEFT RIGHT 0"),
            Send(1, "BLMOVE k2 out LEFT RIGHT 0"),
            Send(2, "BLMOVE k3 out LEFT RIGHT 0"),
            Send(3, "BLMOVE k2 out LEFT RIGHT 0"),
            Send(4, "BLPOP out 0"),
            Cmd(5, "MULTI"),
            Cmd(5, "RPUSH k3 c"),
            Cmd(5, "RPUSH k2 b1 b2"),
            Cmd(5, "RPUSH k1 a"),
            Cmd(5, "EXEC"),
            Expect(0),
            Expect(1),
            Expect(2),
            Expect(3),
            Expect(4),
            Cmd(5, "LRANGE out 0 -1"),
            // A client blocked on several keys is served by the first of
            // them to get data, once.
            Send(0, "BLPOP x y z 0"),
            Send(1, "BLPOP z y 0"),
            Cmd(5, "MULTI"),
            Cmd(5, "RPUSH z 1"),
            Cmd(5, "RPUSH y 2"),
            Cmd(5, "EXEC"),
            Expect(0),
            Expect(1),
            Cmd(5, "EXISTS x y z"),
        ],
    );
}

#[test]
fn sorted_set_waiters_order_and_replies() {
    compare(
        4,
        &[
            Send(0, "BZPOPMIN z 0"),
            Send(1, "BZPOPMAX z 0"),
            Send(2, "BZMPOP 0 2 y z MAX COUNT 2"),
            Cmd(3, "ZADD z 1 a 2 b 3 c 4 d 5 e"),
            Expect(0),
            Expect(1),
            Expect(2),
            Cmd(3, "ZRANGE z 0 -1 WITHSCORES"),
            // Woken by a key that now holds a list: keeps waiting.
            Send(0, "BZPOPMIN w 0"),
            Cmd(3, "MULTI"),
            Cmd(3, "ZADD w 1 a"),
            Cmd(3, "DEL w"),
            Cmd(3, "RPUSH w x"),
            Cmd(3, "EXEC"),
            Expect(0),
            Cmd(3, "DEL w"),
            Cmd(3, "ZADD w 7 q"),
            Expect(0),
        ],
    );
}

/// Fractional timeouts, RESP3's null for a timed-out pop, and bad
/// timeouts' errors.
#[test]
fn fractional_timeouts_and_timeout_replies() {
    compare(
        3,
        &[
            Send(0, "BLPOP k 0.3"),
            Sleep(700),
            Expect(0),
            Send(0, "BZPOPMIN z 0.2"),
            Sleep(600),
            Expect(0),
            Send(0, "BLMOVE a b LEFT LEFT 0.2"),
            Sleep(600),
            Expect(0),
            Quiet(1, "HELLO 3"),
            Send(1, "BLMPOP 0.2 1 k LEFT"),
            Sleep(600),
            Expect(1),
            Send(1, "BZMPOP 0.2 1 z MIN"),
            Sleep(600),
            Expect(1),
            Send(1, "BLPOP k 0.2"),
            Sleep(600),
            Expect(1),
            Cmd(2, "BLPOP k -1"),
            Cmd(2, "BLPOP k abc"),
            // Rounded up to 1 ms, not 0 (forever): these time out.
            Send(0, "BLPOP k 0.0001"),
            Sleep(300),
            Expect(0),
            Send(0, "BLPOP k 1e-400"),
            Sleep(300),
            Expect(0),
            Cmd(2, "BLPOP k 1e400"),
            Cmd(2, "BLPOP k 1e5000"),
            Cmd(2, "BLPOP k inf"),
            Cmd(2, "BLPOP k 1e20"),
            Cmd(2, "BZPOPMIN z -0.5"),
            Cmd(2, "BLMPOP 0 0 k LEFT"),
            Cmd(2, "BLMPOP 0 1 k MIDDLE"),
            Cmd(2, "CLIENT UNBLOCK 1 TIMEOUT"),
        ],
    );
}

/// A script deletes two keys clients block on (a sorted set and a string:
/// not streams), then pushes to both. The keys are served in the order they
/// got data (k1 first, whose BLMOVE pushes onto k2 before k2's waiter is
/// served), not the order they were deleted: Redis 7.0 signals a deleted
/// key only when it held a stream. Found by the simulator (swarm 58).
#[test]
fn deleted_keys_do_not_jump_the_ready_queue() {
    compare(
        3,
        &[
            Send(0, "BLPOP k2 0"),
            Send(1, "BLMOVE k1 k2 RIGHT LEFT 0"),
            Cmd(2, "ZADD k2 1 m0"),
            Cmd(2, "SET k1 x"),
            Cmd(
                2,
                "EVAL redis.call('del','k2','k1');redis.call('rpush','k1','a','b');redis.call('lpush','k2','c','d') 0",
            ),
            Expect(1),
            Expect(0),
            Cmd(2, "LRANGE k2 0 -1"),
        ],
    );
}

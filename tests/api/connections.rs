//! Slow and idle HTTP connections (security issue, defect 1): every phase of a connection is
//! bounded in time, the number of open connections is capped below the descriptor limit, and a
//! client holding more idle connections than the process may open does not stop the server
//! from answering others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_duet");

/// A `duet serve` process whose descriptor limit (soft and hard) is `nofile`.
struct LimitedServer {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl LimitedServer {
    fn start(nofile: u32) -> LimitedServer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {nofile} && exec \"$0\" serve --listen {addr} --data-dir \"$1\""
            ))
            .arg(BIN)
            .arg(dir.path())
            .env("DUET_LOG__LEVEL", "duet=warn,duet::api::server=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let server = LimitedServer {
            child,
            addr,
            _dir: dir,
        };
        let up = Instant::now();
        while healthz(&server.addr, Duration::from_secs(1)).is_err() {
            assert!(up.elapsed() < Duration::from_secs(20), "the server came up");
            std::thread::sleep(Duration::from_millis(25));
        }
        server
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET /healthz` on a new connection; the status line's code.
fn healthz(addr: &str, within: Duration) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), within)?;
    s.set_read_timeout(Some(within))?;
    s.set_write_timeout(Some(within))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: duet\r\nConnection: close\r\n\r\n")?;
    let mut head = Vec::new();
    s.read_to_end(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))
}

#[tokio::test]
async fn healthz_answers_while_a_client_holds_more_idle_connections_than_the_descriptor_limit() {
    const NOFILE: u32 = 256;
    let server = LimitedServer::start(NOFILE);
    let addr = server.addr.clone();
    let log = server._dir.path().join("server.log");
    tokio::task::spawn_blocking(move || {
        // The attacker: idle connections, more than the server could ever hold descriptors for.
        let mut held = Vec::new();
        for _ in 0..NOFILE + 44 {
            if let Ok(s) =
                TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1))
            {
                held.push(s);
            }
        }
        assert!(
            held.len() > NOFILE as usize,
            "the attack opened its connections"
        );
        // Everyone else keeps being served, promptly, while those are held.
        for round in 0..20 {
            let started = Instant::now();
            let code = healthz(&addr, Duration::from_secs(2)).unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "healthz round {round} while held: {e} after {:?}; server log ends:\n{}",
                    started.elapsed(),
                    tail.join("\n")
                )
            });
            assert_eq!(code, 200, "healthz round {round}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        drop(held);
    })
    .await
    .unwrap();
}

/// Short limits, so that each phase's bound shows within a test.
async fn spawn_with_short_limits(max: usize) -> TestApp {
    TestApp::spawn_with(|c| {
        let limits = &mut c.server.connections;
        limits.max = max;
        limits.header_read_timeout_ms = 300;
        limits.idle_timeout_ms = 1_000;
        limits.body_read_timeout_ms = 300;
        limits.body_min_bytes_per_sec = 1_000;
    })
    .await
}

/// How long until the server closes `stream`, reading (and discarding) whatever it sends.
async fn closed_after(stream: &mut tokio::net::TcpStream, started: Instant) -> Duration {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was still open after 10 s"),
        }
    }
}

async fn connect(t: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(t.app().addr).await.unwrap()
}

fn between(elapsed: Duration, from_ms: u64, to_ms: u64, what: &str) {
    assert!(
        elapsed >= Duration::from_millis(from_ms) && elapsed <= Duration::from_millis(to_ms),
        "{what}: closed after {elapsed:?}, expected between {from_ms} and {to_ms} ms"
    );
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = spawn_with_short_limits(10_000).await;
    // Never sends a byte.
    let mut silent = connect(&t).await;
    let started = Instant::now();
    between(
        closed_after(&mut silent, started).await,
        900,
        2_500,
        "silent connection",
    );

    // Keep-alive: a second request within the timeout is served on the same connection, and
    // the connection closes a timeout after the last response.
    let mut keep = connect(&t).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: duet\r\n\r\n";
    for _ in 0..2 {
        keep.write_all(request).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = keep.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "served on the kept connection"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = Instant::now() - Duration::from_millis(500);
    between(
        closed_after(&mut keep, started).await,
        900,
        2_500,
        "kept-alive connection",
    );
}

#[tokio::test]
async fn a_request_head_sent_slowly_is_cut_off_at_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let t = spawn_with_short_limits(10_000).await;
    let mut slow = connect(&t).await;
    let started = Instant::now();
    // One byte every 50 ms, forever: each byte is activity, but the head never completes.
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: duet\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (mut read, mut write) = slow.split();
    let trickle = async {
        for byte in head.iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let closed = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            }
        }
    };
    let elapsed = tokio::select! {
        elapsed = closed => elapsed,
        _ = trickle => started.elapsed(),
        _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("still open after 10 s"),
    };
    // Well before the idle timeout (1 s): the head's own bound applies.
    between(elapsed, 250, 900, "slow head");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let t = spawn_with_short_limits(10_000).await;
    let mut short = connect(&t).await;
    // 200 bytes announced (200 ms at the minimum rate, plus the 300 ms base), 10 sent.
    short
        .write_all(
            b"POST /v1/auth/device HTTP/1.1\r\nHost: duet\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"deviceI",
        )
        .await
        .unwrap();
    let started = Instant::now();
    between(
        closed_after(&mut short, started).await,
        400,
        900,
        "short body",
    );

    // A body that does arrive in time is served as usual.
    let ok = t
        .http
        .get(format!("{}/healthz", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn when_full_the_longest_idle_connection_makes_room() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = spawn_with_short_limits(4).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&t).await);
        // Accepted in this order, so idle in this order.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut newcomer = connect(&t).await;
    newcomer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: duet\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    newcomer.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "the newcomer is served"
    );
    let started = Instant::now();
    between(
        closed_after(&mut idle[0], started).await,
        0,
        300,
        "the oldest idle connection",
    );
    // The others are still open: one more read would block.
    let mut buf = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(100), idle[3].read(&mut buf)).await;
    assert!(
        still_open.is_err(),
        "the youngest idle connection stays open"
    );
}

#[tokio::test]
async fn when_every_connection_is_busy_a_newcomer_is_refused_with_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = spawn_with_short_limits(2).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut c = connect(&t).await;
        // A request whose body is still on its way keeps its connection busy.
        c.write_all(b"POST /v1/auth/device HTTP/1.1\r\nHost: duet\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            .await
            .unwrap();
        busy.push(c);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut newcomer = connect(&t).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), newcomer.read_to_end(&mut answer))
        .await
        .expect("refused promptly")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "unavailable");
    assert_eq!(body["status"], 503);
}

#[tokio::test]
async fn one_address_holds_a_bounded_share_of_the_connections() {
    use tokio::io::AsyncReadExt;
    let t = TestApp::spawn_with(|c| c.server.connections.per_address_max = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&t).await);
    }
    let mut fourth = connect(&t).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), fourth.read_to_end(&mut answer))
        .await
        .expect("refused promptly")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    // Once they are gone, the address is welcome again.
    let ok = until("the address has room again", || async {
        t.http
            .get(format!("{}/healthz", t.base))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    assert_eq!(ok.status(), 200);
}

//! Load for `cargo xtask bench`'s network scenarios. Plain blocking sockets, one thread per
//! client: the load must cost the engine nothing it would not cost in production.
//!
//! - `net-load blast ADDR FILE --clients N --seconds S`: N TCP clients connect to ADDR and
//!   write FILE's lines (newline-terminated, over and over) as fast as the engine takes them,
//!   for S seconds; prints `{"bytes":..,"elapsed_s":..,"clients":..}`.
//! - `net-load latency SEND_TO LISTEN --rate R --seconds S`: listens on LISTEN for the
//!   engine's `tcp_client`, connects to SEND_TO (the engine's `tcp_server`), sends
//!   `{"seq":N}` lines at R per second and times each line's way back (the first `--warmup`
//!   lines, default 100, are not counted: they also time the client connecting); prints
//!   `{"sent":..,"received":..,"p50_us":..,"p99_us":..,"max_us":..}`.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use temblor_perf::Cli;

const CLI: Cli = Cli {
    name: "net-load",
    usage: "net-load blast ADDR FILE --clients N --seconds S\n       net-load latency SEND_TO LISTEN --rate R --seconds S",
};

fn blast(args: &[String]) {
    let (Some(addr), Some(file)) = (args.first(), args.get(1)) else {
        CLI.usage("blast needs ADDR and FILE")
    };
    let clients: usize = CLI.flag(args, "--clients", 4);
    let seconds: f64 = CLI.flag(args, "--seconds", 5.0);
    let lines = temblor_perf::read_lines(std::path::Path::new(file))
        .unwrap_or_else(|e| CLI.usage(&format!("cannot read {file}: {e}")));
    // About 1 MiB of whole lines per write.
    let mut chunk = Vec::new();
    for line in lines.iter().cycle() {
        chunk.extend_from_slice(line);
        chunk.push(b'\n');
        if chunk.len() >= 1 << 20 {
            break;
        }
    }
    let chunk = Arc::new(chunk);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let chunk = Arc::clone(&chunk);
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr)
                    .unwrap_or_else(|e| CLI.usage(&format!("cannot connect to {addr}: {e}")));
                let mut bytes = 0_u64;
                while Instant::now() < deadline {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                    bytes += chunk.len() as u64;
                }
                bytes
            })
        })
        .collect();
    let bytes: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!("{{\"bytes\":{bytes},\"elapsed_s\":{elapsed:.3},\"clients\":{clients}}}");
}

fn latency(args: &[String]) {
    let (Some(send_to), Some(listen)) = (args.first(), args.get(1)) else {
        CLI.usage("latency needs SEND_TO and LISTEN")
    };
    let rate: f64 = CLI.flag(args, "--rate", 1000.0);
    let seconds: f64 = CLI.flag(args, "--seconds", 5.0);
    let warmup: usize = CLI.flag(args, "--warmup", 100);
    let listener = TcpListener::bind(listen)
        .unwrap_or_else(|e| CLI.usage(&format!("cannot listen on {listen}: {e}")));
    let total = (rate * seconds) as usize;
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let receiver = {
        let sent_at = Arc::clone(&sent_at);
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().expect("the engine's tcp_client connects");
            let mut latencies = Vec::with_capacity(total);
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let Some(seq) = line
                    .split("\"seq\":")
                    .nth(1)
                    .and_then(|r| r.trim_end_matches('}').trim().parse::<usize>().ok())
                else {
                    continue;
                };
                // The first lines also time the engine's client connecting: not counted.
                if seq >= warmup
                    && let Some(Some(t)) = sent_at.lock().unwrap().get(seq).copied()
                {
                    latencies.push(now.duration_since(t));
                }
                if seq + 1 == total {
                    break;
                }
            }
            latencies
        })
    };
    // The engine may still be starting: try for 10 s.
    let tried = Instant::now();
    let mut s = loop {
        match TcpStream::connect(send_to) {
            Ok(s) => break s,
            Err(e) if tried.elapsed() > Duration::from_secs(10) => {
                CLI.usage(&format!("cannot connect to {send_to}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let _ = s.set_nodelay(true);
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate);
    for seq in 0..total {
        let due = started + every * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sent_at.lock().unwrap()[seq] = Some(Instant::now());
        if s.write_all(format!("{{\"seq\":{seq}}}\n").as_bytes())
            .is_err()
        {
            break;
        }
    }
    // The receiver ends at the last line; a lost one would keep it waiting: give up after 5 s.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(receiver.join().unwrap_or_default());
    });
    let mut lat = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    lat.sort_unstable();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "{{\"sent\":{total},\"warmup\":{warmup},\"received\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        lat.len(),
        pick(0.50),
        pick(0.99),
        lat.last().map_or(0, |d| d.as_micros())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("blast") => blast(&args[1..]),
        Some("latency") => latency(&args[1..]),
        Some("-h" | "--help") => CLI.usage("network load for cargo xtask bench"),
        _ => CLI.usage("blast or latency?"),
    }
}

//! `compression`: would compressing payloads over a size threshold pay off?
//!
//! For realistic JSON payloads (market-data snapshots) of several sizes, measures the
//! LZ4 ratio, the time to compress and decompress, and the time to move the payload
//! through a Unix socket pair plain and compressed. Compression pays only if the
//! transfer time it saves exceeds its own cost; the answer decides the bus's policy.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    time::Instant,
};

use serde_json::{Value, json};

/// One JSON line per payload size.
pub fn run() -> anyhow::Result<Vec<Value>> {
    let mut lines = Vec::new();
    for target in [1024usize, 16 * 1024, 256 * 1024] {
        let payload = snapshot(target);
        let compressed = lz4_flex::compress_prepend_size(&payload);
        let rounds = (64 * 1024 * 1024 / payload.len()).max(16);

        let start = Instant::now();
        for _ in 0..rounds {
            let c = lz4_flex::compress_prepend_size(std::hint::black_box(&payload));
            let d = lz4_flex::decompress_size_prepended(&c)?;
            std::hint::black_box(d);
        }
        let codec_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        let plain_us = transfer_us(&payload, rounds)?;
        let compressed_us = transfer_us(&compressed, rounds)?;
        let saved = plain_us - compressed_us;
        lines.push(json!({
            "scenario": "compression",
            "backend": "weft",
            "codec": "lz4",
            "payload_bytes": payload.len(),
            "ratio": round3(compressed.len() as f64 / payload.len() as f64),
            "codec_us": round3(codec_us),
            "transfer_us_plain": round3(plain_us),
            "transfer_us_compressed": round3(compressed_us),
            "pays_off": saved > codec_us,
        }));
    }
    Ok(lines)
}

/// A JSON array of quote objects of about `bytes` bytes.
fn snapshot(bytes: usize) -> Vec<u8> {
    let symbols = [
        "EURUSD", "GBPUSD", "USDJPY", "AAPL", "MSFT", "XAUUSD", "BUND", "UST10Y",
    ];
    let mut quotes = Vec::new();
    let mut text = Vec::new();
    let mut i = 0u64;
    while text.len() < bytes {
        let px = 1.0 + ((i * 7919) % 10_000) as f64 / 10_000.0;
        quotes.push(json!({
            "symbol": symbols[(i % 8) as usize],
            "bid": px, "ask": px + 0.0002, "size": 1_000_000 + (i % 17) * 250_000,
            "venue": "EBS", "ts": 1_795_311_647_654u64 + i * 13,
        }));
        text = serde_json::to_vec(&quotes).expect("serialises");
        i += 1;
    }
    text
}

/// Mean time to write `data` into one end of a socket pair and read it at the other.
fn transfer_us(data: &[u8], rounds: usize) -> anyhow::Result<f64> {
    let (mut a, mut b) = UnixStream::pair()?;
    let len = data.len();
    let reader = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; len];
        for _ in 0..rounds {
            b.read_exact(&mut buf)?;
        }
        Ok(())
    });
    let start = Instant::now();
    for _ in 0..rounds {
        a.write_all(data)?;
    }
    reader.join().expect("reader thread")?;
    Ok(start.elapsed().as_secs_f64() * 1e6 / rounds as f64)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

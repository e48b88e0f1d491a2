//! A streaming upload: the body goes to a file as it arrives, a piece at a
//! time, so a 1 GiB upload holds no more than one piece in memory.
//!
//! ```text
//! cargo run --release --example upload [PORT] [DIR]    # default 8080, the temp dir
//! curl -T big.iso http://127.0.0.1:8080/upload/big.iso
//! ```
//! Files are written with `spawn_blocking` (file I/O would block the loop).
//! The name is a single path segment of letters, digits, `.`, `-` and `_`;
//! anything else is a 400, and bodies over 1 GiB are a 413 before a byte of
//! them is read. The answer gives the bytes written and their FNV-1a hash.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

use solo::http::{Config, Request, Response, Server};

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    hash
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

async fn upload(mut req: Request, dir: Rc<PathBuf>) -> std::io::Result<Response> {
    let name = req.param("name").unwrap_or_default().to_string();
    if !valid_name(&name) {
        return Ok(Response::text("a file name is letters, digits, '.', '-' and '_'\n").with_status(400));
    }
    let path = dir.join(&name);
    let file = {
        let path = path.clone();
        solo::spawn_blocking(move || File::create(path)).await??
    };
    let (mut file, mut written, mut hash) = (Some(file), 0u64, 0xcbf2_9ce4_8422_2325u64);
    while let Some(piece) = req.body_chunk().await {
        let piece = piece?;
        written += piece.len() as u64;
        hash = fnv1a(hash, &piece);
        // The file moves to the blocking pool and back with each piece.
        let mut f = file.take().expect("the file is back after each write");
        f = solo::spawn_blocking(move || f.write_all(&piece).map(|()| f)).await??;
        file = Some(f);
    }
    if let Some(f) = file {
        solo::spawn_blocking(move || f.sync_all()).await??;
    }
    Ok(Response::text(format!("{written} bytes to {} fnv1a {hash:016x}\n", path.display())).with_status(201))
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|e| std::io::Error::other(format!("port {p:?}: {e}")))?,
        None => 8080,
    };
    let dir = Rc::new(args.next().map_or_else(std::env::temp_dir, PathBuf::from));
    let config = Config {
        max_body: 1 << 30,
        ..Config::default()
    };
    let server = Server::bind(("127.0.0.1", port))?.config(config).put("/upload/:name", {
        let dir = dir.clone();
        move |req: Request| upload(req, dir.clone())
    });
    eprintln!(
        "upload: listening on http://{} (files go to {})",
        server.local_addr()?,
        dir.display()
    );
    server.run()
}

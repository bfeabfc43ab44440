//! `bare-hyper ADDR`: the baseline of `cargo xtask bench`'s `http-ingest` scenario. A hyper
//! server (HTTP/1.1 and HTTP/2, keep-alive) on the same runtime settings as temblor's network
//! plugins (`TEMBLOR_NET_THREADS` workers, default 2) that reads every request's body and
//! answers `202 Accepted` with no body: what the `http_server` connector does before the
//! engine, without the engine. Prints the address it listens on, then serves until killed.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use temblor_net::{
    http_body_util::{BodyExt, Empty},
    hyper::{self, Request, Response, StatusCode, body::Bytes, service::service_fn},
    hyper_util::{
        rt::{TokioExecutor, TokioIo},
        server::conn::auto,
    },
    tokio::{self, net::TcpListener},
};

static BYTES: AtomicU64 = AtomicU64::new(0);

async fn answer(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
    let mut res = Response::new(Empty::new());
    *res.status_mut() = StatusCode::ACCEPTED;
    Ok(res)
}

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()
        .expect("usage: bare-hyper HOST:PORT");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(temblor_net::runtime::worker_threads())
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        println!("{}", listener.local_addr().expect("local address"));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service_fn(answer))
                    .await;
            });
        }
    });
}

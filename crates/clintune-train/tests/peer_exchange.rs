//! The peer-to-peer tensor exchange that multi-node training runs on:
//! burn-communication's data service, as `third_party/burn-communication`
//! patches it (see `third_party/README.md`).

use std::sync::Arc;
use std::time::Duration;

use burn::backend::Flex;
use burn::tensor::TensorData;
use burn_communication::data_service::{TensorDataServer, TensorDataService};
use burn_communication::websocket::{WebSocket, WsServer};
use burn_communication::{Address, ProtocolServer};
use tokio_util::sync::CancellationToken;

type Service = TensorDataService<Flex, WebSocket>;

/// A port nothing listens on, below Linux's ephemeral range (32768–60999):
/// a connection to an unused port inside it can be given that same port as
/// its source and connect to itself.
fn free_port() -> u16 {
    let base = 19_000 + (std::process::id() % 1000) as u16;
    (base..)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port")
}

#[test]
fn a_download_waits_for_a_peer_whose_server_is_not_listening_yet() {
    // A node learns its peers' addresses as soon as the last one registers,
    // which can be before that one's server listens. burn-communication
    // 0.21.0 panicked on the refused connection.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let port = free_port();
        let address: Address = format!("ws://127.0.0.1:{port}").parse().unwrap();
        let stop = CancellationToken::new();
        let (me, peer) = (
            Service::new(stop.clone()),
            Arc::new(Service::new(stop.clone())),
        );
        let download = tokio::spawn(async move { me.download_tensor(address, 7.into()).await });
        // Long enough for the first connection to be refused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!download.is_finished(), "the download gave up at once");
        let server = WsServer::new(port)
            .route_tensor_data_service(peer.clone())
            .serve(stop.clone().cancelled_owned());
        tokio::spawn(server);
        let sent = TensorData::new(vec![1.5f32, -2.0, 3.25], [3]);
        peer.expose_data(sent.clone(), 1, 7.into()).await;
        let got = tokio::time::timeout(Duration::from_secs(30), download)
            .await
            .expect("the download ends once the peer listens")
            .expect("the download does not panic")
            .expect("the peer sends the tensor");
        assert_eq!(got, sent);
        stop.cancel();
    });
}

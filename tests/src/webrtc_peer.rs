//! A WebRTC peer for the meetings tests (the `webrtc` crate, a real ICE/DTLS/SCTP stack):
//! it offers or answers with a complete SDP (all candidates gathered first, so one signal
//! each way through Dure is enough), opens one data channel and exchanges text on it.
//!
//! The SDP travels as a browser's `RTCSessionDescriptionInit` (`{"type","sdp"}`), the payload
//! the meeting page sends in `meet.signal`, so these peers and the page speak the same way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState,
    RTCSessionDescription,
};

pub use crate::server::BoxError;

/// How long ICE gathering may take (a TURN allocation included).
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(15);
/// The data channel's label.
const LABEL: &str = "dure-test";

/// What happened on the connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    State(RTCPeerConnectionState),
    Open,
    Text(String),
    Closed,
}

/// ICE servers as Dure's `meet.turn` event lists them.
pub fn ice_servers_from_grant(turn_event: &Value) -> Vec<RTCIceServer> {
    turn_event["ice_servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| RTCIceServer {
                    urls: s["urls"]
                        .as_array()
                        .map(|u| {
                            u.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    username: s["username"].as_str().unwrap_or_default().to_owned(),
                    credential: s["credential"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Handler {
    events: mpsc::UnboundedSender<PeerEvent>,
    gathered: watch::Sender<bool>,
    channel: Arc<Mutex<Option<Arc<dyn DataChannel>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        if let Ok(mut c) = self.channel.lock() {
            *c = Some(dc.clone());
        }
        pump_channel(dc, self.events.clone());
    }
}

/// Forwards a channel's events until it closes.
fn pump_channel(dc: Arc<dyn DataChannel>, events: mpsc::UnboundedSender<PeerEvent>) {
    tokio::spawn(async move {
        while let Some(event) = dc.poll().await {
            let e = match event {
                DataChannelEvent::OnOpen => PeerEvent::Open,
                DataChannelEvent::OnMessage(msg) => {
                    PeerEvent::Text(String::from_utf8_lossy(&msg.data).into_owned())
                }
                DataChannelEvent::OnClose => {
                    let _ = events.send(PeerEvent::Closed);
                    break;
                }
                _ => continue,
            };
            if events.send(e).is_err() {
                break;
            }
        }
    });
}

/// One peer connection with its data channel.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    events_tx: mpsc::UnboundedSender<PeerEvent>,
    gathered: watch::Receiver<bool>,
    channel: Arc<Mutex<Option<Arc<dyn DataChannel>>>>,
    /// Texts received while waiting for something else.
    pending: Vec<String>,
    /// Every connection state seen, for failure messages.
    pub states: Vec<RTCPeerConnectionState>,
}

impl Peer {
    /// A peer using `ice_servers`; with `relay_only` it gathers relay candidates only, so
    /// any connection it makes goes through TURN.
    pub async fn new(ice_servers: Vec<RTCIceServer>, relay_only: bool) -> Result<Peer, BoxError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (gathered_tx, gathered) = watch::channel(false);
        let channel = Arc::new(Mutex::new(None));
        let policy = if relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .with_ice_transport_policy(policy)
                    .build(),
            )
            .with_handler(Arc::new(Handler {
                events: events_tx.clone(),
                gathered: gathered_tx,
                channel: channel.clone(),
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?;
        Ok(Peer {
            pc: Arc::new(pc),
            events,
            events_tx,
            gathered,
            channel,
            pending: vec![],
            states: vec![],
        })
    }

    /// Opens the data channel and returns the offer, all candidates included.
    pub async fn offer(&mut self) -> Result<Value, BoxError> {
        let dc = self.pc.create_data_channel(LABEL, None).await?;
        if let Ok(mut c) = self.channel.lock() {
            *c = Some(dc.clone());
        }
        pump_channel(dc, self.events_tx.clone());
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_after_gathering().await
    }

    /// Answers an offer payload, all candidates included.
    pub async fn answer(&mut self, offer: &Value) -> Result<Value, BoxError> {
        let sdp = sdp_of(offer, "offer")?;
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.local_after_gathering().await
    }

    /// Takes the answer to this peer's offer.
    pub async fn accept(&mut self, answer: &Value) -> Result<(), BoxError> {
        let sdp = sdp_of(answer, "answer")?;
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        Ok(())
    }

    async fn local_after_gathering(&mut self) -> Result<Value, BoxError> {
        tokio::time::timeout(GATHER_TIMEOUT, self.gathered.wait_for(|done| *done))
            .await
            .map_err(|_| format!("ICE gathering did not complete within {GATHER_TIMEOUT:?}"))??;
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or("no local description after gathering")?;
        Ok(json!({"type": desc.sdp_type.to_string(), "sdp": desc.sdp}))
    }

    /// The candidate lines of the local description (`a=candidate:…`).
    pub async fn local_candidates(&self) -> Vec<String> {
        self.pc
            .local_description()
            .await
            .map(|d| {
                d.sdp
                    .lines()
                    .filter(|l| l.starts_with("a=candidate:"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn next_event(&mut self, limit: Duration) -> Result<PeerEvent, BoxError> {
        let e = tokio::time::timeout(limit, self.events.recv())
            .await
            .map_err(|_| {
                format!(
                    "no peer event within {limit:?} (connection states so far: {:?})",
                    self.states
                )
            })?
            .ok_or("the peer's event channel closed")?;
        if let PeerEvent::State(s) = &e {
            self.states.push(*s);
        }
        Ok(e)
    }

    /// Waits until the data channel is open; fails early if the connection fails.
    pub async fn wait_open(&mut self, limit: Duration) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await? {
                PeerEvent::Open => return Ok(()),
                PeerEvent::Text(t) => self.pending.push(t),
                PeerEvent::State(RTCPeerConnectionState::Failed) => {
                    return Err("the peer connection failed before the channel opened".into());
                }
                PeerEvent::Closed => return Err("the data channel closed before opening".into()),
                PeerEvent::State(_) => {}
            }
        }
    }

    /// Sends text on the data channel.
    pub async fn send(&self, text: &str) -> Result<(), BoxError> {
        let dc = self
            .channel
            .lock()
            .map_err(|_| "channel lock poisoned")?
            .clone()
            .ok_or("no data channel yet")?;
        dc.send_text(text).await?;
        Ok(())
    }

    /// The next text received on the data channel.
    pub async fn recv(&mut self, limit: Duration) -> Result<String, BoxError> {
        if !self.pending.is_empty() {
            return Ok(self.pending.remove(0));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await? {
                PeerEvent::Text(t) => return Ok(t),
                PeerEvent::Closed => return Err("the data channel closed".into()),
                _ => {}
            }
        }
    }

    pub async fn close(&self) -> Result<(), BoxError> {
        self.pc.close().await?;
        Ok(())
    }
}

fn sdp_of(payload: &Value, kind: &str) -> Result<String, BoxError> {
    if payload["type"] != kind {
        return Err(format!("expected an {kind} payload, got {payload}").into());
    }
    Ok(payload["sdp"]
        .as_str()
        .ok_or_else(|| format!("{kind} payload without sdp: {payload}"))?
        .to_owned())
}

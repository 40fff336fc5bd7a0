// Mesh WebRTC: one RTCPeerConnection per other joined participant, signalled over `/ws/rt`
// (docs/realtime.md, meet.signal). Of each pair, the participant with the smaller id (string
// comparison) makes every offer, so offers never cross; the other side asks for one with a
// "restart" signal. Payloads: offer/answer `{type, sdp}`, candidate RTCIceCandidateInit
// (trickle); an answerer also copes with a complete SDP and no candidates at all.

import type { LocalMedia } from './media';

export type SignalKind = 'offer' | 'answer' | 'candidate' | 'restart';
export type SendSignal = (to: string, kind: SignalKind, payload: object) => Promise<unknown>;

/** How long a connection may stay "disconnected" before it is restarted. */
const DISCONNECTED_RESTART_MS = 5000;
/** The longest offers wait for ICE servers from `meet.turn`. */
const TURN_WAIT_MS = 3000;

export class Peer {
  readonly pc: RTCPeerConnection;
  readonly stream = new MediaStream();
  /** Candidates that came before the remote description. */
  private early: RTCIceCandidateInit[] = [];
  private restartTimer: number | undefined;
  private making = false;
  private again = false;
  onTrack: () => void = () => {};

  constructor(
    readonly id: string,
    readonly offerer: boolean,
    config: RTCConfiguration,
    private readonly media: LocalMedia,
    private readonly send: SendSignal,
  ) {
    this.pc = new RTCPeerConnection(config);
    this.pc.onicecandidate = (e) => {
      if (e.candidate) void this.send(id, 'candidate', e.candidate.toJSON()).catch(() => {});
    };
    this.pc.ontrack = (e) => {
      if (!this.stream.getTracks().includes(e.track)) this.stream.addTrack(e.track);
      e.track.addEventListener('unmute', () => this.onTrack());
      this.onTrack();
    };
    this.pc.onconnectionstatechange = () => this.watchState();
    this.pc.oniceconnectionstatechange = () => this.watchState();
    if (offerer) {
      // Both kinds always, even with the device off, so that switching on later (or sharing
      // the screen) is a replaceTrack without renegotiation.
      this.pc.addTransceiver(media.audio ?? 'audio', { direction: 'sendrecv', streams: [media.stream] });
      this.pc.addTransceiver(media.video ?? 'video', { direction: 'sendrecv', streams: [media.stream] });
      void this.offer(false);
    }
  }

  /** Makes (or, when one is being made, queues) an offer. Offerer side only. */
  async offer(iceRestart: boolean): Promise<void> {
    if (this.making) {
      this.again = true;
      return;
    }
    this.making = true;
    try {
      const offer = await this.pc.createOffer({ iceRestart });
      await this.pc.setLocalDescription(offer);
      const d = this.pc.localDescription;
      if (d) await this.send(this.id, 'offer', { type: d.type, sdp: d.sdp });
    } catch (err) {
      console.warn('meet: offer failed', err);
    } finally {
      this.making = false;
    }
    if (this.again) {
      this.again = false;
      void this.offer(iceRestart);
    }
  }

  async signal(kind: SignalKind, payload: any): Promise<void> {
    try {
      if (kind === 'offer' && !this.offerer) await this.answer(payload);
      else if (kind === 'answer' && this.offerer) {
        if (this.pc.signalingState !== 'have-local-offer') return;
        await this.pc.setRemoteDescription({ type: 'answer', sdp: String(payload.sdp ?? '') });
        await this.flushEarly();
      } else if (kind === 'candidate') {
        const c = payload as RTCIceCandidateInit;
        if (!c || typeof c.candidate !== 'string') return;
        if (this.pc.remoteDescription) await this.pc.addIceCandidate(c);
        else this.early.push(c);
      } else if (kind === 'restart' && this.offerer) {
        await this.offer(true);
      }
    } catch (err) {
      console.warn(`meet: signal ${kind} from ${this.id} failed`, err);
    }
  }

  private async answer(payload: any): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'offer', sdp: String(payload.sdp ?? '') });
    this.attachToOffered();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    const d = this.pc.localDescription;
    if (d) await this.send(this.id, 'answer', { type: d.type, sdp: d.sdp });
    await this.flushEarly();
  }

  /** Answerer: put our tracks on the transceivers the offer made, one per kind. */
  private attachToOffered(): void {
    for (const kind of ['audio', 'video'] as const) {
      const tr = this.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && t.currentDirection !== 'stopped');
      if (!tr) continue;
      if (tr.direction === 'recvonly' || tr.direction === 'inactive') tr.direction = 'sendrecv';
      const track = kind === 'audio' ? this.media.audio : this.media.video;
      if (tr.sender.track !== track) void tr.sender.replaceTrack(track).catch(() => {});
      tr.sender.setStreams?.(this.media.stream);
    }
  }

  /** After a local track changed (mute, camera, screen): send the new one on every sender. */
  updateTracks(): void {
    for (const tr of this.pc.getTransceivers()) {
      if (tr.currentDirection === 'stopped') continue;
      const kind = tr.receiver.track.kind;
      const track = kind === 'audio' ? this.media.audio : this.media.video;
      if (tr.sender.track !== track) void tr.sender.replaceTrack(track).catch(() => {});
    }
  }

  setConfiguration(config: RTCConfiguration): void {
    try {
      this.pc.setConfiguration(config);
    } catch (err) {
      console.warn('meet: setConfiguration failed', err);
    }
  }

  close(): void {
    clearTimeout(this.restartTimer);
    this.pc.close();
    for (const t of this.stream.getTracks()) t.stop();
  }

  private async flushEarly(): Promise<void> {
    const early = this.early;
    this.early = [];
    for (const c of early) await this.pc.addIceCandidate(c).catch(() => {});
  }

  /** A failed path is restarted at once; a disconnected one after a grace period. */
  private watchState(): void {
    const s = this.pc.iceConnectionState;
    clearTimeout(this.restartTimer);
    if (s === 'failed' || this.pc.connectionState === 'failed') this.restart();
    else if (s === 'disconnected') this.restartTimer = window.setTimeout(() => this.restart(), DISCONNECTED_RESTART_MS);
  }

  private restart(): void {
    if (this.pc.signalingState === 'closed') return;
    if (this.offerer) void this.offer(true);
    else void this.send(this.id, 'restart', {}).catch(() => {});
  }
}

/** Every peer connection of this participant, kept in line with the roster. */
export class Mesh {
  readonly peers = new Map<string, Peer>();
  private config: RTCConfiguration = { iceServers: [] };
  /**
   * Offers wait for the first `meet.turn` (sent on entering, maybe after the roster): a first
   * attempt without the relay would fail where only TURN gets through. Not forever, though.
   */
  private haveServers = false;
  private lastRoster: string[] = [];
  private serversTimer: number;
  onChange: () => void = () => {};

  constructor(
    private readonly myId: string,
    private readonly media: LocalMedia,
    private readonly send: SendSignal,
  ) {
    this.serversTimer = window.setTimeout(() => this.serversReady(), TURN_WAIT_MS);
  }

  /** From `meet.turn`: new connections use these servers; existing ones switch to them. */
  setIceServers(servers: RTCIceServer[]): void {
    this.config = { iceServers: servers };
    for (const p of this.peers.values()) p.setConfiguration(this.config);
    this.serversReady();
  }

  private serversReady(): void {
    clearTimeout(this.serversTimer);
    if (this.haveServers) return;
    this.haveServers = true;
    this.roster(this.lastRoster);
  }

  /** Opens connections to newcomers (if we offer) and closes those to people who left. */
  roster(ids: string[]): void {
    this.lastRoster = ids;
    const present = new Set(ids.filter((id) => id !== this.myId));
    for (const [id, p] of this.peers) {
      if (!present.has(id)) {
        p.close();
        this.peers.delete(id);
      }
    }
    if (this.haveServers) for (const id of present) if (this.myId < id) this.peer(id);
    this.onChange();
  }

  signal(from: string, kind: SignalKind, payload: unknown): void {
    if (from === this.myId) return;
    // Only an offerer may open a connection from our side; theirs arrives as an offer (which
    // may come before the roster that lists them).
    if (!this.peers.has(from) && !(from < this.myId)) return;
    void this.peer(from).signal(kind, payload);
  }

  tracksChanged(): void {
    for (const p of this.peers.values()) p.updateTracks();
  }

  close(): void {
    clearTimeout(this.serversTimer);
    this.haveServers = true; // nothing more to open
    this.lastRoster = [];
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    this.onChange();
  }

  private peer(id: string): Peer {
    let p = this.peers.get(id);
    if (!p) {
      p = new Peer(id, this.myId < id, this.config, this.media, this.send);
      p.onTrack = () => this.onChange();
      this.peers.set(id, p);
      this.onChange();
    }
    return p;
  }
}

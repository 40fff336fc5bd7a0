// The /ws/rt client (docs/realtime.md): hello, requests with ids answered by promises, events
// with seq tracking, a ping every heartbeat_ms, and reconnection with resume after a drop or a
// network change. Final closes (4403 removed/denied, 1000 ended or left) stop reconnecting.
// Used by the meeting page (features ["meet"], one socket per meeting) and by messaging
// (features ["msg"], one socket for the app: msg/client.ts).

export interface RtError {
  code: string;
  message: string;
}

export interface Hello {
  session: string;
  resume_token: string;
  resumed: boolean;
  features: string[];
  heartbeat_ms: number;
  resume_window_ms: number;
  limits?: { max_message_bytes?: number; messages_per_second?: number; signal_bytes?: number };
  you: { user_id: string | null; name: string | null; guest: boolean };
}

type Frame = { v: number; type: string; id?: string; re?: string; seq?: number; data?: any };

export interface RtHandlers {
  /** A server event (meet.roster, meet.signal, ...). */
  event(type: string, data: any): void;
  /** After every hello: resumed=false means a fresh session (the caller joins again). */
  ready(hello: Hello): void;
  /** The socket is gone for good (final close, or the resume window passed). */
  closed(code: number, reason: string): void;
  /** Connection state for the UI (reconnecting banner). */
  state?(s: 'connecting' | 'open' | 'reconnecting'): void;
}

export class RtSocket {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<string, { ok: (d: any) => void; err: (e: RtError) => void }>();
  private session: { session: string; token: string } | null = null;
  private lastSeq = 0;
  private ping: number | undefined;
  private retry: number | undefined;
  private attempt = 0;
  private stopped = false;
  private windowMs = 30000;
  private droppedAt = 0;
  private readonly features: string[];
  private greeted = false;

  constructor(
    private readonly handlers: RtHandlers,
    opts: { features?: string[] } = {},
  ) {
    this.features = opts.features ?? ['meet'];
    // A network change usually kills the socket silently; reconnect at once instead of waiting
    // for the server's idle close.
    window.addEventListener('online', this.onOnline);
  }

  connect(): void {
    if (this.stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws/rt`);
    this.ws = ws;
    this.handlers.state?.(this.session ? 'reconnecting' : 'connecting');
    ws.onopen = () => {
      const resume = this.session ? { session: this.session.session, token: this.session.token, last_seq: this.lastSeq } : null;
      this.send('hello', { features: this.features, resume })
        .then((h: Hello) => {
          this.attempt = 0;
          this.droppedAt = 0;
          if (!h.resumed) this.lastSeq = 0;
          this.session = { session: h.session, token: h.resume_token };
          this.windowMs = h.resume_window_ms || 30000;
          clearInterval(this.ping);
          this.ping = window.setInterval(() => this.send('ping', {}).catch(() => {}), h.heartbeat_ms || 20000);
          this.greeted = true;
          this.handlers.state?.('open');
          this.handlers.ready(h);
        })
        .catch(() => ws.close());
    };
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
  }

  /** True while a socket is open and has said hello. */
  get open(): boolean {
    return this.greeted;
  }

  /** Sends a request; resolves with `ok` data, rejects with the error's {code, message}. */
  send(type: string, data: object): Promise<any> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject({ code: 'offline', message: 'offline' });
    const id = String(this.nextId++);
    ws.send(JSON.stringify({ v: 1, type, id, data }));
    return new Promise((ok, err) => this.pending.set(id, { ok, err }));
  }

  /** Leaves for good: no reconnection. */
  close(): void {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearInterval(this.ping);
    clearTimeout(this.retry);
    this.ws?.close(1000);
  }

  private onOnline = (): void => {
    if (this.stopped) return;
    clearTimeout(this.retry);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.close(4000);
    else this.connect();
  };

  private onFrame(text: unknown): void {
    if (typeof text !== 'string') return;
    let f: Frame;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (f.re !== undefined) {
      const p = this.pending.get(f.re);
      this.pending.delete(f.re);
      if (f.type === 'ok') p?.ok(f.data ?? {});
      else p?.err((f.data as RtError) ?? { code: 'internal', message: '' });
      return;
    }
    if (typeof f.seq === 'number') {
      // Replayed events after a resume may overlap what we saw; drop duplicates.
      if (f.seq <= this.lastSeq) return;
      this.lastSeq = f.seq;
    }
    this.handlers.event(f.type, f.data ?? {});
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.greeted = false;
    clearInterval(this.ping);
    for (const p of this.pending.values()) p.err({ code: 'offline', message: 'offline' });
    this.pending.clear();
    if (this.stopped || code === 4403 || code === 1000 || code === 4400 || code === 4409) {
      this.stopped = true;
      this.handlers.closed(code, reason);
      return;
    }
    if (!this.droppedAt) this.droppedAt = Date.now();
    if (Date.now() - this.droppedAt > this.windowMs) this.session = null; // resume would fail anyway
    const delay = Math.min(10000, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.retry = window.setTimeout(() => this.connect(), delay);
  }
}

import * as decoding from 'lib0/decoding';
import { removeAwarenessStates } from 'y-protocols/awareness';
import { IndexeddbPersistence } from 'y-indexeddb';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { docDatabaseName } from '../offline';

// One open document: the Yjs doc, its local copy (IndexedDB, for offline work) and the live
// connection to Dure, with an honest save state built on Dure's acknowledgements.

/** Dure's "saved" message: varUint(100) · varUint(n), n = update frames stored so far. */
const MESSAGE_ACK = 100;
/** y-protocols auth message: varUint(2) · varUint(0 = permission denied) · varString(reason). */
const MESSAGE_AUTH = 2;
const MESSAGE_SYNC = 0;
const SYNC_STEP_2 = 1;
const SYNC_UPDATE = 2;

/** Close codes after which reconnecting is pointless (docs/api.md). */
export type FinalClose = 4401 | 4403 | 4404 | 'other';

export type SaveState =
  | { kind: 'connecting' }
  | { kind: 'offline' }
  | { kind: 'saving' }
  | { kind: 'saved' }
  | { kind: 'final'; code: FinalClose; reason: string };

/** How long the first connection may take before the status says "offline". */
const CONNECT_GRACE_MS = 4000;

/** True for frames the server counts for acks: sync step 2 and update messages. */
export function isUpdateFrame(data: unknown): boolean {
  let bytes: Uint8Array;
  if (data instanceof Uint8Array) bytes = data;
  else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else return false;
  try {
    const decoder = decoding.createDecoder(bytes);
    if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return false;
    const sub = decoding.readVarUint(decoder);
    return sub === SYNC_STEP_2 || sub === SYNC_UPDATE;
  } catch {
    return false;
  }
}

export class DocConnection {
  readonly doc = new Y.Doc();
  readonly provider: WebsocketProvider;
  readonly local: IndexeddbPersistence;
  /** Update-bearing frames sent on the current socket, and how many the server stored. */
  sent = 0;
  acked = 0;
  private socket: WebSocket | null = null;
  private everConnected = false;
  private destroyed = false;
  /** Whether the server has ever sent this document (false: refused before any content). */
  everSynced = false;
  private final: SaveState | null = null;
  private readonly startedAt = Date.now();
  private readonly listeners = new Set<() => void>();
  private readonly deniedListeners = new Set<(reason: string) => void>();
  private graceTimer: number;
  private readonly onOnline = (): void => {
    if (!this.final) this.provider.connect();
    this.changed();
  };
  /**
   * Leaving the page for good: tell the other tabs of this browser (y-websocket's
   * BroadcastChannel) that we are gone, or they show us for another 30 s. The server drops our
   * presence itself when the socket closes.
   */
  private readonly onPageHide = (e: PageTransitionEvent): void => {
    if (!e.persisted) removeAwarenessStates(this.provider.awareness, [this.doc.clientID], 'page hidden');
  };
  private readonly onOffline = (): void => {
    // The socket may take long to notice a dead network; stop now, resume on 'online'.
    if (!this.final) this.provider.disconnect();
    this.changed();
  };

  constructor(
    readonly docId: string,
    userId: string,
  ) {
    this.local = new IndexeddbPersistence(docDatabaseName(userId, docId), this.doc);
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/doc`;
    this.provider = new WebsocketProvider(url, docId, this.doc, {
      params: { ack: '1' },
      WebSocketPolyfill: this.countingSocketClass(),
      connect: navigator.onLine,
    });
    this.provider.messageHandlers[MESSAGE_ACK] = (_encoder, decoder) => {
      const n = decoding.readVarUint(decoder);
      // n never decreases; the max guards against a late ack of an older socket anyway.
      if (n > this.acked) {
        this.acked = n;
        this.changed();
      }
    };
    this.provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => {
      const kind = decoding.readVarUint(decoder);
      const reason = kind === 0 ? decoding.readVarString(decoder) : '';
      for (const l of this.deniedListeners) l(reason);
    };
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') this.everConnected = true;
      this.changed();
    });
    this.provider.on('sync', (synced) => {
      if (synced) this.everSynced = true;
      this.changed();
    });
    this.provider.on('closed', ({ code, reason }) => {
      const final: FinalClose = code === 4401 || code === 4403 || code === 4404 ? code : 'other';
      this.final = { kind: 'final', code: final, reason };
      // No access (any more): nothing of this document stays on this device. (Signed out: the
      // copy stays, with any unsaved edits, for when this person signs in again.)
      if (code === 4403) void this.local.clearData();
      this.changed();
    });
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('pagehide', this.onPageHide);
    this.graceTimer = window.setTimeout(() => this.changed(), CONNECT_GRACE_MS + 50);
  }

  /**
   * A WebSocket class that counts this connection's update-bearing frames as they are sent.
   * y-websocket creates one socket per connection attempt, so the counters restart with each
   * socket, exactly like the server's per-connection count.
   */
  private countingSocketClass(): typeof WebSocket {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const conn = this;
    return class CountingWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        conn.socket = this;
        conn.sent = 0;
        conn.acked = 0;
      }
      override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
        super.send(data);
        if (conn.socket === this && isUpdateFrame(data)) {
          conn.sent++;
          conn.changed();
        }
      }
    };
  }

  get state(): SaveState {
    if (this.final) return this.final;
    if (!this.provider.wsconnected) {
      const early = !this.everConnected && navigator.onLine && Date.now() - this.startedAt < CONNECT_GRACE_MS;
      return early ? { kind: 'connecting' } : { kind: 'offline' };
    }
    // Until the first exchange is done our sync step 2 (carrying any offline edits) may not
    // have gone out yet: claiming "saved" then would be premature.
    if (!this.provider.synced || this.sent === 0) return { kind: 'connecting' };
    return this.sent > this.acked ? { kind: 'saving' } : { kind: 'saved' };
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onPermissionDenied(fn: (reason: string) => void): void {
    this.deniedListeners.add(fn);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  /**
   * Ends the connection and deletes this document's copy on this device (the next
   * DocConnection starts from the server's copy). Used when the server refused local edits:
   * it will never take them, and later edits built on them would not apply anywhere.
   */
  async discardLocalCopy(): Promise<void> {
    const name = this.local.name;
    this.destroy();
    await new Promise<void>((resolve) => {
      // Other tabs holding the database close it on 'versionchange' (y-indexeddb).
      const req = indexedDB.deleteDatabase(name);
      req.onsuccess = req.onerror = req.onblocked = () => resolve();
    });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.graceTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    window.removeEventListener('pagehide', this.onPageHide);
    this.listeners.clear();
    this.deniedListeners.clear();
    this.provider.destroy();
    void this.local.destroy();
    this.doc.destroy();
  }
}

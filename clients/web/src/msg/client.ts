// Messaging over /ws/rt (docs/messaging.md): one socket for the whole app, opened the first
// time something needs it (the list's unread badge, the messages page, "Share this document"),
// and the state every screen reads: conversations, the loaded part of each log, typing,
// presence, document titles. Events keep it current; after a reconnection every log held here
// catches up from the last entry it has (`msg.history {after}`), deduplicated by seq.
// Also app-wide: presence away/online (hidden or idle for 5 minutes) and browser
// notifications while the tab is hidden.

import { type Hello, RtSocket } from '../rt/socket';
import { navigate } from '../router';
import { session } from '../session';
import { t } from '../i18n';
import { isGroupLike, type ChangeEntry, type Conversation, type Entry, type EventEntry, type Message, type PresenceState } from './types';

export type ClientState = 'off' | 'connecting' | 'open' | 'reconnecting' | 'unavailable' | 'closed';

export type Change =
  | { kind: 'state' }
  | { kind: 'list' }
  | { kind: 'log'; conv: string }
  | { kind: 'typing'; conv: string }
  | { kind: 'presence' }
  | { kind: 'titles' }
  | { kind: 'removed'; conv: string; reason: string };

export interface MsgError {
  code: string;
  message: string;
}

/** A message of ours on its way: shown at once, replaced by the real one when it comes. */
export interface Pending {
  ref: string;
  text: string;
  at: number;
  reply_to: number | null;
  attachments: { name: string }[];
  seq: number | null;
}

/** The part of one conversation's log this device holds: a contiguous range of entries. */
export class ConvLog {
  readonly entries = new Map<number, Entry>();
  /** Messages outside the range, fetched to quote a reply's target. */
  readonly quoted = new Map<number, Message>();
  oldest = 0;
  /** Every entry from `oldest` to `upto` is here (the next catch-up starts after it). */
  upto = 0;
  hasOlder = false;
  loaded = false;
  loadingOlder = false;
  pending: Pending[] = [];

  message(seq: number): Message | null {
    const e = this.entries.get(seq);
    if (e?.kind === 'message') return e;
    return this.quoted.get(seq) ?? null;
  }

  /** The entries in seq order. */
  sorted(): Entry[] {
    return [...this.entries.values()].sort((a, b) => a.seq - b.seq);
  }

  add(e: Entry): boolean {
    if (this.entries.has(e.seq) && e.kind !== 'message') return false;
    const had = this.entries.has(e.seq);
    this.entries.set(e.seq, e);
    if (this.oldest === 0 || e.seq < this.oldest) this.oldest = e.seq;
    while (this.entries.has(this.upto + 1)) this.upto++;
    if (e.kind === 'message') {
      this.quoted.delete(e.seq);
      this.pending = this.pending.filter((p) => !(p.ref === e.client_ref || p.seq === e.seq));
    }
    return !had;
  }
}

const TYPING_SEND_MS = 3000;
const TYPING_SHOW_MS = 5000;
const AWAY_AFTER_MS = 5 * 60_000;
const WATCH_MAX = 200;

function rtError(e: unknown): MsgError {
  const x = e as Partial<MsgError> | null;
  return { code: typeof x?.code === 'string' ? x.code : 'internal', message: typeof x?.message === 'string' ? x.message : String(e) };
}

export class MsgClient {
  state: ClientState = 'off';
  readonly convs = new Map<string, Conversation>();
  listLoaded = false;
  archivedLoaded = false;
  readonly logs = new Map<string, ConvLog>();
  readonly typing = new Map<string, Map<string, { name: string; until: number }>>();
  readonly presence = new Map<string, PresenceState>();
  /** Document titles from doc.titles: a string, or null when the reader may not open it. */
  readonly titles = new Map<string, string | null>();
  readonly drafts = new Map<string, string>();
  /**
   * Names of everyone seen as a member or author: event entries name people by id only, and
   * someone removed is no longer among the members.
   */
  readonly names = new Map<string, string>();
  /** Conversations removed from under us (left or removed), with the reason. */
  readonly gone = new Map<string, string>();

  private rt: RtSocket | null = null;
  private listeners = new Set<(c: Change) => void>();
  private waiters: { ok: () => void; err: (e: MsgError) => void; timer: number }[] = [];
  private greetedOnce = false;
  private refs = 0;
  private typingSent = new Map<string, number>();
  private typingTimer: number | undefined;
  private readSent = new Map<string, number>();
  private watchSets = new Map<string, string[]>();
  private watchTimer: number | undefined;
  private titleAsked = new Set<string>();
  private titleTimer: number | undefined;
  private notified = new Set<string>();
  private away = false;
  private lastActivity = Date.now();
  private hiddenSince: number | null = null;
  private activityTimer: number | undefined;
  private fetchingConv = new Set<string>();
  /** Reply targets being fetched (`conv:seq`), asked once each. */
  private quoting = new Set<string>();

  get me(): string {
    return session.me.id;
  }

  /** Opens the socket (once); later calls do nothing. */
  start(): void {
    if (this.rt) return;
    this.state = 'connecting';
    this.rt = new RtSocket(
      {
        event: (type, data) => this.onEvent(type, data),
        ready: (h) => this.onReady(h),
        closed: () => {
          if (this.state === 'unavailable') return;
          this.state = 'closed';
          this.failWaiters({ code: 'offline', message: 'closed' });
          this.emit({ kind: 'state' });
        },
        state: (s) => {
          if (s === 'open' || this.state === 'unavailable') return;
          this.state = s === 'reconnecting' ? 'reconnecting' : 'connecting';
          this.emit({ kind: 'state' });
        },
      },
      { features: ['msg'] },
    );
    this.rt.connect();
    this.watchActivity();
  }

  /** Keeps a conversation's view (and learns its members' names). */
  private put(c: Conversation): void {
    for (const m of c.members) this.names.set(m.user_id, m.name);
    this.convs.set(c.id, c);
  }

  subscribe(fn: (c: Change) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(c: Change): void {
    for (const l of [...this.listeners]) l(c);
  }

  // ----- requests -----

  /** Waits for the socket (up to 15 s), then sends; rejects with {code, message}. */
  async request(type: string, data: object): Promise<any> {
    this.start();
    if (this.state === 'unavailable') throw { code: 'unavailable_feature', message: 'messaging is off' } satisfies MsgError;
    if (!this.rt?.open) {
      await new Promise<void>((ok, err) => {
        const timer = window.setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w.timer !== timer);
          err({ code: 'offline', message: 'offline' });
        }, 15000);
        this.waiters.push({ ok, err, timer });
      });
    }
    try {
      return await (this.rt as RtSocket).send(type, data);
    } catch (e) {
      throw rtError(e);
    }
  }

  private failWaiters(e: MsgError): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) {
      clearTimeout(w.timer);
      w.err(e);
    }
  }

  private onReady(h: Hello): void {
    if (!h.features.includes('msg') || h.you.guest) {
      this.state = 'unavailable';
      this.failWaiters({ code: 'unavailable_feature', message: 'messaging is off' });
      this.emit({ kind: 'state' });
      this.rt?.close();
      return;
    }
    this.state = 'open';
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) {
      clearTimeout(w.timer);
      w.ok();
    }
    this.emit({ kind: 'state' });
    // The presence list and state belong to the socket: say them on every new one.
    if (this.watchSets.size) this.sendWatch();
    if (this.away) void this.request('presence.set', { state: 'away' }).catch(() => {});
    const again = this.greetedOnce;
    this.greetedOnce = true;
    if (!again) return;
    // Reconnected: what happened meanwhile.
    if (this.listLoaded) void this.loadList(false).catch(() => {});
    if (this.archivedLoaded) void this.loadList(true).catch(() => {});
    for (const id of this.logs.keys()) void this.catchUp(id).catch(() => {});
  }

  // ----- conversations -----

  async loadList(archived: boolean): Promise<void> {
    const r = await this.request('conv.list', { archived });
    const got = (r.conversations as Conversation[]) ?? [];
    const ids = new Set(got.map((c) => c.id));
    // The answer is the whole list of its kind: drop what is no longer in it.
    for (const [id, c] of this.convs) if (!!c.archived === archived && !ids.has(id)) this.convs.delete(id);
    for (const c of got) this.put(c);
    if (archived) this.archivedLoaded = true;
    else this.listLoaded = true;
    this.emit({ kind: 'list' });
  }

  /** Newest activity first. */
  list(archived: boolean): Conversation[] {
    return [...this.convs.values()]
      .filter((c) => !!c.archived === archived)
      .sort((a, b) => (b.last_at ?? b.created_at) - (a.last_at ?? a.created_at));
  }

  totalUnread(): { n: number; more: boolean } {
    let n = 0;
    let more = false;
    for (const c of this.convs.values()) {
      if (c.archived) continue;
      n += c.unread;
      more ||= !!c.unread_more;
    }
    return { n, more };
  }

  async getConv(id: string): Promise<Conversation> {
    const r = await this.request('conv.get', { conversation: id });
    const c = r.conversation as Conversation;
    this.put(c);
    this.gone.delete(c.id);
    this.emit({ kind: 'list' });
    return c;
  }

  async create(data: { kind: 'direct'; user: string } | { kind: 'group'; title: string; members: string[] }): Promise<Conversation> {
    const r = await this.request('conv.create', data);
    const c = r.conversation as Conversation;
    this.put(c);
    this.gone.delete(c.id);
    this.emit({ kind: 'list' });
    return c;
  }

  async act(type: 'conv.rename' | 'conv.add' | 'conv.remove' | 'conv.leave' | 'conv.role' | 'conv.archive', data: object): Promise<void> {
    await this.request(type, data);
    const conv = (data as { conversation?: string }).conversation;
    if (type === 'conv.archive' && conv) {
      const c = this.convs.get(conv);
      if (c) {
        c.archived = !!(data as { archived?: boolean }).archived;
        this.emit({ kind: 'list' });
      }
    }
  }

  /** The conversation as shown: its title, or for a direct one the other person's name. */
  title(c: Conversation): string {
    if (c.kind === 'group') return c.title || t('msgUntitledGroup');
    if (c.kind === 'meeting') return c.title || t('msgMeetingChat');
    const other = c.members.find((m) => m.user_id !== this.me) ?? c.members[0];
    return other?.name ?? t('msgUntitledGroup');
  }

  partner(c: Conversation): string | null {
    if (c.kind !== 'direct') return null;
    return c.members.find((m) => m.user_id !== this.me)?.user_id ?? null;
  }

  // ----- logs -----

  log(conv: string): ConvLog {
    let l = this.logs.get(conv);
    if (!l) {
      l = new ConvLog();
      this.logs.set(conv, l);
    }
    return l;
  }

  /** The newest page of the log, once. */
  async openLog(conv: string): Promise<ConvLog> {
    const l = this.log(conv);
    if (l.loaded) return l;
    const r = await this.request('msg.history', { conversation: conv, before: null, after: null, limit: 50 });
    const entries = (r.entries as Entry[]) ?? [];
    if (entries.length) {
      // Anything that came live before the page: the page reaches up to it or past it.
      const first = entries[0] as Entry;
      l.oldest = first.seq;
      l.upto = first.seq - 1;
    }
    for (const e of entries) l.add(e);
    if (!entries.length && typeof r.last_seq === 'number') {
      l.upto = r.last_seq;
      l.oldest = r.last_seq + 1;
    }
    l.hasOlder = !!r.more;
    l.loaded = true;
    this.emit({ kind: 'log', conv });
    // Events that arrived while the page was on its way may be newer than it.
    await this.catchUp(conv);
    return l;
  }

  async loadOlder(conv: string): Promise<void> {
    const l = this.log(conv);
    if (!l.loaded || !l.hasOlder || l.loadingOlder) return;
    l.loadingOlder = true;
    try {
      const r = await this.request('msg.history', { conversation: conv, before: l.oldest, after: null, limit: 50 });
      for (const e of (r.entries as Entry[]) ?? []) l.add(e);
      l.hasOlder = !!r.more && ((r.entries as Entry[]) ?? []).length > 0;
    } finally {
      l.loadingOlder = false;
    }
    this.emit({ kind: 'log', conv });
  }

  /** Everything after the last entry held, page by page until `more` is false. */
  async catchUp(conv: string): Promise<void> {
    const l = this.logs.get(conv);
    if (!l?.loaded) return;
    const changed = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const r = await this.request('msg.history', { conversation: conv, before: null, after: l.upto, limit: 100 });
      const entries = (r.entries as Entry[]) ?? [];
      for (const e of entries) {
        if (e.kind === 'edit' || e.kind === 'delete') changed.add(e.target);
        l.add(e);
        this.noteEntry(conv, e);
      }
      if (!r.more || !entries.length) break;
    }
    // An edit or delete entry names its target; the target as we hold it may predate it.
    for (const seq of changed) {
      const m = l.message(seq);
      if (!m) continue;
      const fresh = await this.fetchMessage(conv, seq).catch(() => null);
      if (fresh) this.replaceMessage(conv, fresh);
    }
    this.emit({ kind: 'log', conv });
  }

  /** One message by seq (a reply's target outside the loaded range, or after an edit). */
  async fetchMessage(conv: string, seq: number): Promise<Message | null> {
    const r = await this.request('msg.history', { conversation: conv, before: seq + 1, after: null, limit: 1 });
    const e = ((r.entries as Entry[]) ?? []).find((x) => x.seq === seq);
    return e?.kind === 'message' ? e : null;
  }

  async quote(conv: string, seq: number): Promise<void> {
    const l = this.log(conv);
    const key = `${conv}:${seq}`;
    if (l.message(seq) || this.quoting.has(key)) return;
    this.quoting.add(key);
    const m = await this.fetchMessage(conv, seq).catch(() => null);
    if (m && !l.entries.has(seq)) {
      l.quoted.set(seq, m);
      this.emit({ kind: 'log', conv });
    }
  }

  private replaceMessage(conv: string, m: Message): void {
    const l = this.logs.get(conv);
    if (l) {
      if (l.entries.has(m.seq)) l.entries.set(m.seq, m);
      else if (l.quoted.has(m.seq)) l.quoted.set(m.seq, m);
    }
    const c = this.convs.get(conv);
    if (c?.last_message?.seq === m.seq) c.last_message = m;
  }

  /** Keeps the conversation's view in step with an entry that arrived. */
  private noteEntry(conv: string, e: Entry): void {
    const c = this.convs.get(conv);
    if (!c) return;
    if (e.seq > c.last_seq) {
      c.last_seq = e.seq;
      if (e.kind === 'message') {
        c.last_at = e.at;
        c.last_message = e;
        if (e.author.user_id !== this.me && e.seq > c.read_seq) c.unread += 1;
      }
    }
  }

  // ----- sending -----

  /** Sends a message; resolves when the server has it (durable). */
  async send(
    conv: string,
    m: { text: string; reply_to: number | null; mentions: string[]; docs: string[]; attachments: { id: string; name: string }[] },
  ): Promise<void> {
    const ref = `c${Date.now().toString(36)}-${this.refs++}`;
    const l = this.log(conv);
    const p: Pending = { ref, text: m.text, at: Date.now(), reply_to: m.reply_to, attachments: m.attachments.map((a) => ({ name: a.name })), seq: null };
    l.pending.push(p);
    this.emit({ kind: 'log', conv });
    try {
      const r = await this.request('msg.send', {
        conversation: conv,
        text: m.text,
        client_ref: ref,
        reply_to: m.reply_to,
        mentions: m.mentions,
        docs: m.docs,
        attachments: m.attachments.map((a) => a.id),
      });
      if (typeof r.seq === 'number') {
        p.seq = r.seq;
        if (l.entries.has(r.seq) || !l.loaded) l.pending = l.pending.filter((x) => x !== p);
        else if (r.seq > l.upto + 1) void this.catchUp(conv).catch(() => {});
      }
    } catch (e) {
      l.pending = l.pending.filter((x) => x !== p);
      throw e;
    } finally {
      this.emit({ kind: 'log', conv });
    }
  }

  /** Raises our read marker to `seq` (markers only rise; one request per new height). */
  markRead(conv: string, seq: number): void {
    const c = this.convs.get(conv);
    if (!c || seq <= c.read_seq || seq <= (this.readSent.get(conv) ?? 0)) return;
    this.readSent.set(conv, seq);
    void this.request('msg.read', { conversation: conv, seq }).then(
      (r: { read_seq?: number; unread?: number }) => {
        const cur = this.convs.get(conv);
        if (!cur) return;
        if (typeof r.read_seq === 'number' && r.read_seq >= cur.read_seq) {
          cur.read_seq = r.read_seq;
          if (typeof r.unread === 'number') cur.unread = r.unread;
          if (cur.unread === 0) {
            cur.unread_mentions = 0;
            cur.unread_more = false;
          }
        }
        this.emit({ kind: 'list' });
      },
      () => this.readSent.delete(conv),
    );
  }

  /** Tells the others we are typing: at most one request per 3 s and conversation. */
  typed(conv: string): void {
    const last = this.typingSent.get(conv) ?? 0;
    if (Date.now() - last < TYPING_SEND_MS) return;
    this.typingSent.set(conv, Date.now());
    void this.request('msg.typing', { conversation: conv }).catch(() => {});
  }

  typers(conv: string): string[] {
    const now = Date.now();
    const m = this.typing.get(conv);
    if (!m) return [];
    return [...m.entries()].filter(([id, v]) => v.until > now && id !== this.me).map(([, v]) => v.name);
  }

  // ----- presence -----

  /** The users a screen wants presence for (`key` names the screen's set); sent as one list. */
  watch(key: string, users: string[]): void {
    const before = JSON.stringify(this.watchSets.get(key) ?? []);
    const sorted = [...new Set(users)].sort();
    if (before === JSON.stringify(sorted)) return;
    if (sorted.length) this.watchSets.set(key, sorted);
    else this.watchSets.delete(key);
    clearTimeout(this.watchTimer);
    this.watchTimer = window.setTimeout(() => this.sendWatch(), 150);
  }

  private sendWatch(): void {
    const all = [...new Set([...this.watchSets.values()].flat())].filter((u) => u !== this.me).slice(0, WATCH_MAX);
    if (!this.rt?.open || this.state !== 'open') return;
    void this.request('presence.watch', { users: all }).then(
      (r: { presence?: Record<string, PresenceState> }) => {
        for (const [u, s] of Object.entries(r.presence ?? {})) this.presence.set(u, s);
        this.emit({ kind: 'presence' });
      },
      () => {},
    );
  }

  /** Away after 5 minutes hidden or without a key press or pointer move; online again at once. */
  private watchActivity(): void {
    const active = (): void => {
      this.lastActivity = Date.now();
      if (this.away && document.visibilityState === 'visible') this.setAway(false);
    };
    for (const ev of ['pointerdown', 'pointermove', 'keydown', 'wheel', 'focus', 'touchstart']) {
      window.addEventListener(ev, active, { passive: true, capture: true });
    }
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') {
        this.hiddenSince = null;
        active();
      } else {
        this.hiddenSince = Date.now();
      }
    });
    if (document.visibilityState !== 'visible') this.hiddenSince = Date.now();
    clearInterval(this.activityTimer);
    this.activityTimer = window.setInterval(() => {
      const now = Date.now();
      const away = (this.hiddenSince !== null && now - this.hiddenSince >= AWAY_AFTER_MS) || now - this.lastActivity >= AWAY_AFTER_MS;
      if (away !== this.away) this.setAway(away);
    }, 15_000);
  }

  private setAway(away: boolean): void {
    this.away = away;
    if (this.state !== 'open') return;
    void this.request('presence.set', { state: away ? 'away' : 'online' }).catch(() => {});
  }

  // ----- document titles -----

  /** Asks doc.titles for ids not asked yet (batches of 50); `titles` fills in. */
  wantTitles(ids: string[]): void {
    let added = false;
    for (const id of ids) {
      if (this.titleAsked.has(id)) continue;
      this.titleAsked.add(id);
      added = true;
    }
    if (!added) return;
    clearTimeout(this.titleTimer);
    this.titleTimer = window.setTimeout(() => void this.fetchTitles(), 50);
  }

  private async fetchTitles(): Promise<void> {
    const missing = [...this.titleAsked].filter((id) => !this.titles.has(id));
    for (let i = 0; i < missing.length; i += 50) {
      const batch = missing.slice(i, i + 50);
      try {
        const r = await this.request('doc.titles', { docs: batch });
        const got = (r.titles ?? {}) as Record<string, string | null>;
        for (const id of batch) this.titles.set(id, typeof got[id] === 'string' ? (got[id] as string) : null);
      } catch {
        // Asked again when something shows them next.
        for (const id of batch) this.titleAsked.delete(id);
      }
    }
    this.emit({ kind: 'titles' });
  }

  // ----- notifications -----

  private notify(conv: string, m: Message, mention: boolean): void {
    if (m.author.user_id === this.me || this.notified.has(m.id)) return;
    if (document.visibilityState === 'visible') return;
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    // A mention comes right after its msg.new: give it the chance to be the one shown.
    if (!mention) {
      window.setTimeout(() => this.show(conv, m, false), 300);
      return;
    }
    this.show(conv, m, true);
  }

  private show(conv: string, m: Message, mention: boolean): void {
    if (this.notified.has(m.id)) return;
    this.notified.add(m.id);
    const c = this.convs.get(conv);
    const where = c ? this.title(c) : '';
    const title = mention ? t('msgNotifyMention', { name: m.author.name }) : c && isGroupLike(c) ? `${m.author.name} · ${where}` : m.author.name;
    const body = m.text ? m.text.slice(0, 200) : m.attachments.length ? t('msgNotifyFile', { n: m.attachments.length }) : '';
    try {
      const n = new Notification(title, { body, tag: m.id });
      n.onclick = () => {
        window.focus();
        navigate('/messages/' + conv);
        n.close();
      };
    } catch {
      // Some browsers only allow notifications from a service worker: not shown then.
    }
  }

  // ----- events -----

  private ensureConv(conv: string): void {
    if (this.convs.has(conv) || this.fetchingConv.has(conv) || this.gone.has(conv)) return;
    this.fetchingConv.add(conv);
    void this.getConv(conv)
      .catch(() => {})
      .finally(() => this.fetchingConv.delete(conv));
  }

  private onEvent(type: string, d: any): void {
    const conv = typeof d?.conversation === 'string' ? (d.conversation as string) : typeof d?.conversation?.id === 'string' ? (d.conversation.id as string) : '';
    switch (type) {
      case 'msg.new': {
        const m = d.message as Message;
        const l = this.logs.get(conv);
        if (l?.loaded) {
          if (m.seq > l.upto + 1) {
            // Missed something: fetch the gap (the new message comes with it).
            void this.catchUp(conv).catch(() => {});
          }
          l.add(m);
        } else if (l) {
          l.pending = l.pending.filter((p) => p.ref !== m.client_ref);
        }
        if (m.author.user_id) this.clearTyping(conv, m.author.user_id);
        this.ensureConv(conv);
        this.noteEntry(conv, m);
        this.notify(conv, m, false);
        this.emit({ kind: 'log', conv });
        this.emit({ kind: 'list' });
        break;
      }
      case 'msg.changed': {
        const entry = d.entry as ChangeEntry;
        const m = d.message as Message;
        const l = this.logs.get(conv);
        if (l?.loaded) l.add(entry);
        this.replaceMessage(conv, m);
        this.noteEntry(conv, entry);
        this.emit({ kind: 'log', conv });
        this.emit({ kind: 'list' });
        break;
      }
      case 'msg.mention': {
        const m = d.message as Message;
        const c = this.convs.get(conv);
        if (c && m.author.user_id !== this.me && m.seq > c.read_seq) c.unread_mentions += 1;
        this.notify(conv, m, true);
        this.emit({ kind: 'list' });
        break;
      }
      case 'conv.updated': {
        const c = d.conversation as Conversation;
        if (!c?.id) break;
        this.put(c);
        this.gone.delete(c.id);
        this.emit({ kind: 'list' });
        this.emit({ kind: 'log', conv: c.id });
        break;
      }
      case 'conv.entry': {
        const e = d.entry as EventEntry;
        const l = this.logs.get(conv);
        if (l?.loaded) {
          if (e.seq > l.upto + 1) void this.catchUp(conv).catch(() => {});
          l.add(e);
        }
        this.noteEntry(conv, e);
        this.ensureConv(conv);
        this.emit({ kind: 'log', conv });
        break;
      }
      case 'conv.removed': {
        this.convs.delete(conv);
        this.logs.delete(conv);
        this.gone.set(conv, String(d.reason ?? 'removed'));
        this.emit({ kind: 'list' });
        this.emit({ kind: 'removed', conv, reason: String(d.reason ?? 'removed') });
        break;
      }
      case 'conv.read': {
        const c = this.convs.get(conv);
        if (!c) break;
        if (typeof d.read_seq === 'number' && d.read_seq >= c.read_seq) {
          c.read_seq = d.read_seq;
          if (typeof d.unread === 'number') c.unread = d.unread;
          if (typeof d.unread_mentions === 'number') c.unread_mentions = d.unread_mentions;
          c.unread_more = c.unread >= 999 && !!c.unread_more;
        }
        this.emit({ kind: 'list' });
        break;
      }
      case 'msg.typing': {
        const user = String(d.user_id ?? '');
        if (!user || user === this.me) break;
        let m = this.typing.get(conv);
        if (!m) {
          m = new Map();
          this.typing.set(conv, m);
        }
        m.set(user, { name: String(d.name ?? ''), until: Date.now() + TYPING_SHOW_MS });
        this.emit({ kind: 'typing', conv });
        // Gone again after 5 s unless repeated.
        clearTimeout(this.typingTimer);
        this.typingTimer = window.setTimeout(() => this.expireTyping(), TYPING_SHOW_MS + 50);
        break;
      }
      case 'presence': {
        const user = String(d.user_id ?? '');
        if (!user) break;
        this.presence.set(user, d.state as PresenceState);
        this.emit({ kind: 'presence' });
        break;
      }
    }
  }

  private clearTyping(conv: string, user: string): void {
    if (this.typing.get(conv)?.delete(user)) this.emit({ kind: 'typing', conv });
  }

  private expireTyping(): void {
    const now = Date.now();
    let next = Infinity;
    for (const [conv, m] of this.typing) {
      let changed = false;
      for (const [u, v] of m) {
        if (v.until <= now) {
          m.delete(u);
          changed = true;
        } else next = Math.min(next, v.until);
      }
      if (changed) this.emit({ kind: 'typing', conv });
    }
    if (next !== Infinity) this.typingTimer = window.setTimeout(() => this.expireTyping(), next - now + 50);
  }
}

/** The app's one messaging client. */
export const msg = new MsgClient();

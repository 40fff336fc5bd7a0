// One conversation: its header, the log (history loaded on scrolling up, live events, messages
// grouped by author with times, replies quoting their target, "edited", "deleted", attachments,
// document links), the typing line, the composer, drag-and-drop of files, and read markers
// (`msg.read` with the newest entry in view while the tab is visible).

import { h, icon, replace } from '../dom';
import { lang, t } from '../i18n';
import { displayName } from '../session';
import { avatar, colorFor } from '../ui/avatar';
import { I } from '../ui/icons';
import { menuButton, type MenuItem } from '../ui/menu';
import { toast } from '../ui/toast';
import type { Change, MsgClient, MsgError, Pending } from './client';
import { Composer, snippet } from './composer';
import { msgErrorText } from './errors';
import { fileUrl, formatSize, thumbnailUrl } from './files';
import { convIcon, leaveQuestion, memberCount } from './list';
import { MembersPanel } from './members';
import { authorKey, authorName, personAvatar, presenceLabel } from './people';
import { renderText } from './text';
import { isGroupLike, type Attachment, type Conversation, type EventEntry, type Message } from './types';

const GROUP_GAP_MS = 5 * 60_000;
const MEMBERS_ICON = 'M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z|M2.5 20a6.5 6.5 0 0 1 13 0|M16 4.5a3.5 3.5 0 0 1 0 6.5|M18 14a6.5 6.5 0 0 1 3.5 6';
const REPLY_ICON = 'M9 14 4 9l5-5|M4 9h11a5 5 0 0 1 5 5v6';
const ARCHIVE_ICON = 'M3 4h18v4H3z|M5 8v12h14V8|M10 12h4';

/** Moves `nodes` into `parent` in order, touching only what changed (focus and images stay). */
function reconcile(parent: HTMLElement, nodes: HTMLElement[]): void {
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i] as HTMLElement;
    if (parent.children[i] !== n) parent.insertBefore(n, parent.children[i] ?? null);
  }
  while (parent.children.length > nodes.length) parent.lastElementChild?.remove();
}

function clock(ms: number): string {
  return new Intl.DateTimeFormat(lang() === 'ko' ? 'ko-KR' : 'en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(ms));
}

function fullDate(ms: number): string {
  return new Intl.DateTimeFormat(lang() === 'ko' ? 'ko-KR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ms));
}

function dayLabel(ms: number): string {
  const d = new Date(ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return t('today');
  if (d.toDateString() === new Date(now.getTime() - 86_400_000).toDateString()) return t('yesterday');
  return new Intl.DateTimeFormat(lang() === 'ko' ? 'ko-KR' : 'en-GB', { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' }).format(d);
}

export class ConversationView {
  readonly el: HTMLElement;
  private head = h('header', { class: 'conv-head' });
  private scroll = h('div', { class: 'msg-scroll', 'data-testid': 'msg-scroll' });
  private top = h('div', { class: 'msg-top muted small' });
  private list = h('ol', { class: 'msg-log', 'data-testid': 'msg-log', 'aria-live': 'polite' });
  private typingEl = h('div', { class: 'typing-line muted small', 'data-testid': 'typing', 'aria-live': 'polite' });
  private notice = h('div', { class: 'conv-notice', hidden: true });
  private composer: Composer;
  private members: MembersPanel;
  private side = h('aside', { class: 'members-side', hidden: true, 'data-testid': 'members-panel' });
  private cache = new Map<string, { sig: string; el: HTMLElement }>();
  private editing: { seq: number; box: HTMLTextAreaElement } | null = null;
  private unsub: () => void;
  private first = true;
  private unreadFrom: number | null = null;
  private readTimer = 0;
  private destroyed = false;
  /** At the bottom: stays there when rows grow (a thumbnail loads, a message comes). */
  private stuck = true;
  private resize: ResizeObserver | null = null;
  private headShown = '';

  constructor(
    private readonly client: MsgClient,
    private readonly id: string,
  ) {
    const c = client.convs.get(id);
    if (c && c.unread > 0) this.unreadFrom = c.read_seq;
    this.composer = new Composer(client, id, () => this.conv()?.members ?? [], c ? t('msgPlaceholder', { name: client.title(c) }) : t('msgPlaceholderPlain'));
    this.members = new MembersPanel(client, id, () => this.toggleMembers(false));
    this.scroll.append(this.top, this.list);
    const main = h('section', { class: 'conv-main', 'aria-label': c ? client.title(c) : t('msgConversation') }, this.head, this.notice, this.scroll, this.typingEl, this.composer.el);
    this.el = h('div', { class: 'conv-view', 'data-testid': 'conversation', 'data-conv-id': id }, main, this.side);
    this.scroll.addEventListener('scroll', () => this.onScroll(), { passive: true });
    if (typeof ResizeObserver !== 'undefined') {
      this.resize = new ResizeObserver(() => {
        if (this.stuck) this.scroll.scrollTop = this.scroll.scrollHeight;
      });
      this.resize.observe(this.list);
    }
    this.dropZone(main);
    this.unsub = client.subscribe((ch) => this.onChange(ch));
    document.addEventListener('visibilitychange', this.onVisible);
    window.addEventListener('focus', this.onVisible);
    this.renderHead();
    this.renderTyping();
    this.renderLog();
    void this.open();
  }

  destroy(): void {
    this.destroyed = true;
    this.resize?.disconnect();
    this.unsub();
    document.removeEventListener('visibilitychange', this.onVisible);
    window.removeEventListener('focus', this.onVisible);
    clearTimeout(this.readTimer);
    this.client.watch('conversation', []);
  }

  focus(): void {
    this.composer.focus();
  }

  private conv(): Conversation | undefined {
    return this.client.convs.get(this.id);
  }

  private async open(): Promise<void> {
    try {
      if (!this.conv()) await this.client.getConv(this.id);
      if (this.destroyed) return;
      const c = this.conv();
      if (c && this.unreadFrom === null && c.unread > 0) this.unreadFrom = c.read_seq;
      this.renderHead();
      this.watchMembers();
      await this.client.openLog(this.id);
    } catch (err) {
      const e = err as MsgError;
      if (this.destroyed) return;
      this.showNotice(e.code === 'not_found' ? t('msgConvNotFound') : t('loadFailed', { message: msgErrorText(e.code, e.message) }), e.code !== 'not_found');
    }
  }

  private showNotice(text: string, retry: boolean): void {
    replace(
      this.notice,
      h(
        'div',
        { class: 'notice notice-warn', role: 'alert', 'data-testid': 'conv-notice' },
        icon(I.alert),
        h('span', {}, text),
        retry ? h('button', { class: 'btn btn-small', type: 'button', onclick: () => { this.notice.hidden = true; void this.open(); } }, t('retry')) : null,
      ),
    );
    this.notice.hidden = false;
  }

  private watchMembers(): void {
    const c = this.conv();
    this.client.watch('conversation', c ? c.members.map((m) => m.user_id) : []);
  }

  private onChange(ch: Change): void {
    if (this.destroyed) return;
    switch (ch.kind) {
      case 'log':
        if (ch.conv === this.id) {
          this.renderLog();
          this.renderHead();
        }
        break;
      case 'list':
        this.renderHead();
        this.watchMembers();
        this.members.render();
        break;
      case 'presence':
        this.renderHead();
        this.members.render();
        break;
      case 'typing':
        if (ch.conv === this.id) this.renderTyping();
        break;
      case 'titles':
        this.renderLog();
        break;
      case 'removed':
        if (ch.conv === this.id) {
          this.showNotice(ch.reason === 'left' ? t('msgYouLeft') : t('msgYouWereRemoved'), false);
          this.composer.el.hidden = true;
          this.toggleMembers(false);
        }
        break;
      case 'state':
        break;
    }
  }

  // ----- header -----

  private renderHead(): void {
    const c = this.conv();
    // Rebuilt only when what it shows changed (an open menu stays open meanwhile).
    const partnerId = c ? this.client.partner(c) : null;
    const sig = JSON.stringify([
      lang(),
      this.side.hidden,
      c ? [this.client.title(c), c.kind, c.archived, c.members.length, partnerId ? (this.client.presence.get(partnerId) ?? '') : ''] : null,
    ]);
    if (sig === this.headShown) return;
    this.headShown = sig;
    if (!c) {
      replace(this.head, h('a', { class: 'icon-btn conv-back', href: '/messages', 'data-link': true, 'aria-label': t('msgBackToList') }, icon(I.back, 20)), h('h2', { class: 'conv-name' }, t('loading')));
      return;
    }
    const title = this.client.title(c);
    this.composer.setPlaceholder(t('msgPlaceholder', { name: title }));
    const partner = this.client.partner(c);
    const sub =
      c.kind === 'direct' && partner
        ? presenceLabel(this.client.presence.get(partner))
        : memberCount(c.members.length);
    const art =
      c.kind === 'direct' && partner
        ? personAvatar(partner, title, this.client.presence.get(partner) ?? 'offline')
        : h('span', { class: 'avatar avatar-md avatar-group', 'aria-hidden': 'true' }, icon(convIcon(c), 18));
    const menu = (): MenuItem[] => {
      const items: MenuItem[] = [
        {
          label: c.archived ? t('msgUnarchive') : t('msgArchive'),
          icon: icon(ARCHIVE_ICON, 16),
          run: () => void this.client.act('conv.archive', { conversation: c.id, archived: !c.archived }).catch((e: MsgError) => toast(msgErrorText(e.code, e.message))),
        },
      ];
      if (isGroupLike(c)) {
        items.push({
          label: t('msgLeave'),
          icon: icon(I.logout, 16),
          danger: true,
          run: () => {
            if (confirm(leaveQuestion(c, title))) void this.client.act('conv.leave', { conversation: c.id }).catch((e: MsgError) => toast(msgErrorText(e.code, e.message)));
          },
        });
      }
      return items;
    };
    replace(
      this.head,
      h('a', { class: 'icon-btn conv-back', href: '/messages', 'data-link': true, 'aria-label': t('msgBackToList'), title: t('msgBackToList') }, icon(I.back, 20)),
      art,
      h('div', { class: 'conv-heading' }, h('h2', { class: 'conv-name', 'data-testid': 'conv-name' }, title), h('span', { class: 'muted small', 'data-testid': 'conv-sub' }, sub)),
      h('div', { class: 'spacer' }),
      c.archived ? h('span', { class: 'badge badge-viewer' }, t('msgArchived')) : null,
      h(
        'button',
        {
          class: 'icon-btn' + (this.side.hidden ? '' : ' active'),
          type: 'button',
          'aria-label': isGroupLike(c) ? t('msgMembers') : t('msgDetails'),
          title: isGroupLike(c) ? t('msgMembers') : t('msgDetails'),
          'aria-expanded': String(!this.side.hidden),
          'data-testid': 'toggle-members',
          onclick: () => this.toggleMembers(this.side.hidden),
        },
        icon(MEMBERS_ICON, 20),
      ),
      menuButton(h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('more'), title: t('more'), 'data-testid': 'conv-menu' }, icon(I.more, 20)), menu),
    );
  }

  private toggleMembers(open: boolean): void {
    this.side.hidden = !open;
    replace(this.side, open ? this.members.el : null);
    if (open) this.members.render();
    this.renderHead();
  }

  private renderTyping(): void {
    const who = this.client.typers(this.id);
    this.typingEl.textContent =
      who.length === 0 ? '' : who.length === 1 ? t('msgTypingOne', { name: who[0] ?? '' }) : who.length === 2 ? t('msgTypingTwo', { a: who[0] ?? '', b: who[1] ?? '' }) : t('msgTypingMany');
  }

  // ----- the log -----

  private nameOf(user: string): string {
    const m = this.conv()?.members.find((x) => x.user_id === user);
    if (m) return displayName(user, m.name);
    const seen = this.client.names.get(user);
    return seen ? displayName(user, seen) : t('msgSomeone');
  }

  private cached(key: string, sig: string, build: () => HTMLElement): HTMLElement {
    const hit = this.cache.get(key);
    if (hit && hit.sig === sig) return hit.el;
    const el = build();
    this.cache.set(key, { sig, el });
    return el;
  }

  private atBottom(): boolean {
    return this.scroll.scrollHeight - this.scroll.scrollTop - this.scroll.clientHeight < 40;
  }

  private renderLog(): void {
    const l = this.client.log(this.id);
    const stick = this.first || this.atBottom();
    // The first entry in view and where it is: kept in place when rows come above it (the
    // day dividers are no anchor: the first one stays first when older entries arrive).
    let anchor: { seq: string; top: number } | null = null;
    const box = this.scroll.getBoundingClientRect();
    for (const row of this.list.querySelectorAll<HTMLElement>('[data-seq]')) {
      const r = row.getBoundingClientRect();
      if (r.bottom > box.top) {
        anchor = { seq: row.dataset['seq'] ?? '', top: r.top };
        break;
      }
    }
    const c = this.conv();
    const nodes: HTMLElement[] = [];
    let prev: Message | null = null;
    let prevDay = '';
    let dividerShown = false;
    const docs = new Set<string>();
    const keep = new Set<string>();
    const push = (key: string, sig: string, build: () => HTMLElement): void => {
      keep.add(key);
      nodes.push(this.cached(key, sig, build));
    };
    for (const e of l.sorted()) {
      if (e.kind !== 'message' && e.kind !== 'event') continue;
      const day = new Date(e.at).toDateString();
      if (day !== prevDay) {
        prevDay = day;
        prev = null;
        push('day:' + day, lang(), () => h('li', { class: 'day-divider', role: 'separator' }, h('span', {}, dayLabel(e.at))));
      }
      if (e.kind === 'event') {
        prev = null;
        const sig = JSON.stringify([lang(), c?.members.length, e.users.map((u) => this.nameOf(u))]);
        push('ev:' + e.seq, sig, () => this.eventRow(e));
        continue;
      }
      if (e.author.user_id) this.client.names.set(e.author.user_id, e.author.name);
      if (!dividerShown && this.unreadFrom !== null && e.seq > this.unreadFrom && e.author.user_id !== this.client.me) {
        dividerShown = true;
        push('new', lang(), () => h('li', { class: 'new-divider', role: 'separator', 'data-testid': 'new-divider' }, h('span', {}, t('msgNewMessages'))));
        prev = null;
      }
      const head = !prev || authorKey(prev.author) !== authorKey(e.author) || e.at - prev.at > GROUP_GAP_MS || prev.reply_to !== null || e.reply_to !== null;
      for (const d of e.docs) docs.add(d);
      const target = e.reply_to !== null ? l.message(e.reply_to) : null;
      if (e.reply_to !== null && !target) void this.client.quote(this.id, e.reply_to);
      const sig = JSON.stringify([
        lang(),
        e.id,
        e.text,
        e.edited_at,
        e.deleted,
        e.attachments.length,
        head,
        e.docs.map((d) => (this.client.titles.has(d) ? this.client.titles.get(d) : '\u0000')),
        target ? [target.id, target.text, target.deleted] : null,
        this.editing?.seq === e.seq,
        e.mentions.map((u) => this.nameOf(u)),
      ]);
      push('m:' + e.seq, sig, () => this.messageRow(e, head, target));
      prev = e;
    }
    for (const p of l.pending) nodes.push(this.pendingRow(p));
    for (const k of [...this.cache.keys()]) if (!keep.has(k)) this.cache.delete(k);
    reconcile(this.list, nodes);
    replace(
      this.top,
      !l.loaded ? t('loading') : l.loadingOlder ? t('msgLoadingOlder') : l.hasOlder ? '' : nodes.length ? t('msgStart') : t('msgEmpty'),
    );
    if (docs.size) this.client.wantTitles([...docs]);
    if (stick) {
      this.scroll.scrollTop = this.scroll.scrollHeight;
    } else if (anchor) {
      // Found again by seq: the row may have been rebuilt (it no longer starts a group).
      const row = this.list.querySelector(`[data-seq="${anchor.seq}"]`);
      if (row) this.scroll.scrollTop += row.getBoundingClientRect().top - anchor.top;
    }
    this.stuck = stick;
    if (l.loaded && nodes.length) this.first = false;
    // A page that does not fill the view: fetch older ones right away.
    if (l.loaded && l.hasOlder && !l.loadingOlder && this.scroll.scrollHeight <= this.scroll.clientHeight + 20) void this.client.loadOlder(this.id).catch(() => {});
    this.scheduleRead();
  }

  private onScroll(): void {
    this.stuck = this.atBottom();
    const l = this.client.log(this.id);
    if (this.scroll.scrollTop < 150 && l.loaded && l.hasOlder && !l.loadingOlder) {
      void this.client.loadOlder(this.id).catch(() => {});
      replace(this.top, t('msgLoadingOlder'));
    }
    this.scheduleRead();
  }

  private onVisible = (): void => {
    if (document.visibilityState === 'visible') this.scheduleRead();
  };

  private scheduleRead(): void {
    clearTimeout(this.readTimer);
    this.readTimer = window.setTimeout(() => this.markRead(), 250);
  }

  /** The newest entry in view, as the read marker (only while the tab is visible). */
  private markRead(): void {
    if (this.destroyed || document.visibilityState !== 'visible') return;
    const l = this.client.log(this.id);
    if (!l.loaded) return;
    let seq = 0;
    if (this.atBottom()) {
      seq = l.upto;
    } else {
      const bottom = this.scroll.getBoundingClientRect().bottom;
      const rows = this.list.querySelectorAll<HTMLElement>('[data-seq]');
      for (let i = rows.length - 1; i >= 0; i--) {
        const row = rows[i] as HTMLElement;
        if (row.getBoundingClientRect().top < bottom - 8) {
          seq = Number(row.dataset['seq']);
          break;
        }
      }
    }
    if (seq > 0) this.client.markRead(this.id, seq);
  }

  private eventRow(e: EventEntry): HTMLElement {
    const by = this.nameOf(e.by);
    const users = e.users.map((u) => this.nameOf(u)).join(', ');
    let text: string;
    switch (e.action) {
      case 'created':
        text = e.title ? t('msgEvCreatedTitle', { by, title: e.title }) : t('msgEvCreated', { by });
        break;
      case 'renamed':
        text = t('msgEvRenamed', { by, title: e.title ?? '' });
        break;
      case 'added':
        text = t('msgEvAdded', { by, users });
        break;
      case 'removed':
        text = t('msgEvRemoved', { by, users });
        break;
      case 'left':
        text = t('msgEvLeft', { by });
        break;
      case 'role':
        text = e.role === 'admin' ? t('msgEvAdmin', { by, users }) : t('msgEvMember', { by, users });
        break;
      default:
        text = '';
    }
    return h('li', { class: 'msg-event', 'data-seq': e.seq, 'data-testid': 'event' }, h('span', {}, text), ' ', h('time', { class: 'muted', title: fullDate(e.at) }, clock(e.at)));
  }

  private messageRow(m: Message, head: boolean, target: Message | null): HTMLElement {
    // A meeting's guests have no user id: never ours, whatever name they gave.
    const mine = !!m.author.user_id && m.author.user_id === this.client.me;
    const name = authorName(m.author);
    const body: (HTMLElement | null)[] = [];
    if (m.reply_to !== null) {
      body.push(
        h(
          'button',
          {
            class: 'msg-quote',
            type: 'button',
            'data-testid': 'quote',
            'aria-label': t('msgShowOriginal'),
            onclick: () => this.scrollTo(m.reply_to as number),
          },
          h('strong', {}, target ? authorName(target.author) : t('msgOriginal')),
          h('span', {}, target ? snippet(target) : t('loading')),
        ),
      );
    }
    if (m.deleted) {
      body.push(h('p', { class: 'msg-deleted muted', 'data-testid': 'deleted' }, t('msgDeleted')));
    } else if (this.editing?.seq === m.seq) {
      body.push(this.editBox());
    } else {
      const edited = m.edited_at !== null ? h('span', { class: 'msg-edited muted small', title: fullDate(m.edited_at), 'data-testid': 'edited' }, t('msgEdited')) : null;
      if (m.text) {
        const mentions = m.mentions.map((id) => ({ id, name: this.nameOf(id) }));
        body.push(h('div', { class: 'msg-text', 'data-testid': 'msg-text' }, renderText(m.text, { mentions, me: this.client.me, docs: m.docs, titles: this.client.titles }), edited));
      }
      if (m.attachments.length) body.push(h('div', { class: 'msg-files' }, m.attachments.map((a) => this.attachment(a))));
      if (!m.text) body.push(edited);
    }
    const actions: HTMLElement[] = [];
    if (!m.deleted && !this.client.gone.has(this.id)) {
      actions.push(h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('msgReply'), title: t('msgReply'), 'data-testid': 'reply', onclick: () => this.composer.setReply(m) }, icon(REPLY_ICON, 16)));
      if (mine) {
        actions.push(h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('msgEdit'), title: t('msgEdit'), 'data-testid': 'edit', onclick: () => this.startEdit(m) }, icon(I.edit, 16)));
        actions.push(h('button', { class: 'icon-btn danger', type: 'button', 'aria-label': t('msgDelete'), title: t('msgDelete'), 'data-testid': 'delete', onclick: () => this.remove(m) }, icon(I.trash, 16)));
      }
    }
    const mentioned = !mine && m.mentions.includes(this.client.me);
    return h(
      'li',
      {
        class: 'msg-row' + (head ? ' head' : '') + (mine ? ' mine' : '') + (mentioned ? ' mentioned' : ''),
        'data-seq': m.seq,
        'data-id': m.id,
        'data-author': m.author.user_id ?? null,
        'data-testid': 'message',
      },
      head ? h('span', { class: 'msg-avatar' }, avatar(name, colorFor(authorKey(m.author)), 'md')) : h('time', { class: 'msg-side-time muted', title: fullDate(m.at) }, clock(m.at)),
      h(
        'div',
        { class: 'msg-body' },
        head
          ? h(
              'div',
              { class: 'msg-head' },
              h('strong', { class: 'msg-author', 'data-testid': 'msg-author' }, name),
              // Anyone can give a meeting any name: say that it is not a signed-in account.
              m.author.guest ? h('span', { class: 'badge badge-viewer', 'data-testid': 'msg-guest' }, t('meetGuest')) : null,
              h('time', { class: 'muted small', title: fullDate(m.at) }, clock(m.at)),
            )
          : null,
        body,
      ),
      actions.length ? h('div', { class: 'msg-actions', role: 'group', 'aria-label': t('msgActions') }, actions) : null,
    );
  }

  private pendingRow(p: Pending): HTMLElement {
    return h(
      'li',
      { class: 'msg-row mine pending', 'data-testid': 'pending' },
      h('time', { class: 'msg-side-time muted' }, clock(p.at)),
      h(
        'div',
        { class: 'msg-body' },
        p.text ? h('div', { class: 'msg-text' }, p.text) : null,
        p.attachments.length ? h('div', { class: 'muted small' }, p.attachments.map((a) => a.name).join(', ')) : null,
        h('span', { class: 'muted small' }, t('msgSending')),
      ),
    );
  }

  private attachment(a: Attachment): HTMLElement {
    const url = fileUrl(this.id, a.id);
    if (a.thumbnail) {
      return h(
        'a',
        { class: 'att-image', href: url, download: a.name, title: `${a.name} (${formatSize(a.size)})`, 'data-testid': 'attachment-image', 'data-file': a.id },
        h('img', { src: thumbnailUrl(this.id, a.id), alt: a.name, loading: 'lazy', decoding: 'async' }),
      );
    }
    return h(
      'a',
      { class: 'att-file', href: url, download: a.name, 'data-testid': 'attachment-file', 'data-file': a.id },
      icon(I.download, 18),
      h('span', { class: 'att-name' }, a.name),
      h('span', { class: 'muted small' }, formatSize(a.size)),
    );
  }

  private scrollTo(seq: number): void {
    const row = this.list.querySelector<HTMLElement>(`[data-seq="${seq}"]`);
    if (!row) return;
    row.scrollIntoView({ block: 'center', behavior: 'smooth' });
    row.classList.add('flash');
    window.setTimeout(() => row.classList.remove('flash'), 1500);
  }

  // ----- edit and delete -----

  private startEdit(m: Message): void {
    const box = h('textarea', { class: 'edit-box', rows: 2, 'data-testid': 'edit-box', 'aria-label': t('msgEdit') });
    box.value = m.text;
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        this.stopEdit();
      } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        void this.saveEdit(m.seq, box.value.trim());
      }
    });
    this.editing = { seq: m.seq, box };
    this.renderLog();
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  private editBox(): HTMLElement {
    const ed = this.editing as { seq: number; box: HTMLTextAreaElement };
    return h(
      'div',
      { class: 'edit-wrap' },
      ed.box,
      h(
        'div',
        { class: 'edit-actions' },
        h('span', { class: 'muted small' }, t('msgEditHint')),
        h('button', { class: 'btn btn-small', type: 'button', onclick: () => this.stopEdit() }, t('cancel')),
        h('button', { class: 'btn btn-small btn-primary', type: 'button', 'data-testid': 'edit-save', onclick: () => void this.saveEdit(ed.seq, ed.box.value.trim()) }, t('save')),
      ),
    );
  }

  private stopEdit(): void {
    this.editing = null;
    this.renderLog();
    this.composer.focus();
  }

  private async saveEdit(seq: number, text: string): Promise<void> {
    const m = this.client.log(this.id).message(seq);
    if (!m) return this.stopEdit();
    if (text === m.text) return this.stopEdit();
    if (!text && !m.attachments.length) return this.remove(m);
    try {
      await this.client.request('msg.edit', { conversation: this.id, seq, text });
      this.stopEdit();
    } catch (err) {
      const e = err as MsgError;
      toast(t('msgEditFailed', { message: msgErrorText(e.code, e.message) }));
    }
  }

  private remove(m: Message): void {
    if (!confirm(t('msgDeleteConfirm'))) return;
    if (this.editing?.seq === m.seq) this.editing = null;
    void this.client.request('msg.delete', { conversation: this.id, seq: m.seq }).catch((err: MsgError) => toast(t('msgDeleteFailed', { message: msgErrorText(err.code, err.message) })));
  }

  // ----- files dropped on the conversation -----

  private dropZone(zone: HTMLElement): void {
    let depth = 0;
    const hasFiles = (e: DragEvent): boolean => [...(e.dataTransfer?.types ?? [])].includes('Files');
    zone.addEventListener('dragenter', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth++;
      zone.classList.add('dragging');
    });
    zone.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    });
    zone.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove('dragging');
    });
    zone.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      zone.classList.remove('dragging');
      if (this.client.gone.has(this.id)) return;
      const files = [...(e.dataTransfer?.files ?? [])];
      if (files.length) this.composer.addFiles(files);
    });
  }
}

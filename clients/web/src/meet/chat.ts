// The meeting chat: the backlog on entering, live `meet.chat` events, and sending with a
// client_ref so that our own message (echoed back as an event) is shown once. The chat is the
// meeting's conversation (docs/messaging.md): lines may also come from, or be edited or
// deleted in, the Messages page, where signed-in participants can open it.

import { h, icon, replace } from '../dom';
import { meetErrorText, t } from '../i18n';
import { MESSAGES_ICON } from '../msg/badge';
import { messagesPath } from '../router';
import { toast } from '../ui/toast';
import { shownName, type ChatMessage } from './participant';

export class Chat {
  readonly el: HTMLElement;
  private list = h('ol', { class: 'chat-list', 'aria-live': 'polite', 'data-testid': 'chat-list' });
  private input = h('textarea', { class: 'chat-input', rows: 2, maxlength: 4000, 'data-testid': 'chat-input' });
  private linkSlot = h('span', { class: 'chat-link' });
  /** The messages shown, by id: a line edited or deleted elsewhere comes again, to replace it. */
  private byId = new Map<string, ChatMessage>();
  private refs = 0;
  private messages: ChatMessage[] = [];
  onUnread: () => void = () => {};

  constructor(
    private readonly send: (text: string, clientRef: string) => Promise<unknown>,
    /** Who we are: our participant, and our user id when signed in (null for a guest). */
    private readonly me: () => { participant: string; user_id: string | null },
  ) {
    const form = h(
      'form',
      { class: 'chat-form' },
      this.input,
      h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'chat-send' }, t('meetChatSend')),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
    // Enter sends, Shift+Enter is a new line (as in most chat apps).
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.submit();
      }
    });
    this.input.setAttribute('aria-label', t('meetChatPlaceholder'));
    this.input.placeholder = t('meetChatPlaceholder');
    this.el = h(
      'section',
      { class: 'meet-panel chat-panel', 'aria-label': t('meetChat') },
      h('div', { class: 'chat-head' }, h('h2', {}, t('meetChat')), this.linkSlot),
      this.list,
      form,
    );
    this.render();
  }

  /**
   * The meeting's conversation (from the join answer), for a signed-in participant: a link to
   * it in the Messages page. A new tab, because leaving this page would leave the call.
   */
  showConversation(conv: string | null): void {
    replace(
      this.linkSlot,
      conv
        ? h(
            'a',
            {
              class: 'btn btn-small btn-ghost',
              href: messagesPath(conv),
              target: '_blank',
              rel: 'noopener',
              title: t('meetChatOpenMessagesHint'),
              'data-testid': 'chat-open-messages',
            },
            icon(MESSAGES_ICON, 14),
            h('span', {}, t('meetChatOpenMessages')),
          )
        : null,
    );
  }

  backlog(messages: ChatMessage[]): void {
    for (const m of messages) this.add(m, false);
    this.render();
  }

  event(m: ChatMessage): void {
    if (this.add(m, true)) this.render();
  }

  private add(m: ChatMessage, live: boolean): boolean {
    // Only messages are lines here (the log's other entries are for the Messages page).
    if (m.kind !== undefined && m.kind !== 'message') return false;
    const had = this.byId.get(m.id);
    if (had) {
      // Our own line echoed back, or the backlog again after a reconnection: nothing new,
      // unless it was edited or deleted meanwhile.
      if (had.text === m.text && had.edited_at === m.edited_at && !!had.deleted === !!m.deleted) return false;
      this.messages[this.messages.indexOf(had)] = m;
      this.byId.set(m.id, m);
      return true;
    }
    this.byId.set(m.id, m);
    this.messages.push(m);
    this.messages.sort((a, b) => a.seq - b.seq);
    if (live && !this.mine(m)) this.onUnread();
    return true;
  }

  /** Ours if posted from our seat in this meeting, or by our account (e.g. in the Messages page). */
  private mine(m: ChatMessage): boolean {
    const me = this.me();
    if (m.author.participant !== undefined && m.author.participant === me.participant) return true;
    return !!me.user_id && !!m.author.user_id && m.author.user_id === me.user_id;
  }

  private async submit(): Promise<void> {
    const text = this.input.value.trim();
    if (!text) return;
    const ref = `c${Date.now().toString(36)}-${this.refs++}`;
    this.input.value = '';
    try {
      await this.send(text, ref);
    } catch (err) {
      this.input.value = text; // give it back, so that nothing typed is lost
      const e = err as { code?: string; message?: string };
      toast(t('meetChatFailed', { message: meetErrorText(e.code ?? '', e.message ?? '') }));
    }
  }

  private render(): void {
    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 20;
    if (!this.messages.length) {
      replace(this.list, h('li', { class: 'muted chat-empty' }, t('meetChatEmpty')));
      return;
    }
    replace(
      this.list,
      this.messages.map((m) =>
        h(
          'li',
          { class: 'chat-msg' + (this.mine(m) ? ' mine' : ''), 'data-testid': 'chat-msg' },
          h(
            'div',
            { class: 'chat-meta' },
            h('strong', {}, shownName(m.author)),
            ' ',
            h('time', {}, clock(m.at)),
            m.edited_at && !m.deleted ? h('span', { class: 'chat-edited' }, ' ', t('msgEdited')) : null,
          ),
          body(m),
        ),
      ),
    );
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}

/** The text; "deleted" as in the Messages page; files (sent from there) only counted here. */
function body(m: ChatMessage): HTMLElement {
  if (m.deleted) return h('div', { class: 'chat-text chat-deleted muted', 'data-testid': 'chat-deleted' }, t('msgDeleted'));
  const files = m.attachments?.length ?? 0;
  return h('div', { class: 'chat-text' }, m.text, files ? h('span', { class: 'muted' }, (m.text ? ' · ' : '') + t('msgFiles', { n: files })) : null);
}

function clock(at: number | string): string {
  const d = new Date(typeof at === 'number' ? at : Date.parse(at));
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// The meeting chat: the backlog on entering, live `meet.chat` events, and sending with a
// client_ref so that our own message (echoed back as an event) is shown once.

import { h, replace } from '../dom';
import { meetErrorText, t } from '../i18n';
import { toast } from '../ui/toast';
import { shownName, type ChatMessage } from './participant';

export class Chat {
  readonly el: HTMLElement;
  private list = h('ol', { class: 'chat-list', 'aria-live': 'polite', 'data-testid': 'chat-list' });
  private input = h('textarea', { class: 'chat-input', rows: 2, maxlength: 4000, 'data-testid': 'chat-input' });
  private seen = new Set<string>();
  private refs = 0;
  private messages: ChatMessage[] = [];
  onUnread: () => void = () => {};

  constructor(
    private readonly send: (text: string, clientRef: string) => Promise<unknown>,
    private readonly myId: () => string,
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
    this.el = h('section', { class: 'meet-panel chat-panel', 'aria-label': t('meetChat') }, h('h2', {}, t('meetChat')), this.list, form);
    this.render();
  }

  backlog(messages: ChatMessage[]): void {
    for (const m of messages) this.add(m, false);
    this.render();
  }

  event(m: ChatMessage): void {
    if (this.add(m, true)) this.render();
  }

  private add(m: ChatMessage, live: boolean): boolean {
    if (this.seen.has(m.id)) return false;
    this.seen.add(m.id);
    this.messages.push(m);
    this.messages.sort((a, b) => a.seq - b.seq);
    if (live && m.author.participant !== this.myId()) this.onUnread();
    return true;
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
          { class: 'chat-msg' + (m.author.participant === this.myId() ? ' mine' : ''), 'data-testid': 'chat-msg' },
          h('div', { class: 'chat-meta' }, h('strong', {}, shownName(m.author)), ' ', h('time', {}, clock(m.at))),
          h('div', { class: 'chat-text' }, m.text),
        ),
      ),
    );
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}

function clock(at: number | string): string {
  const d = new Date(typeof at === 'number' ? at : Date.parse(at));
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

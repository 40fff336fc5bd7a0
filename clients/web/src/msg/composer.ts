// The composer: multi-line text (Enter sends, Shift+Enter is a new line, nothing is sent while
// an input method is composing), `@` completion from the members (sent as `mentions`),
// document links (sent as `docs`), attachments uploaded as soon as they are chosen or dropped
// (sent as `attachments` once every one is up), the message being replied to, and "typing".

import { h, icon, replace } from '../dom';
import { t } from '../i18n';
import { avatar, colorFor } from '../ui/avatar';
import { I } from '../ui/icons';
import { toast } from '../ui/toast';
import type { MsgClient, MsgError } from './client';
import { formatSize, UploadError, uploadFile } from './files';
import { authorName } from './people';
import { docIdsIn } from './text';
import type { Attachment, Member, Message } from './types';
import { msgErrorText } from './errors';

interface Upload {
  file: File;
  state: 'uploading' | 'ready' | 'error';
  att?: Attachment;
  error?: string;
}

const MENTION_BEFORE_CARET = /(^|[\s(])@([^\s@]{0,40})$/;

export class Composer {
  readonly el: HTMLElement;
  private input = h('textarea', { class: 'composer-input', rows: 1, 'data-testid': 'composer-input', spellcheck: 'true' });
  private files = h('ul', { class: 'composer-files', 'data-testid': 'composer-files' });
  private replyBar = h('div', { class: 'composer-reply', hidden: true, 'data-testid': 'reply-bar' });
  private suggest = h('ul', { class: 'suggest mention-suggest', role: 'listbox', hidden: true, 'data-testid': 'mention-suggest' });
  private sendBtn: HTMLButtonElement;
  private picker = h('input', { type: 'file', multiple: true, hidden: true, 'data-testid': 'file-input' });
  private uploads: Upload[] = [];
  private reply: Message | null = null;
  /** Mentions chosen from the completion, by the name written after `@`. */
  private chosen = new Map<string, string>();
  private matches: Member[] = [];
  private active = 0;

  constructor(
    private readonly client: MsgClient,
    private readonly conv: string,
    private readonly members: () => Member[],
    placeholder: string,
  ) {
    this.input.placeholder = placeholder;
    this.input.setAttribute('aria-label', placeholder);
    this.input.value = client.drafts.get(conv) ?? '';
    this.sendBtn = h('button', { class: 'btn btn-primary composer-send', type: 'submit', 'data-testid': 'send', 'aria-label': t('msgSend'), title: t('msgSend') }, icon(SEND, 18));
    const attach = h(
      'button',
      { class: 'icon-btn', type: 'button', 'aria-label': t('msgAttach'), title: t('msgAttach'), 'data-testid': 'attach', onclick: () => this.picker.click() },
      icon(CLIP, 20),
    );
    this.picker.addEventListener('change', () => {
      if (this.picker.files) this.addFiles([...this.picker.files]);
      this.picker.value = '';
    });
    const form = h('form', { class: 'composer-row' }, attach, h('div', { class: 'composer-field' }, this.suggest, this.input), this.sendBtn, this.picker);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.input.addEventListener('keydown', (e) => this.onKey(e));
    this.input.addEventListener('input', () => {
      client.drafts.set(conv, this.input.value);
      if (this.input.value.trim()) client.typed(conv);
      this.autosize();
      this.complete();
      this.renderSend();
    });
    this.input.addEventListener('click', () => this.complete());
    this.input.addEventListener('blur', () => window.setTimeout(() => this.closeSuggest(), 150));
    // Pasted files (a screenshot) are attachments too.
    this.input.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length) {
        e.preventDefault();
        this.addFiles(files);
      }
    });
    this.el = h('div', { class: 'composer' }, this.replyBar, this.files, form);
    this.renderSend();
    queueMicrotask(() => this.autosize());
  }

  focus(): void {
    this.input.focus();
  }

  setPlaceholder(text: string): void {
    if (this.input.placeholder === text) return;
    this.input.placeholder = text;
    this.input.setAttribute('aria-label', text);
  }

  setReply(m: Message | null): void {
    this.reply = m;
    if (!m) {
      this.replyBar.hidden = true;
      replace(this.replyBar);
      return;
    }
    const name = authorName(m.author);
    replace(
      this.replyBar,
      icon(REPLY, 16),
      h('span', { class: 'reply-what' }, h('strong', {}, t('msgReplyingTo', { name })), ' ', h('span', { class: 'muted' }, snippet(m))),
      h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('msgCancelReply'), title: t('msgCancelReply'), onclick: () => this.setReply(null) }, icon(I.close, 16)),
    );
    this.replyBar.hidden = false;
    this.focus();
  }

  addFiles(files: File[]): void {
    for (const file of files) {
      const u: Upload = { file, state: 'uploading' };
      this.uploads.push(u);
      void uploadFile(this.conv, file).then(
        (att) => {
          u.state = 'ready';
          u.att = att;
          this.renderFiles();
        },
        (err: unknown) => {
          u.state = 'error';
          u.error = err instanceof UploadError ? err.message : String(err);
          toast(u.error);
          this.renderFiles();
        },
      );
    }
    this.renderFiles();
  }

  private renderFiles(): void {
    replace(
      this.files,
      this.uploads.map((u) =>
        h(
          'li',
          { class: `composer-file file-${u.state}`, 'data-testid': 'composer-file', 'data-state': u.state },
          icon(u.state === 'error' ? I.alert : I.doc, 16),
          h('span', { class: 'file-name' }, u.file.name),
          h('span', { class: 'muted small' }, u.state === 'uploading' ? t('msgUploading') : u.state === 'error' ? (u.error ?? '') : formatSize(u.att?.size ?? u.file.size)),
          h(
            'button',
            {
              class: 'icon-btn',
              type: 'button',
              'aria-label': t('msgRemoveFile', { name: u.file.name }),
              title: t('msgRemoveFile', { name: u.file.name }),
              onclick: () => {
                this.uploads = this.uploads.filter((x) => x !== u);
                this.renderFiles();
              },
            },
            icon(I.close, 14),
          ),
        ),
      ),
    );
    this.files.hidden = this.uploads.length === 0;
    this.renderSend();
  }

  private renderSend(): void {
    const uploading = this.uploads.some((u) => u.state === 'uploading');
    const ready = this.uploads.some((u) => u.state === 'ready');
    this.sendBtn.disabled = uploading || (!this.input.value.trim() && !ready);
  }

  private autosize(): void {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(this.input.scrollHeight, 200) + 'px';
  }

  // ----- mentions -----

  private complete(): void {
    const before = this.input.value.slice(0, this.input.selectionStart ?? this.input.value.length);
    const m = MENTION_BEFORE_CARET.exec(before);
    if (!m) return this.closeSuggest();
    const q = (m[2] ?? '').toLowerCase();
    this.matches = this.members()
      .filter((x) => x.user_id !== this.client.me)
      .filter((x) => {
        const n = x.name.toLowerCase();
        return !q || n.startsWith(q) || n.split(/\s+/).some((p) => p.startsWith(q)) || n.includes(q);
      })
      .slice(0, 6);
    if (!this.matches.length) return this.closeSuggest();
    this.active = Math.min(this.active, this.matches.length - 1);
    replace(
      this.suggest,
      this.matches.map((x, i) =>
        h(
          'li',
          {
            class: 'suggest-item',
            role: 'option',
            'aria-selected': String(i === this.active),
            'data-testid': 'mention-option',
            onmousedown: (e: Event) => {
              e.preventDefault();
              this.pick(x);
            },
          },
          avatar(x.name, colorFor(x.user_id), 'sm'),
          h('span', {}, x.name),
        ),
      ),
    );
    this.suggest.hidden = false;
  }

  private closeSuggest(): void {
    this.suggest.hidden = true;
    this.matches = [];
    this.active = 0;
  }

  private pick(x: Member): void {
    const caret = this.input.selectionStart ?? this.input.value.length;
    const before = this.input.value.slice(0, caret);
    const m = MENTION_BEFORE_CARET.exec(before);
    if (!m) return;
    const start = caret - (m[2] ?? '').length - 1;
    const insert = '@' + x.name + ' ';
    this.input.value = this.input.value.slice(0, start) + insert + this.input.value.slice(caret);
    const pos = start + insert.length;
    this.input.setSelectionRange(pos, pos);
    this.chosen.set(x.name, x.user_id);
    this.client.drafts.set(this.conv, this.input.value);
    this.closeSuggest();
    this.renderSend();
    this.input.focus();
  }

  /** The members mentioned in `text`: chosen from the completion, or typed as `@Full Name`. */
  private mentionsIn(text: string): string[] {
    const ids = new Set<string>();
    for (const [name, id] of this.chosen) if (text.includes('@' + name)) ids.add(id);
    for (const m of this.members()) if (m.user_id !== this.client.me && text.includes('@' + m.name)) ids.add(m.user_id);
    return [...ids];
  }

  private onKey(e: KeyboardEvent): void {
    if (!this.suggest.hidden && this.matches.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        this.active = (this.active + (e.key === 'ArrowDown' ? 1 : this.matches.length - 1)) % this.matches.length;
        this.complete();
        return;
      }
      if ((e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        const x = this.matches[this.active];
        if (x) this.pick(x);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        this.closeSuggest();
        return;
      }
    }
    if (e.key === 'Escape' && this.reply) {
      e.preventDefault();
      this.setReply(null);
      return;
    }
    // Enter sends; Shift+Enter is a new line; an input method's Enter (Korean) confirms text.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      void this.submit();
    }
  }

  // ----- sending -----

  private async submit(): Promise<void> {
    if (this.sendBtn.disabled) return;
    const text = this.input.value.trim();
    const ready = this.uploads.filter((u) => u.state === 'ready' && u.att);
    if (!text && !ready.length) return;
    const reply = this.reply;
    const uploads = this.uploads;
    const attachments = ready.map((u) => ({ id: (u.att as Attachment).id, name: u.file.name }));
    const mentions = this.mentionsIn(text);
    const docs = docIdsIn(text);
    // Cleared at once (the message shows as "Sending…"); given back if it fails.
    this.input.value = '';
    this.client.drafts.delete(this.conv);
    this.uploads = this.uploads.filter((u) => u.state === 'error');
    this.setReply(null);
    this.renderFiles();
    this.autosize();
    try {
      await this.client.send(this.conv, { text, reply_to: reply?.seq ?? null, mentions, docs, attachments });
      this.chosen.clear();
    } catch (err) {
      const e = err as MsgError;
      if (!this.input.value) {
        this.input.value = text;
        this.client.drafts.set(this.conv, text);
      }
      if (!this.uploads.some((u) => u.state === 'ready')) this.uploads = uploads;
      if (reply && !this.reply) this.setReply(reply);
      this.renderFiles();
      this.autosize();
      toast(t('msgSendFailed', { message: msgErrorText(e.code, e.message) }));
    }
  }
}

export function snippet(m: Message): string {
  if (m.deleted) return t('msgDeleted');
  if (m.text) return m.text.replace(/\s+/g, ' ').slice(0, 100);
  if (m.attachments.length) return m.attachments.map((a) => a.name).join(', ');
  return '';
}

const SEND = 'M4 12l16-8-6 16-2.5-6.5z|M11.5 13.5 20 4';
const CLIP = 'M20 11.5l-8 8a5 5 0 0 1-7-7l8.5-8.5a3.3 3.3 0 0 1 4.7 4.7L9.7 17.2a1.7 1.7 0 0 1-2.4-2.4L15 7';
const REPLY = 'M9 14 4 9l5-5|M4 9h11a5 5 0 0 1 5 5v6';

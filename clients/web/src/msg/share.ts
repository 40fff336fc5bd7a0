// "Share this document" (the document page): a picker of the user's conversations; picking one
// sends a message with the document's link and its id in `docs`. Readers who may not open the
// document see the bare link (doc.titles gives them no title).

import { h, replace } from '../dom';
import { t } from '../i18n';
import { navigate } from '../router';
import { openDialog } from '../ui/dialog';
import { toast } from '../ui/toast';
import { msg, type MsgError } from './client';
import { msgErrorText } from './errors';
import { conversationItem } from './list';
import { docLink } from './text';
import type { Conversation } from './types';

export function openShareToConversation(docId: string, title: string): void {
  msg.start();
  openDialog(
    t('msgShareDocTitle', { title: title || t('untitled') }),
    (d) => {
      const note = h('textarea', { class: 'input share-note', rows: 2, placeholder: t('msgShareNote'), 'aria-label': t('msgShareNote'), 'data-testid': 'share-note' });
      const filter = h('input', { class: 'input', type: 'search', placeholder: t('msgFilterConversations'), 'aria-label': t('msgFilterConversations') });
      const list = h('ul', { class: 'conv-list conv-pick', 'data-testid': 'share-conversations', 'aria-busy': 'true' });
      let sending = false;

      const send = async (c: Conversation): Promise<void> => {
        if (sending) return;
        sending = true;
        const link = docLink(docId);
        const extra = note.value.trim();
        try {
          await msg.send(c.id, { text: extra ? `${extra}\n${link}` : link, reply_to: null, mentions: [], docs: [docId], attachments: [] });
          d.close();
          toast(t('msgSharedTo', { name: msg.title(c) }), { label: t('open'), run: () => navigate('/messages/' + c.id) });
        } catch (err) {
          const e = err as MsgError;
          toast(t('msgSendFailed', { message: msgErrorText(e.code, e.message) }));
        } finally {
          sending = false;
        }
      };

      const render = (): void => {
        const q = filter.value.trim().toLowerCase();
        const convs = msg.list(false).filter((c) => !q || msg.title(c).toLowerCase().includes(q));
        replace(
          list,
          convs.length
            ? convs.map((c) => {
                const item = conversationItem(c, msg, false);
                const a = item.querySelector('a');
                a?.addEventListener('click', (e) => {
                  e.preventDefault();
                  e.stopPropagation();
                  void send(c);
                });
                a?.setAttribute('data-testid', 'share-target');
                return item;
              })
            : h('li', { class: 'muted empty-small' }, msg.listLoaded ? t('msgNoConversations') : t('loading')),
        );
      };
      filter.addEventListener('input', render);
      const unsub = msg.subscribe((c) => {
        if (c.kind === 'list' || c.kind === 'presence') render();
      });
      d.el.addEventListener('close', unsub);
      d.body.append(note, filter, list);
      render();
      void msg.loadList(false).then(
        () => list.setAttribute('aria-busy', 'false'),
        (err: MsgError) => {
          list.setAttribute('aria-busy', 'false');
          replace(list, h('li', { class: 'notice notice-warn' }, msgErrorText(err.code, err.message)));
        },
      );
      queueMicrotask(() => filter.focus());
    },
    { wide: true },
  );
}

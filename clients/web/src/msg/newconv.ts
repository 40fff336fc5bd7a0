// "New conversation": a direct one (pick one person; an existing conversation with them is
// opened again) or a group (a title and people).

import type { User } from '../api';
import { h, icon, replace } from '../dom';
import { t } from '../i18n';
import { navigate } from '../router';
import { avatar, colorFor } from '../ui/avatar';
import { openDialog } from '../ui/dialog';
import { I } from '../ui/icons';
import type { MsgClient, MsgError } from './client';
import { msgErrorText } from './errors';
import { personSearch } from './people';

export function openNewConversation(client: MsgClient): void {
  openDialog(
    t('msgNewConversation'),
    (d) => {
      let kind: 'direct' | 'group' = 'direct';
      let people: User[] = [];
      const error = h('p', { class: 'form-error', role: 'alert', hidden: true, 'data-testid': 'new-conv-error' });
      const fail = (e: MsgError): void => {
        error.textContent = msgErrorText(e.code, e.message);
        error.hidden = false;
      };
      const direct = async (u: User): Promise<void> => {
        try {
          const c = await client.create({ kind: 'direct', user: u.id });
          d.close();
          navigate('/messages/' + c.id);
        } catch (e) {
          fail(e as MsgError);
        }
      };
      const chips = h('ul', { class: 'chips', 'data-testid': 'group-people' });
      const renderChips = (): void => {
        replace(
          chips,
          people.map((u) =>
            h(
              'li',
              { class: 'chip' },
              avatar(u.name, colorFor(u.id), 'sm'),
              h('span', {}, u.name),
              h(
                'button',
                {
                  class: 'icon-btn',
                  type: 'button',
                  'aria-label': t('removeShare', { name: u.name }),
                  onclick: () => {
                    people = people.filter((p) => p.id !== u.id);
                    renderChips();
                  },
                },
                icon(I.close, 14),
              ),
            ),
          ),
        );
      };
      const directSearch = personSearch((u) => void direct(u));
      const groupSearch = personSearch(
        (u) => {
          if (!people.some((p) => p.id === u.id)) people.push(u);
          renderChips();
        },
        () => people.map((p) => p.id),
      );
      const title = h('input', { class: 'input', type: 'text', maxlength: 200, 'aria-label': t('msgGroupTitle'), placeholder: t('msgGroupTitle'), 'data-testid': 'group-title-input' });
      const directPane = h('div', { class: 'stack' }, h('p', { class: 'muted small' }, t('msgDirectLead')), directSearch.el);
      const groupPane = h(
        'form',
        {
          class: 'stack',
          hidden: true,
          onsubmit: async (e: Event) => {
            e.preventDefault();
            const name = title.value.trim();
            if (!name) {
              title.focus();
              return;
            }
            try {
              const c = await client.create({ kind: 'group', title: name, members: people.map((p) => p.id) });
              d.close();
              navigate('/messages/' + c.id);
            } catch (err) {
              fail(err as MsgError);
            }
          },
        },
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('msgGroupTitle')), title),
        h('div', { class: 'field' }, h('span', { class: 'field-label' }, t('addPeople')), groupSearch.el, chips),
        h('div', { class: 'dialog-actions' }, h('button', { class: 'btn', type: 'button', onclick: () => d.close() }, t('cancel')), h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'create-group' }, t('create'))),
      );
      const toggle = h(
        'div',
        { class: 'segmented', role: 'radiogroup', 'aria-label': t('msgNewConversation') },
        (['direct', 'group'] as const).map((k) =>
          h(
            'button',
            {
              type: 'button',
              role: 'radio',
              class: 'seg',
              'aria-checked': String(k === kind),
              'data-testid': 'kind-' + k,
              onclick: (e: Event) => {
                kind = k;
                for (const b of toggle.querySelectorAll('button')) b.setAttribute('aria-checked', String(b === e.currentTarget));
                directPane.hidden = k !== 'direct';
                groupPane.hidden = k !== 'group';
                error.hidden = true;
                (k === 'direct' ? directSearch.input : title).focus();
              },
            },
            icon(k === 'direct' ? I.share : I.group, 16),
            h('span', {}, k === 'direct' ? t('msgDirect') : t('msgGroup')),
          ),
        ),
      );
      d.body.append(toggle, directPane, groupPane, error);
      queueMicrotask(() => directSearch.input.focus());
    },
    { wide: true },
  );
}

import { api, type DocMeta, type Role, type Share, type User } from './api';
import { h, icon, replace } from './dom';
import { t } from './i18n';
import { docPath } from './router';
import { displayName, session } from './session';
import { avatar, colorFor } from './ui/avatar';
import { openDialog } from './ui/dialog';
import { I } from './ui/icons';
import { roleLabel } from './ui/role';
import { toast } from './ui/toast';

const ROLES: Role[] = ['viewer', 'editor', 'owner'];

function roleSelect(value: Role, label: string, onChange: (r: Role) => void): HTMLSelectElement {
  const sel = h(
    'select',
    { class: 'select select-small', 'aria-label': label },
    ROLES.map((r) => h('option', { value: r, selected: r === value }, roleLabel(r))),
  );
  sel.addEventListener('change', () => onChange(sel.value as Role));
  return sel;
}

/** The sharing dialog (owners): people, groups, organisation-wide access, copy link (local mode: the link only). */
export function openShareDialog(initial: DocMeta, onUpdated: (meta: DocMeta) => void): void {
  let meta = initial;
  openDialog(
    t('shareTitle', { title: meta.title || t('untitled') }),
    (d) => {
      const list = h('ul', { class: 'share-list', 'aria-label': t('peopleWithAccess') });
      const orgSlot = h('div', { class: 'share-org' });

      const apply = async (change: () => Promise<DocMeta>): Promise<void> => {
        try {
          meta = await change();
          onUpdated(meta);
          render();
        } catch (err) {
          toast(t('shareFailed', { message: (err as Error).message }));
          render();
        }
      };

      const render = (): void => {
        const shares = meta.shares ?? [];
        const people = shares.filter((s): s is Exclude<Share, { kind: 'org' }> => s.kind !== 'org');
        const org = shares.find((s) => s.kind === 'org');
        replace(
          list,
          h(
            'li',
            { class: 'share-row' },
            avatar(displayName(meta.owner.id, meta.owner.name), colorFor(meta.owner.id), 'md'),
            h('span', { class: 'share-who' }, h('span', { class: 'share-name' }, displayName(meta.owner.id, meta.owner.name))),
            h('span', { class: 'muted small' }, t('roleOwner')),
          ),
          people.map((s) => {
            const name = s.name || s.id;
            return h(
              'li',
              { class: 'share-row' },
              s.kind === 'group'
                ? h('span', { class: 'avatar avatar-md avatar-group', 'aria-hidden': 'true' }, icon(I.group, 18))
                : avatar(name, colorFor(s.id), 'md'),
              h(
                'span',
                { class: 'share-who' },
                h('span', { class: 'share-name' }, name),
                // A person's id is the provider's subject, often an opaque string: only the
                // e-mail is worth showing.
                s.kind === 'group'
                  ? h('span', { class: 'muted small' }, t('group'))
                  : 'email' in s && s.email
                    ? h('span', { class: 'muted small' }, s.email)
                    : null,
              ),
              roleSelect(s.role, t('roleFor', { name }), (role) => void apply(() => api.share(meta.id, { kind: s.kind, id: s.id, role }))),
              h(
                'button',
                {
                  class: 'icon-btn',
                  type: 'button',
                  'aria-label': t('removeShare', { name }),
                  title: t('remove'),
                  onclick: () => void apply(() => api.revoke(meta.id, s.kind, s.id)),
                },
                icon(I.close, 16),
              ),
            );
          }),
        );
        const orgSel = h(
          'select',
          { class: 'select', 'aria-label': t('orgAccess') },
          h('option', { value: '', selected: !org }, t('orgNone')),
          h('option', { value: 'viewer', selected: org?.role === 'viewer' }, t('orgCanView')),
          h('option', { value: 'editor', selected: org?.role === 'editor' }, t('orgCanEdit')),
        );
        orgSel.addEventListener('change', () => {
          const v = orgSel.value;
          void apply(() => (v ? api.share(meta.id, { kind: 'org', role: v as Role }) : api.revoke(meta.id, 'org')));
        });
        replace(
          orgSlot,
          h('span', { class: 'avatar avatar-md avatar-group', 'aria-hidden': 'true' }, icon(I.globe, 18)),
          h('span', { class: 'share-who' }, h('span', { class: 'share-name' }, t('orgAccess'))),
          orgSel,
        );
      };

      // Adding: a person (searched by name or e-mail) or a group (typed by name).
      let kind: 'user' | 'group' = 'user';
      let picked: User | null = null;
      const who = h('input', {
        class: 'input',
        type: 'text',
        autocomplete: 'off',
        role: 'combobox',
        'aria-autocomplete': 'list',
        'aria-expanded': 'false',
        'aria-controls': 'share-suggest',
        placeholder: t('searchPeople'),
        'aria-label': t('searchPeople'),
      });
      const suggest = h('ul', { class: 'suggest', id: 'share-suggest', role: 'listbox', hidden: true });
      let newRole: Role = 'editor';
      const addRole = roleSelect(newRole, t('roleFor', { name: '' }), (r) => (newRole = r));
      const kindToggle = h(
        'div',
        { class: 'segmented', role: 'radiogroup', 'aria-label': t('addPeople') },
        (['user', 'group'] as const).map((k) =>
          h(
            'button',
            {
              type: 'button',
              role: 'radio',
              'aria-checked': String(k === kind),
              class: 'seg',
              onclick: (e: Event) => {
                kind = k;
                for (const b of kindToggle.querySelectorAll('button')) b.setAttribute('aria-checked', String(b === e.currentTarget));
                who.placeholder = k === 'user' ? t('searchPeople') : t('groupId');
                who.setAttribute('aria-label', who.placeholder);
                suggest.hidden = true;
                who.focus();
              },
            },
            icon(k === 'user' ? I.share : I.group, 16),
            h('span', {}, k === 'user' ? t('person') : t('group')),
          ),
        ),
      );

      let searchTimer = 0;
      let options: HTMLElement[] = [];
      let suggestions: User[] = [];
      let activeOption = -1;
      const choose = (u: User): void => {
        picked = u;
        who.value = u.email ? `${u.name} <${u.email}>` : u.name;
        suggest.hidden = true;
        who.setAttribute('aria-expanded', 'false');
      };
      who.addEventListener('input', () => {
        picked = null;
        if (kind !== 'user') return;
        clearTimeout(searchTimer);
        const q = who.value.trim();
        // The server searches from 2 characters on (a shorter query is refused).
        if ([...q].length < 2) {
          suggest.hidden = true;
          return;
        }
        searchTimer = window.setTimeout(async () => {
          try {
            const { users } = await api.users(q);
            activeOption = -1;
            options = users.slice(0, 8).map((u, i) =>
              h(
                'li',
                {
                  role: 'option',
                  id: `share-opt-${i}`,
                  class: 'suggest-item',
                  onmousedown: (e: Event) => {
                    e.preventDefault();
                    choose(u);
                  },
                },
                avatar(u.name, colorFor(u.id), 'sm'),
                h('span', {}, u.name),
                u.email ? h('span', { class: 'muted small' }, u.email) : null,
              ),
            );
            replace(suggest, options.length ? options : h('li', { class: 'suggest-empty muted' }, t('noMatches')));
            suggest.hidden = false;
            who.setAttribute('aria-expanded', 'true');
            suggestions = users.slice(0, 8);
          } catch {
            suggest.hidden = true;
          }
        }, 180);
      });
      who.addEventListener('keydown', (e) => {
        if (suggest.hidden || options.length === 0) return;
        if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
          e.preventDefault();
          activeOption = (activeOption + (e.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
          options.forEach((o, i) => o.setAttribute('aria-selected', String(i === activeOption)));
          who.setAttribute('aria-activedescendant', `share-opt-${activeOption}`);
        } else if (e.key === 'Enter' && activeOption >= 0) {
          e.preventDefault();
          const u = suggestions[activeOption];
          if (u) choose(u);
        } else if (e.key === 'Escape') {
          e.preventDefault();
          e.stopPropagation();
          suggest.hidden = true;
        }
      });

      const add = h(
        'form',
        {
          class: 'share-add',
          onsubmit: (e: Event) => {
            e.preventDefault();
            const typed = who.value.trim();
            const subject = kind === 'user' ? (picked?.id ?? typed) : typed;
            if (!subject) return;
            void apply(() => api.share(meta.id, { kind, id: subject, role: newRole })).then(() => {
              who.value = '';
              picked = null;
            });
          },
        },
        h('div', { class: 'combo' }, who, suggest),
        addRole,
        h('button', { class: 'btn btn-primary', type: 'submit' }, t('add')),
      );

      const copy = h(
        'button',
        {
          class: 'btn',
          type: 'button',
          onclick: async () => {
            const url = location.origin + docPath(meta.id);
            try {
              await navigator.clipboard.writeText(url);
            } catch {
              // Without clipboard permission, select the text for a manual copy.
              prompt(t('copyLink'), url);
              return;
            }
            toast(t('linkCopied'));
          },
        },
        icon(I.link, 16),
        h('span', {}, t('copyLink')),
      );

      const actions = h('div', { class: 'dialog-actions dialog-actions-split' }, copy, h('button', { class: 'btn btn-primary', type: 'button', onclick: () => d.close() }, t('done')));
      if (session.config.mode === 'local') {
        // Local mode has one user and no directory: people, groups and "the whole
        // organisation" do not exist, so only the link is offered.
        d.body.append(h('p', { class: 'muted', 'data-testid': 'share-local-note' }, t('shareLocalNote')), actions);
        return;
      }
      d.body.append(
        h('section', { class: 'stack' }, h('h3', { class: 'section-label' }, t('addPeople')), kindToggle, add),
        h('section', { class: 'stack' }, h('h3', { class: 'section-label' }, t('peopleWithAccess')), list, orgSlot),
        actions,
      );
      render();
      queueMicrotask(() => who.focus());
    },
    { wide: true },
  );
}

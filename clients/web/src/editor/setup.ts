import { Editor, Extension } from '@tiptap/core';
import Collaboration from '@tiptap/extension-collaboration';
import CollaborationCaret from '@tiptap/extension-collaboration-caret';
import Image from '@tiptap/extension-image';
import { TaskItem, TaskList } from '@tiptap/extension-list';
import { TableKit } from '@tiptap/extension-table';
import { Placeholder } from '@tiptap/extensions';
import StarterKit from '@tiptap/starter-kit';
import { h } from '../dom';
import { t } from '../i18n';
import { displayName } from '../session';
import type { DocConnection } from './connection';

export interface PresenceUser {
  id: string;
  name: string;
  color: string;
}

/** The Yjs field the document lives in (shared with the server-side export). */
export const FIELD = 'default';

export function createEditor(opts: {
  element: HTMLElement;
  conn: DocConnection;
  user: PresenceUser;
  editable: boolean;
  onLinkShortcut: () => void;
}): Editor {
  const { conn, user } = opts;
  return new Editor({
    element: opts.element,
    editable: opts.editable,
    // The page's Content-Security-Policy (style-src 'self') refuses the <style> element TipTap
    // would add: its base rules are in styles.css instead.
    injectCSS: false,
    editorProps: {
      attributes: {
        class: 'prose',
        role: 'textbox',
        'aria-multiline': 'true',
        'aria-label': t('documentBody'),
        spellcheck: 'true',
      },
    },
    extensions: [
      StarterKit.configure({
        // The Collaboration extension brings its own undo (yUndo): it undoes only this
        // user's edits, never a colleague's. The starter kit's history would undo both.
        undoRedo: false,
        heading: { levels: [1, 2, 3] },
        link: { openOnClick: !opts.editable, autolink: true, defaultProtocol: 'https', enableClickSelection: true },
      }),
      TaskList,
      TaskItem.configure({ nested: true }),
      TableKit.configure({ table: { resizable: false } }),
      // Every node the server's import and export know (collab/src/richtext/schema.rs) must be
      // in this schema: y-prosemirror silently deletes, for everyone, what the schema rejects.
      Image,
      Placeholder.configure({ placeholder: t('placeholder') }),
      Collaboration.configure({ document: conn.doc, field: FIELD }),
      CollaborationCaret.configure({
        provider: conn.provider,
        user,
        render: renderCaret,
      }),
      Extension.create({
        name: 'dureShortcuts',
        addKeyboardShortcuts() {
          return {
            'Mod-k': () => {
              opts.onLinkShortcut();
              return true;
            },
          };
        },
      }),
    ],
  });
}

/** Another person's caret: a thin coloured bar with their name above it. */
function renderCaret(u: Record<string, unknown>): HTMLElement {
  const color = typeof u['color'] === 'string' ? u['color'] : '#2563eb';
  const raw = typeof u['name'] === 'string' ? u['name'] : '?';
  const name = displayName(typeof u['id'] === 'string' ? u['id'] : '', raw);
  const caret = h('span', { class: 'collaboration-carets__caret' });
  caret.style.borderColor = color;
  const label = h('span', { class: 'collaboration-carets__label' }, name);
  label.style.backgroundColor = color;
  caret.appendChild(label);
  return caret;
}

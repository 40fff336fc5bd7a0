import type { Editor } from '@tiptap/core';
import { h, icon } from '../dom';
import { t, type Key } from '../i18n';
import { I } from '../ui/icons';

const IS_MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/** "Mod-Shift-8" → "Ctrl+Shift+8" or "⌘⇧8". */
function shortcutText(keys: string): string {
  const parts = keys.split('-');
  if (IS_MAC) {
    return parts.map((p) => ({ Mod: '⌘', Shift: '⇧', Alt: '⌥' })[p] ?? p.toUpperCase()).join('');
  }
  return parts.map((p) => (p === 'Mod' ? 'Ctrl' : p.length === 1 ? p.toUpperCase() : p)).join('+');
}

interface Button {
  label: Key;
  icon?: string;
  glyph?: string;
  keys?: string;
  run: (e: Editor) => void;
  active?: (e: Editor) => boolean;
  enabled?: (e: Editor) => boolean;
  /** Shown only when true (table tools inside a table). */
  visible?: (e: Editor) => boolean;
}

type Group = Button[];

export function toolbar(editor: Editor, onLink: () => void): { el: HTMLElement; update: () => void } {
  const chain = (e: Editor) => e.chain().focus();
  const inTable = (e: Editor) => e.isActive('table');
  const groups: Group[] = [
    [
      { label: 'undoEdit', icon: I.undo, keys: 'Mod-z', run: (e) => chain(e).undo().run(), enabled: (e) => e.can().undo() },
      { label: 'redoEdit', icon: I.redo, keys: IS_MAC ? 'Mod-Shift-z' : 'Mod-y', run: (e) => chain(e).redo().run(), enabled: (e) => e.can().redo() },
    ],
    [
      { label: 'bold', glyph: 'B', keys: 'Mod-b', run: (e) => chain(e).toggleBold().run(), active: (e) => e.isActive('bold') },
      { label: 'italic', glyph: 'I', keys: 'Mod-i', run: (e) => chain(e).toggleItalic().run(), active: (e) => e.isActive('italic') },
      { label: 'underline', glyph: 'U', keys: 'Mod-u', run: (e) => chain(e).toggleUnderline().run(), active: (e) => e.isActive('underline') },
      { label: 'strike', glyph: 'S', keys: 'Mod-Shift-s', run: (e) => chain(e).toggleStrike().run(), active: (e) => e.isActive('strike') },
      { label: 'code', glyph: '</>', keys: 'Mod-e', run: (e) => chain(e).toggleCode().run(), active: (e) => e.isActive('code') },
    ],
    [
      { label: 'bulletList', icon: I.bulletList, keys: 'Mod-Shift-8', run: (e) => chain(e).toggleBulletList().run(), active: (e) => e.isActive('bulletList') },
      { label: 'orderedList', icon: I.orderedList, keys: 'Mod-Shift-7', run: (e) => chain(e).toggleOrderedList().run(), active: (e) => e.isActive('orderedList') },
      { label: 'taskList', icon: I.taskList, keys: 'Mod-Shift-9', run: (e) => chain(e).toggleTaskList().run(), active: (e) => e.isActive('taskList') },
    ],
    [
      { label: 'blockquote', icon: I.quote, keys: 'Mod-Shift-b', run: (e) => chain(e).toggleBlockquote().run(), active: (e) => e.isActive('blockquote') },
      { label: 'codeBlock', icon: I.codeBlock, keys: 'Mod-Alt-c', run: (e) => chain(e).toggleCodeBlock().run(), active: (e) => e.isActive('codeBlock') },
      { label: 'horizontalRule', icon: I.hr, run: (e) => chain(e).setHorizontalRule().run() },
    ],
    [
      { label: 'link', icon: I.link, keys: 'Mod-k', run: () => onLink(), active: (e) => e.isActive('link') },
      { label: 'insertTable', icon: I.table, run: (e) => chain(e).insertTable({ rows: 3, cols: 3, withHeaderRow: true }).run(), enabled: (e) => !inTable(e) },
      { label: 'addRow', icon: I.rowAdd, run: (e) => chain(e).addRowAfter().run(), visible: inTable },
      { label: 'addColumn', icon: I.colAdd, run: (e) => chain(e).addColumnAfter().run(), visible: inTable },
      { label: 'deleteRow', icon: I.rowDel, run: (e) => chain(e).deleteRow().run(), visible: inTable },
      { label: 'deleteColumn', icon: I.colDel, run: (e) => chain(e).deleteColumn().run(), visible: inTable },
      { label: 'deleteTable', icon: I.tableDel, run: (e) => chain(e).deleteTable().run(), visible: inTable },
    ],
  ];

  const styleSelect = h(
    'select',
    {
      class: 'style-select',
      'aria-label': t('textStyle'),
      onchange: () => {
        const v = styleSelect.value;
        if (v === 'p') editor.chain().focus().setParagraph().run();
        else editor.chain().focus().toggleHeading({ level: Number(v) as 1 | 2 | 3 }).run();
      },
    },
    h('option', { value: 'p' }, t('paragraph')),
    h('option', { value: '1' }, t('heading1')),
    h('option', { value: '2' }, t('heading2')),
    h('option', { value: '3' }, t('heading3')),
  );

  const buttons: { def: Button; el: HTMLButtonElement }[] = [];
  const groupEls = groups.map((group, gi) => {
    const els = group.map((def) => {
      const label = t(def.label);
      const title = def.keys ? `${label} (${shortcutText(def.keys)})` : label;
      const el = h(
        'button',
        {
          class: 'tool' + (def.glyph ? ` tool-glyph tool-${def.label}` : ''),
          type: 'button',
          'aria-label': label,
          'aria-keyshortcuts': def.keys ? def.keys.replace('Mod', IS_MAC ? 'Meta' : 'Control').replace(/-/g, '+') : null,
          title,
          tabindex: -1,
          // Keep the editor's selection: a mousedown on the button would blur it.
          onmousedown: (e: Event) => e.preventDefault(),
          onclick: () => def.run(editor),
        },
        def.icon ? icon(def.icon) : h('span', { 'aria-hidden': 'true' }, def.glyph ?? ''),
      );
      if (def.active) el.setAttribute('aria-pressed', 'false');
      buttons.push({ def, el });
      return el;
    });
    const parts: (HTMLElement | null)[] = [...els];
    if (gi === 0) parts.push(h('span', { class: 'tool-sep', 'aria-hidden': 'true' }), styleSelect);
    return h('div', { class: 'tool-group', role: 'group' }, parts);
  });

  const bar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': t('toolbar') }, groupEls);

  // Roving focus: one Tab stop for the whole toolbar, arrow keys move inside it.
  const focusables = (): HTMLElement[] =>
    [...bar.querySelectorAll<HTMLElement>('button, select')].filter((el) => !el.hidden && !(el as HTMLButtonElement).disabled);
  bar.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft' && e.key !== 'Home' && e.key !== 'End') return;
    if (e.target instanceof HTMLSelectElement && e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const items = focusables();
    const idx = items.indexOf(document.activeElement as HTMLElement);
    let next = idx;
    if (e.key === 'ArrowRight') next = (idx + 1) % items.length;
    else if (e.key === 'ArrowLeft') next = (idx - 1 + items.length) % items.length;
    else if (e.key === 'Home') next = 0;
    else next = items.length - 1;
    e.preventDefault();
    setTabStop(items[next]);
    items[next]?.focus();
  });
  bar.addEventListener('focusin', (e) => {
    if (e.target instanceof HTMLElement) setTabStop(e.target);
  });
  let tabStop: HTMLElement | null = null;
  const setTabStop = (el: HTMLElement | undefined): void => {
    if (!el) return;
    for (const item of bar.querySelectorAll<HTMLElement>('button, select')) item.tabIndex = -1;
    el.tabIndex = 0;
    tabStop = el;
  };

  const update = (): void => {
    for (const { def, el } of buttons) {
      el.hidden = def.visible ? !def.visible(editor) : false;
      el.disabled = !editor.isEditable || (def.enabled ? !def.enabled(editor) : false);
      if (def.active) el.setAttribute('aria-pressed', String(def.active(editor)));
    }
    styleSelect.disabled = !editor.isEditable;
    const level = [1, 2, 3].find((l) => editor.isActive('heading', { level: l }));
    styleSelect.value = level ? String(level) : 'p';
    if (!tabStop || tabStop.hidden || (tabStop as HTMLButtonElement).disabled) setTabStop(focusables()[0]);
  };
  update();
  return { el: bar, update };
}

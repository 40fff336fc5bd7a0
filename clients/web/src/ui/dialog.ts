import { h } from '../dom';
import { I } from './icons';
import { icon } from '../dom';
import { t } from '../i18n';

// Native <dialog>: modal focus handling, Escape and the backdrop come from the browser.

export interface Dialog {
  el: HTMLDialogElement;
  body: HTMLElement;
  close(): void;
}

export function openDialog(title: string, build: (d: Dialog) => void, opts: { wide?: boolean; onClose?: () => void } = {}): Dialog {
  const titleId = 'dlg-' + Math.random().toString(36).slice(2);
  const body = h('div', { class: 'dialog-body' });
  const el = h('dialog', { class: 'dialog' + (opts.wide ? ' dialog-wide' : ''), 'aria-labelledby': titleId });
  const close = (): void => el.close();
  el.append(
    h(
      'header',
      { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('close'), onclick: close }, icon(I.close)),
    ),
    body,
  );
  el.addEventListener('close', () => {
    el.remove();
    opts.onClose?.();
  });
  // A click on the backdrop (outside the dialog box) closes it, as people expect.
  el.addEventListener('mousedown', (e) => {
    if (e.target === el) close();
  });
  const dialog: Dialog = { el, body, close };
  build(dialog);
  document.body.appendChild(el);
  el.showModal();
  return dialog;
}

/** Asks for one line of text; resolves null when cancelled. */
export function promptText(title: string, label: string, initial: string, okLabel: string): Promise<string | null> {
  return new Promise((resolve) => {
    let result: string | null = null;
    openDialog(
      title,
      (d) => {
        const input = h('input', { class: 'input', type: 'text', value: initial, 'aria-label': label, maxlength: 200 });
        const form = h(
          'form',
          {
            class: 'stack',
            onsubmit: (e: Event) => {
              e.preventDefault();
              result = input.value.trim();
              d.close();
            },
          },
          h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input),
          h(
            'div',
            { class: 'dialog-actions' },
            h('button', { class: 'btn', type: 'button', onclick: () => d.close() }, t('cancel')),
            h('button', { class: 'btn btn-primary', type: 'submit' }, okLabel),
          ),
        );
        d.body.appendChild(form);
        queueMicrotask(() => {
          input.focus();
          input.select();
        });
      },
      { onClose: () => resolve(result) },
    );
  });
}

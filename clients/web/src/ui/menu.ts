import { h } from '../dom';

export interface MenuItem {
  label: string;
  icon?: SVGSVGElement;
  danger?: boolean;
  run: () => void;
}

/**
 * A menu button: click or Enter/Space/ArrowDown opens a list of actions; arrows move, Escape
 * closes and gives the focus back to the button (WAI-ARIA menu button pattern).
 */
export function menuButton(button: HTMLButtonElement, items: () => MenuItem[], align: 'left' | 'right' = 'right'): HTMLElement {
  const wrap = h('div', { class: 'menu-wrap' });
  button.setAttribute('aria-haspopup', 'menu');
  button.setAttribute('aria-expanded', 'false');
  wrap.appendChild(button);
  let menu: HTMLElement | null = null;

  const close = (focusButton: boolean): void => {
    if (!menu) return;
    menu.remove();
    menu = null;
    button.setAttribute('aria-expanded', 'false');
    document.removeEventListener('mousedown', outside, true);
    if (focusButton) button.focus();
  };
  const outside = (e: MouseEvent): void => {
    if (!wrap.contains(e.target as Node)) close(false);
  };
  const open = (): void => {
    const entries = items().map((item) =>
      h(
        'button',
        {
          class: 'menu-item' + (item.danger ? ' danger' : ''),
          type: 'button',
          role: 'menuitem',
          tabindex: -1,
          onclick: (e: Event) => {
            e.stopPropagation();
            close(true);
            item.run();
          },
        },
        item.icon ?? null,
        h('span', {}, item.label),
      ),
    );
    menu = h('div', { class: `menu menu-${align}`, role: 'menu' }, entries);
    menu.addEventListener('keydown', (e) => {
      const idx = entries.indexOf(document.activeElement as HTMLButtonElement);
      if (e.key === 'ArrowDown') entries[(idx + 1) % entries.length]?.focus();
      else if (e.key === 'ArrowUp') entries[(idx - 1 + entries.length) % entries.length]?.focus();
      else if (e.key === 'Home') entries[0]?.focus();
      else if (e.key === 'End') entries[entries.length - 1]?.focus();
      else if (e.key === 'Escape') close(true);
      else if (e.key === 'Tab') close(false);
      else return;
      e.preventDefault();
    });
    wrap.appendChild(menu);
    button.setAttribute('aria-expanded', 'true');
    document.addEventListener('mousedown', outside, true);
    entries[0]?.focus();
  };
  button.addEventListener('click', (e) => {
    e.stopPropagation();
    if (menu) close(false);
    else open();
  });
  button.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' && !menu) {
      e.preventDefault();
      open();
    }
  });
  return wrap;
}

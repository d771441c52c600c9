// Shared page furniture: the status line, the action result line and the
// confirmation dialog.
import { h } from './dom.js';

export function setStatus(text, isError = false) {
  const el = document.getElementById('status-line');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

export function showActionResult(text, isError = false) {
  const el = document.getElementById('action-result');
  el.textContent = text;
  el.classList.toggle('error', isError);
  el.hidden = !text;
}

// Asks for confirmation in the <dialog>. `extra` is an optional list of form
// controls shown under the text; resolves to a FormData-like object of their
// values, or null when cancelled.
export function confirmDialog({ title, text, confirmLabel = 'Confirm', extra = [] }) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = confirmLabel;
  const extraBox = document.getElementById('confirm-extra');
  extraBox.replaceChildren(...extra);
  return new Promise((resolve) => {
    const onClose = () => {
      dialog.removeEventListener('close', onClose);
      if (dialog.returnValue !== 'confirm') {
        resolve(null);
        return;
      }
      const values = {};
      for (const el of extraBox.querySelectorAll('input, select, textarea')) values[el.name] = el.value;
      resolve(values);
    };
    dialog.addEventListener('close', onClose);
    dialog.returnValue = '';
    dialog.showModal();
    const first = extraBox.querySelector('input, select, textarea') || document.getElementById('confirm-cancel');
    first.focus();
  });
}

export function field(label, control) {
  return h('label', { class: 'field' }, label, control);
}

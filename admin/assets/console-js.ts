/**
 * The console's only script (/admin/assets/console.js): copy buttons and a confirmation before a
 * revoke. Progressive: every form works without it.
 */
export const CONSOLE_JS = `'use strict';
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('button.copy-button[data-copy]').forEach(function (b) {
    if (!navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener('click', function () {
      var el = document.getElementById(b.getAttribute('data-copy'));
      if (el) navigator.clipboard.writeText(el.textContent || '').then(function () { b.textContent = 'Copied'; });
    });
  });
  document.querySelectorAll('button[data-revoke]').forEach(function (b) {
    b.addEventListener('click', function (e) {
      if (!window.confirm('Revoke token ' + b.getAttribute('data-revoke') + '? Whoever uses it is refused from now on.')) e.preventDefault();
    });
  });
});
`;

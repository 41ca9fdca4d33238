// Sign-in with a token: checked with auth/token/lookup-self before it is
// kept; the token field is a password field and is cleared at once.
import { h } from '../dom.js';
import { setToken, clearToken, read } from '../api.js';
import { form, card } from '../ui.js';
import { signedIn, takeSignoutMessage } from '../app.js';

export async function render() {
  const msg = takeSignoutMessage();
  const f = form({
    testid: 'signin-form',
    submit: 'Sign in',
    fields: [
      { name: 'token', label: 'Token', kind: 'password', required: true, requiredMsg: 'Enter a token.',
        pattern: /^[\x21-\x7e]{1,512}$/, patternMsg: 'a token is printable ASCII without spaces.',
        help: 'A Keyhold token (as `keyhold server -dev` prints the root token, or one made with `keyhold token create`).' },
      { name: 'remember', label: 'Keep me signed in in this tab (sessionStorage; forgotten when the tab closes)', kind: 'checkbox', value: true },
    ],
    onSubmit: async (v) => {
      setToken(v.token, false);
      let self;
      try {
        self = await read('auth/token/lookup-self');
      } catch (e) {
        clearToken();
        throw e;
      }
      setToken(v.token, !!v.remember);
      signedIn(self);
      window.location.hash = '#/';
      return null;
    },
  });
  return h('div', { class: 'signin' },
    card('Sign in to Keyhold',
      msg ? h('p', { class: 'notice', role: 'status' }, msg) : null,
      h('p', null, 'The console uses the appliance\u2019s REST API with your token; it can do what your token\u2019s policies allow, nothing more.'),
      f));
}

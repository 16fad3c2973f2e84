// Minimal first-run page: setup, invitation, sign-in and forced password change.
// The full console replaces it (issue 7); this keeps the setup link usable in a browser today.
'use strict';

const $ = (id) => document.getElementById(id);
const forms = ['setup', 'invite', 'login', 'password', 'home'];

function show(id, status) {
  for (const f of forms) $(f).hidden = f !== id;
  $('status').textContent = status || '';
  $('error').hidden = true;
}

function fail(message) {
  $('error').textContent = message;
  $('error').hidden = false;
}

async function api(method, path, body) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    credentials: 'same-origin',
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new Error((data && data.error && data.error.message) || `Request failed (${res.status})`);
  return data;
}

function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function onSubmit(id, handler) {
  $(id).addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $(id).querySelector('button');
    button.disabled = true;
    try {
      await handler(values($(id)));
    } catch (err) {
      fail(err.message);
    } finally {
      button.disabled = false;
    }
  });
}

// Where to go after signing in: only the workspace hand-off on this origin, never another site.
function nextDestination() {
  const next = new URLSearchParams(location.search).get('next');
  return next && next.startsWith('/_clawloops/open') ? next : null;
}

async function showHome() {
  try {
    const { user } = await api('GET', '/auth/me');
    if (user.mustChangePassword) return show('password', 'Your password must be changed before you continue.');
    const next = nextDestination();
    if (next) return location.assign(next);
    $('whoami').textContent = `Signed in as ${user.displayName} (${user.username}, ${user.role}).`;
    show('home', 'Your workspace console is coming soon.');
  } catch {
    show('login');
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  const invite = /^\/invite\/([A-Za-z0-9_-]+)$/.exec(location.pathname);
  if (invite) {
    try {
      const { invitation } = await api('GET', `/invitations/${invite[1]}`);
      $('invite-info').textContent = `You are invited as ${invitation.role}; the link expires ${new Date(invitation.expiresAt).toLocaleString()}.`;
      if (invitation.username) $('invite').username.value = invitation.username;
      show('invite');
    } catch (err) {
      show('', '');
      fail(err.message);
    }
    return;
  }
  const { needed } = await api('GET', '/setup');
  if (needed) {
    $('setup').token.value = params.get('token') || '';
    return show('setup', 'This instance has no administrator yet.');
  }
  await showHome();
}

onSubmit('setup', async (v) => {
  await api('POST', '/setup', v);
  history.replaceState(null, '', '/');
  await showHome();
});
onSubmit('invite', async (v) => {
  const secret = location.pathname.split('/').pop();
  await api('POST', `/invitations/${secret}/accept`, v);
  history.replaceState(null, '', '/');
  await showHome();
});
onSubmit('login', async (v) => {
  await api('POST', '/auth/login', v);
  await showHome();
});
onSubmit('password', async (v) => {
  await api('POST', '/account/password', v);
  await showHome();
});
$('logout').addEventListener('click', async () => {
  await api('POST', '/auth/logout').catch(() => undefined);
  show('login', 'Signed out.');
});

start().catch((err) => fail(err.message));

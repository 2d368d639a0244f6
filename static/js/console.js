// xcore operator console. Plain JavaScript, no build step, and only the
// public API: POST /auth/login, /system/plugins, /system/tasks and /ws.
//
// The access token lives in this closure only: never in localStorage,
// sessionStorage, a cookie, the URL or the console log. Reloading the page
// logs out. Everything a plugin or the server supplies is written with
// textContent, never as HTML.
'use strict';

(() => {
  const FEED_LIMIT = 200;
  const RECONNECT_MS = 3000;

  let token = null;
  let socket = null;
  let reconnectTimer = null;
  let refreshTimer = null;

  const $ = (id) => document.getElementById(id);

  // An error in the standard body: {"error": {code, message, details, ...}}.
  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      const details = Array.isArray(error.details)
        ? error.details.map((d) => `${d.field}: ${d.message}`).join('; ')
        : '';
      const code = error.code || `HTTP ${status}`;
      const message = error.message || 'request failed';
      super(details ? `${code}: ${message} (${details})` : `${code}: ${message}`);
      this.status = status;
      this.requestId = error.request_id;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && token) {
        logout('Your session has ended; please log in again.');
      }
      throw error;
    }
    return data;
  }

  function show(element, message) {
    element.textContent = message || '';
    element.hidden = !message;
  }

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text === null || text === undefined || text === '' ? '-' : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function badge(row, text) {
    const td = document.createElement('td');
    const span = document.createElement('span');
    span.className = `badge ${text}`;
    span.textContent = text;
    td.appendChild(span);
    row.appendChild(td);
  }

  function button(parent, label, action, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.dataset.action = action;
    b.addEventListener('click', async () => {
      b.disabled = true;
      show($('console-error'), '');
      try {
        await onClick();
      } catch (error) {
        show($('console-error'), `${label} failed: ${error.message}`);
      } finally {
        b.disabled = false;
      }
    });
    parent.appendChild(b);
  }

  // --- plugins --------------------------------------------------------------

  async function loadPlugins() {
    const tbody = $('console-plugins').querySelector('tbody');
    let list;
    try {
      list = await api('GET', '/system/plugins');
    } catch (error) {
      tbody.replaceChildren();
      show($('plugins-message'), error.message);
      return;
    }
    show($('plugins-message'), list.items.length ? '' : 'No plugin is installed.');
    const rows = list.items.map((plugin) => {
      const row = document.createElement('tr');
      row.dataset.plugin = plugin.id;
      row.dataset.state = plugin.state;
      cell(row, plugin.id);
      cell(row, plugin.version);
      badge(row, plugin.state);
      cell(row, plugin.api_prefix);
      cell(row, plugin.endpoints.length, 'num');
      cell(row, plugin.last_error, plugin.last_error ? 'last-error' : '');
      const actions = document.createElement('td');
      actions.className = 'actions';
      const path = `/system/plugins/${encodeURIComponent(plugin.id)}`;
      if (plugin.state === 'active') {
        button(actions, 'Disable', 'disable', async () => {
          await api('POST', `${path}/disable`);
          await loadPlugins();
        });
      } else {
        button(actions, 'Enable', 'enable', async () => {
          await api('POST', `${path}/enable`);
          await loadPlugins();
        });
      }
      button(actions, 'Reload', 'reload', async () => {
        try {
          await api('POST', `${path}/reload`);
        } finally {
          // A failed reload records its error: show it in the table too.
          await loadPlugins();
        }
      });
      row.appendChild(actions);
      return row;
    });
    tbody.replaceChildren(...rows);
  }

  // --- tasks ----------------------------------------------------------------

  async function loadTasks() {
    const tbody = $('console-tasks').querySelector('tbody');
    let list;
    try {
      list = await api('GET', '/system/tasks');
    } catch (error) {
      tbody.replaceChildren();
      show($('tasks-message'), error.message);
      return;
    }
    show($('tasks-message'), list.items.length ? '' : 'No task is scheduled.');
    const rows = list.items.map((task) => {
      const row = document.createElement('tr');
      row.dataset.task = task.id;
      cell(row, task.id);
      cell(row, task.schedule);
      badge(row, task.status);
      cell(row, task.last_run);
      cell(row, task.next_run);
      cell(row, `${task.success_count} / ${task.failure_count}`, 'num');
      cell(row, task.last_error, task.last_error ? 'last-error' : '');
      const actions = document.createElement('td');
      actions.className = 'actions';
      const path = `/system/tasks/${encodeURIComponent(task.id)}`;
      button(actions, 'Run', 'run', async () => {
        await api('POST', `${path}/run`);
        await loadTasks();
      });
      if (task.enabled) {
        button(actions, 'Pause', 'pause', async () => {
          await api('POST', `${path}/pause`);
          await loadTasks();
        });
      } else {
        button(actions, 'Resume', 'resume', async () => {
          await api('POST', `${path}/resume`);
          await loadTasks();
        });
      }
      row.appendChild(actions);
      return row;
    });
    tbody.replaceChildren(...rows);
  }

  // Events arrive in bursts (a cascade disable, a reload): refresh once.
  function refreshSoon(what) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      if (!token) return;
      if (what.plugins) loadPlugins();
      if (what.tasks) loadTasks();
    }, 300);
  }

  // --- live feed ------------------------------------------------------------

  function feedState(state) {
    const status = $('feed-status');
    status.dataset.state = state;
    status.className = `badge ${state}`;
    status.textContent = state;
  }

  function addEvent(event) {
    const feed = $('feed');
    const item = document.createElement('li');
    item.dataset.topic = event.topic;
    const time = document.createElement('time');
    time.textContent = event.timestamp || new Date().toISOString();
    const topic = document.createElement('span');
    topic.className = 'topic';
    topic.textContent = event.topic;
    const data = document.createElement('span');
    data.className = 'data';
    data.textContent = JSON.stringify(event.data);
    item.append(time, topic, data);
    feed.prepend(item);
    while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
  }

  function connectFeed() {
    if (!token) return;
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${window.location.host}/ws`);
    socket = ws;
    feedState('connecting');
    // The token goes in the first message, not the URL, so it never lands
    // in an access log.
    ws.addEventListener('open', () => {
      ws.send(JSON.stringify({ type: 'auth', token: `Bearer ${token}` }));
    });
    ws.addEventListener('message', (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (frame.type === 'auth' && frame.success) {
        // Everything: the server sends only what the user may see.
        ws.send(JSON.stringify({ type: 'subscribe', topics: ['*'] }));
      } else if (frame.type === 'subscribe') {
        feedState(frame.success ? 'live' : 'offline');
      } else if (frame.type === 'event') {
        addEvent(frame);
        const family = frame.topic.split('.')[0];
        refreshSoon({ plugins: family === 'plugin', tasks: family === 'task' || family === 'plugin' });
      }
    });
    ws.addEventListener('close', (close) => {
      if (socket !== ws) return;
      socket = null;
      feedState('offline');
      if (close.code === 4401) {
        logout('Your session has ended; please log in again.');
      } else if (token) {
        reconnectTimer = setTimeout(connectFeed, RECONNECT_MS);
      }
    });
  }

  // --- session --------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const email = $('login-email').value.trim();
    const password = $('login-password');
    show($('login-error'), '');
    $('login-submit').disabled = true;
    try {
      const tokens = await api('POST', '/auth/login', { username: email, password: password.value });
      token = tokens.access_token;
      password.value = '';
      $('whoami').textContent = email;
      $('login').hidden = true;
      $('console').hidden = false;
      await Promise.all([loadPlugins(), loadTasks()]);
      connectFeed();
    } catch (error) {
      show($('login-error'), error.message);
    } finally {
      $('login-submit').disabled = false;
    }
  }

  function logout(reason) {
    token = null;
    clearTimeout(reconnectTimer);
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close(1000, 'logged out');
    }
    feedState('offline');
    $('console-plugins').querySelector('tbody').replaceChildren();
    $('console-tasks').querySelector('tbody').replaceChildren();
    $('feed').replaceChildren();
    $('console').hidden = true;
    $('login').hidden = false;
    show($('login-error'), reason || '');
  }

  async function logoutClicked() {
    try {
      // Revokes the access token and the session's refresh tokens.
      await api('POST', '/auth/logout');
    } catch (_) {
      // Logged out locally either way.
    }
    logout('');
  }

  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logoutClicked);
  $('plugins-refresh').addEventListener('click', loadPlugins);
  $('tasks-refresh').addEventListener('click', loadTasks);
})();

/**
 * The workbench panel: a "Workbench" sidebar (live calls, the approvals inbox, alerts and guard
 * events), a status bar item (spend against the tightest budget, the kill switch) and commands.
 *
 * Everything is read from the server extension (workbench/jupyter/server.py) under
 * /workbench/api/, through Jupyter's ServerConnection (its token and XSRF header). One poll a
 * second while the page is open (one SQL statement on the server) carries new calls, the pending
 * approvals, spend and the newest alert's id; alerts are read only when that id moves, costs by
 * model only when the status bar's menu opens. Texts from the store are put in the page as text
 * (textContent), never as markup.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin, ILabShell } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Menu, Widget } from '@lumino/widgets';

const POLL_MS = 1000;
const BARS =
  '<g class="jp-icon3" fill="#616161"><path d="M4 4h16v3H4zM4 10h10v3H4zM4 16h13v3H4z"/>' +
  '<circle cx="19" cy="11.5" r="2.2"/></g>';
const ICON = new LabIcon({
  name: 'workbench:panel',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">${BARS}</svg>`
});
const BADGES = new Map<string, LabIcon>();

/** The panel's icon with the count of pending approvals on it (a red disc), made once per count. */
function badged(count: number): LabIcon {
  if (!count) {
    return ICON;
  }
  const label = count > 9 ? '9+' : String(count);
  let icon = BADGES.get(label);
  if (!icon) {
    const size = label.length > 1 ? 7 : 8;
    icon = new LabIcon({
      name: `workbench:panel-${label}`,
      svgstr:
        `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">${BARS}` +
        '<circle cx="17.5" cy="6.5" r="6.5" fill="#d32f2f"/>' +
        `<text x="17.5" y="9.3" font-size="${size}" font-family="sans-serif" font-weight="bold" ` +
        `text-anchor="middle" fill="#fff">${label}</text></svg>`
    });
    BADGES.set(label, icon);
  }
  return icon;
}

type Row = { [key: string]: any };

async function api(path: string, init: RequestInit = {}): Promise<any> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench/api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  let data: any = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  if (!response.ok) {
    throw new Error(data.message || response.statusText);
  }
  return data;
}

function apiUrl(path: string): string {
  return URLExt.join(ServerConnection.makeSettings().baseUrl, 'workbench/api', path);
}

/** An element with a class and text (as text: never parsed as HTML). */
function el(tag: string, className = '', text?: string): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function money(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return 'unknown';
  }
  return value < 0.01 && value > 0 ? `$${value.toFixed(5)}` : `$${value.toFixed(2)}`;
}

/** The store the panel shows, and one poll a second of what changed in it. */
class Model {
  stores: Row[] = [];
  store = '';
  calls: Row[] = [];
  latest: string | null = null;
  approvals: Row[] = [];
  spend: Row | null = null;
  alertsAt = ''; // the newest alert and guard event ids the poll saw: the alerts list is read when they move
  error = '';
  private listeners: Array<() => void> = [];
  private timer = 0;
  private busy = false;

  changed(fn: () => void): void {
    this.listeners.push(fn);
  }

  private emit(): void {
    this.listeners.forEach(fn => fn());
  }

  start(): void {
    if (!this.timer) {
      this.timer = window.setInterval(() => void this.poll(), POLL_MS);
      void this.poll();
    }
  }

  async refreshStores(): Promise<void> {
    const data = await api('stores');
    this.stores = data.stores;
    if (!this.stores.some(s => s.id === this.store)) {
      this.select(this.stores.length ? this.stores[0].id : '');
    }
  }

  select(store: string): void {
    this.store = store;
    this.calls = [];
    this.latest = null;
    this.approvals = [];
    this.spend = null;
    this.alertsAt = '';
    this.emit();
    void this.poll();
  }

  query(extra: Row = {}): string {
    const params = new URLSearchParams({ store: this.store });
    Object.entries(extra).forEach(([key, value]) => {
      if (value !== null && value !== undefined && value !== '') {
        params.set(key, String(value));
      }
    });
    return params.toString();
  }

  async poll(): Promise<void> {
    if (this.busy) {
      return;
    }
    this.busy = true;
    try {
      if (!this.store) {
        await this.refreshStores();
      }
      if (this.store) {
        const data = await api(`poll?${this.query({ after: this.latest })}`);
        if (data.calls.length) {
          this.calls = [...data.calls, ...this.calls].slice(0, 200);
        }
        this.latest = data.latest || this.latest;
        this.approvals = data.approvals;
        this.spend = data.spend;
        this.alertsAt = JSON.stringify(data.alerts_at);
      }
      this.error = '';
    } catch (reason) {
      this.error = String((reason as Error).message || reason);
      if (this.error.includes('no open notebook')) {
        this.store = '';
      }
    } finally {
      this.busy = false;
    }
    this.emit();
  }

  async decide(id: string, body: Row): Promise<void> {
    await api(`approvals/${encodeURIComponent(id)}?${this.query()}`, {
      method: 'POST',
      body: JSON.stringify(body)
    });
    await this.poll();
  }
}

/** The sidebar: store, calls (filters, a call's detail), approvals inbox, alerts. */
class Panel extends Widget {
  private filters = { session: '', model: '', status: '' };
  private detail: HTMLElement;
  private callsBody: HTMLElement;
  private inbox: HTMLElement;
  private alerts: HTMLElement;
  private storeSelect: HTMLSelectElement;
  private errorLine: HTMLElement;
  private shown = '';
  private alertsShown = '';

  constructor(private model: Model) {
    super();
    this.id = 'workbench-panel';
    this.addClass('wb-panel');
    this.title.icon = ICON;
    this.title.caption = 'Workbench';
    const node = this.node;
    const head = el('div', 'wb-head');
    head.appendChild(el('h2', '', 'Workbench'));
    this.storeSelect = document.createElement('select');
    this.storeSelect.className = 'wb-store';
    this.storeSelect.onchange = () => model.select(this.storeSelect.value);
    head.appendChild(this.storeSelect);
    node.appendChild(head);
    this.errorLine = el('div', 'wb-error');
    node.appendChild(this.errorLine);

    node.appendChild(el('h3', '', 'Approvals'));
    this.inbox = el('div', 'wb-inbox');
    node.appendChild(this.inbox);

    node.appendChild(el('h3', '', 'Calls'));
    const filters = el('div', 'wb-filters');
    for (const key of ['session', 'model', 'status'] as const) {
      const input = document.createElement('input');
      input.placeholder = key;
      input.className = `wb-filter-${key}`;
      input.oninput = () => {
        this.filters[key] = input.value.trim();
        this.renderCalls();
      };
      filters.appendChild(input);
    }
    node.appendChild(filters);
    const table = el('table', 'wb-calls');
    const header = el('tr');
    for (const name of ['time', 'session', 'model', 'tokens', 'cost', 'ms', 'status', 'guard']) {
      header.appendChild(el('th', '', name));
    }
    table.appendChild(header);
    this.callsBody = el('tbody');
    table.appendChild(this.callsBody);
    node.appendChild(table);
    this.detail = el('div', 'wb-detail');
    node.appendChild(this.detail);

    node.appendChild(el('h3', '', 'Alerts and guard events'));
    this.alerts = el('div', 'wb-alerts');
    node.appendChild(this.alerts);
    model.changed(() => this.render());
  }

  protected onAfterShow(): void {
    this.alertsShown = '';
    void this.model.refreshStores().then(() => this.render());
  }

  render(): void {
    const model = this.model;
    const options = model.stores.map(s => `${s.id}:${s.label}`).join('|');
    if (options !== this.shown) {
      this.shown = options;
      this.storeSelect.replaceChildren();
      for (const store of model.stores) {
        const option = document.createElement('option');
        option.value = store.id;
        option.textContent = `${store.label} (${store.notebooks.join(', ')})`;
        this.storeSelect.appendChild(option);
      }
    }
    this.storeSelect.value = model.store;
    this.errorLine.textContent = model.error
      ? model.error
      : model.stores.length
        ? ''
        : 'No open notebook has a workbench store yet: run a %%llm cell.';
    const { pending, ...dataset } = this.title.dataset; // JupyterLab keeps the tab's id in it
    const count = model.approvals.length ? String(model.approvals.length) : undefined;
    if (count !== pending) {
      this.title.dataset = count ? { ...dataset, pending: count } : dataset;
      this.title.icon = badged(model.approvals.length);
      this.title.caption = count ? `Workbench: ${count} approval(s) waiting` : 'Workbench';
    }
    this.renderCalls();
    this.renderInbox();
    const alertsAt = `${model.store}:${model.alertsAt}`;
    if (this.isVisible && model.alertsAt && alertsAt !== this.alertsShown) {
      this.alertsShown = alertsAt;
      void this.loadAlerts().catch(() => {
        this.alertsShown = '';
      });
    }
  }

  private renderCalls(): void {
    const { session, model, status } = this.filters;
    this.callsBody.replaceChildren();
    for (const call of this.model.calls) {
      if (
        (session && call.session !== session) ||
        (model && call.model !== model) ||
        (status && call.status !== status)
      ) {
        continue;
      }
      const row = el('tr', `wb-call wb-status-${call.status}`);
      row.dataset.id = call.id;
      const cells = [
        String(call.started_at || '').slice(11, 19),
        call.session || '',
        call.model || '',
        `${call.prompt_tokens ?? 0}+${call.completion_tokens ?? 0}`,
        money(call.cost_usd),
        call.latency_ms === null || call.latency_ms === undefined ? '' : String(Math.round(call.latency_ms)),
        call.status,
        (call.guard || []).join(' ')
      ];
      cells.forEach(text => row.appendChild(el('td', '', text)));
      row.onclick = () => void this.showCall(call.id);
      this.callsBody.appendChild(row);
    }
  }

  private async showCall(id: string): Promise<void> {
    const data = await api(`calls/${encodeURIComponent(id)}?${this.model.query()}`);
    const call = data.call;
    this.detail.replaceChildren();
    this.detail.appendChild(el('h4', '', `Call ${call.id} · ${call.model} · ${call.status}`));
    this.detail.appendChild(el('div', 'wb-label', 'Prompt'));
    this.detail.appendChild(el('pre', 'wb-prompt', call.prompt || ''));
    this.detail.appendChild(el('div', 'wb-label', 'Answer'));
    this.detail.appendChild(el('pre', 'wb-answer', call.text || call.error || ''));
    if (call.request) {
      this.detail.appendChild(el('div', 'wb-label', 'Request'));
      this.detail.appendChild(el('pre', 'wb-request', String(call.request)));
    }
    this.detail.appendChild(el('div', 'wb-label', 'Attempts'));
    for (const a of data.attempts) {
      const line = `#${a.n} ${a.deployment || a.model} ${a.status}` + (a.error ? ` — ${a.error}` : '');
      this.detail.appendChild(el('div', 'wb-attempt', line));
    }
    const spans: Row[] = data.spans;
    const total = Math.max(1, ...spans.map(s => s.offset_ms + s.duration_ms));
    const waterfall = el('div', 'wb-waterfall');
    for (const span of spans) {
      const line = el('div', 'wb-span');
      line.appendChild(el('span', 'wb-span-name', span.name));
      const bar = el('span', 'wb-span-bar');
      bar.style.marginLeft = `${(100 * span.offset_ms) / total}%`;
      bar.style.width = `${Math.max(0.5, (100 * span.duration_ms) / total)}%`;
      bar.title = `${span.duration_ms.toFixed(1)} ms`;
      line.appendChild(bar);
      waterfall.appendChild(line);
    }
    this.detail.appendChild(el('div', 'wb-label', 'Spans'));
    this.detail.appendChild(waterfall);
  }

  private renderInbox(): void {
    this.inbox.replaceChildren();
    if (!this.model.approvals.length) {
      this.inbox.appendChild(el('div', 'wb-empty', 'Nothing waiting for a decision.'));
      return;
    }
    for (const item of this.model.approvals) {
      const card = el('div', 'wb-approval');
      card.dataset.id = item.id;
      card.appendChild(el('div', 'wb-approval-tool', `${item.tool} · ${item.risk}`));
      card.appendChild(el('pre', 'wb-approval-args', JSON.stringify(item.arguments, null, 2)));
      const who = [item.session && `session ${item.session}`, item.agent && `agent ${item.agent}`]
        .filter(Boolean)
        .join(' · ');
      card.appendChild(el('div', 'wb-approval-why', `${item.reason || ''}${who ? ` (${who})` : ''}`));
      if (item.escalated_to) {
        card.appendChild(el('div', 'wb-approval-to', `escalated to ${item.escalated_to}`));
      }
      const buttons = el('div', 'wb-buttons');
      const button = (label: string, act: () => Promise<void>) => {
        const b = el('button', `jp-Button wb-${label.toLowerCase()}`, label) as HTMLButtonElement;
        b.onclick = () => {
          b.disabled = true;
          act()
            .catch(reason => this.say(String((reason as Error).message || reason)))
            .finally(() => (b.disabled = false));
        };
        buttons.appendChild(b);
      };
      button('Approve', () => this.model.decide(item.id, { decision: 'approve' }));
      button('Reject', async () => {
        const reason = await InputDialog.getText({ title: `Reject ${item.tool}`, label: 'Reason' });
        if (reason.button.accept) {
          await this.model.decide(item.id, { decision: 'reject', reason: reason.value || '' });
        }
      });
      button('Modify', async () => {
        const edited = await editJson(`Modify the arguments of ${item.tool}`, item.arguments);
        if (edited !== null) {
          await this.model.decide(item.id, { decision: 'modify', arguments: edited });
        }
      });
      button('Escalate', async () => {
        const to = await InputDialog.getText({ title: `Escalate ${item.tool}`, label: 'Who must decide' });
        if (to.button.accept && to.value) {
          await this.model.decide(item.id, { decision: 'escalate', to: to.value });
        }
      });
      card.appendChild(buttons);
      this.inbox.appendChild(card);
    }
  }

  private say(text: string): void {
    this.errorLine.textContent = text;
  }

  async loadAlerts(): Promise<void> {
    if (!this.model.store) {
      return;
    }
    const data = await api(`alerts?${this.model.query()}`);
    this.alerts.replaceChildren();
    for (const a of data.alerts) {
      const value = a.value === null || a.value === undefined ? 'n/a' : Number(a.value).toPrecision(4);
      this.alerts.appendChild(el('div', `wb-alert wb-${a.event}`, `${a.at.slice(0, 19)} ${a.event} ${a.rule}: ${value}`));
    }
    for (const g of data.guard) {
      this.alerts.appendChild(el('div', 'wb-guard', `${g.at.slice(0, 19)} ${g.stage} ${g.scanner}: ${g.action}`));
    }
    if (!data.alerts.length && !data.guard.length) {
      this.alerts.appendChild(el('div', 'wb-empty', 'No alerts or guard events.'));
    }
  }
}

/** A dialog with the JSON arguments in a text area; the parsed object, or null when cancelled. */
async function editJson(title: string, value: any): Promise<any> {
  const body = new Widget();
  const area = document.createElement('textarea');
  area.className = 'wb-json';
  area.rows = 8;
  area.value = JSON.stringify(value, null, 2);
  body.node.appendChild(area);
  for (;;) {
    const result = await showDialog({
      title,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Decide' })]
    });
    if (!result.button.accept) {
      return null;
    }
    try {
      return JSON.parse(area.value);
    } catch (reason) {
      await showDialog({ title: 'Not JSON', body: String(reason), buttons: [Dialog.okButton()] });
    }
  }
}

/** "$0.42 / $5.00 today", red once a threshold is crossed; a click opens costs by model and the kill switch. */
class Spend extends Widget {
  constructor(private model: Model, private app: JupyterFrontEnd) {
    super();
    this.addClass('wb-spend');
    this.node.title = 'Workbench spend: click for costs by model and the kill switch';
    this.node.onclick = (event: MouseEvent) => void this.menu(event);
    model.changed(() => this.render());
    this.render();
  }

  render(): void {
    const spend = this.model.spend;
    this.node.classList.toggle('wb-crossed', Boolean(spend?.budget?.crossed));
    this.node.classList.toggle('wb-killed', Boolean(spend?.killed));
    if (!spend) {
      this.node.textContent = 'workbench';
    } else if (spend.killed) {
      this.node.textContent = 'KILL SWITCH ON';
    } else if (spend.budget) {
      this.node.textContent = spend.budget.label;
    } else {
      this.node.textContent = `${money(spend.today_usd)} today`;
    }
  }

  private async menu(event: MouseEvent): Promise<void> {
    const menu = new Menu({ commands: this.app.commands });
    menu.addClass('wb-spend-menu');
    let byModel: Row[] = [];
    if (this.model.store) {
      try {
        byModel = (await api(`spend?${this.model.query()}`)).by_model;
      } catch {
        byModel = []; // the menu still offers the kill switch
      }
    }
    for (const row of byModel) {
      menu.addItem({
        command: 'workbench:cost-line',
        args: { label: `${row.model}: ${money(row.cost_usd)} (${row.calls} calls)` }
      });
    }
    menu.addItem({ type: 'separator' });
    menu.addItem({ command: this.model.spend?.killed ? 'workbench:lift' : 'workbench:kill' });
    menu.open(event.clientX, event.clientY - 8);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'workbench-panel:plugin',
  description: 'The workbench panel: calls, approvals, alerts, spend and the kill switch.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, IStatusBar],
  activate: (app: JupyterFrontEnd, shell: ILabShell, palette: ICommandPalette | null, statusBar: IStatusBar | null) => {
    const model = new Model();
    const panel = new Panel(model);
    shell.add(panel, 'left', { rank: 900 });
    const { commands } = app;
    commands.addCommand('workbench:open-panel', {
      label: 'Workbench: Open the Panel',
      execute: () => shell.activateById(panel.id)
    });
    commands.addCommand('workbench:open-dashboard', {
      label: 'Workbench: Open the Dashboard of This Store',
      execute: () => {
        if (model.store) {
          window.open(apiUrl(`dashboard?${model.query()}`), '_blank', 'noopener');
        }
      }
    });
    commands.addCommand('workbench:open-report', {
      label: 'Workbench: Open the HTML Report of a Session',
      execute: async () => {
        const sessions = [...new Set(model.calls.map(c => c.session).filter(Boolean))];
        const choice = await InputDialog.getItem({ title: 'Report of session', items: sessions, editable: true });
        if (choice.button.accept && choice.value && model.store) {
          window.open(apiUrl(`report?${model.query({ session: choice.value })}`), '_blank', 'noopener');
        }
      }
    });
    commands.addCommand('workbench:cost-line', {
      label: args => String(args.label || ''),
      isEnabled: () => false,
      execute: () => undefined
    });
    commands.addCommand('workbench:kill', {
      label: 'Kill switch: refuse every new call…',
      execute: async () => {
        const reason = await InputDialog.getText({ title: 'Kill switch', label: 'Why (recorded in the audit log)' });
        if (reason.button.accept && reason.value && model.store) {
          await api(`kill?${model.query()}`, { method: 'POST', body: JSON.stringify({ reason: reason.value }) });
          await model.poll();
        }
      }
    });
    commands.addCommand('workbench:lift', {
      label: 'Lift the kill switch',
      execute: async () => {
        if (model.store) {
          await api(`kill?${model.query()}`, { method: 'DELETE' });
          await model.poll();
        }
      }
    });
    if (palette) {
      for (const command of ['workbench:open-panel', 'workbench:open-dashboard', 'workbench:open-report']) {
        palette.addItem({ command, category: 'Workbench' });
      }
    }
    if (statusBar) {
      statusBar.registerStatusItem('workbench:spend', { item: new Spend(model, app), align: 'left', rank: 50 });
    }
    model.start();
  }
};

export default plugin;

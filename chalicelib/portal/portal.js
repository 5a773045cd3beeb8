// The iot-cert-service portal: the public JSON API (openapi.json), seen in a browser. Every
// action is one API call, shown with the curl and iotcert commands that make the same call.
// All text reaches the page through textContent: nothing from the API is parsed as HTML.

import { decodeCertificate } from './x509.js';

// The API is one level above this file (portal/portal.js): "/" locally, "/<stage>/" on API
// Gateway, whatever address the page itself was opened at.
const API_BASE = new URL('..', import.meta.url);
const TOKEN_KEY = 'iot-cert-service.api-token';
const LEAF_PAGE = 25;
const EXPIRING_DAYS = 30;
const KEY_STORES = ['file', 'kms', 'pkcs11'];
const KEY_TYPES = ['EC_P256', 'EC_P384', 'RSA_2048', 'RSA_3072', 'RSA_4096', 'ED25519'];
const REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged',
  'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise'];
const KINDS = {
  root: { title: 'Root CA', fields: ['fqdn', 'organization', 'country', 'state', 'validity_days', 'key_type', 'key_store'] },
  intermediate: { title: 'Intermediate CA', fields: ['fqdn', 'parent_fqdn', 'path_length', 'organization', 'country', 'state', 'validity_days', 'key_type', 'key_store'] },
  server: { title: 'Server', fields: ['fqdn', 'parent_fqdn', 'sans', 'organization', 'country', 'state', 'validity_days', 'key_type'] },
  device: { title: 'Devices', fields: ['parent_fqdn', 'count', 'organization', 'country', 'state', 'validity_days', 'key_type'] },
};
// The rules of each field are the API's (chalicelib/api/fields.py, docs/api.md); the hints say them.
const FIELDS = {
  fqdn: { label: 'FQDN', hint: 'e.g. example.com, cell1.devices.example.com', required: true },
  parent_fqdn: { label: 'Parent CA',
    hint: 'optional; a CA whose name the FQDN lies under. Automatic: the closest existing CA above the name',
    hints: { device: 'required for devices: the CA that issues them (each device is named <uuid>.<parent CA>)' } },
  path_length: { label: 'Path length', hint: 'optional; how many CA levels may follow below this one: 0-8, under an intermediate at most its own minus 1; default 0 (leaves only)', type: 'number' },
  sans: { label: 'Extra names (SANs)', hint: 'optional; DNS names or IP addresses, separated by spaces or commas' },
  count: { label: 'Number of devices', hint: 'optional; 1 to 1000 (RSA keys: at most 80, 20 or 8; under a CA whose key is in KMS, 250), one device by default', type: 'number' },
  organization: { label: 'Organization (O)', hint: 'optional' },
  country: { label: 'Country (C)', hint: 'optional; two letters, e.g. DE' },
  state: { label: 'State (ST)', hint: 'optional' },
  validity_days: { label: 'Validity in days', hint: 'optional; defaults: root 3650, intermediate 1825, server 397, device 365; never past the issuer\'s end', type: 'number' },
  key_type: { label: 'Key type', options: KEY_TYPES },
  key_store: { label: 'Key store', options: ['', ...KEY_STORES],
    hint: 'optional; where the CA\'s key is made and kept: file, kms (AWS backend: an AWS KMS key) or pkcs11 (local backend: a PKCS#11 token); kms and pkcs11 keys never leave their store. Empty: the service\'s default (CA_KEY_STORE)' },
};

let config = { auth: { mode: 'none' } };
let signer = null; // the SigV4 client once signed in through Cognito (portal-aws.js)

// ---- DOM -------------------------------------------------------------------------------------

// What a view hands over, as nodes: lists (of lists) are flattened, and what is absent (null,
// undefined, false: a section a record does not have) is left out rather than written as text.
function nodes(content) {
  return [content].flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : document.createTextNode(String(child))));
}

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'className') element.className = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...nodes(children));
  return element;
}

const main = () => document.getElementById('main');

function show(...content) {
  main().replaceChildren(...nodes(content));
}

// ---- commands ----------------------------------------------------------------------------------

const shellQuote = (value) => `'${String(value).replaceAll("'", "'\\''")}'`;

function curlCommand(method, path, { query, body, headers = {}, output } = {}) {
  const parts = ['curl -sS --fail-with-body'];
  if (method !== 'GET') parts.push(`-X ${method}`);
  if (config.auth.mode === 'token') parts.push('-H "Authorization: Bearer $API_TOKEN"');
  if (config.auth.mode === 'cognito') {
    parts.push(`--aws-sigv4 'aws:amz:${config.auth.region}:execute-api'`,
      '--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"',
      '-H "x-amz-security-token: $AWS_SESSION_TOKEN"');
  }
  for (const [name, value] of Object.entries(headers)) parts.push(`-H ${shellQuote(`${name}: ${value}`)}`);
  if (body !== undefined) parts.push("-H 'Content-Type: application/json'", `-d ${shellQuote(JSON.stringify(body))}`);
  if (output) parts.push(`-o ${shellQuote(output)}`);
  const search = query ? `?${new URLSearchParams(query)}` : '';
  parts.push(`"$API${path}${search}"`);
  return parts.join(' \\\n  ');
}

function showCommands(curl, iotcert) {
  const base = API_BASE.href.replace(/\/$/, '');
  if (Array.isArray(curl)) curl = curl.join('\n');
  if (Array.isArray(iotcert)) iotcert = iotcert.join('\n');
  const aside = document.getElementById('commands');
  const blocks = [h('h3', {}, 'curl'), h('pre', { 'data-command': 'curl' }, `API=${base}\n${curl}`)];
  if (iotcert) {
    const setup = `export IOTCERT_API=${base}` +
      (config.auth.mode === 'token' ? '\nexport IOTCERT_TOKEN=$API_TOKEN' : '');
    blocks.push(h('h3', {}, 'iotcert'), h('pre', { 'data-command': 'iotcert' }, `${setup}\n${iotcert}`));
  }
  document.getElementById('commands-body').replaceChildren(...blocks);
  aside.hidden = false;
}

function iotcertOptions(body, names) {
  const options = [];
  for (const [field, option] of names) {
    const value = body[field];
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) options.push(`${option} ${shellQuote(item)}`);
  }
  return options.join(' ');
}

// ---- API ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, { query, body, accept = 'application/json', binary = false } = {}) {
  const url = new URL(path.replace(/^\//, ''), API_BASE);
  if (query) url.search = new URLSearchParams(query).toString();
  const headers = { Accept: accept };
  // The API takes every POST as JSON only, an empty one included: `{}`, never no body.
  if (method !== 'GET' && body === undefined) body = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (config.auth.mode === 'token' && sessionStorage.getItem(TOKEN_KEY)) {
    headers.Authorization = `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`;
  }
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  const response = signer ? await signer.fetch(url.href, init) : await fetch(url, init);
  if (!response.ok) {
    let code = `HTTP ${response.status}`;
    let message = response.statusText;
    try {
      const error = await response.json();
      code = error.Code || code;
      message = error.Message || error.message || message;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401 && config.auth.mode === 'token') sessionStorage.removeItem(TOKEN_KEY);
    throw new ApiError(response.status, code, message);
  }
  return binary ? response.blob() : response.json();
}

const certificatePath = (fqdn) => `/certificates/${encodeURIComponent(fqdn)}`;

async function listChildren(parent, filters = {}) {
  const items = [];
  let token = null;
  do {
    const query = { limit: '1000', ...filters };
    if (parent) query.parent = parent;
    if (token) query.next_token = token;
    const page = await api('GET', '/certificates', { query });
    items.push(...page.items);
    token = page.next_token;
  } while (token);
  return items;
}

// ---- status ------------------------------------------------------------------------------------

function standing(item) {
  if (item.status === 'revoked') return { key: 'revoked', text: 'revoked' };
  const days = (Date.parse(item.not_after) - Date.now()) / 86400000;
  if (days < 0) return { key: 'expired', text: 'expired' };
  if (days <= EXPIRING_DAYS) return { key: 'expiring', text: `expires in ${Math.ceil(days)} days` };
  return { key: 'active', text: 'active' };
}

const badge = (state) => h('span', { className: `badge ${state.key}`, 'data-status': state.key }, state.text);
const certificateLink = (fqdn) => h('a', { className: 'name', href: `#/certificate/${encodeURIComponent(fqdn)}` }, fqdn);
const day = (iso) => (iso ? iso.slice(0, 10) : '');

function nodeRow(item) {
  const state = standing(item);
  return h('div', { className: `node ${state.key}`, 'data-fqdn': item.fqdn, 'data-status': state.key },
    certificateLink(item.fqdn),
    h('span', { className: 'badge' }, item.type),
    h('span', { className: 'meta' }, item.key_type),
    badge(state),
    h('span', { className: 'meta' }, `until ${day(item.not_after)}`));
}

// ---- the tree ----------------------------------------------------------------------------------

const isCa = (item) => item.type === 'Root' || item.type === 'Intermediate';

function leafList(leaves) {
  const list = h('ul', { className: 'leaf-list' });
  let shown = 0;
  const more = h('button', { type: 'button', className: 'secondary', onclick: () => addPage() }, 'Show more');
  function addPage() {
    for (const leaf of leaves.slice(shown, shown + LEAF_PAGE)) list.append(h('li', {}, nodeRow(leaf)));
    shown = Math.min(leaves.length, shown + LEAF_PAGE);
    more.hidden = shown >= leaves.length;
    more.textContent = `Show ${Math.min(LEAF_PAGE, leaves.length - shown)} more of ${leaves.length - shown}`;
  }
  addPage();
  return [list, more];
}

async function caNode(item) {
  const children = await listChildren(item.fqdn);
  const cas = children.filter(isCa);
  const leaves = children.filter((child) => !isCa(child));
  const servers = leaves.filter((leaf) => leaf.type === 'Server').length;
  const devices = leaves.length - servers;
  const nested = h('ul');
  for (const ca of cas) nested.append(await caNode(ca));
  let leafDetails = null;
  if (leaves.length) {
    const summary = h('summary', {}, `${servers} server${servers === 1 ? '' : 's'}, ${devices} device${devices === 1 ? '' : 's'}`);
    leafDetails = h('details', { className: 'leaves', 'data-leaves-of': item.fqdn }, summary);
    summary.addEventListener('click', () => {
      if (leafDetails.childElementCount === 1) leafDetails.append(...leafList(leaves));
    }, { once: true });
  }
  return h('li', {}, nodeRow(item), h('ul', {}, leafDetails && h('li', {}, leafDetails), ...nested.children));
}

// The commands beside the hierarchy: the roots, and what one of them issued (a root that
// exists: none on an empty store).
function treeCommands(roots) {
  const curl = [curlCommand('GET', '/certificates')];
  const iotcert = [roots.length ? 'iotcert tree --leaves' : 'iotcert tree'];
  if (roots.length) {
    curl.push(curlCommand('GET', '/certificates', { query: { parent: roots[0].fqdn } }));
    iotcert.push(`iotcert list --parent ${shellQuote(roots[0].fqdn)}`);
  }
  showCommands(curl, iotcert);
}

// What expires soon, fleet-wide: GET /certificates/expiring, soonest first, a page at a time.
async function viewExpiring(search) {
  const days = /^\d{1,5}$/.test(search.get('days') || '') ? Number(search.get('days')) : EXPIRING_DAYS;
  const query = { within_days: days, limit: LEAF_PAGE };
  if (search.get('next')) query.next_token = search.get('next');
  showCommands([curlCommand('GET', '/certificates/expiring', { query: { within_days: days } })],
    [`iotcert expiring --within-days ${days}`]);
  const page = await api('GET', '/certificates/expiring', { query });
  const heading = h('h2', {}, `Expiring within ${days} days`);
  if (!page.items.length) {
    show(heading, h('p', { className: 'notice' }, `Nothing active expires within ${days} days.`));
    return;
  }
  const rows = page.items.map((item) => h('tr', { 'data-fqdn': item.fqdn },
    h('td', {}, certificateLink(item.fqdn)), h('td', {}, item.type),
    h('td', {}, item.parent_fqdn || '(root)'), h('td', {}, item.not_after),
    h('td', { 'data-days-left': item.days_left }, `${item.days_left} days`)));
  const next = page.next_token
    && h('p', {}, h('a', { href: `#/expiring?days=${days}&next=${encodeURIComponent(page.next_token)}` }, 'Next page'));
  show(heading,
    h('p', { className: 'meta' }, 'The active certificates of every CA that end within the window, soonest first; a daily scan also announces each as an expiring event.'),
    h('table', { className: 'expiring' },
      h('thead', {}, h('tr', {}, ...['Certificate', 'Type', 'Issued by', 'Not after', 'Left'].map((name) => h('th', {}, name)))),
      h('tbody', {}, rows)),
    next);
}

async function viewTree() {
  treeCommands([]);
  const roots = await listChildren(null);
  treeCommands(roots);
  if (!roots.length) {
    show(h('h2', {}, 'Hierarchy'), h('p', { className: 'notice' },
      'No certificates yet. A PKI starts with a root CA: ', h('a', { href: '#/create/root' }, 'create one'), '.'));
    return;
  }
  const tree = h('ul', { className: 'tree', 'aria-label': 'Certificate hierarchy' });
  for (const root of roots) tree.append(await caNode(root));
  show(h('h2', {}, 'Hierarchy'),
    h('p', { className: 'meta' }, 'Each root with the CAs below it; servers and devices are counted per CA (open a count to list them). Colours and labels mark revoked, expired and soon-expiring (within 30 days) certificates.'),
    tree);
}

// ---- creating ----------------------------------------------------------------------------------

// Every CA that can issue now (not revoked, not expired), from the roots down, each with the
// page of its children followed to the end.
async function issuingCas() {
  const found = [];
  async function walk(parent, depth) {
    const children = await listChildren(parent, { status: 'active' });
    for (const item of children.filter(isCa)) {
      if (standing(item).key === 'expired') continue;
      found.push({ ...item, depth });
      await walk(item.fqdn, depth + 1);
    }
  }
  await walk(null, 0);
  return found;
}

// The CA the API picks for an intermediate or a server without a parent: the closest one above
// the name (the longest proper suffix of it).
function closestCaAbove(fqdn, cas) {
  const name = fqdn.trim().toLowerCase().replace(/\.$/, '');
  let best = null;
  for (const ca of cas) {
    if (name.endsWith(`.${ca.fqdn}`) && (!best || ca.fqdn.length > best.fqdn.length)) best = ca;
  }
  return best;
}

const AUTOMATIC_PARENT = 'Automatic: the closest CA above the name';

function parentSelect(id, kind, cas, chosen) {
  const first = kind === 'device'
    ? h('option', { value: '' }, cas.length ? 'Choose the issuing CA' : 'No CA can issue yet')
    : h('option', { value: '', 'data-automatic': true }, AUTOMATIC_PARENT);
  const select = h('select', { id, name: 'parent_fqdn', required: kind === 'device' }, first,
    cas.map((ca) => h('option', { value: ca.fqdn, 'data-type': ca.type },
      `${'\u00a0\u00a0'.repeat(ca.depth)}${ca.fqdn} (${ca.type})`)));
  if (chosen && cas.some((ca) => ca.fqdn === chosen)) select.value = chosen;
  return select;
}

function fieldControl(name, kind, defaults, cas) {
  const spec = FIELDS[name];
  const id = `field-${name}`;
  const errorId = `${id}-error`;
  const required = spec.required || (kind === 'device' && name === 'parent_fqdn');
  const hint = (spec.hints && spec.hints[kind]) || spec.hint;
  let control;
  if (name === 'parent_fqdn') {
    control = parentSelect(id, kind, cas, defaults.parent_fqdn);
  } else if (spec.options) {
    const choices = kind === 'device' ? spec.options : spec.options.filter((option) => option !== 'ED25519');
    control = h('select', { id, name }, choices.map((option) => h('option', { value: option }, option || 'the service\'s default')));
  } else {
    control = h('input', { id, name, type: spec.type === 'number' ? 'number' : 'text', required,
      autocomplete: 'off', spellcheck: 'false', value: defaults[name] });
  }
  control.setAttribute('aria-describedby', `${id}-hint ${errorId}`);
  const noCa = name === 'parent_fqdn' && !cas.length
    && h('p', { className: 'notice' }, 'No CA can issue yet: ', h('a', { href: '#/create/root' }, 'create a root CA'), ' first.');
  return h('div', { className: 'field' },
    h('label', { for: id }, spec.label + (required ? ' (required)' : '')),
    control,
    hint && h('span', { className: 'hint', id: `${id}-hint` }, hint),
    noCa,
    h('p', { className: 'error', id: errorId, 'data-error-for': name, role: 'alert' }));
}

function readForm(form, kind) {
  const body = {};
  for (const name of KINDS[kind].fields) {
    const raw = form.elements[name].value.trim();
    if (raw === '') continue;
    if (name === 'sans') body.sans = raw.split(/[\s,]+/).filter(Boolean);
    else if (FIELDS[name].type === 'number') body[name] = /^-?\d+$/.test(raw) ? Number(raw) : raw;
    else if (name === 'key_type' && raw === 'EC_P256') continue;
    else body[name] = raw;
  }
  return body;
}

function createCommands(kind, body) {
  const options = iotcertOptions(body, [['parent_fqdn', '--parent'], ['path_length', '--path-length'],
    ['sans', '--san'], ['count', '--count'], ['organization', '--organization'], ['country', '--country'],
    ['state', '--state'], ['validity_days', '--validity-days'], ['key_type', '--key-type'],
    ['key_store', '--key-store']]);
  const name = body.fqdn ? ` ${shellQuote(body.fqdn)}` : '';
  return [curlCommand('POST', `/certificates/${kind}`, { body }), `iotcert create ${kind}${name}${options ? ` ${options}` : ''}`];
}

function showFieldError(form, error) {
  const [field] = error.message.split(':', 1);
  const name = field.replace(/\[\d+\]$/, '');
  const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) || form.querySelector('[data-error-for="form"]');
  slot.textContent = error.message;
  const control = form.elements[name];
  if (control && slot.dataset.errorFor === name) {
    control.setAttribute('aria-invalid', 'true');
    control.focus();
  }
}

async function viewCreate(kind, parameters) {
  if (!KINDS[kind]) kind = 'root';
  const defaults = { parent_fqdn: parameters.get('parent') || undefined };
  const cas = KINDS[kind].fields.includes('parent_fqdn') ? await issuingCas() : [];
  const form = h('form', { className: 'stack', novalidate: true, 'data-kind': kind },
    KINDS[kind].fields.map((name) => fieldControl(name, kind, defaults, cas)),
    h('p', { className: 'error', 'data-error-for': 'form', role: 'alert' }),
    h('div', { className: 'actions' }, h('button', { type: 'submit' }, `Create ${KINDS[kind].title.toLowerCase()}`)));
  // Without a parent chosen, the automatic choice names the CA the API would pick for the name.
  const automatic = form.querySelector('option[data-automatic]');
  const refreshAutomatic = () => {
    if (!automatic) return;
    const closest = closestCaAbove(form.elements.fqdn.value, cas);
    automatic.textContent = closest ? `Automatic: ${closest.fqdn}` : AUTOMATIC_PARENT;
  };
  const refreshCommands = () => showCommands(...createCommands(kind, readForm(form, kind)));
  form.addEventListener('input', () => {
    refreshAutomatic();
    refreshCommands();
  });
  form.addEventListener('change', refreshCommands);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const slot of form.querySelectorAll('[data-error-for]')) slot.textContent = '';
    for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
    const body = readForm(form, kind);
    showCommands(...createCommands(kind, body));
    form.querySelector('button[type=submit]').disabled = true;
    try {
      const issued = await api('POST', `/certificates/${kind}`, { body });
      viewIssued(issued);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showFieldError(form, error);
    } finally {
      form.querySelector('button[type=submit]').disabled = false;
    }
  });
  show(h('h2', {}, `Create: ${KINDS[kind].title}`),
    h('nav', { className: 'kinds', 'aria-label': 'Certificate kind' },
      Object.entries(KINDS).map(([name, { title }]) => h('a', { href: `#/create/${name}`, 'aria-current': name === kind ? 'page' : false }, title))),
    form);
  refreshAutomatic();
  refreshCommands();
  form.elements[0].focus();
}

function keyWarning(items) {
  const keys = items.filter((item) => item.private_key);
  if (!keys.length) return null;
  const text = keys.map((item) => `# ${item.fqdn}\n${item.private_key}`).join('\n');
  return h('div', { className: 'warning', role: 'alert' },
    h('h3', {}, keys.length === 1 ? 'Private key: shown this once' : `${keys.length} private keys: shown this once`),
    h('p', {}, 'Save it now and keep it secret. This page does not show it again; anyone who holds it can act as this certificate.'),
    h('label', { for: 'issued-key' }, 'Private key (PKCS#8 PEM)'),
    h('textarea', { id: 'issued-key', className: 'pem', readonly: true, rows: 8 }, text),
    h('div', { className: 'actions' }, copyButton(text, 'Copy key', 'issued-key'),
      downloadButton(keys.length === 1 ? `${keys[0].fqdn}.key.pem` : 'device-keys.pem', () => new Blob([text]), 'Download key')));
}

function viewIssued(issued) {
  const items = issued.items || [issued];
  // Its own address, so that the form is one step back; the key is not kept to be shown again.
  history.pushState(null, '', '#/issued');
  document.body.dataset.ready = '#/issued';
  show(h('h2', { 'data-issued': items[0].fqdn }, items.length === 1 ? `Issued: ${items[0].fqdn}` : `Issued ${items.length} devices`),
    keyWarning(items),
    h('ul', { className: 'issued' }, items.map((item) => h('li', {}, certificateLink(item.fqdn), ' ', h('span', { className: 'meta' }, `${item.type}, serial ${item.serial}`)))),
    h('p', {}, h('a', { href: '#/' }, 'Back to the hierarchy')));
}

// ---- one certificate ---------------------------------------------------------------------------

// Copies `text` (the content of the box `boxId`); says so on the button for a few seconds.
// Where the Clipboard API is not offered (a page served over plain HTTP from another host than
// localhost), the box's text is selected and copied the older way.
function copyButton(text, label, boxId) {
  let restore = null;
  return h('button', { type: 'button', className: 'secondary', 'data-copies': boxId, onclick: async (event) => {
    const button = event.currentTarget;
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      const box = document.getElementById(boxId);
      if (box) {
        box.focus();
        box.select();
        copied = document.execCommand('copy');
      }
    }
    button.textContent = copied ? 'Copied' : 'Select the text and copy it';
    clearTimeout(restore);
    restore = setTimeout(() => { button.textContent = label; }, 4000);
  } }, label);
}

function saveBlob(filename, blob) {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function downloadButton(filename, produce, label) {
  return h('button', { type: 'button', className: 'secondary', onclick: async () => saveBlob(filename, await produce()) }, label);
}

function fieldList(record, decoded) {
  const rows = [
    ['Type', record.type], ['Subject', decoded.subject], ['Issuer', decoded.issuer],
    ['Issued by', record.parent_fqdn || '(self-signed root)'], ['Serial', record.serial],
    ['Valid from', record.not_before], ['Valid until', record.not_after],
    ['Key', `${decoded.publicKey} (${record.key_type})`], ['Signature', decoded.signatureAlgorithm],
    ['SHA-256 fingerprint', record.fingerprint_sha256], ['Generation', record.generation],
    ['Key store', record.key_store], ['Key ID', record.key_id],
  ];
  if (record.device_id) rows.splice(1, 0, ['Device ID', record.device_id]);
  if (record.status === 'revoked') {
    rows.push(['Revoked at', record.revoked_at], ['Revocation reason', record.revocation_reason]);
    if (record.revoked_with && record.revoked_with !== record.fqdn) rows.push(['Revoked with', record.revoked_with]);
  }
  // A field the record lacks is not listed, rather than listed empty.
  const present = rows.filter(([, value]) => value !== null && value !== undefined && value !== '');
  return h('dl', { className: 'fields' }, present.flatMap(([name, value]) => [h('dt', {}, name), h('dd', { 'data-field': name }, value)]));
}

function extensionTable(extensions) {
  return h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Extension'), h('th', {}, 'Critical'), h('th', {}, 'Value'))),
    h('tbody', {}, extensions.map((extension) => h('tr', {}, h('td', {}, extension.name), h('td', {}, extension.critical ? 'yes' : 'no'), h('td', {}, extension.value)))));
}

function pemBlock(id, label, pem) {
  const box = h('textarea', { id, className: 'pem', readonly: true, rows: 6, spellcheck: 'false' });
  box.value = pem; // its content as text, exactly as the API sent it
  return h('div', { className: 'pem-block', 'data-pem': id }, h('label', { for: id }, label), box,
    h('div', { className: 'actions' }, copyButton(pem, `Copy ${label.split(' (')[0].toLowerCase()}`, id)));
}

// The chain, or what stands in its place: a root has none, and none is served below a revoked
// CA (no chain through it verifies).
function chainBlock(record) {
  if (record.chain) return pemBlock('pem-chain', 'Chain (issuer first, root last)', record.chain);
  let why = 'None is served.';
  if (record.type === 'Root') why = 'None: a root CA is its own issuer.';
  else if (record.status === 'revoked') why = 'None is served: no chain through a revoked CA verifies.';
  return h('div', { className: 'pem-block' }, h('h4', {}, 'Chain'), h('p', { className: 'meta', 'data-no-chain': true }, why));
}

function bundleSection(record) {
  const fqdn = record.fqdn;
  const path = `${certificatePath(fqdn)}/bundle`;
  const get = (format, suffix) => downloadButton(`${fqdn}.${suffix}`, () => {
    showCommands(curlCommand('GET', path, { query: { format }, output: `${fqdn}.${suffix}` }), `iotcert bundle ${shellQuote(fqdn)} --format ${format} -o ${shellQuote(`${fqdn}.${suffix}`)}`);
    return api('GET', path, { query: { format }, accept: 'application/x-pem-file', binary: true });
  }, `Download ${format === 'pem' ? 'certificate' : format} (PEM)`);
  const section = h('section', { className: 'panel', 'aria-labelledby': 'downloads-title' },
    h('h3', { id: 'downloads-title' }, 'Downloads'),
    h('div', { className: 'actions' }, get('pem', 'pem'), get('fullchain', 'fullchain.pem'), get('chain', 'chain.pem')));
  if (isCa(record)) return section;
  const error = h('p', { className: 'error', 'data-error-for': 'password', role: 'alert' });
  const form = h('form', { className: 'actions', id: 'pkcs12-form' },
    h('div', { className: 'field' }, h('label', { for: 'pkcs12-password' }, 'PKCS#12 password'),
      h('input', { id: 'pkcs12-password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, 'aria-describedby': 'pkcs12-error' })),
    h('button', { type: 'submit' }, 'Download PKCS#12'));
  error.id = 'pkcs12-error';
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const password = form.elements.password.value;
    showCommands(curlCommand('GET', path, { query: { format: 'pkcs12' }, headers: { 'X-Bundle-Password': '$P12_PASSWORD' }, output: `${fqdn}.p12` }).replace("'X-Bundle-Password: $P12_PASSWORD'", '"X-Bundle-Password: $P12_PASSWORD"'),
      `IOTCERT_BUNDLE_PASSWORD=$P12_PASSWORD iotcert bundle ${shellQuote(fqdn)} --format pkcs12 -o ${shellQuote(`${fqdn}.p12`)}`);
    try {
      saveBlob(`${fqdn}.p12`, await api('POST', path, { body: { format: 'pkcs12', password }, accept: 'application/x-pkcs12', binary: true }));
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      error.textContent = failure.message;
    }
  });
  section.append(form, error, h('p', { className: 'meta' }, 'The password travels in the request body, never in a URL.'));
  return section;
}

function revokeSection(record) {
  if (record.status === 'revoked') return null;
  const path = `${certificatePath(record.fqdn)}/revoke`;
  const error = h('p', { className: 'error', 'data-error-for': 'reason', role: 'alert' });
  const form = h('form', { className: 'actions', id: 'revoke-form' },
    h('div', { className: 'field' }, h('label', { for: 'revoke-reason' }, 'Reason'),
      h('select', { id: 'revoke-reason', name: 'reason' }, REASONS.map((reason) => h('option', { value: reason }, reason)))),
    h('button', { type: 'submit', className: 'danger' }, 'Revoke'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.textContent = '';
    const body = { reason: form.elements.reason.value };
    showCommands(curlCommand('POST', path, { body }), `iotcert revoke ${shellQuote(record.fqdn)} --reason ${body.reason}`);
    revokeDialog(record, body.reason, async () => {
      try {
        const revoked = await api('POST', path, { body });
        const below = revoked.issued_certificates;
        const notice = typeof below === 'number'
          ? `Revoked, with the ${below} certificate${below === 1 ? '' : 's'} it issued and everything below them.`
          : 'Revoked.';
        await viewCertificate(record.fqdn, { keepCommands: true, notice });
      } catch (failure) {
        if (!(failure instanceof ApiError)) throw failure;
        error.textContent = failure.message;
      }
    });
  });
  return h('section', { className: 'panel' }, h('h3', {}, 'Revoke'),
    h('p', {}, isCa(record)
      ? 'A revoked CA issues nothing more, and every certificate below it is revoked with it. The page asks you to type its name first.'
      : 'The certificate is listed on its issuer\'s CRL from then on. The page asks you to confirm first.'),
    form, error);
}

// Revoking and deleting ask first, in a dialog: for a server or a device, to confirm; for a CA,
// whose revocation or deletion takes everything below it, to type its name.
function confirmDialog(record, verb, lines, onConfirm) {
  const ca = isCa(record);
  const action = `${verb[0].toUpperCase()}${verb.slice(1)}`;
  const confirm = h('button', { type: 'button', className: 'danger', 'data-confirm': verb, disabled: ca }, `${action} ${record.fqdn}`);
  const cancel = h('button', { type: 'button', className: 'secondary', 'data-confirm': 'cancel' }, 'Cancel');
  const typed = ca && h('input', { id: `${verb}-confirm-name`, autocomplete: 'off', spellcheck: 'false' });
  const dialog = h('dialog', { className: 'confirm', id: `${verb}-dialog`, 'aria-labelledby': `${verb}-dialog-title` },
    h('h3', { id: `${verb}-dialog-title` }, `${action} ${record.fqdn}?`),
    lines.map((line) => h('p', {}, line)),
    ca && h('div', { className: 'field' },
      h('label', { for: `${verb}-confirm-name` }, `Type ${record.fqdn} to confirm`), typed),
    h('div', { className: 'actions' }, confirm, cancel));
  if (typed) typed.addEventListener('input', () => { confirm.disabled = typed.value.trim() !== record.fqdn; });
  cancel.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => dialog.remove());
  confirm.addEventListener('click', () => {
    if (ca && typed.value.trim() !== record.fqdn) return;
    dialog.close();
    onConfirm();
  });
  main().append(dialog);
  dialog.showModal();
  (typed || cancel).focus();
}

function revokeDialog(record, reason, onConfirm) {
  confirmDialog(record, 'revoke', [
    isCa(record)
      ? 'This CA issues nothing more, and every certificate below it (the CAs, servers and devices it issued, and theirs) is revoked with it.'
      : 'The certificate is listed on its issuer\'s CRL from then on, and can no longer be renewed.',
    `Reason: ${reason}. A revocation cannot be undone.`,
  ], onConfirm);
}

// A revoked certificate can be deleted: its documents (a private key with them) and its listing
// go; its revocation stays on its issuer's CRL. A CA goes with everything below it.
function deleteSection(record) {
  if (record.status !== 'revoked') return null;
  const ca = isCa(record);
  const path = certificatePath(record.fqdn);
  const query = ca ? { cascade: 'true' } : undefined;
  const error = h('p', { className: 'error', role: 'alert' });
  const button = h('button', { type: 'button', className: 'danger', id: 'delete-button' }, 'Delete');
  button.addEventListener('click', () => {
    error.textContent = '';
    showCommands(curlCommand('DELETE', path, { query, headers: { 'Content-Type': 'application/json' } }),
      `iotcert delete ${shellQuote(record.fqdn)}${ca ? ' --cascade' : ''}`);
    confirmDialog(record, 'delete', [
      ca
        ? 'The CA and every certificate below it (the CAs, servers and devices it issued, and theirs) are deleted: their documents, private keys and listings.'
        : 'The certificate is deleted: its documents, its private key and its listing.',
      'Its revocation stays on its issuer\'s CRL, and the name is not issued again under that CA. A deletion cannot be undone.',
    ], async () => {
      try {
        const deleted = await api('DELETE', path, { query });
        const below = deleted.deleted - 1;
        show(h('h2', {}, `Deleted ${deleted.fqdn}`),
          h('p', { className: 'notice', role: 'status' }, below > 0
            ? `Deleted, with the ${below} certificate${below === 1 ? '' : 's'} below it.`
            : 'Deleted.'),
          h('p', {}, h('a', { href: '#/' }, 'Hierarchy')));
      } catch (failure) {
        if (!(failure instanceof ApiError)) throw failure;
        error.textContent = failure.message;
      }
    });
  });
  return h('section', { className: 'panel' }, h('h3', {}, 'Delete'),
    h('p', {}, ca
      ? 'Deletes this CA with everything below it. The page asks you to type its name first.'
      : 'Deletes this certificate and its private key. The page asks you to confirm first.'),
    h('div', { className: 'actions' }, button), error);
}

function renewSection(record) {
  if (record.status === 'revoked') return null;
  const path = `${certificatePath(record.fqdn)}/renew`;
  const error = h('p', { className: 'error', role: 'alert' });
  const button = h('button', { type: 'button', className: 'secondary', onclick: async () => {
    showCommands(curlCommand('POST', path, { body: {} }), `iotcert renew ${shellQuote(record.fqdn)}`);
    try {
      viewIssued(await api('POST', path, { body: {} }));
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      error.textContent = failure.message;
    }
  } }, 'Renew');
  return h('section', { className: 'panel' }, h('h3', {}, 'Renew'),
    h('p', {}, isCa(record) ? 'A new certificate for the same key: what it issued stays valid.' : 'A new generation with a new key, the same name and issuer.'),
    h('div', { className: 'actions' }, button), error);
}

async function viewCertificate(fqdn, { keepCommands = false, notice = null } = {}) {
  const path = certificatePath(fqdn);
  if (!keepCommands) showCommands(curlCommand('GET', path), `iotcert show ${shellQuote(fqdn)}`);
  const record = await api('GET', path);
  const decoded = decodeCertificate(record.certificate);
  const state = standing(record);
  show(h('h2', {}, record.fqdn, ' ', badge(state)),
    notice && h('p', { className: 'notice', role: 'status' }, notice),
    h('p', {}, h('a', { href: '#/' }, 'Hierarchy'), isCa(record) && record.status !== 'revoked' ? [' · ',
      h('a', { href: `#/create/intermediate?parent=${encodeURIComponent(record.fqdn)}` }, 'New intermediate below'), ' · ',
      h('a', { href: `#/create/server?parent=${encodeURIComponent(record.fqdn)}` }, 'New server'), ' · ',
      h('a', { href: `#/create/device?parent=${encodeURIComponent(record.fqdn)}` }, 'New devices')] : null),
    fieldList(record, decoded),
    h('h3', {}, 'Extensions'), extensionTable(decoded.extensions),
    h('h3', {}, 'PEM'), pemBlock('pem-certificate', 'Certificate', record.certificate), chainBlock(record),
    bundleSection(record), renewSection(record), revokeSection(record),
    record.status === 'revoked' && h('section', { className: 'panel' }, h('h3', {}, 'Revoked'),
      h('p', {}, record.revoked_with && record.revoked_with !== record.fqdn
        ? `Revoked with the CA ${record.revoked_with}: it can no longer be renewed, and nothing is issued below it.`
        : 'It can no longer be renewed, and it is listed on its issuer\'s CRL.')),
    deleteSection(record));
}

// ---- sign-in -----------------------------------------------------------------------------------

function authStatus() {
  const slot = document.getElementById('auth-status');
  if (config.auth.mode === 'token' && sessionStorage.getItem(TOKEN_KEY)) {
    slot.replaceChildren('Token set', h('button', { type: 'button', className: 'secondary', onclick: () => {
      sessionStorage.removeItem(TOKEN_KEY);
      route();
    } }, 'Forget token'));
  } else if (signer) {
    slot.replaceChildren(`Signed in as ${signer.username}`);
  } else {
    slot.replaceChildren();
  }
}

function viewToken(message) {
  const form = h('form', { className: 'stack' },
    h('p', {}, 'This server asks for its API token (API_TOKEN). The page keeps it in this tab\'s session storage only.'),
    h('div', { className: 'field' }, h('label', { for: 'api-token' }, 'API token'),
      h('input', { id: 'api-token', name: 'token', type: 'password', autocomplete: 'off', required: true })),
    message && h('p', { className: 'error', role: 'alert' }, message),
    h('div', { className: 'actions' }, h('button', { type: 'submit' }, 'Continue')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, form.elements.token.value);
    route();
  });
  show(h('h2', {}, 'API token'), form);
  form.elements.token.focus();
}

async function viewSignIn(message) {
  const { signIn } = await import('./portal-aws.js');
  const form = h('form', { className: 'stack' },
    h('div', { className: 'field' }, h('label', { for: 'username' }, 'User name'),
      h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true })),
    h('div', { className: 'field' }, h('label', { for: 'password' }, 'Password'),
      h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    message && h('p', { className: 'error', role: 'alert' }, message),
    h('div', { className: 'actions' }, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      signer = await signIn(config.auth, form.elements.username.value, form.elements.password.value);
      route();
    } catch (failure) {
      viewSignIn(failure.message);
    }
  });
  show(h('h2', {}, 'Sign in'), form);
}

// ---- routing -----------------------------------------------------------------------------------

async function route() {
  authStatus();
  if (config.auth.mode === 'token' && !sessionStorage.getItem(TOKEN_KEY)) return viewToken();
  if (config.auth.mode === 'cognito' && !signer) return viewSignIn();
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  try {
    if (parts[0] === 'create') await viewCreate(parts[1], new URLSearchParams(search));
    else if (parts[0] === 'certificate' && parts[1]) await viewCertificate(decodeURIComponent(parts[1]));
    else if (parts[0] === 'expiring') await viewExpiring(new URLSearchParams(search));
    else await viewTree();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401 && config.auth.mode === 'token') return viewToken(error.message);
    show(h('h2', {}, error.code), h('p', { className: 'error', role: 'alert' }, error.message),
      h('p', {}, h('a', { href: '#/' }, 'Back to the hierarchy')));
  }
  document.body.dataset.ready = location.hash || '#/';
}

async function start() {
  const response = await fetch(new URL('portal/config.json', API_BASE));
  config = await response.json();
  window.addEventListener('hashchange', () => {
    delete document.body.dataset.ready;
    route();
  });
  await route();
}

start();

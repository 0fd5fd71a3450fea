// Drive Roster's Groups API through Sinch's own Node SDK (npm `@sinch/sms`).
//
// usage: node sinch_groups.mjs BASE_URL PLAN_ID TOKEN
//
// Exits 0 when every check passes; on the first failed check it prints
// "FAIL [node] ..." to stderr and exits 1.
//
// SDK notes (@sinch/sms 1.4.0 on @sinch/sdk-client 1.5.0):
// - { servicePlanId, apiToken } selects API-token auth: requests go to
//   {smsHostname}/xms/v1/{servicePlanId}/... with "Authorization: Bearer {apiToken}".
// - smsHostname is used verbatim as the URL prefix, so it must include the
//   scheme and port ("http://127.0.0.1:8080"), despite the README's example.
// - @sinch/sdk-client reads @sinch/sdk-core/package.json at load time without
//   declaring it, so @sinch/sdk-core is installed alongside @sinch/sms.
// - update() sends only the fields given (JSON.stringify drops undefined);
//   name: null is sent as an explicit null.
// - list() only exposes {data, hasNextPage, nextPage()}; hasNextPage is computed
//   from the response's count/page/page_size, and the SDK throws if any of those
//   three is not a number.
import { SmsService } from '@sinch/sms';

const say = (msg) => console.log(`[node] ${msg}`);

function fail(msg) {
  console.error(`FAIL [node] ${msg}`);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

const show = (value) => JSON.stringify(value);
const sameList = (a, b) => show(a) === show(b);

// Members are compared without a leading '+': Sinch itself returns MSISDNs without
// it, Roster returns E.164 with it; the SDKs pass either through untouched.
const digits = (numbers) => numbers.map((n) => n.replace(/^\+/, '')).sort();

function smsFor(baseUrl, planId, token) {
  return new SmsService({
    servicePlanId: planId,
    apiToken: token,
    smsHostname: baseUrl.replace(/\/+$/, ''),
    // The SDK logs every 4xx at debug level; the expected ones would drown the output.
    logger: { debug() {}, info() {}, warn: console.warn, error: console.error },
  });
}

async function expectError(what, call, status, code) {
  let result;
  try {
    result = await call();
  } catch (e) {
    check(typeof e.statusCode === 'number',
      `${what}: expected HTTP ${status}, got a non-HTTP error: ${e.message}`);
    check(!String(e.message).includes('Response JSON parse error'),
      `${what}: error body must be JSON or empty: ${e.message}`);
    let body;
    try {
      body = JSON.parse(e.data ?? 'null');
    } catch {
      body = e.data;
    }
    check(e.statusCode === status, `${what}: expected HTTP ${status}, got ${e.statusCode} body=${show(body)}`);
    if (code !== undefined) {
      check(body && body.code === code, `${what}: expected error code ${show(code)}, got body=${show(body)}`);
      check(typeof body.text === 'string' && body.text !== '',
        `${what}: error body needs a non-empty 'text', got ${show(body)}`);
    }
    say(`ok: ${what} -> ${status} ${body && body.code ? body.code : ''}`);
    return;
  }
  fail(`${what}: expected HTTP ${status}, but the call succeeded: ${show(result)}`);
}

function checkGroup(g, what, { id, name, size, childGroups } = {}) {
  check(g && typeof g.id === 'string' && g.id !== '', `${what}: missing id in ${show(g)}`);
  if (id !== undefined) check(g.id === id, `${what}: id ${show(g.id)} != ${show(id)}`);
  check(g.name === name, `${what}: name ${show(g.name)} != ${show(name)}`);
  if (size !== undefined) check(g.size === size, `${what}: size ${show(g.size)} != ${size}`);
  if (childGroups !== undefined) {
    check(sameList(g.child_groups, childGroups),
      `${what}: child_groups ${show(g.child_groups)} != ${show(childGroups)}`);
  }
  for (const field of ['created_at', 'modified_at']) {
    check(g[field] instanceof Date && !Number.isNaN(g[field].getTime()),
      `${what}: ${field} should be a timestamp, got ${show(g[field])}`);
  }
}

async function main() {
  if (process.argv.length !== 5) {
    console.error('usage: node sinch_groups.mjs BASE_URL PLAN_ID TOKEN');
    process.exit(2);
  }
  const [baseUrl, planId, token] = process.argv.slice(2);
  const sms = smsFor(baseUrl, planId, token);
  const groups = sms.groups;

  const tag = Math.random().toString(16).slice(2, 8);
  const [nameA, nameB, nameC] = [`js-${tag}-A`, `js-${tag}-B`, `js-${tag}-C`];
  const [n1, n2, n3, n4, n5, n6, n7] = [1, 2, 3, 4, 5, 6, 7].map((i) => `+4670123460${i}`);

  const checkMembers = async (groupId, expected, what) => {
    const got = await groups.listMembers({ group_id: groupId });
    check(Array.isArray(got), `${what}: expected an array of members, got ${show(got)}`);
    check(sameList(digits(got), digits(expected)), `${what}: members ${show(got)} != ${show(expected)}`);
  };
  // The Node SDK does not expose `count`; walking every page relies on it instead.
  const countByWalking = async () => {
    let n = 0;
    for await (const g of groups.list({ page_size: 2 })) {
      check(g && g.id, `list iteration: bad item ${show(g)}`);
      n += 1;
    }
    return n;
  };

  // --- auth --------------------------------------------------------------
  const before = await countByWalking();
  say(`ok: list works, ${before} existing group(s)`);
  await expectError('wrong token',
    () => smsFor(baseUrl, planId, `${token}x`).groups.list({ page: 0, page_size: 1 }), 401);
  await expectError('token used with another service plan',
    () => smsFor(baseUrl, `${planId}x`, token).groups.list({ page: 0, page_size: 1 }), 403);

  // --- create / retrieve -------------------------------------------------
  const a = await groups.create({ createGroupRequestBody: { name: nameA, members: [n1, n2, n1] } });
  checkGroup(a, 'create A', { name: nameA, size: 2, childGroups: [] });
  say(`ok: create with a duplicate member -> size 2, child_groups [] (${a.id})`);
  const got = await groups.get({ group_id: a.id });
  checkGroup(got, 'retrieve A', { id: a.id, name: nameA, size: 2, childGroups: [] });
  check(got.created_at.getTime() === a.created_at.getTime(), 'retrieve A: created_at changed');
  await checkMembers(a.id, [n1, n2], 'members of A');
  say('ok: retrieve and members');

  // --- update: add + remove of the same number (name omitted -> unchanged) --
  const update = (groupId, body) => groups.update({ group_id: groupId, updateGroupRequestBody: body });
  let u = await update(a.id, { add: [n3], remove: [n3] });
  checkGroup(u, 'update add+remove', { id: a.id, name: nameA, size: 2 });
  await checkMembers(a.id, [n1, n2], `after add+remove of ${n3}`);
  u = await update(a.id, { add: [n1], remove: ['+46709999999'] });
  checkGroup(u, 'update duplicate add / unknown remove', { id: a.id, name: nameA, size: 2 });
  say('ok: add+remove of the same number leaves it absent; omitted name is kept');

  // --- add_from_group / remove_from_group ----------------------------------
  const b = await groups.create({ createGroupRequestBody: { name: nameB, members: [n4, n5] } });
  checkGroup(b, 'create B', { name: nameB, size: 2, childGroups: [] });
  u = await update(a.id, { add_from_group: b.id });
  checkGroup(u, 'add_from_group', { id: a.id, name: nameA, size: 4 });
  await checkMembers(a.id, [n1, n2, n4, n5], 'after add_from_group');
  u = await update(a.id, { remove_from_group: b.id });
  checkGroup(u, 'remove_from_group', { id: a.id, name: nameA, size: 2 });
  await checkMembers(a.id, [n1, n2], 'after remove_from_group');
  say('ok: add_from_group / remove_from_group');

  // --- rename, then name=null ---------------------------------------------
  const renamed = `js-${tag}-renamed`;
  u = await update(a.id, { name: renamed });
  checkGroup(u, 'rename', { id: a.id, name: renamed, size: 2 });
  u = await update(a.id, { name: null });
  checkGroup(u, 'name=null', { id: a.id, name: undefined, size: 2 });
  checkGroup(await groups.get({ group_id: a.id }), 'retrieve after name=null', { id: a.id, name: undefined, size: 2 });
  say('ok: rename and name=null');

  // --- child_groups on create ----------------------------------------------
  const c = await groups.create({ createGroupRequestBody: { name: nameC, child_groups: [b.id] } });
  checkGroup(c, 'create C with child B', { name: nameC, childGroups: [b.id] });
  checkGroup(await groups.get({ group_id: c.id }), 'retrieve C', { id: c.id, name: nameC, childGroups: [b.id] });
  say('ok: child_groups on create');

  // --- replace (PUT) -------------------------------------------------------
  const nameA2 = `js-${tag}-A2`;
  let r = await groups.replace({ group_id: a.id, replaceGroupRequestBody: { name: nameA2, members: [n6, n7, n6] } });
  checkGroup(r, 'replace A', { id: a.id, name: nameA2, size: 2, childGroups: [] });
  check(r.created_at.getTime() === a.created_at.getTime(), 'replace A: created_at must not change');
  await checkMembers(a.id, [n6, n7], 'after replace');
  r = await groups.replace({ group_id: b.id, replaceGroupRequestBody: { members: [n4] } });
  checkGroup(r, 'replace B without a name', { id: b.id, name: undefined, size: 1 });
  say('ok: replace');

  // --- list: newest first, paging, count is the total ------------------------
  const page0 = await groups.list({ page: 0, page_size: 2 });
  const ids0 = page0.data.map((g) => g.id);
  check(sameList(ids0, [c.id, b.id]), `list page 0: expected newest first [C, B], got ${show(ids0)}`);
  check(page0.hasNextPage === true, 'list page 0: SDK sees no next page');
  const page1 = await page0.nextPage();
  const ids1 = page1.data.map((g) => g.id);
  check(ids1[0] === a.id, `list page 1: expected A first, got ${show(ids1)}`);
  checkGroup(page1.data[0], 'A as listed', { id: a.id, name: nameA2, size: 2, childGroups: [] });
  const direct = await groups.list({ page: 1, page_size: 2 });
  check(sameList(direct.data.map((g) => g.id), ids1), 'list page=1 directly differs from nextPage()');
  const after = await countByWalking();
  check(after === before + 3, `walking every page found ${after} groups, expected ${before + 3}`);
  say('ok: list pagination (newest first, count is the total)');

  // --- validation errors -----------------------------------------------------
  await expectError('create with an invalid phone number',
    () => groups.create({ createGroupRequestBody: { name: `js-${tag}-bad`, members: ['not-a-number'] } }),
    400, 'syntax_invalid_parameter_format');
  await expectError('update adding an invalid phone number',
    () => update(a.id, { add: ['+12ab'] }), 400, 'syntax_invalid_parameter_format');
  await expectError('create with a 21-character name',
    () => groups.create({ createGroupRequestBody: { name: 'x'.repeat(21), members: [n1] } }),
    400, 'syntax_constraint_violation');
  await expectError('rename to a 21-character name',
    () => update(a.id, { name: 'x'.repeat(21) }), 400, 'syntax_constraint_violation');
  const edge = await groups.create({ createGroupRequestBody: { name: 'y'.repeat(20) } });
  checkGroup(edge, 'create with a 20-character name', { name: 'y'.repeat(20), size: 0, childGroups: [] });
  await groups.delete({ group_id: edge.id });
  say('ok: a 20-character name is accepted');

  const missing = '01NOSUCHGROUP0000000000000';
  await expectError('add_from_group with an unknown group',
    () => update(a.id, { add_from_group: missing }), 403, 'unknown_group');
  await expectError('create with an unknown child group',
    () => groups.create({ createGroupRequestBody: { name: `js-${tag}-D`, child_groups: [missing] } }),
    403, 'unknown_group');
  await expectError('retrieve an unknown group', () => groups.get({ group_id: missing }), 404);
  await expectError('update an unknown group', () => update(missing, { add: [n1] }), 404);
  await expectError('replace an unknown group',
    () => groups.replace({ group_id: missing, replaceGroupRequestBody: { members: [n1] } }), 404);
  await expectError('members of an unknown group', () => groups.listMembers({ group_id: missing }), 404);
  check(await countByWalking() === before + 3, 'failed requests must not create groups');

  // --- a batch to a group -------------------------------------------------------
  // Scheduled an hour ahead, so that nothing is sent; Roster resolves groups at send time.
  const target = await groups.create({ createGroupRequestBody: { name: `js-${tag}-S`, members: [n1, n2] } });
  const sendAt = new Date(Date.now() + 3600 * 1000);
  const batch = await sms.batches.sendTextMessage({
    sendSMSRequestBody: {
      to: [target.id, n3], from: '12345', body: 'Hello from the SDK',
      client_reference: `js-${tag}`, send_at: sendAt,
    },
  });
  check(typeof batch.id === 'string' && batch.id.length > 0, `send: expected a batch id, got ${show(batch)}`);
  check(sameList(batch.to, [target.id, n3]), `send: to ${show(batch.to)}`);
  check(batch.canceled === false, 'send: a new batch is not canceled');
  const fetched = await sms.batches.get({ batch_id: batch.id });
  check(fetched.id === batch.id && fetched.body === 'Hello from the SDK', `get batch: ${show(fetched)}`);
  const listed = await sms.batches.list({ client_reference: `js-${tag}` });
  check(listed.data.length === 1 && listed.data[0].id === batch.id, `list batches: ${show(listed.data)}`);
  const canceled = await sms.batches.cancel({ batch_id: batch.id });
  check(canceled.canceled === true, `cancel: ${show(canceled)}`);
  await expectError('get an unknown batch', () => sms.batches.get({ batch_id: missing }), 404);
  await groups.delete({ group_id: target.id });
  say('ok: send a batch to a group, get, list, cancel');

  // --- a personalized batch, sent now -------------------------------------------
  // Roster sends it through its own sender; the Rust test reads the messages it logged.
  const params = { name: { [n1]: 'Ann', default: 'friend' }, code: { default: 'JS-1' } };
  const personal = await sms.batches.sendTextMessage({
    sendSMSRequestBody: {
      to: [n1, n2], from: '12345', body: 'Hi ${name}, your code is ${code}',
      client_reference: `js-${tag}-personal`, parameters: params,
    },
  });
  const p = personal.parameters;
  check(p.name[n1] === 'Ann' && p.name.default === 'friend' && p.code.default === 'JS-1'
    && Object.keys(p).length === 2, `send parameters: ${show(p)}`);
  const fetchedPersonal = await sms.batches.get({ batch_id: personal.id });
  check(fetchedPersonal.parameters.name[n1] === 'Ann', `get parameters: ${show(fetchedPersonal.parameters)}`);
  say('ok: a personalized batch with parameters');

  // --- delete ------------------------------------------------------------------
  for (const g of [c, b, a]) {
    const deleted = await groups.delete({ group_id: g.id });
    check(sameList(deleted, {}), `delete ${g.id}: expected an empty response, got ${show(deleted)}`);
    await expectError(`retrieve deleted group ${g.id}`, () => groups.get({ group_id: g.id }), 404);
  }
  await expectError('delete an already deleted group', () => groups.delete({ group_id: a.id }), 404);
  check(await countByWalking() === before, 'after deletes the group count is back to where it started');
  say('ok: delete, then retrieve -> 404');

  say('all checks passed');
}

main().catch((e) => fail(`unexpected error: ${e && e.stack ? e.stack : e}`));
